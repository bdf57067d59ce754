"""MLflow tracking for the pipeline stages.

Decided (design notes): a SQLite store `mlflow.db` at the repository root by default,
`MLFLOW_TRACKING_URI` honoured (a real `mlflow server`). The driver (the stage process)
creates the experiment once; workers only log, attaching to the stage's run through the
`mlflow.parentRunId` tag, which works across processes (mlflow PR #4197). Parallel
processes that race SQLite's schema migration fail (environment notes), hence
`ensure_experiment` in the driver before any worker starts.

The libraries log through `singanseg.tracker.Tracker`; `MlflowTracker` below is the
pipeline's implementation, handed to them by the stages (`MlflowTracker.of(run)`).

Every stage run is tagged with the stage name, git commit, profile, a hash of its params
section and the weights provenance, so a run traces back to `dvc.lock`; and with the
pipeline run it belongs to (`pipeline_run`, and `dvc_exp_name` under `dvc exp run`), so the
UI filters one `dvc repro` at once (`tags.pipeline_run = '...'`; `pipeline_run_tags`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.infra.params import flatten  # noqa: F401  (re-exported for old callers)
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


class TrackingStoreError(ConfigError):
    """The tracking store (a server that answers wrongly, or a local mlflow.db) is unusable;
    the message names the URI or file and the fix."""


# Up front, bounded: MLflow's own client retries an unreachable server for ~4.5 minutes
# (MLFLOW_HTTP_REQUEST_MAX_RETRIES=7 with backoff, 120 s timeout) with no output, then
# prints a long traceback. 3 tries of <= 5 s, 0.5 s and 1 s apart: < 20 s in the worst case.
REACH_ATTEMPTS = 3
REACH_TIMEOUT_S = 5.0
# A half-alive server (issue 26 item 4): /health answers but the API hangs (the stage was
# still silent at 280 s) or answers 500 (MLflow's client retried for 252 s, then a
# traceback). So the check also makes one real API call, and every later call of MLflow's
# client is bounded through its own settings (mlflow/utils/rest_utils.py reads them per
# request): 10 s per try, 1 retry 1 s later, i.e. <= ~21 s per call. Set in the environment,
# they win (a slow link may want more); they are inherited by worker processes.
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # fmt: skip
PROBE_PATH = "/api/2.0/mlflow/experiments/get-by-name?experiment_name="
_reachable: set[str] = set()


def _bound_http_calls() -> None:
    for key, value in HTTP_BOUNDS.items():
        os.environ.setdefault(key, value)


def _answer(e: urllib.error.HTTPError) -> str:
    try:
        body = e.read(300).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the status is what matters
        body = ""
    body = " ".join(body.split())
    return f"HTTP {e.code} {e.reason}" + (f": {body[:160]}" if body else "")


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S, attempts: int = REACH_ATTEMPTS) -> None:
    """Raise TrackingUnreachableError (one line: the URI and the fallback) if an HTTP(S)
    tracking server does not answer, TrackingStoreError if it answers /health but its API
    hangs or fails; local stores are checked by check_local_store.

    Any HTTP answer to /health counts as reachable (a 404 from a proxy path is still a
    server); then one API call (the experiment lookup every stage makes first) must answer
    within `timeout`: a 4xx is an answer (404: no experiment yet; 401/403: MLflow's client
    sends the credentials this probe lacks), a 5xx or silence is not. Checked once per URI
    per process.
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
        break
    else:
        raise TrackingUnreachableError(
            f"MLFLOW_TRACKING_URI={uri}: MLflow server unreachable ({reason}; {attempts} tries, "
            f"{timeout:g} s timeout each); start the server, or unset MLFLOW_TRACKING_URI to use "
            f"the local SQLite store (mlflow.db), or set track: false"
        )
    api = uri.rstrip("/") + PROBE_PATH + urllib.parse.quote(EXPERIMENT)
    what = None
    try:
        with urllib.request.urlopen(api, timeout=timeout):
            pass
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            what = f"its API answered {_answer(e)}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        inner = getattr(e, "reason", None) or e
        if isinstance(inner, TimeoutError) or "timed out" in str(inner):
            what = f"its API did not answer within {timeout:g} s"
        else:
            what = f"its API failed ({inner})"
    if what is not None:
        raise TrackingStoreError(
            f"MLFLOW_TRACKING_URI={uri}: the server answers /health but {what} "
            f"(GET {PROBE_PATH.split('?')[0]}); check the server's log and its backend store, "
            f"or unset MLFLOW_TRACKING_URI to use the local SQLite store (mlflow.db), or set track: false"
        )
    _reachable.add(uri)


