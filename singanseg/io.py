"""Image/mask pair I/O shared by every part of the suite.

The data contract (docs/design): a dataset folder holds `images/<id>.<ext>` and
`masks/<id>.<ext>` with matching stems; masks are binarised at 127 into {0, 255}, as the
authors' 4-channel loader does (`DCGAN-4ch/custom_data.py::make_4_chs_img`). Every error
names the file and what is wrong with it. Writers are atomic: a reader never sees half a
file or half a folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from natsort import natsorted
from PIL import Image, ImageOps, UnidentifiedImageError

from singanseg.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_THRESHOLD = 127  # > 127 is foreground, as the paper's loaders (paper.md section 1)
# A pixel of a mask further than this from both 0 and 255 counts as ambiguous: JPEG
# masks (Kvasir-SEG ships them) carry compression noise near 0 and 255, which is not doubt.
AMBIGUOUS_MARGIN = 64

log = logging.getLogger(__name__)


class InputError(UserError):
    """Bad input data; the message names the file and the problem."""


class DiskFullError(UserError):
    """The output's file system is full (or over quota); the message names the folder."""


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def is_disk_full(error: BaseException) -> bool:
    """An OSError 28 (ENOSPC) or 122 (EDQUOT), also as safetensors reports it (a
    SafetensorError whose text holds Rust's `StorageFull` / `os error 28`)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return any(s in text for s in ("StorageFull", "No space left on device", "os error 28", "Disk quota exceeded"))


def disk_full_error(folder: str | os.PathLike, needed_bytes: float | None = None) -> DiskFullError:
    """One line: the folder, its free space, what was needed, and that nothing partial is kept."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = f"{_human(shutil.disk_usage(probe).free)} free"
    except OSError:
        free = "free space unknown"
    need = f", about {_human(needed_bytes)} needed" if needed_bytes else ""
    return DiskFullError(
        f"{folder}: disk full ({free}{need}); partial files were removed: free space there "
        "(or choose another output folder) and rerun"
    )


@contextlib.contextmanager
def reporting_disk_full(folder: str | os.PathLike, needed_bytes: float | None = None) -> Iterator[None]:
    """Turn a disk-full error inside the block into one DiskFullError naming `folder`."""
    try:
        yield
    except DiskFullError:
        raise disk_full_error(folder, needed_bytes) from None  # the output folder, not a temporary inside it
    except UserError:
        raise
    except Exception as e:
        if is_disk_full(e):
            raise disk_full_error(folder, needed_bytes) from None
        raise


@dataclass(frozen=True)
class Pair:
    id: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class MaskInfo:
    nonbinary_px: int  # pixels that were neither 0 nor 255 before binarisation
    ambiguous_px: int  # pixels within AMBIGUOUS_MARGIN of neither end


