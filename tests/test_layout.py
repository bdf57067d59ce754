"""The layers stand alone: the libraries never import the pipeline, and the shared
conventions (I/O, typed configs, checkpoints, devices, executors, tracking) import no model."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("io", "typed", "ckpt", "device", "vgg", "executors", "tracking")
METHOD = ("api", "model", "models", "training", "style", "pyramid", "batched", "sample")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_libraries_never_import_the_pipeline():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in ("singanseg", "baselines")
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imports(path))
        if name == "pipeline" or name.startswith("pipeline.")
    ]
    assert offenders == []


def test_shared_modules_import_no_model():
    # a fresh interpreter: this one has imported the whole suite already
    code = (
        "import json, sys\n"
        + "".join(f"import singanseg.{m}\n" for m in SHARED)
        + "print(json.dumps(sorted(m for m in sys.modules if m.startswith('singanseg'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True, timeout=120)  # fmt: skip
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {f"singanseg.{m}" for m in SHARED} <= loaded
    assert loaded & {f"singanseg.{m}" for m in METHOD} == set()
