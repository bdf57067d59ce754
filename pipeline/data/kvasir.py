"""The Kvasir-SEG source: download the official zip, verify it, extract it safely, cache it.

Kvasir-SEG (Jha et al., MMM 2020; distributed in HyperKvasir, Borgli et al., Scientific
Data 2020, CC BY 4.0) holds the same 1000 polyp images with masks that the paper used
(paper.md section 3). The archive unpacks to `Kvasir-SEG/{images,masks}/<id>.jpg`.

Offline, the download fails within seconds and the error says where to put a zip that
was downloaded by hand. The checksum in params is checked on every use; with `sha256: null`
the first verified-by-extraction archive's hash is recorded next to it (trust on first
use) and later uses must match it.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from singanseg.io import InputError, atomic_dir, sha256_file, write_text
from singanseg.typed import ConfigError


@dataclass(frozen=True)
class KvasirParams:
    # The official archive (datasets.simula.no, Kvasir-SEG page): 1000 images + masks, ~46 MB
    url: str = "https://datasets.simula.no/downloads/kvasir-seg.zip"
    # Pin it once you have verified a download (`sha256sum kvasir-seg.zip`); null = trust on first use
    sha256: str | None = None
    cache_dir: str = "~/.cache/singanseg/kvasir-seg"
    zip_path: str | None = None  # a zip downloaded by hand; else <cache_dir>/kvasir-seg.zip
    timeout_s: float = 20.0
    # Zip-bomb guards (issue 14): the real archive is ~46 MB of JPEGs expanding to about the
    # same; a 3 MB file that expands to 3 GB is refused, not extracted.
    max_extract_mb: float = 2048.0
    max_ratio: float = 100.0  # total uncompressed / archive size on disk

    def validate(self, where: str) -> None:
        for name in ("max_extract_mb", "max_ratio", "timeout_s"):
            value = getattr(self, name)
            if not (value > 0 and value != float("inf")):
                raise ConfigError(f"{where}.{name}: must be a finite number > 0, got {value}")



def safe_extract(archive: Path, dest: Path, max_bytes: float = 2048e6, max_ratio: float = 100.0) -> None:
    """Extract a zip refusing absolute paths, `..` escapes, symbolic links and zip bombs.

    A bomb is refused on the declared sizes first, and while writing on the bytes actually
    decompressed (declared sizes can lie): at most `max_bytes` in all and at most
    `max_ratio` times the archive's size on disk.
    """
    root = dest.resolve()
    limit = min(max_bytes, max_ratio * max(archive.stat().st_size, 1))

    def bomb(total: float) -> InputError:
        return InputError(
            f"{archive}: expands to more than {total / 1e6:.0f} MB (limit {max_bytes / 1e6:.0f} MB, "
            f"ratio {max_ratio:g}x of its {archive.stat().st_size / 1e6:.1f} MB); refusing a possible "
            f"zip bomb (data.kvasir.max_extract_mb / max_ratio raise the limits)"
        )

    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                name = info.filename
                target = (root / name).resolve()
                if os.path.isabs(name) or not target.is_relative_to(root):
                    raise InputError(f"{archive}: member {name!r} would extract outside the target folder; refusing")
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    raise InputError(f"{archive}: member {name!r} is a symbolic link; refusing")
            declared = sum(i.file_size for i in infos)
            if declared > limit:
                raise bomb(declared)
            written = 0
            for info in infos:
                target = (root / info.filename).resolve()
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    while block := src.read(1 << 20):
                        written += len(block)
                        if written > limit:
                            raise bomb(written)
                        dst.write(block)
    except zipfile.BadZipFile as e:
        raise InputError(f"{archive}: not a valid zip archive ({e})") from None


def _download(url: str, target: Path, timeout: float) -> None:
    tmp = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f)
    os.replace(tmp, target)


def fetch(params: KvasirParams) -> Path:
    """Return the folder holding `images/` and `masks/`, downloading and extracting if needed."""
    cache = Path(params.cache_dir).expanduser()
    archive = Path(params.zip_path).expanduser() if params.zip_path else cache / "kvasir-seg.zip"
    extracted = cache / "extracted"
    pinned_file = cache / "kvasir-seg.zip.sha256"
    if not archive.is_file():
        try:
            _download(params.url, archive, params.timeout_s)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise InputError(
                f"could not download Kvasir-SEG from {params.url} ({getattr(e, 'reason', e)}). "
                f"Download it by hand and put it at {archive} (or set data.kvasir.zip_path), "
                f"or use data.source: folder with an extracted copy."
            ) from None
    digest = sha256_file(archive)
    if params.sha256:
        if digest != params.sha256:
            raise InputError(
                f"{archive}: sha256 {digest} does not match the expected {params.sha256} "
                f"(data.kvasir.sha256); delete {archive} and download again"
            )
    elif pinned_file.is_file() and digest != (pinned := pinned_file.read_text().strip()):
        raise InputError(
            f"{archive}: sha256 {digest} does not match the expected {pinned}, pinned on first use "
            f"in {pinned_file}; if {archive} is the archive you trust, delete {pinned_file}; "
            f"else delete {archive} and download again"
        )
    marker = extracted / ".sha256"
    if not (marker.is_file() and marker.read_text().strip() == digest):
        with atomic_dir(extracted) as tmp:
            safe_extract(archive, tmp, params.max_extract_mb * 1e6, params.max_ratio)
            if _dataset_root(tmp) is None:
                raise InputError(f"{archive}: the archive holds no images/ and masks/ folders")
            write_text(tmp / ".sha256", digest + "\n")
    root = _dataset_root(extracted)
    if root is None:
        raise InputError(f"{archive}: the archive holds no images/ and masks/ folders")
    # Pinned only now, after a successful extraction of a usable dataset: a bad first
    # archive (a bomb, an empty zip) must not lock the correct one out.
    if not params.sha256 and not pinned_file.is_file():
        write_text(pinned_file, digest + "\n")
    return root


def _dataset_root(extracted: Path) -> Path | None:
    for candidate in [extracted, *sorted(p for p in extracted.iterdir() if p.is_dir())]:
        if (candidate / "images").is_dir() and (candidate / "masks").is_dir():
            return candidate
    return None
