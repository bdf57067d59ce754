"""The shared baseline-GAN interface: data, outputs, checkpoints/resume, CLI, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.__main__ import main
from baselines.common import (
    GANS,
    get_gan,
    load,
    make_config,
    to_pairs,
    train,
    write_samples,
)
from baselines.data import batch_indices, load_dataset, to_4ch
from singanseg.ckpt import CheckpointError, load_state
from singanseg.io import InputError, list_pairs, read_pair
from singanseg.typed import ConfigError


def test_registry_names_the_three_gans():
    assert set(GANS) == {"dcgan", "progan", "fastgan"}
    assert get_gan("dcgan").name == "dcgan"
    with pytest.raises(ConfigError, match="unknown GAN 'stylegan'"):
        get_gan("stylegan")


def test_to_4ch_and_back_keeps_image_and_binary_mask():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    mask = np.where(rng.random((5, 7)) > 0.5, 255, 0).astype(np.uint8)
    x = to_4ch(image, mask)
    assert x.shape == (4, 5, 7) and x.min() >= -1 and x.max() <= 1
    assert set(x[3].unique().tolist()) <= {-1.0, 1.0}
    ((img2, mask2),) = to_pairs(x[None])
    np.testing.assert_array_equal(img2, image)
    np.testing.assert_array_equal(mask2, mask)


def test_generated_mask_is_thresholded_at_half():
    x = torch.zeros(1, 4, 1, 3)
    # mask channel values in [-1, 1] map to (v + 1) / 2; threshold 0.5 sits at v = 0
    x[0, 3, 0] = torch.tensor([-0.01, 0.01, 0.9])
    ((_, mask),) = to_pairs(x)
    assert mask.tolist() == [[0, 255, 255]]


def test_load_dataset_first_k_sorted_ids(kvasir_dir):
    data, ids = load_dataset(kvasir_dir, 32, num_images=3)
    assert ids == [p.id for p in list_pairs(kvasir_dir)][:3]
    assert data.shape == (3, 4, 32, 32)
    assert data.min() >= -1 and data.max() <= 1
    # the mask channel carries the polyp: its mean matches the real mask's foreground share
    _, mask, _ = read_pair(list_pairs(kvasir_dir)[0])
    fg = (mask > 0).mean()
    assert abs(float((data[0, 3] + 1).mean() / 2) - fg) < 0.05


def test_batches_cover_each_epoch_once_and_are_reproducible():
    n, bs = 10, 3
    per_epoch = n // bs
    for epoch in range(2):
        seen = torch.cat([batch_indices(5, epoch * per_epoch + k, n, bs) for k in range(per_epoch)])
        assert len(seen) == per_epoch * bs and len(set(seen.tolist())) == len(seen)
    assert torch.equal(batch_indices(5, 4, n, bs), batch_indices(5, 4, n, bs))
    assert not torch.equal(batch_indices(5, 0, n, bs), batch_indices(6, 0, n, bs))


def _pair_dir(root, size=(80, 60), n=2, with_masks=True):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.new("RGB", size, (i * 40, 100, 50)).save(root / "images" / f"p{i}.png")
        if with_masks:
            Image.new("L", size, 255).save(root / "masks" / f"p{i}.png")
    return root


def test_bad_input_errors_name_the_problem(tmp_path, kvasir_dir):
    small = _pair_dir(tmp_path / "small", size=(40, 30))
    with pytest.raises(
        InputError, match=r"p0\.png: image is 40x30.*smaller than the GAN's resolution 64"
    ):
        load_dataset(small, 64)
    nomask = _pair_dir(tmp_path / "nomask", with_masks=False)
    with pytest.raises(InputError, match=r"p0\.png: no mask"):
        load_dataset(nomask, 16)
    with pytest.raises(InputError, match="2 training pair.*batch size is 8"):
        train(
            "dcgan",
            _pair_dir(tmp_path / "few", size=(70, 70)),
            tmp_path / "m",
            make_config("dcgan", "smoke", {"batch_size": 8}),  # the paper's batch (smoke: 4)
            progress=False,
        )
    with pytest.raises(
        InputError, match="--num-images 500 asks for more pairs than the folder holds"
    ):
        load_dataset(kvasir_dir, 16, num_images=500)
    with pytest.raises(ConfigError, match="dcgan.nzz: unknown key"):
        make_config("dcgan", "smoke", {"nzz": 3})


def _checkpoint_tensors(folder):
    tensors, meta = load_state(folder, "checkpoint")
    return tensors, meta


def test_resume_ends_in_the_same_state_as_an_uninterrupted_run(tmp_path, kvasir_dir):
    config = make_config("dcgan", "smoke", {"niter": 6, "checkpoint_every": 2, "batch_size": 8})
    kw = dict(config=config, seed=3, num_images=8, progress=False)
    full = train("dcgan", kvasir_dir, tmp_path / "full", **kw)
    assert train("dcgan", kvasir_dir, tmp_path / "cut", stop_at=3, **kw) is None
    _, meta_cut = _checkpoint_tensors(tmp_path / "cut")
    assert meta_cut["iteration"] == 3 and not meta_cut["done"]
    resumed = train("dcgan", kvasir_dir, tmp_path / "cut", **kw)
    a, meta_a = _checkpoint_tensors(tmp_path / "full")
    b, meta_b = _checkpoint_tensors(tmp_path / "cut")
    assert meta_a["iteration"] == meta_b["iteration"] == 6 and meta_b["done"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for (i1, m1), (i2, m2) in zip(full.sample(3, seed=9), resumed.sample(3, seed=9), strict=True):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(m1, m2)


def test_finished_model_is_not_retrained_and_other_settings_are_refused(tmp_path, kvasir_dir):
    config = make_config("dcgan", "smoke")
    out = tmp_path / "m"
    train("dcgan", kvasir_dir, out, config, seed=1, num_images=8, progress=False)
    stamp = (out / "checkpoint.safetensors").stat().st_mtime_ns
    again = train("dcgan", kvasir_dir, out, config, seed=1, num_images=8, progress=False)
    assert (out / "checkpoint.safetensors").stat().st_mtime_ns == stamp
    assert again.meta["iteration"] == json.loads((out / "model.json").read_text())["iteration"]
    with pytest.raises(CheckpointError, match="other settings.*seed is 1, now 2"):
        train("dcgan", kvasir_dir, out, config, seed=2, num_images=8, progress=False)
    with pytest.raises(CheckpointError, match="config keys differ: nz"):
        train(
            "dcgan",
            kvasir_dir,
            out,
            make_config("dcgan", "smoke", {"nz": 4}),
            seed=1,
            num_images=8,
            progress=False,
        )


def test_corrupted_model_is_refused(tmp_path, kvasir_dir):
    out = tmp_path / "m"
    train("dcgan", kvasir_dir, out, make_config("dcgan", "smoke"), num_images=8, progress=False)
    data = bytearray((out / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (out / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load(out)


def test_write_samples_layout(tmp_path):
    x = torch.rand(2, 4, 8, 8) * 2 - 1
    ids = write_samples(to_pairs(x), tmp_path, "dcgan")
    assert ids == ["dcgan_0", "dcgan_1"]
    pairs = list_pairs(tmp_path)
    assert [p.id for p in pairs] == ids
    image, mask, info = read_pair(pairs[1])
    assert image.shape == (8, 8, 3) and info.nonbinary_px == 0


def test_cli_train_sample_and_one_line_errors(tmp_path, kvasir_dir, capsys):
    model = tmp_path / "model"
    args = [
        "train",
        "dcgan",
        str(kvasir_dir),
        "--profile",
        "smoke",
        "--num-images",
        "8",
        "--no-progress",
    ]
    assert main([*args, "--out", str(model), "--set", "niter=1"]) == 0
    assert (
        main(["sample", str(model), "--num", "3", "--out", str(tmp_path / "syn"), "--seed", "4"])
        == 0
    )
    pairs = list_pairs(tmp_path / "syn")
    assert [p.id for p in pairs] == ["dcgan_0", "dcgan_1", "dcgan_2"]
    assert read_pair(pairs[0])[0].shape == (64, 64, 3)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "x"), "--set", "nz=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dcgan.nz: must be at least 1") and "\n" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["sample", str(empty), "--num", "1", "--out", str(tmp_path / "o")]) == 2
    assert "model.json: checkpoint metadata not found" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "syn")


@pytest.mark.slow  # ~20 s of it is importing mlflow and creating its SQLite store
def test_pipeline_stages_train_and_generate_with_mlflow(tmp_path, kvasir_dir, mlflow_uri):
    import yaml

    from pipeline import generate_baselines, train_baselines

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "real").symlink_to(kvasir_dir)
    params = tmp_path / "params.yaml"
    smoke = {
        "ngf": 8,
        "ndf": 8,
        "nz": 16,
        "niter": 3,
        "generate_from_epoch": None,
        "checkpoint_every": 2,
    }
    params.write_text(yaml.safe_dump({
        "profile": "smoke",
        "baselines": {"seed": 0, "num_samples": 1000, "dcgan": {}, "subsets": {"dcgan": ["all"]}},
        "profiles": {"smoke": {"baselines": {"num_samples": 5, "dcgan": smoke, "subsets": {"dcgan": ["8", "9"]}}}},
    }))  # fmt: skip
    common = ["--params", str(params), "--root", str(tmp_path)]
    # no --subset: every subset of the active profile, one child run each
    assert train_baselines.main(["--gan", "dcgan", "--no-progress", *common]) == 0
    assert (tmp_path / "models" / "dcgan" / "n8" / "model.json").is_file()
    assert (tmp_path / "models" / "dcgan" / "n9" / "model.json").is_file()
    assert not (tmp_path / "models" / "dcgan" / "nall").exists()
    assert generate_baselines.main(["--gan", "dcgan", *common]) == 0
    pairs = list_pairs(tmp_path / "synthetic" / "dcgan" / "n8")
    assert [p.id for p in pairs] == [f"dcgan_{i}" for i in range(5)]
    assert len(list_pairs(tmp_path / "synthetic" / "dcgan" / "n9")) == 5

    import mlflow

    runs = mlflow.search_runs(experiment_names=["singanseg"], output_format="list")
    parents = {r.data.tags["stage"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert set(parents) == {"train_baselines", "generate_baselines"}
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == {f"{st}/dcgan/n{k}" for st in ("train_baselines", "generate_baselines") for k in (8, 9)}
    child = children["train_baselines/dcgan/n8"]
    assert child.data.tags["mlflow.parentRunId"] == parents["train_baselines"].info.run_id
    history = mlflow.MlflowClient().get_metric_history(child.info.run_id, "loss_d")
    assert [m.step for m in history] == [3] and all(np.isfinite(m.value) for m in history)
    assert parents["train_baselines"].data.params["nz"] == "16"

    assert train_baselines.main(["--gan", "dcgan", "--subset", "500", *common]) == 2
    assert train_baselines.main(["--gan", "dcgan", "--subset", "five", *common]) == 2


def test_stream_indices_cross_epochs_and_cover_every_image():
    from baselines.data import stream_indices

    # 5 images at batch 8 (FastGAN's k = 5, paper.md s6): batches run across epochs
    seq = torch.cat([stream_indices(3, it, 5, 8) for it in range(5)]).tolist()  # 40 draws = 8 epochs
    for e in range(8):
        assert sorted(seq[5 * e : 5 * e + 5]) == [0, 1, 2, 3, 4]  # each epoch is a permutation
    assert stream_indices(3, 2, 5, 8).tolist() == stream_indices(3, 2, 5, 8).tolist()  # resumable
    assert seq[:5] != seq[5:10] or seq[5:10] != seq[10:15]  # fresh permutations
