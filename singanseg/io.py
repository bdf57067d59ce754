"""Image/mask pair I/O shared by every part of the suite.

The data contract (docs/design): a dataset folder holds `images/<id>.<ext>` and
`masks/<id>.<ext>` with matching stems; masks are binarised at 127 into {0, 255}, as the
authors' 4-channel loader does (`DCGAN-4ch/custom_data.py::make_4_chs_img`). Every error
names the file and what is wrong with it. Writers are atomic: a reader never sees half a
file or half a folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from singanseg.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_THRESHOLD = 127  # > 127 is foreground, as the paper's loaders (paper.md section 1)
# A pixel of a mask further than this from both 0 and 255 counts as ambiguous: JPEG
# masks (Kvasir-SEG ships them) carry compression noise near 0 and 255, which is not doubt.
AMBIGUOUS_MARGIN = 64


class InputError(UserError):
    """Bad input data; the message names the file and the problem."""


@dataclass(frozen=True)
class Pair:
    id: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class MaskInfo:
    nonbinary_px: int  # pixels that were neither 0 nor 255 before binarisation
    ambiguous_px: int  # pixels within AMBIGUOUS_MARGIN of neither end


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        im = Image.open(path)
        im.load()  # PIL opens lazily: decoding is where truncation shows
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (PIL cannot identify it)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: unreadable or truncated image ({e})") from None
    return im


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3); grayscale, palette, 16-bit and RGBA are converted."""
    im = _open(Path(path))
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        a = (a / max(a.max(), 1) * 255).round().astype(np.uint8)
        im = Image.fromarray(a, "L")
    if im.mode != "RGB":
        # RGBA: the alpha channel is dropped (an RGBA SinGAN-Seg input keeps its mask there;
        # use read_rgba_pair for that).
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def read_mask(path: str | os.PathLike, threshold: int = MASK_THRESHOLD) -> tuple[np.ndarray, MaskInfo]:
    """Read a mask as uint8 {0, 255} (H, W), binarised at `threshold` (> threshold is polyp)."""
    im = _open(Path(path))
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        grey = (a / max(a.max(), 1) * 255).round().astype(np.uint8)
    else:
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
    info = MaskInfo(
        nonbinary_px=int(np.count_nonzero((grey != 0) & (grey != 255))),
        ambiguous_px=int(np.count_nonzero((grey > AMBIGUOUS_MARGIN) & (grey < 255 - AMBIGUOUS_MARGIN))),
    )
    return np.where(grey > threshold, 255, 0).astype(np.uint8), info


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray, MaskInfo]:
    """Read and validate one pair: RGB uint8 image, {0,255} mask of the same size."""
    image = read_image(pair.image)
    mask, info = read_mask(pair.mask)
    if mask.shape != image.shape[:2]:
        raise InputError(
            f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
            f"{pair.image} is {image.shape[1]}x{image.shape[0]}"
        )
    return image, mask, info


def _index(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in found:
            raise InputError(f"{p}: duplicate id '{p.stem}' (also {found[p.stem].name}); ids must be unique")
        found[p.stem] = p
    return found


def list_pairs(root: str | os.PathLike, images: str = "images", masks: str = "masks") -> list[Pair]:
    """List the pairs of a dataset folder (`images/` and `masks/` with matching stems), sorted by id."""
    root = Path(root)
    img_dir, mask_dir = root / images, root / masks
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise InputError(f"{d}: folder not found (a dataset folder holds {images}/ and {masks}/)")
    imgs, msks = _index(img_dir), _index(mask_dir)
    if not imgs:
        raise InputError(f"{img_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    missing = sorted(set(imgs) - set(msks))
    if missing:
        raise InputError(f"{imgs[missing[0]]}: no mask with the same name in {mask_dir} ({len(missing)} image(s) lack one)")
    orphans = sorted(set(msks) - set(imgs))
    if orphans:
        raise InputError(f"{msks[orphans[0]]}: mask has no image with the same name in {img_dir}")
    return [Pair(i, imgs[i], msks[i]) for i in sorted(imgs)]


def file_digests(path: str | os.PathLike, *algorithms: str) -> dict[str, str]:
    """Hex digests of a file in one read, 1 MiB blocks at a time: {"sha256": ..., "sha1": ...}."""
    hashes = {a: hashlib.new(a) for a in algorithms or ("sha256",)}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashes.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (checksums of archives, weights, checkpoints): the suite's one."""
    return file_digests(path, "sha256")["sha256"]


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 (H, W) or (H, W, 3|4) array as PNG, atomically (temp file + rename)."""
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"{path}: write_png expects uint8, got {array.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(array).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name next to `final`, then swap it in.

    On an exception the temporary folder is removed and `final` is left as it was, so a
    crash never leaves a half-written output that looks valid.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

