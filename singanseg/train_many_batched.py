"""Train many SinGAN-Seg models K at a time through the one training loop (issue 8, items 1 and 3).

Each pair is opened by singanseg.api.open_model (THE skip / resume / incompatibility / seed
rules) and each chunk of up to K same-bucket models is trained by singanseg.api.train_members
(singanseg.training.train_scale at every scale: the models laid out as one grouped network,
singanseg.training_batched), exactly as `singanseg train` trains one model.

Output: the folders singanseg.api.train writes (scale_<n>.safetensors/json with the
model's rng state, model.json after every finished scale); `api.load` reads them and
`api.train` resumes them. Partial models are resumed batched: they are bucketed by
(pyramid shapes, scale_factor, finished scales), so those that stopped at the same scale
continue together from their saved random streams; complete ones are skipped unread.

Failures stay with their model: a pair that cannot be read is reported "failed" and never
trained; a model that fails to save drops out at the next scale while the rest of its
chunk goes on; a failing batched step fails its own chunk, and the other chunks go on.

On an executor (`train_batched_tasks`, issue 16 s1): the driver buckets the pairs by what
their image headers and model.json files say (`plan_key`, no tensor read), skips complete
models there, and sends each chunk of up to K same-bucket pairs as one task that runs
`train_batched` on it (`train_chunk`); a Ray task reserves `num_gpus_per_task` for its
whole chunk. The chunks are the ones `train_batched` forms in-process, so the models and
records are the same; a task that dies fails its own chunk's models only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from singanseg.api import ModelLock, finished_model, open_model, resumable_scales, train_members
from singanseg.config import SinGANConfig, config_from_dict
from singanseg.device import resolve_device
from singanseg.executors import ExecutorConfig, Skipped, TaskResult, describe_error, run_tasks
from singanseg.imresize import output_length
from singanseg.io import Pair, displayed_size, list_pairs
from singanseg.pyramid import adjust_scales
from singanseg.saved_model import MODEL_JSON, read_model_json
from singanseg.train_many import image_seed
from singanseg.training import Member
from singanseg.typed import ConfigError, to_mapping

# Logs as it did inside singanseg.training_batched, so logging set up for it still applies.
log = logging.getLogger("singanseg.training_batched")


def bucket_key(m: Member) -> tuple:
    """Models train together when their pyramids (shapes, scale_factor) and next scale agree."""
    return (m.shapes, m.spec.scale_factor, len(m.scales))


def train_batched(
    pairs_or_data_dir: Sequence[Pair] | str | os.PathLike,
    out_dir: str | os.PathLike,
    config: SinGANConfig | None = None,
    seed: int | None = None,
    batch: int = 8,
    *,
    on_incompatible: str = "error",
    device: str | torch.device | None = None,
    progress: bool = False,
    on_scale: Callable[[str, int, dict], None] | None = None,
) -> list[TaskResult]:
    """Train `out_dir/<id>/` for every pair, `batch` models at a time; one TaskResult per pair.

    The semantics of singanseg.train_many.train_many (which routes `--batch K > 1` here): per-model
    seeds from `seed` and the id (many.image_seed), complete models skipped, partial ones
    resumed (batched with the others that stopped at the same scale), a pair that cannot be
    read or trained reported "failed" with its id and error while the rest finish.
    """
    cfg = config or SinGANConfig()
    cfg.validate("config")
    if batch < 1:
        raise ConfigError(f"batch: must be >= 1, got {batch}")
    if on_incompatible not in ("error", "retrain"):
        raise ConfigError(f"on_incompatible: {on_incompatible!r} is not one of 'error', 'retrain'")
    device = torch.device(device or "cpu")
    if isinstance(pairs_or_data_dir, (str, os.PathLike)):
        pairs = list_pairs(pairs_or_data_dir)
    else:
        pairs = list(pairs_or_data_dir)
    out_dir = Path(out_dir)
    results: dict[str, TaskResult] = {}
    locks: dict[str, ModelLock] = {}

    def open_pairs(todo: Sequence[Pair], wait: bool) -> tuple[dict[tuple, list[Member]], list[Pair]]:
        """Open (lock, then api.open_model) each pair: buckets of Members to train, and the
        pairs another run is training (`wait` False: deferred, not waited for)."""
        buckets: dict[tuple, list[Member]] = {}
        busy = []
        for p in todo:
            t0 = time.perf_counter()
            lock = ModelLock(out_dir / p.id)
            if not lock.acquire(wait=wait):
                busy.append(p)
                continue
            try:
                m = open_model(p.image, p.mask, out_dir / p.id, cfg, image_seed(seed, p.id), on_incompatible, p.id)
            except Exception as e:  # noqa: BLE001 - one pair's failure must not sink the others
                lock.release()
                results[p.id] = TaskResult(p.id, "failed", describe_error(e), time.perf_counter() - t0)
                continue
            if isinstance(m, Skipped):
                lock.release()
                results[p.id] = TaskResult(p.id, "skipped", None, time.perf_counter() - t0, m.value)
            else:
                locks[p.id] = lock
                m.seconds = time.perf_counter() - t0
                buckets.setdefault(bucket_key(m), []).append(m)
        return buckets, busy

    def train(buckets: dict[tuple, list[Member]], size: int) -> None:
        for (shapes, _, start), group in buckets.items():
            log.info("bucket %s from scale %d: %d models (%s)", "/".join(f"{h}x{w}" for h, w in shapes),
                     start, len(group), ", ".join(m.id for m in group))  # fmt: skip
            for i in range(0, len(group), size):
                chunk = group[i : i + size]
                try:
                    train_members(chunk, cfg, device, progress, on_scale)
                finally:
                    for m in chunk:
                        locks.pop(m.id).release()
                for m in chunk:
                    if m.error is not None:
                        results[m.id] = TaskResult(m.id, "failed", m.error, m.seconds)
                        continue
                    value = {"seed": m.seed, "scales": len(m.scales), "resumed": m.resumed,
                             "batch": len(chunk), "bucket": f"{shapes[-1][0]}x{shapes[-1][1]}/{len(shapes)}"}  # fmt: skip
                    results[m.id] = TaskResult(m.id, "done", None, m.seconds, value)

    try:
        buckets, busy = open_pairs(pairs, wait=False)
        train(buckets, batch)
        # pairs another run was training: waited for one at a time, holding no other lock (no
        # deadlock between two runs); usually finished by then and skipped, else trained alone
        for p in busy:
            log.info("%s: another run is training it; waiting for it", out_dir / p.id)
            train(open_pairs([p], wait=True)[0], 1)
    finally:
        for lock in locks.values():
            lock.release()
    return [results[p.id] for p in pairs]


# --- the same chunks as executor tasks (train-many --executor ray --batch K) ----------------

UNPLANNED = ("unplanned",)  # pairs whose header or model.json cannot be read: open_model reports why


def plan_key(pair: Pair, folder: Path, cfg: SinGANConfig, seed: int | None):
    """`bucket_key` of the Member `open_model` would build, or Skipped, without decoding the image.

    The pyramid's shapes follow from the image size alone (pyramid.build_pyramid: every
    imresize output is ceil(length * scale)); the next scale comes from model.json. A pair
    whose inputs open_model would refuse gets UNPLANNED: its task fails it with open_model's message
    (a refusal that needs the pixels, e.g. a non-binary mask, fails it in its planned chunk).
    """
    from PIL import Image

    finished = 0
    try:
        if (folder / MODEL_JSON).exists():
            done = finished_model(folder, cfg, seed, pair.image, pair.mask)  # decodes only if complete
            if done is not None:
                return Skipped(done)
            finished = resumable_scales(read_model_json(folder), folder, cfg, seed)
        with Image.open(pair.image) as im, Image.open(pair.mask) as mask:  # headers only
            # as displayed (EXIF orientation), the size open_model's readers return: a rotated
            # phone JPEG is planned by the size it is trained at, and its mask drawn on it matches
            size, mask_size = displayed_size(im), displayed_size(mask)
            if size != mask_size:
                return UNPLANNED  # so it does not take a place in the chunk of its image size
            width, height = size
        spec = adjust_scales(height, width, cfg, str(pair.image))
    except Exception:  # noqa: BLE001 - reported by the task, in open_model's words
        return UNPLANNED
    h1, w1 = output_length(height, spec.scale1), output_length(width, spec.scale1)
    shapes = tuple(
        (output_length(h1, spec.scale_factor ** (spec.stop_scale - i)),
         output_length(w1, spec.scale_factor ** (spec.stop_scale - i)))
        for i in range(spec.stop_scale + 1)
    )  # fmt: skip
    return (shapes, spec.scale_factor, finished)


def train_chunk(
    pairs: list[Pair], out_dir: str, config: dict, seed: int | None, batch: int,
    on_incompatible: str, device: str,
) -> list[TaskResult]:  # fmt: skip
    """One executor task: `train_batched` on one chunk; the device is resolved in the worker.

    Takes paths and a plain config (a worker imports this function by reference). On Ray a
    task given a GPU sees only its own (CUDA_VISIBLE_DEVICES), so `auto` is that GPU there.
    """
    cfg = config_from_dict(config, "train-many config")
    dev = resolve_device(device, "train-many: device")
    return train_batched(pairs, out_dir, cfg, seed, batch, on_incompatible=on_incompatible, device=dev)


def train_batched_tasks(
    pairs: Sequence[Pair],
    out_dir: str | os.PathLike,
    config: SinGANConfig,
    executor_config: ExecutorConfig,
    seed: int | None = None,
    batch: int = 8,
    *,
    on_incompatible: str = "error",
    device: str = "auto",
    progress: bool = False,
    on_models: Callable[[int], None] | None = None,
) -> list[TaskResult]:
    """`train_batched` with each chunk of up to `batch` same-bucket pairs as one executor task.

    `on_models(n)`: called as each chunk settles, with its number of models (a progress line).

    One TaskResult per pair, in pair order, as `train_batched` returns them (a task that
    fails as a whole, e.g. its worker died, fails its chunk's pairs with its error).
    """
    out_dir = Path(out_dir)
    results: dict[str, TaskResult] = {}
    buckets: dict[tuple, list[Pair]] = {}
    for p in pairs:
        t0 = time.perf_counter()
        key = plan_key(p, out_dir / p.id, config, image_seed(seed, p.id))
        if isinstance(key, Skipped):
            results[p.id] = TaskResult(p.id, "skipped", None, time.perf_counter() - t0, key.value)
            if on_models is not None:
                on_models(1)
        else:
            buckets.setdefault(key, []).append(p)
    chunks = [group[i : i + batch] for group in buckets.values() for i in range(0, len(group), batch)]
    plain = to_mapping(config)
    tasks = [
        (f"{c[0].id}+{len(c) - 1}", {"pairs": c, "out_dir": str(out_dir), "config": plain, "seed": seed,
                                      "batch": batch, "on_incompatible": on_incompatible, "device": device})
        for c in chunks
    ]  # fmt: skip
    # a rerun with every model finished does not start or reach a cluster for nothing
    sizes = {task_id: len(c) for (task_id, _), c in zip(tasks, chunks, strict=True)}
    settle = None if on_models is None else lambda r: on_models(sizes[r.task_id])
    done = run_tasks(train_chunk, tasks, executor_config, progress=progress, on_settle=settle,
                     desc=f"train-many (chunks of <= {batch})") if tasks else []  # fmt: skip
    for chunk, task in zip(chunks, done, strict=True):
        if task.status == "done":
            results.update((r.task_id, r) for r in task.value)
            continue
        why = f"its task ({len(chunk)} models: {', '.join(p.id for p in chunk)}) failed: {task.error}"
        results.update((p.id, TaskResult(p.id, "failed", why, task.seconds)) for p in chunk)
    return [results[p.id] for p in pairs]


__all__ = [
    "UNPLANNED",
    "bucket_key",
    "plan_key",
    "train_batched",
    "train_batched_tasks",
    "train_chunk",
]
