"""`singanseg sample` into a folder: one run per id, recorded, never mixed with another.

A sample folder holds `images/<id>_<n>.png` and `masks/<id>_<n>.png` (the data contract,
singanseg.io) and, per id, the record `<id>.sample.json` of the run that wrote them: the
model (its folder and the sha256 of its model.json), seed, count, gen_start_scale and mask
mode, and `complete`. Several models may be sampled into one folder, in parallel, each
under its own id (the stylize step reads them together); what the folder may not hold is
two runs of one id. Rerunning one id:

- the same request (model, a given seed, count, scale, mask mode) as its complete record:
  nothing to do (the files are that run's, byte for byte);
- a record marked incomplete (a run that was killed or failed mid-way): its leftovers are
  removed and the run is redone;
- anything else (another seed or count, files of the id without a record): refused in one
  line, unless `--replace` (this module's `replace`), which replaces that id's run.

Writing: every pair is first written into a temporary folder inside `out` (removed by the
next run if this one is killed), so a failure while sampling or writing (a full disk)
changes nothing visible; then the record is written as incomplete, the files are moved in
(renames, no new space), the previous run's surplus files removed, and the record written
complete, last. A reader who checks the record never takes a partial run for a finished one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from singanseg.errors import UserError
from singanseg.io import (
    IMAGE_SUFFIXES,
    InputError,
    _respect_umask,
    _tmp_prefix,
    check_plain_name,
    clean_stale_tmp,
    reporting_disk_full,
    sha256_file,
    write_text,
)

RECORD_FORMAT = "singanseg-sample-run"
RECORD_SUFFIX = ".sample.json"
SUBFOLDERS = ("images", "masks")


class SampleFolderError(UserError):
    """The output folder holds another run of this id (or something that is not one)."""


@dataclass(frozen=True)
class SampleRequest:
    model: str  # the model folder, absolute
    model_sha256: str  # of its model.json: a retrained model is another model
    seed: int
    num: int
    gen_start_scale: int
    mask_post_processing: bool


def record_path(out: Path, sample_id: str) -> Path:
    return out / f"{sample_id}{RECORD_SUFFIX}"


def _id_files(out: Path, sample_id: str) -> list[Path]:
    """This id's files in images/ and masks/: exactly `<id>_<n>.<ext>` (id `a` does not
    claim `a_1_0.png`, which is id `a_1`'s)."""
    pattern = re.compile(re.escape(sample_id) + r"_\d+(" + "|".join(re.escape(s) for s in IMAGE_SUFFIXES) + r")", re.I)
    return [p for sub in SUBFOLDERS if (out / sub).is_dir() for p in sorted((out / sub).iterdir()) if pattern.fullmatch(p.name)]


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SampleFolderError(f"{path}: unreadable sample record ({e}); pass --replace to replace this id's run") from None
    if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
        raise SampleFolderError(f"{path}: not a sample record (format {rec.get('format') if isinstance(rec, dict) else None!r}); pass --replace to replace it")
    return rec


def _describe(rec: dict[str, Any]) -> str:
    return f"seed {rec.get('seed')}, {rec.get('num')} pairs, gen_start_scale {rec.get('gen_start_scale')}, model {rec.get('model')}"


def request_for(model, num: int, gen_start_scale: int, seed: int | None, mask_post_processing: bool) -> SampleRequest:
    """The run's request; an unset seed is drawn here, so that the record can name it."""
    path = Path(model.path).resolve()
    return SampleRequest(
        model=str(path),
        model_sha256=sha256_file(path / "model.json"),
        seed=int(seed) if seed is not None else secrets.randbits(32),
        num=int(num),
        gen_start_scale=int(gen_start_scale),
        mask_post_processing=bool(mask_post_processing),
    )


def plan_run(out: Path, sample_id: str, request: SampleRequest, seed_given: bool, replace: bool) -> tuple[str, list[Path]]:
    """('skip' | 'write', files of a previous run of this id to remove once the new one is in).

    Raises SampleFolderError where `out` holds another run of this id and `replace` is off."""
    rec_path = record_path(out, sample_id)
    files = _id_files(out, sample_id)
    try:
        rec = _read_record(rec_path)
    except SampleFolderError:
        if not replace:
            raise
        rec = None
    if rec is None and not files:
        return "write", []
    if rec is not None and not rec.get("complete"):
        return "write", files  # a killed or failed run's leftovers: nothing finished is lost
    if rec is not None and seed_given:
        same = {k: rec.get(k) for k in asdict(request)} == asdict(request)
        expected = sorted(rec.get("files", []))
        if same and sorted(str(p.relative_to(out)) for p in files) == expected:
            return "skip", []
    if replace:
        return "write", files
    what = f"a run of id '{sample_id}' ({_describe(rec)})" if rec is not None else f"{len(files)} file(s) of id '{sample_id}' that no sample record describes (e.g. {files[0]})"
    raise SampleFolderError(
        f"{out}: already holds {what}; a folder holds one run per id: pass --replace to replace it, "
        "or choose another --out or --id"
    )


def sample_into(
    model,
    out: str | os.PathLike,
    sample_id: str,
    num: int,
    gen_start_scale: int = 0,
    seed: int | None = None,
    mask_post_processing: bool = True,
    replace: bool = False,
) -> tuple[str, SampleRequest]:
    """Sample `num` pairs of `model` into `out` under `sample_id` (the module docstring's
    rules); returns ('written' | 'unchanged', the request as recorded)."""
    from singanseg.sample import write_pairs

    check_plain_name(sample_id, "sample --id")
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    request = request_for(model, num, gen_start_scale, seed, mask_post_processing)
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, *(out / sub for sub in SUBFOLDERS)):
        clean_stale_tmp(folder)
    action, previous = plan_run(out, sample_id, request, seed is not None, replace)
    if action == "skip":
        return "unchanged", request
    pairs = model.sample(num, gen_start_scale, seed=request.seed, mask_post_processing=mask_post_processing)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(sample_id), suffix=".tmp", dir=out))
    try:
        with reporting_disk_full(out, needed_bytes=sum(a.nbytes + b.nbytes for a, b in pairs)):
            _respect_umask(tmp, is_dir=True)
            written = write_pairs(pairs, tmp, sample_id)
            names = [str(p.relative_to(tmp)) for pair in written for p in pair]
            record = {"format": RECORD_FORMAT, "id": sample_id, **asdict(request), "files": sorted(names)}
            rec_path = record_path(out, sample_id)
            write_text(rec_path, json.dumps({**record, "complete": False}, indent=2, sort_keys=True) + "\n")
            for sub in SUBFOLDERS:
                (out / sub).mkdir(exist_ok=True)
            for name in names:
                os.replace(tmp / name, out / name)
            for p in previous:
                if str(p.relative_to(out)) not in names:
                    p.unlink(missing_ok=True)
            write_text(rec_path, json.dumps({**record, "complete": True}, indent=2, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "written", request
