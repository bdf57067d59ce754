"""DVC stage `train_singan`: one SinGAN-Seg model per real pair into `<out>/<id>/`.

paper.md s3: one model per real image (1000 models). Idempotent per image (design notes):
a finished model is skipped, an interrupted one resumes after its last finished scale.
Sharded for `foreach` with `--shard i --num-shards n` (ids in natural-sort order, shard i takes every n-th).

    python -m pipeline.train_singan [--params params.yaml] [--shard 0 --num-shards 1] [--out models/singan]
"""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.infra.mlflow_tracker import MlflowTracker, log_metrics, stage_run
from pipeline.infra.params import load_section  # noqa: F401  (tests load a section through this module)
from pipeline.stage import Stage
from singanseg.config import SinGANConfig
from singanseg.executors import ExecutorConfig
from singanseg.train_many import ManyResult, select_pairs, train_many
from singanseg.typed import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinGANStageParams:
    input_dir: str = "data/real"  # the data stage's output (design notes)
    out_dir: str = "models/singan"
    # The reference seeds every run from --manualSeed or a random one (functions.py::post_config);
    # we derive one per image from this base seed and the id, recorded in model.json.
    seed: int = 0
    limit: int | None = None  # first N ids only; null = all
    track: bool = True
    # A model folder trained with other params/data: `retrain` (DVC invalidated it) or `error`.
    on_incompatible: Literal["retrain", "error"] = "retrain"
    model: SinGANConfig = field(default_factory=SinGANConfig)
    # how the shard's images fan out (singanseg/executors.py): in-process, a process pool or Ray
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    batch: int = 1  # models trained as one batched computation (singanseg/training.py::train_scale, issue 8)
    # auto = cuda when available, else cpu (singanseg/device.py); on ray: per task, as it sees
    device: str = "auto"
    # `train`: train every model (the paper's run). `authors`: import the authors' released
    # checkpoints from `authors_dir` instead (the unpacked zips or medigan's package; issue 24,
    # singanseg.authors): their ids 1..N are the natural-sort positions of input_dir's names,
    # and each model's coarsest real must be its image's, else the stage refuses, naming both.
    source: Literal["train", "authors"] = "train"
    authors_dir: str | None = None


def run(
    params: SinGANStageParams,
    shard: int = 0,
    num_shards: int = 1,
    out: str | None = None,
    progress: bool = True,
    exclusive_out: bool = False,
) -> ManyResult:
    """Train this shard's models through the executor (`singan.executor`); see singanseg.train_many.

    `exclusive_out`: the out folder holds this shard's models only (dvc.yaml gives each shard
    its own persistent folder), so model folders of other ids are stale and removed.
    """
    if not 0 <= shard < num_shards:
        raise ConfigError(f"--shard {shard}: must be in 0..{num_shards - 1}")
    out_root = Path(out or params.out_dir)
    mine = {p.id for p in select_pairs(params.input_dir, params.limit, (shard, num_shards))}
    # the shard's folder persists between runs (dvc.yaml): models of ids that left the data
    # set or this shard are stale and must not reach the generate stage
    if exclusive_out and out_root.is_dir():
        for d in sorted(out_root.iterdir()):
            if d.is_dir() and d.name not in mine:
                log.warning("removing %s: its id is not in this shard of %s any more", d, params.input_dir)
                shutil.rmtree(d)
    if params.source == "authors":
        return _import_authors(params, out_root, mine)
    with stage_run(
        "train_singan", params, run_name=f"train_singan@{shard}", enabled=params.track,
        tags={"shard": f"{shard}/{num_shards}", "executor": params.executor.executor},
    ) as run_:
        result = train_many(
            params.input_dir, out_root, params.model, params.executor, seed=params.seed, batch=params.batch,
            shard=(shard, num_shards), limit=params.limit, on_incompatible=params.on_incompatible,
            tracker=MlflowTracker.of(run_), progress=progress,
            device=params.device, progress_name=f"train_singan@{shard}",
        )  # fmt: skip
        counts = {s: len(result.ids(s)) for s in ("done", "skipped", "failed")}
        log_metrics(run_, {f"models_{k}": v for k, v in counts.items()})
    return result


IMPORT_RECORD = "import_authors.json"


def _import_authors(params: SinGANStageParams, out_root: Path, mine: set[str]) -> ManyResult:
    """`source: authors`: this shard's models imported, not trained (no clock, no tracking:
    nothing is trained). The record names each model's source, for the later stages."""
    import json
    import time

    from singanseg.authors import import_for_data
    from singanseg.executors import TaskResult
    from singanseg.io import write_text

    if not params.authors_dir:
        raise ConfigError("singan.authors_dir: required with singan.source: authors (a folder of the authors' checkpoints)")
    out_root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    written = import_for_data(params.authors_dir, params.input_dir, out_root, base=params.model, only=mine)
    seconds = time.perf_counter() - start
    results = [TaskResult(i, "done", None, seconds / max(len(written), 1), {"source": "authors"}) for i in written]
    summary = f"{len(written)} models imported from the authors' checkpoints in {params.authors_dir}"
    record = write_text(
        out_root / IMPORT_RECORD,
        json.dumps({"source": "authors", "authors_dir": str(params.authors_dir), "models": sorted(written)}, indent=2) + "\n",
    )
    return ManyResult(results, summary, record)


def main(argv: list[str] | None = None) -> int:
    stage = Stage("train_singan", __doc__, SinGANStageParams, section="singan")
    ap = stage.parser
    ap.add_argument("--shard", type=int, default=0)
    ap.add_argument("--num-shards", type=int, default=1)
    ap.add_argument("--out", default=None, help="overrides singan.out_dir")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--exclusive-out", action="store_true",
                    help="the out folder is this shard's alone: remove model folders of other ids")
    return stage.run(_work, argv)


def _work(args, params: SinGANStageParams) -> int:
    result = run(params, args.shard, args.num_shards, args.out, progress=not args.quiet,
                 exclusive_out=args.exclusive_out)
    print(f"train_singan: {result.summary} -> {args.out or params.out_dir}")
    # a failed image fails the stage (DVC must not record it as done), after the others finished
    return 1 if result.ids("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
