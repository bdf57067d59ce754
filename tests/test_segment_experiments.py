"""Experiment names -> splits: protocols, leakage, bad input (no training here)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import PARAMS, fold_of, make_project

from pipeline.segment.config import GridAParams, PathParams, SegmentParams
from pipeline.segment.experiments import ExperimentError, grid_runs, parse, resolve
from singanseg.io import write_png


def src_of(pair_id: str) -> str:
    return pair_id.rsplit("_", 1)[0]


def test_names_parse_and_grid_lists_every_run():
    p = SegmentParams()
    runs = grid_runs(p)
    gb = p.grid_b
    expected = len(p.grid_a.experiments) * len(p.grid_a.folds) + len(gb.kinds) * len(gb.n_values)
    assert len(runs) == len(set(runs)) == expected
    e = parse("A/REAL+FAKE_4_ST1to1000")
    assert (e.use_real, e.source, e.samples) == (True, "singan_st1to1000", 4)
    e = parse("B/FAKE_N15")
    assert (e.use_real, e.source, e.samples, e.n_real) == (False, "singan_st1to1000", gb.samples_per_image, 15)
    e = parse("B/REAL+FASTGAN_N5")
    assert (e.use_real, e.source, e.samples) == (True, "fastgan", gb.samples_per_image * 5)
    for bad in ("A/FAKE_0", "C/REAL", "B/REAL+REAL_N5", "A/FAKE_2_ST", "REAL"):
        with pytest.raises(ExperimentError, match="unknown name"):
            parse(bad)
    with pytest.raises(ExperimentError, match="A/FAKE_x"):
        grid_runs(SegmentParams(grid_a=GridAParams(experiments=("REAL", "FAKE_x"))))


def test_paper_protocol_validates_on_exactly_the_test_fold(tmp_path):
    make_project(tmp_path)
    folds = fold_of(tmp_path)
    for f in (0, 1, 2):
        sp = resolve("A/REAL", f, "paper", PARAMS, tmp_path)
        test_ids = [i for i, g in folds.items() if g == f]
        assert [p.id for p in sp.val] == [p.id for p in sp.test] == test_ids
        assert sorted(p.id for p in sp.train) == sorted(i for i, g in folds.items() if g != f)
        assert sp.test_folds == [f]
    # grid B: the first N of fold 0, validated = tested on folds 1 + 2 (999_*_fold_0_val_folds_1_2)
    sp = resolve("B/REAL_N3", 0, "paper", PARAMS, tmp_path)
    fold0 = [i for i, g in folds.items() if g == 0]
    assert [p.id for p in sp.train] == fold0[:3]
    assert [p.id for p in sp.val] == [p.id for p in sp.test] == [i for i, g in folds.items() if g != 0]


@pytest.mark.parametrize("name", ["A/REAL", "A/FAKE_2", "A/REAL+FAKE_1_ST1to1000", "B/REAL+FAKE_N2"])
def test_clean_protocol_keeps_test_and_validation_apart(tmp_path, name):
    make_project(tmp_path)
    folds = fold_of(tmp_path)
    fold = 1 if name.startswith("A") else 0
    sp = resolve(name, fold, "clean", PARAMS, tmp_path)
    test = {p.id for p in sp.test}
    val = {p.id for p in sp.val}
    train_sources = {src_of(p.id) if "_" in p.id else p.id for p in sp.train}
    assert test == {i for i, g in folds.items() if g in sp.test_folds}
    assert val and not (val & test)
    # no training image, real or synthetic (through its SinGAN), comes from val or test images
    assert not (train_sources & (val | test))
    assert all(folds[i] in sp.train_folds for i in val)


def test_synthetic_comes_only_from_training_ids_and_first_k_samples(tmp_path):
    make_project(tmp_path, samples=3)
    folds = fold_of(tmp_path)
    sp = resolve("A/FAKE_2_ST1to1000", 0, "paper", PARAMS, tmp_path)
    train_ids = [i for i, g in folds.items() if g != 0]
    assert sorted(p.id for p in sp.train) == sorted(f"{i}_{n}" for i in train_ids for n in range(2))
    assert all("singan_st1to1000" in str(p.image) for p in sp.train)
    sp = resolve("A/REAL+FAKE_1", 2, "paper", PARAMS, tmp_path)
    real_train = [i for i, g in folds.items() if g != 2]
    assert len(sp.train) == 2 * len(real_train)
    assert {src_of(p.id) for p in sp.train if "_" in p.id} == set(real_train)


def test_missing_synthetic_data_names_the_experiment(tmp_path):
    make_project(tmp_path, synthetic=("singan",), samples=2)
    with pytest.raises(ExperimentError, match=r"A/FAKE_1_ST1to1 .*synthetic/singan_st1to1/gss0 not found"):
        resolve("A/FAKE_1_ST1to1", 0, "paper", PARAMS, tmp_path)
    with pytest.raises(ExperimentError, match=r"A/FAKE_3 .*missing.*_2\.png"):
        resolve("A/FAKE_3", 0, "paper", PARAMS, tmp_path)
    with pytest.raises(ExperimentError, match=r"B/FASTGAN_N2 .*synthetic/fastgan/n2 not found"):
        resolve("B/FASTGAN_N2", 0, "paper", PARAMS, tmp_path)


def test_baseline_set_is_read_by_sample_index(tmp_path):
    make_project(tmp_path, synthetic=())
    from singanseg.io import write_png as w

    for n in range(2 * PARAMS.grid_b.samples_per_image):
        w(tmp_path / f"synthetic/fastgan/n2/images/fastgan_{n}.png", np.zeros((8, 8, 3), np.uint8))
        w(tmp_path / f"synthetic/fastgan/n2/masks/fastgan_{n}.png", np.zeros((8, 8), np.uint8))
    sp = resolve("B/REAL+FASTGAN_N2", 0, "paper", PARAMS, tmp_path)
    assert len(sp.train) == 2 + 2 * PARAMS.grid_b.samples_per_image


def test_bad_folds_sizes_and_empty_sets_are_named(tmp_path):
    make_project(tmp_path, synthetic=())
    with pytest.raises(ExperimentError, match=r"A/REAL: fold 5 has no images"):
        resolve("A/REAL", 5, "paper", PARAMS, tmp_path)
    with pytest.raises(ExperimentError, match=r"B/REAL_N50: needs the first 50 images of fold 0"):
        resolve("B/REAL_N50", 0, "paper", PARAMS, tmp_path)
    # a mask of the wrong size is caught before training, naming both files
    write_png(tmp_path / "data/real/masks/r07.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(ExperimentError, match=r"A/REAL \(fold 0, train\): mask .*r07\.png is 12x10"):
        resolve("A/REAL", 0, "paper", PARAMS, tmp_path)
    (tmp_path / "data/folds.csv").write_text("id,fold\n")
    with pytest.raises(ExperimentError, match="folds.csv: no rows"):
        resolve("A/REAL", 0, "paper", PARAMS, tmp_path)
    empty = SegmentParams(paths=PathParams(folds="nope.csv"))
    with pytest.raises(ExperimentError, match="nope.csv: folds file not found"):
        resolve("A/REAL", 0, "paper", empty, tmp_path)


def test_drop_empty_synthetic_leaves_out_only_empty_mask_samples(tmp_path):
    """issue 23 s2: a named option, off by default (the paper kept empty-mask samples)."""
    import dataclasses

    make_project(tmp_path, synthetic=("singan",), samples=2)
    kept = resolve("A/FAKE_2", 0, "paper", PARAMS, tmp_path).train
    empty = kept[1]
    write_png(empty.mask, np.zeros((24, 24), np.uint8))
    assert resolve("A/FAKE_2", 0, "paper", PARAMS, tmp_path).train == kept  # default: kept
    dropped = resolve("A/FAKE_2", 0, "paper", dataclasses.replace(PARAMS, drop_empty_synthetic=True), tmp_path).train
    assert dropped == [p for p in kept if p != empty]
