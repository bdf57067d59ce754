"""Report tables: best values bold, mean ± std, LaTeX that compiles (or at least parses)."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from pipeline.report.tables import Table, to_csv, to_latex, to_markdown, write_table


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
    from pipeline.report.tables import fill_caption_weights

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


def test_small_values_keep_their_significant_figures_and_eps_noise_is_zero():
    from pipeline.report.tables import format_number

    assert format_number(8.039e-06) == "8.0e-06"  # an LPIPS diversity of 8e-6 is not 0.000
    assert format_number(-0.00031) == "-3.1e-04"
    assert format_number(0.0123) == "0.012" and format_number(12.0, 1) == "12.0"
    assert format_number(0.0) == "0.000" and format_number(1.9e-9) == "0.000"  # smp's eps, not a score
    t = Table("t", "T", pd.DataFrame({"LPIPS": [8e-6]}, index=pd.Index(["DCGAN"], name="g")),
              pd.DataFrame({"LPIPS": [2e-6]}, index=pd.Index(["DCGAN"], name="g")))  # fmt: skip
    assert "| DCGAN | 8.0e-06 ± 2.0e-06 |" in to_markdown(t)


def test_bold_columns_say_whether_higher_or_lower_is_better():
    t = _table()
    md = to_markdown(t)
    assert md.splitlines()[2] == "| experiment | IoU ↑ | SIFID ↓ |"
    assert "higher is better" in md and "lower is better" in md
    tex = to_latex(t)
    assert r"IoU $\uparrow$" in tex and r"SIFID $\downarrow$" in tex and r"($\uparrow$ higher is better" in tex
    _check_latex_structure(tex, 3)
    plain = Table("p", "P", pd.DataFrame({"v": [1.0]}, index=pd.Index(["r"], name="x")))
    assert "better" not in to_markdown(plain) and "| x | v |" in to_markdown(plain)  # no bold, no arrow
    assert to_csv(t).splitlines()[0] == "experiment,IoU,SIFID,IoU_std,SIFID_std"  # the CSV keeps plain keys


def test_rows_are_rendered_by_their_display_names_and_the_csv_keeps_the_keys():
    from pipeline.results.names import display_name

    t = _table()
    t.labels = {k: display_name(k) for k in t.mean.index}
    assert "| SinGAN-Seg, 3 samples per image, style transfer 1:1000 |" in to_markdown(t)
    assert "real images" in to_latex(t) and "FAKE_3_ST1to1000" not in to_latex(t)
    assert "FAKE_3_ST1to1000" in to_csv(t)


def test_display_names_are_said_as_a_reader_says_them():
    from pipeline.results.names import display_name

    assert display_name("singan_st1to1/gss0") == "SinGAN-Seg, style transfer 1:1, gen_start_scale 0"
    assert display_name("singan/gss2") == "SinGAN-Seg, gen_start_scale 2"
    assert display_name("fastgan/n20") == "FastGAN, trained on 20 images"
    assert display_name("dcgan/nall") == "DCGAN, trained on all images"
    assert display_name("A/REAL") == display_name("REAL") == "real images"
    assert display_name("A/REAL+FAKE_1") == "real + SinGAN-Seg, 1 sample per image"
    assert display_name("B/REAL+FASTGAN_N5") == "real + FastGAN, N=5"
    assert display_name("FAKE") == "SinGAN-Seg only" and display_name("TRIVIAL_BACKGROUND") == "trivial: predicts no polyp"
    assert display_name("network weights") == "network weights"  # anything else passes unchanged
