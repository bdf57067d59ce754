"""Style transfer (SinGAN-Seg step 2; paper.md section 2) on tiny images with random VGGs.

Random VGG weights (`weights: random`) are the only ones available offline; the tests check
behaviour (loss goes down, the paper's taps, the mask carried, weights handling), and one
test checks equivalence with the authors' installed `singan_seg_polyp.style_transfer`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from singanseg import style_transfer as st
from singanseg import stylize_folder as sf
from singanseg import vgg as vb
from singanseg.io import InputError, write_png
from singanseg.typed import ConfigError, from_mapping, replace


def cfg(**kw) -> st.StyleConfig:
    return from_mapping(st.StyleConfig, {"weights": "random", **kw}, "test")


@pytest.fixture(scope="module")
def vgg16() -> st.Backbone:
    return st.load_backbone(cfg())


def rand_img(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish content so that VGG features are not all noise
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(base).resize((w, h), Image.BILINEAR))


def true_names(vgg: str) -> dict[int, str]:
    """Index -> VGG layer name, derived from torchvision's own cfg list (conv, ReLU, 'M' pool)."""
    from torchvision.models.vgg import cfgs

    names, i, block, k = {}, 0, 1, 0
    for v in cfgs[{"vgg16": "D", "vgg19": "E"}[vgg]]:
        if v == "M":
            i, block, k = i + 1, block + 1, 0
        else:
            k += 1
            names[i] = f"conv{block}_{k}"
            i += 2  # conv + ReLU
    return names


# ---------------------------------------------------------------- config


def test_ratio_presets_parse():
    assert set(st.RATIO_PRESETS) == {"1to1", "1to10", "1to1000", "1to1000000", "1000to1"}
    for name in st.RATIO_PRESETS:
        c, s = name.split("to")
        assert st.parse_ratio(name) == (float(c), float(s))
    assert st.parse_ratio("2to5e3") == (2.0, 5000.0)
    with pytest.raises(ConfigError, match="ratio 'one-to-ten'"):
        st.parse_ratio("one-to-ten")


def test_config_defaults_are_the_papers_and_errors_name_the_key():
    c = st.StyleConfig()
    assert (c.vgg_model, c.lr, c.num_epochs, c.content_layer) == ("vgg16", 0.01, 1000, "conv5_1")
    assert c.style_weights == {
        "conv1_1": 0.75,
        "conv2_1": 0.5,
        "conv3_1": 0.25,
        "conv4_1": 0.25,
        "conv5_1": 0.25,
    }
    assert (c.capture, c.layers, c.quantize) == ("post_relu", "paper", "truncate")
    with pytest.raises(ConfigError, match=r"style\.num_epoch: unknown key"):
        from_mapping(st.StyleConfig, {"num_epoch": 3}, "style")
    with pytest.raises(ConfigError, match="conv9_1"):
        from_mapping(st.StyleConfig, {"content_layer": "conv9_1"}, "style")
    with pytest.raises(ConfigError, match=r"style\.weights: empty"):
        from_mapping(st.StyleConfig, {"weights": " "}, "style")


# ---------------------------------------------------------------- layers and taps


@pytest.mark.parametrize("vgg", ["vgg16", "vgg19"])
def test_layer_indices_match_labels(vgg):
    feats = vb._random_features(vgg, 0)
    names = true_names(vgg)
    assert vb.conv_names(feats) == names
    c = cfg(vgg_model=vgg)
    used = {c.content_layer, *c.style_weights}  # conv4_2 (index 21) is tapped but unused
    paper = st.layer_indices(feats, c)
    assert paper == {label: i for i, label in st.PAPER_FEATURE_LAYERS.items() if label in used}
    by_name = st.layer_indices(feats, cfg(vgg_model=vgg, layers="by_name"))
    assert set(by_name) == used and all(names[i] == label for label, i in by_name.items())
    wrong = {label: names[i] for i, label in st.PAPER_FEATURE_LAYERS.items() if names[i] != label}
    if vgg == "vgg19":
        assert wrong == {} and by_name == paper  # the labels are VGG19's own names
    else:  # paper.md s2: on VGG16 indices 19/21/28 are conv4_2/conv4_3/conv5_3
        assert wrong == {"conv4_1": "conv4_2", "conv4_2": "conv4_3", "conv5_1": "conv5_3"}
        assert by_name != paper


