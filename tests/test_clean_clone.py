"""A fresh clone is consistent: the committed dvc.lock matches the committed code (issue 18).

Otherwise `make demo` on a fresh clone re-runs stages whose code "changed", rewrites
dvc.lock and stamps its report `-dirty`. The check is `dvc status` on a clone of HEAD: the
outputs are absent there (they are not in git), but no code or params dependency of any
stage may differ from what dvc.lock recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


@pytest.mark.skipif(os.environ.get("SINGANSEG_SKIP_LOCK_CHECK") == "1", reason="asked to skip")
def test_fresh_clone_has_no_changed_code_dependency(repo_root, tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo_root), str(clone)], check=True, capture_output=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    r = subprocess.run([str(BIN / "dvc"), "status", "--json"], cwd=clone, capture_output=True, text=True,
                       env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    changed = []
    for stage, entries in json.loads(r.stdout or "{}").items():
        for entry in entries:
            if not isinstance(entry, dict):
                changed.append(f"{stage}: {entry}")  # e.g. "changed command"
                continue
            for path, state in entry.get("changed deps", {}).items():
                if state == "modified" and (clone / path).is_file():
                    changed.append(f"{stage}: {path} {state}")
            if "changed params" in entry:
                changed.append(f"{stage}: params {entry['changed params']}")
    assert not changed, "dvc.lock is out of date with the committed code (run `make demo` and commit dvc.lock):\n" + "\n".join(changed)


def _env() -> dict[str, str]:
    # the clone's own code: `python -m` imports from the stage's cwd, never from PYTHONPATH
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}  # fmt: skip


def test_dvcignore_keeps_times_out_of_output_hashes(repo_root, tmp_path):
    """The repository's .dvcignore: a stage whose output folder holds a `*.timing.json` sidecar
    and a `train_many*.json` record that differ on every run gets the same dvc.lock from a
    forced rerun (real DVC), and DVC neither caches them nor reports the output changed."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=tmp_path, check=True, env=_env())
    (tmp_path / ".dvcignore").write_text((repo_root / ".dvcignore").read_text())
    (tmp_path / "stage.py").write_text(
        "import json, pathlib, time\no = pathlib.Path('out/a')\no.mkdir(parents=True, exist_ok=True)\n"
        "(o / 'model.json').write_text('{}')\nt = json.dumps({'seconds': time.time()})\n"
        "(o / 'model.timing.json').write_text(t)\n(o.parent / 'train_many.shard-0-of-4.json').write_text(t)\n")
    (tmp_path / "dvc.yaml").write_text(f"stages:\n  s:\n    cmd: {sys.executable} stage.py\n    outs:\n      - out\n")
    dvc = [str(BIN / "dvc")]
    subprocess.run([*dvc, "repro", "-q"], cwd=tmp_path, check=True, env=_env(), timeout=120)
    first = (tmp_path / "dvc.lock").read_text()
    sidecar = (tmp_path / "out" / "a" / "model.timing.json").read_text()
    subprocess.run([*dvc, "repro", "-q", "-f"], cwd=tmp_path, check=True, env=_env(), timeout=120)
    assert (tmp_path / "out" / "a" / "model.timing.json").read_text() != sidecar  # the times did change
    assert (tmp_path / "dvc.lock").read_text() == first
    assert "nfiles: 1" in first  # model.json only
    (tmp_path / "out" / "a" / "model.timing.json").write_text("{}")
    status = subprocess.run([*dvc, "status", "--json"], cwd=tmp_path, capture_output=True, text=True, env=_env())
    assert json.loads(status.stdout or "{}") == {}


@pytest.mark.long
@pytest.mark.slow  # the whole smoke pipeline: 2 min on 2 idle cores, 5-15 min under load
def test_fresh_clone_make_demo_leaves_git_status_clean(repo_root, tmp_path):
    """issue 18 acceptance: after `git clone` and `make demo` (dvc repro of the smoke profile),
    `git status` is clean: dvc.lock, reports/smoke/ and metrics/headline/ come out byte for
    byte as committed (the run's times are in no hash and no committed file; the report's
    stamp names the commit before the one that added them). Needs HEAD to hold the outputs
    of a run of HEAD's code: commit them after `make demo`, then this test holds."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo_root), str(clone)], check=True, capture_output=True)
    r = subprocess.run([str(BIN / "dvc"), "repro"], cwd=clone, capture_output=True, text=True, env=_env(),
                       timeout=3600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # every stage but the report ran (a fresh clone has no cache); DVC skips the report when its
    # deps come out with the committed hashes (its outs are committed): force it, so that the
    # check covers the report's own bytes too
    assert "Running stage 'segment@B'" in r.stdout, r.stdout[-3000:]
    r = subprocess.run([str(BIN / "dvc"), "repro", "-f", "-s", "report"], cwd=clone, capture_output=True, text=True,
                       env=_env(), timeout=600)  # fmt: skip
    assert r.returncode == 0 and "Running stage 'report'" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    diff = subprocess.run(["git", "diff", "--stat"], cwd=clone, capture_output=True, text=True).stdout
    if status:
        # The README's claim is byte for byte on the CPU that made the committed run (same
        # model, same thread count); on another x86 CPU the first SinGAN or baseline training
        # can compute other bytes from the same inputs (issue 26 item 10, benchmarks/README.md
        # "MKL"). That is not checkable here, and is the only difference allowed: a stage whose
        # inputs differ, or the CPU-independent data stage differing, still fails.
        from pipeline.infra.reproduced import first_difference

        committed = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=clone, capture_output=True, text=True).stdout
        first = first_difference(yaml.safe_load((clone / "dvc.lock").read_text()), yaml.safe_load(committed))
        if first and "same code, params and inputs" in first and not first.startswith("stage data "):
            pytest.skip(f"the committed run came from another CPU (not reproducible byte for byte here, as the README says): {first}")
    assert status == "", f"make demo on a fresh clone changed committed files:\n{status}\n{diff}"
