"""The Ray backend of `singanseg.executors` (`executor: ray`), loaded only when it is chosen.

Connecting to a cluster (or starting a local one on 127.0.0.1), resolving its address from
`ray_address` or RAY_ADDRESS, failing within seconds at an unreachable address, and running
tasks as Ray remote functions that reserve `num_cpus_per_task` / `num_gpus_per_task`.
Importing this module does not import ray: `RayExecutor` does (Ray is an optional extra).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from singanseg.executors import Executor, ExecutorConfig, ExecutorError, describe_error

# The backend logs as it did inside singanseg.executors, so logging set up for it still applies.
log = logging.getLogger("singanseg.executors")

PROBE_TIMEOUT_S = 5.0  # an unreachable Ray address must fail within seconds (issue 8, "Bad input")
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def probe_ray_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail within `timeout` seconds unless a gRPC (HTTP/2) server answers at `address`.

    Why: `ray.init(address=...)` waits minutes for an absent GCS (measured: > 200 s for
    127.0.0.1:1 with Ray 2.60). Both the GCS and the Ray Client server speak gRPC, which
    answers the HTTP/2 client preface with a SETTINGS frame at once; anything else (nothing
    listening, another service) fails here, naming the address.
    """
    hostport = address.split("://", 1)[-1].rstrip("/")
    default_port = 10001 if address.startswith("ray://") else 6379
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ExecutorError(f"ray_address {address!r}: expected host:port or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            if os.environ.get("RAY_USE_TLS", "0") not in ("0", ""):
                return  # a TLS handshake comes first; the plain preface would not be answered
            s.settimeout(timeout)
            s.sendall(_HTTP2_PREFACE)
            head = s.recv(9)
    except OSError as e:
        raise ExecutorError(
            f"Ray cluster at {address!r} is unreachable ({e.strerror or e}); start one with "
            f"`ray start --head` or fix ray_address / RAY_ADDRESS"
        ) from None
    if len(head) < 9 or head[3] != 0x04:  # frame type 4 = SETTINGS
        raise ExecutorError(
            f"{address!r} answers but is not a Ray cluster (no gRPC server there); "
            f"fix ray_address / RAY_ADDRESS"
        )


def _import_ray(local: bool):
    if local and "ray" not in sys.modules:
        # A cluster we start for one machine listens on loopback only. On Linux Ray binds
        # its node to the machine's outward address even when told 127.0.0.1
        # (ray/_private/services.py::resolve_ip_for_localhost) unless this switch is off;
        # it is read when ray is imported, and inherited by Ray's own processes.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "executor: ray needs Ray, an optional extra: pip install '.[ray]' (from the repository) "
            "or pip install 'singanseg[ray]'; or use executor: local"
        ) from None
    return ray


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """Tasks as Ray remote functions reserving `num_cpus_per_task` / `num_gpus_per_task`.

    Connects to `ray_address`, else RAY_ADDRESS, else starts a local cluster on 127.0.0.1
    (shut down again on exit). A Ray connection already open in this process (a driver
    or a test that set Ray up itself) is used as it is and left open. Workers import the
    task function's module: on a remote cluster, singanseg must be installed there.
    """

    def __init__(self, config: ExecutorConfig):
        self.address = config.ray_address or os.environ.get("RAY_ADDRESS") or None
        local = self.address in (None, "local")
        ray = self._ray = _import_ray(local)
        self._owned = False
        if ray.is_initialized():
            log.info("executor: ray: using the Ray connection already open in this process")
        else:
            if not local and self.address != "auto":
                probe_ray_address(self.address)
            try:
                if local:
                    # Workers on this machine get this process's import path, as the spawn
                    # pool's do: a task function from any module the caller can import runs
                    # (Ray by default adds only the script's folder and the cwd).
                    path = os.pathsep.join(p for p in sys.path if p)
                    ray.init(
                        address="local",
                        include_dashboard=False,
                        _node_ip_address="127.0.0.1",
                        runtime_env={"env_vars": {"PYTHONPATH": path}},
                    )
                    self._warn_if_not_loopback()
                else:
                    ray.init(address=self.address)
            except ExecutorError:
                raise
            except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ...
                where = "a local Ray cluster" if local else f"the Ray cluster at {self.address!r}"
                raise ExecutorError(f"cannot start or reach {where}: {describe_error(e)}") from None
            self._owned = True
        self.threads = config.threads_per_job or max(1, math.ceil(config.num_cpus_per_task))
        self.max_in_flight = config.jobs
        self._check_fits(config)
        self._remote = ray.remote(_call).options(
            num_cpus=config.num_cpus_per_task, num_gpus=config.num_gpus_per_task
        )
        self._refs: list[Any] = []

    def _warn_if_not_loopback(self) -> None:
        outward = {n.get("NodeManagerAddress") for n in self._ray.nodes() if n.get("Alive")} - {
            "127.0.0.1"
        }
        if outward:
            log.warning(
                "executor: ray: the local cluster listens on %s, not only 127.0.0.1, because ray was "
                "imported before the executor; set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing "
                "ray to keep it on loopback",
                ", ".join(sorted(outward)),
            )

    def _check_fits(self, config: ExecutorConfig) -> None:
        """Refuse a task shape no node can run: Ray would queue it forever ("infeasible")."""
        cpus, gpus = config.num_cpus_per_task, config.num_gpus_per_task
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
            return
        offer = (
            "; ".join(f"{r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU" for r in nodes)
            or "no live nodes"
        )
        hint = (
            " num_gpus_per_task needs a node with a GPU: use num_gpus_per_task: 0 on a CPU-only cluster."
            if gpus > 0 and not any(r.get("GPU", 0) > 0 for r in nodes)
            else ""
        )
        where = (
            f"Ray cluster at {self.address!r}"
            if self.address not in (None, "local")
            else "the local Ray cluster"
        )
        self.shutdown()
        raise ExecutorError(
            f"{where}: no node can run a task needing num_cpus_per_task={cpus:g}, "
            f"num_gpus_per_task={gpus:g} (nodes offer: {offer}).{hint}"
        )

    def submit(self, fn, /, *args, **kwargs):
        ref = self._remote.remote(fn, *args, **kwargs)
        self._refs.append(ref)
        return ref.future()

    def shutdown(self) -> None:
        ray = self._ray
        refs = getattr(self, "_refs", [])
        if refs and ray.is_initialized():
            # Interrupted runs must not leave work queued on a shared cluster.
            _, unfinished = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in unfinished:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
        self._refs = []
        if self._owned and ray.is_initialized():
            ray.shutdown()
        self._owned = False


__all__ = ["PROBE_TIMEOUT_S", "RayExecutor", "probe_ray_address"]
