"""The README's commands: the two set-up commands exist as written, and the library commands run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BIN = Path(sys.executable).parent


def _blocks(readme: str) -> list[list[str]]:
    return [
        [line.split("#")[0].strip() for line in b.strip().splitlines() if line.split("#")[0].strip()]
        for b in re.findall(r"```bash\n(.*?)```", readme, re.S)
    ]


def test_the_two_commands_and_ci(repo_root):
    first = _blocks((repo_root / "README.md").read_text())[0]
    assert first == ["make demo", "make test"]
    makefile = (repo_root / "Makefile").read_text()
    assert re.search(r"^demo: venv\n\t.*dvc repro", makefile, re.M)
    assert re.search(r"^test: venv\n\t.*pytest", makefile, re.M)
    ci = (repo_root / ".ci/run").read_text()
    assert "make test" in ci.split("\n", 3)[-1]


@pytest.mark.slow
@pytest.mark.shared_data
def test_library_commands_run_as_written(repo_root, kvasir_dir, tmp_path):
    """The README's singanseg block, with tiny iteration counts and random VGG weights offline."""
    block = next(b for b in _blocks((repo_root / "README.md").read_text()) if any("singanseg train " in c for c in b))
    first = sorted((kvasir_dir / "images").iterdir())[:2]
    shutil.copy(first[0], tmp_path / "polyp1.jpg")
    shutil.copy(kvasir_dir / "masks" / first[0].name, tmp_path / "polyp1_mask.png")
    (tmp_path / "real").mkdir()
    shutil.copy(first[0], tmp_path / "real" / "polyp1.jpg")
    data = tmp_path / "your_data"
    for d in ("images", "masks"):
        (data / d).mkdir(parents=True)
    for i, p in enumerate(first):  # small copies keep train-many quick
        Image.open(p).convert("RGB").resize((120, 100)).save(data / "images" / f"p{i}.png")
        m = np.asarray(Image.open(kvasir_dir / "masks" / p.name).convert("L").resize((120, 100)))
        Image.fromarray(np.where(m > 127, 255, 0).astype(np.uint8)).save(data / "masks" / f"p{i}.png")
    fast = {"train": ["--set", "niter=4"], "train-many": ["--set", "niter=3"], "stylize": ["--weights", "random", "--steps", "2"]}
    for cmd in block:
        args = cmd.split()
        assert args[0] == ".venv/bin/singanseg"
        args = [str(BIN / "singanseg"), *[str(data) if a == "/path/to/your/data" else a for a in args[1:]]]
        args += fast.get(args[1], [])
        r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{cmd}\n{r.stderr[-3000:]}"
    assert sorted(p.name for p in (tmp_path / "samples/images").iterdir()) == [f"polyp1_{n}.png" for n in range(10)]
    assert len(list((tmp_path / "stylized/images").iterdir())) == 10
    assert {p.name for p in (tmp_path / "models").iterdir() if p.is_dir()} >= {"polyp1", "p0", "p1"}
