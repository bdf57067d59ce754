"""DVC stage `data`: real image/mask pairs in one validated layout, plus the folds.

Sources (`data.source`): `phantom` (seeded endoscopy-like fixture, the offline default),
`kvasir-seg` (the official zip, verified and cached) or `folder` (your own `images/` +
`masks/` with matching stems). Output contract (design notes):

    data/real/images/<id>.png   RGB
    data/real/masks/<id>.png    {0, 255}, same size, binarised at 127
    data/real/manifest.csv      id, source, size, foreground fraction, hashes, ...
    data/folds.csv              id, fold  (the paper's sequential 3-fold split by default)

Both are written atomically: a failed run leaves the previous outputs untouched.

    python -m pipeline.data [--params params.yaml] [--out data]
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from pipeline.data import feasibility, kvasir, phantom
from pipeline.data.config import DataParams, PhantomParams  # noqa: F401
from pipeline.infra.mlflow_tracker import log_metrics, stage_run
from pipeline.stage import Stage
from singanseg.io import (
    InputError,
    atomic_dir,
    list_pairs,
    natural_sorted,
    read_pairs,
    sha256_file,
    write_png,
    write_text,
)

MANIFEST_FIELDS = (
    "id", "source", "source_image", "source_mask", "source_image_sha256", "source_mask_sha256",
    "width", "height", "foreground_fraction", "empty_mask", "mask_nonbinary_px", "mask_ambiguous_px",
    "image_sha256", "mask_sha256",
)  # fmt: skip


def assign_folds(ids: list[str], folds: int, mode: str = "sequential", seed: int = 0) -> dict[str, int]:
    """The paper's split: ids in natural-sort order (the authors' ids 1..N, paper.md s3),
    `np.array_split` into `folds` consecutive chunks."""
    order = natural_sorted(ids)
    if mode == "shuffled":
        perm = np.random.default_rng(seed).permutation(len(order))
        order = [order[i] for i in perm]
    out = {}
    for f, chunk in enumerate(np.array_split(np.array(order, dtype=object), folds)):
        for i in chunk:
            out[str(i)] = f
    return out


def _records_from_folder(root: Path, source: str, limit: int | None):
    pairs = list_pairs(root)
    if limit is not None:
        pairs = pairs[:limit]
    for p, image, mask, info in read_pairs(pairs):  # names every bad pair, not the first
        yield p.id, image, mask, info, p.image, p.mask


def _records_from_phantom(params: PhantomParams, limit: int | None):
    n = params.count if limit is None else min(params.count, limit)
    for pid, image, mask in phantom.generate(n, params.seed):
        yield pid, image, mask, None, None, None


def build(params: DataParams, out: Path, check=None) -> list[dict]:
    """Write `out/real/` and `out/folds.csv`; returns the manifest rows.

    `check(folds)`: called with {id: fold} before anything is written for good; an error it
    raises keeps the previous outputs (pipeline/data/feasibility.py: can the data feed the grids?).
    """
    if params.source == "phantom":
        records = _records_from_phantom(params.phantom, params.limit)
    elif params.source == "folder":
        records = _records_from_folder(Path(params.folder).expanduser(), "folder", params.limit)
    else:
        records = _records_from_folder(kvasir.fetch(params.kvasir), "kvasir-seg", params.limit)

    rows: list[dict] = []
    with atomic_dir(out / "real") as tmp:
        for pid, image, mask, info, src_img, src_mask in records:
            img_path = write_png(tmp / "images" / f"{pid}.png", image)
            mask_path = write_png(tmp / "masks" / f"{pid}.png", mask)
            fg = float(np.count_nonzero(mask)) / mask.size
            rows.append({
                "id": pid,
                "source": params.source,
                "source_image": src_img.name if src_img else "",
                "source_mask": src_mask.name if src_mask else "",
                "source_image_sha256": sha256_file(src_img) if src_img else "",
                "source_mask_sha256": sha256_file(src_mask) if src_mask else "",
                "width": image.shape[1],
                "height": image.shape[0],
                "foreground_fraction": round(fg, 6),
                "empty_mask": int(fg == 0.0),
                "mask_nonbinary_px": info.nonbinary_px if info else 0,
                "mask_ambiguous_px": info.ambiguous_px if info else 0,
                "image_sha256": sha256_file(img_path),
                "mask_sha256": sha256_file(mask_path),
            })  # fmt: skip
        if not rows:
            raise InputError(f"data source {params.source!r} produced no pairs")
        if check is not None:
            check(assign_folds([r["id"] for r in rows], params.folds, params.fold_mode, params.fold_seed))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(tmp / "manifest.csv", buf.getvalue())
    folds = assign_folds([r["id"] for r in rows], params.folds, params.fold_mode, params.fold_seed)
    # natural-sort order: the file order defines grid B's "first N images" (paper.md s3);
    # written with the csv module so that any id round-trips
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "fold"])
    writer.writerows([i, folds[i]] for i in natural_sorted(folds))
    write_text(out / "folds.csv", buf.getvalue())
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    """Dataset statistics logged to MLflow: count, size distribution, foreground fraction."""
    w = np.array([r["width"] for r in rows], dtype=float)
    h = np.array([r["height"] for r in rows], dtype=float)
    fg = np.array([r["foreground_fraction"] for r in rows], dtype=float)
    return {
        "count": len(rows),
        "width_min": w.min(), "width_median": float(np.median(w)), "width_max": w.max(),
        "height_min": h.min(), "height_median": float(np.median(h)), "height_max": h.max(),
        "foreground_fraction_mean": fg.mean(), "foreground_fraction_min": fg.min(),
        "foreground_fraction_max": fg.max(), "empty_masks": float((fg == 0).sum()),
        "mask_ambiguous_px_total": float(sum(r["mask_ambiguous_px"] for r in rows)),
        "distinct_sizes": float(len({(r["width"], r["height"]) for r in rows})),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    stage = Stage("data", __doc__.split("\n\n")[0], DataParams)
    stage.parser.add_argument("--out", default="data")
    return stage.run(_work, argv)


def _work(args, params: DataParams) -> None:
    with stage_run("data", params, provenance={"data_source": params.source}, enabled=params.track) as run:
        rows = build(params, Path(args.out), check=lambda folds: feasibility.check(folds, args.params))
        stats = summarize(rows)
        log_metrics(run, stats)
        if run is not None:
            import mlflow

            mlflow.log_artifact(str(Path(args.out) / "real" / "manifest.csv"))
    print(
        f"data: {stats['count']} pairs from {params.source} -> {Path(args.out) / 'real'} "
        f"({int(stats['distinct_sizes'])} sizes, foreground {stats['foreground_fraction_mean']:.1%} mean, "
        f"{int(stats['empty_masks'])} empty masks); folds -> {Path(args.out) / 'folds.csv'}"
    )


if __name__ == "__main__":
    sys.exit(main())
