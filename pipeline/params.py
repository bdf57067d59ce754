"""params.yaml -> typed, validated stage configs.

Layout of params.yaml (decided in docs/design): the top-level sections hold the paper's
values, each cited; `profiles.<name>` holds overlays; `profile` picks one. Changing only
`profile` switches every stage, e.g. `dvc exp run -S profile=paper`. The `paper` profile
is the empty overlay: the base values are the paper's.

    profile: smoke
    data: {...}          # paper values
    profiles:
      paper: {}
      smoke: {data: {...}}

A stage calls `load_section("data", DataParams)` and gets a frozen dataclass; an unknown
or mistyped key raises ConfigError naming the file and the dotted key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from singanseg.typed import ConfigError, deep_merge, from_mapping, to_mapping

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")
RESERVED = ("profile", "profiles")


def read_yaml(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
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


def resolve(raw: Mapping[str, Any], where: str = "params.yaml", profile: str | None = None) -> tuple[str, dict[str, Any]]:
    """Apply the selected profile's overlay; returns (profile name, merged sections)."""
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{where}: profiles: expected a mapping of profile name -> overlay")
    name = profile or raw.get("profile") or "paper"
    if name not in profiles and name != "paper":
        raise ConfigError(f"{where}: profile: unknown profile {name!r} (known: {', '.join(['paper', *profiles])})")
    base = {k: v for k, v in raw.items() if k not in RESERVED}
    overlay = profiles.get(name) or {}
    for section in overlay:
        if section not in base:
            raise ConfigError(f"{where}: profiles.{name}.{section}: no such section at the top level")
    return name, deep_merge(base, overlay)


def load_section(
    section: str,
    cls: type[T],
    path: str | os.PathLike = DEFAULT_PARAMS,
    profile: str | None = None,
) -> T:
    """The typed config of one section, with the active profile applied."""
    raw = read_yaml(path)
    _, merged = resolve(raw, str(path), profile)
    if section not in merged:
        raise ConfigError(f"{path}: section {section!r} is missing")
    return from_mapping(cls, merged[section], f"{path}: {section}")


def active_profile(path: str | os.PathLike = DEFAULT_PARAMS) -> str:
    name, _ = resolve(read_yaml(path), str(path))
    return name


def params_hash(section: Any) -> str:
    """Short, stable hash of a resolved section (tags MLflow runs so they trace back to dvc.lock)."""
    blob = json.dumps(to_mapping(section), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
