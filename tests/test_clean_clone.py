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
