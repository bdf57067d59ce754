"""Issue 26 item 10: `make demo`'s last line says whether the committed run was reproduced,
and if not which stage first differed (checked against deliberately changed locks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.infra.reproduced import verdict

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def clone(tmp_path) -> Path:
    """A git repository whose HEAD holds this repository's dvc.lock."""
    root = tmp_path / "clone"
    root.mkdir()
    (root / "dvc.lock").write_text((REPO / "dvc.lock").read_text())
    for args in (["init", "-q"], ["add", "dvc.lock"],
                 ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "committed run"]):  # fmt: skip
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def _edit(root: Path, fn) -> None:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    fn(lock["stages"])
    (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))


def test_an_identical_lock_is_reported_reproduced(clone):
    line = verdict(clone / "dvc.lock")
    assert line.startswith("demo: reproduced the committed run of ") and "byte for byte" in line


def test_other_outputs_from_the_same_inputs_name_the_first_stage_and_the_cpu(clone):
    def change(stages):  # what another CPU does: train_singan@0's models differ, and so does all after
        for name in ("train_singan@0", "generate", "quality"):
            stages[name]["outs"][0]["md5"] = "0" * 32 + ".dir"
        stages["generate"]["deps"][0]["md5"] = "1" * 32 + ".dir"  # generate's input is @0's output

    _edit(clone, change)
    line = verdict(clone / "dvc.lock")
    assert line.startswith("demo: did NOT reproduce the committed run of ")
    assert "stage train_singan@0 first differed (output models/singan/shard0)" in line, line
    assert "same code, params and inputs" in line and "floating-point" in line
    assert "1 tracked result file(s) changed" in line
    assert "\n" not in line


def test_changed_code_is_named_as_the_cause(clone):
    def change(stages):
        stages["data"]["deps"][0]["md5"] = "2" * 32 + ".dir"
        stages["data"]["outs"][0]["md5"] = "3" * 32 + ".dir"

    _edit(clone, change)
    line = verdict(clone / "dvc.lock")
    assert "stage data first differed" in line and "its inputs differ" in line and "dependency pipeline/data" in line, line


def test_the_module_prints_one_line_and_exits_0(clone):
    _edit(clone, lambda st: st["report"]["outs"][0].update(md5="4" * 32 + ".dir"))
    proc = subprocess.run([sys.executable, "-m", "pipeline.infra.reproduced"], cwd=clone, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "stage report first differed" in proc.stdout


def test_make_demo_ends_with_the_verdict():
    recipe = (REPO / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert recipe.strip().splitlines()[-1].strip() == "@$(BIN)/python -m pipeline.infra.reproduced"