@pytest.mark.reference
def test_post_relu_capture_is_the_authors_get_features(vgg16):
    ref = pytest.importorskip("singan_seg_polyp.style_transfer")
    feats = vgg16.features
    x = torch.randn(1, 3, 32, 32)  # the reference runs to the last pool: >= 32 px
    theirs = ref.get_features(
        x.clone(), feats, {str(i): n for i, n in st.PAPER_FEATURE_LAYERS.items()}
    )
    taps = {label: i for i, label in st.PAPER_FEATURE_LAYERS.items()}  # all six, conv4_2 too
    ours = st.extract(feats, x.clone(), st.capture_points(feats, taps, "post_relu"))
    pre = st.extract(feats, x.clone(), st.capture_points(feats, taps, "conv_output"))
    assert set(ours) == set(theirs)
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0)
        assert theirs[k].min() >= 0 and pre[k].min() < 0  # the inplace ReLU rewrote the tap
        torch.testing.assert_close(pre[k].clamp_min(0), theirs[k], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- optimisation


def test_loss_decreases(vgg16):
    c = st._to_tensor(rand_img(32, 40, 1), "c")[None]
    s = st._to_tensor(rand_img(32, 40, 2), "s")[None]
    res = st.transfer_style_tensors(c, s, vgg16, cfg(num_epochs=12))
    assert len(res.losses) == 12 and res.losses[-1] < 0.8 * res.losses[0]
    assert res.style_losses[-1] < res.style_losses[0]
    assert res.content_losses[0] == 0  # the input starts as the content image
    assert not torch.equal(res.images, c)


def test_style_weight_zero_keeps_the_content(vgg16):
    content, style = rand_img(32, 32, 3), rand_img(40, 28, 4)
    kept, _ = st.stylize(
        content, style, cfg(num_epochs=6, style_weight=0, quantize="round"), network=vgg16
    )
    np.testing.assert_array_equal(
        kept, content
    )  # zero content gradient at the start: Adam never moves
    trunc, _ = st.stylize(content, style, cfg(num_epochs=6, style_weight=0), network=vgg16)
    assert np.abs(trunc.astype(int) - content).max() <= 1  # the authors' truncating uint8 cast
    moved, _ = st.stylize(content, style, cfg(num_epochs=6, style_weight=1e6), network=vgg16)
    assert np.abs(moved.astype(int) - content).mean() > 1


@pytest.mark.reference
def test_same_result_as_the_authors_transfer_style(vgg16, tmp_path, monkeypatch):
    ref = pytest.importorskip("singan_seg_polyp.style_transfer")
    content, style = rand_img(36, 44, 5), rand_img(50, 30, 6)  # the style gets resized
    Image.fromarray(content).save(tmp_path / "c.png")
    Image.fromarray(style).save(tmp_path / "s.png")

    class Models:  # hands the reference our random VGG instead of downloading ImageNet weights
        def vgg16(self, **_):
            return type("VGG", (), {"features": vgg16.features})()

    monkeypatch.setattr(ref, "models", Models())
    theirs = np.asarray(
        ref.transfer_style(
            str(tmp_path / "c.png"), str(tmp_path / "s.png"), 4, 1, 1000, "cpu", "vgg16"
        )
    )
    ours, _ = st.stylize(content, style, cfg(num_epochs=4), network=vgg16)
    assert np.abs(ours.astype(int) - theirs).max() <= 1
    assert (ours == theirs).mean() > 0.99


# ---------------------------------------------------------------- weights and provenance


def test_refuses_to_run_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    c = from_mapping(st.StyleConfig, {"download": False}, "style")  # weights: imagenet (default)
    with pytest.raises(st.StyleWeightsError, match="weights: random") as e:
        st.stylize(rand_img(16, 16, 0), rand_img(16, 16, 1), c)
    assert "vgg16-397923af.pth" in str(e.value) and str(tmp_path / "torch") in str(e.value)
    with pytest.raises(st.StyleWeightsError, match="no_such.pth"):
        st.load_backbone(replace(c, {"weights": str(tmp_path / "no_such.pth")}))


def test_provenance_says_random_init(vgg16):
    _, prov = st.stylize(rand_img(16, 16, 0), rand_img(16, 16, 1), cfg(num_epochs=1), network=vgg16)
    assert prov["weights"] == "random-init" and prov["random_seed"] == "0"
    assert prov["state_sha256"] == vb.state_sha256(vgg16.features)
    other = st.load_backbone(cfg(random_seed=1))
    assert other.provenance["state_sha256"] != prov["state_sha256"]


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_weights_file_is_loaded(fmt, vgg16, tmp_path):
    feats = vb._random_features("vgg16", 7)  # weights we made ourselves, not the default seed
    path = tmp_path / f"vgg.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in feats.state_dict().items()}, str(path))
    else:  # a full torchvision-style state dict, `features.` prefixed
        torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
    loaded = st.load_backbone(cfg(weights=str(path)))
    assert loaded.provenance["weights"] == "file"
    assert loaded.provenance["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (
        loaded.provenance["state_sha256"]
        == vb.state_sha256(feats)
        != vb.state_sha256(vgg16.features)
    )
    content, style = rand_img(24, 24, 8), rand_img(24, 24, 9)
    a, _ = st.stylize(content, style, cfg(num_epochs=3), network=loaded)
    b, prov = st.stylize(content, style, cfg(num_epochs=3), network=feats)
    np.testing.assert_array_equal(a, b)
    assert prov["weights"] == "injected"


def test_bad_weights_files_are_named(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(st.StyleWeightsError, match="junk.pth: cannot read"):
        st.load_backbone(cfg(weights=str(junk)))
    wrong = tmp_path / "vgg19.safetensors"
    from safetensors.torch import save_file

    save_file(vb._random_features("vgg19", 0).state_dict(), str(wrong))
    with pytest.raises(st.StyleWeightsError, match="vgg19.safetensors: weights do not fit vgg16"):
        st.load_backbone(cfg(weights=str(wrong)))


# ---------------------------------------------------------------- folders and CLI


def make_sets(root: Path) -> tuple[Path, Path]:
    content, style = root / "gen", root / "real"
    sizes = {"polypA_0": (32, 32), "polypA_1": (32, 32), "polypA_2": (32, 32), "b_x_0": (24, 40)}
    for i, (cid, (h, w)) in enumerate(sizes.items()):
        write_png(content / "images" / f"{cid}.png", rand_img(h, w, 10 + i))
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : h // 2, w // 3 :] = 255
        write_png(content / "masks" / f"{cid}.png", mask)
    write_png(style / "polypA.png", rand_img(48, 48, 20))
    Image.fromarray(rand_img(30, 30, 21)).save(style / "b_x.jpg")
    return content, style


def test_stylize_folder_maps_ids_and_carries_masks(vgg16, tmp_path):
    content, style = make_sets(tmp_path)
    out = tmp_path / "out"
    c = cfg(num_epochs=3)
    rec = sf.stylize_folder(content, style, out, c, network=vgg16, batch_size=2)
    ids = sorted(p.stem for p in (content / "images").iterdir())
    assert sorted(p.stem for p in (out / "images").iterdir()) == ids
    for i in ids:
        assert (out / "masks" / f"{i}.png").read_bytes() == (
            content / "masks" / f"{i}.png"
        ).read_bytes()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["weights"] == "random-init" and prov["images"] == len(ids) == rec["images"]
    assert prov["config"]["num_epochs"] == 3
    # the clock stays out of the folder's DVC hash: seconds in the returned record and the sidecar only
    assert "seconds" not in prov and rec["seconds"] >= 0
    assert json.loads((out / "provenance.timing.json").read_text())["seconds"] == rec["seconds"]
    # each output equals a one-by-one run with the style image of its own source id
    from singanseg.io import read_image

    for cid, sid in (("polypA_2", "polypA.png"), ("b_x_0", "b_x.jpg")):
        alone, _ = st.stylize(
            read_image(content / "images" / f"{cid}.png"), read_image(style / sid), c, network=vgg16
        )
        got = read_image(out / "images" / f"{cid}.png")
        assert np.abs(got.astype(int) - alone).max() <= 1


def test_stylize_folder_can_keep_the_first_samples_of_each_model(vgg16, tmp_path):
    """stylize.samples_per_model (issue 23, a cut): samples n < N of every source id, the others skipped."""
    content, style = make_sets(tmp_path)
    rec = sf.stylize_folder(content, style, tmp_path / "out", cfg(num_epochs=1), network=vgg16, samples_per_model=2)
    assert sorted(p.stem for p in (tmp_path / "out" / "images").iterdir()) == ["b_x_0", "polypA_0", "polypA_1"]
    assert sorted(p.stem for p in (tmp_path / "out" / "masks").iterdir()) == ["b_x_0", "polypA_0", "polypA_1"]
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert rec["images"] == prov["images"] == 3 and prov["samples_per_model"] == 2
    with pytest.raises(ConfigError, match="samples_per_model: must be >= 1"):
        sf.stylize_folder(content, style, tmp_path / "none", cfg(num_epochs=1), network=vgg16, samples_per_model=0)


def test_stylize_folder_missing_style_is_named(vgg16, tmp_path):
    content, style = make_sets(tmp_path)
    (style / "b_x.jpg").unlink()
    with pytest.raises(InputError, match=r"b_x_0\.png: no style image 'b_x\.\*'"):
        sf.stylize_folder(content, style, tmp_path / "out", cfg(num_epochs=1), network=vgg16)
    assert not (tmp_path / "out").exists()
    Image.fromarray(rand_img(30, 30, 21)).save(style / "b_x.jpg")
    write_png(content / "images" / "nonumber.png", rand_img(8, 8, 0))
    write_png(content / "masks" / "nonumber.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(
        InputError, match=r"nonumber\.png: content id 'nonumber': expected '<source id>_<n>'"
    ):
        sf.stylize_folder(content, style, tmp_path / "out", cfg(num_epochs=1), network=vgg16)


def test_style_source_may_be_a_real_data_folder_or_one_file(vgg16, tmp_path):
    """A real-data folder (images/ + masks/, as data/real) is matched by id; one image file
    styles every content image (issue 18 s4: no naming rule to satisfy)."""
    content, style = make_sets(tmp_path)
    real = tmp_path / "real_pairs"
    for f in style.iterdir():
        img = np.asarray(Image.open(f).convert("RGB"))
        write_png(real / "images" / f"{f.stem}.png", img)
        write_png(real / "masks" / f"{f.stem}.png", np.zeros(img.shape[:2], np.uint8))
    c = cfg(num_epochs=2)
    sf.stylize_folder(content, real, tmp_path / "by_id", c, network=vgg16)
    sf.stylize_folder(content, style, tmp_path / "plain", c, network=vgg16)
    for cid in ("polypA_1", "b_x_0"):
        by_id = np.asarray(Image.open(tmp_path / "by_id" / "images" / f"{cid}.png"), dtype=int)
        plain = np.asarray(Image.open(tmp_path / "plain" / "images" / f"{cid}.png"), dtype=int)
        assert np.abs(by_id - plain).max() <= 1
    one = real / "images" / "polypA.png"
    sf.stylize_folder(content, one, tmp_path / "one", c, network=vgg16)
    from singanseg.io import read_image

    alone, _ = st.stylize(read_image(content / "images" / "b_x_0.png"), read_image(one), c, network=vgg16)
    got = read_image(tmp_path / "one" / "images" / "b_x_0.png")
    assert np.abs(got.astype(int) - alone).max() <= 1  # b_x_0 took polypA's style


def test_progress_lines_give_an_eta_per_image_and_in_total(vgg16, tmp_path):
    content, style = make_sets(tmp_path)
    lines: list[str] = []
    sf.stylize_folder(content, style, tmp_path / "o", cfg(num_epochs=3), network=vgg16, batch_size=1,
                      log=lines.append, progress_every_s=0.0)  # fmt: skip
    steps = [x for x in lines if "step" in x]
    assert steps and all(re.search(r"image \d/4, step \d/3, ETA \d+m\d\ds for this image, \d+m\d\ds in total", x)
                         for x in steps), lines  # fmt: skip
    assert lines[-1].startswith("stylize: 4/4 images in ")
    quiet: list[str] = []
    sf.stylize_folder(content, style, tmp_path / "q", cfg(num_epochs=3), network=vgg16, log=quiet.append)
    assert quiet == [quiet[-1]] and quiet[-1].startswith("stylize: 4/4 images")  # at most every 30 s, and the end


def test_steps_help_names_the_cost_and_the_profiles_values():
    from singanseg.profiles import profile_section

    text = sf._steps_help()
    assert "250x250 px" in text and "CPU-seconds" in text and "1000" in text
    assert f"the cpu profile uses {profile_section('cpu', 'stylize')['num_epochs']}" in text


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="singanseg")
    sf.add_stylize_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_files_and_folders(tmp_path, capsys):
    content, style = make_sets(tmp_path)
    args = cli(
        [
            "stylize",
            str(content / "images" / "b_x_0.png"),
            str(style / "b_x.jpg"),
            "--out",
            str(tmp_path / "one.png"),
            "--weights",
            "random",
            "--steps",
            "2",
            "--ratio",
            "1to10",
        ]
    )
    assert args.func(args) == 0
    prov = json.loads((tmp_path / "one.provenance.json").read_text())
    assert prov["weights"] == "random-init"
    assert (prov["config"]["content_weight"], prov["config"]["style_weight"]) == st.parse_ratio(
        "1to10"
    )
    assert Image.open(tmp_path / "one.png").size == (40, 24)
    args = cli(
        [
            "stylize",
            str(content),
            str(style),
            "--out",
            str(tmp_path / "o"),
            "--weights",
            "random",
            "--steps",
            "1",
            "--vgg",
            "vgg19",
            "--content-weight",
            "3",
            "--style-weight",
            "7",
        ]
    )
    assert args.func(args) == 0
    prov = json.loads((tmp_path / "o" / "provenance.json").read_text())
    assert prov["vgg_model"] == "vgg19" and prov["config"]["content_weight"] == 3.0
    assert len(list((tmp_path / "o" / "masks").iterdir())) == 4
    args = cli(
        [
            "stylize",
            str(content / "images" / "b_x_0.png"),
            str(style),
            "--out",
            str(tmp_path / "x.png"),
            "--weights",
            "random",
        ]
    )
    assert args.func(args) == 2
    assert "give both as files or both as folders" in capsys.readouterr().err


@pytest.mark.shared_data
def test_real_pair_from_kvasir(kvasir_dir, vgg16):
    from singanseg.io import list_pairs, read_image

    pairs = list_pairs(kvasir_dir)
    img = np.asarray(Image.fromarray(read_image(pairs[0].image)).resize((48, 40)))
    real_style = read_image(pairs[1].image)  # full size: resized to the content's size inside
    out, prov = st.stylize(img, real_style, cfg(num_epochs=2), network=vgg16)
    assert out.shape == img.shape and out.dtype == np.uint8 and prov["weights"] == "random-init"


# ---------------------------------------------------------------- DVC stage


@pytest.mark.slow  # MLflow import + SQLite schema migration dominate (environment.md)
def test_pipeline_stage_writes_each_ratio_and_logs_provenance(tmp_path, mlflow_uri):
    from pipeline import stylize as stage

    content, style = make_sets(tmp_path)
    root = tmp_path / "repo"
    (root / "synthetic" / "singan").mkdir(parents=True)
    content.rename(root / "synthetic" / "singan" / "gss0")
    (root / "data" / "real").mkdir(parents=True)
    style.rename(root / "data" / "real" / "images")
    params = tmp_path / "params.yaml"
    params.write_text(
        "profile: smoke\n"
        "stylize: {ratios: [1to1, 1to1000], source: gss0, num_epochs: 1000, weights: imagenet}\n"
        "profiles: {smoke: {stylize: {num_epochs: 2, weights: random, batch_size: 3}}}\n"
    )
    assert stage.main(["--params", str(params), "--root", str(root), "--ratio", "1to1000"]) == 0
    out = root / "synthetic" / "singan_st1to1000" / "gss0"
    assert not (root / "synthetic" / "singan_st1to1").exists()  # only the ratio asked for
    for cid in ("polypA_0", "b_x_0"):
        src = root / "synthetic" / "singan" / "gss0" / "masks" / f"{cid}.png"
        assert (out / "masks" / f"{cid}.png").read_bytes() == src.read_bytes()
        assert (out / "images" / f"{cid}.png").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["weights"] == "random-init" and prov["config"]["style_weight"] == 1000.0
    import mlflow

    runs = mlflow.search_runs(experiment_names=["singanseg"], output_format="list")
    assert len(runs) == 1
    assert (
        runs[0].data.tags["provenance.weights"] == "random-init"
        and runs[0].data.tags["profile"] == "smoke"
    )
    assert runs[0].data.params["num_epochs"] == "2"  # the smoke overlay was applied
    assert runs[0].data.metrics["1to1000.images"] == 4
    assert stage.main(["--params", str(params), "--root", str(root), "--ratio", "1to10"]) == 2
