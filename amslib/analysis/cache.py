"""What the data root holds, checked: `python -m amslib cache` lists it, `--verify` checks every
entry that records a checksum, `--clear KIND` removes one kind.

Kinds (under $AMS_DATA_DIR, default ~/.cache/amslib): `labels` (teacher labels, one folder per
video and teacher; each label carries the SHA-256 of its pixels), `frames` (decoded frames of
`--frame-cache`), `server_times` (measured server step and teacher times), `runs` (reference
runs of the live panel), `videos` (downloads), `models` (model-zoo files) and `examples`
(packaged example clips). Labels, frames, server times and runs are checked here; downloads,
model files and example clips record no checksum yet, and the listing says so rather than
calling them sound.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amslib.core.config import ConfigError
from amslib.core.files import CHECKSUMS_FILE, damaged_files, data_root
from amslib.models.teachers import DONE_FILE, damaged_labels
from amslib.sim.server import entry_checksum

KINDS = ("labels", "frames", "server_times", "runs", "videos", "models", "examples")


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
        if kind == "frames":  # one entry per cached video: its .npy (its .done goes with it)
            children = [c for c in children if c.suffix == ".npy" and not c.name.endswith(".partial.npy")]
        if kind == "labels" and (path / "by-content").is_dir():
            children = [c for c in children if c.name != "by-content"] + sorted((path / "by-content").iterdir())
        out += [_entry(kind, child) for child in children]
    return out


def _entry(kind: str, path: Path) -> Entry:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    if kind == "frames" and path.with_suffix(".done").is_file():
        files.append(path.with_suffix(".done"))
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
            if not isinstance(known, dict):
                raise ValueError("not a table of measurements")
        except ValueError as err:
            entry.status = (f"damaged: {entry.path} is not a table of server times ({err}); remove it with "
                            "`python -m amslib cache --clear server_times` (the next measured run measures again)")
            return entry
        bad = [k for k, v in known.items() if not isinstance(v, dict) or entry_checksum(k, v) != v.get("sha256")]
        entry.status = (f"damaged: {len(bad)} of {len(known)} measurement(s) fail their checksum (first: {bad[0]}; "
                        "the next measured run on that machine measures again)" if bad
                        else f"ok: {len(known)} measurement(s)")
    elif entry.kind == "frames":
        entry.status = _verify_frames(entry.path)
    elif entry.kind == "runs":
        damaged = damaged_files(entry.path)
        entry.status = (f"damaged: {', '.join(damaged)} missing or changed (the live panel runs it again)"
                        if damaged and damaged != [CHECKSUMS_FILE] else
                        f"damaged: no readable {CHECKSUMS_FILE} (the live panel runs it again)" if damaged else
                        "ok: every file matches its checksum")
    else:
        entry.status = "not checked: this kind records no checksum yet"
    return entry


def _verify_frames(path: Path) -> str:
    """A frame cache's status: every chunk against the SHA-256 in its .done record."""
    try:
        done = json.loads(path.with_suffix(".done").read_text())
        size, count, sums = int(done["chunk"]), int(done["frames"]), done["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return "damaged: no readable .done record of its checksums (the next run fills it anew)"
    try:
        store = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return "damaged: the file is cut short (the next run fills it anew)"
    bad = [k for k in range(math.ceil(count / size))
           if k >= len(sums) or hashlib.sha256(np.ascontiguousarray(store[k * size:min((k + 1) * size, count)])
                                               .tobytes()).hexdigest() != sums[k]]
    if bad:
        return (f"damaged: {len(bad)} chunk(s) of {size} frames fail their checksum (first: frames "
                f"{bad[0] * size}-{min((bad[0] + 1) * size, count) - 1}; the next run decodes them again)")
    return f"ok: {count} frames"


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
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def human_age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
