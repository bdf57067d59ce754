"""The `quality` stage and the `python -m pipeline.metrics` command line, end to end on tiny sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline import quality
from pipeline.metrics.features import image_index, load_rgb
from singanseg.io import InputError, write_png


@pytest.fixture(scope="module")
def layout(tmp_path_factory, kvasir_dir):
    root = tmp_path_factory.mktemp("quality")
    ids = list(image_index(kvasir_dir))[:3]
    small = {i: np.asarray(Image.fromarray(load_rgb(kvasir_dir / "images" / f"{i}.jpg")).resize((96, 80))) for i in ids}
    mask = np.zeros((80, 96), np.uint8)
    mask[20:50, 30:70] = 255
    for n, i in enumerate(ids):
        write_png(root / "data/real/images" / f"r{n}.png", small[i])
        write_png(root / "data/real/masks" / f"r{n}.png", mask)
    for src in ("r0", "r1"):
        for k in range(2):
            img = np.clip(load_rgb(root / "data/real/images" / f"{src}.png").astype(int) + 20 * k, 0, 255).astype(np.uint8)
            write_png(root / "synthetic/singan/gss0/images" / f"{src}_{k}.png", img)
            write_png(root / "synthetic/singan/gss0/masks" / f"{src}_{k}.png", np.roll(mask, 5 * k, axis=1))
    for k in range(3):
        write_png(root / "synthetic/dcgan/n2/images" / f"dcgan_{k}.png", small[ids[k]][:, ::-1].copy())
        write_png(root / "synthetic/dcgan/n2/masks" / f"dcgan_{k}.png", mask)
    params = {
        "quality": {
            "sifid": {"network": "inception_fid", "dims": 64},
            "fid": {"dims": 64},
            "lpips": {"weights": "random"},
        }
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_stage_writes_metrics_with_provenance(layout, mlflow_uri, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SINGANSEG_CACHE", str(tmp_path_factory.getbasetemp() / "singanseg-cache"))
    monkeypatch.chdir(layout)
    assert quality.main([]) == 0
    out = layout / "metrics/quality"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sets"]) == {"singan/gss0", "dcgan/n2"}
    sg = json.loads((out / "singan__gss0.json").read_text())
    assert sg["sifid"]["count"] == 4 and sg["sifid"]["weights"] == "pretrained"
    rows = (out / "singan__gss0.sifid.csv").read_text().splitlines()
    assert rows[0] == "real_id,synthetic_id,sifid" and len(rows) == 5
    # the unshifted sample equals its real image: SIFID ~0 on that row
    assert float([r for r in rows if r.startswith("r0,r0_0,")][0].split(",")[2]) < 1e-6
    dc = json.loads((out / "dcgan__n2.json").read_text())
    assert dc["fid"]["count_a"] == 2 and dc["fid"]["count_b"] == 3 and dc["fid"]["dims"] == 64
    assert "fewer images (2) than feature dimensions (64)" in dc["fid"]["warning"]
    assert dc["lpips"]["weights"] == "random-init"
    assert (out / "mask_stats/singan__gss0/r0_std.png").is_file()
    assert "random-init" in summary["provenance"]["lpips"]
    # the headline numbers beside the cached folder, for `dvc metrics` (pipeline/results/headline.py)
    head = json.loads((layout / "metrics/headline/quality.json").read_text())
    assert head["sifid"] == {"singan_gss0": pytest.approx(sg["sifid"]["value"])}
    assert head["fid"]["dcgan_n2"] == pytest.approx(dc["fid"]["value"])
    import mlflow

    mlflow.set_tracking_uri(mlflow_uri)
    runs = mlflow.search_runs(experiment_names=["singanseg"], output_format="list")
    run = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    # issue 18: the headline numbers under short names, one child run per set
    child = next(r for r in runs if r.info.run_name == "quality/singan/gss0")
    assert child.data.metrics["sifid"] == pytest.approx(sg["sifid"]["value"]) and "lpips" in child.data.metrics
    assert run.data.tags["stage"] == "quality"
    assert run.data.tags["provenance.lpips"].startswith("random-init")
    assert run.data.metrics["singan/gss0/sifid"] == pytest.approx(sg["sifid"]["value"])


def test_stage_rejects_unknown_layout(layout, tmp_path):
    (tmp_path / "synthetic/Weird Set/x/images").mkdir(parents=True)
    with pytest.raises(InputError, match="unknown synthetic set layout"):
        quality.discover_sets(tmp_path / "synthetic")


def _cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pipeline.metrics", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_prints_one_json_object(layout, repo_root):
    r = _cli("lpips", str(layout / "synthetic/singan/gss0"), "--real", str(layout / "data/real"), "--weights", "random", cwd=repo_root)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["weights"] == "random-init" and out["count"] == 4 and out["options"]["net"] == "alex"


def test_cli_bad_input_is_one_line(layout, repo_root):
    r = _cli("sifid", str(layout / "data/real"), str(layout / "synthetic/dcgan/n2"), "--network", "inception_fid", cwd=repo_root)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "'dcgan_0' pairs with no real image" in r.stderr
    r = _cli("lpips", str(layout / "nowhere"), cwd=repo_root)
    assert r.returncode == 2 and "folder not found" in r.stderr
