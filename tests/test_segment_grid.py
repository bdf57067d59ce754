"""The grid runner behind `segment@A` / `segment@B`: every run once, resumable, no stale results."""

from __future__ import annotations

import dataclasses
import json

from helpers import TINY_MODEL, TINY_TRAIN, make_project

from pipeline.segment.config import GridAParams, GridBParams, SegmentParams
from pipeline.segment.grid import run_grid
from singanseg.io import write_png

TRIVIAL = ["TRIVIAL_BACKGROUND", "TRIVIAL_MEAN_MASK", "TRIVIAL_TUNED_MASK"]


def test_grid_runs_each_experiment_once_and_resumes(tmp_path):
    make_project(tmp_path, n_per_fold=(4, 3, 3), size=32, synthetic=("singan",), samples=1)
    params = SegmentParams(
        model=TINY_MODEL, train_rich=TINY_TRAIN, train_scarce=TINY_TRAIN,
        grid_a=GridAParams(experiments=("REAL", "FAKE_1"), folds=(0, 1)),
        grid_b=GridBParams(kinds=("REAL",), n_values=(2,), samples_per_image=1),
        protocols=("paper",), clean_val_fraction=0.25, track=False,
    )  # fmt: skip
    lines = []
    first = run_grid("A", params, root=tmp_path, log=lines.append)
    assert (first["runs"], first["trained"], first["skipped"]) == (4, 4, 0)
    out = tmp_path / "metrics/segmentation/A"
    # beside the experiments, the trivial segmenters' rows (pipeline/segment/trivial.py)
    assert sorted(p.name for p in out.iterdir()) == ["FAKE_1", "REAL", *TRIVIAL]
    rec = json.loads((out / "REAL" / "fold1_seed0.json").read_text())
    assert rec["test_folds"] == [1] and len(rec["fingerprint"]) == 16
    # a rerun with nothing changed trains nothing
    assert run_grid("A", params, root=tmp_path, log=lines.append)["skipped"] == 4
    # a changed synthetic image retrains exactly the runs that train on it (FAKE_1, fold 1: r00 is in fold 0)
    img = tmp_path / "synthetic/singan/gss0/images/r00_0.png"
    write_png(img, (255 - __import__("numpy").zeros((32, 32, 3), "uint8")))
    again = run_grid("A", params, root=tmp_path, log=lines.append)
    assert (again["trained"], again["skipped"]) == (1, 3)
    assert any("A/FAKE_1 fold 1 seed 0: paper IoU" in line for line in lines)
    # issue 22 s3: a second seed trains every cell once more and keeps the first seed's results
    seeded = dataclasses.replace(params, seeds=(0, 1))
    assert (run_grid("A", seeded, root=tmp_path, log=lines.append)["trained"]) == 4
    assert sorted(p.name for p in (out / "REAL").glob("*.json")) == [
        f"fold{f}_seed{s}{t}" for f in (0, 1) for s in (0, 1) for t in (".json", ".timing.json")]
    # and dropping it again removes its results (JSON, per-image CSV, curves), trains nothing
    assert run_grid("A", params, root=tmp_path, log=lines.append)["trained"] == 0
    assert not list(out.glob("*/*seed1*"))
    # shrinking the grid removes the results of experiments that left it
    smaller = SegmentParams(**{**params.__dict__, "grid_a": GridAParams(experiments=("REAL",), folds=(0, 1))})
    run_grid("A", smaller, root=tmp_path, log=lines.append)
    assert sorted(p.name for p in out.iterdir()) == ["REAL", *TRIVIAL]


def _tiny(**kw):
    return SegmentParams(
        model=TINY_MODEL, train_rich=TINY_TRAIN, train_scarce=TINY_TRAIN,
        grid_a=GridAParams(experiments=("REAL",), folds=(0,)),
        grid_b=GridBParams(kinds=("REAL",), n_values=(2,), samples_per_image=1),
        protocols=("paper",), clean_val_fraction=0.25, track=False, **kw,
    )  # fmt: skip


def test_stale_cells_are_judged_per_folder(tmp_path):
    """A cell name active in one experiment's folder keeps nothing of that name elsewhere: the
    trivial rows live under the first seed only, so a seed-1 file planted beside them is stale
    although REAL's `fold0_seed1` is active."""
    make_project(tmp_path, n_per_fold=(4, 3, 3), size=32, synthetic=("singan",), samples=1)
    params = _tiny(seeds=(0, 1))
    run_grid("A", params, root=tmp_path, log=lambda m: None)
    out = tmp_path / "metrics/segmentation/A"
    stray = out / "TRIVIAL_MEAN_MASK" / "fold0_seed1.json"
    stray.write_text((out / "TRIVIAL_MEAN_MASK" / "fold0_seed0.json").read_text())
    (out / "TRIVIAL_MEAN_MASK" / "fold0_seed1_per_image.csv").write_text("grid\n")
    lines = []
    assert run_grid("A", params, root=tmp_path, log=lines.append)["trained"] == 0
    assert not list((out / "TRIVIAL_MEAN_MASK").glob("*seed1*"))
    assert (out / "REAL" / "fold0_seed1.json").is_file()
    assert any("TRIVIAL_MEAN_MASK/fold0_seed1.json" in line and "removed" in line for line in lines)


def test_extra_test_sets_score_grid_a_only(tmp_path):
    """segment.extra_test scores grid A's models (issue 22 s5); grid B's cells neither score it
    nor retrain when it changes, and predictions only enter the one cell that writes them."""
    from pipeline.segment.grid import fingerprint

    make_project(tmp_path, n_per_fold=(4, 3, 3), size=32, synthetic=("singan",), samples=1)
    extra = tmp_path / "cvc"
    for i in range(3):
        write_png(extra / "images" / f"c{i}.png", __import__("numpy").full((32, 32, 3), 40 * i, "uint8"))
        write_png(extra / "masks" / f"c{i}.png", __import__("numpy").zeros((32, 32), "uint8"))
    plain, scored = _tiny(), _tiny(extra_test={"cvc": str(extra)})
    assert fingerprint("B/REAL_N2", 0, plain, tmp_path) == fingerprint("B/REAL_N2", 0, scored, tmp_path)
    assert fingerprint("A/REAL", 0, plain, tmp_path) != fingerprint("A/REAL", 0, scored, tmp_path)
    more = dataclasses.replace(plain, predictions=plain.predictions + 2)
    assert fingerprint("A/REAL", 0, plain, tmp_path) != fingerprint("A/REAL", 0, more, tmp_path)
    assert fingerprint("A/REAL", 0, plain, tmp_path, seed=1) == fingerprint(
        "A/REAL", 0, more, tmp_path, seed=1)  # seed 1 writes no predictions
    run_grid("A", scored, root=tmp_path, log=lambda m: None)
    run_grid("B", scored, root=tmp_path, log=lambda m: None)
    out = tmp_path / "metrics/segmentation"
    a = (out / "A" / "REAL" / "fold0_seed0_per_image.csv").read_text()
    b = "".join(p.read_text() for p in (out / "B").rglob("fold*_per_image.csv"))
    assert ",cvc," in a and ",test," in a
    assert b and ",cvc," not in b and ",test," in b
