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


# --- train-many --executor ray --batch K on the same cluster (issue 16 s1) ---------------

TINY_SINGAN = dict(max_size=20, min_size=16, nfc=8, min_nfc=8, niter=2, lr_milestone=2)  # 2 scales


@pytest.fixture()
def pairs_dir(tmp_path):
    """a, b: one pyramid (a bucket); c_tall: another; d_broken: a mask of another size."""
    import numpy as np

    from singanseg.io import write_png

    rng = np.random.default_rng(0)
    for name, (h, w), mask_h in (("a", (32, 40), 32), ("b", (32, 40), 32), ("c_tall", (48, 40), 48),
                                 ("d_broken", (32, 40), 24)):  # fmt: skip
        write_png(tmp_path / "data" / "images" / f"{name}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        mask = np.zeros((mask_h, w), np.uint8)
        mask[mask_h // 4 : mask_h // 2, w // 5 : w // 2] = 255
        write_png(tmp_path / "data" / "masks" / f"{name}.png", mask)
    return tmp_path / "data"


def test_ray_batched_trains_resumes_and_skips_like_local(ray_cluster, pairs_dir, tmp_path):
    import json

    import torch

    from singanseg.api import load
    from singanseg.config import preset
    from singanseg.io import list_pairs
    from singanseg.saved_model import read_model_json
    from singanseg.train_many import train_many
    from singanseg.train_many_batched import train_batched

    cfg = preset("smoke", **TINY_SINGAN)
    local = train_many(pairs_dir, tmp_path / "local", cfg, seed=5, batch=2, progress=False)

    # a and b are cut after their first scale (a run killed mid-way), as one batch
    def stop(image_id, n, summary):
        raise RuntimeError("interrupted")

    cut = tmp_path / "ray"
    train_batched(list_pairs(pairs_dir)[:2], cut, cfg, seed=5, batch=2, on_scale=stop)
    assert read_model_json(cut / "a")["finished_scales"] == 1
    ex = ExecutorConfig(executor="ray", num_cpus_per_task=1, threads_per_job=torch.get_num_threads())
    ray_run = train_many(pairs_dir, cut, cfg, ex, seed=5, batch=2, progress=False)

    by_id = {r.task_id: r for r in ray_run.results}
    assert [r.task_id for r in ray_run.results] == ["a", "b", "c_tall", "d_broken"]
    assert [r.status for r in ray_run.results] == ["done", "done", "done", "failed"]
    assert "d_broken.png" in by_id["d_broken"].error and "InputError" in by_id["d_broken"].error
    assert by_id["a"].value["resumed"] and not by_id["c_tall"].value["resumed"]
    assert "3 trained (2 resumed), 0 skipped, 1 failed: d_broken" in ray_run.summary
    # the record has the local batched path's shape: same keys, same per-model values
    rec_local, rec_ray = (json.loads(r.record.read_text()) for r in (local, ray_run))
    assert rec_local.keys() == rec_ray.keys() and rec_ray["executor"]["executor"] == "ray"
    for a, b in zip(rec_local["results"], rec_ray["results"], strict=True):
        assert a.keys() == b.keys() and a["status"] == b["status"]
        if a["value"]:
            assert {**a["value"], "resumed": None} == {**b["value"], "resumed": None}
    # the same models as in-process batched training (resumed ones included)
    for i in ("a", "b", "c_tall"):
        ours, theirs = load(cut / i), load(tmp_path / "local" / i)
        assert ours.noise_amps == theirs.noise_amps
        for g1, g2 in zip(ours.Gs, theirs.Gs, strict=True):
            assert all(torch.equal(v, g2.state_dict()[k]) for k, v in g1.state_dict().items()), i

    again = train_many(pairs_dir, cut, cfg, ex, seed=5, batch=2, progress=False)
    assert [r.status for r in again.results] == ["skipped", "skipped", "skipped", "failed"]
    runs = json.loads(again.record.read_text())["runs"]
    assert [(r["trained"], r["resumed"], r["skipped"], r["failed"]) for r in runs] == [(3, 2, 0, 1), (0, 0, 3, 1)]


def test_ray_batched_command_line(ray_cluster, pairs_dir, tmp_path, capsys):
    from singanseg.cli import main
    from singanseg.saved_model import read_model_json

    out = tmp_path / "models"
    sets = [f"--set={k}={v}" for k, v in TINY_SINGAN.items()]
    argv = ["train-many", str(pairs_dir), "--out", str(out), "--executor", "ray", "--batch", "2",
            "--profile", "smoke", *sets, "--seed", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 1  # d_broken failed; the others trained
    line = capsys.readouterr().out
    assert "4 pairs: 3 trained (0 resumed), 0 skipped, 1 failed: d_broken" in line
    assert all(read_model_json(out / i)["complete"] for i in ("a", "b", "c_tall"))
    assert main(argv) == 1
    assert "0 trained (0 resumed), 3 skipped, 1 failed" in capsys.readouterr().out


def test_ray_batched_task_failure_fails_its_chunk_only(ray_cluster, pairs_dir, tmp_path):
    """A task that fails as a whole (here: no GPU on the worker) fails its own models, named."""
    import torch

    from singanseg.config import preset
    from singanseg.train_many import train_many

    if torch.cuda.is_available():
        pytest.skip("needs a worker without a GPU")
    ex = ExecutorConfig(executor="ray", num_cpus_per_task=1)
    result = train_many(pairs_dir, tmp_path / "m", preset("smoke", **TINY_SINGAN), ex, seed=1,
                        batch=2, device="cuda", progress=False)  # fmt: skip
    assert [r.status for r in result.results] == ["failed"] * 4
    a, d = result.results[0].error, result.results[3].error
    assert a.startswith("its task (2 models: a, b) failed: ConfigError: train-many: device") and "no CUDA" in a
    assert d.startswith("its task (1 models: d_broken) failed")  # a mask of another size: apart