# --- a local store: sqlite:///<file> (the default) or a plain path --------------------------

_checked_local: set[str] = set()
# how long the check waits for another process's lock on a sqlite store (sqlite's busy
# timeout) before it says so: another stage's writes hold it for milliseconds, so a lock
# held this long is a process that keeps it (a stuck run, a long transaction)
LOCK_WAIT_S = 30.0


def _sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///<path>` URI (SQLAlchemy's form: 3 slashes, then a relative
    path or a 4th slash for an absolute one); None for an in-memory store."""
    rest = uri[len("sqlite://"):]
    if not rest.startswith("/"):
        return None
    path = urllib.parse.unquote(rest[1:].split("?")[0])
    return None if path in ("", ":memory:") else Path(path)


def _fix_hint(path: Path) -> str:  # noqa: ARG001 - one wording for every local-store error
    return "or set MLFLOW_TRACKING_URI=sqlite:///<a writable folder>/mlflow.db, or track: false"


def check_local_store(uri: str, lock_wait: float | None = None) -> None:
    """One line (TrackingStoreError) naming the file and the fix where a local store cannot
    be used, before MLflow is asked (issue 26 item 5: a read-only mlflow.db gave a traceback
    after 9 s, a new db in a read-only folder 109 s of retries, a garbled one an 88-line
    DatabaseError, a plain path MLflow 3's "file store in maintenance mode").

    Writability is tried, not read off permission bits (root ignores them, a read-only
    mount ignores them the other way): a write inside a rolled-back transaction
    (`BEGIN IMMEDIATE`, a scratch table, ROLLBACK) leaves the file as it was. A garbled or
    truncated file fails sqlite's quick_check. A store another process keeps locked for
    longer than `lock_wait` seconds (default LOCK_WAIT_S) is one line too, naming the file;
    the check then has written nothing. Checked once per URI per process."""
    import sqlite3

    wait = LOCK_WAIT_S if lock_wait is None else lock_wait

    if uri in _checked_local:
        return
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path (or C:\...): MLflow's file store
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise TrackingStoreError(
                f"MLFLOW_TRACKING_URI={uri}: a folder path selects MLflow's file store, which MLflow 3 "
                f"refuses (maintenance mode); use MLFLOW_TRACKING_URI=sqlite:///<folder>/mlflow.db "
                f"(`mlflow migrate-filestore` moves existing runs), or set MLFLOW_ALLOW_FILE_STORE=true"
            )
        _checked_local.add(uri)
        return
    if scheme != "sqlite":
        return  # postgresql, mysql, databricks, ...: MLflow's own checks
    path = _sqlite_path(uri)
    if path is None:
        return
    if path.is_dir():
        raise TrackingStoreError(f"{path}: the MLflow store (MLFLOW_TRACKING_URI={uri}) is a folder, not a database file; point it at a file")
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            raise TrackingStoreError(f"{folder}: folder not found, so the MLflow store {path.name} cannot be created there; create it, {_fix_hint(path)}")
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".mlflow-probe-"):
                pass
        except OSError as e:
            raise TrackingStoreError(
                f"{folder}: cannot create the MLflow store {path.name} in this folder ({e.strerror or e}); "
                f"make the folder writable, {_fix_hint(path)}"
            ) from None
        _checked_local.add(uri)
        return
    try:
        con = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=rw", uri=True, timeout=wait, isolation_level=None)
    except sqlite3.Error as e:
        raise TrackingStoreError(f"{path}: cannot open the MLflow store ({e}); make it readable and writable, {_fix_hint(path)}") from None
    try:
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                raise sqlite3.DatabaseError(f"quick_check: {'; '.join(str(r[0]) for r in rows[:2])}")
        except sqlite3.DatabaseError as e:
            if _is_locked(e):
                raise _locked_error(path, wait) from None
            raise TrackingStoreError(
                f"{path}: the MLflow store is corrupted or not a database ({e}); move it aside "
                f"(mv {path} {path}.corrupt) and rerun to start a fresh store, {_fix_hint(path)}"
            ) from None
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("CREATE TABLE _singanseg_write_probe (x INTEGER)")
        except sqlite3.OperationalError as e:
            if _is_locked(e):
                raise _locked_error(path, wait) from None
            raise TrackingStoreError(
                f"{path}: the MLflow store cannot be written ({e}); make the file and its folder "
                f"{path.parent} writable (sqlite writes a journal beside it), {_fix_hint(path)}"
            ) from None
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
    finally:
        con.close()
    _checked_local.add(uri)


def _is_locked(e: BaseException) -> bool:
    # sqlite's SQLITE_BUSY / SQLITE_LOCKED after its busy timeout: "database is locked",
    # "database table is locked", "database is busy"
    import sqlite3

    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


def _locked_error(path: Path, wait: float) -> TrackingStoreError:
    return TrackingStoreError(
        f"{path}: the MLflow store is still locked after {wait:g} s: another process holds the lock "
        f"(another stage, an MLflow server on the same file, or a stuck one); wait for it to finish or "
        f"stop it, then rerun, {_fix_hint(path)}"
    )


def tracking_error(uri: str, what: str, error: BaseException) -> TrackingStoreError:
    """One line for a failed tracking call (after MLflow's bounded retries): the URI, the
    call and the first line of what answered."""
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return TrackingStoreError(
        f"MLFLOW_TRACKING_URI={uri}: {what} failed ({type(error).__name__}: {text}); check the "
        f"tracking store, or set track: false"
    )


@contextlib.contextmanager
def _calls(what: str) -> Iterator[None]:
    """MLflow's errors inside the block (its MlflowException, the HTTP or database errors
    under it) as one TrackingStoreError naming the URI; our own errors pass through."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as e:
        if type(e).__module__.split(".")[0] in ("mlflow", "requests", "urllib3", "sqlalchemy", "sqlite3") or isinstance(e, OSError):
            raise tracking_error(tracking_uri(), what, e) from None
        raise


def _mlflow():
    # Imported lazily: mlflow costs ~1-2 s to import, which library users who never track
    # should not pay.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri()
    _bound_http_calls()
    check_reachable(uri)  # before the import and before any request that would hang
    check_local_store(uri)
    import logging

    import mlflow

    # the store's schema-migration chatter ("Creating initial MLflow database tables...")
    # is noise in every stage's output
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    return mlflow


# Issue 18: the experiment link landed on the Traces overview ("No data available"). MLflow 3's
# UI picks the landing tab from the experiment's kind: GenAI experiments open on traces, the
# others on runs. The kind is this tag (mlflow/server/js: `"mlflow.experimentKind"`, values
# `genai_development` / `custom_model_development`, the demo sets it the same way in
# mlflow/demo/generators/traces.py). mlflow 3.17's UI reads the kind from its "workflow type"
# switch when that feature flag is on (it is, in the bundled build), defaulting to GenAI: the
# switch, or `?workflowType=machine_learning` in the link (`ui_url`), opens the runs then.
# Issue 27: the runs table opened with truncated run names and no metric column in view. MLflow
# 3's UI loads a "shared view" (its Share button) from the experiment tag
# `mlflow.sharedViewState.<key>` when the link carries `viewStateShareKey=<key>`, as plain JSON of
# its view state (mlflow/server/js: `Rn.HC` keys; column ids are `<type>.\`<name>\``). This one
# shows the run names whole and the headline metrics first; the user's own saved view is untouched.
VIEW_KEY = "singanseg"
HEADLINE_COLUMNS = ("fid", "sifid", "lpips", "iou", "f1")  # the short names (issue 18)
RUN_NAME_COLUMN = "attributes.`Run Name`"
VIEW_STATE = {
    "selectedColumns": [f"metrics.`{m}`" for m in HEADLINE_COLUMNS],
    "columnOrder": [RUN_NAME_COLUMN, *(f"metrics.`{m}`" for m in HEADLINE_COLUMNS)],
    "columnWidths": {RUN_NAME_COLUMN: 330},  # the longest, segment/A/REAL+FAKE_1_ST1to1000/fold0, whole
}
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(VIEW_STATE, sort_keys=True),
    "mlflow.note.content": (
        "The SinGAN-Seg benchmark pipeline: one run per DVC stage execution (per-image and "
        "per-fold work as child runs). All runs of one `dvc repro` / `dvc exp run` share the tag "
        "`pipeline_run` (filter: tags.pipeline_run = '<id>'); `dvc exp run` adds `dvc_exp_name`. "
        "Headline metrics have short names: fid, sifid, lpips (quality/<set> runs), iou, f1 (segment)."
    ),
}
_tagged: set[tuple[str, str]] = set()


