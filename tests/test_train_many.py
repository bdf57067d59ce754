"""singanseg.train_many: one model per pair, skip finished, resume partial, isolate a broken pair."""

from __future__ import annotations

import argparse
import importlib.util
import json

import numpy as np
import pytest

from singanseg.config import preset
from singanseg.executors import ExecutorConfig
from singanseg.io import write_png
from singanseg.saved_model import read_model_json
from singanseg.train_many import _select_shard, add_train_many_command, image_seed, train_many
from singanseg.typed import ConfigError

TINY = dict(max_size=28, min_size=16, nfc=8, min_nfc=8, niter=3, lr_milestone=3)
TINY_SETS = [f"--set={k}={v}" for k, v in TINY.items()]


def _pair(root, name, rng, size=(32, 40), mask_size=None):
    h, w = size
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mh, mw = mask_size or size
    yy, xx = np.mgrid[:mh, :mw]
    mask = (((yy - mh / 2) ** 2 + (xx - mw / 2) ** 2) < (min(mh, mw) / 3) ** 2).astype(
        np.uint8
    ) * 255
    write_png(root / "images" / f"{name}.png", img)
    write_png(root / "masks" / f"{name}.png", mask)


@pytest.fixture()
def data(tmp_path):
    """Two good 40x32 pairs and one whose mask has another size."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    _pair(root, "a", rng)
    _pair(root, "b", rng)
    _pair(root, "c_broken", rng, mask_size=(24, 40))
    return root


def test_trains_all_skips_on_rerun_and_isolates_a_broken_pair(data, tmp_path):
    out = tmp_path / "models"
    cfg = preset("smoke", **TINY)
    first = train_many(data, out, cfg, seed=7, progress=False)
    assert [r.task_id for r in first.results] == ["a", "b", "c_broken"]
    assert [r.status for r in first.results] == ["done", "done", "failed"]
    bad = first.results[2]
    assert (
        "InputError" in bad.error and "c_broken.png" in bad.error and "mask is 40x24" in bad.error
    )
    assert first.ids("failed") == ["c_broken"] and "c_broken" in first.summary
    for image_id in ("a", "b"):
        meta = read_model_json(out / image_id)
        assert meta["complete"] and meta["seed"] == image_seed(7, image_id)
    assert not (out / "c_broken" / "model.json").exists()

    before = {i: (out / i / "model.json").read_bytes() for i in ("a", "b")}
    again = train_many(data, out, cfg, seed=7, progress=False)
    assert [r.status for r in again.results] == ["skipped", "skipped", "failed"]
    assert {i: (out / i / "model.json").read_bytes() for i in ("a", "b")} == before  # untouched
    record = json.loads(again.record.read_text())
    assert [r["status"] for r in record["results"]] == ["skipped", "skipped", "failed"]
    assert record["summary"] == again.summary
    # the rerun that skipped everything keeps the history: when the models were trained
    runs = record["runs"]
    assert [(r["trained"], r["skipped"], r["failed"]) for r in runs] == [(2, 0, 1), (0, 2, 1)]
    assert runs[0]["summary"] == first.summary and runs[0]["finished"] <= runs[1]["finished"]

    # A finished folder trained with another config is not silently skipped or overwritten.
    changed = train_many(data, out, preset("smoke", **{**TINY, "niter": 4}), seed=7, progress=False)
    assert [r.status for r in changed.results] == ["failed"] * 3
    assert "incompatible" in changed.results[0].error and "niter" in changed.results[0].error
    assert len(json.loads(changed.record.read_text())["runs"]) == 3


def test_record_history_survives_an_old_or_broken_record(data, tmp_path):
    """A record written before the history began contributes its summary; a broken one is replaced."""
    out = tmp_path / "models"
    cfg = preset("smoke", **TINY)
    out.mkdir()
    # shard 2 of 3 is c_broken alone: a run that records without training anything
    record = out / "train_many.shard-2-of-3.json"
    record.write_text(json.dumps({"summary": "1 pairs: 1 trained"}))
    first = train_many(data, out, cfg, seed=7, shard=(2, 3), progress=False)
    assert first.record == record
    runs = json.loads(record.read_text())["runs"]
    assert runs[0] == {"finished": None, "summary": "1 pairs: 1 trained"}
    assert (runs[1]["trained"], runs[1]["failed"], runs[1]["summary"]) == (0, 1, first.summary)
    record.write_text("{not json")
    train_many(data, out, cfg, seed=7, shard=(2, 3), progress=False)
    assert [r["failed"] for r in json.loads(record.read_text())["runs"]] == [1]


def test_resumes_a_partial_model(data, tmp_path):
    from singanseg.api import train

    out = tmp_path / "models"
    cfg = preset("smoke", **TINY)

    class Stop(Exception):
        pass

    def stop_after_first(n, summary):
        raise Stop

    with pytest.raises(Stop):  # an interruption after the first finished scale
        train(
            data / "images" / "a.png",
            data / "masks" / "a.png",
            out / "a",
            cfg,
            seed=image_seed(3, "a"),
            progress=False,
            on_scale=stop_after_first,
        )
    partial = read_model_json(out / "a")
    assert not partial["complete"] and partial["finished_scales"] == 1

    result = train_many(data, out, cfg, seed=3, limit=2, progress=False)  # a, b
    assert [(r.task_id, r.status) for r in result.results] == [("a", "done"), ("b", "done")]
    assert result.results[0].value["resumed"] and not result.results[1].value["resumed"]
    assert read_model_json(out / "a")["complete"]
    assert "2 pairs: 2 trained (1 resumed), 0 skipped, 0 failed" == result.summary


def test_retrain_incompatible_with_mlflow_child_runs(data, tmp_path, mlflow_uri):
    from pipeline.infra.mlflow_tracker import MlflowTracker, _mlflow, stage_run

    out = tmp_path / "models"
    # shard 0 of 2: a, c_broken
    train_many(data, out, preset("smoke", **TINY), seed=5, shard=(0, 2), progress=False)
    newer = preset("smoke", **{**TINY, "niter": 2})
    with stage_run("train_singan", params=newer, profile="test") as parent:
        result = train_many(
            data,
            out,
            newer,
            seed=5,
            shard=(0, 2),
            on_incompatible="retrain",
            tracker=MlflowTracker.of(parent),
            progress=False,
        )
    assert [(r.task_id, r.status) for r in result.results] == [
        ("a", "done"),
        ("c_broken", "failed"),
    ]
    assert not result.results[0].value["resumed"]
    assert read_model_json(out / "a")["config"]["niter"] == 2

    client = _mlflow().MlflowClient()
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_id = {r.data.tags["image_id"]: r for r in children}
    assert set(by_id) == {"a", "c_broken"}
    assert by_id["a"].info.status == "FINISHED" and by_id["c_broken"].info.status == "FAILED"
    assert by_id["a"].data.metrics["num_scales"] == read_model_json(out / "a")["finished_scales"]
    assert any(k.startswith("scale.") for k in by_id["a"].data.metrics)


def test_shards_cover_every_id_once():
    ids = [f"id{i}" for i in range(11)]
    for n in (1, 2, 3, 4, 11, 12):
        parts = [ids[_select_shard(ids, (k, n))] for k in range(n)]
        assert sorted(sum(parts, [])) == sorted(ids)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ConfigError, match="shard: expected K/N"):
        _select_shard(ids, (2, 2))


def _cli(argv):
    parser = argparse.ArgumentParser(prog="singanseg")
    add_train_many_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_command_line(data, tmp_path, capsys):
    out = tmp_path / "models"
    with pytest.raises(ConfigError, match="batch: must be >= 1"):
        _cli(["train-many", str(data), "--out", str(out), "--batch", "0"])
    with pytest.raises(ConfigError, match=r"train-many.jobs: must be >= 1"):
        _cli(["train-many", str(data), "--out", str(out), "--jobs", "0"])
    with pytest.raises(ConfigError, match="nitre"):
        _cli(["train-many", str(data), "--out", str(out), "--set", "nitre=3"])

    rc = _cli(
        ["train-many", str(data), "--out", str(out), "--profile", "smoke", *TINY_SETS, "--quiet"]
    )
    line = capsys.readouterr().out
    assert rc == 1  # one pair failed
    assert "2 trained" in line and "1 failed: c_broken" in line
    assert all(read_model_json(out / i)["complete"] for i in ("a", "b"))


@pytest.mark.slow
def test_ray_executor_trains_and_skips(data, tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (optional extra: pip install '.[ray]')")
    from singanseg.executors import RayExecutor

    out = tmp_path / "models"
    cfg = preset("smoke", **TINY)
    ex = ExecutorConfig(executor="ray", num_cpus_per_task=1)
    cluster = RayExecutor(ex)  # one local cluster (127.0.0.1) for both runs; they reuse it
    try:
        first = train_many(data, out, cfg, ex, seed=1, progress=False)
        assert [r.status for r in first.results] == ["done", "done", "failed"]
        assert "c_broken" in first.results[2].error
        assert all(read_model_json(out / i)["complete"] for i in ("a", "b"))
        again = train_many(data, out, cfg, ex, seed=1, progress=False)
        assert [r.status for r in again.results] == ["skipped", "skipped", "failed"]
    finally:
        cluster.shutdown()


def test_batch_routes_to_the_batched_trainer(data, tmp_path, capsys):
    out = tmp_path / "batched"
    rc = _cli(["train-many", str(data), "--out", str(out), "--profile", "smoke", *TINY_SETS, "--batch", "2", "--quiet"])
    line = capsys.readouterr().out
    assert rc == 1 and "2 trained" in line and "1 failed: c_broken" in line
    from singanseg.api import load

    for d in sorted(p for p in out.iterdir() if p.is_dir() and (p / "model.json").is_file()):
        pairs = load(d).sample(num=1, seed=0)
        assert pairs[0][1].shape == pairs[0][0].shape[:2]
    # --executor ray --batch K: tests/test_executors.py (on its local Ray cluster)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error for a GPU that is absent")
def test_a_missing_gpu_fails_before_any_task_locally(data, tmp_path):
    cfg = preset("smoke", **TINY)
    for batch in (1, 2):
        out = tmp_path / f"out{batch}"
        with pytest.raises(ConfigError, match="train-many: device.*no CUDA device"):
            train_many(data, out, cfg, seed=0, batch=batch, device="cuda", progress=False)
        assert not out.exists() or not any(out.iterdir())  # nothing trained, no record written


def test_batched_in_a_local_pool_trains_the_in_process_models(data, tmp_path):
    """--batch K with --jobs N > 1: one pool task per chunk (as on Ray), the same models."""
    import torch

    from singanseg.api import load

    cfg = preset("smoke", **TINY)
    inline = train_many(data, tmp_path / "inline", cfg, seed=7, batch=2, progress=False)
    pool = train_many(data, tmp_path / "pool", cfg, ExecutorConfig(jobs=2, threads_per_job=1), seed=7,
                      batch=2, progress=False)  # fmt: skip
    assert [(r.task_id, r.status) for r in pool.results] == [("a", "done"), ("b", "done"), ("c_broken", "failed")]
    assert "mask is 40x24" in pool.results[2].error
    assert [r.value["batch"] for r in pool.results[:2]] == [2, 2]  # a and b trained as one batch
    for i in ("a", "b"):
        ours, theirs = load(tmp_path / "pool" / i), load(tmp_path / "inline" / i)
        for g1, g2 in zip(ours.Gs, theirs.Gs, strict=True):
            assert all(torch.equal(v, g2.state_dict()[k]) for k, v in g1.state_dict().items()), i
    assert inline.summary == pool.summary


def test_batched_pool_progress_line_counts_models(data, tmp_path, capsys):
    """A DVC stage's --quiet run (no bar) still says how many models are done (issue 17)."""
    cfg = preset("smoke", **TINY)
    train_many(data, tmp_path / "m", cfg, ExecutorConfig(jobs=2, threads_per_job=1), seed=7, batch=2,
               progress=False, progress_name="train_singan@0")  # fmt: skip
    err = capsys.readouterr().err
    assert "train_singan@0: 3/3 models" in err


