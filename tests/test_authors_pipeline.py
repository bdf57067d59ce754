"""Issue 24 acceptance: the smoke pipeline starting from the authors' models.

The README's `dvc exp run -S singan.source=authors -S singan.authors_dir=...`, run as written
in a fresh copy of the working tree, on checkpoints that the authors' own training code
(singan_seg_polyp 1.0.7, tests/helpers.py::authors_train) wrote for the phantom images of the
smoke profile, numbered as their release is (id n = the n-th name in natural-sort order,
paper.md s3): every stage after `data` runs, train_singan trains nothing, and the report
names the source of its models.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import authors_train, run_pipeline, worktree_copy

from singanseg.api import read_inputs
from singanseg.authors import authors_numbering

# the whole smoke pipeline plus 8 tiny trainings by the authors' code: 26.5 minutes wall on the 2 shared
# cores (load average 12-16 from other work; 10 CPU-minutes), a few minutes on an idle machine
pytestmark = [pytest.mark.long, pytest.mark.slow, pytest.mark.reference]

BIN = Path(sys.executable).parent
README_DIR = "/path/to/TrainedModels"
LATER = ("train_singan@0", "train_singan@1", "train_singan@2", "train_singan@3", "generate", "stylize@1to1",
         "stylize@1to1000", *(f"{s}@{g}" for s in ("train_baselines", "generate_baselines") for g in ("dcgan", "progan", "fastgan")),
         "quality", "segment@A", "segment@B", "report")  # fmt: skip


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default: mlflow.db in the copy
    return env


def _readme_line(repo_root: Path) -> list[str]:
    import re

    for block in re.findall(r"```bash\n(.*?)```", (repo_root / "README.md").read_text(), re.S):
        for line in block.splitlines():
            if "exp run" in line and "singan.source=authors" in line and README_DIR in line:
                return line.split("  #")[0].split()
    raise AssertionError("README.md has no `dvc exp run -S singan.source=authors -S singan.authors_dir=...` line")


def _authors_release(data_dir: Path, work: Path) -> Path:
    """<release>/<n>/{Gs,Zs,reals,NoiseAmp}.pth for every pair of `data_dir`, trained by the
    authors' code at the smoke profile's sizes (max_size 40, min_size 20, nfc 8; 2 iterations)."""
    release = work / "TrainedModels"
    saved = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is fastest (tests/test_singan_equivalence.py)
    try:
        for n, pair in authors_numbering(data_dir):
            rgba, _ = read_inputs(pair.image, pair.mask)
            trained = authors_train(work / "train" / str(n), rgba, seed=n, nfc=8, niter=2, max_size=40, min_size=20)
            (release / str(n)).mkdir(parents=True)
            for f in ("Gs.pth", "Zs.pth", "reals.pth", "NoiseAmp.pth"):
                shutil.copy(trained / f, release / str(n) / f)
    finally:
        torch.set_num_threads(saved)
    return release


def test_readme_authors_line_runs_every_stage_and_the_report_names_the_source(repo_root, tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    root = worktree_copy(repo_root, tmp_path / "project")
    t0 = time.monotonic()
    run_pipeline([str(BIN / "dvc"), "repro", "data"], root, _env(), 600, tmp_path / "data.log")
    release = _authors_release(root / "data" / "real", tmp_path / "authors")
    pairs = [p.id for _, p in authors_numbering(root / "data" / "real")]
    assert sorted(p.name for p in release.iterdir()) == sorted(str(n) for n in range(1, len(pairs) + 1))

    args = [str(BIN / "dvc"), *[a.replace(README_DIR, str(release)) for a in _readme_line(repo_root)[1:]]]
    log = run_pipeline(args, root, _env(), 1800, tmp_path / "exp.log")
    (tmp_path / "seconds").write_text(f"{time.monotonic() - t0:.0f}\n")
    ran = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}
    assert set(LATER) <= ran, sorted(set(LATER) - ran)

    # every model was imported, none trained, each from its pair's authors' id
    models = {p.parent.name: json.loads(p.read_text()) for p in root.glob("models/singan/shard*/*/model.json")}
    assert sorted(models) == sorted(pairs)
    assert all(m["source"]["kind"] == "authors" and m["seed"] is None for m in models.values())
    assert {i: models[i]["source"]["id"] for i in pairs} == {i: str(n) for n, i in enumerate(pairs, 1)}
    assert not list(root.glob("models/singan/shard*/train_many*.json"))
    # the later stages ran on their samples
    assert len(list((root / "synthetic/singan/gss0/images").iterdir())) == 2 * len(pairs)  # smoke: 2 per image
    assert list((root / "metrics/segmentation/A").rglob("fold*_seed0.json"))
    report = (root / "reports/smoke/README.md").read_text()
    assert (f"- SinGAN-Seg models: {len(pairs)} imported from the authors' released checkpoints "
            "(`singan.source: authors`)") in report  # fmt: skip
    overrides = next(line for line in report.splitlines() if line.startswith("- Params set for this run: "))
    assert f"`singan.authors_dir={release}`" in overrides and "`singan.source=authors`" in overrides
