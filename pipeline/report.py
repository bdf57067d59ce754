"""DVC stage `report`: the paper's tables and figures, regenerated from `metrics/` and `synthetic/`.

    python -m pipeline.report [--params params.yaml] [--out reports]

Writes `reports/tables/*.{csv,tex}`, `reports/figures/*.png` and `reports/README.md` (the
index: every table in Markdown, every figure embedded, and a header that states the profile,
data, weights provenance and commit, so that a smoke run is never mistaken for the paper's
numbers). Nothing is computed from memory: a table whose inputs are absent is listed as
missing, with the stage that would make it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import figures
from pipeline.params import active_profile, load_section
from pipeline.report_quality import quality_tables
from pipeline.tables import Table, to_markdown, write_table
from pipeline.tracking import git_commit, stage_run
from singanseg.errors import UserError
from singanseg.io import InputError, list_pairs, read_image, read_mask, write_text

SCORES = ("iou", "f1", "precision", "recall", "accuracy")
SCORE_LABELS = {"iou": "IoU", "f1": "F1 (Dice)", "precision": "Precision", "recall": "Recall", "accuracy": "Accuracy"}


@dataclass(frozen=True)
class ReportParams:
    metrics: str = "metrics"
    synthetic: str = "synthetic"
    real: str = "data/real"
    averaging: str = "per_image"  # the paper's (smp.utils ValidEpoch) averaging; `micro` also in the CSVs
    sample_models: int = 3  # real images shown in the sample grids (paper Fig 4, 7)
    samples_per_model: int = 5
    digits: int = 3
    track: bool = True


# ------------------------------------------------------------------ segmentation


def load_segmentation(root: Path) -> pd.DataFrame:
    """One row per (grid, experiment, fold, protocol, averaging, score) from metrics/segmentation."""
    rows = []
    for path in sorted(root.glob("*/*/fold*.json")) + sorted(root.glob("*/*/*/fold*.json")):
        rec = json.loads(path.read_text())
        if "protocols" not in rec:
            continue
        for protocol, r in rec["protocols"].items():
            for averaging, scores in r["test"].items():
                for score, value in scores.items():
                    rows.append({
                        "grid": rec["grid"], "experiment": rec["experiment"], "fold": rec["fold"],
                        "protocol": protocol, "averaging": averaging, "score": score, "value": value,
                        "train_size": r["train_size"], "best_epoch": r["best_epoch"],
                        "encoder_weights": rec["provenance"]["encoder_weights"],
                    })  # fmt: skip
    cols = ["grid", "experiment", "fold", "protocol", "averaging", "score", "value", "train_size", "best_epoch", "encoder_weights"]
    return pd.DataFrame(rows, columns=cols)


def _order(experiments) -> list[str]:
    """Experiments in the order the paper discusses them (REAL, FAKE_k, ST variants, REAL+...)."""

    def key(name: str):
        short = name.split("/", 1)[-1]
        return (short != "REAL", short.startswith("REAL+"), "ST" in short, short.replace("REAL+", ""))

    return sorted(set(experiments), key=key)


def grid_a_table(df: pd.DataFrame, protocol: str, averaging: str, caption: str, digits: int) -> Table | None:
    sub = df[(df.grid == "A") & (df.protocol == protocol) & (df.averaging == averaging)]
    if sub.empty:
        return None
    stats = sub.groupby(["experiment", "score"])["value"].agg(["mean", "std", "count"])
    order = _order(sub.experiment)
    mean = stats["mean"].unstack()[list(SCORES)].reindex(order)
    std = stats["std"].unstack()[list(SCORES)].reindex(order)
    folds = stats["count"].unstack()["iou"].reindex(order)
    mean.columns = std.columns = [SCORE_LABELS[s] for s in SCORES]
    mean.insert(0, "folds", folds.astype(int))
    mean.index = [e.split("/", 1)[1] for e in mean.index]
    std.index = mean.index
    mean.index.name = "experiment"
    return Table(
        f"grid_a_{protocol}", f"Grid A (data-rich, 3-fold), {protocol} protocol: UNet++ test scores, mean ± std over folds",
        mean, std, {SCORE_LABELS[s]: "max" for s in SCORES}, caption, digits,
        notes=[_protocol_note(protocol)],
    )  # fmt: skip


def _protocol_note(protocol: str) -> str:
    if protocol == "paper":
        return "Paper protocol: model selection on the test fold, as the authors' code did; scores are optimistic."
    return "Clean protocol: model selection on a validation split of the training folds; the test fold is used once."


def grid_b_table(df: pd.DataFrame, protocol: str, averaging: str, caption: str, digits: int) -> Table | None:
    sub = df[(df.grid == "B") & (df.protocol == protocol) & (df.averaging == averaging) & (df.score == "iou")]
    if sub.empty:
        return None
    parsed = sub.experiment.str.extract(r"^B/(?P<kind>.+)_N(?P<n>\d+)$")
    sub = sub.assign(kind=parsed["kind"], n=parsed["n"].astype(int))
    mean = sub.pivot_table(index="n", columns="kind", values="value", aggfunc="mean")
    kinds = [k for k in ("REAL", "FAKE", "REAL+FAKE", "FASTGAN", "REAL+FASTGAN") if k in mean.columns]
    mean = mean[kinds + [k for k in mean.columns if k not in kinds]]
    mean.index.name = "N real images"
    mean.index = mean.index.astype(str)
    t = Table(
        f"grid_b_{protocol}", f"Grid B (data-scarce), {protocol} protocol: UNet++ test IoU vs the number N of real images",
        mean, None, {}, caption, digits, notes=[_protocol_note(protocol),
        "FAKE: segment.grid_b.samples_per_image SinGAN-Seg samples per real image (the paper: 10, style "
        "transfer 1:1000) from the same N models; the REAL+FAKE and FASTGAN columns are our additions."],
    )  # fmt: skip
    # best per row (which training set wins at each N) rather than per column
    t.better = {}
    return t


def grid_b_figure(df: pd.DataFrame, averaging: str, path: Path) -> Path | None:
    sub = df[(df.grid == "B") & (df.averaging == averaging) & (df.score == "iou")]
    if sub.empty:
        return None
    parsed = sub.experiment.str.extract(r"^B/(?P<kind>.+)_N(?P<n>\d+)$")
    plot = sub.assign(kind=parsed["kind"], N=parsed["n"].astype(int)).rename(columns={"value": "test IoU"})
    return figures.lines(plot, "N", "test IoU", "kind", path, style="protocol", title="Grid B: data-scarce training")


def learning_curves(root: Path, path: Path) -> Path | None:
    frames = []
    for csv in sorted(root.glob("A/*/fold*_curves/*.csv")):
        df = pd.read_csv(csv)
        if df.empty or "val_per_image_iou" not in df:
            continue
        frames.append(df.assign(experiment=csv.parent.parent.name, protocol=csv.stem, fold=csv.parent.name))
    if not frames:
        return None
    df = pd.concat(frames)
    df = df[df.protocol == "paper"] if (df.protocol == "paper").any() else df
    return figures.lines(df, "epoch", "val_per_image_iou", "experiment", path,
                         title="Grid A learning curves (validation IoU, mean ± sd over folds)")  # fmt: skip


# ------------------------------------------------------------------ samples


def _pairs_of(folder: Path, prefix: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    try:
        pairs = [p for p in list_pairs(folder) if p.id.startswith(prefix)]
    except InputError:
        return out
    for p in pairs[:n]:
        out.append((read_image(p.image), read_mask(p.mask)[0]))
    return out


def sample_grids(params: ReportParams, out: Path) -> list[Path]:
    """Paper Fig 4/7: a real pair, then its synthetic pairs (per gen_start_scale, with/without ST)."""
    real = Path(params.real)
    syn = Path(params.synthetic)
    try:
        ids = [p.id for p in list_pairs(real)][: params.sample_models]
    except InputError:
        return []
    variants = sorted(p for p in syn.glob("singan*/gss*") if (p / "images").is_dir())
    written = []
    for i in ids:
        rows = [("real", _pairs_of(real, i, 1))]
        for v in variants:
            pairs = _pairs_of(v, f"{i}_", params.samples_per_model)
            if pairs:
                rows.append((f"{v.parent.name}/{v.name}", pairs))
        if len(rows) > 1:
            written.append(figures.sample_grid(rows, out / f"samples_{i}.png"))
    gans = sorted(p for p in syn.glob("*/n*") if (p / "images").is_dir() and not p.parent.name.startswith("singan"))
    if gans:
        rows = [(f"{g.parent.name}/{g.name}", _pairs_of(g, "", params.samples_per_model)) for g in gans]
        written.append(figures.sample_grid([r for r in rows if r[1]], out / "samples_baselines.png"))
    return written


# ------------------------------------------------------------------ index


def header(profile: str, commit: str, provenance: dict[str, set[str]], data_source: str) -> str:
    lines = [
        "# singanseg results",
        "",
        f"- **Profile: `{profile}`**" + (
            " — a smoke run on generated phantom data with tiny networks and iteration counts. "
            "These numbers test the pipeline; they are **not** the paper's results." if profile == "smoke" else ""
        ),
        f"- Data: `{data_source}`",
        f"- Commit: `{commit}`",
        "- Weights behind the numbers: "
        + ("; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(provenance.items())) or "none recorded"),
    ]  # fmt: skip
    if any("random" in w for ws in provenance.values() for w in ws):
        lines.append(
            "- **Some numbers come from randomly initialised networks** (no pretrained weights were "
            "available): they are plumbing checks, not comparable with published values."
        )
    return "\n".join(lines) + "\n"


def build(params: ReportParams, out: Path, profile: str, data_source: str) -> dict[str, Any]:
    metrics = Path(params.metrics)
    commit = git_commit()
    caption = f"Profile {profile}; data {data_source}; commit {commit[:12]}"
    provenance: dict[str, set[str]] = {}
    tables: list[Table] = []
    missing: list[str] = []

    q_tables, q_figures, q_prov, q_missing = quality_tables(metrics / "quality", out / "figures", caption, params.digits)
    tables += q_tables
    missing += q_missing
    for k, v in q_prov.items():
        provenance.setdefault(k, set()).update(v)

    seg = load_segmentation(metrics / "segmentation")
    if not seg.empty:
        provenance.setdefault("UNet++ encoder", set()).update(seg.encoder_weights.unique())
    for maker, label in ((grid_a_table, "grid A"), (grid_b_table, "grid B")):
        for protocol in ("paper", "clean"):
            t = maker(seg, protocol, params.averaging, caption, params.digits) if not seg.empty else None
            if t is None:
                missing.append(f"{label}, {protocol} protocol (stage `segment`)")
            else:
                tables.append(t)
    figs = list(q_figures)
    if not seg.empty:
        for maker, name in ((lambda p: grid_b_figure(seg, params.averaging, p), "grid_b.png"),
                            (lambda p: learning_curves(metrics / "segmentation", p), "learning_curves.png")):  # fmt: skip
            path = maker(out / "figures" / name)
            if path is not None:
                figs.append(path)
    figs += sample_grids(params, out / "figures")

    for t in tables:
        write_table(t, out / "tables")
    parts = [header(profile, commit, provenance, data_source), "## Tables", ""]
    for t in tables:
        parts += [f"### {t.title}", "", f"[CSV](tables/{t.name}.csv) · [LaTeX](tables/{t.name}.tex)", "", to_markdown(t), ""]
    if missing:
        parts += ["### Not available", "", *[f"- {m}" for m in missing], ""]
    parts += ["## Figures", ""]
    for f in figs:
        rel = f.relative_to(out)
        parts += [f"### {f.stem.replace('_', ' ')}", "", f"![{f.stem}]({rel.as_posix()})", ""]
    write_text(out / "README.md", "\n".join(parts))
    return {"tables": len(tables), "figures": len(figs), "missing": missing}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="reports")
    args = ap.parse_args(argv)
    try:
        params = load_section("report", ReportParams, args.params)
        profile = active_profile(args.params)
        from pipeline.data import DataParams

        data = load_section("data", DataParams, args.params)
        source = data.source if data.source != "folder" else f"folder {data.folder}"
        with stage_run("report", params, enabled=params.track) as run:
            summary = build(params, Path(args.out), profile, source)
            if run is not None:
                import mlflow

                mlflow.log_artifact(str(Path(args.out) / "README.md"))
                for t in sorted((Path(args.out) / "tables").glob("*.csv")):
                    mlflow.log_artifact(str(t), "tables")
    except UserError as e:  # the user's to fix (singanseg.errors); a bug keeps its traceback
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {summary['tables']} tables, {summary['figures']} figures -> {args.out}/README.md"
          + (f"; not available: {len(summary['missing'])}" if summary["missing"] else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
