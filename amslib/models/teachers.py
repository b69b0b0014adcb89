"""Teachers label frames: (N, H, W, 3) uint8 frames -> (N, H, W) uint8 class ids.

`labels(video, start, stop)` is what the engine asks for; model teachers implement
`label(frames)`, while the oracle and a label folder answer by frame index. Label folders use
the original's layout, one `gt_%06d.png` per frame, numbered by the video's native frame
index from 0; the on-disk cache uses the same layout, keyed by (video, teacher, resolution).

Every label the cache writes carries, in a PNG text chunk, the SHA-256 of its pixels, computed
at write time, and a complete folder's `done.json` records the SHA-256 of every label file; a
read checks them (a run's read decodes the label and checks its pixels; `label_video`'s reuse of
a complete folder checks the files' hashes, without decoding). A label that is missing, cut
short, altered or written without its checksum is recomputed, and the run says so in one line
(the `amslib.cache` logger).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from amslib.core.files import CACHE_LOG, sha256_of, write_json
from amslib.core.labels import IGNORE_ID, get_label_set
from amslib.data.video import SyntheticVideo, Video, VideoError, read_label_png

LABEL_PATTERN = "gt_%06d.png"


class Teacher:
    """Base teacher: a model teacher overrides `label`; index-based ones override `labels`."""

    name = "teacher"
    label_set: str | None = None  # the label set of its ids (None: whatever the video says)
    classes: tuple[str, ...] | None = None  # the classes it can output (None: the whole set)

    def label(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) uint8 class ids."""
        raise NotImplementedError(f"teacher '{self.name}' labels by frame index; call labels()")

    def labels(self, video: Video, start: int, stop: int, *,
               frames: np.ndarray | None = None) -> np.ndarray:
        """Labels of the video's frames start..stop-1 (`frames` if the caller has them)."""
        return self.label(video.frames(start, stop) if frames is None else frames)

    def steady_label(self, frames: np.ndarray) -> np.ndarray:
        """The model's own labels of frames, as a server labelling its stream of samples
        computes them (never from a cache; a recurrent model in its running state): what the
        server's time measures (`sim.server.measure_server`)."""
        return self.label(frames)

    @property
    def labels_pixels(self) -> bool:
        """Does it label any pixels given (a model), or only a video's frames by index (the
        oracle, a label folder)? Only a model can label what a lossy uplink decoded."""
        return type(self).label is not Teacher.label


class OracleTeacher(Teacher):
    """The exact labels of a synthetic video (the default teacher of `synthetic:street`)."""

    name = "oracle"
    label_set = "cityscapes19"

    def labels(self, video: Video, start: int, stop: int, *, frames=None) -> np.ndarray:
        if not isinstance(video, SyntheticVideo):
            raise VideoError("the oracle teacher only knows synthetic videos; for a file, give "
                             "a label folder (--labels DIR)")
        return video.labels(start, stop)


def _check_ids(labels: np.ndarray, label_set, *, where: str) -> None:
    """Every id a label holds is a class of the label set, or IGNORE_ID (255)."""
    ids = np.unique(labels)
    bad = ids[(ids >= label_set.num_classes) & (ids != IGNORE_ID)]
    if bad.size:
        raise VideoError(f"labels in {where} hold id(s) {', '.join(map(str, bad[:5]))}, outside {label_set.name}'s "
                         f"0..{label_set.num_classes - 1} (255: ignore); give the label set they use "
                         "(--label-set), or map their ids (--teacher labels:DIR?map=coco)")


def _native_index(video: Video, index: int) -> int:
    return video.native_index(index) if hasattr(video, "native_index") else index


