"""DVC stage `report`: the paper's tables and figures, regenerated from `metrics/` and `synthetic/`.

    python -m pipeline.report [--params params.yaml] [--out reports]

Writes `reports/tables/*.{csv,tex}`, `reports/figures/*.png` and `reports/README.md` (the
index: every table in Markdown, every figure embedded, and a header that states the profile,
data, weights provenance and commit, so that a smoke run is never mistaken for the paper's
numbers). Nothing is computed from memory: a table whose inputs are absent is listed as
missing, with the stage that would make it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.infra.mlflow_tracker import git_commit, log_report_artifacts, stage_run
from pipeline.infra.params import active_profile, load_section, overrides_vs_head
from pipeline.report import plots as figures
from pipeline.report.claims import BOOT, claims_frame, load_per_image
from pipeline.report.config import ReportParams
from pipeline.report.costs import cost_table
from pipeline.report.figures import figure_caption, grid_b_figure, learning_curves, predictions_figure, sample_grids
from pipeline.report.index import write_index
from pipeline.report.quality_tables import quality_tables, style_network, style_summary
from pipeline.report.tables import Table, fill_caption_weights, to_csv, to_markdown, write_table
from pipeline.results.names import display_name, experiment_order
from pipeline.segment.results import MAIN_TEST, PER_IMAGE_COLUMNS, SCORES, load_segmentation
from pipeline.stage import Stage
from singanseg.errors import UserError
from singanseg.io import list_pairs, write_text

SCORE_LABELS = {"iou": "IoU", "f1": "F1 (Dice)", "precision": "Precision", "recall": "Recall", "accuracy": "Accuracy"}


# ------------------------------------------------------------------ segmentation


def grid_a_table(df: pd.DataFrame, protocol: str, averaging: str, caption: str, digits: int) -> Table | None:
    sub = df[(df.grid == "A") & (df.protocol == protocol) & (df.averaging == averaging)]
    if sub.empty:
        return None
    # mean and sd over every (fold, seed) run of the cell (issue 22 s3)
    stats = sub.groupby(["experiment", "score"])["value"].agg(["mean", "std"])
    order = experiment_order(sub.experiment)
    mean = stats["mean"].unstack()[list(SCORES)].reindex(order)
    std = stats["std"].unstack()[list(SCORES)].reindex(order)
    mean.columns = std.columns = [SCORE_LABELS[s] for s in SCORES]
    runs = sub.groupby("experiment")
    mean.insert(0, "seeds", runs["seed"].nunique().reindex(order).astype(int))
    mean.insert(0, "folds", runs["fold"].nunique().reindex(order).astype(int))
    mean["network weights"] = [row_weights(sub[sub.experiment == e]) for e in mean.index]
    mean.index = [e.split("/", 1)[1] for e in mean.index]
    std.index = mean.index
    mean.index.name = "experiment"
    return Table(
        f"grid_a_{protocol}", f"Grid A (data-rich, 3-fold), {protocol} protocol: UNet++ test scores, mean ± std over "
        "folds and seeds",
        mean, std, {SCORE_LABELS[s]: "max" for s in SCORES}, caption, digits,
        notes=[_protocol_note(protocol), TRIVIAL_NOTE.format(rows="rows")],
        reference_rows={i for i in mean.index if i.startswith("TRIVIAL")},
        labels={e: display_name(e) for e in mean.index},
    )  # fmt: skip


TRIVIAL_NOTE = ("The trivial {rows} (pipeline/segment/trivial.py; TRIVIAL_* in the CSV) are scored by the same code: "
                "'predicts no polyp' marks every pixel background, 'mean training mask' predicts the mean training "
                "mask thresholded at 0.5, 'tuned level' thresholds it where the training masks score best; they "
                "show what a score is worth and never take the bold.")


def row_weights(rows: pd.DataFrame) -> str:
    """Which weights produced a row, said in the row: "resnet18 RANDOM-INIT", "none (no network)"."""
    out = set()
    for enc, w in rows[["encoder", "encoder_weights"]].drop_duplicates().itertuples(index=False):
        if str(w).startswith("none"):
            out.add("none (no network)")
        else:
            out.add(f"{enc} {'RANDOM-INIT' if 'random' in str(w) else w}")
    return "; ".join(sorted(out))


def _protocol_note(protocol: str) -> str:
    if protocol == "paper":
        return "Paper protocol: model selection on the test fold, as the authors' code did; scores are optimistic."
    return "Clean protocol: model selection on a validation split of the training folds; the test fold is used once."


def grid_b_table(df: pd.DataFrame, protocol: str, averaging: str, caption: str, digits: int,
                 samples_per_image: int | None = None) -> Table | None:
    sub = df[(df.grid == "B") & (df.protocol == protocol) & (df.averaging == averaging) & (df.score == "iou")]
    if sub.empty:
        return None
    parsed = sub.experiment.str.extract(r"^B/(?P<kind>.+)_N(?P<n>\d+)$")
    sub = sub.assign(kind=parsed["kind"], n=parsed["n"].astype(int))
    mean = sub.pivot_table(index="n", columns="kind", values="value", aggfunc="mean")
    std = sub.pivot_table(index="n", columns="kind", values="value", aggfunc="std")  # over seeds
    kinds = [k for k in ("REAL", "FAKE", "REAL+FAKE", "FASTGAN", "REAL+FASTGAN") if k in mean.columns]
    kinds += sorted(k for k in mean.columns if k not in kinds and not k.startswith("TRIVIAL"))
    kinds += sorted(k for k in mean.columns if k.startswith("TRIVIAL"))
    mean = mean[kinds]
    # pivot_table drops all-NaN rows (one seed: no sd); the sd frame has every cell of the means
    std = std.reindex(index=mean.index, columns=kinds)
    std.index = std.index.astype(str)
    mean["network weights"] = [row_weights(sub[(sub.n == n) & ~sub.kind.str.startswith("TRIVIAL")]) for n in mean.index]
    mean.index.name = "N real images"
    mean.index = mean.index.astype(str)
    per_image = (f"{samples_per_image} samples per real image" if samples_per_image is not None
                 else "samples (how many per real image is not recorded)")  # fmt: skip
    t = Table(
        f"grid_b_{protocol}", f"Grid B (data-scarce), {protocol} protocol: UNet++ test IoU (higher is better) "
        "vs the number N of real images, mean ± std over seeds",
        mean, std, {}, caption, digits, notes=[_protocol_note(protocol),
        f"SinGAN-Seg: {per_image} (the paper: 10, style transfer 1:1000) from the same N models; "
        "the 'real + SinGAN-Seg' and other generators' columns are our additions.",
        TRIVIAL_NOTE.format(rows="columns")],
        labels={k: display_name(k) for k in kinds},
    )  # fmt: skip
    # best per row (which training set wins at each N) rather than per column
    t.better = {}
    return t


def grid_b_scores(df: pd.DataFrame, protocol: str, averaging: str, digits: int) -> Table | None:
    """Grid B as machine-readable rows: experiment, kind, N and every score (one fold: no std)."""
    sub = df[(df.grid == "B") & (df.protocol == protocol) & (df.averaging == averaging)]
    if sub.empty:
        return None
    mean = sub.pivot_table(index="experiment", columns="score", values="value", aggfunc="mean")[list(SCORES)]
    mean.columns = [SCORE_LABELS[s] for s in SCORES]
    parsed = mean.index.str.extract(r"^B/(?P<kind>.+)_N(?P<n>\d+)$")
    mean.insert(0, "N", parsed["n"].astype(int).values)
    mean.insert(0, "kind", parsed["kind"].values)
    mean["network weights"] = [row_weights(sub[sub.experiment == e]) for e in mean.index]
    mean = mean.sort_values(["N", "kind"])
    mean.index = [e.split("/", 1)[1] for e in mean.index]
    mean.index.name = "experiment"
    return Table(f"grid_b_{protocol}_scores", f"Grid B, {protocol} protocol: every score", mean, None, {}, "", digits)


def external_table(per_image: pd.DataFrame, caption: str, digits: int) -> Table | None:
    """Grid A on each extra test set (issue 22 s5): per protocol and experiment, the IoU on the
    grid's own test folds, on the extra set, and the gap (extra − own), means over folds, seeds
    and images; None when no extra test set was scored. The trivial rows are left out: they are
    scored on the grid's own test folds only (pipeline/segment/trivial.py)."""
    sub = per_image[(per_image.grid == "A") & ~per_image.experiment.astype(str).str.contains("/TRIVIAL")]
    extra = sorted(set(sub.test_set) - {MAIN_TEST})
    if sub.empty or not extra:
        return None
    means = sub.groupby(["protocol", "experiment", "test_set"])["iou"].mean().unstack("test_set")
    cols = {}
    for protocol in ("paper", "clean"):
        if protocol not in means.index.get_level_values(0):
            continue
        m = means.loc[protocol]
        cols[f"{protocol}: test folds"] = m[MAIN_TEST]
        for e in extra:
            cols[f"{protocol}: {e}"] = m[e]
            cols[f"{protocol}: {e} − test"] = m[e] - m[MAIN_TEST]
    frame = pd.DataFrame(cols)
    frame = frame.reindex(experiment_order(frame.index))
    frame.index = [e.split("/", 1)[1] for e in frame.index]
    frame.index.name = "experiment"
    return Table("grid_a_external", "Grid A on external test data: test IoU on the grid's own test folds and on "
                 f"{', '.join(extra)} (per-image mean over folds and seeds), and the gap", frame, None, {}, caption,
                 digits, notes=["The external set never trains or selects a model; each model of grid A is scored "
                                "on it once, after selection (segment.extra_test)."],
                  labels={e: display_name(e) for e in frame.index})  # fmt: skip


