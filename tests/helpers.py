"""Helpers shared by test modules (no test module imports another): the tiny segmentation
project that tests/test_segment_*.py build, the tiny UNet++ they train, and the authors'
own SinGAN-Seg training (singan_seg_polyp) that writes checkpoints in their format."""

from __future__ import annotations

import builtins
import contextlib
import os
from pathlib import Path

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


@contextlib.contextmanager
def quiet_prints():
    """Silence `print`: the authors' code prints every network it builds and every image shape."""
    saved = builtins.print
    builtins.print = lambda *a, **k: None
    try:
        yield
    finally:
        builtins.print = saved


def random_rgba(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A noise RGB image with a rectangular mask in the alpha channel (0/255)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2 + 5, w // 4 : w // 2 + 4] = 255
    return np.concatenate([img, mask[..., None]], axis=2)


def authors_train(workdir: Path, rgba: np.ndarray, seed: int = 3, nfc: int = 8, niter: int = 2, **opt) -> Path:
    """The authors' `SinGAN/training.py::train` (singan_seg_polyp 1.0.7) on `rgba`, as released:
    returns the folder of the four .pth files it torch.saves (Gs, Zs, reals, NoiseAmp; the
    format of their released checkpoints, paper.md s10). `opt`: their other CLI arguments
    (e.g. max_size, min_size); the rest are their config.py defaults. Skips without the package."""
    import pytest
    import torch

    RT = pytest.importorskip("singan_seg_polyp.SinGAN.training")
    RF = pytest.importorskip("singan_seg_polyp.SinGAN.functions")
    from singan_seg_polyp.config import get_arguments

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_png(workdir / "x.png", rgba)
    args = get_arguments().parse_args([])  # the released defaults (min_size 25, max_size 250, ...)
    args.nc_im = args.nc_z = 4
    args.nfc = args.min_nfc = nfc
    args.niter = niter
    args.not_cuda = True
    args.input_dir, args.input_name, args.mode, args.manualSeed = str(workdir), "x.png", "train", seed
    for key, value in opt.items():
        assert hasattr(args, key), f"the authors' config has no {key!r}"
        setattr(args, key, value)
    cwd = os.getcwd()
    os.chdir(workdir)  # generate_dir2save writes under ./TrainedModels
    try:
        with quiet_prints():
            args = RF.post_config(args)
            args.device = torch.device("cpu")
            real = RF.read_image(args)
            RF.adjust_scales2image(real, args)
            RT.train(args, [], [], [], [])
    finally:
        os.chdir(cwd)
    return workdir / args.out_


def worktree_copy(repo_root: Path, dest: Path, skip: tuple[str, ...] = ("reports/", "mlflow.db")) -> Path:
    """A fresh git repository at `dest` holding the working tree of `repo_root` as git sees it
    (tracked and untracked files, not ignored ones; `skip`: path prefixes left out), committed
    once: what a `dvc repro` of a user's checkout sees, uncommitted edits included."""
    import shutil
    import subprocess

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo_root,
                           capture_output=True, text=True, check=True).stdout.split("\0")  # fmt: skip
    for f in filter(None, files):
        src = Path(repo_root) / f
        if src.is_file() and not f.startswith(skip):
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"]):  # fmt: skip
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest
