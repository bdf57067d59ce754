"""The segmentation claims decided from per-image rows by intervals (pipeline/report/claims.py)."""

import numpy as np
import pandas as pd

from pipeline.report.claims import claims_frame, gate, load_per_image, synthetic_close_to_real
from pipeline.results.verdicts import HOLDS, Bootstrap

BOOT = Bootstrap(resamples=500, seed=0)


def rows(means, grid="A", n=None, seeds=3, folds=3, images=30, rng=None, test_set="test"):
    rng = rng or np.random.default_rng(0)
    diff = rng.beta(4, 2, size=(folds, images))
    out = []
    for exp, m in means.items():
        for f in range(folds):
            for s in range(1 if exp.startswith("TRIVIAL") else seeds):
                v = m / 0.667 * diff[f] + rng.normal(0, 0.05, images)
                for p in ("paper", "clean"):
                    out += [{"grid": grid, "experiment": exp, "protocol": p, "fold": f, "n": n, "seed": s,
                             "image_id": f"{f}_{i}", "iou": v[i], "test_set": test_set} for i in range(images)]
    return out


def test_gate_and_close_to_real_from_per_image_rows():
    good = pd.DataFrame(rows({"REAL": 0.75, "TRIVIAL_DISK": 0.3, "FAKE_1": 0.74}))
    assert gate(good, "paper", BOOT)[0] == HOLDS
    c = synthetic_close_to_real(good, BOOT)
    assert c.verdict == HOLDS and "[" in c.protocols["paper protocol"]
    weak = pd.DataFrame(rows({"REAL": 0.3, "TRIVIAL_DISK": 0.25, "FAKE_1": 0.3}))
    c = synthetic_close_to_real(weak, BOOT)
    assert "segmenter too weak" in c.verdict and "REAL IoU 0.29" in c.verdict


def test_claims_read_the_grids_own_test_folds_not_the_largest_set():
    """An external test set with more images (and a weak REAL on it) must not decide the gate:
    the claims read `MAIN_TEST` rows only."""
    own = rows({"REAL": 0.75, "TRIVIAL_DISK": 0.3, "FAKE_1": 0.74})
    external = rows({"REAL": 0.3, "TRIVIAL_DISK": 0.3, "FAKE_1": 0.3}, images=60, test_set="cvc",
                    rng=np.random.default_rng(1))
    external = [r for r in external if not r["experiment"].startswith("TRIVIAL")]
    v, ev = gate(pd.DataFrame(own + external), "paper", BOOT)
    assert v == HOLDS and "REAL IoU 0.7" in ev


def test_claims_without_per_image_scores_are_not_testable(tmp_path):
    out = claims_frame(load_per_image(tmp_path), {}, set(), boot=BOOT)
    assert len(out) == 5 and "no per-image scores" in out.verdict.iloc[0]
    assert "no per-image scores" in out.verdict.iloc[3] and "no per-image scores" in out.verdict.iloc[4]
