"""Issue 14 (hardening): concurrency, stale temporaries, path escapes, config ranges,
non-finite losses, oversized and unusual inputs. Each test failed on the code before its fix.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singanseg.api import train
from singanseg.config import preset
from singanseg.io import (
    InputError,
    _tmp_prefix,
    atomic_dir,
    list_pairs,
    read_image,
    read_mask,
    write_png,
)
from singanseg.typed import ConfigError

REPO = Path(__file__).resolve().parents[1]
# A tiny pyramid: 2-3 scales of 16-24 px, 2 iterations each (plumbing only)
TINY = {"max_size": 24, "min_size": 16, "nfc": 4, "min_nfc": 4, "niter": 2, "lr_milestone": 2}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "singanseg.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )  # fmt: skip


def _pair_arrays(h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[6:18, 8:20] = 255
    return image, mask


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "m"
    image, mask = _pair_arrays()
    train(image, mask, out, preset("smoke", **TINY), seed=1, progress=False)
    return out


# 1. Two `sample` runs into one --out keep both runs' files.
def test_parallel_samples_into_one_folder_keep_both(tiny_model, tmp_path):
    out = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "singanseg.cli", "sample", str(tiny_model), "--num", "12",
             "--out", str(out), "--id", rid, "--seed", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for rid in ("A", "B")
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for sub in ("images", "masks"):
        names = sorted(f.name for f in (out / sub).iterdir())
        assert names == sorted(f"{r}_{i}.png" for r in "AB" for i in range(12)), names
    assert len(list_pairs(out)) == 24


def test_sample_refuses_an_existing_file_as_out(tiny_model, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    proc = cli("sample", str(tiny_model), "--num", "1", "--out", str(target))
    assert proc.returncode == 2 and "not a folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert target.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]  # nothing moved aside


# 7. `sample --out .` works (it crashed on the folder swap of '.').
def test_sample_into_the_current_folder(tiny_model, tmp_path):
    proc = cli("sample", str(tiny_model), "--num", "2", "--out", ".", "--id", "x", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list_pairs(tmp_path)) == 2


# 4. Ids and prefixes that are not plain names are refused before anything is written.
@pytest.mark.parametrize("bad", ["../../X", "a/b", "..", "."])
def test_sample_id_must_be_a_plain_name(tiny_model, tmp_path, bad):
    out = tmp_path / "a" / "b" / "s"
    proc = cli("sample", str(tiny_model), "--num", "1", "--out", str(out), "--id", bad)
    assert proc.returncode == 2 and "not a plain name" in proc.stderr, proc.stderr
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_baselines_prefix_must_be_a_plain_name(tmp_path):
    from baselines.common import write_samples

    image, mask = _pair_arrays()
    with pytest.raises(InputError, match="not a plain name"):
        write_samples([(image, mask)], tmp_path / "a" / "s", "../../X")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "baselines", "sample", str(tmp_path / "nomodel"), "--num", "1",
         "--out", str(tmp_path / "o"), "--prefix", "../X"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "--prefix" in proc.stderr and "not a plain name" in proc.stderr


# 5. A killed writer's temporary folder/file is removed by the next run.
def test_stale_temporaries_are_cleaned(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    prefix = _tmp_prefix("out").replace(f"-{os.getpid()}.", f"-{dead.pid}.")
    stale_dir = tmp_path / f"{prefix}abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "half.png").write_bytes(b"x")
    live_dir = tmp_path / f"{_tmp_prefix('out')}live99.tmp"  # ours: alive, kept
    live_dir.mkdir()
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "done.txt").write_text("ok")
    assert not stale_dir.exists()
    assert live_dir.exists()
    assert (tmp_path / "out" / "done.txt").read_text() == "ok"


def test_sample_cleans_a_killed_runs_temp_files(tiny_model, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "s" / "images").mkdir(parents=True)
    stale = tmp_path / "s" / "images" / f"{_tmp_prefix('A_0.png').replace(f'-{os.getpid()}.', f'-{dead.pid}.')}q1.tmp"
    stale.write_bytes(b"half a png")
    proc = cli("sample", str(tiny_model), "--num", "1", "--out", str(tmp_path / "s"), "--id", "B")
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "s" / "images").iterdir()) == ["B_0.png"]


# 8. Every config value's range and finiteness, the key named.
@pytest.mark.parametrize(
    "key,value",
    [("noise_amp", float("inf")), ("lr_g", float("nan")), ("gamma", -1.0), ("gamma", 0.0),
     ("lr_milestone", -5), ("padd_size", -3), ("scale_factor", float("nan")), ("alpha", float("-inf"))],
)  # fmt: skip
def test_config_values_are_range_checked(key, value):
    with pytest.raises(ConfigError, match=rf"\.{key}: must be"):
        preset("smoke", **{key: value})


def test_cli_refuses_inf_noise_amp_before_writing(tmp_path):
    image, mask = _pair_arrays()
    write_png(tmp_path / "i.png", image)
    write_png(tmp_path / "m.png", mask)
    out = tmp_path / "model"
    proc = cli("train", str(tmp_path / "i.png"), str(tmp_path / "m.png"), "--out", str(out),
               "--profile", "smoke", "--set", "noise_amp=.inf", "--quiet")  # fmt: skip
    assert proc.returncode == 2 and "noise_amp" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_stub_of_a_failed_run_does_not_block_the_corrected_rerun(tmp_path, monkeypatch):
    import singanseg.api as api

    image, mask = _pair_arrays()
    cfg = preset("smoke", **TINY)
    out = tmp_path / "m"

    def boom(*a, **k):
        raise RuntimeError("diverged at scale 0")

    monkeypatch.setattr(api, "train_scale", boom)
    with pytest.raises(RuntimeError):
        train(image, mask, out, cfg, seed=1, progress=False)
    assert (out / "model.json").exists()  # the stub
    monkeypatch.undo()
    model = train(image, mask, out, preset("smoke", **{**TINY, "lr_g": 1e-4}), seed=2, progress=False)
    assert model.num_scales >= 2


def test_a_non_finite_loss_stops_training_with_one_line(tmp_path):
    import json

    from singanseg.training import NonFiniteLossError, check_losses_finite

    image, mask = _pair_arrays()
    out = tmp_path / "m"
    # A finite config that diverges: an enormous learning rate overflows the weights.
    bad = preset("smoke", **{**TINY, "lr_d": 1e30, "lr_g": 1e30, "niter": 3})
    with pytest.raises(NonFiniteLossError, match=r"scale 0: loss \w+ became (nan|inf|-inf) at iteration \d+"):
        train(image, mask, out, bad, seed=1, progress=False)
    meta = json.loads((out / "model.json").read_text())
    assert not meta["complete"] and meta["finished_scales"] == 0
    with pytest.raises(NonFiniteLossError, match=r"scale 2: loss rec_loss became nan at iteration 1; .*0\.\.1 are kept"):
        check_losses_finite({"errD": [1.0, 2.0], "rec_loss": [0.5, float("nan")]}, 2)


# 7. Bad inputs are one-line errors, not tracebacks.
def test_train_out_existing_file_is_one_line(tmp_path):
    image, mask = _pair_arrays()
    write_png(tmp_path / "i.png", image)
    write_png(tmp_path / "m.png", mask)
    (tmp_path / "f").write_text("x")
    proc = cli("train", str(tmp_path / "i.png"), str(tmp_path / "m.png"), "--out", str(tmp_path / "f"),
               "--profile", "smoke", "--quiet")  # fmt: skip
    assert proc.returncode == 2 and "not a folder" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _huge_png(path: Path, w: int, h: int) -> Path:
    """A valid PNG of w x h black pixels, small on disk (one compressed row repeated)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * w  # filter byte + grayscale row
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_oversized_image_is_refused_from_its_header(tmp_path):
    big = _huge_png(tmp_path / "big.png", 3000, 2000)  # 6 MP; cheap to build
    with pytest.raises(InputError, match=r"big\.png: 3000x2000 = 6000000 pixels exceeds max_input_pixels"):
        read_image(big, max_pixels=1_000_000)
    proc = cli("train", str(big), str(big), "--out", str(tmp_path / "m"), "--profile", "smoke",
               "--set", "max_input_pixels=1000000", "--quiet")  # fmt: skip
    assert proc.returncode == 2 and "max_input_pixels" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_decompression_bomb_is_an_input_error(tmp_path, monkeypatch):
    # PIL refuses > 2 * MAX_IMAGE_PIXELS with DecompressionBombError (not an OSError);
    # lowered here so that a small file stands for the 225-megapixel one.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    big = _huge_png(tmp_path / "bomb.png", 3000, 2000)
    with pytest.raises(InputError, match=r"bomb\.png: refused as a decompression bomb"):
        read_image(big)
    with pytest.raises(InputError, match=r"bomb\.png"):
        read_mask(big)


