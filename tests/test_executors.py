"""singanseg.executors: local (in-process, process pool) and Ray on a real local cluster.

The task functions below are module-level on purpose: the process pool and Ray workers
import them by reference, as they import singanseg's real task functions.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from singanseg.executors import (
    ExecutorConfig,
    ExecutorError,
    RayExecutor,
    Skipped,
    TaskResult,
    make_executor,
    probe_ray_address,
    run_tasks,
    summarize,
)
from singanseg.typed import ConfigError, from_mapping

REPO = Path(__file__).resolve().parents[1]


def scaled(x: int, delay: float = 0.0) -> int:
    time.sleep(delay)
    if x == 2:
        raise ValueError(f"input {x} is bad")
    return x * 10


def scaled_where(x: int, delay: float = 0.0) -> tuple[int, int, int]:
    """scaled(x), plus the torch threads and the process it ran with."""
    import torch

    return scaled(x, delay), torch.get_num_threads(), os.getpid()


def threads_and_pid() -> tuple[int, int]:
    import torch

    return torch.get_num_threads(), os.getpid()


def write_once(path: str) -> str | Skipped:
    p = Path(path)
    if p.exists():
        return Skipped(p.read_text())
    p.write_text(p.name)
    return "written"


def die_on(x: int) -> int:
    if x == 1:
        os._exit(3)  # a segfault or the OOM killer, as the pool sees it
    time.sleep(0.2)
    return x


def _tasks(n: int, delay: float = 0.0):
    # Later tasks finish first (shorter delays), so completion order differs from task order.
    return [(f"t{i}", {"x": i, "delay": delay * (n - i)}) for i in range(n)]


def _check_scaled(results: list[TaskResult], n: int, value=lambda v: v) -> None:
    assert [r.task_id for r in results] == [f"t{i}" for i in range(n)]
    for i, r in enumerate(results):
        if i == 2:
            assert r.status == "failed" and r.value is None
            assert "ValueError" in r.error and f"input {i} is bad" in r.error
        else:
            assert (r.status, r.error, value(r.value)) == ("done", None, i * 10)
        assert r.seconds >= 0


# --- config -----------------------------------------------------------------------------


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"params.yaml: singan.executor.jobs: must be >= 1"):
        from_mapping(ExecutorConfig, {"jobs": 0}, "params.yaml: singan.executor")
    with pytest.raises(ConfigError, match=r"executor.executor: 'dask' is not one of"):
        from_mapping(ExecutorConfig, {"executor": "dask"}, "executor")
    with pytest.raises(ConfigError, match=r"num_gpus_per_task: above 1 it must be a whole number"):
        from_mapping(ExecutorConfig, {"num_gpus_per_task": 1.5}, "executor")
    with pytest.raises(ValueError, match="duplicate task id 'a'"):
        run_tasks(scaled, [("a", {"x": 1}), ("a", {"x": 3})], progress=False)


# --- local ------------------------------------------------------------------------------


def test_inline_results_in_order_and_failure_captured():
    n = 3  # t2 fails; t0, t1 (slower) finish
    results = run_tasks(scaled, _tasks(n), ExecutorConfig(), progress=False)
    _check_scaled(results, n)
    assert summarize(results) == f"{n - 1} done, 0 skipped, 1 failed (t2)"


def test_inline_skipped_and_threads_restored(tmp_path):
    import torch

    tasks = [(name, {"path": str(tmp_path / name)}) for name in ("a", "b")]
    first = run_tasks(write_once, tasks, progress=False)
    assert [(r.status, r.value) for r in first] == [("done", "written")] * 2
    again = run_tasks(write_once, tasks, progress=False)
    assert [(r.status, r.value) for r in again] == [("skipped", "a"), ("skipped", "b")]

    before = torch.get_num_threads()
    want = before + 1
    [r] = run_tasks(
        threads_and_pid, [("t", {})], ExecutorConfig(threads_per_job=want), progress=False
    )
    assert r.value == (want, os.getpid())  # ran here, with the requested threads ...
    assert torch.get_num_threads() == before  # ... and the caller's setting is back


def test_executor_submit_and_map():
    with make_executor(ExecutorConfig()) as ex:
        assert ex.submit(scaled, 3).result() == 30
        assert list(ex.map(scaled, [0, 1], [0.0, 0.0])) == [0, 10]
        with pytest.raises(ValueError, match="input 2 is bad"):
            ex.submit(scaled, 2).result()


def test_process_pool_order_failure_and_threads():
    n = 3  # t2 fails; t0, t1 (slower) finish
    cfg = ExecutorConfig(jobs=2, threads_per_job=2)
    results = run_tasks(scaled_where, _tasks(n, delay=0.15), cfg, progress=False)
    _check_scaled(results, n, value=lambda v: v[0])
    done = [r.value for r in results if r.status == "done"]
    assert {threads for _, threads, _ in done} == {cfg.threads_per_job}
    assert os.getpid() not in {pid for _, _, pid in done}


def test_process_pool_worker_death_sinks_only_its_task():
    results = run_tasks(
        die_on, [(f"t{i}", {"x": i}) for i in range(3)], ExecutorConfig(jobs=2), progress=False
    )
    assert [r.task_id for r in results] == ["t0", "t1", "t2"]
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert [results[0].value, results[2].value] == [0, 2]
    assert "died" in results[1].error


# --- Ray: addresses and availability (no cluster needed) -----------------------------


def test_ray_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    with pytest.raises(ExecutorError, match=r"pip install '\.\[ray\]'"):
        run_tasks(scaled, [("a", {"x": 1})], ExecutorConfig(executor="ray"), progress=False)


def test_probe_refuses_a_listener_that_is_not_ray():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ExecutorError, match=f"'{addr}'"):
            probe_ray_address(addr, timeout=1.0)
    with pytest.raises(ExecutorError, match="expected host:port"):
        probe_ray_address("ray://:abc")


def test_unreachable_ray_address_fails_fast_naming_it():
    # In a fresh interpreter: a Ray connection already open in this one would be reused.
    # The subprocess timeout only guards against a hang (Ray itself waits minutes).
    code = (
        "from singanseg.executors import ExecutorConfig, run_tasks\n"
        "run_tasks(print, [('a', {})], ExecutorConfig(executor='ray'), progress=False)\n"
    )
    for cfg_addr in ("127.0.0.1:1", None):
        env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1"} if cfg_addr is None else dict(os.environ)
        src = (
            code
            if cfg_addr is None
            else code.replace("executor='ray'", f"executor='ray', ray_address={cfg_addr!r}")
        )
        proc = subprocess.run(
            [sys.executable, "-c", src],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0
        assert (
            "ExecutorError" in proc.stderr
            and "'127.0.0.1:1'" in proc.stderr
            and "unreachable" in proc.stderr
        )


# --- Ray on a real local cluster -------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module, started by the executor itself (on 127.0.0.1)."""
    # not pytest.importorskip: importing ray here, before the executor, would bind the
    # cluster to the machine's outward address (see singanseg.executors_ray._import_ray)
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (optional extra: pip install '.[ray]')")
    ex = RayExecutor(ExecutorConfig(executor="ray"))
    try:
        yield ex._ray
    finally:
        ex.shutdown()
        assert not ex._ray.is_initialized()


