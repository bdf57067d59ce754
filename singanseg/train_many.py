"""Train one SinGAN-Seg model per image/mask pair of a dataset folder (`singanseg train-many`).

The paper trains one SinGAN-Seg per real image (1000 Kvasir-SEG models; paper.md s1,
issue 8). Each pair is one task of `singanseg.executors.run_tasks`, so the same call runs
in-process, in a process pool or on a Ray cluster. A task is idempotent (design notes,
"Decisions"): a model folder whose `model.json` says `complete` with the same config is
skipped without loading a tensor, a partial one resumes after its last finished scale
(singanseg.api.train), and a folder trained with another config or input is reported
failed with the trainer's own message rather than overwritten. One broken pair fails
alone: its id and error are reported, the others finish. With `batch` K > 1, K same-shape
models train as one batched computation (singanseg.train_many_batched), in this process or as one
task per batch (a local pool with jobs > 1, or Ray), with the same skip, resume and failure rules.
Two runs on one out folder share the work: a model being trained holds `<id>.lock`
(singanseg.api.ModelLock), and the other run waits for it and then skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from singanseg.config import PRESETS, SinGANConfig, config_from_dict, preset
from singanseg.device import resolve_device
from singanseg.executors import (
    ExecutorConfig,
    ExecutorError,
    Skipped,
    TaskResult,
    run_tasks,
    status_counts,
    summarize,
)
from singanseg.io import Pair, list_pairs, write_text
from singanseg.progress import Progress
from singanseg.tracker import Tracker, or_null
from singanseg.typed import ConfigError, from_mapping, parse_sets, to_mapping

# the run record (per-model seconds, the dated history of runs): it changes on every run, so
# the repository's .dvcignore lists `train_many*.json` and a DVC stage's output hash leaves it
# out (docs/conventions.md, "What a run writes and what DVC hashes")
RECORD = "train_many.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManyResult:
    results: list[TaskResult]
    summary: str
    record: Path  # the run record written into out_dir

    def ids(self, status: str) -> list[str]:
        return [r.task_id for r in self.results if r.status == status]


def image_seed(base: int | None, image_id: str) -> int | None:
    """A per-model seed from one run seed, stable when pairs are added or sharded differently.

    The same derivation as the `train_singan` stage (pipeline/train_singan.py), so the
    command and the stage train identical models. None keeps the paper's behaviour: each
    model draws its own seed (post_config's randint(1, 10000)), recorded in model.json.
    """
    if base is None:
        return None
    return int(hashlib.sha256(f"{base}:{image_id}".encode()).hexdigest()[:8], 16)


def train_one(
    image: str,
    mask: str,
    out: str,
    config: dict[str, Any],
    seed: int | None,
    on_incompatible: str = "error",
    tracker: Tracker | None = None,
    device: str = "auto",
) -> dict[str, Any] | Skipped:
    """One task: train (or resume, or skip) the model of one pair into folder `out`.

    Runs in a worker; takes only paths, a plain config and a picklable tracker, and returns
    a small summary. `on_incompatible: retrain` deletes a folder trained with another
    config, seed or input and trains afresh (for DVC stages, whose rerun means the inputs
    changed); `error` (the library's default) leaves it alone and fails the task.
    `tracker`: log the per-scale metrics into a child run named after the model folder
    (singanseg.tracker; the pipeline hands in its MLflow run). `device` is resolved in the
    worker: on Ray a task given a GPU sees only its own (CUDA_VISIBLE_DEVICES), so `auto` is
    that GPU there and the CPU in a task without one.
    """
    from singanseg.api import finished_model, locked, open_model, train_members

    cfg = config_from_dict(config, "train-many config")
    folder = Path(out)
    done = finished_model(folder, cfg, seed, image, mask)  # skipped before any child run
    if done is not None:
        return Skipped(done)
    with locked(folder), or_null(tracker).child(folder.name, tags={"image_id": folder.name}) as child:
        m = open_model(image, mask, folder, cfg, seed, on_incompatible)  # the rules of every path
        if isinstance(m, Skipped):  # another run on the same --out finished it while we waited
            return m

        def on_scale(_id: str, n: int, summary: dict) -> None:
            child.log_metrics({f"scale.{k}": v for k, v in summary.items()}, step=n)

        dev = resolve_device(device, "train-many: device")
        train_members([m], cfg, dev, progress=False, on_scale=on_scale, raise_errors=True)
        child.log_metrics({"num_scales": len(m.scales), "seed": m.seed})
    return {"seed": m.seed, "scales": len(m.scales), "resumed": m.resumed}


def _select_shard(ids: Sequence[str], shard: tuple[int, int] | None) -> slice:
    """Shard `k` of `n`: every n-th id from the k-th (the one sharding rule: `select_pairs`)."""
    if shard is None:
        return slice(None)
    k, n = shard
    if n < 1 or not 0 <= k < n:
        raise ConfigError(f"shard: expected K/N with 0 <= K < N, got {k}/{n}")
    return slice(k, None, n)


def select_pairs(
    data_dir: str | os.PathLike, limit: int | None = None, shard: tuple[int, int] | None = None
) -> list[Pair]:
    """The pairs a run trains: the first `limit` in `list_pairs` order, then shard `k` of `n`.

    The one sharding rule, used by `train_many` and the `train_singan` stage (which also
    needs it to know which model folders of its persistent out folder are its own).
    """
    pairs = list_pairs(data_dir)[:limit]
    return pairs[_select_shard([p.id for p in pairs], shard)]


def train_many(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: SinGANConfig | None = None,
    executor_config: ExecutorConfig | None = None,
    *,
    seed: int | None = None,
    batch: int = 1,
    shard: tuple[int, int] | None = None,
    limit: int | None = None,
    on_incompatible: str = "error",
    tracker: Tracker | None = None,
    progress: bool = True,
    device: str = "auto",
    progress_name: str = "train-many",
) -> ManyResult:
    """Train `out_dir/<id>/` for every pair of `data_dir` (images/, masks/); see the module docstring.

    `batch` K > 1 trains K models at a time as one batched computation (singanseg.training, the
    loop of K = 1 too: grouped convolutions, per model the same algorithm and random numbers;
    float32 weights agree with K = 1 to a rounding nudge, see `--batch`): in this process with
    executor local and jobs 1, one task per chunk of up to K same-shape models in a pool of
    `jobs` processes, or on Ray with executor ray (singanseg.train_many_batched.train_batched_tasks;
    `num_gpus_per_task` is per chunk; the chunks, and so the models, are the same). `limit`
    keeps the first N ids (natural-sort order); `shard=(k, n)` then
    trains every n-th of them from the k-th. `on_incompatible` and `tracker`: see
    `train_one` (a DVC stage passes "retrain" and its MLflow run's tracker; the batched paths
    do not log per-scale metrics to it). Raises for problems
    of the whole run (no dataset, bad config, executor unavailable); per-pair problems are
    results with status "failed".
    """
    cfg = config or SinGANConfig()
    ex_cfg = executor_config or ExecutorConfig()
    if batch < 1:
        raise ConfigError(f"batch: must be >= 1, got {batch}")
    # Local work (tasks or the batched path) runs on this machine: check the device once here
    # rather than fail in every task. Ray tasks resolve it on their worker, which may have a
    # GPU that this driver lacks.
    local_device = resolve_device(device, "train-many: device") if ex_cfg.executor == "local" else None
    if on_incompatible not in ("error", "retrain"):
        raise ConfigError(f"on_incompatible: {on_incompatible!r} is not one of 'error', 'retrain'")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit: must be >= 1 (or null for all), got {limit}")
    pairs = select_pairs(data_dir, limit, shard)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = to_mapping(cfg)
    tasks = [
        (
            p.id,
            {
                "image": str(p.image),
                "mask": str(p.mask),
                "out": str(out_dir / p.id),
                "config": plain,
                "seed": image_seed(seed, p.id),
                "on_incompatible": on_incompatible,
                "tracker": tracker,
                "device": device,
            },
        )
        for p in pairs
    ]
    if batch > 1 and (ex_cfg.executor == "ray" or (ex_cfg.jobs or 1) > 1):
        # one task per chunk: on Ray, or in a local pool of `jobs` processes (the cpu profile's
        # two 1-thread processes keep both cores busy with batches too)
        from singanseg.train_many_batched import train_batched_tasks

        # without the bar (a DVC stage's --quiet), a line every 30 s, advanced per finished chunk
        with Progress(progress_name, len(tasks), "models", enabled=not progress) as line:
            results = train_batched_tasks(pairs, out_dir, cfg, ex_cfg, seed=seed, batch=batch,
                                          on_incompatible=on_incompatible, device=device, progress=progress,
                                          on_models=line.advance)  # fmt: skip
    elif batch > 1:
        from singanseg.train_many_batched import train_batched

        results = train_batched(pairs, out_dir, cfg, seed=seed, batch=batch, on_incompatible=on_incompatible,
                                device=local_device, progress=progress)  # fmt: skip
    else:
        # without the bar (a DVC stage's --quiet), a line every 30 s that a captured log keeps (issue 17)
        with Progress(progress_name, len(tasks), "models", enabled=not progress) as line:
            results = run_tasks(train_one, tasks, ex_cfg, progress=progress, desc="train-many",
                                on_settle=lambda r: line.advance(note=f"{r.task_id} {r.status}"))  # fmt: skip
    resumed = sum(
        bool(r.status == "done" and isinstance(r.value, dict) and r.value.get("resumed"))
        for r in results
    )
    # the one summary line (executors.summarize), worded for models
    summary = summarize(results, unit="pairs", done=f"trained ({resumed} resumed)", first_error=True)
    name = RECORD if shard is None else f"train_many.shard-{shard[0]}-of-{shard[1]}.json"
    counts = status_counts(results)
    run = {"finished": datetime.now(UTC).isoformat(timespec="seconds"), "trained": counts["done"],
           "resumed": resumed, "skipped": counts["skipped"], "failed": counts["failed"],
           "executor": ex_cfg.executor, "batch": batch, "summary": summary}  # fmt: skip
    latest = {
        "data_dir": str(data_dir),
        "config": plain,
        "executor": to_mapping(ex_cfg),
        "seed": seed,
        "batch": batch,
        "shard": list(shard) if shard else None,
        "limit": limit,
        "summary": summary,
        "results": [
            {"id": r.task_id, "status": r.status, "error": r.error, "seconds": round(r.seconds, 3), "value": r.value}
            for r in results
        ],
        "runs": [*_past_runs(out_dir / name), run],
    }
    record = write_text(out_dir / name, json.dumps(latest, indent=2, default=str) + "\n")
    return ManyResult(results, summary, record)


def _past_runs(path: Path) -> list[dict[str, Any]]:
    """The `runs` of the record at `path`: a rerun that skipped everything must not erase when
    the models were trained (issue 18 s4). An older record without `runs` gives its summary."""
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(old.get("runs"), list):
            return old["runs"]
        return [{"finished": None, "summary": old["summary"]}]
    except (OSError, ValueError, AttributeError, KeyError) as e:
        log.warning("%s: earlier record unreadable (%s); its run history is not kept", path, e)
        return []


# --- command line -------------------------------------------------------------------------


def _shard_arg(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit()):
        raise argparse.ArgumentTypeError(f"expected K/N such as 0/4, got {text!r}")
    return int(k), int(n)


def run_train_many_command(args: argparse.Namespace) -> int:
    """`singanseg train-many`: 0 when every pair trained or was skipped, 1 when any failed."""
    cfg = preset(args.profile, **parse_sets(args.set))
    options = {
        "executor": args.executor,
        "jobs": args.jobs,
        "threads_per_job": args.threads_per_job,
        "num_cpus_per_task": args.cpus_per_task,
        "num_gpus_per_task": args.gpus_per_task,
        "ray_address": args.ray_address,
    }
    ex_cfg = from_mapping(
        ExecutorConfig, {k: v for k, v in options.items() if v is not None}, "train-many"
    )
    try:
        result = train_many(
            args.data_dir,
            args.out,
            cfg,
            ex_cfg,
            seed=args.seed,
            batch=args.batch,
            shard=args.shard,
            progress=not args.quiet,
            device=args.device,
            on_incompatible=args.on_incompatible,
        )
    except ExecutorError as e:  # one line, as singanseg.cli.main prints the other user errors
        print(f"singanseg: error: {e}", file=sys.stderr)
        return 2
    print(f"train-many {args.data_dir} -> {args.out}: {result.summary}")
    return 1 if result.ids("failed") else 0


def add_train_many_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `train-many` on the `singanseg` parser's subcommands."""
    p = subparsers.add_parser(
        "train-many", help="train one SinGAN-Seg model per image/mask pair of a folder (skips finished ones)",
        description="Train DATA_DIR's pairs (images/<id>, masks/<id>) into OUT/<id>/: finished models are "
                    "skipped, interrupted ones resume, a failing pair is reported with its id and the rest finish.",
    )  # fmt: skip
    p.add_argument("data_dir", metavar="DATA_DIR", help="dataset folder with images/ and masks/")
    p.add_argument("--out", required=True, help="folder of model folders, one per id")
    p.add_argument(
        "--profile", default="paper", choices=sorted(PRESETS), help="config preset (default: paper)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set niter=20 (repeatable)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="run seed; each model's seed derives from it and its id (default: random per model)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="K",
        help="train up to K same-shape models together as one batched computation (default 1). Per "
        "model the same loop, seed and random numbers as --batch 1 (equal in float64); in float32 the "
        "batched convolutions round differently and Adam amplifies that, so weights differ from "
        "--batch 1 about as much as moving the input pixels (in [-1, 1]) by 1e-7 does (~1e-2 after 4 "
        "iterations). With --executor ray each Ray task trains one such batch, and "
        "--cpus-per-task/--gpus-per-task reserve resources per batch",
    )
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default=None,
        help="where tasks run (default: local)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="tasks at once (local default 1 = in this process; ray default: as resources allow)",
    )
    p.add_argument(
        "--threads-per-job", type=int, default=None, metavar="N", help="torch threads per task"
    )
    p.add_argument(
        "--cpus-per-task", type=float, default=None, metavar="F", help="ray: CPUs reserved per task"
    )
    p.add_argument(
        "--gpus-per-task",
        type=float,
        default=None,
        metavar="F",
        help="ray: GPU fraction per task (one model, or one batch of K with --batch K), e.g. 0.25 "
        "packs four tasks on a GPU (needs a GPU node)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="ray: cluster address host:port or ray://host:port (default: $RAY_ADDRESS, else a local cluster)",
    )
    p.add_argument(
        "--shard",
        type=_shard_arg,
        default=None,
        metavar="K/N",
        help="train only every N-th of the ids (natural-sort order) from the K-th (for DVC shards)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when available, else cpu), cpu, cuda, cuda:N (default: auto; on ray: per task)",
    )
    p.add_argument(
        "--on-incompatible",
        choices=["error", "retrain"],
        default="error",
        help="a model folder trained with another config, seed or image/mask bytes (even a complete "
        "one): error = report it failed and leave it (default), retrain = replace it",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train_many_command)
    return p


__all__ = [
    "ManyResult",
    "add_train_many_command",
    "image_seed",
    "run_train_many_command",
    "select_pairs",
    "train_many",
    "train_one",
]
