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
