"""MLflow tracking for the pipeline stages.

Decided (design notes): a SQLite store `mlflow.db` at the repository root by default,
`MLFLOW_TRACKING_URI` honoured (a real `mlflow server`). The driver (the stage process)
creates the experiment once; workers only log, attaching to the stage's run through the
`mlflow.parentRunId` tag, which works across processes (mlflow PR #4197). Parallel
processes that race SQLite's schema migration fail (environment notes), hence
`ensure_experiment` in the driver before any worker starts.

The libraries log through `singanseg.tracking.Tracker`; `MlflowTracker` below is the
pipeline's implementation, handed to them by the stages (`MlflowTracker.of(run)`).

Every stage run is tagged with the stage name, git commit, profile, a hash of its params
section and the weights provenance, so a run traces back to `dvc.lock`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singanseg.typed import ConfigError, to_mapping

EXPERIMENT = "singanseg"
REPO_ROOT = Path(__file__).resolve().parents[1]


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, else an absolute SQLite URI at the repository root.

    Absolute on purpose: a relative URI inside a DVC temp-clone experiment would resolve
    inside the temp folder and the run would vanish with it (anchors section 4.2).
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path.cwd() / 'mlflow.db').resolve()}"


class TrackingUnreachableError(ConfigError):
    """The MLflow tracking server at MLFLOW_TRACKING_URI does not answer."""


# Up front, bounded: MLflow's own client retries an unreachable server for ~4.5 minutes
# (MLFLOW_HTTP_REQUEST_MAX_RETRIES=7 with backoff, 120 s timeout) with no output, then
# prints a long traceback. 3 tries of <= 5 s, 0.5 s and 1 s apart: < 20 s in the worst case.
REACH_ATTEMPTS = 3
REACH_TIMEOUT_S = 5.0
_reachable: set[str] = set()


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S, attempts: int = REACH_ATTEMPTS) -> None:
    """Raise TrackingUnreachableError (one line: the URI and the fallback) if an HTTP(S)
    tracking server does not answer; local stores (sqlite, file) are not checked.

    Any HTTP answer counts as reachable (a 404 from a proxy path is still a server); only
    connection failures and timeouts count against it. Checked once per URI per process.
    """
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme not in ("http", "https") or uri in _reachable:
        return
    reason = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5 * attempt)
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                pass
        except urllib.error.HTTPError:
            pass  # the server answered
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = str(getattr(e, "reason", None) or e) or type(e).__name__
            continue
        _reachable.add(uri)
        return
    raise TrackingUnreachableError(
        f"MLFLOW_TRACKING_URI={uri}: MLflow server unreachable ({reason}; {attempts} tries, "
        f"{timeout:g} s timeout each); start the server, or unset MLFLOW_TRACKING_URI to use "
        f"the local SQLite store (mlflow.db), or set track: false"
    )


def _mlflow():
    # Imported lazily: mlflow costs ~1-2 s to import, which library users who never track
    # should not pay.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri()
    check_reachable(uri)  # before the import and before any request that would hang
    import logging

    import mlflow

    # the store's schema-migration chatter ("Creating initial MLflow database tables...")
    # is noise in every stage's output
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    return mlflow


def ensure_experiment(name: str = EXPERIMENT) -> str:
    """Create the experiment if needed (driver only) and return its id."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow.create_experiment(name)
    except Exception:  # another driver created it in between
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit(cwd: str | os.PathLike | None = None, ignore: tuple[str, ...] = ()) -> str:
    """HEAD's commit, with `-dirty` when tracked files changed; `unknown` outside git.

    `ignore`: paths (a trailing `/` for folders) whose changes do not count, for a report
    that states them another way: `dvc exp run -S` edits params.yaml (the report lists the
    values it set), and `dvc repro` rewrites dvc.lock and reports/ while it runs.
    """
    cwd = cwd or Path.cwd()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        changed = [ln[3:].strip().split(" -> ")[-1] for ln in dirty.stdout.splitlines() if ln.strip()]
        changed = [c for c in changed if not any(c == i or (i.endswith("/") and c.startswith(i)) for i in ignore)]
        return head.stdout.strip() + ("-dirty" if changed else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _params_of(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    plain = to_mapping(params)
    if not isinstance(plain, Mapping):
        return {"value": plain}
    # MLflow caps a param value at 6000 characters; lists of ids can be long
    return {k: (str(v)[:5000]) for k, v in flatten(plain).items()}


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: Any = None,
    run_name: str | None = None,
    profile: str | None = None,
    provenance: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> Iterator[Any]:
    """One MLflow run for one stage execution; yields the active run (or None if disabled).

    `params` is the stage's resolved config (a dataclass or mapping): logged flattened and
    hashed. `provenance` names the weights behind the numbers (e.g. {"weights": "random-init"}).
    """
    if not enabled:
        yield None
        return
    from pipeline.params import active_profile, params_hash

    mlflow = _mlflow()
    exp_id = ensure_experiment()
    if profile is None:
        try:
            profile = active_profile()
        except ValueError:
            profile = "unknown"
    all_tags = {
        "stage": stage,
        "git_commit": git_commit(),
        "profile": profile,
        "params_hash": params_hash(params) if params is not None else "none",
        **{f"provenance.{k}": str(v) for k, v in (provenance or {}).items()},
        **dict(tags or {}),
    }
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name or stage, tags=all_tags) as run:
        p = _params_of(params)
        if p:
            mlflow.log_params(p)
        yield run


@contextlib.contextmanager
def child_run(parent: Any, run_name: str, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A child of `parent` (an mlflow Run or a run id); usable in this or another process."""
    mlflow = _mlflow()
    parent_id = parent if isinstance(parent, str) else parent.info.run_id
    client = mlflow.MlflowClient()
    parent_run = client.get_run(parent_id)
    inherited = {k: v for k, v in parent_run.data.tags.items() if k in ("stage", "git_commit", "profile", "params_hash") or k.startswith("provenance.")}
    run = client.create_run(
        parent_run.info.experiment_id,
        run_name=run_name,
        tags={**inherited, **dict(tags or {}), "mlflow.parentRunId": parent_id},
    )
    status = "FINISHED"
    try:
        yield run
    except BaseException:
        status = "FAILED"
        raise
    finally:
        client.set_terminated(run.info.run_id, status=status)


def log_metrics(run: Any, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log many metrics in one request (one HTTP call per metric through a server otherwise)."""
    if run is None or not metrics:
        return
    if isinstance(run, MlflowTracker):  # a tracker handed back by the library (baselines' children)
        run.log_metrics(metrics, step)
        return
    _log_batch(run.info.run_id, metrics, step)


def _log_batch(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    if not metrics:
        return
    import time

    from mlflow.entities import Metric

    mlflow = _mlflow()
    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
    mlflow.MlflowClient().log_batch(run_id, metrics=batch)


@dataclass(frozen=True)
class MlflowTracker:
    """`singanseg.tracking.Tracker` on an MLflow run: picklable (a run id and the store's URI).

    `uri` is the driver's store, set in whichever process logs (a worker's cwd or
    environment may differ from the driver's).
    """

    run_id: str
    uri: str | None = None

    @classmethod
    def of(cls, run: Any) -> MlflowTracker | None:
        """The tracker of an active run (from `stage_run` / `child_run`), None for no run."""
        return None if run is None else cls(run.info.run_id, tracking_uri())

    def _attach(self) -> None:
        if self.uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = self.uri

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._attach()
        p = _params_of(params)
        if p:
            _mlflow().MlflowClient().log_batch(self.run_id, params=[_param(k, v) for k, v in p.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._attach()
        _log_batch(self.run_id, metrics, step)

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[MlflowTracker]:
        self._attach()
        with child_run(self.run_id, name, tags) as run:
            yield MlflowTracker(run.info.run_id, self.uri)


def _param(key: str, value: Any):
    from mlflow.entities import Param

    return Param(key, str(value))
