"""The kvasir-seg source: offline failure, checksum, safe extraction, caching."""

import io
import stat
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from pipeline.data.kvasir import KvasirParams, fetch, safe_extract
from pipeline.data.prepare import DataParams, build
from singanseg.io import InputError


def _png(size=(12, 10), value=120, mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format="JPEG")
    return buf.getvalue()


def _kvasir_zip(path, n=3):
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            zf.writestr(f"Kvasir-SEG/images/id{i}.jpg", _png())
            m = np.zeros((10, 12), np.uint8)
            m[2:5, 3:7] = 255
            buf = io.BytesIO()
            Image.fromarray(m).save(buf, format="JPEG")
            zf.writestr(f"Kvasir-SEG/masks/id{i}.jpg", buf.getvalue())
        zf.writestr("Kvasir-SEG/kavsir_bboxes.json", "{}")
    return path


def test_offline_download_fails_fast_and_says_where_to_put_the_zip(tmp_path):
    params = KvasirParams(url="http://127.0.0.1:9/kvasir-seg.zip", cache_dir=str(tmp_path / "cache"), timeout_s=5)
    t0 = time.monotonic()
    with pytest.raises(InputError) as e:
        fetch(params)
    assert time.monotonic() - t0 < 10
    assert str(tmp_path / "cache" / "kvasir-seg.zip") in str(e.value) and "by hand" in str(e.value)


def test_manual_zip_is_extracted_pinned_and_verified(tmp_path):
    archive = _kvasir_zip(tmp_path / "manual.zip")
    params = KvasirParams(url="http://127.0.0.1:9/x", cache_dir=str(tmp_path / "cache"), zip_path=str(archive))
    root = fetch(params)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["id0.jpg", "id1.jpg", "id2.jpg"]
    pinned = (tmp_path / "cache" / "kvasir-seg.zip.sha256").read_text().strip()
    assert len(pinned) == 64
    # the data stage reads it like any folder
    rows = build(DataParams(source="kvasir-seg", kvasir=params), tmp_path / "out")
    assert [r["id"] for r in rows] == ["id0", "id1", "id2"] and rows[0]["source"] == "kvasir-seg"
    # a different archive no longer matches the pinned hash (trust on first use)
    _kvasir_zip(archive, n=2)
    with pytest.raises(InputError, match="does not match the expected"):
        fetch(params)
    with pytest.raises(InputError, match="does not match the expected 00"):
        fetch(KvasirParams(cache_dir=str(tmp_path / "c2"), zip_path=str(archive), sha256="00" * 32))


def test_safe_extract_refuses_path_escapes_and_links(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    with pytest.raises(InputError, match="outside the target folder"):
        safe_extract(evil, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("Kvasir-SEG/images/a.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        safe_extract(link, tmp_path / "dest2")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK not really")
    with pytest.raises(InputError, match="not a valid zip"):
        safe_extract(bad, tmp_path / "dest3")


def test_zip_bomb_is_refused_and_not_pinned(tmp_path):
    """Issue 14 item 3: a bomb was extracted without limit and its hash pinned, locking out
    the correct archive with a message naming the wrong file to delete."""
    bomb = tmp_path / "kvasir-seg.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Kvasir-SEG/images/id0.jpg", _png())
        zf.writestr("Kvasir-SEG/masks/id0.jpg", b"\0" * 20_000_000)  # 20 MB of zeros, ~20 kB zipped
    params = KvasirParams(url="http://127.0.0.1:9/x", cache_dir=str(tmp_path / "cache"), zip_path=str(bomb))
    with pytest.raises(InputError, match=r"kvasir-seg\.zip: expands to more than .*zip bomb"):
        fetch(params)
    assert not (tmp_path / "cache" / "kvasir-seg.zip.sha256").exists()
    assert not (tmp_path / "cache" / "extracted").exists()
    # the absolute limit, whatever the ratio
    with pytest.raises(InputError, match="zip bomb"):
        safe_extract(bomb, tmp_path / "d", max_bytes=1e6, max_ratio=1e9)
    # the correct archive is accepted afterwards
    _kvasir_zip(bomb)
    root = fetch(params)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["id0.jpg", "id1.jpg", "id2.jpg"]
    assert (tmp_path / "cache" / "kvasir-seg.zip.sha256").is_file()


def test_pin_mismatch_names_the_pin_file(tmp_path):
    archive = _kvasir_zip(tmp_path / "manual.zip")
    params = KvasirParams(url="http://127.0.0.1:9/x", cache_dir=str(tmp_path / "cache"), zip_path=str(archive))
    fetch(params)
    _kvasir_zip(archive, n=2)
    pin = tmp_path / "cache" / "kvasir-seg.zip.sha256"
    with pytest.raises(InputError, match=rf"pinned on first use in {pin}; .*delete {pin}"):
        fetch(params)


def test_empty_archive_is_not_pinned(tmp_path):
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    params = KvasirParams(url="http://127.0.0.1:9/x", cache_dir=str(tmp_path / "cache"), zip_path=str(archive))
    with pytest.raises(InputError, match="no images/ and masks/"):
        fetch(params)
    assert not (tmp_path / "cache" / "kvasir-seg.zip.sha256").exists()
