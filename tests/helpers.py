"""Helpers shared by test modules (no test module imports another): the tiny segmentation
project that tests/test_segment_*.py build, and the tiny UNet++ they train."""

from __future__ import annotations

import numpy as np

from pipeline.segment.config import GridBParams, SegmentParams, TrainParams
from pipeline.segment.model import ModelParams
from singanseg.io import write_png


def make_project(root, n_per_fold=(6, 5, 5), size=24, synthetic=("singan", "singan_st1to1000"), samples=3, seed=0):
    """A tiny data contract in `root`: real pairs, folds.csv, SinGAN-Seg-like synthetic sets.

    Ids are r00, r01, ... in sequential folds (the paper's split). Synthetic pairs exist for
    *every* real id, test folds included, so that leakage would be visible.
    """
    rng = np.random.default_rng(seed)
    ids, rows = [], []
    for fold, n in enumerate(n_per_fold):
        for _ in range(n):
            i = f"r{len(ids):02d}"
            ids.append(i)
            rows.append(f"{i},{fold}")

    def pair(folder, name):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4 : size // 2, size // 4 : 3 * size // 4] = 255
        write_png(folder / "images" / f"{name}.png", img)
        write_png(folder / "masks" / f"{name}.png", mask)

    for i in ids:
        pair(root / "data/real", i)
    (root / "data/folds.csv").write_text("id,fold\n" + "\n".join(rows) + "\n")
    for src in synthetic:
        for i in ids:
            for n in range(samples):
                pair(root / "synthetic" / src / "gss0", f"{i}_{n}")
    return ids


def fold_of(root):
    lines = (root / "data/folds.csv").read_text().split()[1:]
    return {line.split(",")[0]: int(line.split(",")[1]) for line in lines}


PARAMS = SegmentParams(clean_val_fraction=0.25, grid_b=GridBParams(samples_per_image=3))
TINY_MODEL = ModelParams(encoder_name="resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 8))
TINY_TRAIN = TrainParams(epochs=2, batch_size=4, img_size=32, pyra_size=None, lr_change_epoch=1)


def run_pipeline(cmd: list[str], cwd, env: dict, timeout: float, log) -> str:
    """Run a `dvc repro` / `dvc exp run` with stdout and stderr into one log file; return the log.

    On a timeout or a failure, the assertion names the stage DVC was in (its last "Running stage
    '<name>'" line) and the log's last line, instead of a bare TimeoutExpired (issue 27). The
    command runs in its own process group, killed whole on a timeout: DVC's stage processes
    would otherwise outlive it (and keep the test waiting on their pipes).
    """
    import os
    import re
    import signal
    import subprocess
    from pathlib import Path

    log = Path(log)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip
        try:
            rc, why = proc.wait(timeout=timeout), None
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc, why = proc.wait(), f"timed out after {timeout:.0f} s"
    text = log.read_text(errors="replace")
    if why is None and rc == 0:
        return text
    stages = re.findall(r"Running stage '([^']+)'", text)
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    raise AssertionError(
        f"{' '.join(map(str, cmd))} {why or f'failed (exit {rc})'} in stage {stages[-1] if stages else '(none started)'}; "
        f"last log line: {lines[-1] if lines else '(empty log)'}\nlog: {log}\n" + "\n".join(lines[-40:])
    )
