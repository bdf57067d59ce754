"""Property-based fuzzing of the pairing and the image/mask readers (issue 14, acceptance).

Over generated names (Unicode, NFC or NFD, any case of suffix), sizes, PIL modes and bit
depths, and damaged files: every dataset folder is either read correctly (RGB uint8
images, {0, 255} masks equal to the drawn ones, pairs matched) or refused with a one-line
InputError naming a file of the folder; never another exception.
"""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from singanseg.io import InputError, list_pairs, read_pair

# Names as people have them: letters, digits, punctuation, spaces, accents, CJK; no
# control characters (a newline in a name cannot be shown in one line) and no separators.
NAME_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc", "Co", "Cn"), blacklist_characters="/\\\0"
)
STEMS = st.text(NAME_CHARS, min_size=1, max_size=12).filter(
    lambda s: not s.startswith(".") and len(s.encode("utf-8")) < 100 and s.strip() == s
)
MASK_MODES = ("L255", "L01", "1", "I;16", "I;16-01", "RGB", "P", "LA")
IMAGE_MODES = ("RGB", "RGBA", "L", "P", "I;16", "LA")


def _save_mask(path: Path, fg: np.ndarray, mode: str, fmt: str) -> None:
    if mode == "L255":
        im = Image.fromarray((fg * 255).astype(np.uint8), "L")
    elif mode == "L01":
        im = Image.fromarray(fg.astype(np.uint8), "L")
    elif mode == "1":
        im = Image.fromarray((fg * 255).astype(np.uint8), "L").convert("1")
    elif mode == "I;16":
        im = Image.fromarray((fg * 65535).astype(np.uint16))
    elif mode == "I;16-01":
        im = Image.fromarray(fg.astype(np.uint16))
    elif mode == "RGB":
        im = Image.fromarray(np.repeat((fg * 255).astype(np.uint8)[..., None], 3, axis=2), "RGB")
    elif mode == "P":
        im = Image.fromarray((fg * 255).astype(np.uint8), "L").convert("P")
    else:  # LA: grey + opaque alpha
        grey = (fg * 255).astype(np.uint8)
        im = Image.fromarray(np.stack([grey, np.full_like(grey, 255)], axis=2), "LA")
    im.save(path, format=fmt)


def _save_image(path: Path, rng: np.random.Generator, h: int, w: int, mode: str, fmt: str) -> None:
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        im = Image.fromarray(rgba, "RGBA").convert(mode)
    im.save(path, format=fmt)


pair_spec = st.fixed_dictionaries(
    {
        "stem": STEMS,
        "image_nfd": st.booleans(),
        "mask_nfd": st.booleans(),
        "suffix": st.sampled_from([".png", ".PNG", ".tif", ".Png"]),
        "h": st.integers(1, 9),
        "w": st.integers(1, 9),
        "mask_h_delta": st.sampled_from([0, 0, 0, 1]),  # sometimes the wrong size
        "image_mode": st.sampled_from(IMAGE_MODES),
        "mask_mode": st.sampled_from(MASK_MODES),
        "damage": st.sampled_from([None, None, None, None, "truncate_image", "garbage_mask", "empty_image"]),
        "seed": st.integers(0, 2**16),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pair_spec, min_size=1, max_size=4), st.booleans())
def test_pairing_and_readers_accept_correctly_or_refuse_in_one_line(specs, orphan_mask):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "images").mkdir()
        (root / "masks").mkdir()
        expected: dict[str, tuple[np.ndarray, bool]] = {}  # id -> (foreground, size mismatch)
        for s in specs:
            nfc = unicodedata.normalize("NFC", s["stem"])
            if nfc in expected:
                continue  # one file per id and folder (duplicates are their own test)
            fmt = "TIFF" if s["suffix"] == ".tif" else "PNG"
            rng = np.random.default_rng(s["seed"])
            h, w = s["h"], s["w"]
            img_name = unicodedata.normalize("NFD" if s["image_nfd"] else "NFC", s["stem"]) + s["suffix"]
            mask_name = unicodedata.normalize("NFD" if s["mask_nfd"] else "NFC", s["stem"]) + s["suffix"]
            _save_image(root / "images" / img_name, rng, h, w, s["image_mode"], fmt)
            fg = rng.random((h + s["mask_h_delta"], w)) < 0.5
            _save_mask(root / "masks" / mask_name, fg, s["mask_mode"], fmt)
            if s["damage"] == "truncate_image":
                p = root / "images" / img_name
                p.write_bytes(p.read_bytes()[: max(8, p.stat().st_size // 2)])
            elif s["damage"] == "garbage_mask":
                (root / "masks" / mask_name).write_bytes(b"not an image at all")
            elif s["damage"] == "empty_image":
                (root / "images" / img_name).write_bytes(b"")
            expected[nfc] = (fg, bool(s["mask_h_delta"]))
        if orphan_mask:
            Image.new("L", (3, 3)).save(root / "masks" / "zz_orphan_mask.png")

        def refused(e: InputError) -> None:
            msg = str(e)
            assert "\n" not in msg, msg
            assert str(root) in msg, msg  # names a file (or folder) of the dataset

        try:
            pairs = list_pairs(root)
        except InputError as e:
            refused(e)
            assert orphan_mask, f"pairing refused a well-formed folder: {e}"
            return
        assert not orphan_mask
        assert sorted(p.id for p in pairs) == sorted(expected)  # NFC and NFD pair
        for p in pairs:
            fg, mismatch = expected[p.id]
            try:
                image, mask, _ = read_pair(p)
            except InputError as e:
                refused(e)
                assert str(p.image) in str(e) or str(p.mask) in str(e)
                continue
            assert not mismatch, "a mask of another size was accepted"
            assert image.dtype == np.uint8 and image.shape == (*fg.shape, 3)
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
            if fg.any():  # an all-background mask reads as empty whatever its encoding
                assert np.array_equal(mask == 255, fg), (p.mask, Image.open(p.mask).mode)