def ensure_experiment(name: str = EXPERIMENT) -> str:
    """Create the experiment if needed (driver only), make sure it has EXPERIMENT_TAGS (an
    experiment of an older version of the suite gets them too), and return its id."""
    mlflow = _mlflow()
    with _calls(f"looking up experiment {name!r}"):
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            try:
                exp_id = mlflow.create_experiment(name, tags=EXPERIMENT_TAGS)
            except Exception:  # another driver created it in between
                exp = mlflow.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp is not None:
            exp_id = exp.experiment_id
            key = (tracking_uri(), exp_id)
            if key not in _tagged and any(exp.tags.get(k) != v for k, v in EXPERIMENT_TAGS.items()):
                client = mlflow.MlflowClient()
                for k, v in EXPERIMENT_TAGS.items():
                    client.set_experiment_tag(exp_id, k, v)
    _tagged.add((tracking_uri(), exp_id))
    return exp_id


def ui_url(base: str, experiment_id: str) -> str:
    """The link that opens the experiment's runs table in MLflow 3's UI (see EXPERIMENT_TAGS)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"


# --- one pipeline run: the stages of one `dvc repro` / `dvc exp run` --------------------------
#
# DVC runs every stage as its own process (`$SHELL -c <cmd>`, dvc/stage/run.py), so the stages
# share no memory; what they share is the one `dvc` process above them. Its pid and start time
# (from /proc) name the invocation: the same for every stage of it, different for the next
# repro, and the same id a user can read off `ps`. `dvc exp run` also hands each stage
# DVC_EXP_NAME and DVC_EXP_BASELINE_REV (dvc/repo/experiments/queue/base.py puts them in the
# stages' `run_env`, dvc/stage/run.py::prepare_kwargs), tagged as they are. SINGANSEG_PIPELINE_RUN
# overrides the id (a driver script that runs stages by hand); a stage run outside DVC is a
# pipeline run of its own (its own pid and start).
PIPELINE_RUN_ENV = "SINGANSEG_PIPELINE_RUN"


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks after boot) from /proc/<pid>/stat; None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[1]), int(fields[19])  # fields 4 (ppid) and 22 (starttime) of proc(5)


def _is_dvc(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    names = [os.path.basename(a.decode(errors="replace")) for a in argv[:3]]
    # `dvc ...` (the console script: `python .../bin/dvc ...` once exec'd) or `python -m dvc ...`
    return bool(names) and (names[0] == "dvc" or (names[0].startswith("python") and
                            (names[1:2] == ["dvc"] or names[1:3] == ["-m", "dvc"])))  # fmt: skip


def _invocation_id(pid: int, start_ticks: int, prefix: str) -> str:
    try:
        btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
        start = btime + start_ticks / os.sysconf("SC_CLK_TCK")
        when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
    except (OSError, StopIteration, ValueError):
        when = str(start_ticks)
    return f"{prefix}-{when}-{pid}"


def pipeline_run_id() -> str:
    """The id shared by every stage of one DVC invocation (see above)."""
    if os.environ.get(PIPELINE_RUN_ENV):
        return os.environ[PIPELINE_RUN_ENV]
    pid = os.getpid()
    own = _proc_stat(pid)
    seen = 0
    stat = own
    while stat is not None and pid > 1 and seen < 64:
        if _is_dvc(pid):
            return _invocation_id(pid, stat[1], "dvc")
        pid, seen = stat[0], seen + 1
        stat = _proc_stat(pid)
    if own is None:  # no /proc: this process, by its pid and the wall clock
        return f"stage-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    return _invocation_id(os.getpid(), own[1], "stage")


def pipeline_run_tags() -> dict[str, str]:
    """`pipeline_run`, and under `dvc exp run` `dvc_exp_name` and `dvc_exp_baseline_rev`."""
    tags = {"pipeline_run": pipeline_run_id()}
    for env, tag in (("DVC_EXP_NAME", "dvc_exp_name"), ("DVC_EXP_BASELINE_REV", "dvc_exp_baseline_rev"),
                     ("DVC_STAGE", "dvc_stage")):  # fmt: skip
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


# tags a child run (another process, possibly) copies from its stage run
INHERITED_TAGS = ("stage", "git_commit", "profile", "params_hash", "pipeline_run", "dvc_exp_name",
                  "dvc_exp_baseline_rev", "dvc_stage")  # fmt: skip


def git_commit(cwd: str | os.PathLike | None = None, ignore: tuple[str, ...] = (),
               outputs: tuple[str, ...] = ()) -> str:
    """HEAD's commit, with `-dirty` when tracked files changed; `unknown` outside git.

    `ignore`: paths (a trailing `/` for folders) whose changes do not count, for a report
    that states them another way: `dvc exp run -S` edits params.yaml (the report lists the
    values it set), and `dvc repro` rewrites dvc.lock and reports/ while it runs.

    `outputs`: paths a run writes and that are committed after it (dvc.lock, the report):
    a commit that changed only these is passed over, and the stamp names the newest commit
    that changed anything else. So the commit that adds a run's results to git leaves the
    stamp they carry true, and a fresh clone's rerun writes the same stamp (issue 18 s2).
    """
    cwd = cwd or Path.cwd()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        commit = head.stdout.strip()
        if outputs:
            # pathspecs from the top of the work tree, whatever cwd is; folders end in `/`
            spec = [":(top)", *(f":(top,exclude){p.rstrip('/')}" for p in outputs)]
            last = subprocess.run(["git", "log", "-1", "--format=%H", "HEAD", "--", *spec],
                                  cwd=cwd, capture_output=True, text=True, timeout=10)  # fmt: skip
            commit = last.stdout.strip() or commit  # none (every commit only wrote outputs): HEAD
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        changed = [ln[3:].strip().split(" -> ")[-1] for ln in dirty.stdout.splitlines() if ln.strip()]
        changed = [c for c in changed if not any(c == i or (i.endswith("/") and c.startswith(i)) for i in ignore)]
        return commit + ("-dirty" if changed else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"




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
    from pipeline.infra.params import active_profile, params_hash

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
        **pipeline_run_tags(),
        **dict(tags or {}),
    }
    with _calls(f"starting the {stage} run"):
        run = mlflow.start_run(experiment_id=exp_id, run_name=run_name or stage, tags=all_tags)
        p = _params_of(params)
        if p:
            mlflow.log_params(p)
    status = "FINISHED"
    try:
        yield run
    except BaseException:
        status = "FAILED"
        raise
    finally:
        _end(lambda: mlflow.end_run(status), f"ending the {stage} run", failed=status == "FAILED")


def _end(end, what: str, failed: bool) -> None:
    """End a run; when the body failed, its error is the one to see: a tracking error on top
    of it is a warning, not a replacement."""
    try:
        with _calls(what):
            end()
    except TrackingStoreError as e:
        if not failed:
            raise
        import logging

        logging.getLogger(__name__).warning("%s", e)


@contextlib.contextmanager
def child_run(parent: Any, run_name: str, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A child of `parent` (an mlflow Run or a run id); usable in this or another process."""
    mlflow = _mlflow()
    parent_id = parent if isinstance(parent, str) else parent.info.run_id
    with _calls(f"starting child run {run_name!r}"):
        client = mlflow.MlflowClient()
        parent_run = client.get_run(parent_id)
        inherited = {k: v for k, v in parent_run.data.tags.items() if k in INHERITED_TAGS or k.startswith("provenance.")}
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
        _end(lambda: client.set_terminated(run.info.run_id, status=status), f"ending child run {run_name!r}",
             failed=status == "FAILED")  # fmt: skip


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
    with _calls("logging metrics"):
        mlflow.MlflowClient().log_batch(run_id, metrics=batch)


