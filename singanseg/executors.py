"""Executors for per-image work: `local` (in-process or a process pool) and `ray`.

Decided in the design notes ("per-image work fans out through an executor"; anchors
section 6): a thin layer mirroring `concurrent.futures` (`submit`, `map`) with two
backends, and `run_tasks`, which runs one function over many (task_id, kwargs) tasks and
returns one `TaskResult` per task, in task order. A failing task never sinks the others:
its error is captured with its id. Idempotence is the task function's job: it skips
finished outputs and says so by returning `Skipped(value)`.

Task functions must be module-level (the process pool pickles them by reference) and take
picklable kwargs: paths and small configs, never models.

Ray (optional extra, `pip install .[ray]`) is imported only when `executor: ray` is used, as
is its backend, `singanseg/executors_ray.py` (`RayExecutor`, `probe_ray_address`).
Its resources are *logical*: `num_gpus_per_task: 0.25` lets four tasks share one GPU but
does not isolate their memory, and a fraction needs a node with a GPU; on a cluster
without one the request is refused up front instead of queueing forever.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from singanseg.errors import UserError
from singanseg.typed import ConfigError

if TYPE_CHECKING:
    from singanseg.executors_ray import RayExecutor, probe_ray_address

log = logging.getLogger(__name__)

Task = tuple[str, Mapping[str, Any]]
Status = Literal["done", "skipped", "failed"]


class ExecutorError(UserError):
    """The executor cannot run: Ray missing, a cluster unreachable or unable to fit a task.

    A UserError (singanseg.errors): the CLIs print its one line instead of a traceback.
    """


@dataclass(frozen=True)
class ExecutorConfig:
    executor: Literal["local", "ray"] = "local"
    # Tasks running at once. None: `local` runs them one by one in this process, `ray` as
    # many as the cluster's resources allow. local with jobs > 1: a spawn process pool.
    jobs: int | None = None
    # torch threads per task. None: unchanged in-process, cores // jobs in a pool
    # (two 1-thread processes beat one 2-thread process by ~25% on our CPUs: environment
    # notes), ceil(num_cpus_per_task) on Ray.
    threads_per_job: int | None = None
    num_cpus_per_task: float = 1.0  # ray only: logical CPUs reserved per task
    # ray only: a fraction packs several small SinGANs on one GPU (needs a GPU node)
    num_gpus_per_task: float = 0.0
    # ray only: "host:port" (GCS), "ray://host:port" (Ray Client), "auto" or "local"; None: the
    # RAY_ADDRESS environment variable, else a new local cluster bound to 127.0.0.1.
    ray_address: str | None = None

    def validate(self, where: str = "executor") -> None:
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"{where}.jobs: must be >= 1 (or null), got {self.jobs}")
        if self.threads_per_job is not None and self.threads_per_job < 1:
            raise ConfigError(
                f"{where}.threads_per_job: must be >= 1 (or null), got {self.threads_per_job}"
            )
        if self.num_cpus_per_task <= 0:
            raise ConfigError(
                f"{where}.num_cpus_per_task: must be > 0, got {self.num_cpus_per_task}"
            )
        if self.num_gpus_per_task < 0:
            raise ConfigError(
                f"{where}.num_gpus_per_task: must be >= 0, got {self.num_gpus_per_task}"
            )
        if self.num_gpus_per_task > 1 and not float(self.num_gpus_per_task).is_integer():
            # Ray's own rule: fractions only below one GPU
            raise ConfigError(
                f"{where}.num_gpus_per_task: above 1 it must be a whole number, got {self.num_gpus_per_task}"
            )


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    status: Status
    error: str | None
    seconds: float
    value: Any = None


@dataclass(frozen=True)
class Skipped:
    """Returned by a task function whose output already exists (the task is reported "skipped")."""

    value: Any = None


def describe_error(e: BaseException) -> str:
    """One line: type, message and the innermost frame, so a failure in a worker is traceable."""
    # Ray's system errors span many lines; a result carries one line of bounded length
    msg = " ".join(f"{type(e).__name__}: {e}".split())[:1000]
    tb = traceback.extract_tb(e.__traceback__)
    if tb:
        f = tb[-1]
        msg += f" [at {Path(f.filename).name}:{f.lineno} in {f.name}]"
    return msg


def _set_threads(n: int) -> int:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    return before


def _run_task(
    fn: Callable[..., Any], task_id: str, kwargs: Mapping[str, Any], threads: int | None
) -> TaskResult:
    """Runs in the worker: every Exception becomes a "failed" result carrying the task's id."""
    t0 = time.perf_counter()
    before = _set_threads(threads) if threads is not None else None
    try:
        value = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - one task's failure must not sink the others
        return TaskResult(task_id, "failed", describe_error(e), time.perf_counter() - t0)
    finally:
        if before is not None:
            _set_threads(before)  # in-process runs must leave the caller's setting alone
    if isinstance(value, Skipped):
        return TaskResult(task_id, "skipped", None, time.perf_counter() - t0, value.value)
    return TaskResult(task_id, "done", None, time.perf_counter() - t0, value)


