"""Issue 26 items 4 and 5: a half-alive MLflow server and broken local stores fail in one
line naming the URI or file (and the fix), within seconds, with nothing touched."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.infra import mlflow_tracker as mt

REPO = Path(__file__).resolve().parents[1]


class _HalfAlive(http.server.BaseHTTPRequestHandler):
    """Answers /health; the API hangs (mode "hang") or answers 500 (mode "500")."""

    mode = "hang"

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.startswith("/health"):
            self._send(200, b"OK")
        elif self.server.mode == "hang":
            self.server.stop.wait(120)
        else:
            self._send(500, b'{"error_code": "INTERNAL_ERROR", "message": "database is locked"}')

    do_POST = do_GET  # noqa: N815

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(params=["hang", "500"])
def half_alive(request):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HalfAlive)
    server.daemon_threads = True
    server.mode, server.stop = request.param, threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    server.stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch):
    for name in ("_reachable", "_checked_local"):
        monkeypatch.setattr(mt, name, set())
    for key in mt.HTTP_BOUNDS:
        monkeypatch.delenv(key, raising=False)


def test_health_but_no_api_is_one_line_naming_the_uri(half_alive):
    uri, mode = half_alive
    t0 = time.monotonic()
    with pytest.raises(mt.TrackingStoreError) as e:
        mt.check_reachable(uri, timeout=1.0)
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert msg.startswith(f"MLFLOW_TRACKING_URI={uri}: the server answers /health but its API")
    assert ("did not answer within 1 s" if mode == "hang" else "HTTP 500") in msg, msg
    assert "\n" not in msg and "track: false" in msg


def test_a_tracked_stage_against_a_half_alive_server_is_one_line_within_20_s(half_alive, tmp_path):
    uri, _ = half_alive
    (tmp_path / "params.yaml").write_text("profile: paper\ndata:\n  source: phantom\n  phantom: {count: 2}\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.data", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0] and "answers /health" in lines[0], lines
    assert not (tmp_path / "d" / "real").exists()


def test_every_mlflow_call_is_bounded_after_the_check(half_alive, monkeypatch):
    """The check passed (the server went half-alive later): MLflow's own client is bounded by
    HTTP_BOUNDS (a 500 is retried once, not 7 times over 252 s) and fails in one line."""
    uri, mode = half_alive
    if mode == "hang":
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")  # the default 10 s x 2 tries, shortened
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mt._reachable.add(uri)
    t0 = time.monotonic()
    with pytest.raises(mt.TrackingStoreError) as e:
        mt.ensure_experiment()
    assert time.monotonic() - t0 < 15
    msg = str(e.value)
    assert msg.startswith(f"MLFLOW_TRACKING_URI={uri}: looking up experiment 'singanseg' failed") and "\n" not in msg
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


# --- item 5: local stores ---------------------------------------------------------------


def _make_store(path: Path) -> bytes:
    """A real MLflow store at `path` (schema and one experiment)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{path}", "PYTHONPATH": str(REPO)}
    code = "from pipeline.infra.mlflow_tracker import ensure_experiment; ensure_experiment()"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300, capture_output=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def store_bytes(tmp_path_factory) -> bytes:
    return _make_store(tmp_path_factory.mktemp("store") / "mlflow.db")