PER_IMAGE_DIGITS = 4


def per_image_csv(per_image: pd.DataFrame, grid: str) -> str | None:
    """The committed long-form per-image scores of one grid (issue 22 s2): every number of the
    grid's tables and claims can be recomputed from them (4 decimals)."""
    sub = per_image[per_image.grid == grid]
    if sub.empty:
        return None
    cols = [c for c in PER_IMAGE_COLUMNS if c in sub.columns]
    sub = sub[cols].sort_values(["experiment", "protocol", "test_set", "fold", "seed", "image_id"], kind="stable")
    return sub.to_csv(index=False, float_format=f"%.{PER_IMAGE_DIGITS}f", lineterminator="\n")


# ------------------------------------------------------------------ index


PROFILE_NOTES = {
    "smoke": " — a smoke run on {data} with tiny networks and iteration counts. "
             "These numbers test the pipeline; they are **not** the paper's results.",
    "cpu": " — the paper's protocol on {data}, every size cut to run on 2 CPU cores (params.yaml, "
           "`profiles.cpu`, gives each cut beside the paper's value). A check of the method at small "
           "scale, not the paper's numbers.",
}  # fmt: skip

# Each committed report and the data its own run uses (Makefile: `make demo` = smoke on the
# phantom, `make cpu` = cpu on ../shared/data/kvasir-seg-200; the paper on Kvasir-SEG). A run
# of a profile on other data writes its own folder, `reports/<profile>-<source>[-<name>]/`
# (issue 27), so an own-data run never rewrites a committed report; the index lists them all.
HOME_DATA = {"smoke": ("phantom", None), "cpu": ("folder", "kvasir-seg-200"), "paper": ("kvasir-seg", None)}


