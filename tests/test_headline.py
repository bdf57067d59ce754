"""The headline numbers DVC compares across runs (pipeline/results/headline.py, issue 17 "DVC"):
the segment stage writes them from its real results, dvc.yaml declares them as uncached
metrics and plots, and real `dvc metrics show` / `dvc plots show` read them."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import TINY_MODEL, TINY_TRAIN, make_project

from pipeline.report.build import grid_a_table, load_segmentation
from pipeline.results import headline
from pipeline.segment.__main__ import main as segment_main
from pipeline.segment.config import GridAParams, GridBParams, SegmentParams
from singanseg.typed import to_mapping

BIN = Path(sys.executable).parent
ONE_EPOCH = dataclasses.replace(TINY_TRAIN, epochs=1, lr_change_epoch=1)
PLOT_IDS = ("grid_a_curves", "grid_b_iou_by_n", "grid_a_iou", "fid_by_k", "sifid_by_style")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project whose grids A and B ran through the segment stage's entry point."""
    root = tmp_path_factory.mktemp("headline")
    make_project(root, n_per_fold=(4, 3, 3), size=32, synthetic=("singan", "singan_st1to1000"), samples=1)
    params = SegmentParams(
        model=TINY_MODEL, train_rich=ONE_EPOCH, train_scarce=ONE_EPOCH,
        grid_a=GridAParams(experiments=("REAL",), folds=(0, 1)),
        grid_b=GridBParams(kinds=("REAL", "FAKE"), n_values=(2,), samples_per_image=1),
        protocols=("paper", "clean"), clean_val_fraction=0.25, track=False,
    )  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump({"profile": "paper", "profiles": {"paper": {}},
                                                      "segment": json.loads(json.dumps(to_mapping(params)))}))  # fmt: skip
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for grid in ("A", "B"):
            assert segment_main(["--grid", grid, "--params", "params.yaml"]) == 0
    finally:
        os.chdir(cwd)
    return root


def test_segment_stage_writes_the_report_numbers_as_headline(project):
    out = project / "metrics/headline"
    a = json.loads((out / "segment_A.json").read_text())
    assert set(a) == {"iou", "dice"} and set(a["iou"]) == {"paper", "clean"}
    assert set(a["iou"]["paper"]) == {"REAL"}  # the TRIVIAL reference rows stay in the report
    # the same number as the report's grid A table (mean over folds of the per-image test IoU)
    seg = load_segmentation(project / "metrics/segmentation")
    table = grid_a_table(seg, "paper", "per_image", "", 3)
    assert a["iou"]["paper"]["REAL"] == pytest.approx(table.mean.at["REAL", "IoU"])
    assert a["dice"]["paper"]["REAL"] == pytest.approx(table.mean.at["REAL", "F1 (Dice)"])
    folds = [json.loads((project / f"metrics/segmentation/A/REAL/fold{f}_seed0.json").read_text()) for f in (0, 1)]
    mean = sum(r["protocols"]["clean"]["test"]["per_image"]["iou"] for r in folds) / 2
    assert a["iou"]["clean"]["REAL"] == pytest.approx(mean)
    b = json.loads((out / "segment_B.json").read_text())
    assert set(b["iou"]["paper"]) == {"REAL_N2", "FAKE_N2"}
    rec = json.loads((project / "metrics/segmentation/B/FAKE_N2/fold0_seed0.json").read_text())
    assert b["iou"]["paper"]["FAKE_N2"] == pytest.approx(rec["protocols"]["paper"]["test"]["per_image"]["iou"])
    # the plot's long form: one row per (protocol, kind, N), the line label in `series`
    lines = (out / "segment_B.csv").read_text().splitlines()
    assert lines[0] == ",".join(headline.SEGMENT_COLUMNS) and len(lines) == 1 + 4
    assert any(line.startswith("B,paper,FAKE_N2,FAKE,2,FAKE (paper),") for line in lines)


def test_quality_headline_keys_are_flat_and_dot_free():
    # the shape pipeline/quality.py's evaluate returns (sets, and gan_by_k as "<set>@K<k>")
    summary = {"sets": {"singan_st1to1000/gss0": {"sifid": 1.5, "fid": 9.0}, "fastgan/n2": {"sifid": None, "fid": 40.0}},
               "gan_by_k": {"fastgan/n2@K2": {"fid_mean": 41.0, "kid_mean": 3.5, "sets": 4},
                            "singan/gss0@K2": {"fid_mean": None, "kid_mean": None, "sets": 0}}}  # fmt: skip
    assert headline.quality_headline(summary) == {
        "sifid": {"singan_st1to1000_gss0": 1.5},
        "fid": {"singan_st1to1000_gss0": 9.0, "fastgan_n2": 40.0},
        "kid": {"fastgan_n2_k2": 3.5},
    }
    assert [r["series"] for r in headline.sifid_rows(summary)] == ["gss0, ST 1:1000"]


