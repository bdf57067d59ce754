"""MLflow tracking: stage runs with provenance tags, child runs across processes, a real server."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pytest

from pipeline.data.prepare import DataParams, PhantomParams
from pipeline.infra.mlflow_tracker import child_run, log_metrics, stage_run
from pipeline.infra.params import params_hash

CHILD = """
import sys
from pipeline.infra.mlflow_tracker import child_run, log_metrics
with child_run(sys.argv[1], "worker/img7", tags={"image_id": "img7"}) as run:
    log_metrics(run, {"loss": 0.25}, step=3)
"""


def _exercise(tmp_path):
    params = DataParams(source="phantom", phantom=PhantomParams(count=3))
    with stage_run("data", params, profile="smoke", provenance={"weights": "random-init"}) as run:
        log_metrics(run, {"count": 3.0, "fg": 0.1})
        with child_run(run, "data/child-inproc") as c:
            log_metrics(c, {"x": 1.0})
        # a worker in another process attaches to the stage run by id
        subprocess.run([sys.executable, "-c", CHILD, run.info.run_id], check=True, timeout=120, cwd=tmp_path.parent)
    return run.info.run_id, params


def _check(run_id, params):
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    tags = run.data.tags
    assert tags["stage"] == "data" and tags["profile"] == "smoke"
    assert tags["params_hash"] == params_hash(params)
    assert tags["provenance.weights"] == "random-init"
    assert tags["git_commit"]  # a commit id, or "unknown" outside git
    assert run.data.params["phantom.count"] == "3"
    assert run.data.metrics["count"] == 3.0
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    names = sorted(c.info.run_name for c in children)
    assert names == ["data/child-inproc", "worker/img7"]
    worker = next(c for c in children if c.info.run_name == "worker/img7")
    assert worker.data.metrics["loss"] == 0.25 and worker.data.tags["image_id"] == "img7"
    assert worker.data.tags["provenance.weights"] == "random-init"  # inherited from the stage
    assert worker.info.status == "FINISHED"


def test_sqlite_store(tmp_path, mlflow_uri):
    run_id, params = _exercise(tmp_path)
    _check(run_id, params)


@pytest.mark.slow
def test_real_mlflow_server(tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    run_id, params = _exercise(tmp_path)
    _check(run_id, params)
    # the REST API a UI user hits serves the same run
    with urllib.request.urlopen(f"{mlflow_server}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=10) as r:
        body = json.load(r)
    tags = {t["key"]: t["value"] for t in body["run"]["data"]["tags"]}
    assert tags["stage"] == "data"


def test_disabled_tracking_yields_none():
    with stage_run("data", enabled=False) as run:
        assert run is None
        log_metrics(run, {"x": 1.0})  # a no-op, not an error


def test_unreachable_server_fails_fast_in_one_line(tmp_path, monkeypatch):
    """Issue 14 item 6: MLflow's client hung ~4.5 min, then a 118-line traceback."""
    import time

    from pipeline.infra.mlflow_tracker import TrackingUnreachableError, check_reachable

    with pytest.raises(TrackingUnreachableError, match=r"MLFLOW_TRACKING_URI=http://127\.0\.0\.1:9: .*unset MLFLOW_TRACKING_URI"):
        check_reachable("http://127.0.0.1:9", timeout=1.0, attempts=2)
    # a tracked stage, end to end: one line, exit 2, well within 30 s
    (tmp_path / "params.yaml").write_text("profile: paper\ndata:\n  source: phantom\n  phantom: {count: 2}\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.data", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9" in lines[0] and "unset MLFLOW_TRACKING_URI" in lines[0], lines
    assert not (tmp_path / "d" / "real").exists()
