"""Command-line messages (issue 18 s4): every positional argument has help, and an error
raised from a command line names its flag (`--weights random`), not the params key."""

from __future__ import annotations

import argparse
import inspect

import numpy as np
import pytest
from PIL import Image

from singanseg.errors import WeightsError, message_for_cli


def _parsers():
    import baselines.__main__ as baselines_cli
    import pipeline.metrics.__main__ as metrics_cli
    from pipeline.data.feasibility import main as feasibility_main  # noqa: F401  (no positionals)
    from singanseg.cli import build_parser

    metrics = argparse.ArgumentParser(prog="python -m pipeline.metrics")
    metrics_cli._parser(metrics)
    return {"singanseg": build_parser(), "python -m baselines": baselines_cli.build_parser(),
            "python -m pipeline.metrics": metrics}  # fmt: skip


def _positionals(parser: argparse.ArgumentParser, where: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _positionals(sub, f"{where} {name}")
        elif not action.option_strings:
            yield where, action


def test_every_positional_argument_has_help():
    missing = [f"{where} {a.dest}" for prog, p in _parsers().items() for where, a in _positionals(p, prog)
               if not a.help]  # fmt: skip
    assert not missing, missing


def test_message_for_cli_rewrites_each_params_form():
    e = WeightsError("x.pth not found; set weights: random, or set weights: random again")
    assert message_for_cli(e, {"set weights: random": "pass --weights random"}) == (
        "x.pth not found; pass --weights random, or pass --weights random again")


@pytest.mark.parametrize("module, raiser", [
    ("pipeline.metrics.__main__", "pipeline.metrics.inception"),
    ("singanseg.stylize_folder", "singanseg.vgg"),
    ("baselines.__main__", "baselines.fastgan_lpips"),
    ("pipeline.segment.__main__", "pipeline.segment.model"),
])  # fmt: skip
def test_each_cli_flag_map_matches_the_messages_it_rewrites(module, raiser):
    import importlib

    flags = importlib.import_module(module).CLI_FLAGS
    source = " ".join(inspect.getsource(importlib.import_module(raiser)).replace('"\n', "").split())
    source = source.replace('" "', "").replace('f"', "")
    for params_form in flags:
        assert params_form in source, f"{raiser} no longer says {params_form!r}: update {module}.CLI_FLAGS"


def test_readme_sifid_offline_names_the_flags(tmp_path, capsys, monkeypatch):
    """The README's `sifid A B` without torchvision's Inception file (offline): one line that
    offers `--network inception_fid` (a named variant) and `--weights random` as flags."""
    from pipeline.metrics.__main__ import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / d / "x.png")
    assert main(["sifid", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--network inception_fid" in err and "not the authors' SIFID" in err
    assert "--weights random" in err and "weights: random" not in err and "quality.sifid" not in err


def test_stylize_offline_names_the_flag(tmp_path, capsys, monkeypatch):
    from singanseg.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    for name in ("c.png", "s.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    rc = main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "--out", str(tmp_path / "o.png"),
               "--weights", "imagenet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "`--weights random`" in err and "`weights: random`" not in err, err
