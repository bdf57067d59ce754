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
or mistyped key raises ConfigError naming the file and the dotted key. The profile overlay
itself (`resolve`) lives in singanseg/profiles.py, which the command lines' `--profile`
reads too: one definition of every profile.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from singanseg.profiles import read_params, resolve
from singanseg.typed import ConfigError, from_mapping, to_mapping

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


def read_yaml(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    return read_params(path)


def load_section(
    section: str,
    cls: type[T],
    path: str | os.PathLike = DEFAULT_PARAMS,
    profile: str | None = None,
) -> T:
    """The typed config of one section, with the active profile applied.

    A value set for this run (it differs from the committed params.yaml, as `dvc exp run -S
    key=value` leaves it) is never replaced by the profile's overlay: the profile shrinks
    what the user left alone, and the user's choice (e.g. `data.source=folder` under the
    smoke profile, whose overlay says `phantom`) wins, with a line on stderr naming both.
    """
    raw = read_yaml(path)
    name, merged = resolve(raw, str(path), profile)
    if section not in merged:
        raise ConfigError(f"{path}: section {section!r} is missing")
    kept = set_for_this_run(raw, name, section, path)
    for key, (value, overlay) in kept.items():
        node = merged[section]
        *parents, leaf = key.split(".")[1:]
        for p in parents:
            node = node[p]
        node[leaf] = value
        print(f"params: {key}={value!r} set for this run is kept over profiles.{name}.{key}={overlay!r}",
              file=sys.stderr)  # fmt: skip
    return from_mapping(cls, merged[section], f"{path}: {section}")


def set_for_this_run(raw: dict[str, Any], profile: str, section: str,
                     path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (the value set for this run, the profile's value)} where they conflict."""

    overlay = flatten({section: ((raw.get("profiles") or {}).get(profile) or {}).get(section) or {}})
    if not overlay:
        return {}
    base = flatten({section: raw.get(section) or {}})
    changed = overrides_vs_head(path)
    return {k: (base[k], overlay[k]) for k in overlay if k in changed and k in base and base[k] != overlay[k]}


def active_profile(path: str | os.PathLike = DEFAULT_PARAMS) -> str:
    name, _ = resolve(read_yaml(path), str(path))
    return name


def params_hash(section: Any) -> str:
    """Short, stable hash of a resolved section (tags MLflow runs so they trace back to dvc.lock)."""
    blob = json.dumps(to_mapping(section), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def overrides_vs_head(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    """The params that differ from the committed file (`git show HEAD:params.yaml`), flattened.

    What `dvc exp run -S key=value` set for this run: a report names them beside the commit,
    so that "commit X" plus these values is the whole configuration. {} outside git.
    """
    import yaml


    path = Path(path)
    try:
        shown = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.resolve().parent,
                               capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if shown.returncode != 0:
        return {}
    head = flatten(yaml.safe_load(shown.stdout) or {})
    now = flatten(read_yaml(path))
    return {k: now.get(k) for k in sorted(set(head) | set(now)) if head.get(k) != now.get(k)}


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (`segment.model.encoder`): params.yaml's
    sections as `dvc exp run -S` and MLflow name them."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
