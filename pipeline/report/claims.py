"""The paper's claims, each tested by this run's numbers, with a verdict computed from them.

The claims are the abstract's (../shared/docs/paper.md section 7, "Qualitative claims"); the
paper's own tables were not available to us, so a verdict says whether the claim holds *in
this run, at this scale*, never whether the paper's numbers are right. Each rule is stated
in the table beside its verdict, and a claim whose evidence depends on a network this run
had no weights for is "not testable here", with the numbers still shown.

Verdicts: "holds", "does not hold", "inconclusive", "not testable here (why)", each computed
from a bootstrap interval (pipeline/results/verdicts.py). Never typed: every verdict
below is a function of the numbers passed in, tested in tests/test_claims.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.results import verdicts as V
from pipeline.results.names import display_name
from pipeline.segment.results import MAIN_TEST, PER_IMAGE_COLUMNS
from singanseg.io import InputError

HOLDS, FAILS = "holds", "does not hold"
# claim 3's "comes very close": the best synthetic-only set within this fraction of REAL's IoU
CLOSE_FRACTION = 0.10
# the sanity row: REAL must beat the best trivial segmenter by this much IoU (absolute)
CLEAR_MARGIN = 0.10


@dataclass(frozen=True)
class Claim:
    claim: str
    rule: str
    evidence: str
    verdict: str
    protocols: dict | None = None  # {"paper protocol": "verdict: intervals", "clean protocol": ...}


def not_testable(why: str) -> str:
    return f"not testable here ({why})"


GATE_IOU = 0.6  # issue 22 s3: REAL must reach this IoU (interval's lower bound) ...
BOOT = V.Bootstrap()


def load_per_image(root: Path) -> pd.DataFrame:
    """Every per-image CSV the segment stage wrote under `root` (any `*per_image*.csv`), as one
    frame with the contract's columns; empty where there is none (then the segmentation
    claims are "not testable (no per-image scores)")."""
    frames = []
    for path in sorted(Path(root).rglob("*per_image*.csv")):
        df = pd.read_csv(path, dtype={"image_id": str})
        if missing := [c for c in PER_IMAGE_COLUMNS if c not in df.columns]:
            raise InputError(f"{path}: no column {', '.join(missing)}")
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(PER_IMAGE_COLUMNS))


def cell(per_image: pd.DataFrame, grid: str, protocol: str) -> pd.DataFrame:
    """One grid and protocol's rows of the grid's own test folds (`MAIN_TEST`; an external set
    with more images must not take its place), with the experiment named by its kind ("REAL",
    "FAKE_1"; grid B: "REAL_N5")."""
    sub = per_image[(per_image.grid == grid) & (per_image.protocol == protocol)].copy()
    if sub.empty:
        return sub
    sub = sub[sub.test_set == MAIN_TEST]
    exp = sub.experiment.astype(str).str.replace(r"^[AB]/", "", regex=True)
    if grid == "B":
        exp = exp.str.replace(r"_N\d+$", "", regex=True) + "_N" + sub.n.astype(int).astype(str)
    return sub.assign(experiment=exp)


def gate(per_image: pd.DataFrame, protocol: str, boot: V.Bootstrap = BOOT) -> tuple[str, str]:
    """(verdict, the intervals) of "REAL learns": REAL's IoU interval at or above GATE_IOU and
    REAL - best trivial row at or above CLEAR_MARGIN, both at the lower bound."""
    sub = cell(per_image, "A", protocol)
    if sub.empty:
        return V.not_testable("no per-image scores"), ""
    s = V.scores_from_frame(sub, where=f"grid A, {protocol} protocol")
    trivial = {e: x.mean() for e, x in s.items() if e.startswith("TRIVIAL")}
    if "REAL" not in s or not trivial:
        return V.not_testable("no REAL or no TRIVIAL per-image rows"), ""
    best = max(trivial, key=trivial.get)
    est = V.paired_bootstrap(s, {"REAL": {"REAL": 1}, "d": {"REAL": 1, best: -1}}, boot)
    real, d = est.interval("REAL"), est.interval("d")
    ev = f"REAL IoU {V.fmt(real)}; REAL − {best} {V.fmt(d)}"
    if real.low >= GATE_IOU and d.low >= CLEAR_MARGIN:
        return HOLDS, ev
    if real.high < GATE_IOU or d.high < CLEAR_MARGIN:
        return FAILS, ev
    return V.INCONCLUSIVE, ev


def _gated(per_image, protocol, boot):
    """None where the gate passes, else the "not testable (segmenter too weak: ...)" verdict."""
    v, ev = gate(per_image, protocol, boot)
    if v == HOLDS:
        return None
    if v.startswith(V.NOT_TESTABLE):
        return v
    return V.not_testable(f"segmenter too weak: {ev}; needs REAL >= {GATE_IOU} and REAL − trivial >= "
                          f"{CLEAR_MARGIN} at the lower bound")


def _by_protocol(fn, per_image, boot) -> tuple[str, dict[str, str]]:
    cells = {p: fn(per_image, p, boot) for p in ("paper", "clean")}
    verdict = V.agree({p: v for p, (v, _) in cells.items()})
    return verdict, {f"{p} protocol": (v if not ev else f"{v}: {ev}") for p, (v, ev) in cells.items()}


def sanity(per_image: pd.DataFrame, boot: V.Bootstrap = BOOT) -> Claim:
    verdict, cells = _by_protocol(gate, per_image, boot)
    return Claim("UNet++ learns from the real images (not a paper claim: what the others rest on)",
                 f"grid A: the interval of REAL's IoU lies at or above {GATE_IOU} and that of REAL − the best "
                 f"trivial row at or above {CLEAR_MARGIN} ({boot.describe()})", "", verdict, cells)


def _close(per_image, protocol, boot):
    if g := _gated(per_image, protocol, boot):
        return g, ""
    s = V.scores_from_frame(cell(per_image, "A", protocol))
    fakes = [e for e in s if e.startswith("FAKE")]
    if not fakes:
        return V.not_testable("no FAKE per-image rows"), ""
    est = V.paired_bootstrap(s, {f: {f: 1, "REAL": -(1 - CLOSE_FRACTION)} for f in fakes}, boot)
    res = V.holm(est, fakes)
    vs = [v for _, v in res.values()]
    v = HOLDS if HOLDS in vs else FAILS if all(x == FAILS for x in vs) else V.INCONCLUSIVE
    return v, "; ".join(f"{f} − {1 - CLOSE_FRACTION:g}·REAL {V.fmt(iv)} ({iv.level:.2%})" for f, (iv, _) in res.items())


def synthetic_close_to_real(per_image: pd.DataFrame, boot: V.Bootstrap = BOOT) -> Claim:
    verdict, cells = _by_protocol(_close, per_image, boot)
    return Claim("UNet++ trained on synthetic data comes very close to UNet++ trained on real data (data-rich)",
                 f"non-inferiority, margin {CLOSE_FRACTION:.0%} of REAL: FAKE − REAL > −{CLOSE_FRACTION:g} × REAL "
                 f"at the interval's lower bound for some synthetic-only set, Holm over the sets (grid A; "
                 f"{boot.describe()})", "", verdict, cells)


def _scarce(per_image, protocol, boot):
    if g := _gated(per_image, protocol, boot):
        return g, ""
    s = V.scores_from_frame(cell(per_image, "B", protocol))
    comps = {}
    for e in s:
        if (m := re.match(r"^(FAKE|REAL\+FAKE)_N(\d+)$", e)) and f"REAL_N{m[2]}" in s:
            comps[e] = {e: 1, f"REAL_N{m[2]}": -1}
    if not comps:
        return V.not_testable("grid B has no REAL with FAKE or REAL+FAKE per-image rows"), ""
    res = V.holm(V.paired_bootstrap(s, comps, boot), sorted(comps))
    vs = [v for _, v in res.values()]
    v = HOLDS if HOLDS in vs else FAILS if all(x == FAILS for x in vs) else V.INCONCLUSIVE
    return v, "; ".join(f"{e} − REAL {V.fmt(iv)} ({iv.level:.2%})" for e, (iv, _) in res.items())


def synthetic_helps_when_scarce(per_image: pd.DataFrame, boot: V.Bootstrap = BOOT) -> Claim:
    verdict, cells = _by_protocol(_scarce, per_image, boot)
    return Claim("Synthetic data improves segmentation when real training data is scarce",
                 "at some N, SinGAN-Seg only or real + SinGAN-Seg beats the real images alone (interval of the "
                 f"IoU difference above 0), Holm over every N and kind compared (grid B; {boot.describe()}); "
                 "does not hold where every interval lies below 0", "", verdict, cells)


def style_transfer_lowers_sifid(sets: dict, st_weights: set[str], sifid_pairs: dict[str, pd.DataFrame] | None = None,
                                boot: V.Bootstrap = BOOT) -> Claim:
    """Decided by the paired bootstrap of the per-image SIFID difference (style-transferred minus
    plain samples of the same models), over real images (each real image's samples averaged
    first), Holm over the style ratios. `sifid_pairs`: {set: rows real_id, synthetic_id, sifid}
    (the quality stage's `<set>.sifid.csv`); without them the set means are shown, not decided."""
    claim = "Style transfer improves the quality of the generated data (lower SIFID)"
    rule = (f"the SIFID of a style-transferred set (gen_start_scale 0) is below that of the same samples without it: "
            f"the interval of the per-image difference lies below 0, Holm over the ratios ({boot.level:.0%} paired "
            f"percentile bootstrap over real images, each one's samples averaged, {boot.resamples} resamples, "
            f"bootstrap seed {boot.seed})")
    plain = sets.get("singan/gss0", {}).get("sifid")
    st = {n: s["sifid"] for n, s in sets.items() if re.match(r"^singan_st\d+to\d+/gss0$", n) and s.get("sifid") is not None}
    if plain is None or not st:
        return Claim(claim, rule, "no SIFID of gss0 with and without style transfer", not_testable("missing sets"))
    label = {n: n.split("/")[0].replace("singan_st", "ST ").replace("to", ":") for n in st}
    ev = f"no ST {plain:.3f}; " + ", ".join(f"{label[n]} {v:.3f}" for n, v in sorted(st.items()))
    if not st_weights or any("random" in w for w in st_weights):
        nets = sorted({w.split("|")[0] for w in st_weights}) or ["?"]
        return Claim(claim, rule, ev, not_testable(f"the style transfer ran with a random {'/'.join(nets)}: its "
                                                   "'style' is noise"))  # fmt: skip
    pairs = sifid_pairs or {}
    if "singan/gss0" not in pairs or not all(n in pairs for n in st):
        return Claim(claim, rule, ev, not_testable("no per-image SIFID (the quality stage's <set>.sifid.csv)"))
    # the same samples on both sides: where only some samples were styled (stylize.samples_per_model),
    # the plain set is cut to them
    names = ("singan/gss0", *st)
    same = set.intersection(*(set(pairs[n].synthetic_id.astype(str)) for n in names))
    rows = []
    for name in names:
        kept = pairs[name][pairs[name].synthetic_id.astype(str).isin(same)]
        per_real = kept.groupby("real_id", sort=True)["sifid"].mean()
        rows += [{"experiment": name, "fold": 0, "seed": 0, "image_id": str(i), "sifid": float(v)} for i, v in per_real.items()]
    frame = pd.DataFrame(rows)
    common = set.intersection(*(set(g.image_id) for _, g in frame.groupby("experiment")))
    scores = V.scores_from_frame(frame[frame.image_id.isin(common)], score="sifid", where="per-image SIFID")
    res = V.holm(V.paired_bootstrap(scores, {n: {n: 1, "singan/gss0": -1} for n in st}, boot), sorted(st))
    # Holm's verdicts are "A - B above 0" (beats); lower SIFID is better: flip
    flip = {V.HOLDS: FAILS, V.DOES_NOT_HOLD: HOLDS, V.INCONCLUSIVE: V.INCONCLUSIVE}
    vs = {n: flip[v] for n, (_, v) in res.items()}
    verdict = HOLDS if HOLDS in vs.values() else FAILS if all(v == FAILS for v in vs.values()) else V.INCONCLUSIVE
    ev += "; " + "; ".join(f"{label[n]} − no ST {V.fmt(iv)} ({iv.level:.2%})" for n, (iv, _) in res.items())
    return Claim(claim, rule, ev, verdict)


def singan_beats_gans_when_small(sets: dict, max_k: int = 50, by_k: dict | None = None,
                                 intervals: dict[str, V.Interval] | None = None, gate: str | None = None,
                                 decided: dict | None = None) -> Claim:
    """From `intervals` ({"K=5": Interval of KID(SinGAN-Seg) − KID(FastGAN)}, issue 23's quality
    stage) when given, by generator_claim; else (today) at equal training size K when the quality
    stage compared them so (`gan_by_k`); else from the per-generator FIDs, sizes unequal.
    The two fallbacks are point comparisons, kept until the quality stage writes intervals."""
    claim = "SinGAN-Seg beats the other GANs when the training set is small"
    if decided is not None:  # the quality stage's own decision (pipeline/metrics/fair.gan_claim)
        rule = (f"at every K <= {max_k}, the 95 % bootstrap interval of KID(FastGAN) − KID(SinGAN-Seg, "
                "gen_start_scale 0) lies above 0, both at equal K against the same reals (held-out "
                "reals where both have them); a baseline that did not beat the trivial noise "
                "generator makes it not testable")
        iv = decided.get("interval")
        ev = (f"worst K: {V.fmt(V.Interval(**iv))} ({decided.get('reals')})" if iv
              else str(decided.get("reals") or ""))
        verdict = decided.get("verdict") or V.not_testable("no decision")
        if verdict == V.NOT_TESTABLE:
            verdict = str(decided.get("reals") or "not testable")
        return Claim(claim, rule, ev, verdict)
    if intervals is not None:
        return generator_claim(claim, f"at every K <= {max_k}, the interval of KID(SinGAN-Seg) − KID(FastGAN) "
                               "lies below 0 (lower is better; every K must hold, so no multiplicity correction)",
                               intervals, lower_is_better=True, gate=gate)
    equal = {}
    for key, v in (by_k or {}).items():
        if (m := re.match(r"^(?P<set>.+)@K(?P<k>\d+)$", key)) and v.get("kid_mean") is not None and int(m["k"]) <= max_k:
            equal.setdefault(int(m["k"]), {})[m["set"]] = v["kid_mean"]
    equal = {k: d for k, d in equal.items() if "singan/gss0" in d and f"fastgan/n{k}" in d}
    if equal:
        rule = (f"at every K <= {max_k}, SinGAN-Seg (gen_start_scale 0) on its first K models has a lower KID than "
                "FastGAN trained on the same K images, both against those K reals (table gan_by_k)")
        wins, parts = 0, []
        for k in sorted(equal):
            d = equal[k]
            wins += d["singan/gss0"] < d[f"fastgan/n{k}"]
            parts.append(f"K={k}: SinGAN-Seg KID {d['singan/gss0']:.3f}, FastGAN {d[f'fastgan/n{k}']:.3f}")
        return Claim(claim, rule, "; ".join(parts), HOLDS if wins == len(equal) else FAILS)
    rule = f"SinGAN-Seg's FID (gen_start_scale 0, no ST) is below every baseline GAN trained on <= {max_k} images"
    sing = sets.get("singan/gss0", {}).get("fid")
    small = {n: s["fid"] for n, s in sets.items()
             if (m := re.match(r"^(dcgan|progan|fastgan)/n(\d+)$", n)) and int(m[2]) <= max_k and s.get("fid") is not None}  # fmt: skip
    if sing is None or not small:
        return Claim(claim, rule, "no SinGAN-Seg FID or no baseline trained on few images", not_testable("missing sets"))
    ev = f"SinGAN-Seg {sing:.1f}; " + ", ".join(f"{display_name(n)} {v:.1f}" for n, v in sorted(small.items()))
    ev += " (set sizes differ: FID from few images is biased upwards, more so for the smaller set)"
    return Claim(claim, rule, ev, HOLDS if sing < min(small.values()) else FAILS)


def generator_claim(claim: str, rule: str, diffs: dict[str, V.Interval], lower_is_better: bool = True,
                    gate: str | None = None) -> Claim:
    """A generator claim ("A beats B at every K", issue 23) decided by intervals of A − B over
    FID/KID (lower is better): holds where every interval says A beats B (an intersection-union
    rule: no multiplicity correction needed), does not hold where any says B beats A,
    inconclusive otherwise; `gate` (e.g. "baseline did not train") makes it not testable."""
    ev = "; ".join(f"{k}: {V.fmt(iv)}" for k, iv in diffs.items())
    if gate:
        return Claim(claim, rule, ev, V.not_testable(gate))
    if not diffs:
        return Claim(claim, rule, ev, V.not_testable("no intervals"))
    vs = [V.improves(iv, lower_is_better) for iv in diffs.values()]
    v = HOLDS if all(x == HOLDS for x in vs) else FAILS if FAILS in vs else V.INCONCLUSIVE
    return Claim(claim, rule, ev, v)


def claims_frame(per_image: pd.DataFrame, sets: dict, st_weights: set[str], by_k: dict | None = None,
                 boot: V.Bootstrap = BOOT, gan_claim: dict | None = None,
                 sifid_pairs: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every claim as a row: rule, evidence, each protocol's verdict with its intervals, and the
    overall verdict (index: the claim). `per_image`: load_per_image's rows."""
    claims = [
        sanity(per_image, boot),
        style_transfer_lowers_sifid(sets, st_weights, sifid_pairs, boot),
        singan_beats_gans_when_small(sets, by_k=by_k, decided=gan_claim),
        synthetic_close_to_real(per_image, boot),
        synthetic_helps_when_scarce(per_image, boot),
    ]
    out = pd.DataFrame([{"claim": c.claim, "rule": c.rule, "evidence": c.evidence,
                         "paper protocol": (c.protocols or {}).get("paper protocol", "—"),
                         "clean protocol": (c.protocols or {}).get("clean protocol", "—"),
                         "verdict": c.verdict} for c in claims])
    return out.set_index("claim")
