"""Can this data feed every configured grid, fold and subset? Asked by the data stage, before
any training starts (issue 17: a 3-pair folder used to train every model for 9 minutes and
only then fail in `segment@B`).

Each check uses only counts (pairs, fold sizes) and the active params, and each problem names
the parameter to change. The arithmetic is the one the later stages apply:
`pipeline/segment/experiments.py::resolve` (grid B's first N of the train fold, the clean
protocol's last `clean_val_fraction` of it), `pipeline/train_baselines.py` (subsets larger
than the data), `baselines/data.py` (at least one batch of pairs).

`minimum_pairs` turns the same checks into the smallest number of pairs a profile accepts
(README "Your own data" quotes it; `python -m pipeline.data.feasibility` prints it per profile).
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.infra.params import load_section
from singanseg.errors import UserError

# more pairs than any profile needs; minimum_pairs searches up to here
MAX_SEARCH = 100_000


class InfeasibleData(UserError):
    """The data cannot feed the configured experiments; the message names the parameters."""


@dataclass(frozen=True)
class Sections:
    """The params the checks read, loaded once (each load reads params.yaml and asks git)."""

    segment: Any
    baselines: Any
    generate: Any
    folds: int  # data.folds: how many folds the ids are split into

    @classmethod
    def load(cls, params_path: str | os.PathLike = "params.yaml", profile: str | None = None) -> Sections:
        from pipeline.data.config import DataParams
        from pipeline.generate import GenerateParams
        from pipeline.segment.config import SegmentParams
        from pipeline.train_baselines import BaselinesParams

        return cls(load_section("segment", SegmentParams, params_path, profile),
                   load_section("baselines", BaselinesParams, params_path, profile),
                   load_section("generate", GenerateParams, params_path, profile),
                   load_section("data", DataParams, params_path, profile).folds)  # fmt: skip


def problems(folds: dict[str, int], params_path: str | os.PathLike = "params.yaml") -> list[str]:
    """Every reason the data (id -> fold) cannot feed the active params; [] when it can."""
    return problems_of(Counter(folds.values()), Sections.load(params_path))


def fold_sizes(n: int, folds: int) -> Counter:
    """{fold: size} of n ids split as pipeline/data/prepare.py::assign_folds does (np.array_split;
    a shuffled split has the same sizes)."""
    return Counter({f: len(c) for f, c in enumerate(np.array_split(np.arange(n), folds)) if len(c)})


def minimum_pairs(params_path: str | os.PathLike = "params.yaml", profile: str | None = None) -> int:
    """The fewest pairs the active (or named) profile accepts: the checks of `problems`,
    asked for n = 1, 2, ... (each check only grows easier with more pairs)."""
    sec = Sections.load(params_path, profile)
    for n in range(1, MAX_SEARCH + 1):
        if not problems_of(fold_sizes(n, sec.folds), sec):
            return n
    raise InfeasibleData(f"{params_path}: no number of pairs up to {MAX_SEARCH} feeds the configured experiments: "
                         + "; ".join(problems_of(fold_sizes(MAX_SEARCH, sec.folds), sec)))  # fmt: skip


def problems_of(size: Counter, sec: Sections) -> list[str]:
    """`problems` for fold sizes {fold: count}."""
    from pipeline.segment.experiments import parse

    n = sum(size.values())
    seg, base, gen = sec.segment, sec.baselines, sec.generate
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
    sec = Sections.load(params_path)
    found = problems_of(Counter(folds.values()), sec)
    if found:
        from pipeline.infra.params import active_profile

        need = minimum_pairs(params_path)
        raise InfeasibleData(f"{params_path}: the data cannot feed the configured experiments "
                             f"(profile {active_profile(params_path)} needs at least {need} pairs, "
                             f"{len(folds)} given): " + "; ".join(found))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.data.feasibility [--params params.yaml]`: the minimum pairs per profile."""
    import argparse

    from pipeline.infra.params import read_yaml

    ap = argparse.ArgumentParser(prog="python -m pipeline.data.feasibility", description=main.__doc__)
    ap.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    args = ap.parse_args(argv)
    try:
        for name in read_yaml(args.params).get("profiles") or {}:
            print(f"{name}: at least {minimum_pairs(args.params, name)} pairs")
    except UserError as e:
        print(f"feasibility: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
