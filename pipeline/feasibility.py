"""Can this data feed every configured grid, fold and subset? Asked by the data stage, before
any training starts (issue 17: a 3-pair folder used to train every model for 9 minutes and
only then fail in `segment@B`).

Each check uses only counts (pairs, fold sizes) and the active params, and each problem names
the parameter to change. The arithmetic is the one the later stages apply:
`pipeline/segment/experiments.py::resolve` (grid B's first N of the train fold, the clean
protocol's last `clean_val_fraction` of it), `pipeline/train_baselines.py` (subsets larger
than the data), `baselines/data.py` (at least one batch of pairs).
"""

from __future__ import annotations

import math
import os
from collections import Counter

from pipeline.params import load_section
from singanseg.errors import UserError


class InfeasibleData(UserError):
    """The data cannot feed the configured experiments; the message names the parameters."""


def problems(folds: dict[str, int], params_path: str | os.PathLike = "params.yaml") -> list[str]:
    """Every reason the data (id -> fold) cannot feed the active params; [] when it can."""
    from pipeline.generate import GenerateParams
    from pipeline.segment.config import SegmentParams
    from pipeline.segment.experiments import parse
    from pipeline.train_baselines import BaselinesParams

    n = len(folds)
    size = Counter(folds.values())
    seg = load_section("segment", SegmentParams, params_path)
    base = load_section("baselines", BaselinesParams, params_path)
    gen = load_section("generate", GenerateParams, params_path)
    out = []
    for f in seg.grid_a.folds:
        if size.get(f, 0) == 0:
            out.append(f"segment.grid_a.folds: fold {f} has no images ({n} pairs in {len(size)} folds); "
                       "use fewer folds or more pairs")  # fmt: skip
        elif sum(c for g, c in size.items() if g != f) == 0:
            out.append(f"segment.grid_a.folds: no training folds besides test fold {f}; set data.folds >= 2")
    gb, fold_b = seg.grid_b, seg.grid_b.train_fold
    if gb.kinds and gb.n_values:
        have = size.get(fold_b, 0)
        top = max(gb.n_values)
        if top > have:
            out.append(f"segment.grid_b.n_values: N = {top} needs the first {top} images of fold {fold_b}, which "
                       f"has {have} ({n} pairs); lower the N values or use more pairs")  # fmt: skip
        elif "clean" in seg.protocols:
            n_val = max(1, math.ceil(seg.clean_val_fraction * have))
            if top + n_val > have:
                out.append(f"segment.grid_b.n_values: N = {top} plus the clean protocol's {n_val} validation "
                           f"images exceed fold {fold_b}'s {have}; lower N, segment.clean_val_fraction, or use more pairs")  # fmt: skip
    fakes = [parse(f"A/{e}", seg).samples for e in seg.grid_a.experiments if "FAKE" in e]
    fakes += [gb.samples_per_image] if any("FAKE" in k for k in gb.kinds) else []
    need = max([k for k in fakes if k], default=0)
    if need > gen.num_samples:
        out.append(f"generate.num_samples: {gen.num_samples} samples per image, but the grids use {need}; "
                   f"raise it to {need}")  # fmt: skip
    for gan in ("dcgan", "progan", "fastgan"):
        for sub in base.subsets_of(gan):
            k = n if sub == "all" else int(sub)
            if k > n and base.subset_exceeds_data == "error":
                out.append(f"baselines.subsets.{gan}: subset {sub} > {n} pairs; drop it or set "
                           "baselines.subset_exceeds_data: all")  # fmt: skip
        if gan != "fastgan" and base.subsets_of(gan):
            # DCGAN and Progressive GAN read whole batches (baselines/common.py: min_images =
            # batch_size); FastGAN streams its batches, so k = 5 trains at batch 8
            bs = base.gan_config(gan).batch_size
            smallest = min(n if s == "all" else min(n, int(s)) for s in base.subsets_of(gan))
            if smallest < bs:
                out.append(f"baselines.{gan}.batch_size: {bs} > the {smallest} pairs of its smallest subset; "
                           "lower it or use more pairs")  # fmt: skip
    if n < 2:
        out.append(f"data: {n} pair(s); FID and the folds need at least 2")
    return out


def check(folds: dict[str, int], params_path: str | os.PathLike = "params.yaml") -> None:
    found = problems(folds, params_path)
    if found:
        raise InfeasibleData(f"{params_path}: the data cannot feed the configured experiments: " + "; ".join(found))