def report_folder(profile: str, source: str, folder: str | None) -> str:
    """The report folder's name for `profile` run on (`source`, `folder`): the profile's own
    name on its home data, else `<profile>-<source>` (`-<folder name>` for a folder)."""
    name = Path(str(folder)).name if source == "folder" and folder else None
    if HOME_DATA.get(profile) == (source, name):
        return profile
    tail = f"folder-{name}" if name else source
    return f"{profile}-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in tail)


def data_words(source: str, folder: str | None, pairs: int | None) -> str:
    """The data of the run in words, for the profile note: only what this run used."""
    n = f"{pairs} " if pairs is not None else ""
    if source == "phantom":
        return f"{n}pairs of generated phantom data"
    if source == "folder":
        return f"{n}real pairs from the folder `{Path(str(folder)).name}`"
    return f"{n}real pairs ({source})"


def data_line(source: str, folder: str | None, pairs: int | None) -> str:
    """The header's data line: the source, the folder (for `folder`) and the number of pairs."""
    where = f", folder `{folder}`" if source == "folder" else ""
    return f"`{source}`{where}, {pairs if pairs is not None else '?'} pairs"
# tracked files a run writes, committed after it: the stamp names the newest commit that
# changed anything else (tracking.git_commit), so a fresh clone's rerun stamps the same one
RUN_OUTPUTS = ("dvc.lock", "reports/", "metrics/headline/")
# paths a run itself rewrites: they do not make the commit "dirty" (the params set are listed).
# params.yaml is not among RUN_OUTPUTS: a commit that changes it changes the configuration
RUN_WRITES = ("params.yaml", *RUN_OUTPUTS)


