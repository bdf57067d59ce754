"""Names as a reader says them: the one place the report turns keys into labels.

The stages name things by their folders and parameters (`singan_st1to1/gss0`,
`fastgan/n20`, `A/FAKE_2_ST1to1000`, `B/REAL+FASTGAN_N5`); a reader of the report should
not have to know those forms (issue 18 section 3). `display_name` is used by the figures
and the tables alike, so a row in a table and a line in a figure carry the same words;
the CSVs keep the keys, which are what params.yaml and `metrics/` use.
"""

from __future__ import annotations

import re

GENERATORS = {"singan": "SinGAN-Seg", "dcgan": "DCGAN", "progan": "Progressive GAN", "fastgan": "FastGAN"}

# synthetic sets (synthetic/<set>/...): singan[_st<c>to<s>]/gss<k>, <gan>/n<K|all>
SINGAN_SET = re.compile(r"^singan(?:_st(?P<c>\d+)to(?P<s>\d+))?/gss(?P<gss>\d+)$")
_GAN_SET = re.compile(r"^(?P<gan>[a-z0-9_]+)/n(?P<k>\d+|all)$")
# segmentation experiments (pipeline/segment/experiments.py), with or without the grid prefix
_A_EXP = re.compile(r"^(?P<real>REAL\+)?FAKE_(?P<k>\d+)(?:_ST(?P<c>\d+)to(?P<s>\d+))?$")
GRID_B_EXP = re.compile(r"^(?P<kind>.+)_N(?P<n>\d+)$")
TRIVIAL = {"TRIVIAL_BACKGROUND": "trivial: predicts no polyp", "TRIVIAL_MEAN_MASK": "trivial: mean training mask",
           "TRIVIAL_TUNED_MASK": "trivial: mean training mask, tuned level"}


def style_transfer(c: str | None, s: str | None) -> str:
    """The style-transfer ratio content:style as the paper writes it (1:1, 1:1000)."""
    return f"style transfer {c}:{s}" if c else "no style transfer"


def _kind(kind: str) -> str:
    """A grid B training-set kind: REAL, FAKE, REAL+FAKE, <GAN>, REAL+<GAN>, TRIVIAL_*."""
    if kind in TRIVIAL:
        return TRIVIAL[kind]
    real, _, src = kind.rpartition("+")
    if src == "REAL":
        return "real images"
    gen = "SinGAN-Seg" if src == "FAKE" else GENERATORS.get(src.lower(), src)
    return f"real + {gen}" if real else f"{gen} only"


def display_name(key: str) -> str:
    """A set, experiment or training-set kind as a reader says it; unknown keys pass unchanged.

    >>> display_name("singan_st1to1/gss0")
    'SinGAN-Seg, style transfer 1:1, gen_start_scale 0'
    >>> display_name("A/REAL+FAKE_1_ST1to1000")
    'real + SinGAN-Seg, 1 sample per image, style transfer 1:1000'
    """
    if m := SINGAN_SET.match(key):
        st = f", {style_transfer(m['c'], m['s'])}" if m["c"] else ""
        return f"SinGAN-Seg{st}, gen_start_scale {m['gss']}"
    if (m := _GAN_SET.match(key)) and m["gan"] in GENERATORS:
        return f"{GENERATORS[m['gan']]}, trained on {'all' if m['k'] == 'all' else m['k']} images"
    short = key.split("/", 1)[1] if re.match(r"^[AB]/", key) else key
    if short == "REAL":
        return "real images"
    if short in TRIVIAL:
        return TRIVIAL[short]
    if m := _A_EXP.match(short):
        st = f", {style_transfer(m['c'], m['s'])}" if m["c"] else ""
        n = f"{m['k']} sample{'s' if m['k'] != '1' else ''} per image"
        return f"{'real + ' if m['real'] else ''}SinGAN-Seg, {n}{st}"
    if m := GRID_B_EXP.match(short):
        return f"{_kind(m['kind'])}, N={m['n']}"
    if re.fullmatch(r"(REAL\+)?[A-Z][A-Z0-9]*", short):
        return _kind(short)
    return key


def experiment_order(experiments) -> list[str]:
    """Experiments in the order the paper discusses them (REAL, FAKE_k, ST variants, REAL+...,
    the trivial rows last)."""

    def key(name: str):
        short = name.split("/", 1)[-1]
        return (short.startswith("TRIVIAL"), short != "REAL", short.startswith("REAL+"), "ST" in short,
                short.replace("REAL+", ""))  # fmt: skip

    return sorted(set(experiments), key=key)
