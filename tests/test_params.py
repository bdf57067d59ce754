"""params.yaml -> typed configs: profiles, unknown keys, wrong types."""

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from pipeline.data.config import DataParams
from pipeline.infra.params import active_profile, load_section, params_hash
from singanseg.typed import ConfigError, from_mapping, parse_sets, replace


@dataclass(frozen=True)
class Inner:
    n: int = 1
    ratios: tuple[str, ...] = ("1to1",)


@dataclass(frozen=True)
class Outer:
    mode: Literal["a", "b"] = "a"
    lr: float = 1e-4
    flag: bool = False
    name: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_from_mapping_coerces_and_nests():
    cfg = from_mapping(Outer, {"lr": 1, "inner": {"n": 3, "ratios": ["1to1000"]}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.inner == Inner(3, ("1to1000",))


@pytest.mark.parametrize(
    "data, match",
    [
        ({"lrr": 1}, r"where\.lrr: unknown key \(known: mode, lr"),
        ({"inner": {"m": 1}}, r"where\.inner\.m: unknown key"),
        ({"mode": "c"}, r"where\.mode: 'c' is not one of 'a', 'b'"),
        ({"flag": "yes"}, r"where\.flag: expected true/false"),
        ({"inner": {"n": 1.5}}, r"where\.inner\.n: expected an integer"),
        ({"lr": "fast"}, r"where\.lr: expected a number"),
    ],
)
def test_errors_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(Outer, data, "where")


def test_parse_sets_and_replace():
    sets = parse_sets(["lr=0.5", "inner.n=7", "name=abc", "flag=true"])
    cfg = replace(Outer(), sets)
    assert (cfg.lr, cfg.inner.n, cfg.name, cfg.flag) == (0.5, 7, "abc", True)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_sets(["novalue"])


def _write(tmp_path, doc):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_profile_switches_the_section(tmp_path):
    doc = {
        "profile": "smoke",
        "data": {"source": "kvasir-seg", "phantom": {"count": 24}},
        "profiles": {"paper": {}, "smoke": {"data": {"source": "phantom", "phantom": {"count": 5}}}},
    }
    p = _write(tmp_path, doc)
    smoke = load_section("data", DataParams, p)
    assert (smoke.source, smoke.phantom.count, smoke.phantom.seed) == ("phantom", 5, 0)
    assert active_profile(p) == "smoke"
    doc["profile"] = "paper"
    paper = load_section("data", DataParams, _write(tmp_path, doc))
    assert (paper.source, paper.phantom.count) == ("kvasir-seg", 24)
    assert params_hash(paper) != params_hash(smoke)


def test_unknown_profile_and_bad_overlay(tmp_path):
    p = _write(tmp_path, {"profile": "fast", "data": {}, "profiles": {"smoke": {}}})
    with pytest.raises(ConfigError, match=r"profile: unknown profile 'fast'"):
        load_section("data", DataParams, p)
    p = _write(tmp_path, {"profile": "smoke", "data": {}, "profiles": {"smoke": {"dat": {}}}})
    with pytest.raises(ConfigError, match=r"profiles\.smoke\.dat: no such section"):
        load_section("data", DataParams, p)
    p = _write(tmp_path, {"profile": "paper", "data": {"source": "folder"}})
    with pytest.raises(ConfigError, match=r"data\.folder: required when source is 'folder'"):
        load_section("data", DataParams, p)


def test_repository_params_load_in_every_profile(repo_root):
    from pipeline.infra.params import read_yaml

    raw = read_yaml(repo_root / "params.yaml")
    for profile in ["paper", *raw["profiles"]]:
        cfg = load_section("data", DataParams, repo_root / "params.yaml", profile=profile)
        assert cfg.folds == 3
