"""Grids on synthetic pairs from a folder outside the pipeline (issue 24, `segment.external_synthetic`).

The folder here is named as the authors' released set is (`chk_id_<id>_gen_scale_<s>_<n>_img[_ST].png`
+ `..._mask.png`, paper.md s1 and s3), with ids 1..16 = the natural-sort positions of the
project's real names, and decoys the grids must not take: another gen_start_scale, the other
style, the test fold's ids. No synthetic/ folder exists: no generator ran.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import PARAMS, TINY_MODEL, TINY_TRAIN, fold_of, make_project

from pipeline.segment.config import ExternalSyntheticParams, GridAParams, GridBParams, SegmentParams
from pipeline.segment.experiments import ExperimentError, resolve
from pipeline.segment.grid import fingerprint
from singanseg.authors import authors_numbering
from singanseg.io import write_png
from singanseg.typed import ConfigError, to_mapping

ROOT = Path(__file__).resolve().parents[1]
README_FOLDER = "/path/to/their/pairs"


def _authors_folder(folder: Path, ids, samples: int = 3, size: int = 24, scales=(0, 1), styled: bool = True) -> Path:
    """Files named as their sampler and style transfer name them, flat in one folder."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size, size), np.uint8)
    mask[4:12, 6:18] = 255
    for i in ids:
        for s in scales:
            for n in range(samples):
                stem = f"chk_id_{i}_gen_scale_{s}_{n}"
                for kind in ("img", "img_ST") if styled else ("img",):
                    write_png(folder / f"{stem}_{kind}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
                write_png(folder / f"{stem}_mask.png", mask)
    return folder


def _with(folders: dict[str, str], **kw) -> SegmentParams:
    return SegmentParams(**{**PARAMS.__dict__, "external_synthetic": ExternalSyntheticParams(folders=folders, **kw)})


def test_the_grids_take_exactly_the_authors_pairs_of_their_training_images(tmp_path):
    ids = make_project(tmp_path, synthetic=())  # r00..r15, folds of 6, 5, 5; no synthetic/ at all
    assert not (tmp_path / "synthetic").exists()
    authors_id = {p.id: n for n, p in authors_numbering(tmp_path / "data/real")}
    assert authors_id == {i: k + 1 for k, i in enumerate(ids)}  # the importer's mapping: natural-sort positions
    ext = _authors_folder(tmp_path / "their-10k", range(1, 17))
    params = _with({"singan": str(ext), "singan_st1to1000": str(ext)})
    folds = fold_of(tmp_path)

    # grid A, test fold 0: k = 2 samples of every image of folds 1 and 2, gen_start_scale 0 only
    train_ids = [i for i in ids if folds[i] != 0]
    for name, kind in (("A/FAKE_2", "img"), ("A/FAKE_2_ST1to1000", "img_ST")):
        sp = resolve(name, 0, "paper", params, tmp_path)
        want = [(f"{i}_{n}", f"chk_id_{authors_id[i]}_gen_scale_0_{n}_{kind}.png",
                 f"chk_id_{authors_id[i]}_gen_scale_0_{n}_mask.png") for i in train_ids for n in range(2)]  # fmt: skip
        assert [(p.id, p.image.name, p.mask.name) for p in sp.train] == want
        assert all(p.image.parent == ext for p in sp.train)
    # REAL+FAKE: the real pairs, then their samples
    sp = resolve("A/REAL+FAKE_1_ST1to1000", 1, "paper", params, tmp_path)
    assert [p.id for p in sp.train] == [i for i in ids if folds[i] != 1] + [f"{i}_0" for i in ids if folds[i] != 1]
    # grid B: the samples of the first N images of fold 0 (ST 1:1000, 3 per image here)
    sp = resolve("B/FAKE_N2", 0, "paper", params, tmp_path)
    assert [p.image.name for p in sp.train] == [f"chk_id_{k}_gen_scale_0_{n}_img_ST.png" for k in (1, 2) for n in range(3)]
    # the folder and its files enter the grid's fingerprint (a rerun notices another folder)
    assert fingerprint("B/FAKE_N2", 0, params, tmp_path) != fingerprint(
        "B/FAKE_N2", 0, _with({"singan_st1to1000": str(_authors_folder(tmp_path / "other", range(1, 17), size=20))}), tmp_path)
    # without folders the option is left out of the fingerprint: cells trained before it existed stay valid
    assert fingerprint("B/REAL_N2", 0, PARAMS, tmp_path) == fingerprint("B/REAL_N2", 0, _with({}, naming="ours"), tmp_path)
    # another gen_start_scale takes the other files
    sp = resolve("B/FAKE_N2", 0, "paper", _with({"singan_st1to1000": str(ext)}, gen_start_scale=1), tmp_path)
    assert {p.image.name.split("_")[5] for p in sp.train} == {"1"}


def test_our_naming_in_an_external_folder(tmp_path):
    make_project(tmp_path, synthetic=("singan",), samples=3)  # ours, made elsewhere: moved out of synthetic/
    ours = tmp_path / "elsewhere"
    (tmp_path / "synthetic/singan/gss0").rename(ours)
    for naming in ("auto", "ours"):
        sp = resolve("B/REAL+FAKE_N2", 0, "paper", _with({"singan_st1to1000": str(ours)}, naming=naming), tmp_path)
        assert [p.id for p in sp.train] == ["r00", "r01", *(f"r0{i}_{n}" for i in (0, 1) for n in range(3))]
        assert sp.train[2].image == ours / "images" / "r00_0.png"
    # a relative folder is the project's
    sp = resolve("B/FAKE_N1", 0, "paper", _with({"singan_st1to1000": "elsewhere"}), tmp_path)
    assert sp.train[0].image == ours / "images" / "r00_0.png"
    # the authors' files also in images/ and masks/, as a download may hold them
    split = tmp_path / "split"
    _authors_folder(split / "x", range(1, 17), samples=1, scales=(0,), styled=False)
    for sub in ("images", "masks"):
        (split / sub).mkdir()
    for f in (split / "x").iterdir():
        f.rename(split / ("masks" if f.name.endswith("_mask.png") else "images") / f.name)
    sp = resolve("A/FAKE_1", 2, "paper", _with({"singan": str(split)}), tmp_path)
    assert sp.train[0].image == split / "images" / "chk_id_1_gen_scale_0_0_img.png"
    assert sp.train[0].mask == split / "masks" / "chk_id_1_gen_scale_0_0_mask.png"


def _one_line_error(params, tmp_path, name="B/FAKE_N2") -> str:
    with pytest.raises(ExperimentError) as e:
        resolve(name, 0, "paper", params, tmp_path)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_bad_external_folders_are_one_line_naming_the_file(tmp_path):
    make_project(tmp_path, synthetic=())
    missing = tmp_path / "nowhere"
    msg = _one_line_error(_with({"singan_st1to1000": str(missing)}), tmp_path)
    assert f"segment.external_synthetic.folders.singan_st1to1000: {missing}: folder not found" in msg

    ext = _authors_folder(tmp_path / "their", range(1, 17), samples=1, scales=(0,))
    params = _with({"singan_st1to1000": str(ext)})
    (ext / "chk_id_5_gen_scale_0_0_mask.png").unlink()  # a pair without its mask
    assert re.search(rf"{ext}/chk_id_5_gen_scale_0_0_img_ST\.png: no mask chk_id_5_gen_scale_0_0_mask\.png",
                     _one_line_error(params, tmp_path))  # fmt: skip
    _authors_folder(ext, [5], samples=1, scales=(0,))
    _authors_folder(ext, [17], samples=1, scales=(0,))  # the project has 16 real images
    assert (f"{ext}/chk_id_17_gen_scale_0_0_img_ST.png: authors' id 17 has no real image in {tmp_path}/data/real "
            "(16 pairs") in _one_line_error(params, tmp_path)  # fmt: skip
    for f in ext.glob("chk_id_17_*_img*.png"):
        f.unlink()
    assert f"{ext}/chk_id_17_gen_scale_0_0_mask.png: no image chk_id_17_gen_scale_0_0_img_ST.png" in _one_line_error(params, tmp_path)
    for f in ext.glob("chk_id_17_*"):
        f.unlink()
    # the unstyled set in a folder of only style-transferred images... has its _img files; one
    # without any _img_ST file is refused for a style-transferred set, naming what it looks for
    for f in ext.glob("*_img_ST.png"):
        f.unlink()
    assert "no image named chk_id_<id>_gen_scale_0_<n>_img_ST.png (style-transferred set" in _one_line_error(params, tmp_path)
    # too few samples: the missing one is named by our id
    _authors_folder(ext, range(1, 17), samples=1, scales=(0,))
    msg = _one_line_error(_with({"singan_st1to1000": str(ext)}), tmp_path, "B/FAKE_N2")
    assert "4 of 6 synthetic pairs missing" in msg and "e.g. sample r00_1" in msg  # PARAMS: 3 per image

    # our naming: a sample of an image that is not in data/real
    ours = tmp_path / "ours"
    write_png(ours / "images" / "x99_0.png", np.zeros((24, 24, 3), np.uint8))
    write_png(ours / "masks" / "x99_0.png", np.zeros((24, 24), np.uint8))
    assert f"{ours}/images/x99_0.png: real image 'x99' is not in" in _one_line_error(_with({"singan_st1to1000": str(ours)}), tmp_path)
    # a set name the grids never read is a config error naming the key
    with pytest.raises(ConfigError, match=r"segment\.external_synthetic\.folders\.fastgan: not a SinGAN-Seg set"):
        from singanseg.typed import replace

        replace(SegmentParams(), {"external_synthetic": {"folders": {"fastgan": "/x"}}}, "segment")


def _readme_segment_line() -> str:
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.splitlines():
            if "pipeline.segment --grid" in line and "external_synthetic" in line:
                return line.split("  #")[0].strip()
    raise AssertionError("README.md has no `python -m pipeline.segment --grid ... external_synthetic...` line")


@pytest.mark.slow  # two tiny UNet++ trainings in a fresh interpreter (40 s on 2 shared cores)
def test_readme_segment_line_trains_grid_b_on_the_authors_pairs_without_a_generator(tmp_path):
    ids = make_project(tmp_path, n_per_fold=(4, 3, 3), size=32, synthetic=())
    ext = _authors_folder(tmp_path / "their-10k", range(1, len(ids) + 1), samples=2, size=32, scales=(0,))
    tiny = SegmentParams(model=TINY_MODEL, train_rich=TINY_TRAIN, train_scarce=TINY_TRAIN,
                         grid_a=GridAParams(experiments=("REAL",), folds=(0,)),
                         grid_b=GridBParams(kinds=("FAKE", "REAL+FAKE"), n_values=(2,), samples_per_image=2),
                         protocols=("paper",), clean_val_fraction=0.25, predictions=0, track=False)  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"profile": "paper", "profiles": {"paper": {}},
                                                          "segment": to_mapping(tiny)}))  # fmt: skip
    line = _readme_segment_line()
    assert line.startswith(".venv/bin/python -m pipeline.segment ") and README_FOLDER in line
    args = [sys.executable, *line.replace(README_FOLDER, str(ext)).split()[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "segment B: 2 runs, 2 trained" in r.stdout
    assert not (tmp_path / "synthetic").exists()
    for kind, size in (("FAKE", 4), ("REAL+FAKE", 6)):  # 2 samples of each of the first 2 images (+ those 2)
        record = json.loads((tmp_path / "metrics/segmentation/B" / f"{kind}_N2" / "fold0_seed0.json").read_text())
        assert record["protocols"]["paper"]["train_size"] == size