def header(profile: str, commit: str, provenance: dict[str, set[str]], data_source: str,
           overrides: dict[str, Any] | None = None, total_seconds: float | None = None,
           timings: bool = True, data: tuple[str, str | None, int | None] | None = None,
           models: str | None = None) -> str:
    """`data`: (source, folder, number of pairs) of the run; None: `data_source` alone.
    `models`: where the SinGAN-Seg models came from (models_line), None: not said."""
    note = PROFILE_NOTES.get(profile, "")
    if data is not None:
        note = note.format(data=data_words(*data))
    elif "{data}" in note:
        note = note.format(data=f"`{data_source}` data")
    lines = [
        "# singanseg results",
        "",
        f"- **Profile: `{profile}`**" + note,
        "- Data: " + (data_line(*data) if data is not None else f"`{data_source}`"),
        f"- Commit: `{commit}`",
    ]  # fmt: skip
    if models:
        lines.append(f"- SinGAN-Seg models: {models}")
    if overrides:
        lines.append("- Params set for this run: " + ", ".join(f"`{k}={v}`" for k, v in overrides.items())
                     + " (on top of the commit's params.yaml)")  # fmt: skip
    if total_seconds is not None:
        lines.append(f"- Total wall time: {total_seconds / 60:.1f} minutes (the cost table below)")
    elif not timings:
        lines.append(NO_TIMINGS)
    lines.append("- Weights behind the numbers: "
                 + ("; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(provenance.items())) or "none recorded"))  # fmt: skip
    if any("random" in w for ws in provenance.values() for w in ws):
        lines.append(
            "- **Some numbers come from randomly initialised networks** (no pretrained weights were "
            "available): each such row says RANDOM in its `network weights` column; they are not "
            "comparable with published values."
        )
    return "\n".join(lines) + "\n"


def models_line(shards: list[Path]) -> str | None:
    """How many SinGAN-Seg models were trained by this suite and how many imported from the
    authors' released checkpoints (model.json `source`, singanseg.authors; issue 24)."""
    imported = trained = 0
    for path in (p for shard in shards for p in shard.glob("*/model.json")):
        try:
            source = json.loads(path.read_text(encoding="utf-8")).get("source")
        except (OSError, ValueError):
            continue
        if isinstance(source, dict) and source.get("kind") == "authors":
            imported += 1
        else:
            trained += 1
    if not imported + trained:
        return None
    parts = ([f"{trained} trained by this suite"] if trained else []) + (
        [f"{imported} imported from the authors' released checkpoints (`singan.source: authors`)"] if imported else [])
    return ", ".join(parts)


def build(params: ReportParams, out: Path, profile: str, data_source: str,
          overrides: dict[str, Any] | None = None, samples_per_image: int | None = None,
          num_samples: int | None = None, data: tuple[str, str | None, int | None] | None = None) -> dict[str, Any]:
    metrics = Path(params.metrics)
    commit = git_commit(ignore=RUN_WRITES, outputs=RUN_OUTPUTS)
    caption = f"Profile {profile}; data {data_source}; commit {commit[:12]}"
    mark = figures.run_mark(profile, data_source)
    provenance: dict[str, set[str]] = {}
    tables: list[Table] = []
    missing: list[str] = []

    cost, cost_summary = (cost_table(metrics / "timings", sorted(Path(params.models).glob("shard*")),
                                     Path(params.synthetic), metrics / "segmentation", caption, digits=3)
                          if params.timings else (None, {}))  # fmt: skip
    q_tables, q_figures, q_prov, q_missing = quality_tables(metrics / "quality", out / "figures", caption, params.digits,
                                                            synthetic=Path(params.synthetic), mark=mark,
                                                            num_samples=num_samples)  # fmt: skip
    missing += q_missing
    for k, v in q_prov.items():
        provenance.setdefault(k, set()).update(v)

    seg = load_segmentation(metrics / "segmentation")
    if not seg.empty:
        provenance.setdefault("UNet++ encoder", set()).update(
            seg[~seg.experiment.str.contains("TRIVIAL")].encoder_weights.unique())
    summary, style = quality_summary(metrics / "quality"), style_weights(Path(params.synthetic))
    per_image = load_per_image(metrics / "segmentation")
    sifid_pairs = {name: pd.read_csv(f, dtype={"real_id": str, "synthetic_id": str})
                   for name in summary.get("sets", {})
                   if (f := metrics / "quality" / f"{name.replace('/', '__')}.sifid.csv").is_file()}  # fmt: skip
    claims = claims_frame(per_image, summary.get("sets", {}), style, summary.get("gan_by_k", {}),
                          gan_claim=summary.get("gan_claim"), sifid_pairs=sifid_pairs)
    claims["network weights"] = claim_weights(seg, provenance, style)
    tables.append(Table("claims", "The paper's claims, tested at this run's scale", claims, None, {},
                        caption, params.digits, notes=[CLAIMS_NOTE, "Intervals: " + BOOT.describe() + "."]))  # fmt: skip
    tables += q_tables
    for maker, label in ((grid_a_table, "grid A"), (grid_b_table, "grid B")):
        for protocol in ("paper", "clean"):
            if seg.empty:
                t = None
            elif maker is grid_b_table:
                t = maker(seg, protocol, params.averaging, caption, params.digits, samples_per_image)
            else:
                t = maker(seg, protocol, params.averaging, caption, params.digits)
            if t is None:
                missing.append(f"{label}, {protocol} protocol (stage `segment`)")
            else:
                tables.append(t)
    if (ext := external_table(per_image, caption, params.digits)) is not None:
        tables.append(ext)
    extra_csv = [t for p in ("paper", "clean") if not seg.empty
                 and (t := grid_b_scores(seg, p, params.averaging, params.digits)) is not None]  # fmt: skip
    if cost is not None:
        tables.append(cost)
    elif params.timings:
        missing.append("cost table (no metrics/timings: stages run outside `dvc repro`)")
    figs = list(q_figures)
    if not seg.empty:
        for maker, name in ((lambda p: grid_b_figure(per_image, p, mark), "grid_b.png"),
                            (lambda p: learning_curves(metrics / "segmentation", p, mark), "learning_curves.png"),
                            (lambda p: predictions_figure(metrics / "segmentation", p, mark), "predictions.png")):  # fmt: skip
            path = maker(out / "figures" / name)
            if path is not None:
                figs.append(path)
    figs += sample_grids(params, out / "figures", mark)

    fill_caption_weights(tables, provenance)  # every caption names the weights behind its numbers
    for t in tables:
        write_table(t, out / "tables")
    for t in extra_csv:
        write_text(out / "tables" / f"{t.name}.csv", to_csv(t))
    per_image_files = []
    for grid in ("A", "B"):
        if (text := per_image_csv(per_image, grid)) is not None:
            per_image_files.append(write_text(out / "tables" / f"per_image_{grid}.csv", text).name)
    parts = [header(profile, commit, provenance, data_source, overrides, cost_summary.get("total_seconds"),
                    params.timings, data, models_line(sorted(Path(params.models).glob("shard*")))),
             "## Tables", ""]  # fmt: skip
    for t in tables:
        parts += [f"### {t.title}", "", f"[CSV](tables/{t.name}.csv) · [LaTeX](tables/{t.name}.tex)", "", to_markdown(t), ""]
    if per_image_files:
        parts += ["Every test image's scores, from which each segmentation number and interval above can be "
                  "recomputed (CSV): " + " · ".join(f"[{n}](tables/{n})" for n in per_image_files), ""]  # fmt: skip
    if extra_csv:
        parts += ["Grid B, every score per experiment (CSV): "
                  + " · ".join(f"[{t.name}](tables/{t.name}.csv)" for t in extra_csv), ""]  # fmt: skip
    if missing:
        parts += ["### Not available", "", *[f"- {m}" for m in missing], ""]
    parts += ["## Figures", ""]
    for f in figs:
        rel = f.relative_to(out)
        what, weights = figure_caption(f.stem, provenance, style, samples_per_image)
        parts += [f"### {what.split('.')[0]}", "", f"![{what.split('.')[0]}]({rel.as_posix()})", "",
                  f"*{what} {caption}; network weights: {weights}.*", ""]  # fmt: skip
    write_text(out / "README.md", "\n".join(parts))
    return {"tables": len(tables), "figures": len(figs), "missing": missing, "verdicts": claims["verdict"].to_dict()}


NO_TIMINGS = ("- Wall times and the cost table: left out (`report.timings: false`), so that a rerun writes this "
              "report byte for byte; this run's times are in metrics/timings/ and MLflow")

CLAIMS_NOTE = ("Each verdict is computed from the numbers in its row by the rule beside it (pipeline/report/claims.py); "
               "it says whether the claim holds in this run, at this scale, not whether the paper's numbers are right.")


def claim_weights(seg: pd.DataFrame, provenance: dict[str, set[str]], style: set[str]) -> list[str]:
    """Which weights each claim's numbers came from, said in its row (claims_frame's order:
    sanity, style transfer, GANs, data-rich, data-scarce)."""
    unet = "UNet++ " + (row_weights(seg[~seg.experiment.str.contains("TRIVIAL")]) if not seg.empty else "none")
    incep = "; ".join(f"{k.split(': ', 1)[-1]}: {'RANDOM-INIT' if 'random' in w else w.split(':')[0]}"
                      for k, ws in sorted(provenance.items()) if k.startswith("quality: inception") for w in sorted(ws))  # fmt: skip
    vgg = "style " + style_summary(style)
    return [unet, f"{vgg}; {incep or 'Inception: none recorded'}", incep or "Inception: none recorded", unet, unet]


def quality_summary(root: Path) -> dict:
    """The quality stage's summary.json ({} before it ran)."""
    path = root / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def style_weights(synthetic: Path) -> set[str]:
    """'<network>|<weights>' of each style-transfer set (synthetic/singan_st*/*/provenance.json):
    VGG16 as the paper, or the named variant EfficientNet-Lite0 (quality_tables.style_network)."""
    out = set()
    for p in synthetic.glob("singan_st*/*/provenance.json"):
        rec = json.loads(p.read_text())
        out.add(f"{style_network(rec)}|{rec.get('weights') or rec.get('provenance', {}).get('weights') or rec}")
    return out


def _count_pairs(real: Path) -> int | None:
    try:
        return len(list_pairs(real))
    except (OSError, UserError):
        return None


def main(argv: list[str] | None = None) -> int:
    stage = Stage("report", __doc__.split("\n\n")[0], ReportParams)
    stage.parser.add_argument("--out", default=None, help="the profile's report folder (default: reports/<profile>); "
                              "a run on other data than the profile's own writes beside it, in "
                              "<profile>-<source>[-<folder name>] (HOME_DATA)")

    def work(args, params: ReportParams) -> None:
        profile = active_profile(args.params)
        from pipeline.data.config import DataParams
        from pipeline.segment.config import SegmentParams

        data = load_section("data", DataParams, args.params)
        from pipeline.generate import GenerateParams

        spi = load_section("segment", SegmentParams, args.params).grid_b.samples_per_image
        num_samples = load_section("generate", GenerateParams, args.params).num_samples
        source = data.source if data.source != "folder" else f"folder {data.folder}"
        pairs = _count_pairs(Path(params.real))
        home = Path(args.out or f"reports/{profile}")
        out = home.parent / report_folder(profile, data.source, data.folder) if home.name == profile else home
        if out != home:
            print(f"report: data {data.source} is not the {profile} profile's own "
                  f"({HOME_DATA.get(profile, ('?',))[0]}): writing {out}/, {home}/ is left as it is", file=sys.stderr)
        if out.is_dir():  # what DVC did before running when the folder was not `persist`
            shutil.rmtree(out)
        with stage_run("report", params, enabled=params.track) as run:
            summary = build(params, out, profile, source, overrides_vs_head(args.params), spi, num_samples,
                            (data.source, data.folder, pairs))
            index = write_index(out.parent)
            log_report_artifacts(run, out)  # the page, figures and tables, for the UI (issue 17)
        print(f"report: {summary['tables']} tables, {summary['figures']} figures -> {out}/README.md (index {index})"
              + (f"; not available: {len(summary['missing'])}" if summary["missing"] else ""))  # fmt: skip
        for claim, verdict in summary["verdicts"].items():
            print(f"report: claim: {verdict}: {claim}")

    return stage.run(work, argv)


if __name__ == "__main__":
    sys.exit(main())
