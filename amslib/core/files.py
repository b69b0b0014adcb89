"""Where the workbench keeps its files, and how it writes them.

The one place that reads `$AMS_DATA_DIR` (the root of downloaded videos, cached labels,
decoded frames and model-zoo files; default `~/.cache/amslib`), the shipped assets' folder,
content hashes, and atomic writes: every file is written to a temporary name beside its
target and renamed, so an interrupted write leaves the old file or none, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # shipped students, teachers, tables


def data_root() -> Path:
    """$AMS_DATA_DIR, or ~/.cache/amslib: read here, at the edge of the library, so every
    entry point agrees."""
    return Path(os.environ.get("AMS_DATA_DIR", Path.home() / ".cache" / "amslib"))


def videos_dir() -> Path:
    """Where downloaded manifest videos live: <data root>/videos."""
    return data_root() / "videos"


def labels_dir() -> Path:
    """Where teacher labels are cached: <data root>/labels."""
    return data_root() / "labels"


def models_dir() -> Path:
    """Where model-zoo downloads live: <data root>/models."""
    return data_root() / "models"


def frames_dir() -> Path:
    """Where decoded frames are kept for repeated runs (`--frame-cache`): <data root>/frames."""
    return data_root() / "frames"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's content, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`; on any
    error (an interrupt included) the temporary file is removed and `path` is untouched."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


CHECKSUMS_FILE = "checksums.json"  # a cached folder's record of its files' SHA-256
# where a cache says, in one line, that it recomputed something damaged (warning level: shown
# on stderr, and in a notebook, without any logging set up)
CACHE_LOG = logging.getLogger("amslib.cache")


def write_checksums(folder: Path) -> None:
    """Record the SHA-256 of every file in `folder` (its `CHECKSUMS_FILE`), at write time."""
    sums = {p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != CHECKSUMS_FILE}
    write_json(folder / CHECKSUMS_FILE, sums)


def damaged_files(folder: Path) -> list[str]:
    """The files of a folder written with `write_checksums` that are missing or changed since
    (`CHECKSUMS_FILE` itself, when it is missing or unreadable); empty when it is sound."""
    try:
        sums = json.loads((folder / CHECKSUMS_FILE).read_text())
    except (OSError, ValueError):
        return [CHECKSUMS_FILE]
    if not isinstance(sums, dict):
        return [CHECKSUMS_FILE]
    return [name for name, digest in sums.items()
            if not (folder / name).is_file() or sha256_of(folder / name) != digest]


def write_json(path: Path, data: dict) -> None:
    """Write `data` as indented, key-sorted JSON, atomically (numpy scalars as plain numbers)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain)))


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@contextmanager
def atomic_dir(path: str | Path, *, marker: str) -> Iterator[Path]:
    """A folder written whole or not at all: yields a temporary folder beside `path`
    (`.NAME.partial-XXXX`) to write into; when the block ends without error it replaces `path`
    (an older `path` is removed only then). On any error or interrupt the temporary folder is
    removed and `path` is left as it was. A `.partial-` folder left by a killed process is
    removed by the next write to the same `path`.

    `marker`: a file every such output holds (e.g. config.json). An existing, non-empty `path`
    without it is not an earlier output, and is never replaced: ValueError before anything runs."""
    target = Path(path)
    if target.is_file() or (target.is_dir() and any(target.iterdir()) and not (target / marker).is_file()):
        raise ValueError(f"{target} exists and is not an earlier output (it has no {marker}); "
                         "give a new folder, or remove it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
        yield staging
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
