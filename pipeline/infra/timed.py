"""Run one DVC stage's command and record what it cost: `metrics/timings/<name>.json`.

    python -m pipeline.infra.timed <name> -- python -m pipeline.data ...

Why a wrapper: a stage's wall time is a fact of the run, not of its outputs, and neither DVC
nor every stage's MLflow run covers the whole process (some stages open their run after the
work, to tag it with the weights they resolved). The wrapper times the whole command, as the
user waits for it, and writes one small JSON beside the stage's outputs, which the report
turns into its cost table. It is NOT declared in dvc.yaml (not an out, not a dep of the
report): its hash would change dvc.lock on every run, and a fresh clone's `make demo` must
leave the committed dvc.lock as it is. So DVC neither caches nor restores it: it is the last
run's time of each stage, git-ignored (/metrics/*), and absent after a `dvc checkout`.

Record: name, command, exit code, wall seconds, start and end (UTC), and the machine (CPU
count and model, GPUs seen by the driver, torch thread settings from the environment).
The record is written also when the command fails (exit code kept), never half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from singanseg.io import write_text

TIMINGS = Path("metrics/timings")


def machine() -> dict:
    """What ran the command, without importing torch (its import alone costs seconds)."""
    gpus = []
    nv = Path("/proc/driver/nvidia/gpus")
    if nv.is_dir():
        for d in sorted(nv.iterdir()):
            info = (d / "information").read_text(errors="replace") if (d / "information").is_file() else ""
            model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("Model")), "?")
            gpus.append(model)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 0
    cpu_model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for ln in cpuinfo.read_text(errors="replace").splitlines():
            if ln.startswith("model name"):
                cpu_model = ln.split(":", 1)[1].strip()
                break
    return {
        "cores": cores,
        "cpu": cpu_model,
        "gpus": gpus,
        "device": "cuda" if gpus else "cpu",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def run(name: str, cmd: list[str], root: Path = TIMINGS) -> int:
    start = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    seconds = time.perf_counter() - t0
    record = {
        "name": name,
        "command": " ".join(cmd),
        "exit_code": rc,
        "seconds": round(seconds, 2),
        "start": start.isoformat(timespec="seconds"),
        "end": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    write_text(root / f"{name}.json", json.dumps(record, indent=2) + "\n")
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m pipeline.infra.timed NAME -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return run(argv[0], argv[2:])


if __name__ == "__main__":
    sys.exit(main())
