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
SHARED = ("io", "typed", "ckpt", "device", "vgg", "executors", "tracker", "_version")
METHOD = ("api", "saved_model", "networks", "training", "style_transfer", "pyramid", "training_batched", "sample")


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


def _pipeline_graph() -> dict[str, set[str]]:
    """Every import between pipeline modules, lazy (function-level) imports included."""
    modules = {}
    for path in (ROOT / "pipeline").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pipeline"):
                for alias in node.names:  # `from pipeline.report import plots` is the module plots
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("pipeline"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_import_circle_inside_the_pipeline():
    # issue 25: three of the project's import circles were in pipeline/ (a stage importing
    # another for its params); a circle is any module that reaches itself
    graph = _pipeline_graph()

    def reaches(start: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return False

    assert sorted(m for m in graph if reaches(m)) == []


def test_the_pipeline_top_level_holds_entry_points_the_runner_and_packages():
    # what a stage reads and writes is in the package folders; dvc.yaml names the folders
    top = sorted(p.name for p in (ROOT / "pipeline").iterdir() if p.suffix == ".py")
    runner = {"__init__.py", "stage.py"}
    entry = {f"{name}.py" for name in ("train_singan", "generate", "stylize", "train_baselines",
                                       "generate_baselines", "quality")}  # fmt: skip
    assert set(top) - runner - entry == set()
    dvc = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    for package in [p for p in (ROOT / "pipeline").iterdir() if (p / "__init__.py").is_file()]:
        listed = [line.strip() for line in dvc.splitlines()
                  if line.strip().startswith(f"- pipeline/{package.name}/")]  # fmt: skip
        assert listed == [], f"dvc.yaml lists files of pipeline/{package.name}/ one by one: {listed}"
