"""Issue 26 item 1: a complete model whose image/mask bytes changed is never skipped.

`singanseg train-many DIR --out M`, then the same names with other pixels: the models are
retrained with `--on-incompatible retrain` (and refused, left untouched, by default) in the
local path (--batch 1), the batched path (--batch 2) and the Ray planner (plan_key); the
untouched models survive byte for byte.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from singanseg.config import preset
from singanseg.executors import Skipped
from singanseg.io import list_pairs, write_png
from singanseg.saved_model import read_model_json
from singanseg.train_many import image_seed
from singanseg.train_many_batched import plan_key

TINY = dict(max_size=28, min_size=16, nfc=8, min_nfc=8, niter=2, lr_milestone=2)
SETS = [f"--set={k}={v}" for k, v in TINY.items()]


def _pair(root, name, rng):
    img = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:32, :40]
    mask = (((yy - 16) ** 2 + (xx - 20) ** 2) < 100).astype(np.uint8) * 255
    write_png(root / "images" / f"{name}.png", img)
    write_png(root / "masks" / f"{name}.png", mask)


def _cli(data, out, batch, *extra):
    cmd = [sys.executable, "-m", "singanseg.cli", "train-many", str(data), "--out", str(out),
           "--profile", "smoke", *SETS, "--seed", "3", "--batch", str(batch), "--quiet",
           "--device", "cpu", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 2])
def test_changed_image_bytes_are_not_skipped(tmp_path, batch):
    data, out = tmp_path / "data", tmp_path / "models"
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        _pair(data, name, rng)
    first = _cli(data, out, batch)
    assert first.returncode == 0, first.stderr
    kept = {p.name: p.read_bytes() for p in (out / "c").iterdir() if "timing" not in p.name}
    sha_a = read_model_json(out / "a")["input_sha256"]

    rng = np.random.default_rng(1)  # a and b: other pixels under the same names
    _pair(data, "a", rng)
    _pair(data, "b", rng)
    cfg = preset("smoke", **TINY)
    pairs = {p.id: p for p in list_pairs(data)}
    # the Ray planner (driver side) does not take them for finished either
    assert not isinstance(plan_key(pairs["a"], out / "a", cfg, image_seed(3, "a")), Skipped)
    assert isinstance(plan_key(pairs["c"], out / "c", cfg, image_seed(3, "c")), Skipped)

    refused = _cli(data, out, batch)  # default: refused, nothing touched
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "2 skipped" not in refused.stdout and "another image/mask" in refused.stdout
    assert read_model_json(out / "a")["input_sha256"] == sha_a

    again = _cli(data, out, batch, "--on-incompatible", "retrain")
    assert again.returncode == 0, again.stderr
    assert "2 trained" in again.stdout and "1 skipped" in again.stdout, again.stdout
    assert read_model_json(out / "a")["input_sha256"] != sha_a
    assert read_model_json(out / "a")["complete"]
    assert {p.name: p.read_bytes() for p in (out / "c").iterdir() if "timing" not in p.name} == kept