def test_ray_cluster_is_local_and_loopback(ray_cluster):
    nodes = [n for n in ray_cluster.nodes() if n["Alive"]]
    assert len(nodes) == 1 and nodes[0]["NodeManagerAddress"] == "127.0.0.1"


def test_ray_results_in_order_failure_and_threads(ray_cluster):
    n = 3  # t2 fails; t0, t1 (slower) finish
    # half a CPU per task: all run at once on 2 CPUs
    cfg = ExecutorConfig(executor="ray", num_cpus_per_task=0.5, threads_per_job=2)
    results = run_tasks(scaled_where, _tasks(n, delay=0.1), cfg, progress=False)
    _check_scaled(results, n, value=lambda v: v[0])
    done = [r.value for r in results if r.status == "done"]
    assert {threads for _, threads, _ in done} == {cfg.threads_per_job}
    assert os.getpid() not in {pid for _, _, pid in done}

    # jobs caps the tasks in flight; order and capture do not depend on it
    cfg = ExecutorConfig(executor="ray", jobs=1)
    _check_scaled(run_tasks(scaled, _tasks(n), cfg, progress=False), n)
    assert ray_cluster.is_initialized()  # a connection the executor did not open stays open


def test_ray_refuses_task_shapes_no_node_can_run(ray_cluster):
    # Ray would queue these forever ("infeasible"); the executor refuses them up front.
    assert ray_cluster.cluster_resources().get("GPU", 0) == 0, "this test needs a CPU-only cluster"
    with pytest.raises(ExecutorError, match=r"num_gpus_per_task=0.25.*needs a node with a GPU"):
        run_tasks(
            scaled,
            [("a", {"x": 1})],
            ExecutorConfig(executor="ray", num_gpus_per_task=0.25),
            progress=False,
        )
    too_many = ray_cluster.cluster_resources()["CPU"] + 1
    with pytest.raises(ExecutorError, match=rf"num_cpus_per_task={too_many:g}"):
        run_tasks(
            scaled,
            [("a", {"x": 1})],
            ExecutorConfig(executor="ray", num_cpus_per_task=too_many),
            progress=False,
        )


def test_ray_address_of_a_running_cluster(ray_cluster):
    """Another driver reaches the cluster by address (the path a real cluster takes)."""
    gcs = ray_cluster.get_runtime_context().gcs_address
    probe_ray_address(gcs)  # a real GCS passes the probe
    code = (
        "import os\n"
        "from singanseg.executors import ExecutorConfig, run_tasks\n"
        f"[r] = run_tasks(os.getpid, [('a', {{}})], ExecutorConfig(executor='ray', ray_address={gcs!r}), progress=False)\n"
        "assert r.status == 'done' and r.value != os.getpid(), r\n"
        "print('ok', r.value)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
    assert ray_cluster.is_initialized() and ray_cluster.cluster_resources()["CPU"] > 0  # still up
