"""Segmentation scores: IoU (Jaccard), F1 (Dice), precision, recall, accuracy at 0.5.

What the paper reported (../shared/docs/paper.md section 4, "Segmentation metrics";
`singan-polyp-aug-exp: 777_all_in_one_v1.py::check_val_full_score`): the
`smp.utils.metrics` IoU / Fscore / Precision / Recall / Accuracy with `threshold=0.5` on
the polyp channel only (`ignore_channels=[0]`), test batch size 1, averaged over batches
(so over images) by `smp.utils.train.ValidEpoch`. Each formula carries eps = 1e-7 on both
sides, so an image whose mask and prediction are both empty scores ~1 (not 0 or NaN).
Accuracy has no eps: (TP + TN) / pixels.

Two averaging modes, both reported, named:

- ``per_image`` (the paper's): score each image with the smp.utils formulas, then take
  the mean over images.
- ``micro`` (ours): sum TP/FP/FN/TN over every pixel of the whole set, then apply the
  plain ratios once. Its formulas are torchmetrics' `multidim_average="global"` binary
  scores (zero_division = 0), so the tests check it against torchmetrics directly.

Where torchmetrics does not fit, and why we count ourselves (four sums):
- the per-image ratios: torchmetrics offers `zero_division` (a constant for 0/0) but not
  the additive eps of smp.utils, which changes every score slightly and gives the
  empty/empty case its ~1, so the paper's numbers cannot come from torchmetrics' ratios;
- the per-image counts: `binary_stat_scores(..., multidim_average="samplewise")` crashes
  on a batch of one image in torchmetrics 1.9 (it stacks squeezed 0-d tensors), and the
  paper's validation batch size is 1;
- thresholding: its float path silently applies a sigmoid to inputs outside [0, 1]; we
  threshold `prob > 0.5` (strict, as smp.utils `_threshold`).
The `micro` mode is checked against torchmetrics' global binary scores in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

SCORES = ("iou", "f1", "precision", "recall", "accuracy")
AVERAGING = ("per_image", "micro")
THRESHOLD = 0.5  # smp.utils.metrics.*(threshold=0.5), paper.md section 4
EPS = 1e-7  # smp.utils.functional default eps, paper.md section 4
POLYP_CHANNEL = 1  # classes [0, 255] -> channel 0 background, 1 polyp (paper.md section 5)


def polyp_probability(pred: torch.Tensor) -> torch.Tensor:
    """The polyp map (N, H, W) from softmax output (N, 2, H, W) or an (N, H, W) map.

    Taking channel 1 is the paper's `ignore_channels=[0]`.
    """
    if pred.dim() == 4:
        if pred.shape[1] != 2:
            raise ValueError(f"prediction has {pred.shape[1]} channels; expected 2 (background, polyp)")
        return pred[:, POLYP_CHANNEL]
    if pred.dim() == 3:
        return pred
    raise ValueError(f"prediction must be (N, 2, H, W) or (N, H, W), got shape {tuple(pred.shape)}")


def stat_scores(pred: torch.Tensor, target: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """Per-image counts (N, 4): TP, FP, TN, FN of `pred > threshold` against `target`.

    `pred`: polyp probabilities (N, H, W) or softmax output (N, 2, H, W).
    `target`: (N, H, W) in {0, 1} (or a one-hot (N, 2, H, W), whose channel 1 is taken).
    """
    prob = polyp_probability(pred.detach())
    target = polyp_probability(target.detach()) if target.dim() == 4 else target.detach()
    if prob.shape != target.shape:
        raise ValueError(f"prediction {tuple(prob.shape)} and mask {tuple(target.shape)} differ in shape")
    if target.numel() and not bool(((target == 0) | (target == 1)).all()):
        raise ValueError("mask must hold only 0 and 1 (polyp) values")
    hard = prob > threshold  # smp.utils `_threshold`: strict >
    gt = target.bool()
    dims = tuple(range(1, hard.dim()))
    tp = (hard & gt).sum(dims)
    fp = (hard & ~gt).sum(dims)
    tn = (~hard & ~gt).sum(dims)
    fn = (~hard & gt).sum(dims)
    return torch.stack([tp, fp, tn, fn], dim=-1).to(torch.float64)


def per_image_from_counts(counts: torch.Tensor, eps: float = EPS) -> dict[str, torch.Tensor]:
    """The smp.utils formulas for each row of (N, 4) TP, FP, TN, FN counts (paper.md section 4)."""
    tp, fp, tn, fn = counts.unbind(-1)
    return {
        # smp.utils.functional.iou: (I + eps) / (|gt| + |pr| - I + eps)
        "iou": (tp + eps) / (tp + fp + fn + eps),
        # smp.utils.functional.f_score with beta = 1
        "f1": (2 * tp + eps) / (2 * tp + fn + fp + eps),
        "precision": (tp + eps) / (tp + fp + eps),
        "recall": (tp + eps) / (tp + fn + eps),
        # smp.utils.functional.accuracy: pixels equal / pixels, no eps
        "accuracy": (tp + tn) / (tp + fp + tn + fn),
    }


def micro_from_counts(total: torch.Tensor) -> dict[str, float]:
    """Plain ratios of the set's summed TP, FP, TN, FN; 0/0 gives 0 (torchmetrics' zero_division)."""
    tp, fp, tn, fn = (float(v) for v in total)

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else 0.0

    return {
        "iou": ratio(tp, tp + fp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "accuracy": ratio(tp + tn, tp + fp + tn + fn),
    }


def scores(pred: torch.Tensor, target: torch.Tensor, threshold: float = THRESHOLD) -> dict[str, dict[str, float]]:
    """Both averaging modes for one batch or set: {"per_image": {...}, "micro": {...}}."""
    acc = ScoreAccumulator(threshold)
    acc.update(pred, target)
    return acc.compute()


class ScoreAccumulator:
    """Accumulates counts over batches; `compute()` gives both averaging modes.

    Per-image scores do not depend on the batch size (each image is scored alone), so the
    paper's validation batch size 1 and any other give the same `per_image` numbers.
    """

    def __init__(self, threshold: float = THRESHOLD, eps: float = EPS):
        self.threshold = threshold
        self.eps = eps
        self._counts: list[torch.Tensor] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self._counts.append(stat_scores(pred, target, self.threshold).cpu())

    @property
    def count(self) -> int:
        return sum(int(c.shape[0]) for c in self._counts)

    def compute(self) -> dict[str, dict[str, float]]:
        counts = self._all()
        per = per_image_from_counts(counts, self.eps)
        return {
            "per_image": {k: float(v.mean()) for k, v in per.items()},
            "micro": micro_from_counts(counts.sum(0)),
        }

    def per_image(self) -> list[dict[str, float]]:
        """Each scored image's five scores, in the order scored (issue 22 s2: the per-image
        rows every paired interval of the report is computed from). The mean of a column is
        `compute()["per_image"]`'s value."""
        per = per_image_from_counts(self._all(), self.eps)
        return [dict(zip(per, map(float, vals), strict=True)) for vals in zip(*per.values(), strict=True)]

    def _all(self) -> torch.Tensor:
        if not self._counts:
            raise ValueError("no images were scored (empty evaluation set)")
        return torch.cat(self._counts)


def flat(result: Mapping[str, Mapping[str, float]], prefix: str = "") -> dict[str, float]:
    """{"per_image": {"iou": x}} -> {"<prefix>per_image.iou": x} (MLflow keys, CSV columns)."""
    return {f"{prefix}{mode}.{name}": float(v) for mode, d in result.items() for name, v in d.items()}
