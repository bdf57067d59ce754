"""UNet++ training: the loss, learning on real pairs, model selection per protocol, the stage."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from helpers import PARAMS, TINY_MODEL, TINY_TRAIN, fold_of, make_project

from pipeline.segment.__main__ import main
from pipeline.segment.config import GridAParams, GridBParams, SegmentParams, TrainParams
from pipeline.segment.data import PairDataset
from pipeline.segment.experiments import resolve
from pipeline.segment.model import build_model, weights_provenance
from pipeline.segment.run import PER_IMAGE_COLUMNS, output_paths, per_image_path, run_experiment
from pipeline.segment.train import evaluate, fit, make_loss, seed_everything, smp_utils_dice_loss
from singanseg.io import list_pairs
from singanseg.typed import ConfigError


def test_dice_losses_agree_where_a_batch_has_polyp_pixels():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 8, 8, generator=g)
    target = (torch.rand(3, 8, 8, generator=g) > 0.5).long()
    ours = smp_utils_dice_loss(logits, target)
    # the formula by hand: 1 - (2 sum(gt*pr) + 1) / (sum gt + sum pr + 1) on the softmax polyp map
    pr = logits.softmax(1)[:, 1]
    gt = target.float()
    assert float(ours) == pytest.approx(float(1 - (2 * (gt * pr).sum() + 1) / (gt.sum() + pr.sum() + 1)), rel=1e-6)
    assert float(make_loss("smp_losses")(logits, target)) == pytest.approx(float(ours), rel=1e-5)
    # the one named difference (docs/deviations/segment.md): a batch with no polyp pixel
    empty = torch.zeros_like(target)
    assert float(make_loss("smp_losses")(logits, empty)) == 0.0
    assert float(smp_utils_dice_loss(logits, empty)) > 0.5


@pytest.mark.shared_data
def test_tiny_unetpp_on_real_pairs_lowers_the_loss(kvasir_dir):
    pairs = list_pairs(kvasir_dir)[:8]
    params = TrainParams(epochs=6, batch_size=4, img_size=64, pyra_size=64, lr=1e-3, lr_change_epoch=100)
    train_ds = PairDataset(pairs, 64, train=True, pyra_size=64, seed=0, name="kvasir train")
    plain = PairDataset(pairs, 64, pyra_size=64, name="kvasir eval")
    seed_everything(0)
    model = build_model(TINY_MODEL)
    loss_fn = make_loss("smp_losses")
    before = evaluate(model, plain, 4, torch.device("cpu"), loss_fn)["loss"]
    result = fit(model, train_ds, plain, params, seed=0)
    after = evaluate(model, plain, 4, torch.device("cpu"), loss_fn)["loss"]
    assert after < before - 0.05, (before, after)
    # the returned model is the selected one: its IoU is the best IoU of the curve
    ious = [r["val_per_image_iou"] for r in result.curves]
    assert result.best_epoch == 1 + ious.index(max(ious))
    assert evaluate(model, plain, 1, torch.device("cpu"))["scores"]["per_image"]["iou"] == pytest.approx(max(ious), abs=1e-6)
    assert weights_provenance(TINY_MODEL) == "random-init"


def test_equal_steps_train_every_set_the_same_number_of_steps(tmp_path):
    """issue 22 s4: `steps` trains exactly that many optimiser steps whatever the set's size
    (passes cut short), validating every `val_every` passes and after the last."""
    make_project(tmp_path, size=32)
    pairs = list_pairs(tmp_path / "data/real")
    params = dataclasses.replace(TINY_TRAIN, batch_size=2, val_every=2, lr_change_epoch=1, epochs=2)
    val = PairDataset(pairs[:2], 32, pyra_size=None)
    counts = {}
    for n in (3, 7):  # 2 and 4 batches a pass (drop_last on a last batch of one)
        ds = PairDataset(pairs[:n], 32, train=True, pyra_size=None, seed=0)
        seed_everything(0)
        res = fit(build_model(TINY_MODEL), ds, val, params, seed=0, steps=9)
        counts[n] = [r["steps"] for r in res.curves]
        assert res.curves[-1]["steps"] == 9
        validated = [r["epoch"] for r in res.curves if "val_per_image_iou" in r]
        assert validated == [e for e in range(1, len(res.curves) + 1) if e % 2 == 0 or e == len(res.curves)]
        # the lr drops after the same fraction of the steps as lr_change_epoch of epochs (1 of 2)
        assert [r["lr"] for r in res.curves][-1] == params.lr_after
    assert counts[3][:2] == [1, 2] and counts[7][:2] == [3, 6]
    with pytest.raises(ConfigError, match="steps"):
        fit(build_model(TINY_MODEL), ds, val, params, steps=0)


@pytest.mark.parametrize("name,fold", [("A/REAL+FAKE_1", 1), ("B/FAKE_N2", 0)])
def test_selection_loop_sees_test_only_under_paper_protocol(tmp_path, name, fold):
    make_project(tmp_path, size=32)
    folds = fold_of(tmp_path)
    seen = {}
    for protocol in ("paper", "clean"):
        sp = resolve(name, fold, protocol, PARAMS, tmp_path)
        test_ids = {p.id for p in sp.test}
        assert test_ids == {i for i, f in folds.items() if f in sp.test_folds}
        train_ds = PairDataset(sp.train, 32, train=True, pyra_size=None, seed=0)
        val_ds = PairDataset(sp.val, 32, pyra_size=None)
        seed_everything(0)
        result = fit(build_model(TINY_MODEL), train_ds, val_ds, TINY_TRAIN, seed=0)
        seen[protocol] = result
        # what the loop trained on never touches the test images, nor their SinGANs
        assert not ({i.rsplit("_", 1)[0] for i in result.train_ids_seen} | result.train_ids_seen) & test_ids
    # paper: validation = exactly the held-out test set, as the authors (paper.md section 5)
    assert seen["paper"].val_ids_seen == {p.id for p in resolve(name, fold, "paper", PARAMS, tmp_path).test}
    # clean: model selection never evaluated a test image
    assert seen["clean"].val_ids_seen
    assert not seen["clean"].val_ids_seen & seen["paper"].val_ids_seen


def test_stage_writes_metrics_curves_and_mlflow_runs(tmp_path, mlflow_uri, monkeypatch):
    make_project(tmp_path, n_per_fold=(4, 3, 3), size=32, synthetic=("singan_st1to1000",), samples=2)
    params = SegmentParams(
        model=TINY_MODEL,
        train_rich=TINY_TRAIN,
        train_scarce=TINY_TRAIN,
        grid_a=GridAParams(experiments=("REAL", "FAKE_2_ST1to1000"), folds=(0,)),
        grid_b=GridBParams(kinds=("REAL",), n_values=(2,), samples_per_image=2),
        clean_val_fraction=0.25,
        extra_test={"cvc_like": str(tmp_path / "data/real")},
    )
    monkeypatch.chdir(tmp_path)
    rec = run_experiment("A/FAKE_2_ST1to1000", 0, params, root=tmp_path, profile="test")
    json_path, curves = output_paths(params, "A/FAKE_2_ST1to1000", 0, 0, tmp_path)
    on_disk = json.loads(json_path.read_text())
    # the record on disk is the returned one without the wall seconds, which go to the
    # fold0.timing.json sidecar (outside the folder's DVC hash)
    rec = json.loads(json.dumps(rec))
    seconds = {p: r.pop("seconds") for p, r in rec["protocols"].items()}
    assert on_disk == rec
    timing = json.loads(json_path.with_name("fold0_seed0.timing.json").read_text())
    assert timing["seconds"] == seconds and all(v >= 0 for v in seconds.values())
    assert on_disk["provenance"]["encoder_weights"] == "random-init"
    assert on_disk["train_folds"] == [1, 2] and on_disk["test_folds"] == [0]
    for protocol in ("paper", "clean"):
        r = on_disk["protocols"][protocol]
        assert set(r["test"]) == {"per_image", "micro"}
        assert set(r["test"]["micro"]) == {"iou", "f1", "precision", "recall", "accuracy"}
        assert 1 <= r["best_epoch"] <= TINY_TRAIN.epochs
        assert r["test_size"] == 4 and r["extra_test"]["cvc_like"]["size"] == 10
        assert r["val_is_test"] is (protocol == "paper")
        rows = (curves / f"{protocol}.csv").read_text().splitlines()
        assert len(rows) == 1 + TINY_TRAIN.epochs and "val_per_image_iou" in rows[0]
    # clean trains on fewer SinGANs: the validation images' samples are left out
    assert on_disk["protocols"]["clean"]["train_size"] < on_disk["protocols"]["paper"]["train_size"]
    # issue 22 s2: every test image's scores, per protocol and test set; their means are the record's
    import pandas as pd

    per = pd.read_csv(per_image_path(json_path), dtype={"image_id": str})
    assert list(per.columns) == list(PER_IMAGE_COLUMNS)
    assert len(per) == 2 * (4 + 10) and set(per.seed) == {0} and set(per.fold) == {0}
    for (protocol, test_set), g in per.groupby(["protocol", "test_set"]):
        r = on_disk["protocols"][protocol]
        want = r["test"]["per_image"] if test_set == "test" else r["extra_test"][test_set]["scores"]["per_image"]
        assert g.iou.mean() == pytest.approx(want["iou"], abs=1e-6)
        assert g.dice.mean() == pytest.approx(want["f1"], abs=1e-6)
        assert g.image_id.is_unique

    import mlflow

    runs = mlflow.search_runs(experiment_names=["singanseg"], output_format="list")
    names = {r.info.run_name for r in runs}
    assert {"segment/A/FAKE_2_ST1to1000/fold0_seed0", "segment/A/FAKE_2_ST1to1000/fold0_seed0/paper"} <= names
    child = next(r for r in runs if r.info.run_name.endswith("/paper"))
    hist = mlflow.MlflowClient().get_metric_history(child.info.run_id, "train_loss")
    assert sorted(m.step for m in hist) == list(range(1, TINY_TRAIN.epochs + 1))


def test_cli_lists_runs_and_names_missing_synthetic_data(tmp_path, monkeypatch, capsys):
    make_project(tmp_path, synthetic=())
    (tmp_path / "params.yaml").write_text(
        "profile: smoke\n"
        "segment:\n  track: false\n  model: {encoder_weights: null}\n"
        "profiles:\n  smoke:\n    segment:\n"
        "      grid_a: {experiments: [REAL, FAKE_1], folds: [0, 1]}\n"
        "      grid_b: {kinds: [FAKE], n_values: [2]}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert [line for line in listed if line] == ["A/REAL 0", "A/REAL 1", "A/FAKE_1 0", "A/FAKE_1 1", "B/FAKE_N2 0"]
    assert main(["--experiment", "A/FAKE_1", "--fold", "1"]) == 2
    err = capsys.readouterr().err
    assert "A/FAKE_1" in err and "synthetic/singan/gss0 not found" in err
    # a whole grid fails before any training when one of its runs lacks inputs
    assert main(["--grid", "A"]) == 2
    assert "A/FAKE_1" in capsys.readouterr().err
    assert not (tmp_path / "metrics/segmentation/A/REAL").exists()


def test_augmentation_option_is_validated_and_none_trains_on_unaugmented_images(tmp_path, monkeypatch):
    from pipeline.segment import run as run_mod

    with pytest.raises(ConfigError, match="augmentation"):
        dataclasses.replace(TINY_TRAIN, augmentation="heavy").validate("segment.train_rich")
    make_project(tmp_path, size=32, synthetic=())
    seen = []
    real_fit = run_mod.fit

    def spy(model, train_ds, val_ds, params, **kw):
        seen.append(train_ds)
        return real_fit(model, train_ds, val_ds, params, **kw)

    monkeypatch.setattr(run_mod, "fit", spy)
    for aug in ("paper", "none"):
        tp = dataclasses.replace(TINY_TRAIN, epochs=1, augmentation=aug)
        params = dataclasses.replace(PARAMS, model=TINY_MODEL, train_rich=tp, protocols=("paper",), track=False)
        run_mod.run_protocol(resolve("A/REAL", 0, "paper", params, tmp_path), params, seed=0)
    paper, none = seen
    # the paper's pipeline is random (two reads differ); `none` is the validation resize (equal)
    assert not torch.equal(paper[0][0], paper[0][0])
    assert torch.equal(none[0][0], none[0][0])


def test_dice_ce_adds_the_cross_entropy_to_the_same_dice():
    """train_*.loss: dice_ce = the Dice of `dice_loss` + pixel-wise cross-entropy (our option)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 8, 8, generator=g)
    target = (torch.rand(2, 8, 8, generator=g) > 0.6).long()
    for kind in ("smp_losses", "smp_utils"):
        dice = float(make_loss(kind)(logits, target))
        both = float(make_loss(kind, "dice_ce")(logits, target))
        ce = float(torch.nn.functional.cross_entropy(logits, target))
        assert both == pytest.approx(dice + ce, rel=1e-6) and ce > 0.1
    with pytest.raises(ConfigError, match="loss"):
        make_loss("smp_losses", "focal")
    with pytest.raises(ConfigError, match="loss"):
        TrainParams(loss="focal").validate("segment.train_rich")