def _init_worker(threads: int) -> None:
    # Before torch's first parallel region in this fresh (spawned) process.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    _set_threads(threads)


class Executor:
    """`concurrent.futures`-like: `submit` returns a `concurrent.futures.Future`; use as a context manager."""

    threads: int | None = None  # torch threads that run_tasks applies per task
    max_in_flight: int | None = None  # run_tasks keeps at most this many tasks submitted

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        raise NotImplementedError

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        futures = [self.submit(fn, *args) for args in zip(*iterables, strict=False)]
        return (f.result() for f in futures)

    def shutdown(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


class InlineExecutor(Executor):
    """Runs each call at `submit`, in this process (jobs: 1): plain tracebacks, no pickling."""

    max_in_flight = 1

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - delivered through the future, as concurrent.futures does
            fut.set_exception(e)
        return fut


class PoolExecutor(Executor):
    """A spawn process pool of `jobs` workers, each limited to `threads` torch threads.

    Spawn, not fork: forking a process that already ran torch (or holds CUDA) can deadlock.
    """

    def __init__(self, jobs: int, threads: int | None = None):
        self.jobs = jobs
        self.threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        self.max_in_flight = jobs
        self._pool = cf.ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self.threads,),
        )  # fmt: skip

    def submit(self, fn, /, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(config: ExecutorConfig) -> Executor:
    """The executor `config` names (Ray connects, or starts a local cluster, here)."""
    if config.executor == "ray":
        from singanseg.executors_ray import RayExecutor

        return RayExecutor(config)
    if config.num_gpus_per_task or config.ray_address:
        log.info(
            "executor: local ignores num_gpus_per_task and ray_address (Ray scheduling settings)"
        )
    if (config.jobs or 1) == 1:
        return InlineExecutor(config.threads_per_job)
    return PoolExecutor(config.jobs, config.threads_per_job)


def _check_tasks(tasks: Iterable[Task]) -> list[tuple[str, dict[str, Any]]]:
    out, seen = [], set()
    for i, task in enumerate(tasks):
        if not (isinstance(task, tuple) and len(task) == 2 and isinstance(task[1], Mapping)):
            raise TypeError(f"tasks[{i}]: expected (task_id, kwargs mapping), got {task!r:.80}")
        tid = str(task[0])
        if tid in seen:
            raise ValueError(f"tasks[{i}]: duplicate task id {tid!r}")
        seen.add(tid)
        out.append((tid, dict(task[1])))
    return out


def _crashed(e: BaseException) -> bool:
    return isinstance(e, cf.process.BrokenProcessPool)


def run_tasks(
    fn: Callable[..., Any],
    tasks: Iterable[Task],
    config: ExecutorConfig | None = None,
    progress: bool = True,
    desc: str = "tasks",
    on_settle: Callable[[TaskResult], None] | None = None,
) -> list[TaskResult]:
    """Run `fn(**kwargs)` for every (task_id, kwargs); one TaskResult per task, in task order.

    `on_settle` is called in this process with each task's result as it comes (e.g. a
    `singanseg.progress.Progress` line for a DVC stage, where the bar is off).

    `fn` returns a value (status "done") or `Skipped(value)` ("skipped"); an exception is
    status "failed" with its message and the task's id. Executor problems (Ray missing, a
    cluster unreachable) raise ExecutorError before any task runs.
    """
    config = config or ExecutorConfig()
    todo = _check_tasks(tasks)
    results: list[TaskResult | None] = [None] * len(todo)
    casualties: list[int] = []  # tasks lost when a pool worker died; rerun one by one below
    ex = make_executor(config)  # before the progress bar: Ray may refuse to start here
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=desc, disable=not progress, dynamic_ncols=True)

    def settle(i: int, result: TaskResult) -> None:
        results[i] = result
        if result.status == "failed":
            log.warning("%s %s failed: %s", desc, result.task_id, result.error)
        bar.update(1)
        if on_settle is not None:
            on_settle(result)

    with ex:
        window = ex.max_in_flight or len(todo) or 1
        queue = iter(range(len(todo)))
        pending: dict[cf.Future, tuple[int, float]] = {}

        def fill() -> None:
            for i in queue:
                tid, kwargs = todo[i]
                try:
                    pending[ex.submit(_run_task, fn, tid, kwargs, ex.threads)] = (
                        i,
                        time.perf_counter(),
                    )
                except Exception as e:  # noqa: BLE001 - e.g. the pool broke, or an unpicklable kwarg
                    if _crashed(e):
                        casualties.append(i)
                    else:
                        settle(i, TaskResult(tid, "failed", describe_error(e), 0.0))
                if len(pending) >= window:
                    return

        fill()
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                i, t0 = pending.pop(fut)
                try:
                    settle(i, fut.result())
                except Exception as e:  # noqa: BLE001 - the worker itself died, or Ray lost the task
                    if _crashed(e):
                        casualties.append(i)
                    else:
                        settle(
                            i,
                            TaskResult(
                                todo[i][0], "failed", describe_error(e), time.perf_counter() - t0
                            ),
                        )
            fill()
    # A worker that dies (segfault, out of memory) breaks the whole pool and every task in
    # it; rerunning the casualties one at a time in a one-worker pool finds the culprit
    # (the pool breaks while it alone runs) and lets the innocent finish.
    alone: PoolExecutor | None = None
    try:
        for i in sorted(casualties):
            tid, kwargs = todo[i]
            t0 = time.perf_counter()
            alone = alone or PoolExecutor(1, ex.threads)
            try:
                settle(i, alone.submit(_run_task, fn, tid, kwargs, alone.threads).result())
            except Exception as e:  # noqa: BLE001
                if _crashed(e):
                    alone.shutdown()
                    alone = None
                why = (
                    "its worker process died (crash or out of memory)"
                    if _crashed(e)
                    else describe_error(e)
                )
                settle(i, TaskResult(tid, "failed", why, time.perf_counter() - t0))
    finally:
        if alone is not None:
            alone.shutdown()
        bar.close()
    return [r for r in results if r is not None]


