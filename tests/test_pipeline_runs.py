"""MLflow as a user of `dvc repro` / `dvc exp run` and the UI sees it (issues 17 and 18):
the runs of one pipeline run share a tag, every run has its own name, the experiment opens on
its runs, and the report run holds the report's page, figures and tables as artifacts."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# a stage as the pipeline's stages open their run: stage_run with a name, a child run
STAGE = (
    "import sys; from pipeline.infra.mlflow_tracker import child_run, log_metrics, stage_run\n"
    "with stage_run(sys.argv[1], run_name=sys.argv[2], profile='smoke') as run:\n"
    "    log_metrics(run, {'fid': 1.0})\n"
    "    with child_run(run, sys.argv[2] + '/child'): pass\n"
    "open(sys.argv[1] + '.done', 'w').write('ok')\n"
)


def _dvc_project(root: Path, uri: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "MLFLOW_TRACKING_URI": uri, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    (root / "stage.py").write_text(STAGE)
    stages = {
        "one": {"cmd": "python stage.py one one@a", "params": ["x"], "outs": ["one.done"]},
        "two": {"cmd": "python stage.py two two@b", "deps": ["one.done"], "outs": ["two.done"]},
    }
    (root / "dvc.yaml").write_text(json.dumps({"stages": stages}))
    (root / "params.yaml").write_text("x: 1\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True, timeout=120)
    return env


def _dvc(root, env, *args):
    r = subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def _runs(client, exp_id, pipeline_run):
    return client.search_runs([exp_id], f"tags.pipeline_run = '{pipeline_run}'")


@pytest.mark.slow  # ~50 s on 2 busy cores: four stage processes each import mlflow
def test_stages_of_one_repro_share_the_pipeline_run_tag(tmp_path, mlflow_uri):
    import mlflow

    env = _dvc_project(tmp_path, mlflow_uri)
    _dvc(tmp_path, env, "exp", "run", "-n", "sweep-a", "-S", "x=2")
    _dvc(tmp_path, env, "repro", "-f")
    client = mlflow.MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("singanseg")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 8  # (2 stages + 2 children) x 2 invocations
    ids = {r.data.tags["pipeline_run"] for r in runs}
    assert len(ids) == 2 and all(i.startswith("dvc-") for i in ids)  # one per dvc invocation
    for pid in ids:
        one = _runs(client, exp.experiment_id, pid)
        assert sorted(r.info.run_name for r in one) == ["one@a", "one@a/child", "two@b", "two@b/child"]
        names = {r.data.tags.get("dvc_exp_name") for r in one}
        assert names in ({"sweep-a"}, {None})  # the exp run's, children included; none for repro
    assert {r.data.tags.get("dvc_stage") for r in runs} == {"one", "two"}


def test_report_run_holds_its_figures_and_tables_over_rest(tmp_path, mlflow_server, monkeypatch):
    """Issue 17's acceptance: the report run's figures, as the UI's artifact view gets them."""
    from PIL import Image

    from pipeline.infra.mlflow_tracker import log_report_artifacts, stage_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    report = tmp_path / "reports" / "smoke"
    (report / "figures").mkdir(parents=True)
    (report / "tables").mkdir()
    (report / "README.md").write_text("# report\n")
    Image.new("RGB", (8, 8), (200, 30, 30)).save(report / "figures" / "grid_b.png")
    (report / "tables" / "sifid.csv").write_text("set,sifid\nsingan,0.5\n")
    with stage_run("report", run_name="report") as run:
        assert log_report_artifacts(run, report) == 3

    def get(path):
        with urllib.request.urlopen(f"{mlflow_server}{path}", timeout=10) as r:
            return r.read()

    rid = run.info.run_id
    listing = {f["path"] for f in json.loads(get(f"/api/2.0/mlflow/artifacts/list?run_id={rid}"))["files"]}
    assert listing == {"README.md", "figures", "tables"}
    figs = json.loads(get(f"/api/2.0/mlflow/artifacts/list?run_id={rid}&path=figures"))["files"]
    assert [f["path"] for f in figs] == ["figures/grid_b.png"]
    # the bytes the UI's image view downloads
    png = get(f"/get-artifact?path=figures/grid_b.png&run_uuid={rid}")
    assert png == (report / "figures" / "grid_b.png").read_bytes()
    body = json.loads(get(f"/api/2.0/mlflow/runs/get?run_id={rid}"))["run"]
    tags = {t["key"]: t["value"] for t in body["data"]["tags"]}
    assert tags["pipeline_run"].startswith(("dvc-", "stage-")) and tags["mlflow.runName"] == "report"
    exp = json.loads(get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=singanseg"))["experiment"]
    assert {t["key"]: t["value"] for t in exp["tags"]}["mlflow.experimentKind"] == "custom_model_development"
