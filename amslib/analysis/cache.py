"""What the data root holds, checked: `python -m amslib cache` lists it, `--verify` checks every
entry that records a checksum, `--clear KIND` removes one kind.

Kinds (under $AMS_DATA_DIR, default ~/.cache/amslib): `labels` (teacher labels, one folder per
video and teacher; each label carries the SHA-256 of its pixels), `frames` (decoded frames of
`--frame-cache`), `server_times` (measured server step and teacher times), `runs` (reference
runs of the live panel), `videos` (downloads), `models` (model-zoo files) and `examples`
(packaged example clips). Only labels and server times are checked here; the other kinds record
no checksum yet, and the listing says so rather than calling them sound.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from amslib.core.config import ConfigError
from amslib.core.files import data_root
from amslib.models.teachers import DONE_FILE, damaged_labels

KINDS = ("labels", "frames", "server_times", "runs", "videos", "models", "examples")
SERVER_TIMES_KEYS = ("step_base_s", "step_frame_s", "teacher_frame_s")


@dataclass
class Entry:
    """One cache entry: its kind, key (a folder or file name), path, size and age; after
    `verify`, its status ("ok", "damaged: ...", "incomplete: ..." or "not checked: ...")."""

    kind: str
    key: str
    path: Path
    bytes: int
    age_s: float
    status: str = ""

    @property
    def damaged(self) -> bool:
        return self.status.startswith("damaged")


def kind_path(kind: str, root: Path | None = None) -> Path:
    root = data_root() if root is None else root
    if kind not in KINDS:
        raise ConfigError(f"unknown cache kind '{kind}': use one of {', '.join(KINDS)}")
    return root / ("server_times.json" if kind == "server_times" else kind)


def entries(root: Path | None = None) -> list[Entry]:
    """Every entry of every kind under the data root (a kind's folder's children; the label
    cache's content-keyed folders one each)."""
    out = []
    for kind in KINDS:
        path = kind_path(kind, root)
        if not path.exists():
            continue
        children = [path] if path.is_file() else sorted(path.iterdir())
        if kind == "labels" and (path / "by-content").is_dir():
            children = [c for c in children if c.name != "by-content"] + sorted((path / "by-content").iterdir())
        out += [_entry(kind, child) for child in children]
    return out


def _entry(kind: str, path: Path) -> Entry:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    newest = max((p.stat().st_mtime for p in files), default=path.stat().st_mtime)
    key = path.name if path.parent.name != "by-content" else f"by-content/{path.name}"
    return Entry(kind, key, path, size, max(0.0, time.time() - newest))


def verify(entry: Entry) -> Entry:
    """Check one entry against what it recorded at write time; sets and returns its status."""
    if entry.kind == "labels":
        pngs = sorted(entry.path.glob("*.png"))
        bad = damaged_labels(pngs)
        if bad:
            entry.status = (f"damaged: {len(bad)} of {len(pngs)} labels fail their checksum (first: "
                            f"{pngs[bad[0]].name}); the next run that reads them recomputes them")
        elif entry.path.parent.name != "by-content" and not (entry.path / DONE_FILE).is_file():
            entry.status = f"incomplete: no {DONE_FILE} (an interrupted labelling; the next one completes it)"
        else:
            entry.status = f"ok: {len(pngs)} labels"
    elif entry.kind == "server_times":
        try:
            known = json.loads(entry.path.read_text())
            if not isinstance(known, dict) or not all(
                    isinstance(v, dict) and all(isinstance(v.get(k), (int, float)) for k in SERVER_TIMES_KEYS)
                    for v in known.values()):
                raise ValueError("an entry lacks a time")
            entry.status = f"ok: {len(known)} measurement(s)"
        except ValueError as err:
            entry.status = (f"damaged: {entry.path} is not a table of server times ({err}); remove it with "
                            "`python -m amslib cache --clear server_times` (the next measured run measures again)")
    else:
        entry.status = "not checked: this kind records no checksum yet"
    return entry


def clear(kind: str, root: Path | None = None) -> Path | None:
    """Remove one kind from the data root; returns what was removed (None: nothing there)."""
    path = kind_path(kind, root)
    if not path.exists():
        return None
    if path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path)
    return path


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop returns


def human_age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
