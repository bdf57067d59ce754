"""DVC stage `stylize`: SinGAN-Seg step 2 on the generated pairs (paper.md section 2).

For each content:style ratio in `stylize.ratios` it reads the generated pairs of one
variant, `synthetic/singan/<source>/{images,masks}/<srcid>_<n>.png`, takes as style the
real training image of the same SinGAN, `data/real/images/<srcid>.png`, and writes

    synthetic/singan_st<c>to<s>/<source>/images/<id>.png   stylised RGB
    synthetic/singan_st<c>to<s>/<source>/masks/<id>.png    the generated mask, unchanged
    synthetic/singan_st<c>to<s>/<source>/provenance.json   style network + weights + config

atomically. One MLflow run per execution, tagged with the style network's provenance
(`style_network`: vgg16 as the paper, or the named variant efficientnet_lite0; its weights).

    python -m pipeline.stylize [--params params.yaml] [--ratio 1to1000] [--root .]
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.infra.mlflow_tracker import log_metrics, stage_run
from pipeline.infra.params import active_profile
from pipeline.stage import Stage
from singanseg.device import resolve_device
from singanseg.style_transfer import (
    StyleConfig,
    StyleNetwork,
    load_backbone,
    parse_ratio,
)
from singanseg.stylize_folder import stylize_folder
from singanseg.typed import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class StylizeParams:
    # paper.md s2: the segmentation runs used `_ST` (1:1) and `_ST_1to1000` (1:1000); the
    # authors also ran 1to10, 1to1000000 and 1000to1 (style_transfer_1_to_*.py)
    ratios: tuple[str, ...] = ("1to1", "1to1000")
    source: str = "gss0"  # generated variant; paper.md s1/anchors s0: gen_start_scale = 0
    num_epochs: int = 1000  # paper.md s2: 1000 Adam steps
    # vgg = the paper's (vgg_model); efficientnet_lite0 = a named variant on the offline
    # EfficientNet-Lite0 ImageNet checkpoint (issue 23 s3; docs/deviations/style.md)
    network: Literal["vgg", "efficientnet_lite0"] = "vgg"
    vgg_model: Literal["vgg16", "vgg19"] = "vgg16"  # paper.md s2: the experiments used vgg16
    weights: str = "imagenet"  # imagenet | random | path to a state dict file (efficientnet_lite0: imagenet | random)
    layers: Literal["paper", "by_name"] = "paper"  # docs/deviations/style.md
    capture: Literal["post_relu", "conv_output"] = "post_relu"  # docs/deviations/style.md
    quantize: Literal["truncate", "round"] = "truncate"  # docs/deviations/style.md
    random_seed: int = 0  # only for weights: random
    batch_size: int = 4  # images of equal size per VGG pass (same result as one by one)
    # a cut (issue 23, the cpu budget): style only the samples n < N of each model; the grids read
    # at most segment.grid_b.samples_per_image of them. null = every sample (the paper)
    samples_per_model: int | None = None
    device: str = "auto"  # auto = cuda when available, else cpu
    track: bool = True  # log the stage to MLflow

    def validate(self, where: str) -> None:
        if not self.ratios:
            raise ConfigError(f"{where}.ratios: empty (e.g. ['1to1', '1to1000'])")
        for i, r in enumerate(self.ratios):
            try:
                parse_ratio(r)
            except ConfigError as e:
                raise ConfigError(f"{where}.ratios[{i}]: {e}") from None
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.source):
            raise ConfigError(
                f"{where}.source: {self.source!r} is not a plain folder name (e.g. gss0)"
            )
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size: must be >= 1, got {self.batch_size}")
        if self.samples_per_model is not None and self.samples_per_model < 1:
            raise ConfigError(f"{where}.samples_per_model: must be >= 1 or null, got {self.samples_per_model}")
        self.style_config(self.ratios[0]).validate(where)  # network / weights / taps agree

    def style_config(self, ratio: str) -> StyleConfig:
        cw, sw = parse_ratio(ratio)
        return StyleConfig(
            network=self.network,
            vgg_model=self.vgg_model,
            weights=self.weights,
            download=True,
            random_seed=self.random_seed,
            layers=self.layers,
            capture=self.capture,
            content_weight=cw,
            style_weight=sw,
            num_epochs=self.num_epochs,
            quantize=self.quantize,
        )


def run(
    params: StylizeParams, root: Path, ratios: list[str], backbone: StyleNetwork, device: str | torch.device
) -> dict[str, float]:
    """Stylise `root/synthetic/singan/<source>` once per ratio; returns metrics to log."""
    content = root / "synthetic" / "singan" / params.source
    style = root / "data" / "real" / "images"
    metrics: dict[str, float] = {}
    for ratio in ratios:
        out = root / "synthetic" / f"singan_st{ratio}" / params.source
        # stylize_folder prints its own progress (images done, ETA per image and in total) at
        # most every 30 s, on stderr, which DVC streams (issue 17)
        rec = stylize_folder(
            content,
            style,
            out,
            params.style_config(ratio),
            device,
            network=backbone,
            batch_size=params.batch_size,
            log=lambda m: print(m, file=sys.stderr, flush=True),
            samples_per_model=params.samples_per_model,
        )
        metrics[f"{ratio}.images"] = rec["images"]
        metrics[f"{ratio}.seconds"] = rec["seconds"]
        if rec["mean_final_loss"] is not None:
            metrics[f"{ratio}.mean_final_loss"] = rec["mean_final_loss"]
        print(f"stylize: {rec['images']} image(s) at {ratio} -> {out} ({rec['seconds']:.1f} s)")
    return metrics


def main(argv: list[str] | None = None) -> int:
    stage = Stage("stylize", __doc__.split("\n\n")[0], StylizeParams)
    stage.parser.add_argument(
        "--ratio", action="append", help="only these ratios (each must be in stylize.ratios)"
    )
    stage.parser.add_argument("--root", default=".", help="folder holding data/ and synthetic/")
    return stage.run(_work, argv)


def _work(args, params: StylizeParams) -> None:
    ratios = args.ratio or list(params.ratios)
    for r in ratios:
        if r not in params.ratios:
            raise ConfigError(
                f"--ratio {r}: not in {args.params}: stylize.ratios {list(params.ratios)}"
            )
    # the weights are resolved before the run opens so that it is tagged with them
    device = resolve_device(params.device, "stylize.device")
    backbone = load_backbone(params.style_config(ratios[0]), device)  # one network for all ratios
    with stage_run(
        "stylize",
        params,
        run_name="stylize@" + "+".join(ratios),  # one run per DVC stage stylize@<ratio>: unique names
        profile=active_profile(args.params),
        provenance=backbone.provenance,
        enabled=params.track,
    ) as mlrun:
        metrics = run(params, Path(args.root), ratios, backbone, device)
        log_metrics(mlrun, metrics)


if __name__ == "__main__":
    sys.exit(main())
