"""Trivial segmenters scored by the UNet++ scoring code, and the report rows they make."""

import json

import numpy as np
import pytest

from pipeline.segment.config import GridBParams, SegmentParams
from pipeline.segment.trivial import run_trivial, score, trivial_runs
from singanseg.io import write_png


def project(root, n=9, size=32, square=(8, 24), other=None):
    """Real pairs r0..r{n-1} in 3 sequential folds; every mask holds the same square, except
    the ids in `other`, whose mask is the opposite corner."""
    rng = np.random.default_rng(0)
    rows = ["id,fold"]
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        a, b = square
        if other and f"r{i}" in other:
            mask[:6, :6] = 255
        else:
            mask[a:b, a:b] = 255
        write_png(root / "data/real/images" / f"r{i}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        write_png(root / "data/real/masks" / f"r{i}.png", mask)
        rows.append(f"r{i},{i * 3 // n}")
    (root / "data/folds.csv").write_text("\n".join(rows) + "\n")


PARAMS = SegmentParams(protocols=("paper",), grid_b=GridBParams(n_values=(2,), samples_per_image=1))


def test_mean_mask_predicts_the_shared_square_and_background_scores_zero(tmp_path):
    project(tmp_path)
    mean = run_trivial("A/TRIVIAL_MEAN_MASK", "A/REAL", 0, PARAMS, tmp_path)["protocols"]["paper"]["test"]
    assert mean["per_image"]["iou"] == pytest.approx(1.0)  # every test mask is the training square
    bg = run_trivial("A/TRIVIAL_BACKGROUND", "A/REAL", 0, PARAMS, tmp_path)["protocols"]["paper"]["test"]
    assert bg["per_image"]["iou"] < 1e-6 and bg["per_image"]["recall"] < 1e-6
    assert bg["per_image"]["accuracy"] == pytest.approx(1 - (16 * 16) / (32 * 32))
    rec = json.loads((tmp_path / "metrics/segmentation/A/TRIVIAL_MEAN_MASK/fold0_seed0.json").read_text())
    assert rec["grid"] == "A" and rec["provenance"]["encoder_weights"].startswith("none")
    # the wall seconds are in the (dvcignored) sidecar, not in the DVC-hashed result
    assert "seconds" not in rec["protocols"]["paper"]
    timing = json.loads((tmp_path / "metrics/segmentation/A/TRIVIAL_MEAN_MASK/fold0_seed0.timing.json").read_text())
    assert timing["seconds"]["paper"] >= 0


def test_mean_mask_thresholds_the_training_mean_at_one_half(tmp_path):
    # two of the six training masks (folds 1, 2) are elsewhere: the square still covers > 0.5
    project(tmp_path, other={"r3", "r6"})
    train_majority = run_trivial("A/TRIVIAL_MEAN_MASK", "A/REAL", 0, PARAMS, tmp_path)["protocols"]["paper"]
    assert train_majority["test"]["per_image"]["iou"] == pytest.approx(1.0)
    assert train_majority["train_size"] == 6


def test_grid_b_rows_use_the_first_n_of_the_train_fold(tmp_path):
    project(tmp_path, other={"r0"})
    runs = trivial_runs("B", PARAMS)
    assert ("B/TRIVIAL_MEAN_MASK_N2", "B/REAL_N2", 0) in runs
    rec = run_trivial("B/TRIVIAL_MEAN_MASK_N2", "B/REAL_N2", 0, PARAMS, tmp_path)
    # r0 (corner) and r1 (square): the mean is 0.5 everywhere they cover, never > 0.5
    assert rec["protocols"]["paper"]["train_size"] == 2
    assert rec["protocols"]["paper"]["test"]["per_image"]["recall"] < 1e-6


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown trivial"):
        score("TRIVIAL_MEDIAN", None, None)


def test_tuned_mask_picks_the_level_that_fits_the_training_masks_and_writes_per_image_rows(tmp_path):
    """issue 22 s2: half the training masks are the square and half the corner, so the mean is
    0.5 on both and the 0.5 threshold predicts nothing; the tuned level predicts both regions."""
    import pandas as pd

    project(tmp_path, other={"r3", "r4", "r5"})
    half = run_trivial("A/TRIVIAL_MEAN_MASK", "A/REAL", 0, PARAMS, tmp_path)["protocols"]["paper"]
    rec = run_trivial("A/TRIVIAL_TUNED_MASK", "A/REAL", 0, PARAMS, tmp_path)
    tuned = rec["protocols"]["paper"]
    assert half["test"]["per_image"]["iou"] < 1e-6
    assert tuned["level"] < 0.5
    # every test mask is the square (256 px); the prediction adds the 36 px corner
    assert tuned["test"]["per_image"]["iou"] == pytest.approx(256 / (256 + 36))
    per = pd.read_csv(tmp_path / "metrics/segmentation/A/TRIVIAL_TUNED_MASK/fold0_seed0_per_image.csv")
    assert sorted(per.image_id) == ["r0", "r1", "r2"] and set(per.test_set) == {"test"}
    assert per.iou.mean() == pytest.approx(tuned["test"]["per_image"]["iou"], abs=1e-6)