@dataclass(frozen=True)
class MlflowTracker:
    """`singanseg.tracker.Tracker` on an MLflow run: picklable (a run id and the store's URI).

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
            client = _mlflow().MlflowClient()
            with _calls("logging params"):
                client.log_batch(self.run_id, params=[_param(k, v) for k, v in p.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._attach()
        _log_batch(self.run_id, metrics, step)

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[MlflowTracker]:
        self._attach()
        with child_run(self.run_id, name, tags) as run:
            yield MlflowTracker(run.info.run_id, self.uri)


# what the report run shows in the UI's artifact view (issue 17): the report page, its
# figures (images render inline) and its tables (CSV renders as a table; LaTeX for papers)
REPORT_ARTIFACTS = (("README.md", ""), ("figures/*.png", "figures"), ("figures/*.svg", "figures"),
                    ("figures/*.pdf", "figures"), ("tables/*.csv", "tables"), ("tables/*.tex", "tables"))  # fmt: skip


def log_report_artifacts(run: Any, report_dir: str | os.PathLike) -> int:
    """Log a report folder's page, figures and tables to `run` (None: nothing); returns the count."""
    if run is None:
        return 0
    client = _mlflow().MlflowClient()
    root = Path(report_dir)
    n = 0
    for pattern, dest in REPORT_ARTIFACTS:
        for f in sorted(root.glob(pattern)):
            with _calls(f"logging artifact {f.name}"):
                client.log_artifact(run.info.run_id, str(f), dest or None)
            n += 1
    return n


def _param(key: str, value: Any):
    from mlflow.entities import Param

    return Param(key, str(value))
