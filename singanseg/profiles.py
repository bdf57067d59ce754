"""The suite's profiles (`paper`, `smoke`, ...), read from params.yaml: their one definition.

params.yaml's top-level sections hold the paper's values and `profiles.<name>` overlays
them (docs/design; pipeline/infra/params.py reads the stages' sections through `resolve` below).
The command lines' `--profile` (`singanseg train`, `train-many`, `python -m baselines
train`) build their configs from the same file, so a profile means the same numbers in a
stage and in a CLI. The file is the repository's params.yaml; an installed package ships
it as package data (`singanseg/params.yaml`, a link to it in the source tree).
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from singanseg.typed import ConfigError, deep_merge

RESERVED = ("profile", "profiles")


def read_params(path: str | os.PathLike) -> dict[str, Any]:
    """A params file as a mapping of sections; problems are ConfigErrors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the repository root)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def resolve(
    raw: Mapping[str, Any], where: str = "params.yaml", profile: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Apply the selected profile's overlay; returns (profile name, merged sections)."""
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{where}: profiles: expected a mapping of profile name -> overlay")
    name = profile or raw.get("profile") or "paper"
    if name not in profiles and name != "paper":
        raise ConfigError(f"{where}: profile: unknown profile {name!r} (known: {', '.join(['paper', *[p for p in profiles if p != 'paper']])})")
    base = {k: v for k, v in raw.items() if k not in RESERVED}
    overlay = profiles.get(name) or {}
    for section in overlay:
        if section not in base:
            raise ConfigError(f"{where}: profiles.{name}.{section}: no such section at the top level")
    return name, deep_merge(base, overlay)


def packaged_params() -> Path:
    """The params.yaml the profiles come from: the source tree's, else the installed copy."""
    source = Path(__file__).resolve().parents[1] / "params.yaml"
    if source.is_file():
        return source
    return Path(str(importlib.resources.files("singanseg") / "params.yaml"))


@functools.cache
def _raw() -> dict[str, Any]:
    return read_params(packaged_params())


def profile_names() -> list[str]:
    """`paper` first, then the overlays in params.yaml's order."""
    return ["paper", *[n for n in (_raw().get("profiles") or {}) if n != "paper"]]


def profile_section(profile: str, *keys: str) -> dict[str, Any]:
    """The merged mapping at `keys` (e.g. "singan", "model") under `profile`."""
    where = str(packaged_params())
    _, merged = resolve(_raw(), where, profile)
    node: Any = merged
    for i, key in enumerate(keys):
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(f"{where}: {'.'.join(keys[: i + 1])}: missing (profile {profile})")
        node = node[key]
    return dict(node)


class ProfilePresets(Mapping):
    """profile name -> the config mapping at `keys` under that profile, read on first use."""

    def __init__(self, *keys: str):
        self.keys_ = keys

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name not in profile_names():
            raise KeyError(name)
        return profile_section(name, *self.keys_)

    def __iter__(self) -> Iterator[str]:
        return iter(profile_names())

    def __len__(self) -> int:
        return len(profile_names())

    def __repr__(self) -> str:
        return f"ProfilePresets({', '.join(map(repr, self.keys_))})"


__all__ = [
    "ProfilePresets",
    "packaged_params",
    "profile_names",
    "profile_section",
    "read_params",
    "resolve",
]
