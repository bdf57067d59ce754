"""Acceptance: the CLI trains on a real Kvasir-SEG pair, samples, resumes after kill -9."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from singanseg.api import load
from singanseg.cli import main
from singanseg.io import list_pairs, read_pair
from singanseg.sample import generate

TINY = ["--set", "max_size=32", "--set", "min_size=16", "--set", "nfc=8", "--set", "min_nfc=8"]


def cli_subprocess(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess:
    """The installed entry point in a fresh process (acceptance: training through the CLI)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "singanseg.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The same `main` in this process (saves ~3 s of torch import per call on 2 cores)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    if check:
        assert rc == 0, err.getvalue()
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def pair(kvasir_dir):
    return list_pairs(kvasir_dir)[0]


@pytest.fixture(scope="module")
def trained(pair, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / pair.id
    cli_subprocess(
        "train",
        str(pair.image),
        str(pair.mask),
        "--out",
        str(out),
        "--profile",
        "smoke",
        *TINY,
        "--set",
        "niter=30",
        "--seed",
        "3",
        "--quiet",
    )
    return out


def test_train_writes_a_complete_model(trained, pair):
    meta = json.loads((trained / "model.json").read_text())
    assert meta["complete"] and meta["seed"] == 3
    n = meta["pyramid"]["stop_scale"] + 1
    assert meta["finished_scales"] == n >= 2
    assert len(meta["noise_amp"]) == n and meta["noise_amp"][0] == 1.0
    assert all(0 < a < 1 for a in meta["noise_amp"][1:])
    image, _, _ = read_pair(pair)
    h, w = meta["pyramid"]["shapes"][-1]
    assert (
        max(h, w) == 32 and abs(h / w - image.shape[0] / image.shape[1]) < 0.05
    )  # long side max_size, aspect kept
    for k in range(n):
        assert (trained / f"scale_{k}.safetensors").is_file() and (
            trained / f"scale_{k}.json"
        ).is_file()
    assert "torch" in meta["versions"]


def test_a_finished_model_is_not_retrained(trained, pair):
    before = {p.name: p.stat().st_mtime_ns for p in trained.iterdir()}
    cli(
        "train",
        str(pair.image),
        str(pair.mask),
        "--out",
        str(trained),
        "--profile",
        "smoke",
        *TINY,
        "--set",
        "niter=30",
        "--seed",
        "3",
        "--quiet",
    )
    assert {p.name: p.stat().st_mtime_ns for p in trained.iterdir()} == before


def test_sample_at_several_gen_start_scales(trained, tmp_path):
    n = load(trained).num_scales
    for gss in (0, 1, n - 1):
        out = tmp_path / f"gss{gss}"
        cli(
            "sample",
            str(trained),
            "--num",
            "3",
            "--gen-start-scale",
            str(gss),
            "--out",
            str(out),
            "--seed",
            "1",
        )
        pairs = list_pairs(out)
        assert [p.id for p in pairs] == [f"{trained.name}_{i}" for i in range(3)]
        for p in pairs:
            image = np.asarray(Image.open(p.image))
            mask = np.asarray(Image.open(p.mask))
            assert mask.ndim == 2 and mask.shape == image.shape[:2]  # grayscale, never a colormap
            assert set(np.unique(mask).tolist()) <= {0, 255}


def test_more_random_at_lower_gen_start_scale(trained):
    model = load(trained)
    spread = {}
    for gss in (0, model.num_scales - 1):
        imgs = np.stack([im.astype(float) for im, _ in model.sample(4, gss, seed=5)])
        spread[gss] = imgs.std(axis=0).mean()
    assert spread[0] > spread[model.num_scales - 1]


def test_reconstruction_noise_reproduces_the_training_pair(trained):
    model = load(trained)
    rec = model.reconstruction()
    real = model.reals[-1]
    mse = float(((rec - real) ** 2).mean())
    final_rec = (
        model.losses[-1]["rec_loss"][-1] / model.config.alpha
    )  # training's MSE(G(z_opt), real)
    # Threshold: sampling runs G in eval mode (BatchNorm running statistics) where training
    # measured train mode, and the upsampled input is the coarser scales' own replay; allow
    # 3x the last training MSE, and require it to beat random samples by a wide margin.
    assert mse < 3 * final_rec + 1e-3
    random = generate(model, 4, 0, torch.Generator().manual_seed(2))
    rand_mse = float(((random - real) ** 2).mean())
    assert mse < rand_mse
    mask = model.sample(1, model.num_scales, seed=0)[0][1]
    real_mask = (real[0, 3].numpy() > 0) * 255
    assert (mask == real_mask).mean() > 0.9


@pytest.mark.slow
def test_kill_minus_9_then_resume(pair, tmp_path):
    out = tmp_path / "m"
    args = [
        "train",
        str(pair.image),
        str(pair.mask),
        "--out",
        str(out),
        "--profile",
        "smoke",
        *TINY,
        "--set",
        "niter=40",
        "--seed",
        "4",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "singanseg.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            meta_path = out / "model.json"
            if meta_path.is_file() and json.loads(meta_path.read_text())["finished_scales"] >= 1:
                break
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no scale finished within 90 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    meta = json.loads((out / "model.json").read_text())
    done = meta["finished_scales"]
    assert not meta["complete"] and done >= 1
    before = {
        f"scale_{k}.{ext}": (out / f"scale_{k}.{ext}").stat().st_mtime_ns
        for k in range(done)
        for ext in ("safetensors", "json")
    }
    err = cli("sample", str(out), "--num", "1", "--out", str(tmp_path / "s"), check=False)
    assert err.returncode == 2 and "unfinished" in err.stderr and "Traceback" not in err.stderr
    cli_subprocess(*args)
    meta = json.loads((out / "model.json").read_text())
    assert meta["complete"] and meta["finished_scales"] == meta["pyramid"]["stop_scale"] + 1
    after = {name: (out / name).stat().st_mtime_ns for name in before}
    assert after == before  # the finished scales were not retrained
    load(out).sample(1)


def test_corrupted_checkpoint_gives_a_clear_error(trained, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in trained.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    f = broken / "scale_1.safetensors"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    proc = cli("sample", str(broken), "--num", "1", "--out", str(tmp_path / "s"), check=False)
    assert proc.returncode == 2
    assert (
        "scale_1.safetensors" in proc.stderr
        and "corrupted" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    (broken / "model.json").write_text("{not json")
    proc = cli("info", str(broken), check=False)
    assert proc.returncode == 2 and "model.json" in proc.stderr


def test_incompatible_version_and_out_of_range(trained, tmp_path):
    n = load(trained).num_scales
    proc = cli(
        "sample",
        str(trained),
        "--num",
        "1",
        "--gen-start-scale",
        str(n + 1),
        "--out",
        str(tmp_path / "s"),
        check=False,
    )
    assert proc.returncode == 2 and "gen_start_scale" in proc.stderr and f"0..{n}" in proc.stderr
    old = tmp_path / "old"
    old.mkdir()
    for p in trained.iterdir():
        (old / p.name).write_bytes(p.read_bytes())
    meta = json.loads((old / "model.json").read_text())
    meta["format_version"] = 99
    (old / "model.json").write_text(json.dumps(meta))
    proc = cli("info", str(old), check=False)
    assert proc.returncode == 2 and "format version 99" in proc.stderr


def test_bad_inputs_are_clear_errors(pair, tmp_path):
    image, mask, _ = read_pair(pair)
    small = tmp_path / "small.png"
    Image.fromarray(image[:20, :20]).save(small)
    Image.fromarray(mask[:20, :20]).save(tmp_path / "small_mask.png")
    proc = cli(
        "train",
        str(small),
        str(tmp_path / "small_mask.png"),
        "--out",
        str(tmp_path / "x"),
        "--profile",
        "smoke",
        *TINY,
        "--set",
        "min_size=25",
        check=False,
    )
    assert proc.returncode == 2 and "smaller than min_size" in proc.stderr
    proc = cli(
        "train",
        str(pair.image),
        str(tmp_path / "small_mask.png"),
        "--out",
        str(tmp_path / "x"),
        check=False,
    )
    assert proc.returncode == 2 and "small_mask.png" in proc.stderr and "image is" in proc.stderr
    soft = tmp_path / "soft.png"
    Image.fromarray(np.full(mask.shape, 128, np.uint8)).save(soft)
    proc = cli("train", str(pair.image), str(soft), "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "not binary" in proc.stderr
    proc = cli(
        "train",
        str(pair.image),
        str(pair.mask),
        "--out",
        str(tmp_path / "x"),
        "--set",
        "nitre=3",
        check=False,
    )
    assert proc.returncode == 2 and "nitre" in proc.stderr and "Traceback" not in proc.stderr


def test_other_config_into_a_trained_folder_is_refused(trained, pair, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in trained.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    proc = cli(
        "train",
        str(pair.image),
        str(pair.mask),
        "--out",
        str(copy),
        "--profile",
        "smoke",
        *TINY,
        "--set",
        "niter=31",
        "--seed",
        "3",
        "--quiet",
        check=False,
    )
    assert proc.returncode == 2 and "incompatible" in proc.stderr and "niter" in proc.stderr
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_device_is_checked_before_any_work(pair, tmp_path):
    from singanseg.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    out = tmp_path / "m"
    bad = cli("train", str(pair.image), str(pair.mask), "--out", str(out), "--device", "tpu9", check=False)
    assert bad.returncode == 2 and "'tpu9' is not a torch device" in bad.stderr
    assert not out.exists()  # nothing written for a run that cannot start
    if not torch.cuda.is_available():
        gpu = cli("train", str(pair.image), str(pair.mask), "--out", str(out), "--device", "cuda", check=False)
        assert gpu.returncode == 2 and "no CUDA device" in gpu.stderr
        assert not out.exists()


def test_sampling_on_an_explicit_device(trained, tmp_path):
    model = load(trained, device="cpu")
    assert model.device == torch.device("cpu")
    again = load(trained).to("cpu")
    a = model.sample(2, 0, seed=5)
    b = again.sample(2, 0, seed=5)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    proc = cli("sample", str(trained), "--num", "1", "--out", str(tmp_path / "s"), "--device", "cpu")
    assert "wrote 1 pairs" in proc.stdout


def test_printed_paths_have_no_double_slash_and_info_ends_with_a_newline(trained, tmp_path):
    r = cli("sample", str(trained), "--num", "1", "--out", f"{tmp_path / 'samples'}/")  # a shell-completed folder
    assert "//" not in r.stdout and f"{tmp_path / 'samples' / 'images'}" in r.stdout
    assert cli("info", str(trained)).stdout.endswith("}\n")
