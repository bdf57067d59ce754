"""Segmentation scores on hand-made predictions, both averaging modes (paper.md section 4)."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_f1_score,
    binary_jaccard_index,
    binary_precision,
    binary_recall,
)

from pipeline.segment.scores import EPS, SCORES, ScoreAccumulator, scores


def two_channel(prob_polyp: torch.Tensor) -> torch.Tensor:
    """A softmax-like (N, 2, H, W) output from a polyp probability map."""
    return torch.stack([1 - prob_polyp, prob_polyp], dim=1)


def test_perfect_prediction_scores_one_in_both_modes():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, 2:5, 3:7] = 1
    target[1, :4] = 1
    res = scores(two_channel(target.float()), target)
    for mode in ("per_image", "micro"):
        for name in SCORES:
            assert res[mode][name] == pytest.approx(1.0, abs=1e-12), (mode, name)


def test_empty_prediction_on_empty_mask_scores_about_one_per_image():
    # paper.md section 4: with eps = 1e-7 an empty/empty image scores ~1, not 0 or NaN
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    res = scores(two_channel(torch.zeros(1, 6, 6)), target)
    for name in SCORES:
        assert res["per_image"][name] == pytest.approx(1.0, abs=1e-12), name
    # micro: no positives anywhere -> the ratios with 0/0 are 0 (torchmetrics' zero_division),
    # accuracy is exact
    assert res["micro"]["iou"] == 0.0 and res["micro"]["precision"] == 0.0
    assert res["micro"]["accuracy"] == 1.0


def test_inverted_prediction_scores_zero():
    target = torch.zeros(1, 4, 6, dtype=torch.long)
    target[0, :, :3] = 1
    res = scores(two_channel((1 - target).float()), target)
    n_pos = int(target.sum())
    n_neg = target.numel() - n_pos
    # TP = 0, FP = n_neg, FN = n_pos: each eps-score is eps / (something + eps)
    assert res["per_image"]["iou"] == pytest.approx(EPS / (n_pos + n_neg + EPS))
    assert res["per_image"]["f1"] == pytest.approx(EPS / (n_pos + n_neg + EPS))
    assert res["per_image"]["precision"] == pytest.approx(EPS / (n_neg + EPS))
    assert res["per_image"]["recall"] == pytest.approx(EPS / (n_pos + EPS))
    assert res["per_image"]["accuracy"] == 0.0
    for name in SCORES:
        assert res["micro"][name] == 0.0, name


def test_worked_partial_case_by_hand_both_modes():
    # Image 0, 4x4: the mask is the top-left 2x2 block (4 px); the prediction is the whole
    # top row (4 px). Counting by hand: TP = 2 (row 0, cols 0-1), FP = 2 (row 0, cols 2-3),
    # FN = 2 (row 1, cols 0-1), TN = 16 - 6 = 10.
    # Image 1, 4x4: empty mask, empty prediction (TN = 16).
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, :2, :2] = 1
    prob = torch.full((2, 4, 4), 0.2)
    prob[0, 0, :] = 0.9
    tp, fp, fn, tn = 2, 2, 2, 10
    img0 = {
        "iou": (tp + EPS) / (tp + fp + fn + EPS),
        "f1": (2 * tp + EPS) / (2 * tp + fp + fn + EPS),
        "precision": (tp + EPS) / (tp + fp + EPS),
        "recall": (tp + EPS) / (tp + fn + EPS),
        "accuracy": (tp + tn) / 16,
    }
    img1 = dict.fromkeys(SCORES, 1.0)  # empty/empty: eps/eps and 16/16
    res = scores(two_channel(prob), target)
    for name in SCORES:
        assert res["per_image"][name] == pytest.approx((img0[name] + img1[name]) / 2, rel=1e-12), name
    # micro: image 1 adds only 16 true negatives
    micro = {
        "iou": tp / (tp + fp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "accuracy": (tp + tn + 16) / 32,
    }
    for name in SCORES:
        assert res["micro"][name] == pytest.approx(micro[name], rel=1e-12), name
    # the two modes really differ here: the empty image lifts the per-image mean
    assert res["per_image"]["iou"] > res["micro"]["iou"] + 0.3


def test_threshold_is_strict_and_polyp_channel_only():
    target = torch.ones(1, 1, 2, dtype=torch.long)
    prob = torch.tensor([[[0.5, 0.5000001]]])
    res = scores(two_channel(prob), target)
    # 0.5 is not > 0.5 (smp.utils `_threshold`): one TP, one FN
    assert res["micro"]["recall"] == pytest.approx(0.5)
    # the background channel is ignored: a bogus background map changes nothing
    bogus = torch.stack([torch.full_like(prob, 0.99), prob], dim=1)
    assert scores(bogus, target) == res


def test_micro_agrees_with_torchmetrics_global_and_batching_does_not_matter():
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(6, 16, 16, generator=g)
    target = (torch.rand(6, 16, 16, generator=g) > 0.6).long()
    res = scores(prob, target)
    ref = {
        "iou": binary_jaccard_index(prob, target, threshold=0.5),
        "f1": binary_f1_score(prob, target, threshold=0.5),
        "precision": binary_precision(prob, target, threshold=0.5),
        "recall": binary_recall(prob, target, threshold=0.5),
        "accuracy": binary_accuracy(prob, target, threshold=0.5),
    }
    for name in SCORES:
        assert res["micro"][name] == pytest.approx(float(ref[name]), rel=1e-6), name
    acc = ScoreAccumulator()
    for i in range(0, 6, 4):
        acc.update(prob[i : i + 4], target[i : i + 4])
    batched = acc.compute()
    for mode in ("per_image", "micro"):
        for name in SCORES:
            assert batched[mode][name] == pytest.approx(res[mode][name], rel=1e-12)
    # per image = mean of single-image scores
    singles = [scores(prob[i : i + 1], target[i : i + 1])["per_image"]["iou"] for i in range(6)]
    assert res["per_image"]["iou"] == pytest.approx(sum(singles) / 6, rel=1e-12)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="shape"):
        scores(torch.rand(1, 4, 4), torch.zeros(1, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="0 and 1"):
        scores(torch.rand(1, 4, 4), torch.full((1, 4, 4), 255))
    with pytest.raises(ValueError, match="channels"):
        scores(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        ScoreAccumulator().compute()
