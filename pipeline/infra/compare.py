"""The experiments side by side, every headline number: `python -m pipeline.infra.compare` (`make compare`).

`dvc exp show` prints the brief headline set (pipeline/results/headline.py), one row per
experiment, so it fits a terminal; this prints the full headline JSONs the other way round, one
row per number and one column per experiment (the workspace, the baseline commit and its
experiments, as `dvc exp show` lists them), so any number of metrics stays readable (issue 27).
It lives in infra/, which dvc.yaml lists as no stage's dependency: changing it re-runs nothing.
First the params that differ, one line per experiment; then the numbers. Rows whose values are
equal in every column are left out (`--all` keeps them); columns that do not fit the terminal's
width go to a further block.

    python -m pipeline.infra.compare                      # every experiment of HEAD
    python -m pipeline.infra.compare samples3 samples5    # these (names or commits) only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

FULL = ("metrics/headline/quality.json", "metrics/headline/segment_A.json", "metrics/headline/segment_B.json")


class CompareError(RuntimeError):
    """One line: what failed."""


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise CompareError(f"{' '.join(cmd[:3])} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return r.stdout


def experiments(dvc: str) -> list[tuple[str, str | None]]:
    """(label, commit) as `dvc exp show` lists them: workspace (None), baseline, its experiments."""
    out = []
    for row in json.loads(_run([dvc, "exp", "show", "--json"])):
        rev = None if row["rev"] == "workspace" else row["rev"]
        out.append((row.get("name") or ("workspace" if rev is None else rev[:7]), rev))
        for exp in row.get("experiments") or []:
            for r in exp.get("revs", []):
                out.append((r.get("name") or r["rev"][:7], r["rev"]))
    return out


def _read(rev: str | None, path: str) -> str | None:
    if rev is None:
        return Path(path).read_text(encoding="utf-8") if Path(path).is_file() else None
    r = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def flatten(data, prefix: str = "") -> dict[str, object]:
    """Nested keys joined with `.`, as DVC names its columns."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, object] = {}
    for k, v in data.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def collect(columns: list[tuple[str, str | None]]) -> dict[str, list]:
    """{row: one value per column}: params.yaml's values, then every headline number."""
    rows: dict[str, list] = {}
    for i, (_, rev) in enumerate(columns):
        params = _read(rev, "params.yaml")
        values = {f"params: {k}": v for k, v in flatten(yaml.safe_load(params) if params else {}).items()}
        for path in FULL:
            text = _read(rev, path)
            values |= {k: v for k, v in flatten(json.loads(text) if text else {}).items()}
        for key, v in values.items():
            rows.setdefault(key, [None] * len(columns))[i] = v
    return rows


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v) if not isinstance(v, list) else ",".join(map(str, v))


def render(labels: list[str], rows: dict[str, list], width: int, keep_equal: bool = False) -> str:
    """The params that differ, one line per column; then the numbers in blocks of as many columns
    as fit `width`, each: the row name, then one value per column."""
    cells = {k: [_cell(v) for v in vs] for k, vs in rows.items()}
    differ = {k: vs for k, vs in cells.items() if len(set(vs)) > 1}
    params = {k.removeprefix("params: "): vs for k, vs in differ.items() if k.startswith("params: ")}
    shown = {k: vs for k, vs in (cells if keep_equal else differ).items() if not k.startswith("params: ")}
    out = []
    if params:
        lab_w = max(map(len, labels))
        out += [f"{lab.ljust(lab_w)}  " + " ".join(f"{k}={vs[i]}" for k, vs in params.items()) for i, lab in enumerate(labels)]
    if not shown:
        return "\n".join([*out, "no headline number differs between: " + ", ".join(labels)]) + "\n"
    name_w = max(len(k) for k in shown)
    widths = [max(len(lab), *(len(vs[i]) for vs in shown.values())) for i, lab in enumerate(labels)]
    blocks, start = [], 0
    while start < len(labels):
        end, used = start, name_w
        while end < len(labels) and (end == start or used + 2 + widths[end] <= width):
            used += 2 + widths[end]
            end += 1
        cols = range(start, end)
        lines = ["  ".join([" " * name_w, *(labels[i].rjust(widths[i]) for i in cols)]).rstrip()]
        lines += ["  ".join([k.ljust(name_w), *(vs[i].rjust(widths[i]) for i in cols)]).rstrip() for k, vs in shown.items()]
        blocks.append("\n".join(lines))
        start = end
    return "\n\n".join(["\n".join(out)] * bool(out) + blocks) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.infra.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="experiments (names or commits) to show; default: all of HEAD")
    ap.add_argument("--all", action="store_true", help="keep rows whose values are equal in every column")
    ap.add_argument("--width", type=int, default=None, help="terminal width (default: $COLUMNS or 120)")
    args = ap.parse_args(argv)
    width = args.width or int(os.environ.get("COLUMNS") or shutil.get_terminal_size((120, 24)).columns)
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc") or "dvc"
    try:
        columns = experiments(dvc)
        if args.names:
            picked = [c for c in columns if c[0] in args.names or (c[1] or "").startswith(tuple(args.names))]
            missing = [n for n in args.names if not any(n == c[0] or (c[1] or "").startswith(n) for c in picked)]
            if missing:
                raise CompareError(f"no experiment {', '.join(missing)} in `dvc exp show` (known: "
                                   f"{', '.join(c[0] for c in columns)})")  # fmt: skip
            columns = picked
        rows = collect(columns)
    except CompareError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(render([c[0] for c in columns], rows, width, keep_equal=args.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
