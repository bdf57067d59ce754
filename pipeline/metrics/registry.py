"""The metrics by name, as stylegan2-ada-pytorch's `metric_main`: name -> function.

The command line (`python -m pipeline.metrics <name>`) and the `quality` stage both call
`calc_metric(name, synthetic, real, options, context)`; a metric is added by registering
one function here, not by another branch in each caller.

A metric takes the synthetic folder it measures, the real images it is compared with
(a folder, or for FID a list of image files), its options dataclass, and a `MetricContext`
(device, the networks loaded once and shared between calls, an output folder); it returns
a `MetricResult`: the JSON-ready summary (value, count, options, weights provenance) and,
where the metric has one, its per-pair or per-model CSV table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from singanseg.typed import ConfigError

Real = str | os.PathLike | Sequence[Path] | None


@dataclass(frozen=True)
class MetricResult:
    summary: dict
    table: str | None = None  # CSV: per (real, synthetic) pair for SIFID, per model for LPIPS


@dataclass
class MetricContext:
    device: str = "cpu"
    out: Path | None = None  # where a metric writes its own files (the masks' Fig 5 maps); None: none
    name: str | None = None  # the set's name in error messages (default: its folders)
    # networks loaded once per (network, weights, weights_dir, resize), and the LPIPS model
    inception_nets: dict = field(default_factory=dict)
    lpips_net: tuple | None = None
    # every image's Inception features once per context (features.FeatureBank): the reals serve
    # every set, a set's FID features its equal-K sets
    bank: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.bank is None:
            from .features import FeatureBank

            self.bank = FeatureBank()

    def inception(self, network: str, weights: str, weights_dir, resize: bool):
        key = (network, weights, weights_dir, resize)
        if key not in self.inception_nets:
            from .inception import load_inception

            self.inception_nets[key] = load_inception(network, weights, weights_dir, resize=resize, device=self.device)
        return self.inception_nets[key]

    def lpips(self, options):
        if self.lpips_net is None:
            from .lpips_diversity import load_lpips

            self.lpips_net = load_lpips(options.net, options.weights, options.weights_dir, self.device)
        return self.lpips_net

    def provenance(self) -> dict[str, str]:
        """The weights behind every network this context loaded (MLflow tags, summary.json)."""
        out = {}
        for (network, *_rest, resize), net in self.inception_nets.items():
            out[f"{network}{'' if resize else '_native'}"] = f"{net.provenance.weights}: {net.provenance.source}"
        if self.lpips_net is not None:
            prov = self.lpips_net[1]
            out["lpips"] = f"{prov.weights}: {prov.source}"
        return out


Metric = Callable[[Path, Real, Any, MetricContext], MetricResult]
_metric_dict: dict[str, Metric] = {}


def register_metric(fn: Metric) -> Metric:
    _metric_dict[fn.__name__] = fn
    return fn


def list_valid_metrics() -> list[str]:
    return list(_metric_dict)


def calc_metric(name: str, synthetic, real: Real, options, context: MetricContext | None = None) -> MetricResult:
    if name not in _metric_dict:
        raise ConfigError(f"metric {name!r}: unknown (known: {', '.join(list_valid_metrics())})")
    return _metric_dict[name](Path(synthetic), real, options, context or MetricContext())


# --- the metrics ---------------------------------------------------------------------------


@register_metric
def fid(synthetic: Path, real: Real, options, ctx: MetricContext) -> MetricResult:
    """FID of the synthetic images against `real` (a folder, or the reference image files)."""
    from .features import image_index
    from .fid import fid_paths

    options.validate()
    if isinstance(real, (str, os.PathLike)):
        where, real = f"fid {real} vs {synthetic}", list(image_index(real).values())
    else:
        where = f"fid {synthetic}"
    fake = list(image_index(synthetic).values())  # bad input is named before a network loads
    net = ctx.inception(options.network, options.weights, options.weights_dir, True)
    return MetricResult(fid_paths(real, fake, options, net, ctx.device, f"fid {ctx.name}" if ctx.name else where, ctx.bank))


@register_metric
def sifid(synthetic: Path, real: Real, options, ctx: MetricContext) -> MetricResult:
    """SIFID per (real, synthetic) pair, paired by id; the per-pair rows in `pairs` and the table."""
    from .features import image_index
    from .sifid import pair_ids, sifid_folders

    options.validate()
    pair_ids(image_index(real), image_index(synthetic), f"sifid {synthetic}")  # before a network loads
    net = ctx.inception(options.network, options.weights, options.weights_dir, options.resize)
    res = sifid_folders(real, synthetic, options, net=net, device=ctx.device, bank=ctx.bank)
    summary = res.summary()
    summary["pairs"] = [{"real_id": a, "synthetic_id": b, "sifid": v} for a, b, v in res.rows]
    return MetricResult(summary, res.to_csv())


@register_metric
def lpips(synthetic: Path, real: Real, options, ctx: MetricContext) -> MetricResult:
    """Mean pairwise LPIPS among each model's samples (and to its training image, given `real`)."""
    from .lpips_diversity import lpips_diversity, per_model_csv, sample_index

    options.validate()
    sample_index(synthetic)  # bad input is named before a network loads
    model, prov = ctx.lpips(options)
    result = lpips_diversity(synthetic, real, options, model, prov, ctx.device)
    return MetricResult(result, per_model_csv(result))


@register_metric
def masks(synthetic: Path, real: Real, options, ctx: MetricContext) -> MetricResult:
    """Foreground percentages and, with `options.pixelwise`, per-model pixel-wise mean/std
    (written to `ctx.out` when given). No network; `real` is not used."""
    from .masks import mask_summary, pixelwise_stats

    summary = mask_summary(synthetic, options.bin_width, getattr(options, "near_empty_percent", 1.0))
    if options.pixelwise:
        summary["per_model"] = pixelwise_stats(synthetic, ctx.out)
    summary["weights"] = "none (no network)"
    return MetricResult(summary)
