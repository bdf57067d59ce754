"""The GAN comparison at equal training size (issue 13 section 2): FID and KID of K fakes vs the
same first K reals, on tiny generated sets, and its report table, figure and captions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline import quality
from pipeline.metrics import equal_k
from pipeline.metrics.features import image_index
from pipeline.metrics.inception import load_inception
from pipeline.report.quality_tables import quality_tables
from pipeline.report.tables import fill_caption_weights, to_latex, to_markdown
from singanseg.io import write_png

# ids whose natural-sort order (img1, img2, img3, img10) differs from sorted() (img1, img10, img2)
REAL_IDS = ["img1", "img2", "img3", "img10"]


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), np.uint8))  # 48x48 blocks: distinct, cheap images


def _shift(img: np.ndarray) -> np.ndarray:
    return (255 - img[::-1]).copy()  # a clearly different image of the same size


@pytest.fixture(scope="module")
def by_k(tmp_path_factory):
    """real img1..img10; fastgan n2/n3 fakes = copies of the first K reals (in natural order) for 4
    sets; dcgan/nall = altered copies; singan/gss0 with 2 samples per model (sample 0 = the real)."""
    root = tmp_path_factory.mktemp("equal_k")
    mp = pytest.MonkeyPatch()
    mp.setenv("SINGANSEG_CACHE", str(root / "cache"))
    real = {i: _texture(n) for n, i in enumerate(REAL_IDS)}
    for i, img in real.items():
        write_png(root / "real/images" / f"{i}.png", img)
    for k in (2, 3):
        for n in range(4 * k):
            write_png(root / f"synthetic/fastgan/n{k}/images/fastgan_{n}.png", real[REAL_IDS[n % k]])
    for n in range(12):
        write_png(root / f"synthetic/dcgan/nall/images/dcgan_{n}.png", _shift(real[REAL_IDS[n % 3]]))
    for i in REAL_IDS:
        write_png(root / f"synthetic/singan/gss0/images/{i}_0.png", real[i])
        write_png(root / f"synthetic/singan/gss0/images/{i}_1.png", _shift(real[i]))
    params = quality.QualityParams(fid=quality.FIDOptions(dims=64))
    net = load_inception("inception_fid", "pretrained", None, resize=True)
    sets = quality.discover_sets(root / "synthetic")
    out = root / "metrics/quality"
    result = quality.gan_by_k(params, image_index(root / "real"), root / "synthetic", sets, net, out)
    yield root, out, result
    mp.undo()


def _row(result, k, name):
    return next(r for r in result["rows"] if r["k"] == k and r["set"] == name)


def test_kid_is_the_torchmetrics_estimate_and_zero_mean_for_equal_sets():
    torchmetrics_image = pytest.importorskip("torchmetrics.image.kid")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 8)), rng.normal(0.5, 1.0, size=(6, 8))
    # a feature extractor that returns its input: torchmetrics' KID on our features, subset size K
    kid = torchmetrics_image.KernelInceptionDistance(feature=torch.nn.Flatten(), subsets=3, subset_size=6)
    kid.update(torch.from_numpy(x).float(), real=True)
    kid.update(torch.from_numpy(y).float(), real=False)
    assert float(kid.compute()[0]) == pytest.approx(equal_k.kid(x, y), rel=1e-4)
    # two draws of one distribution: ~0 (unbiased), far below a shifted distribution's KID
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    assert abs(equal_k.kid(a, b)) < 0.02 * equal_k.kid(a, b + 0.5)
    # a set against itself (not an independent draw): the unbiased estimate is exactly
    # -(2/K)(mean k(x,x) - mean k(x,x')) <= 0, not 0
    assert equal_k.kid(x, x) <= 0


def test_equal_k_scores_sets_of_k_against_the_first_k_reals(by_k):
    _, out, result = by_k
    assert result["ks"] == [2, 3] and result["fid_dims"] == 64 and result["tap"] == "pool1"
    for k in (2, 3):
        fast = _row(result, k, f"fastgan/n{k}")
        # each set of K fakes is the first K reals (natural-sort order): FID and KID ~0
        assert fast["sets"] == 4 and fast["trained_on"] == f"first {k}" and "note" not in fast
        assert max(fast["fid_per_set"]) < 1e-6 and fast["kid_mean"] <= 0  # KID of a set with itself: <= 0
        ref = _row(result, k, "dcgan/nall")
        assert ref["trained_on"] == "all (reference)" and ref["sets"] == 4
        # an altered set scores worse, by orders of magnitude beyond the identical sets' rounding
        assert ref["fid_mean"] > 0.1 and ref["kid_mean"] > fast["kid_mean"]
        sg = _row(result, k, "singan/gss0")
        # set 0 = sample 0 of the first K models = the reals; set 1 the altered samples; only 2 sets
        assert sg["sets"] == 2 and "2 set(s) of K fakes, not 4" in sg["note"]
        assert sg["fid_per_set"][0] < 1e-6 and sg["fid_per_set"][1] > 0.1
        assert sg["kid_per_set"][0] < sg["kid_per_set"][1]
    assert not any(r["set"] == "fastgan/n3" for r in result["rows"] if r["k"] == 2)
    csv = (out / "gan_by_k.csv").read_text().splitlines()
    assert csv[0].startswith("k,generator,set,series,trained_on,sets,fid_mean") and len(csv) == 1 + len(result["rows"])
    assert all("inception_fid: pretrained" in line for line in csv[1:])
    assert json.loads((out / "gan_by_k.json").read_text())["rows"] == json.loads(json.dumps(result["rows"]))


def test_report_table_lists_every_k_and_captions_carry_the_weights(by_k, tmp_path):
    root, out, result = by_k
    prov = {"inception_fid": "pretrained: fid.pt", "lpips": "random-init: none"}
    (out / "summary.json").write_text(json.dumps({"sets": {}, "options": {}, "provenance": prov}))
    tables, figs, _, missing = quality_tables(out, tmp_path / "figures", "Profile test; commit abc", 3)
    t = next(t for t in tables if t.name == "gan_by_k")
    assert sorted(set(t.mean["K"])) == result["ks"] == [2, 3]
    assert {lbl.split(":")[0] for lbl in t.mean.index} == {"K=2", "K=3"}
    assert (t.mean["network weights"] == "inception_fid: pretrained").all()
    assert "FID from K images, K much smaller than 2048, is biased upwards" in t.caption and "64-d (pool1)" in t.caption
    assert any(f.name == "gan_by_k.png" and f.is_file() for f in figs)
    assert not any("equal training size" in m for m in missing)
    fill_caption_weights(tables, {"lpips": {"random-init: none"}})
    assert "network weights: inception_fid: pretrained" in to_markdown(t).split("\n")[0]
    assert r"network weights: inception\_fid: pretrained" in to_latex(t)
