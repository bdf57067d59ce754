"""Issue 26 item 2 (and item 6 for `sample`): a sample folder holds one run per id, named by
its record (seed, count), written so that a failure mid-way leaves nothing mixed or partial."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from singanseg import io as sio
from singanseg.api import train
from singanseg.cli import main
from singanseg.config import preset
from singanseg.io import list_pairs

TINY = {"max_size": 24, "min_size": 16, "nfc": 4, "min_nfc": 4, "niter": 2, "lr_milestone": 2}


def cli(*args: str) -> subprocess.CompletedProcess:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    mask[6:18, 8:20] = 255
    out = tmp_path_factory.mktemp("tiny") / "m"
    train(image, mask, out, preset("smoke", **TINY), seed=1, progress=False)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def names(folder: Path, sub: str = "images") -> list[str]:
    return sorted(p.name for p in (folder / sub).iterdir())


def test_a_second_run_of_one_id_is_refused_and_the_first_kept(model, tmp_path):
    """The issue's case: --num 4 --seed 0, then --num 2 --seed 5 into X held 4 images of 2 runs."""
    out = tmp_path / "X"
    assert cli("sample", str(model), "--num", "4", "--out", str(out), "--seed", "0").returncode == 0
    rec = json.loads((out / "m.sample.json").read_text())
    assert (rec["seed"], rec["num"], rec["complete"]) == (0, 4, True)
    assert len(rec["files"]) == 8
    before = snapshot(out)
    r = cli("sample", str(model), "--num", "2", "--out", str(out), "--seed", "5")
    assert r.returncode == 2 and "--replace" in r.stderr and "seed 0, 4 pairs" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(out) == before  # nothing already written is lost


def test_replace_leaves_exactly_the_new_run(model, tmp_path):
    out = tmp_path / "X"
    cli("sample", str(model), "--num", "4", "--out", str(out), "--seed", "0")
    r = cli("sample", str(model), "--num", "2", "--out", str(out), "--seed", "5", "--replace")
    assert r.returncode == 0, r.stderr
    assert names(out) == names(out, "masks") == ["m_0.png", "m_1.png"]
    rec = json.loads((out / "m.sample.json").read_text())
    assert (rec["seed"], rec["num"], rec["complete"]) == (5, 2, True)
    fresh = tmp_path / "fresh"
    cli("sample", str(model), "--num", "2", "--out", str(fresh), "--seed", "5")
    assert snapshot(fresh / "images") == snapshot(out / "images")  # the same bytes as a run into an empty folder


def test_the_same_request_again_is_a_no_op_and_an_unseeded_run_names_its_seed(model, tmp_path):
    out = tmp_path / "X"
    cli("sample", str(model), "--num", "2", "--out", str(out), "--seed", "3")
    before = snapshot(out)
    r = cli("sample", str(model), "--num", "2", "--out", str(out), "--seed", "3")
    assert r.returncode == 0 and "already holds this run" in r.stdout
    assert snapshot(out) == before
    r = cli("sample", str(model), "--num", "2", "--out", str(tmp_path / "Y"))
    seed = json.loads((tmp_path / "Y" / "m.sample.json").read_text())["seed"]
    assert isinstance(seed, int) and f"seed {seed}" in r.stdout
    again = tmp_path / "Z"
    cli("sample", str(model), "--num", "2", "--out", str(again), "--seed", str(seed))
    assert snapshot(again / "images") == snapshot(tmp_path / "Y" / "images")  # the recorded seed reproduces it


def test_files_of_the_id_without_a_record_are_refused(model, tmp_path):
    out = tmp_path / "X"
    (out / "images").mkdir(parents=True)
    (out / "images" / "m_7.png").write_bytes(b"someone else's")
    r = cli("sample", str(model), "--num", "1", "--out", str(out), "--seed", "0")
    assert r.returncode == 2 and "no sample record" in r.stderr and "m_7.png" in r.stderr
    assert (out / "images" / "m_7.png").read_bytes() == b"someone else's"
    assert cli("sample", str(model), "--num", "1", "--out", str(out), "--seed", "0", "--replace").returncode == 0
    assert names(out) == ["m_0.png"]


def test_other_ids_are_kept(model, tmp_path):
    out = tmp_path / "X"
    cli("sample", str(model), "--num", "2", "--out", str(out), "--seed", "0", "--id", "a")
    cli("sample", str(model), "--num", "3", "--out", str(out), "--seed", "1", "--id", "a_1")
    r = cli("sample", str(model), "--num", "1", "--out", str(out), "--seed", "2", "--id", "a", "--replace")
    assert r.returncode == 0, r.stderr
    assert names(out) == ["a_0.png", "a_1_0.png", "a_1_1.png", "a_1_2.png"]  # id a never claims a_1's files
    assert len(list_pairs(out)) == 4


def _fail_after(monkeypatch, n_ok: int) -> None:
    """The disk fills after `n_ok` PNGs (an OSError 28 from the writer, as a full disk gives)."""
    real = sio._atomic_write
    count = {"n": 0}

    def write(path, fn):
        if path.suffix == ".png":
            count["n"] += 1
            if count["n"] > n_ok:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, fn)

    monkeypatch.setattr(sio, "_atomic_write", write)


def test_disk_full_mid_run_leaves_nothing_visible_and_one_line(model, tmp_path, monkeypatch):
    """Issue: after a disk-full failure X held 13 images and 12 masks and a rerun exited 0."""
    out = tmp_path / "X"
    cli("sample", str(model), "--num", "2", "--out", str(out), "--seed", "0")
    before = snapshot(out)
    _fail_after(monkeypatch, 5)
    r = cli("sample", str(model), "--num", "8", "--out", str(out), "--seed", "1", "--replace")
    assert r.returncode == 2 and "disk full" in r.stderr and str(out) in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(out) == before  # the previous run intact, no partial pairs, no temporaries
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    assert cli("sample", str(model), "--num", "8", "--out", str(out), "--seed", "1", "--replace").returncode == 0
    assert len(list_pairs(out)) == 8


def test_an_interrupted_run_is_cleaned_and_redone(model, tmp_path):
    """A run killed while moving its files in leaves a record marked incomplete: the next
    run removes its leftovers (nothing finished is lost) and writes a whole run."""
    out = tmp_path / "X"
    cli("sample", str(model), "--num", "3", "--out", str(out), "--seed", "0")
    rec_path = out / "m.sample.json"
    rec = json.loads(rec_path.read_text())
    rec_path.write_text(json.dumps({**rec, "complete": False}))
    (out / "masks" / "m_2.png").unlink()  # a half-moved run: 3 images, 2 masks
    r = cli("sample", str(model), "--num", "2", "--out", str(out), "--seed", "4")
    assert r.returncode == 0, r.stderr
    assert names(out) == names(out, "masks") == ["m_0.png", "m_1.png"]
    assert json.loads(rec_path.read_text())["complete"] is True