class LabelFolderTeacher(Teacher):
    """Precomputed labels: a folder of `gt_%06d.png` (native frame index, from 0).

    `id_map`: a (256,) uint8 table applied to every label (e.g. COCO -> VOC ids for LVS's
    Mask R-CNN labels, `labels.get_id_map('coco')`); `label_set`: the set of the ids after it."""

    def __init__(self, folder: str | Path, *, id_map: np.ndarray | None = None,
                 label_set: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise VideoError(f"label folder not found: {self.folder}; give a folder of {LABEL_PATTERN} files")
        if not any(self.folder.glob("gt_*.png")):
            raise VideoError(f"no {LABEL_PATTERN} files in {self.folder}")
        self.id_map = id_map
        self.label_set = label_set
        mapped = "" if id_map is None else "-map" + hashlib.sha1(id_map.tobytes()).hexdigest()[:8]
        self.name = f"labels-{self.folder.resolve()}{mapped}"

    def labels(self, video: Video, start: int, stop: int, *, frames=None) -> np.ndarray:
        out = np.empty((stop - start, video.height, video.width), np.uint8)
        for i in range(start, stop):
            path = self.folder / (LABEL_PATTERN % _native_index(video, i))
            if not path.is_file():
                raise VideoError(f"missing label {path} for frame {i}; the folder must label every "
                                 f"frame of the video ({LABEL_PATTERN}, native index from 0)")
            out[i - start] = read_label_png(path, height=video.height, width=video.width)
        out = out if self.id_map is None else self.id_map[out]
        label_set = get_label_set(self.label_set) if self.label_set else getattr(video, "label_set", None)
        if label_set is not None:
            _check_ids(out, label_set, where=f"{self.folder} (frames {start}..{stop - 1})")
        return out

    def present_classes(self, label_set_names: tuple[str, ...], *, sample: int = 50) -> tuple[str, ...]:
        """Names of the classes that occur in up to `sample` evenly spaced label files."""
        files = sorted(self.folder.glob("gt_*.png"))
        picks = files[:: max(1, len(files) // sample)]
        seen = np.zeros(256, bool)
        for path in picks:
            ids = np.unique(np.asarray(Image.open(path)))
            seen[ids if self.id_map is None else self.id_map[ids]] = True
        return tuple(n for i, n in enumerate(label_set_names) if seen[i])


@dataclass(frozen=True)
class LabelledFrames:
    """Frames of a video with the teacher's labels: `indices` (N,) int64 frame numbers,
    `times_s` (N,) seconds, `frames` (N, H, W, 3) uint8, `labels` (N, H, W) uint8 class ids."""

    indices: np.ndarray
    times_s: np.ndarray
    frames: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def pick(self, count: int) -> "LabelledFrames":
        """Up to `count` of these, evenly spaced (first and last included)."""
        picks = np.unique(np.linspace(0, len(self) - 1, max(1, min(count, len(self)))).round().astype(int))
        return LabelledFrames(self.indices[picks], self.times_s[picks], self.frames[picks], self.labels[picks])


def read_labelled(video: Video, teacher: Teacher, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames (M, H, W, 3) uint8 and the teacher's labels (M, H, W) uint8 of `video` at
    `indices` (M,), each frame read on its own (a file read in increasing order decodes once;
    a synthetic video renders only these frames). The one reader of labelled samples: dataset
    checks, pretraining and the walkthrough use it."""
    indices = np.asarray(indices, np.int64)
    if len(indices) == 0:
        raise ValueError("no frames to read: the span holds no frame; widen it")
    frames, labels = [], []
    for i in indices:
        frame = video.frames(int(i), int(i) + 1)
        if len(frame) == 0 and frames and i >= video.num_frames - max(2, math.ceil(video.fps)):
            break  # a container's duration may promise a frame or two more than it holds
        if len(frame) == 0:
            raise VideoError(f"frame {i} of {video.key} cannot be read; the video ends before it")
        frames.append(frame[0])
        labels.append(teacher.labels(video, int(i), int(i) + 1, frames=frame)[0])
    return np.stack(frames), np.stack(labels)


CHECKSUM_KEY = "amslib-sha256"  # the PNG text chunk holding a cached label's pixel checksum


def label_checksum(label: np.ndarray) -> str:
    """SHA-256 of a label's shape and pixels."""
    head = f"{label.shape[0]}x{label.shape[1]}|".encode()
    return hashlib.sha256(head + np.ascontiguousarray(label).tobytes()).hexdigest()


def write_label_png(label: np.ndarray, path: Path) -> None:
    """Write (H, W) uint8 ids as an 8-bit PNG, atomically (temp file, then rename), with the
    SHA-256 of its pixels in a text chunk (`read_checked_label` verifies it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
    os.close(fd)
    info = PngImagePlugin.PngInfo()
    info.add_text(CHECKSUM_KEY, label_checksum(label))
    try:
        Image.fromarray(label, mode="L").save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checked_label(path: Path) -> np.ndarray | None:
    """A cached label's (H, W) uint8 ids, or None when the file is missing, does not decode
    (cut short, a damaged chunk), has no checksum, or its pixels do not match it."""
    try:
        with Image.open(path) as image:
            image.load()
            recorded = getattr(image, "text", {}).get(CHECKSUM_KEY)
            label = np.asarray(image, np.uint8)
    except (OSError, SyntaxError, ValueError, zlib.error):
        return None
    if recorded is None or label.ndim != 2 or label_checksum(label) != recorded:
        return None
    return label


def damaged_labels(paths: list[Path]) -> list[int]:
    """Indices of `paths` whose cached label fails `read_checked_label`."""
    return [k for k, p in enumerate(paths) if read_checked_label(p) is None]


def _say_recomputed(count: int, folder: Path) -> None:
    CACHE_LOG.warning("label cache: %d label(s) in %s were damaged or unchecked: recomputed", count, folder)


def label_cache_dir(root: Path, video: Video, teacher: Teacher) -> Path:
    """The cache folder of (video content + resolution + fps, teacher)."""
    digest = hashlib.sha1(f"{video.key}|{teacher.name}|{video.height}x{video.width}".encode()).hexdigest()
    return root / digest[:16]


class CachedTeacher(Teacher):
    """Wraps a teacher with an on-disk cache: a video's frames by processed frame index
    (`gt_%06d.png`), other frames (a lossy uplink's decoded ones) by content."""

    def __init__(self, teacher: Teacher, root: str | Path) -> None:
        self.teacher = teacher
        self.root = Path(root)
        self.name = teacher.name
        self.license = getattr(teacher, "license", None)  # stated wherever the teacher is used

    @property
    def labels_pixels(self) -> bool:
        return self.teacher.labels_pixels

    def steady_label(self, frames: np.ndarray) -> np.ndarray:
        return self.teacher.steady_label(frames)

    def label(self, frames: np.ndarray) -> np.ndarray:
        """The wrapped model's labels of arbitrary frames (N, H, W, 3) uint8, e.g. what the server
        decoded from an H.264 uplink, cached by each frame's content (sha1 of its pixels)."""
        folder = self.root / "by-content" / hashlib.sha1(self.teacher.name.encode()).hexdigest()[:16]
        paths = [folder / f"{hashlib.sha1(f.tobytes()).hexdigest()}-{f.shape[0]}x{f.shape[1]}.png" for f in frames]
        labels = [read_checked_label(p) for p in paths]
        missing = [k for k, label in enumerate(labels) if label is None]
        if missing:
            damaged = sum(paths[k].exists() for k in missing)
            if damaged:
                _say_recomputed(damaged, folder)
            fresh = self.teacher.label(frames[missing])
            folder.mkdir(parents=True, exist_ok=True)
            for k, label in zip(missing, fresh):
                write_label_png(label, paths[k])
                labels[k] = label
        return np.stack(labels)

    def labels(self, video: Video, start: int, stop: int, *, frames=None) -> np.ndarray:
        folder = label_cache_dir(self.root, video, self.teacher)
        paths = [folder / (LABEL_PATTERN % i) for i in range(start, stop)]
        cached = [read_checked_label(p) for p in paths]
        if all(label is not None for label in cached):
            return np.stack(cached)
        damaged = sum(label is None and p.exists() for label, p in zip(cached, paths))
        if damaged:
            _say_recomputed(damaged, folder)
        out = self.teacher.labels(video, start, stop, frames=frames)
        folder.mkdir(parents=True, exist_ok=True)
        for label, path in zip(out, paths):
            write_label_png(label, path)
        return out


def export_labels(teacher: Teacher, video: Video, out_dir: str | Path, *, chunk: int = 64) -> int:
    """Write the teacher's label of every frame to out_dir/gt_%06d.png (native index).
    Returns the number of files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for start, frames in video.chunks(chunk):
        for offset, label in enumerate(teacher.labels(video, start, start + len(frames), frames=frames)):
            write_label_png(label, out / (LABEL_PATTERN % _native_index(video, start + offset)))
            count += 1
    return count


class KerasTeacher(Teacher):
    """A Keras segmentation model (logits over a label set) as teacher: argmax per pixel."""

    def __init__(self, model, *, name: str, batch_size: int = 16) -> None:
        from amslib.models.student import Predictor  # deferred: the student brings TensorFlow, which index teachers never need

        self.name = name
        self._predict = Predictor(model, batch_size=batch_size)

    def label(self, frames: np.ndarray) -> np.ndarray:
        return self._predict(frames)


# --------------------------------------------------------------------------- labelling a video

DONE_FILE = "done.json"


@dataclass(frozen=True)
class LabelReport:
    """What `label_video` did: `frames` label files in `out_dir`; `cached`: served from the
    cache (neither the video decoded nor the teacher run); `seconds` of wall time."""

    out_dir: Path
    frames: int
    cached: bool
    seconds: float


def _cached_count(folder: Path, video: Video, teacher: Teacher) -> int | None:
    """The number of labels a complete cache folder holds, or None if it is not complete or
    any of its labels fails its checksum (the folder is then filled again: only the chunks
    with a damaged label are recomputed, and the run says so in one line)."""
    try:
        done = json.loads((folder / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if done.get("video") != video.key or done.get("teacher") != teacher.name or "frames" not in done:
        return None
    recorded = done.get("sha256", {})
    names = [LABEL_PATTERN % i for i in range(int(done["frames"]))]
    damaged = [n for n in names if not (folder / n).is_file() or sha256_of(folder / n) != recorded.get(n)]
    if damaged:
        _say_recomputed(len(damaged), folder)
        return None
    return int(done["frames"])


def _fill_cache(video: Video, teacher: Teacher, folder: Path, *, chunk: int,
                on_progress: Callable[[int, int], None]) -> int:
    """Label every frame into folder (processed index); returns the number of frames.

    Chunks already there are kept, so an interrupted call resumes; done.json marks the
    folder complete. A video may end before its header said: the count is what was read."""
    folder.mkdir(parents=True, exist_ok=True)
    total = count = video.num_frames
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        paths = [folder / (LABEL_PATTERN % i) for i in range(start, stop)]
        if damaged_labels(paths):  # a chunk with any missing or damaged label is labelled again
            frames = video.frames(start, stop)
            labels = teacher.labels(video, start, start + len(frames), frames=frames)
            for label, path in zip(labels, paths):
                write_label_png(label, path)
            if len(frames) < stop - start:
                count = start + len(frames)
                break
        on_progress(stop, total)
    names = [LABEL_PATTERN % i for i in range(count)]
    write_json(folder / DONE_FILE, {"frames": count, "video": video.key, "teacher": teacher.name,
                                    "sha256": {n: sha256_of(folder / n) for n in names}})
    return count


def _publish(folder: Path, video: Video, count: int, out_dir: Path) -> None:
    """Copy the cached labels to out_dir, renamed to native frame indices. They are staged
    in a hidden sibling folder first, so a failure leaves no partial output."""
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for i in range(count):
            shutil.copyfile(folder / (LABEL_PATTERN % i), staging / (LABEL_PATTERN % _native_index(video, i)))
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def label_video(video: Video, teacher: Teacher, out_dir: str | Path, *, cache_root: str | Path,
                chunk: int = 32, on_progress: Callable[[int, int], None] | None = None) -> LabelReport:
    """Write the teacher's label of every frame to out_dir/gt_%06d.png (native index, the
    layout `--labels DIR` and LabelFolderTeacher read).

    Labels are computed once per (video content, resolution, fps, teacher) into a folder
    under `cache_root`; a later call copies them from there without decoding the video or
    running the teacher. `on_progress(done, total)` counts frames."""
    tic = time.perf_counter()
    report = on_progress or (lambda done, total: None)
    folder = label_cache_dir(Path(cache_root), video, teacher)
    count = _cached_count(folder, video, teacher)
    cached = count is not None
    if not cached:
        count = _fill_cache(video, teacher, folder, chunk=chunk, on_progress=report)
    report(count, count)
    out = Path(out_dir)
    _publish(folder, video, count, out)
    return LabelReport(out, count, cached, time.perf_counter() - tic)
