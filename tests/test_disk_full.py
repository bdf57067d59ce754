"""Issue 26 item 6: a full disk during `train` or the data stage is one line naming the
folder; partial files are removed (no stray scale_<n>.timing.json, no half tensors file) and
what was already written survives. (`sample`: tests/test_sample_folder.py.)"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors import SafetensorError

from singanseg import ckpt
from singanseg import io as sio
from singanseg.cli import main
from singanseg.io import write_png
from singanseg.saved_model import read_model_json

TINY = ["--set", "max_size=24", "--set", "min_size=16", "--set", "nfc=4", "--set", "min_nfc=4",
        "--set", "niter=2", "--set", "lr_milestone=2"]  # fmt: skip
# what safetensors raises on a full disk (its Rust error, not an OSError)
REPO = Path(__file__).resolve().parents[1]
STORAGE_FULL = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'


def cli(*args: str) -> subprocess.CompletedProcess:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


@pytest.fixture()
def pair(tmp_path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    mask = np.zeros((24, 32), np.uint8)
    mask[6:18, 8:20] = 255
    return (write_png(tmp_path / "in" / "x.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)),
            write_png(tmp_path / "in" / "x_mask.png", mask))  # fmt: skip


def test_train_on_a_full_disk_is_one_line_and_leaves_no_partial_scale(pair, tmp_path, monkeypatch):
    real = ckpt.save_file
    calls = {"n": 0}

    def save_file(tensors, path):
        calls["n"] += 1
        if calls["n"] == 2:  # scale 1: half a file, then the disk is full
            Path(path).write_bytes(b"\0" * 100)
            raise SafetensorError(STORAGE_FULL)
        return real(tensors, path)

    monkeypatch.setattr(ckpt, "save_file", save_file)
    out = tmp_path / "m"
    r = cli("train", str(pair[0]), str(pair[1]), "--out", str(out), "--profile", "smoke", "--seed", "1", "--quiet", *TINY)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{out}: disk full" in lines[0] and "needed" in lines[0], lines
    left = sorted(p.name for p in out.iterdir())
    assert not [n for n in left if n.startswith("scale_1") or n.startswith(".")], left  # no stray timing, no temporary
    assert read_model_json(out)["finished_scales"] == 1  # scale 0 was kept
    monkeypatch.undo()
    r = cli("train", str(pair[0]), str(pair[1]), "--out", str(out), "--profile", "smoke", "--seed", "1", "--quiet", *TINY)
    assert r.returncode == 0, r.stderr
    assert read_model_json(out)["complete"] is True


def test_the_data_stage_on_a_full_disk_is_one_line_and_keeps_the_previous_data(tmp_path, monkeypatch):
    from pipeline.data.prepare import main as data_main

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"], raw["data"]["track"] = "smoke", False
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "d"
    assert data_main(["--params", str(params), "--out", str(out)]) == 0
    before = {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "real").rglob("*")) if p.is_file()}
    raw["data"]["phantom"]["seed"] += 1
    params.write_text(yaml.safe_dump(raw))
    real = sio._atomic_write
    count = {"n": 0}

    def write(path, fn):
        count["n"] += 1
        if count["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, fn)

    monkeypatch.setattr(sio, "_atomic_write", write)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert data_main(["--params", str(params), "--out", str(out)]) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and f"{out / 'real'}: disk full" in lines[0], lines
    after = {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "real").rglob("*")) if p.is_file()}
    assert after == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_atomic_writes_on_a_real_full_file_system(tmp_path):
    """A real full disk (a 64 KB tmpfs; root only): write_png fails in one line naming the
    folder and leaves no temporary."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        rng = np.random.default_rng(0)
        with pytest.raises(sio.DiskFullError, match=rf"^{mnt / 'images'}: disk full \("):
            for i in range(100):
                write_png(mnt / "images" / f"a_{i}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        assert not [p for p in (mnt / "images").iterdir() if p.name.startswith(".")]
        assert all(p.stat().st_size > 0 for p in (mnt / "images").iterdir())
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