def test_brief_set_picks_the_paper_headline_numbers():
    quality = {"sifid": {"singan_gss0": 5.0, "singan_gss1": 4.0}, "fid": {"singan_gss0": 7.0, "fastgan_n2": 40.0},
               "kid": {"singan_gss0_k2": 9.0}}  # fmt: skip
    assert headline.brief_quality(quality) == {"sifid": 5.0, "fid": 7.0}
    assert headline.brief_quality({"fid": {"fastgan_n2": 40.0}}) == {}
    a = {"iou": {"paper": {"REAL": 0.5, "FAKE_1": 0.4, "FAKE_2": 0.3, "REAL+FAKE_1": 0.6}, "clean": {"REAL": 0.1}},
         "dice": {"paper": {"REAL": 0.7}}}  # fmt: skip
    assert headline.brief_segment(a, "A") == {"A": {"REAL": 0.5, "FAKE_1": 0.4}}
    # grid B: REAL and FAKE at the smallest N that has both (N=5 lacks FAKE here)
    b = {"iou": {"paper": {"REAL_N5": 0.1, "REAL_N10": 0.2, "FAKE_N10": 0.3, "FASTGAN_N2": 0.0, "REAL_N20": 0.4,
                           "FAKE_N20": 0.5}}}  # fmt: skip
    assert headline.brief_segment(b, "B") == {"B": {"REAL_N10": 0.2, "FAKE_N10": 0.3}}
    assert headline.brief_segment({"iou": {"clean": {"REAL_N5": 0.1}}}, "B") == {}


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, env=env, timeout=120)


def test_dvc_yaml_declares_the_headline_as_uncached_metrics(repo_root):
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    # only the brief set is a metric (issue 27: `dvc exp show` in 120 columns); the full JSONs are uncached outs
    assert stages["quality"]["metrics"] == [{"metrics/headline/brief_quality.json": {"cache": False}}]
    assert stages["segment"]["do"]["metrics"] == [{"metrics/headline/brief_segment_${item}.json": {"cache": False}}]
    assert {"metrics/headline/quality.json": {"cache": False}} in stages["quality"]["outs"]
    assert {"metrics/headline/segment_${item}.json": {"cache": False}} in stages["segment"]["do"]["outs"]
    ignored = subprocess.run(["git", "check-ignore", "-q", "metrics/headline/quality.json"], cwd=repo_root)
    assert ignored.returncode == 1, "metrics/headline/ must be committed (an experiment's commit carries it)"


def test_dvc_metrics_and_plots_show_read_the_headline(project, repo_root, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for rel in ("dvc.yaml", "params.yaml", ".gitignore", ".dvc/plots/series.json"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root / rel, repo / rel)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    assert _dvc(repo, "init", "-q", "--force").returncode == 0
    (repo / ".dvc/plots").mkdir(exist_ok=True)  # `dvc init --force` empties .dvc/
    shutil.copy(repo_root / ".dvc/plots/series.json", repo / ".dvc/plots/series.json")
    shutil.copytree(project / "metrics/headline", repo / "metrics/headline")
    shutil.copytree(project / "metrics/segmentation", repo / "metrics/segmentation")  # fold JSONs beside the curves
    summary = {"sets": {"singan/gss0": {"sifid": 2.0, "sifid_std": 0.1, "fid": 8.0},
                        "singan_st1to1000/gss0": {"sifid": 1.5, "sifid_std": 0.1, "fid": 7.5}}}  # fmt: skip
    headline.write_quality(summary, repo / "metrics/headline")
    (repo / "metrics/quality").mkdir()
    (repo / "metrics/quality/gan_by_k.csv").write_text(
        "k,generator,set,series,fid_mean\n2,fastgan,fastgan/n2,fastgan/n2,40.0\n4,fastgan,fastgan/n4,fastgan/n4,30.0\n")

    r = _dvc(repo, "metrics", "show", "--json")
    assert r.returncode == 0, r.stderr
    [workspace] = json.loads(r.stdout).values()  # one revision, the workspace ("" in DVC 3)
    data = workspace["data"]
    ours = json.loads((project / "metrics/headline/brief_segment_A.json").read_text())
    assert data["metrics/headline/brief_segment_A.json"]["data"] == ours == {"A": {"REAL": pytest.approx(
        json.loads((project / "metrics/headline/segment_A.json").read_text())["iou"]["paper"]["REAL"])}}
    assert data["metrics/headline/brief_quality.json"]["data"] == {"sifid": 2.0, "fid": 8.0}
    assert "metrics/headline/quality.json" not in data  # the full numbers: a plain out, read on request
    r = _dvc(repo, "metrics", "show", "--json", "metrics/headline/quality.json")
    [workspace] = json.loads(r.stdout).values()
    assert workspace["data"]["metrics/headline/quality.json"]["data"]["sifid"]["singan_st1to1000_gss0"] == 1.5

    r = _dvc(repo, "plots", "show", "--json")
    assert "WARNING" not in r.stderr, r.stderr  # issue 27: once per fold JSON when a plot took the folder
    plots = json.loads(r.stdout)["data"]
    assert set(plots) == set(PLOT_IDS)
    curves = plots["grid_a_curves"][0]["content"]["data"]["values"]
    assert {v["series"] for v in curves} == {f"REAL fold{f}_seed0 ({p})" for f in (0, 1) for p in ("paper", "clean")}
    assert len(curves) == 4 * ONE_EPOCH.epochs and all(float(v["val_per_image_iou"]) >= 0 for v in curves)
    for plot_id in PLOT_IDS:
        [rendered] = plots[plot_id]
        values = rendered["content"]["data"]["values"]
        assert values and all("series" in v for v in values), plot_id
    by_n = plots["grid_b_iou_by_n"][0]["content"]
    assert by_n["encoding"]["color"]["field"] == "series" and by_n["encoding"]["x"]["field"] == "N"
    assert {v["series"] for v in by_n["data"]["values"]} == {"REAL (paper)", "FAKE (paper)", "REAL (clean)", "FAKE (clean)"}
    assert [v["fid_mean"] for v in plots["fid_by_k"][0]["content"]["data"]["values"]] == ["40.0", "30.0"]
