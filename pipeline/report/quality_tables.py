"""Report tables and figures from `metrics/quality/` (the `quality` stage's outputs).

- SIFID of SinGAN-Seg samples against their training images, by gen_start_scale and
  style-transfer ratio (the paper's SIFID table; its values are not available to us,
  paper.md section 7), with FID and LPIPS diversity beside it;
- FID (and LPIPS diversity) of SinGAN-Seg vs DCGAN / Progressive GAN / FastGAN by training
  set size (the paper's GAN comparison);
- the same comparison at equal training size K: FID and KID of K fakes vs the same first K
  reals, per generator and K (`gan_by_k`, table and figure; quality.py `gan_by_k`);
- foreground-percentage distributions of real and synthetic masks (Fig 3, 6) and the
  pixel-wise mean/std maps of sampled masks (Fig 5).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.report import plots as figures
from pipeline.report.tables import Table
from pipeline.results.names import GENERATORS as GAN_NAMES
from pipeline.results.names import display_name

_ST = re.compile(r"^singan(?:_st(?P<c>\d+)to(?P<s>\d+))?/gss(?P<gss>\d+)$")
_GAN = re.compile(r"^(?P<gan>[a-z0-9_]+)/n(?P<k>\d+|all)$")
# every mask statistic of the report is a percentage of pixels (metrics/masks.py writes percent)
MASK_FG = "mask foreground (% of pixels)"


def _short(weights: str) -> str:
    """A provenance string as a row says it: RANDOM loud, pretrained named."""
    w = str(weights)
    return "RANDOM-INIT" if "random" in w.lower() else w.split(":", 1)[0]


# provenance.json `style_network` -> what a row calls it; sets written before the key existed ran VGG16
STYLE_NETWORKS = {"vgg16": "VGG16", "vgg19": "VGG19", "efficientnet_lite0": "EfficientNet-Lite0"}


def style_network(rec: dict) -> str:
    """The style network of one stylised set's provenance record, as rows and captions name it."""
    return STYLE_NETWORKS.get(str(rec.get("style_network", "vgg16")), str(rec.get("style_network")))


def style_summary(style: set[str], sep: str = ": ") -> str:
    """'VGG16: RANDOM-INIT' or 'EfficientNet-Lite0: efficientnet_lite0-imagenet:...' from the
    '<network>|<weights>' items of build.style_weights (a bare weights string is VGG16's)."""
    by_net: dict[str, set[str]] = {}
    for item in style:
        net, bar, w = item.partition("|")
        net, w = (net, w) if bar else ("VGG16", item)
        by_net.setdefault(net, set()).add("RANDOM-INIT" if "random" in w else w)
    return ", ".join(f"{n}{sep}{', '.join(sorted(ws))}" for n, ws in sorted(by_net.items())) or f"network{sep}none"


def set_weights(name: str, prov: dict[str, str], synthetic: Path | None) -> str:
    """Which networks' weights produced one set's row (SIFID/FID Inception, LPIPS trunk, style network)."""
    parts = [f"{net}: {_short(w)}" for net, w in sorted(prov.items())]
    m = _ST.match(name)
    if m and m["c"] and synthetic is not None:
        p = synthetic / name / "provenance.json"
        if p.is_file():
            rec = json.loads(p.read_text())
            parts.append(f"style {style_network(rec)}: {_short(rec.get('weights', '?'))}")
        else:
            parts.append("style network: unknown")
    return "; ".join(parts)


