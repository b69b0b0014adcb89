"""Where the workbench keeps its files, and how it writes them.

The one place that reads `$AMS_DATA_DIR` (the root of downloaded videos, cached labels,
decoded frames and model-zoo files; default `~/.cache/amslib`), the shipped assets' folder,
content hashes, and atomic writes: every file is written to a temporary name beside its
target and renamed, so an interrupted write leaves the old file or none, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
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
