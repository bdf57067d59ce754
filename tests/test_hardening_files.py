"""Issue 26 items 3, 7, 9 (part): exif orientation, scale-record checks, small fixes."""

import logging

import numpy as np
import pytest
from PIL import Image

from pipeline.metrics.sifid import pair_ids
from singanseg.io import InputError, list_pairs, read_image


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :5] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    Image.fromarray(a).save(tmp_path / "x.jpg", exif=exif, quality=95)
    assert read_image(tmp_path / "x.jpg").shape == (20, 10, 3)


def test_directory_as_image_says_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_image(tmp_path)


def test_broken_symlink_warns(tmp_path, caplog):
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / d / "a.png")
        (tmp_path / d / "b.png").symlink_to(tmp_path / "nowhere.png")
    with caplog.at_level(logging.WARNING):
        assert [p.id for p in list_pairs(tmp_path)] == ["a"]
    assert "broken symbolic link" in caplog.text and "b.png" in caplog.text


def test_sifid_pairs_exact_id_first():
    assert sorted(pair_ids(["x", "x_1"], ["x_1", "x_2"])) == [("x", "x_2"), ("x_1", "x_1")]


def test_unknown_profile_lists_paper_once():
    from singanseg.errors import UserError
    from singanseg.profiles import resolve

    with pytest.raises(UserError) as e:
        resolve({"profiles": {"paper": {}, "smoke": {}}}, profile="nope")
    assert str(e.value).count("paper") == 1


# --- item 7, the rest: the metrics' reader and the header-only size checks ------------------


