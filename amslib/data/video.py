"""Video sources at the working resolution: the built-in synthetic street, local files, and
manifest ids that resolve to downloaded files. Frames stream in chunks (constant memory).

A video is addressed by *processed* frame index i at time t = i / fps (the run's fps); a
file recorded at another rate is resampled by time (frame round(t * native_fps)).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image

from amslib.core.clock import frames_until
from amslib.core.files import CACHE_LOG, videos_dir, write_json
from amslib.core.labels import CITYSCAPES19, LabelSet, get_label_set
from amslib.data.drift import REAL_PREFIX, drift_sequence, real_video_path
from amslib.data.manifest import get_entry
from amslib.data.synthetic import CLASSES, StreetConfig, SyntheticStreet

SYNTHETIC_PREFIX = "synthetic:"
SYNTHETIC_VIDEOS = ("street", "parked")
# `synthetic:parked`: the street's first minutes played this many times slower, a camera that
# barely moves through an unchanging scene (the static case of ASR; SPEC.md, "Mechanisms").
PARKED_SLOW_MOTION = 10.0


class VideoError(ValueError):
    """A video spec cannot be opened; the message says why and what to do."""


@dataclass
class Video:
    """Common face of every source. `classes`: the video's important classes (names)."""

    key: str  # identifies content + resolution + fps, for caches
    fps: float
    num_frames: int
    height: int
    width: int
    classes: tuple[str, ...]
    label_set: LabelSet

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    @property
    def class_ids(self) -> tuple[int, ...]:
        return self.label_set.ids(self.classes)

    def frames(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        """(N, H, W, 3) uint8 frames start..stop-1."""
        raise NotImplementedError

    def chunks(self, size: int, *, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(start index, frames) in chunks of up to `size`, in order, up to `stop`."""
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        for start in range(0, stop, size):
            yield start, self.frames(start, min(start + size, stop))


class SyntheticVideo(Video):
    """`synthetic:street` rendered at the working resolution; exact labels available.
    `slow_motion` > 1 shows the street's first duration/slow_motion seconds over the whole
    duration (`synthetic:parked`)."""

    def __init__(self, *, height: int, fps: float, seed: int, duration_s: float | None = None,
                 slow_motion: float = 1.0) -> None:
        config = StreetConfig(seed=seed, fps=fps * slow_motion, height=height,
                              **({} if duration_s is None else {"duration_s": duration_s}))
        self.street = SyntheticStreet(config)
        slow = "" if slow_motion == 1 else f"-slow{slow_motion:g}"
        super().__init__(key=f"synthetic-street-s{seed}-h{height}-f{fps:g}-d{config.duration_s:g}{slow}",
                         fps=fps, num_frames=int(self.street.num_frames / slow_motion), height=height,
                         width=self.street.width, classes=CLASSES, label_set=CITYSCAPES19)

    def frames(self, start: int, stop: int) -> np.ndarray:
        return self.street.frames(start, stop)

    def labels(self, start: int, stop: int) -> np.ndarray:
        return self.street.labels(start, stop)


class _NotTheScaleWarning(logging.Filter):
    """Drops imageio-ffmpeg's "The frame size for reading (W, H) is different from the source
    frame size (w, h)." warning: the reader asks ffmpeg to scale to the working resolution, so
    the sizes differ by design (issue #24: four red lines in a notebook per clip)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is different from the source frame size" not in record.getMessage()


@contextmanager
def _scaling_expected() -> Iterator[None]:
    """Within the block, imageio-ffmpeg's logger drops its frame-size warning (only that one)."""
    logger, only = logging.getLogger("imageio_ffmpeg"), _NotTheScaleWarning()
    logger.addFilter(only)
    try:
        yield
    finally:
        logger.removeFilter(only)


class FileVideo(Video):
    """A local video file decoded with the ffmpeg of `imageio-ffmpeg`, scaled to
    height x width and resampled to `fps`; read sequentially, a chunk at a time."""

    def __init__(self, path: Path, *, height: int, fps: float, classes: tuple[str, ...],
                 label_set: LabelSet) -> None:
        if not path.is_file():
            raise VideoError(f"video file not found: {path}; give an existing file, "
                             "'synthetic:street', or a manifest video_id")
        try:
            meta = next(imageio_ffmpeg.read_frames(str(path)))
        except Exception as err:  # ffmpeg's whole banner and log: keep its last word on the file
            raise VideoError(f"cannot read video {path}: {ffmpeg_reason(err)}; is it a video file?") from None
        native_fps = float(meta.get("fps") or 0)
        duration = float(meta.get("duration") or 0)
        if native_fps <= 0 or duration <= 0:
            raise VideoError(f"cannot read frame rate/duration of {path}; re-encode it (e.g. to mp4)")
        self.path = path
        self.native_fps = native_fps
        stat = path.stat()
        super().__init__(key=f"file-{path.stem}-{stat.st_size}-{int(stat.st_mtime)}-h{height}-f{fps:g}",
                         # round, not floor: ffmpeg prints the duration to 10 ms (120 frames at
                         # 29.97 fps last 4.004 s, printed 4.00); a read past the end stops short.
                         fps=fps, num_frames=int(round(duration * fps)), height=height, width=2 * height,
                         classes=classes, label_set=label_set)
        self._reader: Iterator[bytes] | None = None
        self._next_native = 0  # native index the reader will yield next
        self._next_index = 0  # processed index the next sequential call must start at

    def native_index(self, index: int) -> int:
        """The native frame shown at processed index `index`."""
        return int(round(index / self.fps * self.native_fps))

    def _open(self) -> None:
        self._reader = imageio_ffmpeg.read_frames(
            str(self.path), output_params=["-vf", f"scale={self.width}:{self.height}"])
        with _scaling_expected():
            next(self._reader)  # metadata
        self._next_native = 0

    def frames(self, start: int, stop: int) -> np.ndarray:
        if self._reader is None or start < self._next_index:
            self._open()  # rewinding restarts the decoder; sequential reads stream
        out = []
        for index in range(start, stop):
            target = self.native_index(index)
            raw = None
            while self._next_native <= target:
                raw = next(self._reader, None)
                if raw is None:
                    break
                self._next_native += 1
            if raw is None:
                break  # the container's duration over-promised; stop at the real end
            out.append(np.frombuffer(raw, np.uint8).reshape(self.height, self.width, 3))
        self._next_index = start + len(out)
        return np.stack(out) if out else np.zeros((0, self.height, self.width, 3), np.uint8)


def ffmpeg_reason(err: BaseException) -> str:
    """ffmpeg's own reason from an error that carries its whole log: the last line that says
    what went wrong (e.g. 'Invalid data found when processing input'), else the first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in reversed(lines):
        if any(w in line.lower() for w in ("invalid", "error", "not found", "no such", "denied", "unknown")):
            return line.split("] ", 1)[-1].rstrip(".")
    return lines[0][:200] if lines else type(err).__name__


def open_video(spec: str, *, height: int, fps: float, seed: int = 0,
               classes: tuple[str, ...] | None = None, label_set: str | None = None,
               manifest: str | Path | None = None, duration_s: float | None = None) -> Video:
    """Open 'synthetic:street', 'real:drift' or 'real:NAME' (an example clip), a manifest
    video_id (downloaded), or a local file path. `manifest`: another data_manifest.csv than
    the repository's. A real video opened with no classes gets its label set's background and
    person (what its person teachers label)."""
    if spec.startswith(REAL_PREFIX):
        labels = get_label_set(label_set or "voc21")
        video = FileVideo(real_video_path(spec), height=height, fps=fps, label_set=labels,
                          classes=classes or tuple(n for n in labels.names if n in ("background", "person")) or labels.names)
        if spec == REAL_PREFIX + "drift":
            video.scenes = drift_sequence()  # where each scene starts (real:drift's cuts)
        return video
    if spec.startswith(SYNTHETIC_PREFIX):
        name = spec[len(SYNTHETIC_PREFIX):]
        if name not in SYNTHETIC_VIDEOS:
            raise VideoError(f"unknown synthetic video '{spec}'; built in: "
                             + ", ".join(SYNTHETIC_PREFIX + n for n in SYNTHETIC_VIDEOS))
        return SyntheticVideo(height=height, fps=fps, seed=seed, duration_s=duration_s,
                              slow_motion=PARKED_SLOW_MOTION if name == "parked" else 1.0)
    path = Path(spec)
    if _is_file_spec(spec):
        return FileVideo(path, height=height, fps=fps, classes=classes or CITYSCAPES19.names,
                         label_set=get_label_set(label_set or "cityscapes19"))
    return _open_manifest_video(spec, height=height, fps=fps, classes=classes, manifest=manifest)


def _is_file_spec(spec: str) -> bool:
    """Does `spec` name a local file (rather than a manifest video_id)?"""
    return bool(Path(spec).suffix) or os.sep in spec or Path(spec).exists()


def important_classes(spec: str, *, classes: tuple[str, ...] | None = None,
                      teacher_classes: tuple[str, ...] | None = None,
                      manifest: str | Path | None = None) -> tuple[str, ...] | None:
    """A run's important classes, the only ones loss and mIoU count (SPEC.md, "Classes"): the
    given `classes` (--classes), else the manifest's for a manifest video_id, else the
    teacher's (`teacher_classes`: what its label folder holds or its model can output). None:
    the video's own (every class of the label set; the synthetic videos' seven). The one
    rule for the CLI, sweeps, claims and notebooks alike."""
    if classes:
        return tuple(classes)
    if spec.startswith(SYNTHETIC_PREFIX):
        return None
    if spec.startswith(REAL_PREFIX):
        return teacher_classes
    if not _is_file_spec(spec):
        try:
            return get_entry(spec, manifest).classes
        except KeyError as err:
            raise VideoError(f"{err.args[0] if err.args else err}; or give 'synthetic:street' or a local video file") from None
    return teacher_classes


def open_video_for(config, **options) -> Video:
    """`open_video` with the video, resolution, fps, seed and duration of a RunConfig."""
    return open_video(config.video, height=config.height, fps=config.fps, seed=config.seed,
                      duration_s=config.duration_s, **options)


def _open_manifest_video(video_id: str, *, height: int, fps: float,
                         classes: tuple[str, ...] | None, manifest: str | Path | None) -> Video:
    try:
        entry = get_entry(video_id, manifest)
    except KeyError as err:
        raise VideoError(f"{err.args[0] if err.args else err}; or give 'synthetic:street' or a local video file") from None
    matches = sorted(videos_dir().glob(f"{video_id}.*"))
    files = [m for m in matches if m.suffix not in (".json", ".part")]
    if not files:
        raise VideoError(f"video '{video_id}' is not downloaded (looked in {videos_dir()}); "
                         f"download it first (`python -m amslib download {video_id}`) or pass a local file")
    return FileVideo(files[0], height=height, fps=fps, classes=classes or entry.classes,
                     label_set=get_label_set(entry.label_set))


def read_label_png(path: Path, *, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 ids from a label PNG, resized with nearest neighbour if needed."""
    image = Image.open(path)
    if image.mode not in ("L", "P"):
        raise VideoError(f"label image {path} has mode {image.mode}; expected 8-bit class ids (L or P)")
    if image.size != (width, height):
        image = image.resize((width, height), Image.NEAREST)
    return np.asarray(image, np.uint8)


class CachedVideo(Video):
    """A video whose decoded frames (at the working resolution and fps) are kept on disk
    for repeated runs: the first pass stores them in a .npy memory map as it reads, later
    passes read them back. Only the requested chunk is ever in memory. The cache is keyed
    by the video's `key` (content, resolution, fps) and used once complete; its `.done`
    file holds the number of frames the video really has (a file's header may promise more)
    and the SHA-256 of every chunk of `CHUNK_FRAMES` frames, computed when the cache was
    filled. A read checks each chunk it touches, once per instance; a chunk that fails is
    decoded again from the video and rewritten, and a cache file cut short (or one without
    checksums) is filled anew; either way the run says so in one line."""

    CHUNK_FRAMES = 64

    def __init__(self, video: Video, root: str | Path) -> None:
        super().__init__(key=video.key, fps=video.fps, num_frames=video.num_frames, height=video.height,
                         width=video.width, classes=video.classes, label_set=video.label_set)
        self.video = video
        digest = hashlib.sha1(video.key.encode()).hexdigest()[:16]
        self.path = Path(root) / f"{digest}.npy"
        self._filled = np.zeros(video.num_frames, bool)
        self._store = None
        self._real_end: int | None = None  # set when a read came back short: the true end
        self._checked: set[int] = set()  # chunks whose checksum this instance has verified
        self._read: tuple | None = None  # (done record, read-only memory map) once the complete cache is open

    def _done(self) -> dict | None:
        """The `.done` record ({"frames", "chunk", "sha256"}), or None (absent, or without checksums)."""
        try:
            done = json.loads(self.path.with_suffix(".done").read_text())
        except (OSError, ValueError):
            return None
        return done if isinstance(done, dict) and {"frames", "chunk", "sha256"} <= set(done) else None

    def _done_count(self) -> int | None:
        done = self._done()
        return None if done is None else int(done["frames"])

    @property
    def complete(self) -> bool:
        return self.path.is_file() and self._done() is not None

    def _open_checked(self, done: dict):
        """The complete cache as a read-only memory map, or None (and the cache removed, to be
        filled anew) when the file is cut short or the wrong shape."""
        try:
            store = np.load(self.path, mmap_mode="r")
            if store.shape == (self.num_frames, self.height, self.width, 3):
                return store
        except (OSError, ValueError):
            pass
        CACHE_LOG.warning("frame cache: %s is damaged (cut short or the wrong shape): filled anew", self.path)
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".done").unlink(missing_ok=True)
        return None

    def _check_chunks(self, store, done: dict, start: int, stop: int) -> None:
        """Verify the chunks covering [start, stop) against their recorded SHA-256; rewrite a
        failing chunk from the video."""
        size, count = int(done["chunk"]), int(done["frames"])
        repaired = []
        for k in range(start // size, math.ceil(stop / size)):
            if k in self._checked:
                continue
            lo, hi = k * size, min((k + 1) * size, count)
            if hashlib.sha256(np.ascontiguousarray(store[lo:hi]).tobytes()).hexdigest() != done["sha256"][k]:
                fresh = self.video.frames(lo, hi)
                writable = np.load(self.path, mmap_mode="r+")
                writable[lo:lo + len(fresh)] = fresh
                writable.flush()
                repaired.append(k)
            self._checked.add(k)
        if repaired:
            CACHE_LOG.warning("frame cache: %d chunk(s) of %s failed their checksum: decoded again", len(repaired),
                              self.path)

    def native_index(self, index: int) -> int:
        inner = getattr(self.video, "native_index", None)
        return inner(index) if inner else index

    def frames(self, start: int, stop: int) -> np.ndarray:
        if self._read is None and self.path.is_file():  # opened once: the record and the map are kept
            done = self._done()
            if done is None:  # a cache written without checksums: filled anew
                CACHE_LOG.warning("frame cache: %s has no record of its checksums (.done): filled anew", self.path)
                self.path.unlink()
            store = None if done is None else self._open_checked(done)
            self._read = None if store is None else (done, store)
        if self._read is not None:
            done, store = self._read
            stop = min(stop, int(done["frames"]))
            self._check_chunks(store, done, start, max(start, stop))  # a repair writes through to the shared map
            return np.array(store[start:max(start, stop)])
        out = self.video.frames(start, stop)
        self._keep(start, out, short=len(out) < stop - start)
        return out

    def _keep(self, start: int, frames: np.ndarray, *, short: bool) -> None:
        """Write frames into the memory map being filled; mark it done when every frame is
        in (a short read means the video ended: the frames after it do not exist)."""
        partial = self.path.with_suffix(".partial.npy")
        if self._store is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._store = open_memmap(partial, mode="w+", dtype=np.uint8,
                                      shape=(self.num_frames, self.height, self.width, 3))
        end = start + len(frames)
        self._store[start:end] = frames
        self._filled[start:end] = True
        if short:
            self._filled[end:] = True
            self._real_end = end
        if self._filled.all():
            self._store.flush()
            self._store = None
            real = self._filled.size if self._real_end is None else self._real_end
            store = np.load(partial, mmap_mode="r")
            size = self.CHUNK_FRAMES
            sums = [hashlib.sha256(np.ascontiguousarray(store[lo:min(lo + size, real)]).tobytes()).hexdigest()
                    for lo in range(0, real, size)]
            del store
            partial.replace(self.path)
            write_json(self.path.with_suffix(".done"), {"frames": real, "chunk": size, "sha256": sums})


def frames_in(video: Video, max_seconds: float | None) -> int:
    """The number of frames of `video` in its first `max_seconds` (all of them for None)."""
    if max_seconds is None:
        return video.num_frames
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0 or None (the whole video), got {max_seconds}")
    return min(video.num_frames, frames_until(max_seconds, video.fps))


def sample_indices(video: Video, *, count: int, max_seconds: float | None = None) -> np.ndarray:
    """(M,) int64 frame indices, `count` (or fewer, if the video is shorter) spread evenly
    over the first `max_seconds` of the video, first frame included, increasing."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    n = frames_in(video, max_seconds)
    if n == 0:
        raise VideoError(f"video {video.key} has no frames in its first {max_seconds} s")
    return np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(np.int64))
