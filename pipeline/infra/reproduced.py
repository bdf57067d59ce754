"""Did this `make demo` reproduce the committed run? The demo's last line (issue 26 item 10).

    python -m pipeline.infra.reproduced [--lock dvc.lock] [--rev HEAD]

Compares the dvc.lock that `dvc repro` just wrote with the one committed at `--rev`: every
stage's outputs (their hashes), in the lock's order (dvc.yaml's, which runs a stage after
the ones it depends on). The first stage whose outputs differ is where the runs parted:

- its inputs (code, params, upstream outputs) are the committed ones too: the same
  computation gave other bytes, which is what another CPU's floating-point kernels do
  (MKL / oneDNN pick code paths by CPU; the README on fresh clones);
- its inputs differ: code or params changed since that commit (or an earlier stage's
  outputs did, which the line names).

Every later stage then differs as a consequence. The line also counts the tracked result
files (`git status` of dvc.lock, reports/, metrics/) that the run changed. Always exits 0:
a run that did not reproduce the committed bytes is still a valid run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TRACKED_RESULTS = ("dvc.lock", "reports", "metrics")


def _hashes(entries: list[dict[str, Any]] | None) -> dict[str, str]:
    """{path: hash} of a stage's deps or outs (md5, or whichever hash DVC recorded)."""
    out = {}
    for e in entries or []:
        key = e.get("hash", "md5")
        out[e["path"]] = str(e.get(key) or e.get("md5") or e.get("etag") or e.get("checksum"))
    return out


def _stages(lock: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return dict((lock or {}).get("stages") or {})


def first_difference(current: dict[str, Any], committed: dict[str, Any]) -> str | None:
    """None where every committed stage's outputs are reproduced; else why and where not."""
    now, then = _stages(current), _stages(committed)
    for name, old in then.items():
        new = now.get(name)
        if new is None:
            return f"stage {name} did not run (it is not in dvc.lock)"
        old_outs, new_outs = _hashes(old.get("outs")), _hashes(new.get("outs"))
        if old_outs == new_outs:
            continue
        changed = sorted(p for p in set(old_outs) | set(new_outs) if old_outs.get(p) != new_outs.get(p))
        deps_old, deps_new = _hashes(old.get("deps")), _hashes(new.get("deps"))
        dep_changes = sorted(p for p in set(deps_old) | set(deps_new) if deps_old.get(p) != deps_new.get(p))
        params_changed = old.get("params") != new.get("params")
        what = f"stage {name} first differed (output {changed[0]}" + (f" and {len(changed) - 1} more" if len(changed) > 1 else "") + ")"
        if not dep_changes and not params_changed and old.get("cmd") == new.get("cmd"):
            return (f"{what}: same code, params and inputs as the committed run, so this CPU's floating-point "
                    "kernels computed other bytes (another CPU family can; see the README on fresh clones); every "
                    "later stage differs in consequence")  # fmt: skip
        because = [f"dependency {dep_changes[0]}" + (f" and {len(dep_changes) - 1} more" if len(dep_changes) > 1 else "")] if dep_changes else []
        if params_changed:
            because.append("its params")
        if old.get("cmd") != new.get("cmd"):
            because.append("its command")
        return f"{what}: its inputs differ from the committed run's ({', '.join(because)} changed since that commit)"
    return None


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def verdict(lock: Path, rev: str = "HEAD") -> str:
    """The demo's last line."""
    root = lock.resolve().parent
    shown = _git(["show", f"{rev}:./{lock.name}"], root)
    if shown.returncode != 0:
        return f"demo: finished; no committed {lock.name} at {rev} to compare with, so reproduction is not checked"
    try:
        committed = yaml.safe_load(shown.stdout) or {}
        current = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        return f"demo: finished; {lock} could not be compared with {rev}'s ({e})"
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", *TRACKED_RESULTS], root)
    dirty = [ln for ln in status.stdout.splitlines() if ln.strip()] if status.returncode == 0 else []
    diff = first_difference(current, committed)
    commit = _git(["rev-parse", "--short", rev], root).stdout.strip() or rev
    if diff is None:
        extra = f"; {len(dirty)} tracked result file(s) differ (git status)" if dirty else ", byte for byte"
        return f"demo: reproduced the committed run of {commit}: every stage's outputs match dvc.lock{extra}"
    return (f"demo: did NOT reproduce the committed run of {commit}: {diff}; {len(dirty)} tracked result "
            f"file(s) changed (`git diff --stat` lists them; `git checkout -- dvc.lock reports metrics` puts the committed ones back)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.infra.reproduced", description=__doc__.split("\n\n")[0])
    ap.add_argument("--lock", type=Path, default=Path("dvc.lock"))
    ap.add_argument("--rev", default="HEAD")
    args = ap.parse_args(argv)
    print(verdict(args.lock, args.rev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