def _rotated_jpeg(path, stored_hw=(10, 20), orientation=6):
    """A JPEG stored h x w whose EXIF says 'turn 90 degrees to display' (a phone photo)."""
    a = np.zeros((*stored_hw, 3), np.uint8)
    a[:, : stored_hw[1] // 4] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, exif=exif, quality=95)
    return path


def test_metrics_read_images_as_displayed(tmp_path):
    from pipeline.metrics.features import load_rgb

    p = _rotated_jpeg(tmp_path / "x.jpg", (20, 40))
    assert load_rgb(p).shape == (40, 20, 3)
    assert np.array_equal(load_rgb(p), read_image(p))


def test_header_size_checks_use_the_displayed_size(tmp_path):
    from pipeline.segment.experiments import ExperimentError, _check_sizes
    from singanseg.io import Pair, displayed_size, write_png

    img = _rotated_jpeg(tmp_path / "images" / "a.jpg", (10, 20))  # displayed 10 wide, 20 high
    with Image.open(img) as im:
        assert displayed_size(im) == (10, 20)
    good = write_png(tmp_path / "masks" / "a.png", np.zeros((20, 10), np.uint8))  # drawn on the displayed image
    _check_sizes([Pair("a", img, good)], "test")  # refused before: 20x10 vs 10x20, sizes the user never sees
    bad = write_png(tmp_path / "masks2" / "a.png", np.zeros((10, 20), np.uint8))
    with pytest.raises(ExperimentError, match=r"mask .* is 20x10 but image .* is 10x20"):
        _check_sizes([Pair("a", img, bad)], "test")


def test_a_pair_whose_sizes_agree_is_read_once_until_a_file_changes(tmp_path, monkeypatch):
    """A grid resolves the same pairs for every training: their headers (and a PNG's EXIF, which
    decodes the image) are read once per process; a rewritten file is checked again."""
    import os

    from pipeline.segment import experiments
    from singanseg.io import Pair, write_png

    calls = []
    real = experiments.displayed_size
    monkeypatch.setattr(experiments, "displayed_size", lambda im: calls.append(im.filename) or real(im))
    img = write_png(tmp_path / "images" / "a.png", np.zeros((20, 10, 3), np.uint8))
    mask = write_png(tmp_path / "masks" / "a.png", np.zeros((20, 10), np.uint8))
    experiments._check_sizes([Pair("a", img, mask)], "test")
    experiments._check_sizes([Pair("a", img, mask)], "test")
    assert len(calls) == 2  # image and mask, once
    write_png(mask, np.zeros((10, 20), np.uint8))  # rewritten in place, now the wrong size
    os.utime(mask, ns=(1, 1))  # a new mtime even on a coarse clock
    with pytest.raises(experiments.ExperimentError, match=r"mask .* is 20x10 but image .* is 10x20"):
        experiments._check_sizes([Pair("a", img, mask)], "test")
    assert len(calls) == 4


def test_stylize_groups_by_the_displayed_size(tmp_path):
    """An EXIF-rotated sample and a plain one of the same stored size were batched together
    and then read at different sizes (torch.stack failed)."""
    from singanseg import style_transfer as st
    from singanseg import stylize_folder as sf
    from singanseg.io import write_png
    from singanseg.typed import from_mapping

    content = tmp_path / "gen"
    _rotated_jpeg(content / "images" / "p_0.jpg", (24, 32))
    write_png(content / "images" / "p_1.png", np.full((24, 32, 3), 90, np.uint8))
    write_png(content / "masks" / "p_0.png", np.zeros((32, 24), np.uint8))
    write_png(content / "masks" / "p_1.png", np.zeros((24, 32), np.uint8))
    style = write_png(tmp_path / "style.png", np.full((32, 32, 3), 120, np.uint8))
    cfg = from_mapping(st.StyleConfig, {"weights": "random", "num_epochs": 1}, "test")
    sf.stylize_folder(content, style, tmp_path / "out", cfg, batch_size=2)
    with Image.open(tmp_path / "out" / "images" / "p_0.png") as a, Image.open(tmp_path / "out" / "images" / "p_1.png") as b:
        assert (a.size, b.size) == ((24, 32), (32, 24))


# --- item 3, the rest: the scale records are covered by model.json ------------------------


def test_an_edited_scale_record_is_refused(tmp_path):
    import json

    from singanseg.api import train
    from singanseg.ckpt import CheckpointError
    from singanseg.config import preset
    from singanseg.saved_model import SinGANSeg

    rng = np.random.default_rng(0)
    mask = np.zeros((24, 32), np.uint8)
    mask[6:18, 8:20] = 255
    out = tmp_path / "m"
    tiny = {"max_size": 24, "min_size": 16, "nfc": 4, "min_nfc": 4, "niter": 2, "lr_milestone": 2}
    train(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), mask, out, preset("smoke", **tiny), seed=1, progress=False)
    meta = json.loads((out / "model.json").read_text())
    assert len(meta["scale_records_sha256"]) == meta["finished_scales"]
    SinGANSeg.load(out)
    rec = json.loads((out / "scale_1.json").read_text())
    rec["shape"] = [1, 1]  # a field no other check reads back (noise_amp is cross-checked already)
    (out / "scale_1.json").write_text(json.dumps(rec))
    with pytest.raises(CheckpointError, match=r"scale_1\.json: does not match model\.json's scale_records_sha256\[1\]"):
        SinGANSeg.load(out)


def test_ray_planner_buckets_by_the_displayed_size(tmp_path):
    """train_many_batched.plan_key read the stored header size: an EXIF-rotated JPEG with its
    mask drawn on the displayed image was UNPLANNED (sizes 'differ') and one of stored size
    was planned into a bucket its decoded pyramid does not have."""
    from singanseg.api import open_model
    from singanseg.config import SinGANConfig
    from singanseg.io import Pair, write_png
    from singanseg.train_many_batched import UNPLANNED, bucket_key, plan_key

    cfg = SinGANConfig(max_size=32, min_size=16, nfc=8, min_nfc=8, niter=4, lr_milestone=3)
    img = _rotated_jpeg(tmp_path / "images" / "a.jpg", (24, 40))  # displayed 24 wide, 40 high
    mask = np.zeros((40, 24), np.uint8)
    mask[10:30, 6:18] = 255
    good = Pair("a", img, write_png(tmp_path / "masks" / "a.png", mask))  # drawn on the displayed image
    key = plan_key(good, tmp_path / "m" / "a", cfg, 1)
    assert key != UNPLANNED
    assert key == bucket_key(open_model(good.image, good.mask, tmp_path / "m2" / "a", cfg, 1))
    stored = Pair("a", img, write_png(tmp_path / "masks2" / "a.png", mask.T.copy()))  # the stored size
    assert plan_key(stored, tmp_path / "m3" / "a", cfg, 1) == UNPLANNED
