"""Importing the authors' SinGAN-Seg checkpoints (issue 24, singanseg.authors).

The checkpoints are written by the authors' own training loop (singan_seg_polyp 1.0.7,
`SinGAN/training.py::train`, which torch.saves Gs/Zs/reals/NoiseAmp as whole-object
pickles) on a tiny RGBA image: 6 scales, the width doubling at scale 4 as their
`2 ** floor(scale / 4)` does, 2 iterations per scale. Their sampler is their own
`generate_from_single_checkpoint` (generate_data.py), run as released, with the pickles it
loads allowed by their real classes (the test trusts files it wrote itself).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import authors_train, quiet_prints, random_rgba
from torch import nn

from singanseg import api
from singanseg.authors import ALLOWED, RefusedPickleError, import_authors, pickle_globals, safe_load
from singanseg.ckpt import CheckpointError
from singanseg.cli import main as cli_main
from singanseg.io import write_png
from singanseg.saved_model import SinGANSeg
from singanseg.typed import ConfigError

H, W = 80, 72  # min_size 25 (the authors' default): 6 scales, so scales 4 and 5 are twice as wide
N_SCALES = 6
NFC = 8
CKPT_ID = "17"


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A release-like tree: <root>/TrainedModels_1_clean/<id>/{Gs,Zs,reals,NoiseAmp}.pth and
    <root>/real_images/<id>.jpg (where generate_from_single_checkpoint reads the size)."""
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    tmp = tmp_path_factory.mktemp("authors")
    rgba = random_rgba(H, W)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trained = authors_train(tmp / "train", rgba, nfc=NFC, niter=2)
    finally:
        torch.set_num_threads(saved)
    root = tmp / "release"
    ckpt = root / "TrainedModels_1_clean" / CKPT_ID
    ckpt.mkdir(parents=True)
    for f in ("Gs.pth", "Zs.pth", "reals.pth", "NoiseAmp.pth"):
        shutil.copy(trained / f, ckpt / f)
    from PIL import Image

    (root / "real_images").mkdir()
    Image.fromarray(rgba[..., :3]).save(root / "real_images" / f"{CKPT_ID}.jpg")
    np.save(tmp / "rgba.npy", rgba)
    return root


