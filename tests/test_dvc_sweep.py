"""A two-value `dvc exp run` sweep compares like the README's "Comparing runs" says (issue 17).

On a fresh clone of HEAD, at smoke size: the first experiment builds the whole pipeline, the
second re-runs only what its parameter invalidates (quality and report). Then `dvc exp show`
has both experiments with the headline metric columns, and `dvc metrics diff` / `dvc plots
diff` compare them. Slow: a whole smoke pipeline (about 3 minutes on 2 idle cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SWEEP = ("quality.sifid.dims=192", "quality.sifid.dims=64")  # the two dims the SIFID allows (64: the authors')


def _dvc(clone: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
           "HF_HUB_OFFLINE": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}  # fmt: skip
    env.pop("PYTHONPATH", None)  # the clone's own code, as a user's clone would run it
    env["PYTHONPATH"] = str(clone)
    r = subprocess.run([str(BIN / "dvc"), *args], cwd=clone, capture_output=True, text=True, env=env,
                       timeout=timeout)  # fmt: skip
    assert r.returncode == 0, f"dvc {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.long
@pytest.mark.slow
def test_two_value_sweep_compares_in_exp_show_metrics_diff_and_plots_diff(repo_root, tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo_root), str(clone)], check=True, capture_output=True)
    names = []
    for i, value in enumerate(SWEEP):
        name = f"sweep{i}"
        _dvc(clone, "exp", "run", "-n", name, "-S", value)
        names.append(name)

    rows = json.loads(_dvc(clone, "exp", "show", "--json").stdout)
    found = {}
    for row in rows:  # baseline rows, each with its experiments
        for exp in row.get("experiments") or []:
            for r in exp.get("revs", []):
                if r.get("name") in names:
                    found[r["name"]] = r["data"]
    assert set(found) == set(names), f"experiments in dvc exp show: {sorted(found)}"
    for name, value in zip(names, SWEEP, strict=True):
        data = found[name]
        params = data["params"]["params.yaml"]["data"]
        assert params["quality"]["sifid"]["dims"] == int(value.split("=")[1])
        metrics = data["metrics"]
        quality = metrics["metrics/headline/brief_quality.json"]["data"]  # the brief set (issue 27)
        assert quality["sifid"], "no SIFID column"
        assert metrics["metrics/headline/brief_segment_A.json"]["data"]["A"], "no grid A IoU column"

    full = ["metrics/headline/quality.json", "metrics/headline/segment_A.json"]  # the README's --targets line
    diff = json.loads(_dvc(clone, "metrics", "diff", names[0], names[1], "--json", "--targets", *full).stdout)
    sifid = {k: v for k, v in diff.get("metrics/headline/quality.json", {}).items() if k.startswith("sifid.")}
    assert sifid and any(v["diff"] for v in sifid.values()), f"SIFID did not change between dims: {sifid}"
    # grid A does not depend on the SIFID dims: the second experiment reused the first's results
    seg = diff.get("metrics/headline/segment_A.json", {})
    assert all(not v.get("diff") for v in seg.values()), seg

    out = tmp_path / "plots"
    _dvc(clone, "plots", "diff", names[0], names[1], "-o", str(out))
    html = (out / "index.html").read_text()
    for title in ("Grid B: test IoU against", "FID of K fakes", "SIFID of SinGAN-Seg samples"):
        assert title in html, f"plot {title!r} missing from dvc plots diff"