def _open(path: Path, max_pixels: int | None = None) -> Image.Image:
    """Open and decode an image; `max_pixels` is checked on the header, before decoding."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image file")
    if path.is_symlink() and not path.exists():
        raise InputError(f"{path}: broken symbolic link (its target {os.readlink(path)!r} does not exist)")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        im = Image.open(path)
        if max_pixels is not None and im.width * im.height > max_pixels:
            raise InputError(
                f"{path}: {im.width}x{im.height} = {im.width * im.height} pixels exceeds "
                f"max_input_pixels ({max_pixels}); downscale it first or raise the limit"
            )
        im.load()  # PIL opens lazily: decoding is where truncation shows
        # A phone or viewer-rotated JPEG stores its pixels unrotated plus an EXIF
        # Orientation tag: read it as displayed, where a mask drawn on it is aligned.
        im = ImageOps.exif_transpose(im)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (PIL cannot identify it)") from None
    except Image.DecompressionBombError as e:  # not an OSError: PIL's own guard (> 2x MAX_IMAGE_PIXELS)
        raise InputError(f"{path}: refused as a decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError, MemoryError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{path}: unreadable or truncated image ({e})") from None
    return im


# EXIF Orientation values that turn the picture by 90 or 270 degrees (5-8; 1-4 keep its
# width and height): what `ImageOps.exif_transpose` does to the size.
_EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = (5, 6, 7, 8)


def displayed_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened (not decoded) image as displayed: the header's size, its
    sides swapped where the EXIF Orientation turns it (read_image applies it). For checks on
    headers only, which must agree with what the readers return."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - an unreadable EXIF block: as stored (exif_transpose does the same)
        orientation = 1
    return (im.height, im.width) if orientation in _SWAPS_SIDES else (im.width, im.height)


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3); grayscale, palette, 16-bit and RGBA are converted.

    `max_pixels`: refuse (InputError) an image whose header says it is larger, before decoding.
    """
    im = _open(Path(path), max_pixels)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        a = (a / max(a.max(), 1) * 255).round().astype(np.uint8)
        im = Image.fromarray(a, "L")
    if im.mode != "RGB":
        # RGBA: the alpha channel is dropped (an RGBA SinGAN-Seg input keeps its mask there;
        # use read_rgba_pair for that).
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def read_mask(
    path: str | os.PathLike, threshold: int = MASK_THRESHOLD, max_pixels: int | None = None
) -> tuple[np.ndarray, MaskInfo]:
    """Read a mask as uint8 {0, 255} (H, W), binarised at `threshold` (> threshold is polyp).

    An 8-bit mask holding only {0, 1} (common in public datasets) is read as binary with
    1 = polyp: binarised at 127 it would be empty. 16-bit masks are scaled by their maximum.
    """
    im = _open(Path(path), max_pixels)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        grey = (a / max(a.max(), 1) * 255).round().astype(np.uint8)
    else:
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
    if grey.max(initial=0) == 1:  # only {0, 1}: a 0/1 label mask, not a faint 0..255 one
        log.info("%s: mask holds only {0, 1}; read as binary (1 = polyp)", path)
        grey = grey * np.uint8(255)
    info = MaskInfo(
        nonbinary_px=int(np.count_nonzero((grey != 0) & (grey != 255))),
        ambiguous_px=int(np.count_nonzero((grey > AMBIGUOUS_MARGIN) & (grey < 255 - AMBIGUOUS_MARGIN))),
    )
    return np.where(grey > threshold, 255, 0).astype(np.uint8), info


def read_pair(pair: Pair, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray, MaskInfo]:
    """Read and validate one pair: RGB uint8 image, {0,255} mask of the same size."""
    image = read_image(pair.image, max_pixels)
    mask, info = read_mask(pair.mask, max_pixels=max_pixels)
    if mask.shape != image.shape[:2]:
        raise InputError(
            f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
            f"{pair.image} is {image.shape[1]}x{image.shape[0]}"
        )
    return image, mask, info


def normalize_id(stem: str) -> str:
    """The id of a file stem: Unicode NFC, so that an NFC image and an NFD mask of "the same
    name" (macOS writes NFD, most tools NFC) pair."""
    return unicodedata.normalize("NFC", stem)


def read_pairs(
    pairs: list[Pair], max_pixels: int | None = None
) -> Iterator[tuple[Pair, np.ndarray, np.ndarray, MaskInfo]]:
    """Read every pair, yielding the good ones; the bad ones are reported together at the end.

    One InputError (one line) names every bad pair, so that a dataset with several broken
    files is fixed in one round, not one rerun per file.
    """
    errors = []
    for p in pairs:
        try:
            image, mask, info = read_pair(p, max_pixels)
        except InputError as e:
            errors.append(str(e))
            continue
        yield p, image, mask, info
    if errors:
        raise InputError(f"{len(errors)} of {len(pairs)} pairs are bad: " + "; ".join(errors))


