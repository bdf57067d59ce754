"""Report tables: best values bold, mean ± std, LaTeX that compiles (or at least parses)."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from pipeline.tables import Table, to_csv, to_latex, to_markdown, write_table


def _table():
    mean = pd.DataFrame(
        {"IoU": [0.81, 0.77, np.nan], "SIFID": [0.30, 0.22, 0.25]},
        index=pd.Index(["REAL", "FAKE_3_ST1to1000", "50% & more"], name="experiment"),
    )
    std = pd.DataFrame({"IoU": [0.01, 0.02, np.nan], "SIFID": [0.1, 0.05, 0.07]}, index=mean.index)
    return Table("t1", "Grid A (paper protocol)", mean, std, {"IoU": "max", "SIFID": "min"},
                 caption="profile smoke; weights random-init; commit abc_1")  # fmt: skip


def test_best_per_column_and_formatting():
    t = _table()
    assert t.best_rows() == {"IoU": {"REAL"}, "SIFID": {"FAKE_3_ST1to1000"}}
    md = to_markdown(t)
    assert "| REAL | **0.810 ± 0.010** | 0.300 ± 0.100 |" in md
    assert "| FAKE_3_ST1to1000 | 0.770 ± 0.020 | **0.220 ± 0.050** |" in md
    assert "| 50% & more | – | 0.250 ± 0.070 |" in md
    csv = to_csv(t).splitlines()
    assert csv[0] == "experiment,IoU,SIFID,IoU_std,SIFID_std"


def _check_latex_structure(tex: str, ncols: int):
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    body = tex.split(r"\toprule")[1].split(r"\bottomrule")[0].replace(r"\midrule", "")
    rows = [r for r in body.split(r"\\") if r.strip()]
    for r in rows:  # every row has the same number of cells; & inside labels is escaped
        assert len(re.split(r"(?<!\\)&", r)) == ncols
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")


def test_latex_is_booktabs_and_escaped(tmp_path):
    tex = to_latex(_table())
    _check_latex_structure(tex, 3)
    assert r"\textbf{0.810 $\pm$ 0.010}" in tex and r"50\% \& more" in tex and r"abc\_1" in tex
    paths = write_table(_table(), tmp_path)
    assert paths["tex"].read_text() == tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no LaTeX engine installed (structure is checked above)")
def test_latex_compiles(tmp_path):
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + to_latex(_table()) + "\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000


def test_captions_carry_the_weights_of_their_rows_or_of_the_run():
    from pipeline.tables import fill_caption_weights

    t = _table()
    t.mean["network weights"] = ["resnet18 RANDOM-INIT", "resnet18 RANDOM-INIT; style VGG16: imagenet", "none (no network)"]
    plain = Table("t2", "Claims", pd.DataFrame({"v": [1.0]}, index=pd.Index(["c"], name="claim")), caption="profile cpu")
    fixed = Table("t3", "Given", plain.mean, caption="profile cpu", weights="inception_fid: pretrained")
    fill_caption_weights([t, plain, fixed], {"UNet++ encoder": {"random-init"}, "quality: fid": {"pretrained: fid.pt"}})
    # a table with a `network weights` column: its distinct entries, in row order
    assert t.weights == "resnet18 RANDOM-INIT; style VGG16: imagenet; none (no network)"
    # without one: every network of the run, random ones said loudly
    assert plain.weights == "UNet++ encoder: RANDOM-INIT (random-init); quality: fid: pretrained: fid.pt"
    assert fixed.weights == "inception_fid: pretrained"  # set by its maker: kept
    assert to_markdown(t).splitlines()[0] == (
        "**Grid A (paper protocol).** profile smoke; weights random-init; commit abc_1; network weights: "
        "resnet18 RANDOM-INIT; style VGG16: imagenet; none (no network)")  # fmt: skip
    assert r"\caption{Claims. profile cpu; network weights: UNet++ encoder: RANDOM-INIT" in to_latex(plain)