def quality_tables(root: Path, fig_dir: Path, caption: str, digits: int, synthetic: Path | None = None,
                   mark: str = "", num_samples: int | None = None):
    """(tables, figures, provenance {what: {weights}}, missing) from metrics/quality; `mark` goes
    into every figure (figures.run_mark), `num_samples` (generate.num_samples) into the notes."""
    summary_path = root / "summary.json"
    if not summary_path.is_file():
        return [], [], {}, ["SIFID / FID / LPIPS tables and mask figures (stage `quality`)"]
    summary = json.loads(summary_path.read_text())
    prov = {f"quality: {k}": {v} for k, v in summary.get("provenance", {}).items()}
    sets = summary.get("sets", {})
    tables, figs, missing = [], [], []

    sifid_rows = {n: s for n, s in sets.items() if _ST.match(n)}
    if sifid_rows:
        opts = summary["options"]
        idx = sorted(sifid_rows, key=lambda n: (int(_ST.match(n)["gss"]), _ST.match(n)["c"] is not None, n))
        mean = pd.DataFrame({
            "SIFID": [sifid_rows[n]["sifid"] for n in idx],
            "FID": [sifid_rows[n]["fid"] for n in idx],
            "LPIPS diversity": [sifid_rows[n]["lpips_diversity"] for n in idx],
            MASK_FG: [sifid_rows[n]["mask_foreground_mean"] for n in idx],
            "network weights": [set_weights(n, summary.get("provenance", {}), synthetic) for n in idx],
        }, index=pd.Index([display_name(n) for n in idx], name="SinGAN-Seg samples"))  # fmt: skip
        std = pd.DataFrame({"SIFID": [sifid_rows[n]["sifid_std"] for n in idx]}, index=mean.index)
        sifid_opts = opts["sifid"]
        tables.append(Table(
            "sifid", "SIFID of SinGAN-Seg samples vs their training images, by gen_start_scale and style transfer",
            mean, std, {"SIFID": "min", "FID": "min"},
            caption + f"; SIFID dims {sifid_opts['dims']}, resize {sifid_opts['resize']}, network {sifid_opts['network']}; "
            f"FID dims {opts['fid']['dims']}",
            digits, notes=["The paper reports lower SIFID after style transfer; its numeric table was not "
                           "available to us (docs: paper.md section 7)."],
        ))  # fmt: skip
    else:
        missing.append("SIFID table (no SinGAN-Seg sets in synthetic/)")

    gan_rows = []
    for n, s in sets.items():
        if m := _GAN.match(n):
            gan_rows.append((GAN_NAMES.get(m["gan"], m["gan"]), m["k"], s, n, display_name(n)))
    for n, s in sets.items():
        if (m := _ST.match(n)) and not m["c"]:
            gan_rows.append((display_name(n), "each", s, n, display_name(n) + ", one model per training image"))
    if gan_rows:
        gan_rows.sort(key=lambda r: (not r[0].startswith("SinGAN-Seg"), r[0], int(r[1]) if r[1].isdigit() else 10**9))
        mean = pd.DataFrame(
            {"FID": [r[2]["fid"] for r in gan_rows], "FID dims": [r[2]["fid_dims"] for r in gan_rows],
             "LPIPS diversity": [r[2]["lpips_diversity"] for r in gan_rows],
             MASK_FG: [r[2]["mask_foreground_mean"] for r in gan_rows],
             "network weights": [set_weights(r[3], summary.get("provenance", {}), synthetic) for r in gan_rows]},
            index=pd.Index([r[4] for r in gan_rows], name="generator"),
        )  # fmt: skip
        tables.append(Table(
            "gan_comparison", "FID of each generator's samples vs its real training images",
            mean, None, {"FID": "min"}, caption, digits,
            notes=["SinGAN-Seg trains one model per image; its FID compares all samples with their source images. "
                   "FID from fewer images than feature dimensions is biased upwards; compare rows of equal size."],
        ))  # fmt: skip

    by_k = gan_by_k_table(root / "gan_by_k.json", fig_dir, caption, digits, mark, num_samples)
    if by_k is None:
        missing.append("GAN comparison at equal training size K (no FastGAN subset n<K> in synthetic/, stage `quality`)")
    else:
        tables.append(by_k[0])
        figs.append(by_k[1])

    mask_rows = {}
    if (root / "real_masks.json").is_file():
        mask_rows["real masks"] = json.loads((root / "real_masks.json").read_text())["distribution"]
    for n in sets:
        p = root / f"{n.replace('/', '__')}.json"
        if p.is_file() and not ((m := _ST.match(n)) and m["c"]):
            mask_rows[display_name(n)] = json.loads(p.read_text())["masks"]["distribution"]
    if mask_rows:  # issue 23 s2: empty and near-empty masks per set
        thr = next(iter(mask_rows.values())).get("near_empty_percent", 1.0)
        mdf = pd.DataFrame({
            "masks": [d["count"] for d in mask_rows.values()],
            MASK_FG + " mean": [d["mean"] for d in mask_rows.values()],
            "median": [d["median"] for d in mask_rows.values()],
            "empty (0 px), fraction": [d.get("empty_fraction") for d in mask_rows.values()],
            f"near-empty (< {thr:g} % of frame), fraction": [d.get("near_empty_fraction") for d in mask_rows.values()],
        }, index=pd.Index(list(mask_rows), name="set"))  # fmt: skip
        tables.append(Table("mask_stats", "Mask statistics of real and synthetic sets", mdf, None, {}, caption
                            + f"; near-empty: under {thr:g} % of the frame's pixels, empty ones included", digits))  # fmt: skip

    real_masks = root / "real_masks.json"
    hists = {}
    if real_masks.is_file():
        h = json.loads(real_masks.read_text())["distribution"]["histogram"]
        hists["real masks"] = (h["edges"], h["counts"])
    for n in sets:
        if (m := _ST.match(n)) and m["c"]:
            continue  # style transfer changes the images only: its masks are those of the plain set (drawn once)
        p = root / f"{n.replace('/', '__')}.json"
        if p.is_file():
            h = json.loads(p.read_text())["masks"]["distribution"]["histogram"]
            hists[display_name(n)] = (h["edges"], h["counts"])
    if hists:
        figs.append(figures.histograms(hists, fig_dir / "mask_foreground.png", MASK_FG,
                                       "Foreground percentage of real and synthetic masks", mark))  # fmt: skip

    maps, maps_of = [], ""
    for n in sets:
        if not _ST.match(n) or _ST.match(n)["c"]:
            continue
        d = root / "mask_stats" / n.replace("/", "__")
        for mean_path in sorted(d.glob("*_mean.npy"))[:6]:
            std_path = mean_path.with_name(mean_path.name.replace("_mean.npy", "_std.npy"))
            maps.append((f"model of {mean_path.name[:-9][:12]}", np.load(mean_path), np.load(std_path)))
        maps_of = display_name(n)
        break
    if maps:
        figs.append(figures.mask_maps(maps, fig_dir / "mask_mean_std.png",
                                      f"Pixel-wise mean and std of sampled masks per model ({maps_of})", mark))  # fmt: skip
    return tables, figs, prov, missing


