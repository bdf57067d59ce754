"""The whole smoke pipeline in a fresh copy of the repository: `dvc repro` end to end.

What `make demo` runs, checked as a reader of the results would: every stage ran and logged
to MLflow, every table and figure exists, a second `dvc repro` does nothing, and changing
one segmentation param invalidates only what depends on it. The MLflow UI command of the
README serves the runs.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import run_pipeline, worktree_copy

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STAGES = {"data", "train_singan", "generate", "stylize", "train_baselines", "generate_baselines", "quality", "segment", "report"}


def _env(root: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default: mlflow.db at the repository root
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    return env


def _run(cmd: list[str], root: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


@pytest.fixture(scope="module")
def project(repo_root, tmp_path_factory):
    """A fresh copy of the working tree (tracked and untracked, not ignored files), as git sees it."""
    root = worktree_copy(repo_root, tmp_path_factory.mktemp("project"))
    t0 = time.monotonic()
    # a failure or timeout names the stage it was in and the log's last line (tests/helpers.py)
    run_pipeline([str(BIN / "dvc"), "repro"], root, _env(root), 1800, root / ".repro-log")
    (root / ".repro-seconds").write_text(f"{time.monotonic() - t0:.1f}\n")
    return root


def _smoke_params(root: Path) -> dict:
    from pipeline.infra.params import read_yaml, resolve

    _, merged = resolve(read_yaml(root / "params.yaml"), profile="smoke")
    return merged


def test_every_stage_wrote_its_outputs(project):
    p = _smoke_params(project)
    with open(project / "data/real/manifest.csv") as f:
        ids = [r["id"] for r in csv.DictReader(f)]
    assert len(ids) == p["data"]["phantom"]["count"]
    models = sorted(project.glob("models/singan/shard*/*/model.json"))
    assert len(models) == len(ids)
    assert all(json.loads(m.read_text()).get("status", "complete") == "complete" for m in models)
    for variant in ("singan/gss0", *(f"singan_st{r}/gss0" for r in p["stylize"]["ratios"])):
        n = len(list((project / "synthetic" / variant / "images").glob("*.png")))
        assert n == len(ids) * p["generate"]["num_samples"], variant
    for gan in ("dcgan", "progan", "fastgan"):
        for sub in p["baselines"]["subsets"][gan]:
            assert len(list((project / "synthetic" / gan / f"n{sub}" / "images").glob("*.png"))) == p["baselines"]["num_samples"]
    summary = json.loads((project / "metrics/quality/summary.json").read_text())
    assert summary["sets"] and all(s["fid"] is not None for s in summary["sets"].values())
    # every experiment and fold of the smoke grids has results
    seg = p["segment"]
    for exp in seg["grid_a"]["experiments"]:
        for fold in seg["grid_a"].get("folds", [0, 1, 2]):
            rec = json.loads((project / f"metrics/segmentation/A/{exp}/fold{fold}_seed0.json").read_text())
            assert set(rec["protocols"]) == set(seg.get("protocols", ["paper", "clean"]))
    for kind in seg["grid_b"]["kinds"]:
        for n in seg["grid_b"]["n_values"]:
            assert (project / f"metrics/segmentation/B/{kind}_N{n}/fold0_seed0.json").is_file()


def test_reports_hold_every_table_and_figure(project):
    # one report per profile; reports/README.md indexes them (the smoke run never writes elsewhere)
    assert "[smoke](smoke/README.md)" in (project / "reports" / "README.md").read_text()
    assert sorted(p.name for p in (project / "reports").iterdir()) == ["README.md", "smoke"]
    reports = project / "reports" / "smoke"
    index = (reports / "README.md").read_text()
    assert "Profile: `smoke`" in index and "not** the paper's results" in index
    assert "randomly initialised" in index  # smoke runs LPIPS, VGG and UNet++ without pretrained weights
    assert "-dirty" not in index  # the run's own rewrites (dvc.lock, reports/) do not count
    # no wall times in the smoke report (report.timings: false): a rerun writes it byte for byte
    assert "Total wall time" not in index and "`report.timings: false`" in index
    assert not (reports / "tables" / "costs.csv").exists()
    for name in ("claims", "sifid", "gan_comparison", "gan_by_k", "grid_a_paper", "grid_a_clean",
                 "grid_b_paper", "grid_b_clean"):
        assert (reports / "tables" / f"{name}.csv").is_file(), name
        tex = (reports / "tables" / f"{name}.tex").read_text()
        assert r"\toprule" in tex and r"\bottomrule" in tex
        assert "network weights: " in tex.split(r"\caption{", 1)[1].split("\n", 1)[0], name  # every caption
        assert f"(tables/{name}.csv)" in index
    # issue 22 s2: the committed per-image scores recompute the tables: REAL's grid A IoU is the mean
    # over (fold, seed) runs of its per-image means
    import pandas as pd

    per = pd.read_csv(reports / "tables" / "per_image_A.csv", dtype={"image_id": str})
    assert set(per.columns) >= {"experiment", "protocol", "fold", "seed", "test_set", "image_id", "iou", "dice"}
    table = pd.read_csv(reports / "tables" / "grid_a_paper.csv", index_col=0)
    real = per[(per.experiment == "A/REAL") & (per.protocol == "paper") & (per.test_set == "test")]
    assert table.loc["REAL", "IoU"] == pytest.approx(real.groupby(["fold", "seed"]).iou.mean().mean(), abs=1e-4)
    assert (reports / "tables" / "per_image_B.csv").is_file() and "(tables/per_image_A.csv)" in index
    for fig in ("mask_foreground", "mask_mean_std", "gan_by_k", "grid_b", "learning_curves", "samples_baselines",
                "predictions"):
        assert (reports / "figures" / f"{fig}.png").stat().st_size > 2000, fig
        assert f"figures/{fig}.png" in index
    assert list((reports / "figures").glob("samples_phantom_*.png"))
    assert "Not available" not in index
    # every row computed with a random network says so in the row (the smoke profile has no weights)
    grid_a = (reports / "tables" / "grid_a_paper.csv").read_text().splitlines()
    assert "network weights" in grid_a[0]
    assert all("RANDOM" in row or row.startswith("TRIVIAL") for row in grid_a[1:])
    assert any(row.startswith("TRIVIAL_MEAN_MASK") for row in grid_a[1:])
    # the GAN comparison at equal size: the smoke FastGAN subset K=2, every row names its Inception weights
    with open(reports / "tables" / "gan_by_k.csv", newline="") as f:
        by_k = list(csv.DictReader(f))  # row labels hold commas: read as CSV, not as lines
    assert len(by_k) > 2
    assert all(r["generator at training size K"].startswith("K=2: ") and "inception_fid: " in r["network weights"]
               for r in by_k)  # fmt: skip
    with open(reports / "tables" / "claims.csv", newline="") as f:
        claims = list(csv.DictReader(f))
    assert len(claims) == 5 and all("RANDOM-INIT" in r["network weights"] for r in claims if "UNet++" in r["network weights"])
    sifid = (reports / "tables" / "sifid.csv").read_text().splitlines()
    assert all("lpips: RANDOM-INIT" in row for row in sifid[1:])
    assert any("style transfer 1:" in row for row in sifid[1:])  # rows named as a reader says them
    assert all("style VGG16: RANDOM-INIT" in row for row in sifid[1:] if "style transfer 1:" in row)
    # every figure has a caption naming the profile, data and weights (issue 18 section 3)
    assert index.count("; network weights: ") >= index.count("![")
    assert "segment.grid_b" not in index and "generate.num_samples sets" not in index  # values, not param names
    if shutil.which("pdflatex"):  # every generated table compiles in a minimal document
        body = "".join(f"\\input{{{t.name}}}\n" for t in sorted((reports / "tables").glob("*.tex")))
        doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n"
        (reports / "tables" / "_all.tex").write_text(doc)
        r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "_all.tex"],
                           cwd=reports / "tables", capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 0, r.stdout[-3000:]
        for f in (reports / "tables").glob("_all.*"):
            f.unlink()


def test_mlflow_holds_one_run_per_stage_with_children(project):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("singanseg")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert {r.data.tags["stage"] for r in parents} == STAGES
    for r in parents:
        assert r.data.tags["profile"] == "smoke" and r.data.tags["git_commit"] != "unknown"
        assert r.info.status == "FINISHED"
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    by_stage = {}
    for c in children:
        by_stage.setdefault(c.data.tags["stage"], []).append(c.info.run_name)
    assert len(by_stage["train_singan"]) == len(list(project.glob("models/singan/shard*/*/model.json")))
    assert any(n.startswith("segment/A/REAL/fold") for n in by_stage["segment"])


def test_second_repro_is_a_noop_and_params_invalidate_only_dependents(project):
    r = _run([str(BIN / "dvc"), "status"], project, timeout=300)
    assert "Data and pipelines are up to date" in r.stdout, r.stdout
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["profiles"]["smoke"]["segment"]["train_rich"]["epochs"] += 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    r = _run([str(BIN / "dvc"), "status", "--json"], project, timeout=300)
    changed = set(json.loads(r.stdout))
    assert changed == {"segment@A", "segment@B"}, changed  # report follows through their outputs
    r = _run([str(BIN / "dvc"), "repro", "--dry"], project, timeout=300)
    ran = {line.split("'")[1] for line in r.stdout.splitlines() if line.startswith("Running stage")}
    # a dry run cannot know that segment's outputs will change, so `report` may not be listed yet
    assert {"segment@A", "segment@B"} <= ran <= {"segment@A", "segment@B", "report"}, ran


def test_readme_mlflow_ui_serves_the_runs(project):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the README's UI command (make mlflow-ui), on a free port
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", "sqlite:///mlflow.db", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project, env={**_env(project), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=singanseg"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    exp_id = json.load(resp)["experiment"]["experiment_id"]
                body = json.dumps({"experiment_ids": [exp_id], "max_results": 1000}).encode()
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", body,
                                             {"Content-Type": "application/json"})  # fmt: skip
                with urllib.request.urlopen(req, timeout=5) as resp:
                    runs = json.load(resp)["runs"]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
                time.sleep(0.5)
        stages = {t["value"] for r in runs for t in r["data"]["tags"] if t["key"] == "stage"}
        assert stages == STAGES
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
