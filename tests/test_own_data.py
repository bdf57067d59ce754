"""The README's own-data line, run as a user runs it: real DVC in a git clone of HEAD (issue 18).

`dvc exp run -S data.source=folder -S data.folder=DIR` on a folder of real pairs reports
`folder` with the right count, or refuses in one line naming the minimum; a failed
`-S profile=paper` run keeps the data stage's outputs. The fast tests run the `data` stage
only (its name as the target); the slow one runs the whole pipeline.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.data.feasibility import minimum_pairs

BIN = Path(sys.executable).parent
README_DIR = "/path/to/your/data"


def _readme_line(repo_root: Path) -> list[str]:
    """The README's `dvc exp run -S data.source=folder ...` command, as words."""
    for block in re.findall(r"```bash\n(.*?)```", (repo_root / "README.md").read_text(), re.S):
        for line in block.splitlines():
            if "exp run" in line and "data.source=folder" in line and README_DIR in line:
                return line.split("#")[0].split()
    raise AssertionError("README.md has no `dvc exp run -S data.source=folder -S data.folder=...` line")


@pytest.fixture()
def clone(repo_root, tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    path = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo_root), str(path)], check=True, capture_output=True)
    return path


def _dvc(clone: Path, args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    assert args[0].endswith("dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(clone),
           "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}  # fmt: skip
    return subprocess.run([str(BIN / "dvc"), *args[1:]], cwd=clone, capture_output=True, text=True,
                          env=env, timeout=timeout)  # fmt: skip


def _pairs(kvasir_dir: Path, n: int, dest: Path) -> Path:
    for sub in ("images", "masks"):
        (dest / sub).mkdir(parents=True)
    for image in sorted((kvasir_dir / "images").iterdir())[:n]:
        shutil.copy(image, dest / "images" / image.name)
        shutil.copy(kvasir_dir / "masks" / image.name, dest / "masks" / image.name)
    return dest


def _manifest(clone: Path) -> list[dict]:
    with open(clone / "data" / "real" / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.shared_data
def test_readme_own_data_line_runs_the_data_stage_on_real_pairs(repo_root, clone, kvasir_dir, tmp_path):
    need = minimum_pairs(clone / "params.yaml")  # the committed profile: smoke
    line = _readme_line(repo_root)
    folder = _pairs(kvasir_dir, need, tmp_path / "pairs")
    args = [a.replace(README_DIR, str(folder)) for a in line]
    r = _dvc(clone, [*args, "-S", "data.track=false", "data"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"data: {need} pairs from folder -> data/real" in r.stdout
    rows = _manifest(clone)
    assert len(rows) == need and {row["source"] for row in rows} == {"folder"}

    # a folder with one pair fewer: refused by the data stage, in one line, stating the minimum
    fewer = _pairs(kvasir_dir, need - 1, tmp_path / "fewer")
    args = [a.replace(README_DIR, str(fewer)) for a in line]
    r = _dvc(clone, [*args, "-S", "data.track=false", "data"])
    assert r.returncode != 0
    refusal = [x for x in r.stderr.splitlines() + r.stdout.splitlines() if x.startswith("data: error:")]
    assert len(refusal) == 1, r.stderr
    assert f"needs at least {need} pairs, {need - 1} given" in refusal[0]
    assert len(_manifest(clone)) == need  # the previous outputs are kept


def test_failed_paper_run_keeps_the_data_and_says_how_to_get_back(repo_root, clone, tmp_path):
    r = _dvc(clone, ["dvc", "exp", "run", "-S", "data.track=false", "data"])  # the smoke data
    assert r.returncode == 0, r.stderr[-2000:]
    before = sorted(os.listdir(clone / "data" / "real" / "images"))
    folds = (clone / "data" / "folds.csv").read_text()
    # the paper profile without the Kvasir-SEG zip: an unreachable URL and an empty cache make
    # the download fail here whether or not this machine is online
    r = _dvc(clone, ["dvc", "exp", "run", "-S", "profile=paper", "-S", "data.track=false",
                     "-S", "data.kvasir.url=http://127.0.0.1:9/kvasir-seg.zip",
                     "-S", f"data.kvasir.cache_dir={tmp_path / 'no-cache'}", "data"])  # fmt: skip
    assert r.returncode != 0
    assert "could not download Kvasir-SEG" in r.stderr + r.stdout
    assert sorted(os.listdir(clone / "data" / "real" / "images")) == before
    assert (clone / "data" / "folds.csv").read_text() == folds
    # the README's way back: the committed params, then the outputs of dvc.lock
    readme = (repo_root / "README.md").read_text()
    assert "git checkout params.yaml" in readme and "dvc checkout" in readme
    subprocess.run(["git", "checkout", "params.yaml"], cwd=clone, check=True)
    assert "profile: smoke" in (clone / "params.yaml").read_text()


def _fresh_shell_env() -> dict:
    """A shell with nothing activated: no venv on PATH, no PYTHONPATH, no VIRTUAL_ENV."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and Path(p).resolve() != BIN.resolve() and ".venv" not in p)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    return env | {"PATH": path, "DVC_NO_ANALYTICS": "1"}


def _git_status(clone: Path) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal"], cwd=clone, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return [line[3:] for line in out.splitlines()]


@pytest.mark.long
@pytest.mark.slow  # the whole smoke pipeline: ~12 CPU-minutes (30 min wall on 2 cores shared with other runs)
@pytest.mark.shared_data
def test_readme_own_data_line_whole_pipeline_reports_folder(repo_root, clone, kvasir_dir, tmp_path):
    """The README's line as written (`.venv/bin/dvc exp run ...`) in a fresh shell on 8 real pairs
    (issue 27's acceptance): its own report folder, folder and pair count in the header, no
    "phantom", the committed smoke report untouched, and `git status` showing what the README says."""
    from helpers import run_pipeline

    n = max(minimum_pairs(clone / "params.yaml"), 8)
    folder = _pairs(kvasir_dir, n, tmp_path / "pairs")
    line = [a.replace(README_DIR, str(folder)) for a in _readme_line(repo_root)]
    assert line[0] == ".venv/bin/dvc", line
    (clone / ".venv").symlink_to(BIN.parent)  # what `make demo` creates in a clone (git-ignored)
    committed = (clone / "reports" / "smoke" / "README.md").read_bytes()
    assert _git_status(clone) == []
    log = run_pipeline(line, clone, _fresh_shell_env(), 3600, tmp_path / "own-data.log")
    assert f"data: {n} pairs from folder" in log
    # issue 27 s2: an own-data run writes its own report folder, never the committed smoke one,
    # states folder and pair count, and never says phantom
    own = f"reports/smoke-folder-{folder.name}/"
    report = (clone / own / "README.md").read_text()
    assert f"- Data: `folder`, folder `{folder}`, {n} pairs" in report
    assert "phantom" not in report.lower()
    assert (clone / "reports" / "smoke" / "README.md").read_bytes() == committed
    assert f"smoke-folder-{folder.name}/README.md" in (clone / "reports" / "README.md").read_text()
    assert len(_manifest(clone)) == n
    # `git status` shows only what the README says the run changes
    readme = " ".join((repo_root / "README.md").read_text().split())
    said = "`git status` then shows `params.yaml`, `dvc.lock`, `metrics/headline/` and `reports/README.md` modified"
    assert said in readme and "and the new report folder untracked" in readme
    changed = _git_status(clone)
    assert own in changed, changed
    assert all(path in ("params.yaml", "dvc.lock", "reports/README.md", own) or path.startswith("metrics/headline/")
               for path in changed), changed  # fmt: skip