@pytest.fixture(scope="module")
def imported(release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported")
    written = import_authors(release / "TrainedModels_1_clean", out)
    assert written == [out / CKPT_ID]
    return out / CKPT_ID


def _authors_classes():
    RM = pytest.importorskip("singan_seg_polyp.SinGAN.models")
    return [RM.GeneratorConcatSkip2CleanAdd, RM.ConvBlock, nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU, nn.Tanh, nn.Sequential]


def _trusted_load(path: Path):
    """The authors' files as their loader sees them (their real classes; test-written files)."""
    with torch.serialization.safe_globals(_authors_classes()):
        return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------
# 1. Import: the same weights, noise, pyramid and amplitudes; provenance recorded


@pytest.mark.reference
def test_import_round_trips_the_authors_checkpoint(release, imported):
    ckpt = release / "TrainedModels_1_clean" / CKPT_ID
    Gs, Zs = _trusted_load(ckpt / "Gs.pth"), _trusted_load(ckpt / "Zs.pth")
    reals, amps = _trusted_load(ckpt / "reals.pth"), _trusted_load(ckpt / "NoiseAmp.pth")
    model = api.load(imported)
    assert model.num_scales == len(Gs) == N_SCALES
    for n, (G, ours) in enumerate(zip(Gs, model.Gs, strict=True)):
        theirs, mine = G.state_dict(), ours.state_dict()
        assert theirs.keys() == mine.keys()
        for k in theirs:
            assert torch.equal(theirs[k], mine[k]), f"scale {n}: {k}"
    widths = [G.head.conv.out_channels for G in model.Gs]
    assert widths == [NFC, NFC, NFC, NFC, 2 * NFC, 2 * NFC]  # inferred per scale, as their 2 ** floor(n / 4)
    for a, b in zip(Zs, model.Zs, strict=True):
        assert torch.equal(a.float(), b)
    for a, b in zip(reals, model.reals, strict=True):
        assert torch.equal(a, b)
    assert model.noise_amps == [float(a) for a in amps]
    assert model.noise_amps[0] == 1.0 and 0 < model.noise_amps[1] < 1
    # the scale factor their sampler recomputes from the real image (min_size 25)
    short = min(reals[-1].shape[2:])
    assert model.scale_factor == math.pow(25 / short, 1 / (len(reals) - 1))
    cfg = model.config
    assert (cfg.nfc, cfg.min_nfc, cfg.ker_size, cfg.num_layer, cfg.padd_size, cfg.min_size) == (NFC, NFC, 3, 5, 0, 25)
    assert cfg.resize == "reference"
    assert model.Ds == [None] * N_SCALES  # no critic in the authors' files
    meta = json.loads((imported / "model.json").read_text())
    src = meta["source"]
    assert src["kind"] == "authors" and src["id"] == CKPT_ID
    assert src["sha256"] == {f: hashlib.sha256((ckpt / f).read_bytes()).hexdigest() for f in src["sha256"]}
    assert sorted(src["sha256"]) == sorted(["Gs.pth", "Zs.pth", "reals.pth", "NoiseAmp.pth"])
    assert meta["seed"] is None and meta["complete"] is True
    assert not any(p.suffix in (".pth", ".pkl") for p in imported.iterdir())  # our files only


@pytest.mark.reference
def test_import_is_idempotent_and_reads_a_zip_and_one_folder(release, imported, tmp_path):
    ckpt = release / "TrainedModels_1_clean" / CKPT_ID
    before = {p.name: p.read_bytes() for p in imported.iterdir()}
    import_authors(release / "TrainedModels_1_clean", imported.parent)  # same files: left alone
    assert {p.name: p.read_bytes() for p in imported.iterdir()} == before
    # a zip of the release (ids = the folders holding Gs.pth) and one checkpoint folder
    zpath = tmp_path / "release.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in ckpt.iterdir():
            zf.write(f, f"SinGAN-Generated/TrainedModels_1_clean/{CKPT_ID}/{f.name}")
    for src, out in ((zpath, tmp_path / "from_zip"), (ckpt, tmp_path / "from_folder")):
        (written,) = import_authors(src, out)
        assert written == out / CKPT_ID
        for name, data in before.items():
            if name.endswith(".safetensors"):
                assert (written / name).read_bytes() == data, (src, name)


@pytest.mark.reference
def test_cli_import_and_info_show_provenance(release, tmp_path, capsys):
    assert cli_main(["import-authors", str(release / "TrainedModels_1_clean"), "--out", str(tmp_path / "m")]) == 0
    assert "imported 1 model" in capsys.readouterr().out
    assert cli_main(["info", str(tmp_path / "m" / CKPT_ID)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"]["kind"] == "authors" and info["source"]["id"] == CKPT_ID
    assert info["complete"] is True and info["scales"] == f"{N_SCALES} of {N_SCALES}"


# ---------------------------------------------------------------------------------------
# 2. The same samples as the authors' generator


@contextlib.contextmanager
def _skip_discarded_draws(gen_start_scale: int):
    """SinGAN_generate_clean draws noise below gen_start_scale and overwrites it with Z_opt;
    ours does not draw it. Those draws (one per scale: num_samples 1) return zeros without
    touching the RNG, so both consume the same stream (as test_singan_equivalence does)."""
    RF = pytest.importorskip("singan_seg_polyp.SinGAN.functions")
    original, calls = RF.generate_noise, [0]

    def generate_noise(size, *args, **kw):
        scale = calls[0]
        calls[0] += 1
        if scale < gen_start_scale:
            return torch.zeros(1, size[0], round(size[1]), round(size[2]))
        return original(size, *args, **kw)

    RF.generate_noise = generate_noise
    try:
        yield
    finally:
        RF.generate_noise = original


@contextlib.contextmanager
def _patched(module, name: str, value):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _authors_sample(release: Path, out: Path, gen_start_scale: int, python_seed: int):
    """One sample of the authors' generate_from_single_checkpoint, as released (on the CPU:
    `not_cuda`, a flag its parser has but its signature does not pass): it seeds torch from
    random.randint(1, 10000) (post_config); returns (image, mask) uint8."""
    GD = pytest.importorskip("singan_seg_polyp.generate_data")
    from PIL import Image

    released = GD.get_arguments

    def get_arguments():  # on the CPU: its --not_cuda flag's value, which it cannot pass itself
        parser = released()
        parser.set_defaults(not_cuda=True)
        return parser

    random.seed(python_seed)
    with (
        quiet_prints(),
        torch.serialization.safe_globals(_authors_classes()),
        _skip_discarded_draws(gen_start_scale),
        _patched(GD, "get_arguments", get_arguments),
    ):
        GD.generate_from_single_checkpoint(
            str(out), str(release / "TrainedModels_1_clean" / CKPT_ID), num_samples=1,
            gen_start_scale=gen_start_scale, mask_post_processing=True,
        )
    stem = out / f"chk_id_{CKPT_ID}_gen_scale_{gen_start_scale}_0"
    image = np.asarray(Image.open(f"{stem}_img.png").convert("RGB"))
    mask = np.asarray(Image.open(f"{stem}_mask.png").convert("RGB"))
    assert (mask == mask[..., :1]).all()
    return image, mask[..., 0]


def _torch_seed(python_seed: int) -> int:
    random.seed(python_seed)
    return random.randint(1, 10000)  # functions.py::post_config with manualSeed None


@pytest.mark.reference
@pytest.mark.parametrize("gen_start_scale", [0, 3])
def test_samples_equal_the_authors_generator_byte_for_byte(release, imported, gen_start_scale, tmp_path):
    model = api.load(imported)
    images = []
    for i in range(2):
        ref_image, ref_mask = _authors_sample(release, tmp_path / f"ref{i}", gen_start_scale, 100 + i)
        ((image, mask),) = model.sample(1, gen_start_scale, seed=_torch_seed(100 + i))
        assert image.dtype == ref_image.dtype == np.uint8
        assert np.array_equal(image, ref_image), f"sample {i}: image bytes differ"
        assert np.array_equal(mask, ref_mask), f"sample {i}: mask bytes differ"
        images.append(image)
    assert not np.array_equal(images[0], images[1])  # random samples, not one replay


@pytest.mark.reference
def test_cli_sample_of_an_imported_model_equals_the_authors(release, imported, tmp_path):
    from PIL import Image

    ref_image, ref_mask = _authors_sample(release, tmp_path / "ref", 0, 7)
    args = ["sample", str(imported), "--num", "1", "--seed", str(_torch_seed(7)), "--out", str(tmp_path / "s")]
    assert cli_main([*args, "--device", "cpu"]) == 0
    image = np.asarray(Image.open(tmp_path / "s" / "images" / f"{CKPT_ID}_0.png"))
    mask = np.asarray(Image.open(tmp_path / "s" / "masks" / f"{CKPT_ID}_0.png"))
    assert np.array_equal(image, ref_image) and np.array_equal(mask, ref_mask)


@pytest.mark.reference
def test_stylize_runs_on_an_imported_models_samples(release, imported, tmp_path, capsys):
    """`sample` then `stylize` (random VGG weights, one step: offline and fast) as for a
    trained model: the style is the model's real image, the masks are carried unchanged."""
    assert cli_main(["sample", str(imported), "--num", "2", "--seed", "1", "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    style = release / "real_images" / f"{CKPT_ID}.jpg"
    args = ["stylize", str(tmp_path / "s"), str(style), "--out", str(tmp_path / "st"), "--weights", "random", "--steps", "1"]
    assert cli_main(args) == 0, capsys.readouterr().err
    for i in range(2):
        name = f"{CKPT_ID}_{i}.png"
        assert (tmp_path / "st" / "images" / name).is_file()
        assert (tmp_path / "st" / "masks" / name).read_bytes() == (tmp_path / "s" / "masks" / name).read_bytes()


@pytest.mark.reference
def test_training_into_an_imported_model_says_why_not(release, imported, tmp_path):
    """train (and train-many, through api.finished_model) never resumes or replaces an
    imported model: there is no critic, optimiser or random state; the message says so."""
    rgba = np.load(release.parent / "rgba.npy")
    model = api.load(imported)
    # the very pair and config it was imported with: skipped like a trained model
    assert api.finished_model(imported, model.config, 5, rgba[..., :3], rgba[..., 3]) == {"seed": None, "scales": N_SCALES}
    other = random_rgba(H, W, seed=1)
    with pytest.raises(api.IncompatibleModelError, match="no critic, optimiser or random state"):
        api.finished_model(imported, model.config, 5, other[..., :3], other[..., 3])
    with pytest.raises(api.IncompatibleModelError, match=r"imported from the authors' checkpoint '17'.*config differs"):
        api.finished_model(imported, api.SinGANConfig(), None, rgba[..., :3], rgba[..., 3])
    folder = tmp_path / "copy"
    shutil.copytree(imported, folder)
    before = (folder / "model.json").read_bytes()
    # train follows the one skip rule (api.open_model): its own pair and config are skipped,
    # untouched; another pair is refused with the reason
    api.train(rgba[..., :3], rgba[..., 3], folder, model.config, seed=5, progress=False)
    assert (folder / "model.json").read_bytes() == before
    with pytest.raises(api.IncompatibleModelError, match="no critic, optimiser or random state to resume training"):
        api.train(other[..., :3], other[..., 3], folder, model.config, seed=5, progress=False)
    assert json.loads((folder / "model.json").read_text())["source"]["id"] == CKPT_ID  # untouched


@pytest.mark.reference
def test_train_many_skips_an_imported_model_of_its_pair_and_names_a_mismatch(release, imported, tmp_path):
    """train-many resumes by default: an imported model of the same pair and config is
    skipped like a trained one; one in the folder of another pair fails that pair with the
    reason (it is not replaced, even with on_incompatible 'retrain': it has nothing to
    resume from)."""
    from singanseg.train_many import train_many

    rgba = np.load(release.parent / "rgba.npy")
    data, out = tmp_path / "data", tmp_path / "models"
    write_png(data / "images" / f"{CKPT_ID}.png", rgba[..., :3])
    write_png(data / "masks" / f"{CKPT_ID}.png", rgba[..., 3])
    other = random_rgba(H, W, seed=1)
    write_png(data / "images" / "18.png", other[..., :3])
    write_png(data / "masks" / "18.png", other[..., 3])
    shutil.copytree(imported, out / CKPT_ID)
    shutil.copytree(imported, out / "18")  # an import under the wrong id
    cfg = api.load(imported).config
    result = train_many(data, out, cfg, seed=3, progress=False, device="cpu", on_incompatible="retrain")
    assert result.ids("skipped") == [CKPT_ID]
    assert result.ids("failed") == ["18"]
    (failed,) = [r for r in result.results if r.task_id == "18"]
    assert "imported from the authors' checkpoint '17'" in failed.error and "coarsest real" in failed.error
    assert json.loads((out / "18" / "model.json").read_text())["source"]["id"] == CKPT_ID  # not replaced


@pytest.mark.reference
def test_import_for_data_maps_ids_by_natural_sort_and_checks_the_reals(release, tmp_path):
    """ids 1..N = the natural-sort positions of the pairs' names; each model's coarsest real
    must be its pair's, else the mapping is refused naming both."""
    from singanseg.authors import import_for_data

    rgba, other = np.load(release.parent / "rgba.npy"), random_rgba(H, W, seed=1)
    good = release / "TrainedModels_1_clean" / CKPT_ID
    src = tmp_path / "release"
    for i in ("1", "2"):
        shutil.copytree(good, src / i)
    data = tmp_path / "data"
    # natural sort: polyp2 before polyp10 (plain sorted() would swap them)
    for name, x in (("polyp2", rgba), ("polyp10", other)):
        write_png(data / "images" / f"{name}.png", x[..., :3])
        write_png(data / "masks" / f"{name}.png", x[..., 3])
    with pytest.raises(CheckpointError, match=r"2: the authors' model 2 is not the model of .*polyp10\.png.*mapped wrong"):
        import_for_data(src, data, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "polyp2" / "model.json").read_text())["source"]["id"] == "1"
    shutil.rmtree(src / "2")
    with pytest.raises(CheckpointError, match=r"no checkpoint for 1 of the 2 pairs.*polyp10 \(authors' id 2\)"):
        import_for_data(src, data, tmp_path / "out2")
    (data / "images" / "polyp10.png").unlink()
    (data / "masks" / "polyp10.png").unlink()
    assert import_for_data(src, data, tmp_path / "out3") == {"polyp2": tmp_path / "out3" / "polyp2"}


@pytest.mark.reference
def test_the_train_singan_stage_imports_with_source_authors(release, tmp_path):
    """`singan.source: authors`: the stage imports this shard's models instead of training,
    records their source, and what it writes is what the generate stage samples from."""
    from pipeline.train_singan import IMPORT_RECORD, SinGANStageParams, run

    rgba = np.load(release.parent / "rgba.npy")
    data, src = tmp_path / "data", tmp_path / "release"
    write_png(data / "images" / "polyp2.png", rgba[..., :3])
    write_png(data / "masks" / "polyp2.png", rgba[..., 3])
    shutil.copytree(release / "TrainedModels_1_clean" / CKPT_ID, src / "1")
    params = SinGANStageParams(input_dir=str(data), out_dir=str(tmp_path / "models"), source="authors",
                               authors_dir=str(src), track=False)  # fmt: skip
    result = run(params, exclusive_out=True)
    assert result.ids("done") == ["polyp2"] and "imported from the authors' checkpoints" in result.summary
    assert json.loads(result.record.read_text())["models"] == ["polyp2"]
    assert result.record.name == IMPORT_RECORD
    model = SinGANSeg.load(tmp_path / "models" / "polyp2")
    assert model.meta["source"]["id"] == "1" and len(model.sample(2, 0, seed=1)) == 2
    with pytest.raises(ConfigError, match="singan.authors_dir: required"):
        run(SinGANStageParams(input_dir=str(data), out_dir=str(tmp_path / "m2"), source="authors", track=False))


@pytest.mark.reference
def test_the_report_names_the_source_of_its_models(imported, tmp_path):
    from pipeline.report.build import header, models_line

    shutil.copytree(imported, tmp_path / "shard0" / "polyp1")
    assert models_line([tmp_path / "shard0"]) == "1 imported from the authors' released checkpoints (`singan.source: authors`)"
    (tmp_path / "shard1" / "polyp2").mkdir(parents=True)
    (tmp_path / "shard1" / "polyp2" / "model.json").write_text(json.dumps({"format": "singanseg-singan", "seed": 1}))
    line = models_line([tmp_path / "shard0", tmp_path / "shard1"])
    assert line.startswith("1 trained by this suite, 1 imported from the authors'")
    assert f"- SinGAN-Seg models: {line}" in header("smoke", "abc", {}, "phantom", models=line)
    assert models_line([tmp_path / "nothing"]) is None


def test_the_plan_prices_an_import_without_training(tmp_path):
    """pipeline.plan with singan.source: authors: the train_singan rows import, not train."""
    import yaml

    from pipeline.plan import work as plan_work

    root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["singan"].update(source="authors", authors_dir="/data/TrainedModels")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    p = plan_work.Plan(tmp_path / "params.yaml", "paper", tmp_path / "no-such-dir", None)
    rows = {r.stage: r for r in plan_work.work_rows(p, plan_work.dvc_stages(root / "dvc.yaml", p.raw))}
    assert sum(rows[f"train_singan@{i}"].units["models"] for i in range(4)) == 1000
    assert all(rows[f"train_singan@{i}"].units["imported"] for i in range(4))
    assert "iterations" not in rows["train_singan@0"].units
    assert "imported from the authors' checkpoints (/data/TrainedModels)" in rows["train_singan@0"].work


# ---------------------------------------------------------------------------------------
# Refusals: malicious, truncated and mismatched files


class _Marker:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    ckpt = tmp_path / "src" / "5"
    ckpt.mkdir(parents=True)
    torch.save([_Marker(marker)], ckpt / "Gs.pth", pickle_protocol=protocol)
    for f in ("Zs.pth", "reals.pth", "NoiseAmp.pth"):
        torch.save([torch.zeros(1)], ckpt / f)
    with pytest.raises(RefusedPickleError) as e:
        import_authors(tmp_path / "src", tmp_path / "out")
    msg = str(e.value)
    assert f"{ckpt}/Gs.pth" in msg and ("posix.system" in msg or "nt.system" in msg), msg
    assert "not on the importer's allow-list" in msg  # caught by the opcode scan, before torch.load
    assert "\n" not in msg
    assert not marker.exists()
    assert not (tmp_path / "out" / "5").exists()
    # the scan alone names it (nothing unpickled); the global is not on the allow-list
    data = zipfile.ZipFile(ckpt / "Gs.pth").read("Gs/data.pkl")
    assert any(g.endswith(".system") for g in pickle_globals(data, "x")) and not ALLOWED & {"posix.system", "os.system"}


def test_torch_weights_only_refuses_what_a_broken_scan_would_let_through(tmp_path, monkeypatch):
    """The second line of defence alone: with the scan's allow-list widened to os.system,
    torch's weights-only unpickler still refuses the file and nothing runs."""
    import singanseg.authors as authors

    marker = tmp_path / "MARKER"
    buf = io.BytesIO()
    torch.save([_Marker(marker)], buf)
    monkeypatch.setattr(authors, "ALLOWED", authors.ALLOWED | {f"{os.system.__module__}.system"})
    with pytest.raises(RefusedPickleError, match="x/Gs.pth: refused by torch's weights-only unpickler"):
        safe_load(buf.getvalue(), "x/Gs.pth")
    assert not marker.exists()


def test_torch_load_is_never_called_without_weights_only(tmp_path, monkeypatch):
    """Every load of the importer goes through torch.load(weights_only=True) (the second line
    of defence, after the opcode scan), and no module of the suite calls torch.load or
    pickle.load otherwise (grep)."""
    calls = []
    original = torch.load

    def spy(*args, **kw):
        calls.append(kw.get("weights_only"))
        return original(*args, **kw)

    monkeypatch.setattr(torch, "load", spy)
    buf = io.BytesIO()
    torch.save([torch.ones(2)], buf)
    assert torch.equal(safe_load(buf.getvalue(), "x")[0], torch.ones(2))
    assert calls == [True]
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("singanseg", "pipeline", "baselines"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for i, line in enumerate(text.splitlines(), 1):
                if ("torch.load(" in line and "weights_only=True" not in line) or "pickle.load" in line:
                    offenders.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    assert not offenders, offenders


def _zip_with_pickle(src: Path, dst: Path, edit) -> None:
    """Copy a torch zip checkpoint, its data.pkl passed through `edit` (bytes -> bytes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info.filename, edit(data) if info.filename.endswith("/data.pkl") else data)


@pytest.mark.reference
def test_the_singan_module_named_by_the_file_is_never_imported(release, tmp_path, monkeypatch):
    """The repository's module path `SinGAN.models` (how the released files name their
    classes) is mapped to stand-ins: a planted SinGAN package that would write a marker on
    import is never imported, and the model still imports."""
    ckpt = tmp_path / "src" / CKPT_ID
    shutil.copytree(release / "TrainedModels_1_clean" / CKPT_ID, ckpt)
    _zip_with_pickle(
        release / "TrainedModels_1_clean" / CKPT_ID / "Gs.pth",
        ckpt / "Gs.pth",
        lambda b: b.replace(b"singan_seg_polyp.SinGAN.models\n", b"SinGAN.models\n"),
    )
    assert "SinGAN.models.ConvBlock" in pickle_globals(zipfile.ZipFile(ckpt / "Gs.pth").read("Gs/data.pkl"), "x")
    marker = tmp_path / "MARKER"
    planted = tmp_path / "planted" / "SinGAN"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("")
    (planted / "models.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path / "planted"))
    for name in [m for m in list(__import__("sys").modules) if m == "SinGAN" or m.startswith("SinGAN.")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    (written,) = import_authors(tmp_path / "src", tmp_path / "out")
    assert not marker.exists()
    assert SinGANSeg.load(written).num_scales == N_SCALES


@pytest.mark.reference
def test_truncated_and_mismatched_files_are_named(release, tmp_path):
    good = release / "TrainedModels_1_clean" / CKPT_ID

    def variant(name: str, edit) -> Path:
        ckpt = tmp_path / name / CKPT_ID
        shutil.copytree(good, ckpt)
        edit(ckpt)
        return tmp_path / name

    def truncate(ckpt):
        data = (ckpt / "Gs.pth").read_bytes()
        (ckpt / "Gs.pth").write_bytes(data[: len(data) // 2])

    def fewer_amps(ckpt):
        torch.save(_trusted_load(ckpt / "NoiseAmp.pth")[:3], ckpt / "NoiseAmp.pth")

    def other_reals(ckpt):  # the reals of another image: the Zs no longer fit
        reals = _trusted_load(ckpt / "reals.pth")
        torch.save([torch.nn.functional.pad(r, (0, 1)) for r in reals], ckpt / "reals.pth")

    def wider_generator(ckpt):  # one scale twice as wide as the SinGAN widths allow
        RM = pytest.importorskip("singan_seg_polyp.SinGAN.models")
        Gs = _trusted_load(ckpt / "Gs.pth")
        opt = argparse.Namespace(nc_im=4, nfc=2 * NFC, min_nfc=2 * NFC, ker_size=3, num_layer=5, padd_size=0)
        with quiet_prints():
            Gs[1] = RM.GeneratorConcatSkip2CleanAdd(opt)
        torch.save(Gs, ckpt / "Gs.pth")

    def missing(ckpt):
        (ckpt / "Zs.pth").unlink()

    cases = {
        "truncated": (truncate, r"Gs\.pth: .*(truncated|corrupted)"),
        "fewer_amps": (fewer_amps, r"different numbers of scales .*'NoiseAmp\.pth': 3"),
        "other_reals": (other_reals, r"(Zs\.pth\[0\]: shape .* does not match reals\.pth|reals\.pth: the reals' shapes)"),
        "wider": (wider_generator, r"Gs\.pth\[1\]: layer shapes do not follow the SinGAN widths"),
        "missing": (missing, r"Zs\.pth missing"),
    }
    for name, (edit, pattern) in cases.items():
        src = variant(name, edit)
        with pytest.raises(CheckpointError, match=pattern) as e:
            import_authors(src, tmp_path / f"out_{name}")
        assert str(src) in str(e.value), (name, str(e.value))
        assert not (tmp_path / f"out_{name}" / CKPT_ID).exists(), name
    # the command line prints the one line and exits 2
    assert cli_main(["import-authors", str(tmp_path / "truncated"), "--out", str(tmp_path / "o")]) == 2


def test_garbage_is_not_a_checkpoint(tmp_path):
    ckpt = tmp_path / "9"
    ckpt.mkdir()
    for f in ("Gs.pth", "Zs.pth", "reals.pth", "NoiseAmp.pth"):
        (ckpt / f).write_bytes(pickle.dumps([1, 2, 3]))  # a bare pickle: not torch's zip format
    with pytest.raises(CheckpointError, match=r"9/Gs\.pth: not a torch zip checkpoint"):
        import_authors(ckpt, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: no Gs\.pth"):
        import_authors(tmp_path / "empty", tmp_path / "o")
