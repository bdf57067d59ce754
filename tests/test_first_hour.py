"""Issue 27: README lines without activation, per-run report folders, make test ARGS."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.report.build import header, report_folder

ROOT = Path(__file__).resolve().parent.parent


def clean_env() -> dict:
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")} | {"PATH": path}


def test_report_folder_per_run():
    assert report_folder("smoke", "phantom", None) == "smoke"
    assert report_folder("cpu", "folder", "../shared/data/kvasir-seg-200") == "cpu"
    assert report_folder("smoke", "folder", "/data/my pairs") == "smoke-folder-my-pairs"
    assert report_folder("cpu", "kvasir-seg", None) == "cpu-kvasir-seg"


def test_folder_header_never_says_phantom():
    text = header("smoke", "abc", {}, "folder /d/mine", data=("folder", "/d/mine", 8))
    assert "phantom" not in text.lower()
    assert "`/d/mine`" in text and "8 pairs" in text


def test_wrong_interpreter_fails_in_one_line(tmp_path):
    (tmp_path / "pipeline").mkdir()
    shutil.copy(ROOT / "pipeline" / "__init__.py", tmp_path / "pipeline")
    (tmp_path / "pipeline" / "x.py").write_text("print('ran')\n")
    # -S: no site-packages, so the suite's dependencies are missing; no .venv beside this copy
    r = subprocess.run([sys.executable, "-S", "-m", "pipeline.x"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "ran" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "lacks the suite's dependencies" in lines[0] and "pipeline.x" in lines[0]


def test_readme_cheap_lines_in_clean_shell():
    for cmd in (".venv/bin/python -m pipeline.data.feasibility", "python -m pipeline.data.feasibility",
                ".venv/bin/singanseg --help", ".venv/bin/python -m pipeline.plan --profile paper"):
        r = subprocess.run(cmd, shell=True, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])


def test_make_test_passes_args():
    r = subprocess.run(["make", "-n", "test", "ARGS=-k foo --durations=15"], cwd=ROOT, capture_output=True, text=True)
    assert '-m "not long" -k foo --durations=15' in r.stdout