# 10. An 8-bit {0, 1} mask is binary, not empty.
def test_zero_one_mask_is_read_as_binary(tmp_path):
    m = np.zeros((10, 12), np.uint8)
    m[2:6, 3:9] = 1
    Image.fromarray(m, "L").save(tmp_path / "m.png")
    mask, info = read_mask(tmp_path / "m.png")
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert np.array_equal(mask == 255, m == 1)
    assert info.ambiguous_px == 0


# 11. NFC image and NFD mask of the same name pair.
def test_unicode_normalisation_pairs_nfc_and_nfd(tmp_path):
    name = "polyp_café"
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image, mask = _pair_arrays()
    write_png(tmp_path / "images" / f"{unicodedata.normalize('NFC', name)}.png", image)
    write_png(tmp_path / "masks" / f"{unicodedata.normalize('NFD', name)}.png", mask)
    pairs = list_pairs(tmp_path)
    assert [p.id for p in pairs] == [unicodedata.normalize("NFC", name)]


# 12. Outputs get the modes the umask allows, not 0600/0700.
def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o002)  # a shared group folder's umask
    try:
        f = write_png(tmp_path / "a" / "x.png", np.zeros((4, 4), np.uint8))
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "y.txt").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o775


# 9. The data stage names every bad pair, not only the first.
def test_data_stage_names_all_bad_pairs(tmp_path):
    from pipeline.data.prepare import DataParams, build

    src = tmp_path / "src"
    image, mask = _pair_arrays()
    for i in range(4):
        write_png(src / "images" / f"p{i}.png", image)
        write_png(src / "masks" / f"p{i}.png", mask)
    (src / "images" / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_png(src / "masks" / "p3.png", mask[:10])  # wrong size
    with pytest.raises(InputError) as e:
        build(DataParams(source="folder", folder=str(src), track=False), tmp_path / "out")
    msg = str(e.value)
    assert "2 of 4 pairs are bad" in msg and "p1.png" in msg and "p3.png" in msg
    assert "\n" not in msg
    assert not (tmp_path / "out" / "real").exists()


# 2. Every CSV is written and read with the csv module: an id with a comma survives.
def test_csv_files_quote_ids_with_commas(tmp_path):
    import csv

    from pipeline.metrics.lpips_diversity import per_model_csv
    from pipeline.metrics.sifid import SIFIDOptions, SIFIDResult
    from pipeline.segment.experiments import read_folds

    odd = 'a,b "c"'
    sifid = SIFIDResult([(odd, f"{odd}_0", 0.5)], SIFIDOptions(), {})
    rows = list(csv.reader(sifid.to_csv().splitlines()))
    assert rows == [["real_id", "synthetic_id", "sifid"], [odd, f"{odd}_0", "0.5"]]
    lp = per_model_csv({"per_model": [{"model": odd, "samples": 4, "pairs": 6, "diversity": 0.1}]})
    assert list(csv.DictReader(lp.splitlines()))[0]["model"] == odd
    folds = tmp_path / "folds.csv"
    with open(folds, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "fold"], [odd, 1], ["plain", 0]])
    assert read_folds(folds) == [(odd, 1), ("plain", 0)]