def _gan_label(row: dict) -> str:
    """A gan_by_k row's generator, the same at every K (one line per label in the figure)."""
    if row.get("trained_on") == "reference":
        return row.get("series", row["set"])
    held = " (held-out reals)" if row.get("reals") == "held-out" else ""
    return _gan_label_plain(row) + held


def _gan_label_plain(row: dict) -> str:
    if _ST.match(row["set"]):
        return display_name(row["set"]) + ", one model per image"
    if row["trained_on"].startswith("first"):
        return f"{GAN_NAMES.get(row['generator'], row['generator'])}, trained on the K images"
    return display_name(row["set"]) + " (reference)"


def _iv(row: dict, m: str) -> str:
    lo, hi = row.get(f"{m}_low"), row.get(f"{m}_high")
    return "" if lo is None or hi is None else f"[{lo:.3g}, {hi:.3g}]"


def gan_by_k_table(path: Path, fig_dir: Path, caption: str, digits: int, mark: str = "", num_samples: int | None = None):
    """(Table, figure) of the GAN comparison at equal training size from quality's gan_by_k.json; None if absent."""
    if not path.is_file():
        return None
    rec = json.loads(path.read_text())
    rows = rec["rows"]
    labels = [f"K={r['k']}: {_gan_label(r)}" for r in rows]
    # FastGAN_K and SinGAN-Seg (trained on the K images) first, then the reference rows, per K
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["k"], not rows[i]["trained_on"].startswith("first"), labels[i]))
    rows, labels = [rows[i] for i in order], [labels[i] for i in order]
    mean = pd.DataFrame({
        "K": [r["k"] for r in rows],
        "sets": [r.get("sets", 0) for r in rows],
        "FID": [r.get("fid_mean") for r in rows],
        "KID": [r.get("kid_mean") for r in rows],
        "KID interval": [_iv(r, "kid") for r in rows],
        "FID interval": [_iv(r, "fid") for r in rows],
        "gate": [r.get("gate", "") for r in rows],
        "FID dims": [r["fid_dims"] for r in rows],
        "network weights": [f"{rec['network']}: {_short(r['weights'].split(': ', 1)[1])}" for r in rows],
        "note": [r.get("note", "") for r in rows],
    }, index=pd.Index(labels, name="generator at training size K"))  # fmt: skip
    std = pd.DataFrame({"FID": [r.get("fid_std") for r in rows],
                        "KID": [r.get("kid_std") for r in rows]}, index=mean.index)  # fmt: skip
    dims = rec["fid_dims"]
    # plain ASCII: the caption goes into LaTeX as text (no math mode for << or +-)
    bias = (f"FID from K images, K much smaller than 2048, is biased upwards (the covariance of K feature vectors "
            f"is singular for K up to {dims}), "
            "so compare FID only between rows of equal K; KID (unbiased MMD^2, cubic polynomial kernel, subset size K) "
            "is unbiased at small K (so it can be negative for close sets; its spread over sets is large for K below 10)")  # fmt: skip
    cap = (f"{caption}; images resized before Inception: {rec.get('resize', 'bilinear straight to 299 px, no antialias')}; "
           f"FID and KID between K fakes and the same first K real training images (natural-sort order), "
           "and, in rows marked held-out, K reals of the other folds the generator never saw; "
           "intervals: 95 % percentile bootstrap over fake sets and real subsets; gate: 'did not train' "
           "unless the KID interval beats the trivial generator (mean colour + Gaussian noise); "
           f"mean +- std over up to {rec['sets_requested']} sets of K fakes; Inception {rec['network']} features, "
           f"{dims}-d ({rec['tap']}), for FID and KID; {bias}")  # fmt: skip
    t = Table("gan_by_k", "GAN comparison at equal training size K: FID and KID of K fakes vs the same K reals",
              mean, std, {}, cap, digits, notes=[
                  "FastGAN_K: set s = fakes s*K..(s+1)*K-1. SinGAN-Seg: its first K models (one per real image), "
                  "set s = sample s of each model, so at most "
                  + (f"{num_samples} sets (the samples per model)" if num_samples else "as many sets as samples per model")
                  + ". DCGAN and Progressive GAN "
                  "(trained on all images) are reference rows scored the same way against the same K reals.",
                  "Rows with fewer than the requested sets say so in `note` (paper.md section 6, inferred protocol)."])  # fmt: skip
    t.weights = "; ".join(dict.fromkeys(mean["network weights"]))
    long = pd.DataFrame([
        {"K": r["k"], "generator": _gan_label(r), "metric": m, "value": v}
        for r in rows for m, key in ((f"FID ({dims}-d)", "fid_per_set"), (f"KID ({dims}-d)", "kid_per_set"))
        for v in r.get(key) or []
    ])  # fmt: skip
    fig = figures.metric_by_k(long, fig_dir / "gan_by_k.png",
                              f"FID and KID (lower is better) of K fakes vs the same K reals ({rec['network']}, {dims}-d; "
                              "FID biased at K << 2048)", mark)  # fmt: skip
    return t, fig
