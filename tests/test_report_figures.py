"""Report figures and notes readable at a glance (issue 18 section 3): the smoke/phantom mark
inside the image, integer epoch ticks, labels above tiles, values (not parameter names) in notes."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.report import plots as figures
from pipeline.report.build import grid_b_table
from pipeline.report.figures import figure_caption, grid_b_figure


def _texts(fig):
    return [t.get_text() for t in fig.texts]


def test_the_run_mark_names_smoke_and_phantom_and_nothing_for_results():
    assert figures.run_mark("smoke", "phantom").startswith("SMOKE RUN · PHANTOM DATA")
    assert figures.run_mark("cpu", "phantom").startswith("PHANTOM DATA")
    assert figures.run_mark("cpu", "folder ../shared/data/kvasir-seg-200") == ""


def test_a_marked_figure_carries_the_mark_inside_the_image(tmp_path, monkeypatch):
    df = pd.DataFrame({"epoch": [1, 2, 1, 2], "iou": [0.1, 0.2, 0.15, 0.25], "set": ["a", "a", "b", "b"]})
    seen = {}
    save = figures._save

    def spy(fig, path, mark=""):
        out = save(fig, path, mark)
        seen[path.name] = (_texts(fig), [ax.get_xticks() for ax in fig.axes])
        return out

    monkeypatch.setattr(figures, "_save", spy)
    mark = figures.run_mark("smoke", "phantom")
    figures.lines(df, "epoch", "iou", "set", tmp_path / "marked.png", integer_x=True, mark=mark)
    figures.lines(df, "epoch", "iou", "set", tmp_path / "plain.png", integer_x=True)
    assert any(mark in t.replace("\n", " ") for t in seen["marked.png"][0])
    assert not seen["plain.png"][0]
    ticks = seen["marked.png"][1][0]
    assert len(ticks) and all(float(t).is_integer() for t in ticks)  # epochs 1, 2: no 1.2, 1.4, ...
    marked = np.asarray(Image.open(tmp_path / "marked.png").convert("RGB")).astype(int)
    red = (marked[..., 0] > 150) & (marked[..., 1] < 60) & (marked[..., 2] < 60)
    assert red.sum() > 50  # the mark is drawn in red in the saved image
    plain = np.asarray(Image.open(tmp_path / "plain.png").convert("RGB")).astype(int)
    assert ((plain[..., 0] > 150) & (plain[..., 1] < 60) & (plain[..., 2] < 60)).sum() == 0


def test_sample_grid_labels_sit_above_their_tiles(tmp_path, monkeypatch):
    img, mask = np.full((16, 16, 3), 200, np.uint8), np.zeros((16, 16), np.uint8)
    rows = [("DCGAN, trained on all images", [(img, mask)] * 3), ("FastGAN, trained on 2 images", [(img, mask)] * 3)]
    boxes = {}
    save = figures._save

    def spy(fig, path, mark=""):
        r = fig.canvas.get_renderer()
        labels = [t for ax in fig.axes for t in ax.texts]
        tiles = [ax.get_window_extent(r) for ax in fig.axes if ax.images]
        boxes["overlaps"] = [t.get_text() for t in labels for b in tiles if t.get_window_extent(r).overlaps(b)]
        boxes["labels"] = [t.get_text() for t in labels]
        return save(fig, path, mark)

    monkeypatch.setattr(figures, "_save", spy)
    figures.sample_grid(rows, tmp_path / "s.png")
    assert boxes["labels"] == [r[0] for r in rows] and boxes["overlaps"] == []


def _grid_b_frame():
    rows = []
    for kind, v in (("REAL", 0.3), ("FAKE", 0.35), ("TRIVIAL_BACKGROUND", 0.0)):
        for protocol in ("paper", "clean"):
            rows.append({"grid": "B", "experiment": f"B/{kind}_N2", "fold": 0, "protocol": protocol,
                         "averaging": "per_image", "score": "iou", "value": v, "train_size": 2, "best_epoch": 1,
                         "encoder": "resnet18", "encoder_weights": "random-init"})  # fmt: skip
    return pd.DataFrame(rows)


def test_grid_b_with_one_n_has_one_readable_tick_and_display_names(tmp_path, monkeypatch):
    seen = {}
    save = figures._save

    def spy(fig, path, mark=""):
        seen["ticks"] = [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes]
        seen["legend"] = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        seen["xlabel"] = fig.axes[0].get_xlabel()
        return save(fig, path, mark)

    monkeypatch.setattr(figures, "_save", spy)
    assert grid_b_figure(_grid_b_per_image(), tmp_path / "grid_b.png") is not None
    assert seen["ticks"] == [["2"], ["2"]]  # one N is one tick, not 1.900 ... 2.100
    # the best trivial row only (the tuned mask), with the experiments
    assert seen["legend"][:2] == ["real images", "SinGAN-Seg only"] and len(seen["legend"]) == 3
    assert "trivial" in seen["legend"][2] and "no polyp" not in seen["legend"][2]
    assert "(count)" in seen["xlabel"]
    plt.close("all")


def _grid_b_per_image(n_images=12):
    """Per-image rows of grid B at N = 2: REAL and FAKE with 3 seeds, the trivial rows with one."""
    rng = np.random.default_rng(0)
    rows = []
    for kind, v, seeds in (("REAL", 0.3, 3), ("FAKE", 0.35, 3), ("TRIVIAL_BACKGROUND", 0.0, 1),
                           ("TRIVIAL_TUNED_MASK", 0.1, 1)):  # fmt: skip
        for protocol in ("paper", "clean"):
            for seed in range(seeds):
                for i in range(n_images):
                    rows.append({"grid": "B", "experiment": f"B/{kind}_N2", "protocol": protocol, "fold": 0, "n": 2,
                                 "seed": seed, "test_set": "test", "image_id": f"i{i}",
                                 "iou": float(np.clip(v + rng.normal(0, 0.05), 0, 1))})  # fmt: skip
    return pd.DataFrame(rows)


def test_grid_b_figure_bars_are_the_bootstrap_intervals(tmp_path, monkeypatch):
    seen = {}
    save = figures._save

    def spy(fig, path, mark=""):
        seen["bars"] = [c for ax in fig.axes for c in ax.containers]
        return save(fig, path, mark)

    monkeypatch.setattr(figures, "_save", spy)
    df = _grid_b_per_image()
    grid_b_figure(df, tmp_path / "g.png")
    real = df[(df.experiment == "B/REAL_N2") & (df.protocol == "paper")]
    # the first container of the first panel is REAL: its point is the mean over images and seeds
    line = seen["bars"][0].lines[0]
    assert line.get_ydata()[0] == pytest.approx(real.iou.mean())
    plt.close("all")


def test_grid_b_note_states_the_samples_per_image_value_not_a_parameter_name():
    t = grid_b_table(_grid_b_frame(), "paper", "per_image", "caption", 3, samples_per_image=7)
    assert any("7 samples per real image" in n for n in t.notes)
    # one seed: no sd, and the table still renders (the sd frame keeps every cell, NaN)
    from pipeline.report.tables import to_latex, to_markdown

    assert "| 2 | 0.300 | 0.350 |" in to_markdown(t) and "0.300" in to_latex(t)
    assert not any("segment.grid_b" in n for n in t.notes)
    unknown = grid_b_table(_grid_b_frame(), "paper", "per_image", "caption", 3)
    assert not any("segment.grid_b" in n or "None" in n for n in unknown.notes)
    assert t.labels["FAKE"] == "SinGAN-Seg only"


def test_every_figure_has_a_caption_with_its_weights():
    prov = {"UNet++ encoder": {"random-init"}, "quality: inception_fid": {"pretrained: fid.pt"}}
    what, weights = figure_caption("grid_b", prov, {"random-init"}, samples_per_image=2)
    assert "higher is better" in what and "2 samples per real image" in what and weights == "UNet++ encoder RANDOM-INIT"
    assert figure_caption("gan_by_k", prov, set())[1] == "Inception inception_fid pretrained"
    assert "style-transfer VGG16 RANDOM-INIT" in figure_caption("samples_phantom_000", prov, {"random-init"})[1]
    for stem in ("mask_foreground", "mask_mean_std", "learning_curves", "samples_baselines"):
        what, weights = figure_caption(stem, prov, set())
        assert what.endswith(".") and weights and "see the header" not in weights, stem


def test_the_baselines_figure_starts_with_a_labelled_strip_of_real_pairs(tmp_path, monkeypatch):
    """Issue 23: baseline samples beside a real reference row, each in its own labelled strip."""
    from helpers import make_project

    from pipeline.report import figures as report_figures
    from pipeline.report.config import ReportParams

    make_project(tmp_path, n_per_fold=(3, 2, 2), synthetic=("dcgan/nall", "fastgan/n5"), samples=2)
    for gan in ("dcgan/nall", "fastgan/n5"):  # the baselines' layout: synthetic/<gan>/n<K>/{images,masks}
        (tmp_path / "synthetic" / gan / "gss0").rename(tmp_path / "synthetic" / gan / "tmp")
        for sub in ("images", "masks"):
            (tmp_path / "synthetic" / gan / "tmp" / sub).rename(tmp_path / "synthetic" / gan / sub)
    seen = {}
    real_grid = report_figures.figures.sample_grid

    def spy(rows, path, mark=""):
        seen[Path(path).name] = [(label, len(pairs)) for label, pairs in rows]
        return real_grid(rows, path, mark=mark)

    monkeypatch.setattr(report_figures.figures, "sample_grid", spy)
    params = ReportParams(real=str(tmp_path / "data/real"), synthetic=str(tmp_path / "synthetic"), samples_per_model=3)
    written = report_figures.sample_grids(params, tmp_path / "out")
    assert tmp_path / "out" / "samples_baselines.png" in written
    strips = seen["samples_baselines.png"]
    assert strips[0] == ("real images (reference): the first 3 training pairs", 3)
    assert [label for label, _ in strips[1:]] == ["DCGAN, trained on all images", "FastGAN, trained on 5 images"]
    assert Image.open(tmp_path / "out" / "samples_baselines.png").size[1] > 0
