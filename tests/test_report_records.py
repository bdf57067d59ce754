"""The report's records of a run: stage timings, costs, the commit stamp, the index."""

import json
import subprocess
import sys

from pipeline.infra.mlflow_tracker import git_commit
from pipeline.infra.params import overrides_vs_head
from pipeline.infra.timed import run as timed_run
from pipeline.report.costs import cost_table, load_timings
from pipeline.report.index import describe, write_index


def test_timed_records_wall_time_exit_code_and_machine(tmp_path):
    rc = timed_run("train_singan_1", [sys.executable, "-c", "import time, sys; time.sleep(0.2); sys.exit(3)"], tmp_path)
    rec = json.loads((tmp_path / "train_singan_1.json").read_text())
    assert rc == 3 and rec["exit_code"] == 3 and rec["seconds"] >= 0.2
    assert rec["machine"]["cores"] >= 1 and rec["machine"]["device"] in ("cpu", "cuda")
    assert load_timings(tmp_path)["train_singan"][0]["name"] == "train_singan_1"


def test_cost_table_divides_stage_time_by_the_work_counted_in_outputs(tmp_path):
    timings = tmp_path / "timings"
    for name, s in (("train_singan_0", 30.0), ("train_singan_1", 10.0), ("segment_A", 12.0)):
        timed_run(name, [sys.executable, "-c", "pass"], timings)
        rec = json.loads((timings / f"{name}.json").read_text())
        rec["seconds"] = s
        (timings / f"{name}.json").write_text(json.dumps(rec))
    models = [tmp_path / "shard0", tmp_path / "shard1"]
    for i, m in enumerate(models):
        for k in range(2):
            (m / f"id{i}{k}").mkdir(parents=True)
            (m / f"id{i}{k}" / "model.json").write_text(json.dumps({"format": "singanseg-singan"}))
            # the training seconds are in the sidecar, not in model.json (a DVC-hashed output)
            (m / f"id{i}{k}" / "model.timing.json").write_text(json.dumps({"seconds": [1.0, 2.0 + k]}))
    seg = tmp_path / "seg" / "A" / "REAL"
    seg.mkdir(parents=True)
    (seg / "fold0.json").write_text(json.dumps({"protocols": {"paper": {"epochs": 3}, "clean": {"epochs": 3}}}))
    (seg / "fold0.timing.json").write_text(json.dumps({"seconds": {"paper": 1.0, "clean": 1.0}}))  # not a result
    t, summary = cost_table(timings, models, tmp_path / "syn", tmp_path / "seg", "caption")
    assert t.mean.loc["train_singan", "wall seconds"] == 40.0 and t.mean.loc["train_singan", "units"] == 4
    assert t.mean.loc["train_singan", "seconds per unit"] == 10.0
    assert t.mean.loc["segment", "unit of work"] == "UNet++ epoch" and t.mean.loc["segment", "seconds per unit"] == 2.0
    assert summary["total_seconds"] == 52.0 and summary["singan_seconds_per_model"] == 3.5
    assert cost_table(tmp_path / "none", models, tmp_path, tmp_path, "") == (None, {})


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_commit_stamp_ignores_what_a_run_rewrites_and_lists_the_params_it_set(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("profile: smoke\ndata:\n  source: kvasir-seg\n  folder: null\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "c")
    (tmp_path / "params.yaml").write_text("profile: cpu\ndata:\n  source: folder\n  folder: ../d\n")
    ignore = ("params.yaml", "dvc.lock", "reports/")
    assert not git_commit(tmp_path, ignore).endswith("-dirty")
    assert git_commit(tmp_path).endswith("-dirty")
    assert overrides_vs_head(tmp_path / "params.yaml") == {"data.folder": "../d", "data.source": "folder", "profile": "cpu"}
    (tmp_path / "code.py").write_text("x = 2\n")  # a code change is never ignored
    assert git_commit(tmp_path, ignore).endswith("-dirty")


def test_index_leads_with_real_data_reports(tmp_path):
    for name, data in (("smoke", "phantom"), ("cpu", "folder ../shared/data/kvasir-seg-200")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "README.md").write_text(
            f"# singanseg results\n\n- **Profile: `{name}`**\n- Data: `{data}`\n- Commit: `abc{name}`\n")
    assert describe(tmp_path / "cpu" / "README.md")["Commit"] == "`abccpu`"
    text = write_index(tmp_path).read_text()
    assert text.index("[cpu](cpu/README.md)") < text.index("[smoke](smoke/README.md)")
    assert "plumbing check" in text.split("[smoke]")[1]


def test_a_value_set_for_the_run_is_not_replaced_by_the_profile(tmp_path, capsys):
    """issue 18: `dvc exp run -S data.source=folder` under the smoke profile ran on phantom data."""
    from pipeline.data.config import DataParams
    from pipeline.infra.params import load_section

    _git(tmp_path, "init", "-q")
    text = ("profile: smoke\ndata:\n  source: kvasir-seg\n  folder: null\n  limit: null\n"
            "profiles:\n  smoke:\n    data: {source: phantom, limit: 4}\n")
    (tmp_path / "params.yaml").write_text(text)
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "c")
    assert load_section("data", DataParams, tmp_path / "params.yaml").source == "phantom"  # nothing set: the profile
    (tmp_path / "params.yaml").write_text(text.replace("source: kvasir-seg\n  folder: null", "source: folder\n  folder: /d"))
    p = load_section("data", DataParams, tmp_path / "params.yaml")
    assert (p.source, p.folder, p.limit) == ("folder", "/d", 4)  # the set value wins; the rest of the overlay applies
    assert "data.source='folder' set for this run is kept over profiles.smoke.data.source='phantom'" in capsys.readouterr().err


def test_commit_stamp_passes_over_the_commit_that_adds_a_runs_results(tmp_path):
    """issue 18 s2: the report is committed after the commit it names; a fresh clone's rerun
    at the newer HEAD must stamp the same commit, or `make demo` changes the report."""
    from pipeline.report.build import RUN_OUTPUTS, RUN_WRITES

    def commit(msg):
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", msg)
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()

    _git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("profile: smoke\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    code = commit("code")
    (tmp_path / "reports" / "smoke").mkdir(parents=True)
    (tmp_path / "reports" / "smoke" / "README.md").write_text(f"Commit: {code}\n")
    (tmp_path / "metrics" / "headline").mkdir(parents=True)
    (tmp_path / "metrics" / "headline" / "quality.json").write_text("{}\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    results = commit("the run's results")
    assert results != code
    assert git_commit(tmp_path, RUN_WRITES, RUN_OUTPUTS) == code  # not HEAD
    assert git_commit(tmp_path / "reports", RUN_WRITES, RUN_OUTPUTS) == code  # from a subfolder too
    assert git_commit(tmp_path) == results  # MLflow's tag: HEAD as before
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")  # a rerun rewrites it
    assert git_commit(tmp_path, RUN_WRITES, RUN_OUTPUTS) == code
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path, RUN_WRITES, RUN_OUTPUTS) == code + "-dirty"  # a code change is never passed over
    changed = commit("code change")
    assert git_commit(tmp_path, RUN_WRITES, RUN_OUTPUTS) == changed
    (tmp_path / "params.yaml").write_text("profile: cpu\n")
    params = commit("a configuration change is a change")
    assert git_commit(tmp_path, RUN_WRITES, RUN_OUTPUTS) == params


def test_smoke_report_leaves_out_wall_times_and_says_why(repo_root):
    """`make demo` must rewrite the committed smoke report byte for byte: no wall times there
    (report.timings: false in the smoke profile); the cpu and paper reports keep them."""
    from pipeline.infra.params import read_yaml, resolve
    from pipeline.report.build import header

    params = read_yaml(repo_root / "params.yaml")
    assert resolve(params, profile="smoke")[1]["report"]["timings"] is False
    assert all(resolve(params, profile=p)[1]["report"]["timings"] is True for p in ("cpu", "paper"))
    smoke = header("smoke", "abc", {}, "phantom", timings=False)
    assert "Total wall time" not in smoke and "`report.timings: false`" in smoke and "metrics/timings/" in smoke
    assert "Total wall time: 2.0 minutes" in header("cpu", "abc", {}, "folder", total_seconds=120.0)


def test_stages_run_under_mkl_conditional_reproducibility(tmp_path, monkeypatch):
    """issue 26 item 10: every stage's process gets MKL_CBWR=COMPATIBLE (the setting that made
    train_singan's weights independent of MKL's ISA dispatch), unless the caller chose one."""
    import json

    probe = [sys.executable, "-c", "import os, sys; sys.exit(0 if os.environ.get('MKL_CBWR') == sys.argv[1] else 5)"]
    monkeypatch.delenv("MKL_CBWR", raising=False)
    assert timed_run("probe", [*probe, "COMPATIBLE"], tmp_path) == 0
    assert json.loads((tmp_path / "probe.json").read_text())["machine"]["MKL_CBWR"] == "COMPATIBLE"
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    assert timed_run("probe", [*probe, "AUTO"], tmp_path) == 0
    assert timed_run("probe", [*probe, "COMPATIBLE"], tmp_path) == 5