def status_counts(results: Sequence[TaskResult]) -> dict[str, int]:
    """{"done": n, "skipped": n, "failed": n}: the counts every summary line starts from."""
    return {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}


def failed_ids(results: Sequence[TaskResult], max_ids: int = 20) -> str:
    """`a, b, +3 more`: the failed tasks' ids, at most `max_ids` of them ("" when none failed)."""
    failed = [r.task_id for r in results if r.status == "failed"]
    more = f", +{len(failed) - max_ids} more" if len(failed) > max_ids else ""
    return ", ".join(failed[:max_ids]) + more if failed else ""


def summarize(
    results: Sequence[TaskResult],
    max_ids: int = 20,
    *,
    unit: str | None = None,
    done: str = "done",
    first_error: bool = False,
) -> str:
    """The one summary line of a fan-out: counts, then the failed ids.

    `3 done, 1 skipped, 1 failed (a1)` by default; train-many words it for models with
    `unit="pairs", done="trained (1 resumed)", first_error=True`:
    `3 pairs: 1 trained (1 resumed), 1 skipped, 1 failed: c (first error: c: InputError: ...)`.
    """
    counts = status_counts(results)
    line = f"{counts['done']} {done}, {counts['skipped']} skipped, {counts['failed']} failed"
    if unit is not None:
        line = f"{len(results)} {unit}: {line}"
    ids = failed_ids(results, max_ids)
    if not ids:
        return line
    if first_error:
        first = next(r for r in results if r.status == "failed")
        return f"{line}: {ids} (first error: {first.task_id}: {first.error})"
    return f"{line} ({ids})"


_RAY_NAMES = ("PROBE_TIMEOUT_S", "RayExecutor", "probe_ray_address")


def __getattr__(name: str) -> Any:
    # The Ray backend's names, loaded on first use: importing this module must not load it
    # (nor ray), yet `from singanseg.executors import RayExecutor` keeps working.
    if name in _RAY_NAMES:
        from singanseg import executors_ray

        return getattr(executors_ray, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Executor",
    "ExecutorConfig",
    "ExecutorError",
    "InlineExecutor",
    "PoolExecutor",
    "RayExecutor",
    "Skipped",
    "Task",
    "TaskResult",
    "make_executor",
    "probe_ray_address",
    "failed_ids",
    "run_tasks",
    "status_counts",
    "summarize",
]
