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

Reproducibility across CPUs (issue 26 item 10): every stage's command runs with
`MKL_CBWR=COMPATIBLE` (MKL's conditional numerical reproducibility) unless the caller set
MKL_CBWR. Measured at one thread on an AVX-512 Xeon (smoke train_singan@0, the first stage whose bytes
moved between CPUs): MKL's ISA dispatch is in the path (MKL_ENABLE_INSTRUCTIONS=AVX2 changes
the trained weights), torch's own dispatch and oneDNN's are not (ATEN_CPU_CAPABILITY=avx2 and
DNNL_MAX_CPU_ISA=AVX2 leave them bit-identical); under MKL_CBWR=COMPATIBLE the weights are the
same with MKL at AVX-512 or capped at AVX2. Intel documents COMPATIBLE as the same results on
every Intel and Intel-compatible x86 CPU with SSE2, at some speed; measured here about 1.07x
the stage's wall time (3 interleaved pairs, benchmarks/README.md). Set MKL_CBWR=AUTO to turn it
off (MKL's fastest path per CPU, bytes then depend on the CPU). At the stages' own two threads
it is not enough (measured 2026-12-04, benchmarks/README.md): the committed run of a 2-core Xeon
was not reproduced on a 2-core AMD EPYC from train_singan@0 and train_baselines on (MKL's
threaded SGEMM and oneDNN's per-CPU convolution kernels), although at one thread train_singan's
weights were the same on both. It is kept: it removes MKL's ISA dispatch, and costs little.
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
# set for every stage's process unless the caller chose otherwise (see the module docstring)
REPRODUCIBLE_ENV = {"MKL_CBWR": "COMPATIBLE"}


def stage_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a stage runs in: the caller's, plus REPRODUCIBLE_ENV where unset."""
    env = dict(os.environ if environ is None else environ)
    for k, v in REPRODUCIBLE_ENV.items():
        env.setdefault(k, v)
    return env


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
        "MKL_CBWR": stage_env().get("MKL_CBWR"),
    }


def run(name: str, cmd: list[str], root: Path = TIMINGS) -> int:
    start = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, env=stage_env())
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
