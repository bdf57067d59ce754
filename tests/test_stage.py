"""The stage runner (pipeline/stage.py) and the metrics registry (pipeline/metrics/registry.py)."""

from __future__ import annotations

import argparse

import pytest

from pipeline.metrics.__main__ import main as metrics_main
from pipeline.metrics.masks import MaskOptions
from pipeline.metrics.registry import calc_metric, list_valid_metrics
from pipeline.stage import Stage
from singanseg.typed import ConfigError


def test_user_error_is_one_line_and_status_2_a_bug_keeps_its_traceback(tmp_path, capsys):
    from pipeline.generate import main as generate_main

    params = tmp_path / "params.yaml"
    params.write_text("profile: smoke\nprofiles:\n  smoke: {}\n")
    assert generate_main(["--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("generate: error: ") and "'generate' is missing" in err and err.count("\n") == 1

    def multi_line(args, params):
        raise ConfigError("first line\n  second line")

    assert Stage("x", None, params_flag=False).run(multi_line, []) == 2
    assert capsys.readouterr().err == "x: error: first line second line\n"

    def bug(args, params):
        raise KeyError("internal")

    with pytest.raises(KeyError):
        Stage("x", None, params_flag=False).run(bug, [])


def test_work_gets_the_section_and_its_status_is_the_exit_status(tmp_path):
    from pipeline.data.config import DataParams

    params = tmp_path / "params.yaml"
    params.write_text("profile: p\ndata: {source: phantom}\nprofiles:\n  p: {}\n")
    seen = {}

    def work(args, p):
        seen["params"] = p
        return 1

    assert Stage("data", None, DataParams).run(work, ["--params", str(params)]) == 1
    assert isinstance(seen["params"], DataParams) and seen["params"].source == "phantom"


def test_registry_serves_the_cli_and_names_unknown_metrics(tmp_path, capsys):
    cli = argparse.ArgumentParser()
    from pipeline.metrics.__main__ import _parser

    _parser(cli)
    subcommands = next(a for a in cli._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert sorted(subcommands) == sorted(list_valid_metrics()) == ["fid", "lpips", "masks", "sifid"]
    with pytest.raises(ConfigError, match="metric 'kid': unknown"):
        calc_metric("kid", tmp_path, None, MaskOptions())
    assert metrics_main(["masks", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
