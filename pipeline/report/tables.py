"""Result tables rendered three ways: CSV (numbers), booktabs LaTeX, Markdown.

A table is a frame of means (and optionally standard deviations) with the direction of
"better" per column; the best value of each such column is bold in LaTeX and Markdown.
Every table carries a caption that says the profile, data, weights provenance and commit,
so that a smoke run is never mistaken for the paper's numbers: `caption` holds profile, data
and commit, `weights` which network weights produced the numbers (filled by the report from
the table's `network weights` column or the run's provenance, `caption_weights`); both are
rendered in the LaTeX and Markdown captions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from singanseg.io import write_text

Better = Literal["max", "min"]


@dataclass
class Table:
    name: str  # file stem under reports/tables/
    title: str
    mean: pd.DataFrame  # index = row labels, columns = metrics
    std: pd.DataFrame | None = None
    better: dict[str, Better] = field(default_factory=dict)
    caption: str = ""
    digits: int = 3
    notes: list[str] = field(default_factory=list)
    # rows shown for reference (the TRIVIAL segmenters) never compete for bold
    reference_rows: set = field(default_factory=set)
    weights: str = ""  # network weights behind the numbers, as the caption says them ("" = none recorded)
    # row and column labels as a reader says them (pipeline/results/names.py) in Markdown and LaTeX;
    # the CSV keeps the keys params.yaml and metrics/ use
    labels: dict[str, str] = field(default_factory=dict)
    col_digits: dict[str, int] = field(default_factory=dict)  # decimals per column where not `digits`

    def label(self, key) -> str:
        return self.labels.get(key, str(key))

    def header(self, col: str, up: str = "↑", down: str = "↓") -> str:
        """A column header as rendered: its label, and the direction of "better" where it has one."""
        how = self.better.get(col)
        return self.label(col) + (f" {up if how == 'max' else down}" if how else "")

    def direction_note(self) -> str:
        """The sentence that says what bold means ("" for a table without bold)."""
        if not self.better:
            return ""
        return ("Bold: the best value of each column with an arrow (↑ higher is better, ↓ lower is better)"
                + ("; reference rows never take the bold." if self.reference_rows else "."))

    def full_caption(self) -> str:
        """The caption as rendered: profile/data/commit, then the weights (RANDOM said loudly)."""
        parts = [p for p in (self.caption, f"network weights: {self.weights}" if self.weights else "") if p]
        return "; ".join(parts)

    def best_rows(self) -> dict[str, set]:
        """For each column with a direction, the row labels holding the best value (ties all bold)."""
        out = {}
        for col, how in self.better.items():
            if col not in self.mean.columns:
                continue
            s = pd.to_numeric(self.mean[col], errors="coerce").dropna()
            s = s[[i not in self.reference_rows for i in s.index]]
            if s.empty:
                continue
            target = s.max() if how == "max" else s.min()
            out[col] = {i for i, v in s.items() if math.isclose(v, target, rel_tol=0, abs_tol=10 ** -(self.digits + 3))}
        return out

    def cell(self, row, col, pm: str) -> str:
        v = self.mean.at[row, col]
        if isinstance(v, str):
            return v
        if _missing(v):
            return "–"
        digits = self.col_digits.get(col, self.digits)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            text = str(int(v))
        else:
            text = format_number(float(v), digits)
        if self.std is not None and col in self.std.columns:
            s = self.std.at[row, col]
            if not _missing(s):
                text += f"{pm}{format_number(float(s), digits)}"
        return text


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


# below this a score is the metrics' smoothing term, not a value (smp's IoU adds eps = 1e-7
# to numerator and denominator: an empty prediction scores ~1e-9, not 0)
NOISE_FLOOR = 1e-7


def format_number(v: float, digits: int = 3) -> str:
    """`digits` decimals, unless that would print a non-zero value as zero: then two significant
    figures in scientific form (an LPIPS diversity of 8e-6 is "8.0e-06", not "0.000"). Values
    under NOISE_FLOOR are zero."""
    if math.isfinite(v) and NOISE_FLOOR <= abs(v) < 0.5 * 10**-digits:
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def to_csv(t: Table) -> str:
    df = t.mean.copy()
    if t.std is not None:
        for c in t.std.columns:
            df[f"{c}_std"] = t.std[c]
    return df.to_csv(index_label=t.mean.index.name or "")


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(t: Table) -> str:
    """A booktabs `table` environment (pandas Styler); needs only \\usepackage{booktabs}."""
    best = t.best_rows()
    cols = list(t.mean.columns)
    heads = [latex_escape(t.label(c)) + {"max": r" $\uparrow$", "min": r" $\downarrow$"}.get(t.better.get(c), "")
             for c in cols]  # fmt: skip
    text = pd.DataFrame(
        [[t.cell(r, c, "\x00").replace("\x00", r" $\pm$ ").replace("–", "--") for c in cols] for r in t.mean.index],
        columns=heads,
    )
    # cell text is built above (numbers, $\pm$); labels and headers need escaping
    text = text.map(lambda v: v if "$" in v else latex_escape(v))
    bold = pd.DataFrame(
        [["textbf:--rwrap;" if r in best.get(c, ()) else "" for c in cols] for r in t.mean.index],
        columns=heads,
    )
    label = latex_escape(t.mean.index.name or "")
    text.insert(0, label, [latex_escape(t.label(r)) for r in t.mean.index])
    bold.insert(0, label, "")
    # headers are escaped above (the arrows are math)
    styler = text.style.apply(lambda _: bold, axis=None).hide(axis="index")
    note = latex_escape(t.direction_note()).replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")
    return styler.to_latex(
        hrules=True,  # \toprule / \midrule / \bottomrule (booktabs)
        caption=f"{latex_escape(t.title)}. {latex_escape(t.full_caption())}" + (f". {note}" if note else ""),
        label=f"tab:{t.name}",
        position="ht",
        position_float="centering",
        column_format="l" + "r" * len(cols),
    )


def to_markdown(t: Table) -> str:
    best = t.best_rows()
    cols = list(t.mean.columns)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = [f"| {esc(t.mean.index.name or '')} | " + " | ".join(esc(t.header(c)) for c in cols) + " |"]
    out.append("|---|" + "---:|" * len(cols))
    for row in t.mean.index:
        cells = []
        for c in cols:
            text = esc(t.cell(row, c, " ± "))
            cells.append(f"**{text}**" if row in best.get(c, ()) else text)
        out.append(f"| {esc(t.label(row))} | " + " | ".join(cells) + " |")
    text = f"**{t.title}.** {t.full_caption()}\n\n" + "\n".join(out) + "\n"
    for n in ([t.direction_note()] if t.better else []) + t.notes:
        text += f"\n> {n}\n"
    return text


WEIGHTS_COLUMN = "network weights"


def caption_weights(t: Table, provenance: dict[str, set[str]]) -> str:
    """What a table's caption says about weights: the distinct entries of its `network weights`
    column where it has one, else every network the run used (`provenance`, as the report
    header lists it); random-init weights are named RANDOM-INIT either way."""
    if WEIGHTS_COLUMN in t.mean.columns:
        seen: list[str] = []
        for cell in t.mean[WEIGHTS_COLUMN]:
            for part in str(cell).split("; "):
                if part and part not in seen:
                    seen.append(part)
        return "; ".join(seen)
    return "; ".join(f"{k}: {', '.join(_loud(w) for w in sorted(v))}" for k, v in sorted(provenance.items()))


def _loud(weights: str) -> str:
    return f"RANDOM-INIT ({weights})" if "random" in weights.lower() else weights


def fill_caption_weights(tables: list[Table], provenance: dict[str, set[str]]) -> None:
    """Give every table without `weights` the ones its caption should say (the report calls this)."""
    for t in tables:
        if not t.weights:
            t.weights = caption_weights(t, provenance) or "none recorded"


def write_table(t: Table, folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    return {
        "csv": write_text(folder / f"{t.name}.csv", to_csv(t)),
        "tex": write_text(folder / f"{t.name}.tex", to_latex(t)),
    }
