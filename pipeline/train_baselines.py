"""DVC stage train_baselines: train one baseline GAN on the first K real pairs, for each K.

    python -m pipeline.train_baselines --gan {dcgan,progan,fastgan} [--subset {K,all}]

Reads `data/real` (the data stage's pairs), the params section `baselines`, writes
`models/<gan>/n<K>/` (resumable: a rerun continues from the last checkpoint, a finished
model is kept). The paper trained DCGAN and Progressive GAN on all images and FastGAN on
the first k in {5, ..., 50} and on all (paper.md section 6). dvc.yaml has one stage per
GAN (`train_baselines@<gan>`, outs `models/<gan>`); the subsets come from
`baselines.subsets.<gan>` of the active profile, because DVC's foreach lists cannot follow
our profile overlays (docs/deviations/pipeline.md). `--subset` trains just one.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from baselines.common import GANS, get_gan, make_config
from pipeline.infra.mlflow_tracker import MlflowTracker, stage_run
from pipeline.stage import Stage
from singanseg.device import resolve_device
from singanseg.errors import UserError
from singanseg.io import InputError, list_pairs
from singanseg.tracker import or_null
from singanseg.typed import ConfigError

log = logging.getLogger("pipeline.train_baselines")


@dataclass(frozen=True)
class BaselinesParams:
    seed: int = 0  # training seed; sampling seeds derive from it (generate_baselines)
    device: str = "auto"  # auto = cuda when available, else cpu
    # synthetic pairs per model; the paper compared sets of the real set's size (1000
    # Kvasir-SEG pairs, paper.md section 6) [inferred]
    num_samples: int = 1000
    # a subset larger than data/real: `error`, or `all` (train on every pair, logged and
    # tagged) so that the smoke profile's small data still runs every stage
    subset_exceeds_data: Literal["error", "all"] = "error"
    # per-GAN config keys over the paper defaults in baselines/<gan>.py (empty = paper)
    dcgan: dict[str, Any] = field(default_factory=dict)
    progan: dict[str, Any] = field(default_factory=dict)
    fastgan: dict[str, Any] = field(default_factory=dict)
    # training subsets per GAN: "all" or the first K ids (paper.md s6: DCGAN and ProGAN on
    # all 1000 images, FastGAN on the first 5, 10, ..., 50 and on all)
    subsets: dict[str, list[str]] = field(default_factory=lambda: {
        "dcgan": ["all"], "progan": ["all"],
        "fastgan": ["5", "10", "15", "20", "25", "30", "35", "40", "45", "50", "all"],
    })  # fmt: skip
    track: bool = True  # log the stage to MLflow

    def validate(self, where: str) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"{where}.num_samples: must be at least 1, got {self.num_samples}")
        for gan, subsets in self.subsets.items():
            if gan not in GANS:
                raise ConfigError(f"{where}.subsets.{gan}: unknown GAN (known: {', '.join(GANS)})")
            for sub in subsets:
                parse_subset(str(sub), f"{where}.subsets.{gan}")

    def subsets_of(self, gan: str) -> list[str]:
        return [str(s) for s in self.subsets.get(gan, [])]

    def gan_config(self, gan: str, where: str = "params.yaml: baselines") -> Any:
        config = make_config(gan, "paper", getattr(self, gan), f"{where}.{gan}")
        if hasattr(config, "validate"):
            config.validate(f"{where}.{gan}")
        return config


def parse_subset(text: str, where: str = "--subset") -> int | None:
    """'all' -> None, '5' -> 5; anything else is an error naming where it came from."""
    if text == "all":
        return None
    if not re.fullmatch(r"[1-9][0-9]*", text):
        raise ConfigError(f"{where}: expected a positive integer or 'all', got {text!r}")
    return int(text)


def effective_subset(params: BaselinesParams, subset: int | None, data_dir: Path) -> int | None:
    n = len(list_pairs(data_dir))
    if subset is not None and subset > n:
        if params.subset_exceeds_data == "error":
            raise InputError(f"{data_dir}: --subset {subset} asks for more pairs than it holds ({n}); "
                             f"set baselines.subset_exceeds_data: all to train on all of them")  # fmt: skip
        log.warning(
            "subset %d > %d pairs in %s: training on all of them (subset_exceeds_data: all)",
            subset,
            n,
            data_dir,
        )
        return None
    return subset


def model_dir(root: Path, gan: str, subset_name: str) -> Path:
    return root / "models" / gan / f"n{subset_name}"


def _child(run, name: str, tags: dict[str, str]):
    """A child run's tracker per subset, or the null tracker when tracking is off."""
    return or_null(MlflowTracker.of(run)).child(name, tags)


def main(argv: list[str] | None = None) -> int:
    # a diverged training (FloatingPointError) is reported in one line too
    stage = Stage("train_baselines", __doc__.split("\n\n")[0], BaselinesParams, section="baselines",
                  errors=(UserError, FloatingPointError))  # fmt: skip
    ap = stage.parser
    ap.add_argument("--gan", required=True, choices=sorted(GANS))
    ap.add_argument("--subset", help="K (the first K pairs by id) or all; default: every subset in params")
    ap.add_argument("--root", default=".", help="folder holding data/ and models/")
    ap.add_argument("--no-progress", action="store_true")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    return stage.run(_work, argv)


def _work(args, params: BaselinesParams) -> None:
    from baselines.common import train

    subsets = [args.subset] if args.subset else params.subsets_of(args.gan)
    if not subsets:
        raise ConfigError(f"{args.params}: baselines.subsets.{args.gan}: no subsets to train")
    for sub in subsets:
        parse_subset(sub)
    config = params.gan_config(args.gan, f"{args.params}: baselines")
    get_gan(args.gan)  # a missing module fails before the run opens
    root = Path(args.root)
    data_dir = root / "data" / "real"
    provenance = {"weights": "random-init"}
    if hasattr(config, "weights"):
        provenance["loss_weights"] = str(config.weights)  # e.g. FastGAN's LPIPS
    with stage_run("train_baselines", config, run_name=f"train_baselines@{args.gan}",
                   provenance=provenance, tags={"gan": args.gan}, enabled=params.track) as mlrun:  # fmt: skip
        device = resolve_device(params.device, "baselines.device")
        for sub in subsets:
            used = effective_subset(params, parse_subset(sub), data_dir)
            out = model_dir(root, args.gan, sub)
            tags = {"gan": args.gan, "subset": sub, "subset_used": "all" if used is None else str(used)}
            with _child(mlrun, f"train_baselines/{args.gan}/n{sub}", tags) as child:
                model = train(args.gan, data_dir, out, config, seed=params.seed, num_images=used,
                              progress=not args.no_progress, tracker=child, device=device)  # fmt: skip
                child.log_metrics({"iterations": model.meta["iteration"], "num_images": model.meta["num_images"]})
            print(f"train_baselines: {args.gan} n{sub} -> {out}")


if __name__ == "__main__":
    sys.exit(main())
