"""DVC stage `quality`: SIFID, FID, LPIPS diversity and mask statistics of every synthetic set.

Reads `data/real` and every synthetic set present (design notes, stage table):

    synthetic/singan/gss<S>/                 SinGAN-Seg samples `<srcid>_<n>`
    synthetic/singan_st<c>to<s>/gss<S>/      the same after style transfer (paper.md section 2)
    synthetic/<gan>/n<K>/                    baseline GAN trained on the first K real ids;
                                             samples `<gan>_<n>` (paper.md section 6)

and writes `metrics/quality/` and, for `dvc metrics` / `dvc plots`, `metrics/headline/quality.json`
and `sifid_by_style.csv` (pipeline/results/headline.py):

    summary.json                  one entry per set (DVC metrics file)
    <set>.json                    every number of one set, its options and weights provenance
    <set>.sifid.csv               per (real, synthetic) pair SIFID (SinGAN sets)
    <set>.lpips.csv               per model LPIPS diversity / to-training
    real_masks.json               foreground-percentage distribution of the real masks (Fig 3)
    gan_by_k.json, gan_by_k.csv   the GAN comparison at equal training size K (metrics/equal_k.py):
                                  FID and KID of K fakes vs the first K reals, per generator and K
                                  (the CSV is dvc.yaml's `FID against K` plot)
    mask_stats/<set>/<model>_{mean,std}.{npy,png}   (Fig 5)

`<set>` is the set path with `/` replaced by `__` (e.g. `singan__gss0`). Which set is
compared with which real images: SinGAN sets with the real images their samples come from
(SIFID per pair, FID against those sources); baselines with the first K real ids in id
order, the images they were trained on (FastGAN-4ch `--num_imgs_to_train`, paper.md
section 6). Logged to MLflow with the weights provenance as tags.

    python -m pipeline.quality [--params params.yaml] [--real data/real] [--synthetic synthetic] [--out metrics/quality]
                               [--headline metrics/headline]
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.infra.mlflow_tracker import child_run, log_metrics, stage_run
from pipeline.metrics import equal_k, fair
from pipeline.metrics.equal_k import EqualKOptions
from pipeline.metrics.features import FeatureBank, image_index
from pipeline.metrics.fid import FIDOptions, fid_paths
from pipeline.metrics.lpips_diversity import LPIPSOptions
from pipeline.metrics.masks import MaskOptions, mask_summary
from pipeline.metrics.registry import MetricContext, calc_metric
from pipeline.metrics.sifid import SIFIDOptions
from pipeline.results.headline import HEADLINE_DIR, write_quality
from pipeline.stage import Stage
from singanseg.io import InputError, atomic_dir, natural_sorted, write_text
from singanseg.progress import Progress
from singanseg.typed import ConfigError

SINGAN_SET = re.compile(r"^(singan|singan_st\d+to\d+)/gss\d+$")
BASELINE_SET = re.compile(r"^(?P<gan>[a-z][a-z0-9_]*)/n(?P<k>\d+|all)$")


@dataclass(frozen=True)
class QualityParams:
    device: str = "cpu"
    weights_dir: str | None = None  # used by every section whose own weights_dir is null
    sifid: SIFIDOptions = field(default_factory=SIFIDOptions)
    fid: FIDOptions = field(default_factory=FIDOptions)
    lpips: LPIPSOptions = field(default_factory=LPIPSOptions)
    masks: MaskOptions = field(default_factory=MaskOptions)
    fid_singan: bool = True  # FID of SinGAN sets against their source images (for the GAN comparison)
    # issue 23 (quality's cost): 0 = every sample of a SinGAN-Seg set in its FID (the default);
    # N = the first N samples of each model only (ids `<src>_<n>`, n < N), a named cut that the
    # set's FID entry records (its SIFID, LPIPS and masks still take every sample)
    fid_singan_samples: int = 0
    gan_by_k: EqualKOptions = field(default_factory=EqualKOptions)  # the GAN comparison at equal size K
    track: bool = True

    def section(self, name: str):
        opts = getattr(self, name)
        if getattr(opts, "weights_dir", "x") is None and self.weights_dir:
            opts = dataclasses.replace(opts, weights_dir=self.weights_dir)
        return opts


def discover_sets(synthetic: Path) -> list[tuple[str, str, int | None]]:
    """(set name, kind, K) for every set folder holding images/; unknown layouts are errors."""
    if not synthetic.is_dir():
        return []
    out = []
    for images in sorted(synthetic.glob("*/*/images")):
        name = images.parent.relative_to(synthetic).as_posix()
        if SINGAN_SET.match(name):
            out.append((name, "singan", None))
        elif m := BASELINE_SET.match(name):
            out.append((name, "baseline", None if m["k"] == "all" else int(m["k"])))
        else:
            raise InputError(f"{images.parent}: unknown synthetic set layout (expected singan/gss<S>, singan_st<c>to<s>/gss<S> or <gan>/n<K|all>)")
    return out


def _sources(ids, where: str) -> list[str]:
    src = []
    for i in ids:
        s, sep, n = i.rpartition("_")
        if not sep or not n.isdigit():
            raise InputError(f"{where}: sample id '{i}' is not '<real id>_<n>'")
        src.append(s)
    return sorted(set(src))


def evaluate(params: QualityParams, real: Path, synthetic: Path, out: Path) -> dict:
    """Compute every metric (pipeline/metrics/registry.py); write into `out` (an empty folder).
    Returns the summary."""
    real_idx = image_index(real)
    sets = discover_sets(synthetic)
    sifid_opts, fid_opts, lpips_opts = params.section("sifid"), params.section("fid"), params.section("lpips")
    sifid_opts.validate("quality.sifid")
    if params.fid_singan_samples < 0:
        raise ConfigError(f"quality.fid_singan_samples: must be >= 0 (0 = every sample), got {params.fid_singan_samples}")
    fid_opts.validate("quality.fid")
    ctx = MetricContext(device=params.device)  # one network per options, shared by every set

    summary: dict = {"sets": {}, "options": dataclasses.asdict(params)}
    real_masks = mask_summary(real, params.masks.bin_width, params.masks.near_empty_percent)
    write_text(out / "real_masks.json", json.dumps(real_masks, indent=2) + "\n")
    summary["real_masks"] = {k: real_masks["distribution"][k] for k in ("count", "mean", "std", "median", "empty_fraction", "near_empty_fraction")}
    # a line at least every 30 s: a set's metric passes take minutes at paper size (issue 17)
    for name, kind, k in Progress("quality", len(sets), "synthetic sets").iterate(sets):
        folder = synthetic / name
        stem = name.replace("/", "__")
        fake_idx = image_index(folder)
        ctx.name = name
        entry: dict = {"kind": kind, "count": len(fake_idx)}
        fid_fakes = list(fake_idx.values())
        if kind == "singan":
            if params.fid_singan_samples:
                n_max = params.fid_singan_samples  # ids are `<src>_<n>` (checked by _sources below)
                fid_fakes = [p for i, p in fake_idx.items() if (n := i.rpartition("_")[2]).isdigit() and int(n) < n_max]
            if params.fid_singan:  # one Inception pass for SIFID's and FID's taps where the inputs are the same
                _shared_pass(ctx, fid_fakes, sifid_opts, fid_opts)
            res = calc_metric("sifid", folder, real, sifid_opts, ctx)
            entry["sifid"] = {k2: v for k2, v in res.summary.items() if k2 != "pairs"}
            write_text(out / f"{stem}.sifid.csv", res.table)
            ref_ids = _sources(fake_idx, str(folder))
        else:
            if k is not None and k > len(real_idx):
                raise InputError(f"{folder}: trained on the first {k} real images but {real} holds {len(real_idx)}")
            # n<K>: the first K ids in natural-sort order (the baselines' list_pairs order); nall: every real image
            ref_ids = natural_sorted(real_idx)[:k]
        if kind == "baseline" or params.fid_singan:
            if len(fid_fakes) == len(fake_idx):
                entry["fid"] = calc_metric("fid", folder, [real_idx[i] for i in ref_ids], fid_opts, ctx).summary
            else:  # fid_singan_samples: a subset of the set's images
                net = ctx.inception(fid_opts.network, fid_opts.weights, fid_opts.weights_dir, True)
                entry["fid"] = fid_paths([real_idx[i] for i in ref_ids], fid_fakes, fid_opts, net, ctx.device, f"fid {name}", ctx.bank)
                entry["fid"]["samples"] = f"the first {params.fid_singan_samples} sample(s) of each model (quality.fid_singan_samples)"
            entry["fid"]["reference"] = f"{len(ref_ids)} real ids" + (" (sources of the samples)" if kind == "singan" else f" (first {k})" if k else " (all)")
        ctx.lpips(lpips_opts)  # loaded with the first set even where its diversity is undefined: provenance
        try:
            lp = calc_metric("lpips", folder, real if kind == "singan" else None, lpips_opts, ctx)
            write_text(out / f"{stem}.lpips.csv", lp.table)
            entry["lpips"] = {k2: v for k2, v in lp.summary.items() if k2 != "per_model"}
        except InputError as e:  # e.g. one sample per model: diversity undefined, say so
            entry["lpips"] = {"metric": "lpips_diversity", "value": None, "note": str(e)}
        ctx.out = out / "mask_stats" / stem
        ms = calc_metric("masks", folder, None, params.masks, ctx).summary
        entry["masks"] = {"distribution": ms["distribution"]}
        if params.masks.pixelwise:
            entry["masks"]["per_model"] = ms["per_model"]
        write_text(out / f"{stem}.json", json.dumps(entry, indent=2) + "\n")
        summary["sets"][name] = {
            "sifid": entry.get("sifid", {}).get("value"),
            "sifid_std": entry.get("sifid", {}).get("std"),
            "fid": entry.get("fid", {}).get("value"),
            "fid_dims": entry.get("fid", {}).get("dims"),
            "lpips_diversity": entry["lpips"].get("value"),
            "mask_foreground_mean": ms["distribution"]["mean"],
            "mask_empty_fraction": ms["distribution"]["empty_fraction"],
            "mask_near_empty_fraction": ms["distribution"]["near_empty_fraction"],
        }
    if params.gan_by_k.enabled:
        net = ctx.inception(fid_opts.network, fid_opts.weights, fid_opts.weights_dir, True)
        by_k = gan_by_k(params, real_idx, synthetic, sets, net, out, ctx.bank)
        if by_k is not None:
            summary["gan_by_k"] = {f"{r['set']}@K{r['k']}": {m: r.get(m) for m in ("fid_mean", "kid_mean", "sets", "gate")}
                                  for r in by_k["rows"] if r.get("reals", "training") == "training" and r["trained_on"] != "reference"}
            summary["gan_claim"] = by_k["claim"]
    summary["provenance"] = ctx.provenance()
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _shared_pass(ctx: MetricContext, paths, sifid_opts: SIFIDOptions, fid_opts: FIDOptions) -> None:
    """SIFID's spatial tap and FID's pooled tap of a SinGAN-Seg set in one pass per image, where
    both metrics use the same network (the bank passes an image once only where both inputs are
    the same tensor). Nothing to share with different networks (the paper's: ImageNet vs FID weights)."""
    from pipeline.metrics.fid import FID_TAPS
    from pipeline.metrics.sifid import SIFID_TAPS

    sifid_net = ctx.inception(sifid_opts.network, sifid_opts.weights, sifid_opts.weights_dir, sifid_opts.resize)
    if sifid_net is not ctx.inception(fid_opts.network, fid_opts.weights, fid_opts.weights_dir, True):
        return
    ctx.bank.compute(sifid_net, paths, pooled=(FID_TAPS[fid_opts.dims], fid_opts.resize), spatial=SIFID_TAPS[sifid_opts.dims],
                     batch_size=fid_opts.batch_size, device=ctx.device)  # fmt: skip


GAN_BY_K_COLUMNS = ("k", "generator", "set", "series", "trained_on", "sets", "fid_mean", "fid_std", "kid_mean",
                    "kid_std", "fid_dims", "weights", "note", "reals", "fid_low", "fid_high", "kid_low", "kid_high", "gate")  # fmt: skip


def gan_by_k(params: QualityParams, real_idx: dict[str, Path], synthetic: Path, sets, net, out: Path, bank=None) -> dict | None:
    """The GAN comparison at equal training size (metrics/equal_k.py) for every K of the FastGAN
    subsets present (`synthetic/fastgan/n<K>`, made from `baselines.subsets.fastgan`); writes
    gan_by_k.json and gan_by_k.csv. None when there is no FastGAN subset to compare at."""
    opts, fid_opts = params.gan_by_k, params.section("fid")
    opts.validate("quality.gan_by_k")
    # K >= 2: a covariance and the unbiased KID need two images per set
    ks = sorted({k for name, kind, k in sets if kind == "baseline" and name.startswith("fastgan/") and k is not None and k >= 2})
    if not ks:
        return None
    reals = natural_sorted(real_idx)
    weights = f"{net.network}: {net.provenance.weights}: {net.provenance.source}"
    bank = bank if bank is not None else FeatureBank()  # every image through Inception once
    features = lambda paths: equal_k.set_features(paths, net, fid_opts, params.device, bank)  # noqa: E731
    rows = []
    held = {}
    for k in ks:
        real_ids = reals[:k]
        real_feats = features([real_idx[i] for i in real_ids])
        pool = held_out_ids(real_idx, real_ids)
        if len(pool) >= k:
            held[k] = (features([real_idx[i] for i in pool]), pool)
        for name, kind, set_k in sets:
            if kind == "baseline" and set_k not in (k, None):
                continue  # another subset size: not trained on these K images
            if kind == "singan" and not re.fullmatch(r"singan/gss\d+", name):
                continue  # style-transferred sets are a refinement, not another generator
            folder = synthetic / name
            fake_idx = image_index(folder)
            where = f"gan_by_k {name} at K={k}"
            gan = name.split("/")[0]
            row = {"k": k, "generator": gan, "set": name, "fid_dims": fid_opts.dims, "weights": weights,
                   "series": name if kind == "singan" or set_k else f"{name} (all)"}  # the line of `dvc plots` (dvc.yaml)
            if kind == "singan":
                row["trained_on"] = f"first {k} (one model each)"
                try:
                    groups = equal_k.singan_sets(list(fake_idx), real_ids, opts.sets, where)
                except InputError as e:  # e.g. `singan.limit` trained fewer models: say so in the row
                    groups, row["note"] = [], str(e)
            else:
                row["trained_on"] = f"first {k}" if set_k else "all (reference)"
                groups = equal_k.baseline_sets(list(fake_idx), k, opts.sets)
                if not groups:
                    row["note"] = f"{len(fake_idx)} samples: fewer than K={k}"
            fakes = [features([fake_idx[i] for i in g]) for g in groups]
            if groups:
                row.update(equal_k.score(real_feats, fakes, fid_opts, opts.kid, where))
                if row["sets"] < opts.sets:
                    row["note"] = f"{row['sets']} set(s) of K fakes, not {opts.sets}: " + (
                        "set s takes sample s of each model, and each has only that many (generate.num_samples)"
                        if kind == "singan" else f"{len(fake_idx)} samples")  # fmt: skip
            rows.append(row)  # the training-reals row first, its held-out twin after it
            if groups:
                rows.extend(_fair_rows(row, fakes, real_feats, held.get(k), k, opts.bootstrap))
        rows.extend(_reference_rows(k, reals, real_idx, real_feats, held.get(k), synthetic, sets, fid_opts, net, params.device, opts, bank))
    _apply_gate(rows, opts.bootstrap)
    result = {
        "ks": ks, "sets_requested": opts.sets, "fid_dims": fid_opts.dims, "tap": equal_k.FID_TAPS[fid_opts.dims],
        "kid": {"kernel": equal_k.KID_KERNEL, "features": f"the FID features ({fid_opts.dims}-d)"} if opts.kid else None,
        "reals": "the first K real ids in natural-sort order (singanseg.io.list_pairs)",
        "network": net.network, **net.provenance.as_dict(), "rows": rows,
    }  # fmt: skip
    result["resize"] = fid_opts.resize.describe()
    result["bootstrap"] = dataclasses.asdict(opts.bootstrap)
    claim = fair.gan_claim(rows, level=opts.bootstrap.level)
    result["claim"] = {"verdict": claim[0], "interval": dataclasses.asdict(claim[1]) if claim[1] else None, "reals": claim[2]}
    for r in rows:
        r.pop("replicates", None)
    write_text(out / "gan_by_k.json", json.dumps(result, indent=2) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, GAN_BY_K_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out / "gan_by_k.csv", buf.getvalue())
    return result

def held_out_ids(real_idx: dict[str, Path], train_ids: list[str]) -> list[str]:
    """Reals a generator trained on `train_ids` never saw: the ids of the other folds
    (data/folds.csv beside data/real, the sequential 3-fold split), else every other id."""
    train = set(train_ids)
    rest = [i for i in natural_sorted(real_idx) if i not in train]
    folds_csv = next(iter(real_idx.values())).parent.parent.parent / "folds.csv"
    if folds_csv.is_file():
        folds = {r["id"]: r["fold"] for r in csv.DictReader(folds_csv.open())}
        seen = {folds.get(i) for i in train_ids}
        other = [i for i in rest if folds.get(i) not in seen]
        if len(other) >= len(train_ids):
            return other
    return rest


def _fair_rows(row: dict, fakes, real_feats, held, k: int, bopts) -> list[dict]:
    """Intervals on the training-reals row (in place) and its held-out-reals twin (returned)."""
    res = fair.score(real_feats, fakes, k, bopts)
    row.update({m: v for m, v in res.items() if m != "sets"}, reals="training")
    if held is None or not row["trained_on"].startswith("first"):
        return []  # trained on every real image: none is held out
    twin = {**{c: row[c] for c in ("k", "generator", "set", "trained_on", "fid_dims", "weights")},
            "series": row["series"] + " (held-out reals)", "reals": "held-out"}
    twin.update(fair.score(held[0], fakes, k, bopts))
    return [twin]


def _reference_rows(k, reals, real_idx, real_feats, held, synthetic, sets, fid_opts, net, device, opts, bank=None) -> list[dict]:
    """Real-vs-real (noise floor), reals at each generator's output size and back (resolution
    only), and the trivial generator (mean colour + noise), scored like the generators."""
    from pipeline.metrics.features import load_rgb

    tap = equal_k.FID_TAPS[fid_opts.dims]
    bank = bank if bank is not None else FeatureBank()  # the held-out reals' features, and each K's images again at a larger K
    feat = lambda items: bank.pooled(net, items, tap, fid_opts.batch_size, device, fid_opts.resize)  # noqa: E731
    base = {"k": k, "fid_dims": fid_opts.dims, "weights": f"{net.network}: {net.provenance.weights}: {net.provenance.source}"}
    out = []
    if held is None:
        return out
    pool_ids = held[1][: k * opts.sets]
    n = len(pool_ids) // k
    imgs = [load_rgb(real_idx[i]) for i in pool_ids[: n * k]]
    variants = {"real": ("reals (held-out halves)", [real_idx[i] for i in pool_ids[: n * k]])}  # the files: the held-out features
    sizes = {}
    for name, kind, _ in sets:
        if kind == "singan" and "_st" in name:
            continue
        first = next(iter(image_index(synthetic / name).values()))
        sizes.setdefault(load_rgb(first).shape[:2], name.split("/")[0])
    for size, gen in sorted(sizes.items()):
        variants[f"real@{size[0]}x{size[1]}"] = (f"reals at {size[0]}x{size[1]} and back ({gen}'s size)",
                                                [fair.down_and_back(a, size) for a in imgs])  # fmt: skip
    triv = fair.trivial_images([load_rgb(real_idx[i]) for i in reals[:k]], n * k, imgs[0].shape[:2], seed=k)
    variants["trivial"] = ("trivial: mean colour + Gaussian noise", triv)
    for key, (label, items) in variants.items():
        if n < 1:
            break
        f = feat(items)
        fakes = [f[s * k : (s + 1) * k] for s in range(n)]
        for reals_kind, pool in (("training", real_feats), ("held-out", held[0])):
            if key == "real" and reals_kind == "held-out":
                continue  # the held-out reals against themselves: not a noise floor
            r = {**base, "generator": key.split("@")[0], "set": key, "series": f"{label} ({reals_kind} reals)",
                 "trained_on": "reference", "reals": reals_kind, "note": label}
            r.update(fair.score(pool if reals_kind == "training" else pool[k:] if len(pool) >= 2 * k else pool, fakes, k, opts.bootstrap)
                     if reals_kind == "held-out" else fair.score(pool, fakes, k, opts.bootstrap))
            out.append(r)
    return out


def _apply_gate(rows: list[dict], bopts) -> None:
    """`gate` on every baseline row: 'did not train' unless it beats the trivial generator (KID)."""
    triv = {(r["k"], r["reals"]): r for r in rows if r["set"] == "trivial" and "replicates" in r}
    for r in rows:
        t = triv.get((r["k"], r.get("reals")))
        if t is None or "replicates" not in r or r["trained_on"] == "reference":
            continue
        r["gate"], diff = fair.gate(r, t, "kid", bopts.level)
        r["gate_interval"] = [diff.low, diff.high]


def flat_metrics(summary: dict) -> dict[str, float]:
    m = {}
    for name, s in summary["sets"].items():
        for k, v in s.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                m[f"{name}/{k}"] = float(v)
    return m


# issue 18: the headline numbers under short names, one child run per synthetic set, so the
# UI's default columns compare sets and pipeline runs side by side (`fid`, `sifid`, `lpips`)
HEADLINES = {"fid": "fid", "sifid": "sifid", "lpips_diversity": "lpips", "mask_foreground_mean": "mask_fg"}


def log_headlines(run, summary: dict) -> None:
    if run is None:
        return
    for name, s in summary["sets"].items():
        short = {h: float(s[k]) for k, h in HEADLINES.items() if isinstance(s.get(k), (int, float))}
        with child_run(run, f"quality/{name}", tags={"set": name}) as child:
            log_metrics(child, short)


def main(argv: list[str] | None = None) -> int:
    stage = Stage("quality", __doc__.split("\n\n")[0], QualityParams)
    stage.parser.add_argument("--real", default="data/real")
    stage.parser.add_argument("--synthetic", default="synthetic")
    stage.parser.add_argument("--out", default="metrics/quality")
    stage.parser.add_argument("--headline", default=str(HEADLINE_DIR), help="where quality.json (dvc metrics) goes")
    return stage.run(_work, argv)


def _work(args, params: QualityParams) -> None:
    with atomic_dir(args.out) as tmp:
        summary = evaluate(params, Path(args.real), Path(args.synthetic), tmp)
    write_quality(summary, Path(args.headline))
    with stage_run("quality", params, provenance=summary["provenance"], enabled=params.track) as run:
        log_metrics(run, flat_metrics(summary))
        log_headlines(run, summary)
        if run is not None:
            import mlflow

            mlflow.log_artifact(str(Path(args.out) / "summary.json"))
    print(f"quality: {len(summary['sets'])} synthetic set(s) -> {Path(args.out) / 'summary.json'}")


if __name__ == "__main__":
    sys.exit(main())