def test_model_lock_is_exclusive_and_leaves_no_file(tmp_path):
    from singanseg.api import ModelLock

    first, second = ModelLock(tmp_path / "out" / "a"), ModelLock(tmp_path / "out" / "a")
    assert first.acquire(wait=False) and first.path == tmp_path / "out" / "a.lock"
    assert not second.acquire(wait=False)  # another holder (flock is per open file)
    first.release()
    assert not first.path.exists()  # no lock file in a finished output
    first.path.write_text("a crashed run's leftover\n")  # its flock died with it
    assert second.acquire(wait=False)
    second.release()
    assert not second.path.exists()


def test_a_second_run_skips_the_model_another_run_is_training(data, tmp_path):
    """Two train-many on one --out (issue 26 item 9): a model locked by another run is left
    to it, waited for at the end, and skipped when that run finished it."""
    import shutil
    import threading
    import time

    from singanseg.api import ModelLock, train
    from singanseg.train_many_batched import train_batched

    cfg = preset("smoke", **TINY)
    out = tmp_path / "models"
    other = ModelLock(out / "a")  # the other run, training a
    assert other.acquire(wait=False)
    box = {}
    run = threading.Thread(target=lambda: box.update(r=train_batched(data, out, cfg, seed=7, batch=2)))
    run.start()
    deadline = time.monotonic() + 300
    while not (out / "b" / "model.json").exists() or not read_model_json(out / "b")["complete"]:
        assert time.monotonic() < deadline and run.is_alive()
        time.sleep(0.2)
    time.sleep(0.5)
    assert run.is_alive() and not (out / "a").exists()  # b trained; a left to its owner, waited for
    # what the other run writes: a's model for this request (config, seed, input)
    train(data / "images" / "a.png", data / "masks" / "a.png", tmp_path / "theirs", cfg,
          seed=image_seed(7, "a"), progress=False)  # fmt: skip
    shutil.copytree(tmp_path / "theirs", out / "a")
    other.release()
    run.join(300)
    assert [(r.task_id, r.status) for r in box["r"]] == [("a", "skipped"), ("b", "done"), ("c_broken", "failed")]
    assert box["r"][1].value["batch"] == 1
    assert not list(out.glob("*.lock"))
