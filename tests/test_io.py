"""Pair I/O: binarisation, conversions, and errors that name the file."""

import numpy as np
import pytest
from PIL import Image

from singanseg.io import (
    InputError,
    atomic_dir,
    list_pairs,
    read_image,
    read_mask,
    read_pair,
    write_png,
)


def _pair(root, pid, size=(20, 16), mode="RGB", mask_size=None, ext="png"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 100).save(root / "images" / f"{pid}.{ext}")
    m = np.zeros((mask_size or size)[::-1], np.uint8)
    m[2:6, 3:9] = 255
    Image.fromarray(m).save(root / "masks" / f"{pid}.png")


def test_mask_binarised_at_127_and_ambiguity_counted(tmp_path):
    grey = np.array([[0, 10, 127, 128, 200, 255]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "m.png")
    mask, info = read_mask(tmp_path / "m.png")
    assert mask.tolist() == [[0, 0, 0, 255, 255, 255]]
    assert info.nonbinary_px == 4  # 10, 127, 128, 200
    assert info.ambiguous_px == 2  # only 127 and 128 lie within (64, 191)

@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_images_of_other_modes_become_rgb(tmp_path, mode):
    im = Image.new(mode, (7, 5), 50 if mode != "RGBA" else (10, 20, 30, 40))
    im.save(tmp_path / "x.png")
    a = read_image(tmp_path / "x.png")
    assert a.shape == (5, 7, 3) and a.dtype == np.uint8


def test_list_pairs_sorted_and_matched(tmp_path):
    for pid in ["b", "a", "c"]:
        _pair(tmp_path, pid, ext="jpg" if pid == "b" else "png")
    assert [p.id for p in list_pairs(tmp_path)] == ["a", "b", "c"]


def test_missing_mask_names_the_image(tmp_path):
    _pair(tmp_path, "a")
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "lonely.png")
    with pytest.raises(InputError, match=r"lonely\.png: no mask"):
        list_pairs(tmp_path)


def test_duplicate_stems_rejected(tmp_path):
    _pair(tmp_path, "a")
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "a.jpg")
    with pytest.raises(InputError, match=r"duplicate id 'a'"):
        list_pairs(tmp_path)


def test_mask_of_another_size_names_the_mask(tmp_path):
    _pair(tmp_path, "a", size=(20, 16), mask_size=(10, 16))
    with pytest.raises(InputError, match=r"masks/a\.png: mask is 10x16 .* is 20x16"):
        read_pair(list_pairs(tmp_path)[0])


def test_truncated_and_non_image_files(tmp_path):
    _pair(tmp_path, "a", ext="jpg", size=(64, 64))
    data = (tmp_path / "images" / "a.jpg").read_bytes()
    (tmp_path / "images" / "a.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"a\.jpg: unreadable or truncated"):
        read_image(tmp_path / "images" / "a.jpg")
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(InputError, match=r"t\.png: not an image"):
        read_image(tmp_path / "t.png")


def test_empty_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(InputError, match="no images"):
        list_pairs(tmp_path)


def test_atomic_dir_keeps_old_output_on_failure(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as d:
        write_png(d / "x.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as d:
            write_png(d / "y.png", np.zeros((2, 2), np.uint8))
            raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["x.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folder left behind
