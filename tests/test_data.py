"""The data stage: three sources, the output contract, folds, and bad input."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.data.prepare import DataParams, PhantomParams, assign_folds, build
from singanseg.io import InputError, list_pairs, read_image, read_mask


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_contract(out, n):
    pairs = list_pairs(out / "real")
    assert len(pairs) == n
    for p in pairs:
        assert p.image.suffix == ".png" and p.mask.suffix == ".png"
        img, (mask, info) = read_image(p.image), read_mask(p.mask)
        assert img.shape[:2] == mask.shape
        assert info.nonbinary_px == 0  # written masks are exactly {0, 255}
        assert Image.open(p.image).mode == "RGB"
    folds = _read_csv(out / "folds.csv")
    assert [r["id"] for r in folds] == [p.id for p in pairs]  # both in natural-sort order
    return pairs


def test_phantom_source_covers_the_cases(tmp_path):
    rows = build(DataParams(source="phantom", phantom=PhantomParams(count=8, seed=3)), tmp_path)
    _check_contract(tmp_path, 8)
    assert len({(r["width"], r["height"]) for r in rows}) >= 4  # several sizes and aspect ratios
    assert min(r["foreground_fraction"] for r in rows) < 0.02  # one tiny polyp
    touching = 0
    for p in list_pairs(tmp_path / "real"):
        m = read_mask(p.mask)[0] > 0
        touching += bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    assert touching >= 1
    again = tmp_path / "again"
    build(DataParams(source="phantom", phantom=PhantomParams(count=8, seed=3)), again)
    assert _read_csv(again / "real" / "manifest.csv") == _read_csv(tmp_path / "real" / "manifest.csv")


def test_paper_folds_are_sequential_array_split():
    ids = [f"{i:04d}" for i in range(1, 1001)]
    folds = assign_folds(ids[::-1], 3)  # input order must not matter
    # paper.md s3: fold0 = ids 1-334, fold1 = 335-667, fold2 = 668-1000
    assert [sum(1 for v in folds.values() if v == f) for f in range(3)] == [334, 333, 333]
    assert folds["0334"] == 0 and folds["0335"] == 1 and folds["0668"] == 2
    shuffled = assign_folds(ids, 3, "shuffled", seed=1)
    assert shuffled != folds and sorted(shuffled.values()) == sorted(folds.values())


def _write_named_pairs(root, names, size=16):
    rng = np.random.default_rng(0)
    for n in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{n}.png")
        mask = np.zeros((size, size), np.uint8)
        mask[4:9, 4:9] = 255
        Image.fromarray(mask).save(root / "masks" / f"{n}.png")


def test_ids_follow_natural_sort_order_through_folds_grid_b_and_shards(tmp_path):
    """paper.md s3: the authors' ids are the file names in natsort order (img2 before img10)."""
    from pipeline.segment.config import SegmentParams
    from pipeline.segment.experiments import resolve

    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    names = [f"img{i}" for i in range(1, 13)]
    _write_named_pairs(src, names[::-1])
    natural = names  # img1, img2, ..., img10, img11, img12
    assert sorted(names) != natural  # plain sorted() would put img10, img11, img12 after img1
    assert [p.id for p in list_pairs(src)] == natural
    build(DataParams(source="folder", folder=str(src)), tmp_path / "data")
    folds = _read_csv(tmp_path / "data" / "folds.csv")
    assert [r["id"] for r in folds] == natural
    # np.array_split of the natural order: img1-img4 | img5-img8 | img9-img12
    assert {r["id"]: int(r["fold"]) for r in folds} == {n: i // 4 for i, n in enumerate(natural)}
    assert assign_folds(names[::-1], 3) == {n: i // 4 for i, n in enumerate(natural)}
    # grid B trains on the first N of fold 0 in that order (999_*_fold_0_val_folds_1_2.sh)
    sp = resolve("B/REAL_N3", 0, "paper", SegmentParams(), tmp_path)
    assert [p.id for p in sp.train] == ["img1", "img2", "img3"]
    # the limit keeps the first N in the same order
    rows = build(DataParams(source="folder", folder=str(src), limit=3), tmp_path / "limited")
    assert [r["id"] for r in rows] == ["img1", "img2", "img3"]


@pytest.mark.shared_data
def test_kvasir_ids_follow_the_authors_order(kvasir_dir, tmp_path):
    """The authors' image #1 (singan-seg Input/Images/polyp_with_4_channels.png) is the first
    name in natural-sort order (paper.md s3); fold 0 is the first third of that order."""
    import natsort

    pairs = list_pairs(kvasir_dir)
    stems = [p.stem for p in (kvasir_dir / "images").iterdir()]
    assert [p.id for p in pairs] == natsort.natsorted(stems)
    assert pairs[0].id == "cju0qkwl35piu0993l0dewei2"
    folds = assign_folds([p.id for p in pairs], 3)
    assert [p.id for p in pairs if folds[p.id] == 0] == [p.id for p in pairs][:67]  # array_split(200, 3)


@pytest.mark.shared_data
def test_folder_source_on_kvasir_sample(kvasir_dir, tmp_path):
    build(DataParams(source="folder", folder=str(kvasir_dir)), tmp_path)
    pairs = _check_contract(tmp_path, 200)
    rows = {r["id"]: r for r in _read_csv(tmp_path / "real" / "manifest.csv")}
    expected = dict(line.split()[::-1] for line in (kvasir_dir / "MANIFEST.sha256").read_text().splitlines())
    for p in pairs:
        r = rows[p.id]
        assert r["source_image_sha256"] == expected[f"images/{r['source_image']}"]
        assert r["source_mask_sha256"] == expected[f"masks/{r['source_mask']}"]
        src = Image.open(kvasir_dir / "images" / r["source_image"])
        assert (int(r["width"]), int(r["height"])) == src.size
    # JPEG masks: compression noise is counted, and the binarised output is exactly {0,255}
    assert sum(int(r["mask_nonbinary_px"]) for r in rows.values()) > 0
    fg = [float(r["foreground_fraction"]) for r in rows.values()]
    assert 0.02 < np.mean(fg) < 0.5


def _folder(tmp_path, n=3, size=(24, 18)):
    root = tmp_path / "src"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (i * 40, 80, 90)).save(root / "images" / f"im{i}.jpg")
        m = np.zeros(size[::-1], np.uint8)
        m[3:9, 4 + i : 12] = 255
        Image.fromarray(m).save(root / "masks" / f"im{i}.png")
    return root


def test_grayscale_rgba_converted_and_empty_mask_counted(tmp_path):
    root = _folder(tmp_path)
    Image.new("L", (24, 18), 90).save(root / "images" / "im0.jpg")
    Image.new("RGBA", (24, 18), (1, 2, 3, 4)).save(root / "images" / "im1.png")
    (root / "images" / "im1.jpg").unlink()
    Image.new("L", (24, 18), 0).save(root / "masks" / "im2.png")
    out = tmp_path / "out"
    rows = build(DataParams(source="folder", folder=str(root)), out)
    _check_contract(out, 3)
    assert [r["empty_mask"] for r in rows] == [0, 0, 1]


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda r: (r / "masks" / "im1.png").unlink(), r"images/im1\.jpg: no mask"),
        (lambda r: Image.new("L", (10, 18)).save(r / "masks" / "im1.png"), r"masks/im1\.png: mask is 10x18"),
        (lambda r: (r / "images" / "im2.jpg").write_bytes((r / "images" / "im2.jpg").read_bytes()[:200]), r"images/im2\.jpg: unreadable or truncated"),
        (lambda r: (r / "images" / "im2.jpg").write_text("hello"), r"images/im2\.jpg: not an image"),
        (lambda r: Image.new("RGB", (24, 18)).save(r / "images" / "im1.png"), r"duplicate id 'im1'"),
    ],
    ids=["missing-mask", "mask-size", "truncated", "not-an-image", "duplicate-stem"],
)
def test_bad_input_names_the_file_and_keeps_previous_output(tmp_path, damage, match):
    root = _folder(tmp_path)
    out = tmp_path / "out"
    build(DataParams(source="folder", folder=str(root)), out)
    before = _read_csv(out / "real" / "manifest.csv")
    damage(root)
    with pytest.raises(InputError, match=match):
        build(DataParams(source="folder", folder=str(root)), out)
    assert _read_csv(out / "real" / "manifest.csv") == before
    assert sorted(p.name for p in out.iterdir()) == ["folds.csv", "real"]


def test_empty_folder_is_an_error(tmp_path):
    for d in ("images", "masks"):
        (tmp_path / "src" / d).mkdir(parents=True)
    with pytest.raises(InputError, match=r"src/images: no images"):
        build(DataParams(source="folder", folder=str(tmp_path / "src")), tmp_path / "out")


def test_stage_cli_reports_errors_in_one_line(tmp_path, mlflow_uri):
    (tmp_path / "params.yaml").write_text(f"profile: paper\ndata:\n  source: folder\n  folder: {tmp_path}/nowhere\n")
    r = subprocess.run(
        [sys.executable, "-m", "pipeline.data", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("data: error: ") and last.endswith("nowhere/images: folder not found (a dataset folder holds images/ and masks/)")
    assert "Traceback" not in r.stderr