def _stage(tmp_path: Path, uri: str) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text("profile: paper\ndata:\n  source: phantom\n  phantom: {count: 2}\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.data", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("damage", ["garbled", "truncated"])
def test_a_corrupt_store_is_one_line_naming_the_file_and_left_as_it_was(damage, store_bytes, tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"not a database, just text\n" * 200 if damage == "garbled" else store_bytes[: len(store_bytes) // 3])
    before = db.read_bytes()
    t0 = time.monotonic()
    proc = _stage(tmp_path, f"sqlite:///{db}")
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{db}: the MLflow store is corrupted" in lines[0] and f"mv {db} {db}.corrupt" in lines[0], lines
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "params.yaml"]


@pytest.fixture()
def read_only_dir(tmp_path):
    """A folder nobody can write to: chmod for a normal user; root ignores permission bits,
    so for root a read-only tmpfs mount (skipped where mounting is not allowed)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    seed = tmp_path / "seed"
    seed.mkdir()

    def finish(populate=None):
        if populate:
            populate(seed)
        if os.geteuid() != 0:
            for p in seed.iterdir():
                shutil.copy2(p, ro / p.name)
                (ro / p.name).chmod(0o444)
            ro.chmod(0o555)
            return ro
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(ro)], capture_output=True).returncode:
            pytest.skip("running as root and cannot mount a read-only tmpfs to test a read-only store")
        for p in seed.iterdir():
            shutil.copy2(p, ro / p.name)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True, capture_output=True)
        return ro

    yield finish
    if os.geteuid() == 0:
        subprocess.run(["umount", str(ro)], capture_output=True)
    else:
        ro.chmod(0o755)


def test_a_read_only_store_is_one_line(read_only_dir, store_bytes, tmp_path):
    ro = read_only_dir(lambda d: (d / "mlflow.db").write_bytes(store_bytes))
    proc = _stage(tmp_path, f"sqlite:///{ro / 'mlflow.db'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{ro / 'mlflow.db'}: the MLflow store cannot be written" in lines[0], lines
    assert (ro / "mlflow.db").read_bytes() == store_bytes


def test_a_new_store_in_a_read_only_folder_is_one_line_within_seconds(read_only_dir, tmp_path):
    ro = read_only_dir()
    t0 = time.monotonic()
    proc = _stage(tmp_path, f"sqlite:///{ro / 'mlflow.db'}")
    assert time.monotonic() - t0 < 60  # was 109 s of retries
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{ro}: cannot create the MLflow store mlflow.db" in lines[0], lines
    assert list(ro.iterdir()) == []


@contextlib.contextmanager
def _locked_by_another_process(db: Path, how: str):
    """Another process holding `BEGIN <how>` on db until the block ends (EXCLUSIVE blocks
    even reads, so quick_check waits; IMMEDIATE lets reads through and blocks the write probe)."""
    code = (
        "import sqlite3, sys, time\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        f"con.execute('BEGIN {how}')\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("how", ["EXCLUSIVE", "IMMEDIATE"])
def test_a_store_locked_by_another_process_is_one_line(how, store_bytes, tmp_path):
    """It was sqlite's own `database is locked` traceback after 30 s. The bound is
    mlflow_tracker.LOCK_WAIT_S, set to 2 s here through the stage's real entry point."""
    db = tmp_path / "mlflow.db"
    db.write_bytes(store_bytes)
    (tmp_path / "params.yaml").write_text("profile: paper\ndata:\n  source: phantom\n  phantom: {count: 2}\n")
    run_stage = (
        "import runpy, sys\nfrom pipeline.infra import mlflow_tracker as mt\nmt.LOCK_WAIT_S = 2\n"
        "sys.argv = ['pipeline.data', '--params', 'params.yaml', '--out', 'd']\n"
        "runpy.run_module('pipeline.data', run_name='__main__', alter_sys=True)\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "PYTHONPATH": str(REPO)}
    with _locked_by_another_process(db, how):
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", run_stage], capture_output=True, text=True, env=env,
                              timeout=300, cwd=tmp_path)  # fmt: skip
        took = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"{db}: the MLflow store is still locked after 2 s: another process holds the lock" in lines[0]
    assert "wait for it to finish or stop it" in lines[0]
    assert took < 2 + 30, took  # the bound, plus the stage's start (imports) on a loaded machine
    assert db.read_bytes() == store_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "params.yaml"]


def test_the_lock_bound_is_a_parameter(store_bytes, tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(store_bytes)
    with _locked_by_another_process(db, "EXCLUSIVE"):
        t0 = time.monotonic()
        with pytest.raises(mt.TrackingStoreError, match=r"still locked after 1 s: another process holds the lock"):
            mt.check_local_store(f"sqlite:///{db}", lock_wait=1)
        assert time.monotonic() - t0 < 10
    mt.check_local_store(f"sqlite:///{db}", lock_wait=1)  # released: it passes (a failed check is not cached)
    assert db.read_bytes() == store_bytes


def test_a_plain_path_is_one_line(tmp_path):
    with pytest.raises(mt.TrackingStoreError, match=r"MLFLOW_TRACKING_URI=.*mlruns: a folder path selects MLflow's file store.*sqlite:///"):
        mt.check_local_store(str(tmp_path / "mlruns"))
    assert not (tmp_path / "mlruns").exists()


def test_a_good_store_passes_the_write_probe_unchanged(store_bytes, tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(store_bytes)
    mt.check_local_store(f"sqlite:///{db}")
    assert db.read_bytes() == store_bytes
    con = sqlite3.connect(db)
    assert "_singanseg_write_probe" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
