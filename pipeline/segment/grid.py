"""Run a whole grid (A or B) of the active params in one process, resumable.

Why not one DVC stage per (experiment, fold): DVC builds `foreach`/`matrix` lists from the
base params.yaml, so our profile overlays could not shrink them, and the smoke profile
would pay a process start for every paper-grid entry (docs/deviations/pipeline.md). So
dvc.yaml has one stage per grid (`segment@A`, `segment@B`) whose output folder persists
between runs; each (experiment, fold) result records a fingerprint of its inputs and
params, and a rerun skips results whose fingerprint still matches. A crashed or
interrupted grid therefore resumes where it stopped; results of experiments no longer in
the grid are removed so that reports never show stale numbers.

The fingerprint covers the segment params (without `track`), the experiment, the fold,
and every input pair's id and file sizes (train, val, test per protocol, grid A's extra test
sets); the seed list, the predictions count, the extra test sets and the external synthetic
folders (`external_synthetic`) only where they apply.
Sizes rather than content hashes: PNG sizes change with content in practice, and hashing
every synthetic image of a paper grid on each rerun would cost minutes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from pipeline.infra.params import params_hash
from pipeline.segment.config import SegmentParams
from pipeline.segment.experiments import grid_runs, resolve
from pipeline.segment.run import extra_tests, output_paths, run_experiment, writes_predictions
from pipeline.segment.trivial import run_trivial, trivial_runs
from singanseg.io import list_pairs
from singanseg.progress import Progress
from singanseg.typed import to_mapping


def fingerprint(name: str, fold: int, params: SegmentParams, root: str | Path = ".", seed: int | None = None) -> str:
    h = hashlib.sha256()
    seed = params.seeds[0] if seed is None else seed
    grid = name.split("/", 1)[0]
    # Only what changes this cell's outputs: the seed list (adding a seed keeps the others'
    # results), the predictions count (only one cell writes them) and the external test sets
    # (grid A's only) enter below where they apply, not through every cell's settings.
    settings = {k: v for k, v in to_mapping(params).items() if k not in ("track", "seeds", "predictions", "extra_test")}
    if not params.external_synthetic.folders:
        # issue 24: the option enters only where it is used, so that adding it left the
        # fingerprint of every cell of the default pipeline as it was (no retraining)
        settings.pop("external_synthetic")
    h.update(f"{name}|{fold}|{seed}|{params_hash(settings)}".encode())
    if writes_predictions(params, grid, fold, seed):
        h.update(f"|predictions:{params.predictions}".encode())
    for protocol in params.protocols:
        sp = resolve(name, fold, protocol, params, root)
        for part, pairs in (("train", sp.train), ("val", sp.val), ("test", sp.test)):
            h.update(f"|{protocol}.{part}".encode())
            for p in pairs:
                h.update(f"|{p.id}:{p.image.stat().st_size}:{p.mask.stat().st_size}".encode())
    for extra, folder in sorted(extra_tests(params, grid).items()):
        for p in list_pairs(folder):
            h.update(f"|{extra}:{p.id}:{p.image.stat().st_size}:{p.mask.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _remove_stale(grid_dir: Path, active: set[Path], log) -> None:
    """Remove every result of the grid folder that is not one of the `active` cells' JSONs
    (with their per-image CSV, curves and timing): experiments, folds or seeds no longer in
    the params must not reach a report. A cell is its (folder, cell name) pair: `fold0_seed1`
    active in one experiment's folder keeps nothing of that name in another's."""
    if not grid_dir.is_dir():
        return
    keep_dirs = {p.parent for p in active}
    cells = {(p.parent, p.stem) for p in active}
    for d in sorted(grid_dir.iterdir()):
        if not d.is_dir():
            continue
        if d.resolve() not in keep_dirs and not any(k.is_relative_to(d.resolve()) for k in keep_dirs):
            shutil.rmtree(d)
            log(d)
            continue
        if d.resolve() not in keep_dirs:  # a folder of folders (grid B's B/<GAN>/...): recurse
            _remove_stale(d, active, log)
            continue
        for f in sorted(d.iterdir()):
            cell = f.name.split(".", 1)[0]
            for suffix in ("_per_image", "_curves", "_predictions"):
                cell = cell.removesuffix(suffix)
            if (d.resolve(), cell) not in cells:
                shutil.rmtree(f) if f.is_dir() else f.unlink()
                log(f)


def _done(json_path: Path, fp: str) -> bool:
    try:
        return json.loads(json_path.read_text()).get("fingerprint") == fp
    except (OSError, ValueError):
        return False


def run_grid(grid: str, params: SegmentParams, root: str | Path = ".", profile: str | None = None, log=print) -> dict[str, Any]:
    """Every (experiment, fold) of grid `grid` ("A" or "B"); returns counts and the run list."""
    root = Path(root)
    # every (experiment, fold, seed): seeds innermost, so an interrupted grid has whole cells
    runs = [(n, f, s) for n, f in grid_runs(params) if n.startswith(f"{grid}/") for s in params.seeds]
    # resolve every run first: a missing input fails before hours of training
    fps = {(n, f, s): fingerprint(n, f, params, root, s) for n, f, s in runs}
    grid_dir = root / params.paths.out / grid
    trivial = trivial_runs(grid, params)
    cells = [(n, f, s) for n, f, s in runs] + [(n, f, params.seeds[0]) for n, _, f in trivial]
    _remove_stale(grid_dir, {output_paths(params, n, f, s, root)[0].resolve() for n, f, s in cells},
                  lambda m: log(f"segment {grid}: removed {m} (not in the active grid)"))
    done = skipped = 0
    # a done/total/ETA line at least every 30 s while trainings of minutes run (issue 17)
    for i, (name, fold, seed) in enumerate(Progress(f"segment@{grid}", len(runs), "trainings").iterate(runs), 1):
        json_path, _ = output_paths(params, name, fold, seed, root)
        where = f"[{i}/{len(runs)}] {name} fold {fold} seed {seed}"
        if _done(json_path, fps[(name, fold, seed)]):
            skipped += 1
            log(f"{where}: up to date, skipped")
            continue
        record = run_experiment(name, fold, params, root, profile, extra={"fingerprint": fps[(name, fold, seed)]},
                                seed=seed)  # fmt: skip
        done += 1
        scores = ", ".join(
            f"{p} IoU {r['test']['per_image']['iou']:.4f}" for p, r in record["protocols"].items()
        )
        log(f"{where}: {scores}")
    # the trivial rows (pipeline/segment/trivial.py) take seconds: recomputed on every run
    for name, real, fold in trivial:
        record = run_trivial(name, real, fold, params, root, profile)
        scores = ", ".join(f"{p} IoU {r['test']['per_image']['iou']:.4f}" for p, r in record["protocols"].items())
        log(f"[trivial] {name} fold {fold}: {scores}")
    return {"grid": grid, "runs": len(runs), "trained": done, "skipped": skipped, "trivial": len(trivial)}
