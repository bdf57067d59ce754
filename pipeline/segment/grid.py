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
and every input pair's id and file sizes (train, val, test per protocol, extra test sets).
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
from pipeline.segment.run import output_paths, run_experiment
from pipeline.segment.trivial import run_trivial, trivial_runs
from singanseg.io import list_pairs
from singanseg.progress import Progress
from singanseg.typed import to_mapping


def fingerprint(name: str, fold: int, params: SegmentParams, root: str | Path = ".") -> str:
    h = hashlib.sha256()
    settings = {k: v for k, v in to_mapping(params).items() if k != "track"}
    h.update(f"{name}|{fold}|{params_hash(settings)}".encode())
    for protocol in params.protocols:
        sp = resolve(name, fold, protocol, params, root)
        for part, pairs in (("train", sp.train), ("val", sp.val), ("test", sp.test)):
            h.update(f"|{protocol}.{part}".encode())
            for p in pairs:
                h.update(f"|{p.id}:{p.image.stat().st_size}:{p.mask.stat().st_size}".encode())
    for extra, folder in sorted(params.extra_test.items()):
        for p in list_pairs(folder):
            h.update(f"|{extra}:{p.id}:{p.image.stat().st_size}:{p.mask.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _done(json_path: Path, fp: str) -> bool:
    try:
        return json.loads(json_path.read_text()).get("fingerprint") == fp
    except (OSError, ValueError):
        return False


def run_grid(grid: str, params: SegmentParams, root: str | Path = ".", profile: str | None = None, log=print) -> dict[str, Any]:
    """Every (experiment, fold) of grid `grid` ("A" or "B"); returns counts and the run list."""
    root = Path(root)
    runs = [(n, f) for n, f in grid_runs(params) if n.startswith(f"{grid}/")]
    # resolve every run first: a missing input fails before hours of training
    fps = {(n, f): fingerprint(n, f, params, root) for n, f in runs}
    grid_dir = root / params.paths.out / grid
    trivial = trivial_runs(grid, params)
    keep = {output_paths(params, n, f, root)[0].parent.resolve() for n, f in runs}
    keep |= {output_paths(params, n, f, root)[0].parent.resolve() for n, _, f in trivial}
    if grid_dir.is_dir():
        for d in sorted(grid_dir.iterdir()):
            if d.is_dir() and d.resolve() not in keep:
                shutil.rmtree(d)
                log(f"segment {grid}: removed {d} (not in the active grid)")
    done = skipped = 0
    # a done/total/ETA line at least every 30 s while trainings of minutes run (issue 17)
    for i, (name, fold) in enumerate(Progress(f"segment@{grid}", len(runs), "trainings").iterate(runs), 1):
        json_path, _ = output_paths(params, name, fold, root)
        if _done(json_path, fps[(name, fold)]):
            skipped += 1
            log(f"[{i}/{len(runs)}] {name} fold {fold}: up to date, skipped")
            continue
        record = run_experiment(name, fold, params, root, profile, extra={"fingerprint": fps[(name, fold)]})
        done += 1
        scores = ", ".join(
            f"{p} IoU {r['test']['per_image']['iou']:.4f}" for p, r in record["protocols"].items()
        )
        log(f"[{i}/{len(runs)}] {name} fold {fold}: {scores}")
    # the trivial rows (pipeline/segment/trivial.py) take seconds: recomputed on every run
    for name, real, fold in trivial:
        record = run_trivial(name, real, fold, params, root, profile)
        scores = ", ".join(f"{p} IoU {r['test']['per_image']['iou']:.4f}" for p, r in record["protocols"].items())
        log(f"[trivial] {name} fold {fold}: {scores}")
    return {"grid": grid, "runs": len(runs), "trained": done, "skipped": skipped, "trivial": len(trivial)}
