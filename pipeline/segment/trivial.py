"""Trivial segmenters, scored by the same code as UNet++, so a reader sees what a score is worth.

Three rows per grid and fold (and per N in grid B), under every protocol:
- `TRIVIAL_BACKGROUND`: predicts no polyp anywhere. Its per-image IoU is not 0: an image whose
  mask is empty scores IoU ~1 through the eps of smp.utils (paper.md section 4), and its
  accuracy is the background fraction.
- `TRIVIAL_MEAN_MASK`: the pixel-wise mean of the training masks (the same real images the
  REAL experiment trains on, after the same PYRA resize and validation transform),
  thresholded at 0.5, predicted for every test image.
- `TRIVIAL_TUNED_MASK` (issue 22 s2): the same mean mask thresholded at the level that
  maximises the per-image mean IoU on the training masks themselves (its one parameter tuned
  on training data only): the fair "never looks at the image" row the sanity gate compares
  REAL with (the best of the trivial rows, computed).

None is in the paper; they calibrate its tables. They read only the real training masks
and the test set that `resolve` gives the REAL experiment, and write the same JSON layout as
`run.run_experiment` (`<out>/<grid>/TRIVIAL_*[_N<n>]/fold<F>_seed<S>.json`, S the first seed), so the report treats
them as rows like any other. Cost: one pass over the masks, seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from pipeline.segment.config import SegmentParams
from pipeline.segment.data import PairDataset
from pipeline.segment.experiments import parse, resolve
from pipeline.segment.run import MAIN_TEST, csv_text, output_paths, per_image_path, per_image_rows, write_results
from pipeline.segment.scores import ScoreAccumulator
from singanseg.io import write_text

KINDS = {
    "TRIVIAL_BACKGROUND": "all-background prediction (never a polyp)",
    "TRIVIAL_MEAN_MASK": "the mean training mask thresholded at 0.5, the same for every test image",
    "TRIVIAL_TUNED_MASK": "the mean training mask thresholded at the level that maximises the training masks' IoU",
}
# the levels TRIVIAL_TUNED_MASK tries (the mean mask's values are multiples of 1 / training size)
LEVELS = tuple(round(0.02 * i, 2) for i in range(1, 50))


def trivial_runs(grid: str, params: SegmentParams) -> list[tuple[str, str, int]]:
    """(trivial name, the REAL experiment whose splits it uses, fold) for one grid."""
    if grid == "A":
        return [(f"A/{k}", "A/REAL", f) for k in KINDS for f in params.grid_a.folds]
    gb = params.grid_b
    return [(f"B/{k}_N{n}", f"B/REAL_N{n}", gb.train_fold) for k in KINDS for n in gb.n_values]


def _masks(ds: PairDataset) -> torch.Tensor:
    return torch.stack([ds[i][1] for i in range(len(ds))]).to(torch.float64)


def tuned_level(mean: torch.Tensor, train_masks: torch.Tensor) -> float:
    """The level of LEVELS whose thresholded mean mask scores the highest per-image mean IoU
    on the training masks (ties: the lowest level)."""
    best, best_iou = LEVELS[0], -1.0
    for level in LEVELS:
        acc = ScoreAccumulator()
        acc.update((mean > level).to(torch.float64).expand_as(train_masks), train_masks.long())
        iou = acc.compute()["per_image"]["iou"]
        if iou > best_iou:
            best, best_iou = level, iou
    return best


def predict(kind: str, train: PairDataset, test: PairDataset) -> tuple[ScoreAccumulator, dict[str, Any]]:
    """One trivial segmenter's scores on `test` (an accumulator: both averaging modes and the
    per-image rows) and what it was fitted to (the tuned level)."""
    if kind not in KINDS:
        raise ValueError(f"unknown trivial segmenter {kind!r} (known: {', '.join(KINDS)})")
    target = _masks(test)
    fitted: dict[str, Any] = {}
    if kind == "TRIVIAL_BACKGROUND":
        pred = torch.zeros_like(target)
    else:
        train_masks = _masks(train)
        mean = train_masks.mean(0)
        if kind == "TRIVIAL_MEAN_MASK":
            # the probability map is the mean mask itself; ScoreAccumulator thresholds it at 0.5
            pred = mean.expand_as(target)
        else:  # TRIVIAL_TUNED_MASK: a hard map at the tuned level
            fitted["level"] = tuned_level(mean, train_masks)
            pred = (mean > fitted["level"]).to(torch.float64).expand_as(target)
    acc = ScoreAccumulator()
    acc.update(pred, target.long())
    return acc, fitted


def score(kind: str, train: PairDataset, test: PairDataset) -> dict[str, dict[str, float]]:
    """Both averaging modes of one trivial segmenter on `test`."""
    return predict(kind, train, test)[0].compute()


def run_trivial(name: str, real: str, fold: int, params: SegmentParams, root: str | Path = ".",
                profile: str | None = None) -> dict[str, Any]:
    """Score one trivial row under every protocol and write its JSON; returns the record."""
    kind = name.split("/", 1)[1].rsplit("_N", 1)[0] if name.startswith("B/") else name.split("/", 1)[1]
    grid = name[0]
    # deterministic: filed under the first seed, so its rows pair with every seed's
    seed = params.seeds[0]
    n_real = parse(real, params).n_real
    record: dict[str, Any] = {
        "experiment": name, "grid": grid, "fold": fold, "seed": seed, "n_real": n_real, "trivial": KINDS[kind],
        "uses_splits_of": real, "profile": profile,
        "provenance": {"encoder": "none", "encoder_weights": "none (no network)"}, "protocols": {},
    }  # fmt: skip
    per_image: dict[str, dict[str, list[dict]]] = {}
    for protocol in params.protocols:
        sp = resolve(real, fold, protocol, params, root)
        tp = params.train_scarce if sp.experiment.scarce else params.train_rich
        t0 = time.time()
        train = PairDataset(sp.train, tp.img_size, pyra_size=tp.pyra_size, name=f"{name} fold {fold}, train masks")
        test = PairDataset(sp.test, tp.img_size, pyra_size=tp.pyra_size, name=f"{name} fold {fold}, test")
        record["train_folds"], record["test_folds"] = sp.train_folds, sp.test_folds
        acc, fitted = predict(kind, train, test)
        per_image[protocol] = {MAIN_TEST: [{"image_id": i, **r} for i, r in zip(test.ids, acc.per_image(), strict=True)]}
        record["protocols"][protocol] = {
            "test": acc.compute(), **fitted, "best_epoch": 0, "epochs": 0, "train_size": len(train),
            "test_size": len(test), "seconds": round(time.time() - t0, 2),
        }  # fmt: skip
    json_path, _ = output_paths(params, name, fold, seed, root)
    write_text(per_image_path(json_path), csv_text(per_image_rows(record, per_image)))
    write_results(json_path, record)
    return record
