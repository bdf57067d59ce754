"""Synthetic pairs for the grids from a folder outside the pipeline (issue 24, `segment.external_synthetic`).

Grids A and B can train on SinGAN-Seg samples that no stage of ours generated: the authors'
released 10,000-image set (10 per real image, gen_start_scale 0; paper.md s1 "Released
artefacts") or a folder of our own samples made elsewhere. Two namings are read:

- ours: `images/<real id>_<n>.png` and `masks/<real id>_<n>.png` (the generate and stylize
  stages' layout, docs/design.md);
- the authors': `chk_id_<id>_gen_scale_<s>_<n>_img.png` with `chk_id_<id>_gen_scale_<s>_<n>_mask.png`,
  as their sampler writes them (singan_seg_polyp `SinGAN/manipulate.py::SinGAN_generate_clean`,
  paper.md s1 "Output"), and `..._<n>_img_ST.png` for the style-transferred image, whose mask
  is the unchanged `..._<n>_mask.png` (`style_transfer.py::transfer_style_to_folder`, paper.md
  s2). They lie in the folder itself, as their sampler writes them, or in its images/ and
  masks/. `<id>` is the authors' id 1..1000, the natural-sort position of the real image's
  name (paper.md s3; singanseg.authors.authors_numbering, the importer's own mapping).

Every pair comes back as a Pair whose id is ours, `<real id>_<n>`, so the grids choose
samples by id exactly as they do from synthetic/ (pipeline/segment/experiments.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from singanseg.io import InputError, Pair, list_pairs

# chk_id_<id>_gen_scale_<s>_<n>_<kind>.<ext>: the authors' sampler's names (manipulate.py:213-214)
AUTHORS_NAME = re.compile(
    r"^chk_id_(?P<id>\d+)_gen_scale_(?P<scale>\d+)_(?P<n>\d+)_(?P<kind>img|img_ST|mask)\.(?:png|jpe?g)$", re.I
)


class ExternalSyntheticError(InputError):
    """An external synthetic folder cannot be read; the message names the folder or the file."""


def _authors_files(folder: Path) -> list[Path]:
    """The authors'-named files of `folder` and of its images/ and masks/ (non-recursive)."""
    files = []
    for d in (folder, folder / "images", folder / "masks"):
        if d.is_dir():
            files += [p for p in sorted(d.iterdir()) if p.is_file() and AUTHORS_NAME.match(p.name)]
    return files


def naming_of(folder: Path) -> str:
    """"authors" when the folder holds files of the authors' names, else "ours"."""
    return "authors" if _authors_files(folder) else "ours"


def _authors_pairs(folder: Path, styled: bool, gen_start_scale: int, real_ids: dict[int, str], real_dir: Path) -> list[Pair]:
    image_kind = "img_ST" if styled else "img"
    images: dict[tuple[int, int], Path] = {}
    masks: dict[tuple[int, int], Path] = {}
    for path in _authors_files(folder):
        m = AUTHORS_NAME.match(path.name)
        if int(m["scale"]) != gen_start_scale:
            continue  # another gen_start_scale's samples: not this set (the name says which)
        kind = m["kind"].lower()
        if kind not in (image_kind.lower(), "mask"):
            continue  # img_ST files in an unstyled set, or img files in a styled one
        key = (int(m["id"]), int(m["n"]))
        into = masks if kind == "mask" else images
        if key in into:
            raise ExternalSyntheticError(f"{path}: a second file for authors' id {key[0]} sample {key[1]} (first {into[key]})")
        into[key] = path
    if not images:
        raise ExternalSyntheticError(
            f"{folder}: no image named chk_id_<id>_gen_scale_{gen_start_scale}_<n>_{image_kind}.png "
            f"({'style-transferred' if styled else 'not style-transferred'} set, gen_start_scale {gen_start_scale})"
        )
    pairs = []
    for key in sorted(images):
        if key not in masks:
            raise ExternalSyntheticError(f"{images[key]}: no mask chk_id_{key[0]}_gen_scale_{gen_start_scale}_{key[1]}_mask.png beside it")
        if key[0] not in real_ids:
            raise ExternalSyntheticError(
                f"{images[key]}: authors' id {key[0]} has no real image in {real_dir} ({len(real_ids)} pairs: the "
                f"authors' ids are the natural-sort positions of their names, 1..{len(real_ids)})"
            )
        pairs.append(Pair(f"{real_ids[key[0]]}_{key[1]}", images[key], masks[key]))
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise ExternalSyntheticError(f"{masks[orphans[0]]}: no image chk_id_{orphans[0][0]}_gen_scale_{gen_start_scale}_"
                                     f"{orphans[0][1]}_{image_kind}.png beside it")  # fmt: skip
    return pairs


def _our_pairs(folder: Path, real_ids: set[str], real_dir: Path) -> list[Pair]:
    pairs = list_pairs(folder)  # a pair without mask, or a mask without image: named there
    for p in pairs:
        src, sep, n = p.id.rpartition("_")
        if not sep or not n.isdigit():
            raise ExternalSyntheticError(f"{p.image}: not named <real id>_<n> (our naming) nor chk_id_<id>_gen_scale_<s>_<n>_img.png")
        if src not in real_ids:
            raise ExternalSyntheticError(f"{p.image}: real image {src!r} is not in {real_dir}")
    return pairs


def external_pairs(folder: str | Path, styled: bool, naming: str, gen_start_scale: int, real_dir: str | Path) -> list[Pair]:
    """The synthetic pairs of `folder`, with ids `<real id>_<n>` of the real pairs in `real_dir`.

    `styled`: the set is style-transferred (the authors' `_img_ST` images); `naming`: "ours",
    "authors" or "auto" (authors' when any file has their names). Refuses, naming the file: a
    missing folder, an image without its mask (or the reverse), an id with no real image.
    """
    from singanseg.authors import authors_numbering  # torch, only when a folder is used

    folder, real_dir = Path(folder), Path(real_dir)
    if not folder.is_dir():
        raise ExternalSyntheticError(f"{folder}: folder not found")
    numbered = authors_numbering(real_dir)
    if naming == "auto":
        naming = naming_of(folder)
    if naming == "authors":
        return _authors_pairs(folder, styled, gen_start_scale, {n: p.id for n, p in numbered}, real_dir)
    return _our_pairs(folder, {p.id for _, p in numbered}, real_dir)
