"""One definition of every profile: params.yaml. The command lines' `--profile` presets
(SinGAN-Seg, the baseline GANs) are read from it and agree with the stages' sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from baselines.common import GANS, get_gan, make_config
from pipeline.infra.params import load_section
from pipeline.train_baselines import BaselinesParams
from pipeline.train_singan import SinGANStageParams
from singanseg.config import PRESETS, SinGANConfig, preset
from singanseg.profiles import packaged_params, profile_names

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def test_the_package_reads_the_repository_params():
    assert packaged_params().read_bytes() == PARAMS.read_bytes()
    # the copy an installed package ships (package data) is the same file
    assert (ROOT / "singanseg" / "params.yaml").read_bytes() == PARAMS.read_bytes()


def test_paper_profile_is_the_dataclass_defaults():
    assert preset("paper") == SinGANConfig()
    for gan in GANS:
        assert make_config(gan, "paper") == get_gan(gan).config_cls(), gan


@pytest.mark.parametrize("profile", profile_names())
def test_cli_presets_agree_with_the_stages(profile):
    assert list(PRESETS) == profile_names() and "smoke" in PRESETS
    stage = load_section("singan", SinGANStageParams, PARAMS, profile)
    assert preset(profile) == stage.model
    baselines = load_section("baselines", BaselinesParams, PARAMS, profile)
    for gan in GANS:
        assert make_config(gan, profile) == baselines.gan_config(gan), (profile, gan)