def test_channels_last_trains_the_same_network_up_to_rounding(tmp_path):
    """train_*.memory_format: channels_last changes the layout, not the arithmetic: the same
    seed gives the same curve and weights up to float rounding, and the weights come back NHWC."""
    make_project(tmp_path, size=32)
    pairs = list_pairs(tmp_path / "data/real")
    # no augmentation: a dataset's augmentation stream advances with use, the layout must not
    ds = PairDataset(pairs[:4], 32, pyra_size=None)
    val = PairDataset(pairs[4:6], 32, pyra_size=None)
    out = {}
    for fmt in ("contiguous", "channels_last"):
        params = dataclasses.replace(TINY_TRAIN, batch_size=2, epochs=2, lr_change_epoch=1, memory_format=fmt)
        seed_everything(0)
        model = build_model(TINY_MODEL)
        res = fit(model, ds, val, params, seed=0)
        out[fmt] = (res.curves, res.state, model)
    (c0, s0, _), (c1, s1, m1) = out["contiguous"], out["channels_last"]
    assert [r["train_loss"] for r in c1] == pytest.approx([r["train_loss"] for r in c0], rel=1e-4, abs=1e-5)
    for k, v in s0.items():
        assert torch.allclose(s1[k].float(), v.float(), rtol=1e-3, atol=1e-4), k
    conv = next(m for m in m1.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