def _index(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink() and not p.exists() and p.suffix.lower() in IMAGE_SUFFIXES:
            # not silently: a dataset with a dangling link is short of a pair the user expects
            log.warning("%s: broken symbolic link (target %r does not exist); skipped", p, os.readlink(p))
            continue
        if not p.is_file():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = normalize_id(p.stem)
        if stem in found:
            raise InputError(f"{p}: duplicate id '{stem}' (also {found[stem].name}); ids must be unique")
        found[stem] = p
    return found


def natural_sorted(ids: Iterable[str]) -> list[str]:
    """Ids in natural-sort order ("img2" before "img10"), the authors' order.

    paper.md section 3 (verified): the authors' ids 1..1000 are the Kvasir-SEG file names in
    `natsort.natsorted` order, which their code uses throughout; plain `sorted()` puts
    "img10" before "img2" and so changes fold membership and grid B's "first N images".
    natsort is the authors' own library, so the order is theirs by construction.
    """
    return natsorted(ids)


def list_pairs(root: str | os.PathLike, images: str = "images", masks: str = "masks") -> list[Pair]:
    """List the pairs of a dataset folder (`images/` and `masks/` with matching stems), in
    natural-sort order of the ids (`natural_sorted`: the authors' numbering, paper.md s3)."""
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
    return [Pair(i, imgs[i], msks[i]) for i in natural_sorted(imgs)]


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


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask sets it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _respect_umask(path: str | os.PathLike, is_dir: bool) -> None:
    # mkstemp/mkdtemp create 0600/0700 whatever the umask (they are meant for private
    # scratch); our temp files become outputs, which shared group folders on clusters need
    # to read: give them the mode open()/mkdir() would have.
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


# Temporary names carry the writer's host and pid, so that a later run can tell a stale
# one (its writer is dead: killed, crashed) from one that another live run is writing.
_TMP_RE = re.compile(r"^\..+\.tmp-(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _tmp_prefix(name: str) -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
    return f".{name}.tmp-{host}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def clean_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files/folders in `folder` left by dead writers on this host; returns them.

    A killed run (kill -9, power loss) cannot clean up after itself; the next run does.
    Temporary names of live writers, and of other hosts (a shared file system), are kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = _tmp_prefix("x").split(".tmp-")[1].rsplit("-", 1)[0]
    removed = []
    for p in folder.iterdir():
        m = _TMP_RE.match(p.name)
        if not m or m["host"] != host or _pid_alive(int(m["pid"])):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        log.info("%s: removed a stale temporary %s", p, "folder" if p.is_dir() else "file")
        removed.append(p)
    return removed


def check_plain_name(value: str, where: str) -> str:
    """`value` as a file name part (an id or prefix): no folder separators, not '.'/'..'.

    An id like `../../X` would otherwise write outside the output folder.
    """
    if (
        not value
        or value in (".", "..")
        or "/" in value
        or "\\" in value
        or "\0" in value
        or (os.altsep and os.altsep in value)
    ):
        raise InputError(f"{where}: {value!r} is not a plain name (no '/', '\\', '.' or '..'); use a simple id")
    return value


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        _respect_umask(tmp, is_dir=False)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(e) and not isinstance(e, DiskFullError):
            raise disk_full_error(path.parent) from None  # issue 26 item 6: one line, no partial file
        raise
    return path


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 (H, W) or (H, W, 3|4) array as PNG, atomically (temp file + rename)."""
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"{path}: write_png expects uint8, got {array.dtype}")
    return _atomic_write(path, lambda f: Image.fromarray(array).save(f, format="PNG"))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    return _atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


# What depends on the clock (wall seconds, timestamps) is written to a sidecar
# `<record>.timing.json` beside the record it belongs to, never into the record: the
# repository's .dvcignore excludes that pattern, so DVC hashes a model or result folder by
# its content only, and a rerun on the same inputs reproduces dvc.lock byte for byte
# (docs/conventions.md, "What a run writes and what DVC hashes").
TIMING_SUFFIX = ".timing.json"


def timing_path(record: str | os.PathLike) -> Path:
    """The sidecar of a record: `model.json` -> `model.timing.json`."""
    record = Path(record)
    return record.with_name(record.name.removesuffix(".json") + TIMING_SUFFIX)


def write_timing(record: str | os.PathLike, timing: dict) -> Path:
    """Write the clock-dependent part of `record` to its sidecar (atomically)."""
    return write_text(timing_path(record), json.dumps(timing, indent=2, sort_keys=True) + "\n")


def read_timing(record: str | os.PathLike) -> dict:
    """The sidecar of `record`, or {} where there is none (a DVC checkout restores no sidecar:
    they are not cached) or it is unreadable; times are informative, never required."""
    try:
        data = json.loads(timing_path(record).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name next to `final`, then swap it in.

    On an exception the temporary folder is removed and `final` is left as it was, so a
    crash never leaves a half-written output that looks valid. Temporary folders of killed
    earlier runs are removed first. `final` must be a folder or absent: an existing file
    there is refused, not moved aside.
    """
    final = Path(os.path.abspath(final))  # `.` or `x/..` have no usable name
    if final.exists() and not final.is_dir():
        raise InputError(f"{final}: exists and is not a folder; choose another output path")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final.name), suffix=".tmp", dir=final.parent))
    _respect_umask(tmp, is_dir=True)
    try:
        yield tmp
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e):  # named by the output, not by the temporary folder that is gone
            raise disk_full_error(final) from None
        raise
    old = None
    if final.exists():
        old = final.with_name(f"{_tmp_prefix(final.name)}old.tmp")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
