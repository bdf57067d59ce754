"""The pipeline's stages (`python -m pipeline.<stage>`).

The interpreter guard below runs before any stage imports its dependencies (issue 27). DVC
runs each stage's `python3 -m ...` through the shell (python3: a fresh Debian shell has no `python`), so in a shell where the suite's venv is
not activated `python3` is the system's, which lacks torch, natsort, ... Then:
- under DVC (a `dvc` process above us), the stage re-runs itself with the interpreter that
  runs `dvc` (`.venv/bin/dvc ...` -> `.venv/bin/python`), with that interpreter's bin folder
  first on PATH so the stage's own subprocesses use it too;
- else (or when that one lacks them too), with the repository's `.venv/bin/python`;
- else it stops in one line saying how to run it (exit 2).
Only the standard library is used here.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# one module of the suite's dependencies each stage imports first (singanseg.io needs natsort)
_NEEDED = ("natsort", "numpy", "yaml")
_GUARD = "SINGANSEG_INTERPRETER_GUARD"  # set on the re-run: never loop


def _missing() -> list[str]:
    return [m for m in _NEEDED if importlib.util.find_spec(m) is None]


def _dvc_python() -> str | None:
    """The interpreter of the nearest `dvc` process above this one (Linux /proc), if any.

    As it was started (`argv[0]`: for `.venv/bin/dvc`, the venv python of its shebang), not
    /proc/<pid>/exe: a venv's python is a symlink to the base interpreter, which /proc resolves,
    and the base interpreter lacks the venv's packages."""
    pid = os.getppid()
    for _ in range(8):
        proc = Path(f"/proc/{pid}")
        try:
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")]
            exe = os.readlink(proc / "exe")
            stat = (proc / "stat").read_text()
        except OSError:
            return None
        words = [Path(a).name for a in argv[:2]]
        if "dvc" in words and "python" in Path(exe).name:
            first = argv[0]
            if os.sep in first and "python" in Path(first).name:
                try:  # a relative argv[0] is relative to that process's working directory
                    return os.path.join(os.readlink(proc / "cwd"), first)
                except OSError:
                    pass
            return exe
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent's pid
        if pid <= 1:
            return None
    return None


def _candidates() -> list[str]:
    out = []
    if (exe := _dvc_python()) is not None:
        out.append(exe)
    venv = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    if venv.exists():
        out.append(str(venv))
    # not realpath: a venv's python links to the base interpreter; the venv is its folder
    return [c for c in out if os.path.abspath(c) != os.path.abspath(sys.executable)]


def _has_deps(python: str) -> bool:
    """Whether `python` imports the dependencies (e.g. a pipx `dvc`'s own python does not)."""
    import subprocess

    code = f"import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in {_NEEDED!r}))"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _guard() -> None:
    missing = _missing()
    if not missing:
        return
    if not os.environ.get(_GUARD):
        for python in (c for c in _candidates() if _has_deps(c)):
            env = dict(os.environ, **{_GUARD: "1"})
            # the stage's children (`python -m ...` inside pipeline.infra.timed) find the same one.
            # abspath, not realpath: a venv's python is a link, and its bin/ is what counts
            env["PATH"] = os.path.dirname(os.path.abspath(python)) + os.pathsep + env.get("PATH", "")
            orig = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
            os.execve(python, [python, *orig[1:]], env)
    orig = getattr(sys, "orig_argv", None) or []
    module = orig[orig.index("-m") + 1] if "-m" in orig[:-1] else "pipeline.<stage>"
    print(f"pipeline: error: {sys.executable} lacks the suite's dependencies ({', '.join(missing)}); "
          f"run with the venv: `make exp S=\"...\"`, `.venv/bin/dvc ...` or `.venv/bin/python -m {module}` "
          "(make venv creates it)", file=sys.stderr)
    raise SystemExit(2)


_guard()
