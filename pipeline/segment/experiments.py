"""Experiment names -> training / validation / test pairs (paper.md sections 3 and 5).

Names are readable and parseable:
- grid A (data-rich, 3-fold; `fold` = the held-out test fold): `A/REAL`, `A/FAKE_3`,
  `A/FAKE_3_ST1to1`, `A/FAKE_3_ST1to1000`, `A/REAL+FAKE_1`, `A/REAL+FAKE_4_ST1to1000`;
- grid B (data-scarce; `fold` = the fold whose first N images train, tested on the other
  folds as the authors' `fold_0_val_folds_1_2`): `B/REAL_N10`, `B/FAKE_N10` (10 N SinGAN-Seg
  samples, ST 1:1000), `B/REAL+FAKE_N10`, and per baseline GAN `B/FASTGAN_N10`,
  `B/REAL+FASTGAN_N10`.

The SinGAN-Seg sets come from synthetic/<set>/<variant>/ or, per set, from a folder that
`segment.external_synthetic` names (the authors' released pairs; pipeline/segment/external.py).

Leakage rule (paper.md section 3): synthetic training data for a fold comes only from the
SinGAN-Seg models of that fold's *training* images; the sample ids `<srcid>_<n>` map back
to their real image. Under the `clean` protocol the validation images' SinGANs are left
out as well.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.segment.config import Protocol, SegmentParams
from pipeline.segment.external import external_pairs
from singanseg.io import InputError, Pair, displayed_size, list_pairs, read_mask

_A = re.compile(r"^(?P<real>REAL\+)?FAKE_(?P<k>[1-9]\d*)(?:_ST(?P<st>\d+to\d+))?$")
_B = re.compile(r"^(?P<real>REAL\+)?(?P<src>[A-Z][A-Z0-9]*)_N(?P<n>[1-9]\d*)$")


class ExperimentError(InputError):
    """An experiment cannot be set up; the message names the experiment and the input."""


@dataclass(frozen=True)
class Experiment:
    name: str  # "A/FAKE_3_ST1to1000"
    grid: str  # "A" or "B"
    use_real: bool
    source: str | None  # synthetic folder under paths.synthetic: "singan", "singan_st1to1000", "fastgan"
    samples: int  # A/B SinGAN: samples per real image; baseline: samples in all
    n_real: int | None = None  # grid B: the first N real images

    @property
    def scarce(self) -> bool:
        return self.grid == "B"


@dataclass(frozen=True)
class Splits:
    experiment: Experiment
    fold: int
    protocol: Protocol
    train: list[Pair]
    val: list[Pair]
    test: list[Pair]
    train_real_ids: list[str]  # real images used (directly, or through their SinGANs)
    train_folds: list[int]
    test_folds: list[int]


def parse(name: str, params: SegmentParams | None = None) -> Experiment:
    """`A/...` or `B/...` -> Experiment; unknown forms raise ExperimentError naming the name."""
    params = params or SegmentParams()
    grid, _, rest = name.partition("/")
    if grid == "A":
        if rest == "REAL":
            return Experiment(name, "A", True, None, 0)
        m = _A.match(rest)
        if m:
            source = f"singan_st{m['st']}" if m["st"] else "singan"
            return Experiment(name, "A", bool(m["real"]), source, int(m["k"]))
    elif grid == "B":
        m = _B.match(rest)
        if m and not (m["real"] and m["src"] == "REAL"):
            n = int(m["n"])
            gb = params.grid_b
            if m["src"] == "REAL":
                return Experiment(name, "B", True, None, 0, n)
            if m["src"] == "FAKE":
                return Experiment(name, "B", bool(m["real"]), f"singan_{gb.style.lower()}", gb.samples_per_image, n)
            return Experiment(name, "B", bool(m["real"]), m["src"].lower(), gb.samples_per_image * n, n)
    raise ExperimentError(
        f"experiment {name!r}: unknown name (forms: A/REAL, A/FAKE_<k>[_ST<c>to<s>], A/REAL+FAKE_<k>[...], "
        f"B/REAL_N<n>, B/FAKE_N<n>, B/REAL+FAKE_N<n>, B/<GAN>_N<n>, B/REAL+<GAN>_N<n>)"
    )


def grid_runs(params: SegmentParams) -> list[tuple[str, int]]:
    """Every (experiment, fold) of the active params, in a stable order (the `--list`)."""
    runs = [(f"A/{e}", f) for e in params.grid_a.experiments for f in params.grid_a.folds]
    gb = params.grid_b
    runs += [(f"B/{k}_N{n}", gb.train_fold) for k in gb.kinds for n in gb.n_values]
    for name, _ in runs:
        parse(name, params)  # a typo in params fails at listing time, naming the entry
    return runs


def read_folds(path: str | Path) -> list[tuple[str, int]]:
    """`id,fold` rows in file order (the order defines "the first N", paper.md section 3)."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"{path}: folds file not found (run the data stage first)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"id", "fold"} <= set(reader.fieldnames):
            raise ExperimentError(f"{path}: expected columns id,fold; got {reader.fieldnames}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rows.append((r["id"], int(r["fold"])))
            except (TypeError, ValueError):
                raise ExperimentError(f"{path}:{line}: fold {r['fold']!r} is not an integer") from None
    if not rows:
        raise ExperimentError(f"{path}: no rows")
    return rows


def _fold_ids(rows: list[tuple[str, int]], fold: int, exp: str, folds_path: str) -> list[str]:
    ids = [i for i, f in rows if f == fold]
    if not ids:
        known = sorted({f for _, f in rows})
        raise ExperimentError(f"experiment {exp}: fold {fold} has no images in {folds_path} (folds present: {known})")
    return ids


# pairs whose sizes were found to agree, by (path, mtime, size) of both files: a grid resolves the
# same pairs for every training and protocol, and reading a PNG's EXIF (displayed_size) decodes the
# whole image (PIL looks for an eXIf chunk after the pixel data): 3.6 s a training on 200 Kvasir
# pairs, ~3 minutes of a cpu run's grids (benchmarks/README.md). A rewritten file is checked again.
_SIZES_AGREE: set[tuple] = set()


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


def _check_sizes(pairs: list[Pair], where: str) -> None:
    """Masks of the wrong size fail here, before training, naming the files (header reads only)."""
    for p in pairs:
        try:
            key = (_stat_key(p.image), _stat_key(p.mask))
            if key in _SIZES_AGREE:
                continue
            with Image.open(p.image) as a, Image.open(p.mask) as b:
                sa, sb = displayed_size(a), displayed_size(b)  # as read_pair reads them (EXIF orientation)
                if sa != sb:
                    raise ExperimentError(
                        f"{where}: mask {p.mask} is {sb[0]}x{sb[1]} but image {p.image} is {sa[0]}x{sa[1]}"
                    )
            _SIZES_AGREE.add(key)
        except OSError as e:
            raise ExperimentError(f"{where}: unreadable pair {p.image} / {p.mask} ({e})") from None


def _empty_mask(pair: Pair) -> bool:
    """True when the pair's mask has no polyp pixel (read as every mask is: singanseg.io)."""
    try:
        return not read_mask(pair.mask)[0].any()
    except InputError as e:
        raise ExperimentError(f"synthetic pair {pair.id}: {e}") from None


def _singan_pairs(exp: Experiment, params: SegmentParams, root: Path, fold_txt: str) -> tuple[Path, list[Pair], str]:
    """(folder, pairs, how a missing pair is named) of the experiment's SinGAN-Seg set: from
    synthetic/<set>/<variant>/ (the generate/stylize stages), or from the folder that
    `segment.external_synthetic` names for the set (issue 24; pipeline/segment/external.py)."""
    ext = params.external_synthetic
    where = f"experiment {exp.name} ({fold_txt})"
    if exp.source in ext.folders:
        folder = Path(ext.folders[exp.source]).expanduser()
        folder = folder if folder.is_absolute() else root / folder
        try:
            pairs = external_pairs(folder, exp.source != "singan", ext.naming, ext.gen_start_scale, root / params.paths.real)
        except InputError as e:
            raise ExperimentError(f"{where}: segment.external_synthetic.folders.{exp.source}: {e}") from None
        return folder, pairs, "sample {} (<real id>_<n>)"
    folder = root / params.paths.synthetic / exp.source / params.paths.singan_variant
    if not folder.is_dir():
        raise ExperimentError(
            f"{where}: synthetic set {folder} not found "
            f"(run the generate{'/stylize' if 'st' in (exp.source or '') else ''} stage first)"
        )
    try:
        return folder, list_pairs(folder), "images/{}.png"
    except InputError as e:
        raise ExperimentError(f"{where}: {e}") from None


def _synthetic_singan(exp: Experiment, params: SegmentParams, root: Path, src_ids: list[str], fold_txt: str) -> list[Pair]:
    folder, pairs, shown = _singan_pairs(exp, params, root, fold_txt)
    by_id = {p.id: p for p in pairs}
    wanted = [f"{s}_{n}" for s in src_ids for n in range(exp.samples)]
    missing = [w for w in wanted if w not in by_id]
    if missing:
        raise ExperimentError(
            f"experiment {exp.name} ({fold_txt}): {len(missing)} of {len(wanted)} synthetic pairs missing "
            f"in {folder}, e.g. {shown.format(missing[0])} ({exp.samples} samples per training image needed)"
        )
    return [by_id[w] for w in wanted]


def _synthetic_baseline(exp: Experiment, root: Path, fold_txt: str) -> list[Pair]:
    folder = root / exp.source / f"n{exp.n_real}"
    if not folder.is_dir():
        raise ExperimentError(
            f"experiment {exp.name} ({fold_txt}): synthetic set {folder} not found "
            f"(train and sample the {exp.source} baseline on the first {exp.n_real} images first)"
        )
    try:
        pairs = list_pairs(folder)
    except InputError as e:
        raise ExperimentError(f"experiment {exp.name} ({fold_txt}): {e}") from None
    by_id = {p.id: p for p in pairs}
    wanted = [f"{exp.source}_{n}" for n in range(exp.samples)]
    missing = [w for w in wanted if w not in by_id]
    if missing:
        raise ExperimentError(
            f"experiment {exp.name} ({fold_txt}): {len(missing)} of {exp.samples} pairs missing in {folder}, "
            f"e.g. images/{missing[0]}.png"
        )
    return [by_id[w] for w in wanted]


def resolve(name: str, fold: int, protocol: Protocol, params: SegmentParams, root: str | Path = ".") -> Splits:
    """The pairs one (experiment, fold, protocol) trains, validates and tests on."""
    exp = parse(name, params)
    root = Path(root)
    paths = params.paths
    rows = read_folds(root / paths.folds)
    all_folds = sorted({f for _, f in rows})
    fold_txt = f"fold {fold}"
    if exp.grid == "A":
        test_ids = _fold_ids(rows, fold, name, paths.folds)
        train_folds = [f for f in all_folds if f != fold]
        pool = [i for i, f in rows if f != fold]
        if not pool:
            raise ExperimentError(f"experiment {name}: no training folds besides test fold {fold} in {paths.folds}")
    else:
        fold_ids = _fold_ids(rows, fold, name, paths.folds)
        if exp.n_real > len(fold_ids):
            raise ExperimentError(f"experiment {name}: needs the first {exp.n_real} images of fold {fold}, which has {len(fold_ids)}")
        pool = fold_ids[: exp.n_real]
        train_folds = [fold]
        test_ids = [i for i, f in rows if f != fold]
        if not test_ids:
            raise ExperimentError(f"experiment {name}: no test folds besides training fold {fold} in {paths.folds}")
    test_folds = [f for f in all_folds if f not in train_folds]

    if protocol == "paper":
        # the authors' runs: validation set = the test set (paper.md section 5, model selection)
        train_ids, val_ids = pool, list(test_ids)
    elif protocol == "clean":
        source = pool if exp.grid == "A" else _fold_ids(rows, fold, name, paths.folds)
        n_val = max(1, math.ceil(params.clean_val_fraction * len(source)))
        val_ids = source[-n_val:]
        train_ids = [i for i in pool if i not in set(val_ids)]
        if exp.grid == "B" and len(train_ids) != len(pool):
            raise ExperimentError(
                f"experiment {name}: clean validation (the last {n_val} of fold {fold}) overlaps its first "
                f"{exp.n_real} training images; lower clean_val_fraction or use a larger fold"
            )
    else:
        raise ExperimentError(f"experiment {name}: unknown protocol {protocol!r} (paper, clean)")
    if not train_ids:
        raise ExperimentError(f"experiment {name} ({fold_txt}, {protocol}): empty training set")

    real_dir = root / paths.real
    try:
        real = {p.id: p for p in list_pairs(real_dir)}
    except InputError as e:
        raise ExperimentError(f"experiment {name}: {e}") from None
    absent = [i for i in (*train_ids, *val_ids, *test_ids) if i not in real]
    if absent:
        raise ExperimentError(f"experiment {name}: {len(absent)} id(s) of {paths.folds} have no pair in {real_dir}, e.g. {absent[0]!r}")

    train: list[Pair] = [real[i] for i in train_ids] if exp.use_real else []
    if exp.source is not None:
        if exp.source.startswith("singan"):
            synthetic = _synthetic_singan(exp, params, root, train_ids, fold_txt)
        else:
            synthetic = _synthetic_baseline(exp, root / paths.synthetic, fold_txt)
        if params.drop_empty_synthetic:
            synthetic = [p for p in synthetic if not _empty_mask(p)]
        train += synthetic
    if not train:
        raise ExperimentError(f"experiment {name} ({fold_txt}, {protocol}): empty training set")
    val = [real[i] for i in val_ids]
    test = [real[i] for i in test_ids]
    for role, pairs in (("train", train), ("val", val), ("test", test)):
        _check_sizes(pairs, f"experiment {name} ({fold_txt}, {role})")
    return Splits(exp, fold, protocol, train, val, test, list(train_ids), train_folds, test_folds)
