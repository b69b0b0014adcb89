"""Teachers label frames: (N, H, W, 3) uint8 frames -> (N, H, W) uint8 class ids.

`labels(video, start, stop)` is what the engine asks for; model teachers implement
`label(frames)`, while the oracle and a label folder answer by frame index. Label folders use
the original's layout, one `gt_%06d.png` per frame, numbered by the video's native frame
index from 0; the on-disk cache uses the same layout, keyed by (video, teacher, resolution).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from amslib.video import SyntheticVideo, Video, VideoError, read_label_png

LABEL_PATTERN = "gt_%06d.png"


class Teacher:
    """Base teacher: a model teacher overrides `label`; index-based ones override `labels`."""

    name = "teacher"

    def label(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) uint8 class ids."""
        raise NotImplementedError(f"teacher '{self.name}' labels by frame index; call labels()")

    def labels(self, video: Video, start: int, stop: int, *,
               frames: np.ndarray | None = None) -> np.ndarray:
        """Labels of the video's frames start..stop-1 (`frames` if the caller has them)."""
        return self.label(video.frames(start, stop) if frames is None else frames)


class OracleTeacher(Teacher):
    """The exact labels of a synthetic video (the default teacher of `synthetic:street`)."""

    name = "oracle"

    def labels(self, video: Video, start: int, stop: int, *, frames=None) -> np.ndarray:
        if not isinstance(video, SyntheticVideo):
            raise VideoError("the oracle teacher only knows synthetic videos; for a file, give "
                             "a label folder (--labels DIR)")
        return video.labels(start, stop)


def _native_index(video: Video, index: int) -> int:
    return video.native_index(index) if hasattr(video, "native_index") else index


class LabelFolderTeacher(Teacher):
    """Precomputed labels: a folder of `gt_%06d.png` (native frame index, from 0)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise VideoError(f"label folder not found: {self.folder}; give a folder of {LABEL_PATTERN} files")
        if not any(self.folder.glob("gt_*.png")):
            raise VideoError(f"no {LABEL_PATTERN} files in {self.folder}")
        self.name = f"labels-{self.folder.resolve()}"

    def labels(self, video: Video, start: int, stop: int, *, frames=None) -> np.ndarray:
        out = np.empty((stop - start, video.height, video.width), np.uint8)
        for i in range(start, stop):
            path = self.folder / (LABEL_PATTERN % _native_index(video, i))
            if not path.is_file():
                raise VideoError(f"missing label {path} for frame {i}; the folder must label every "
                                 f"frame of the video ({LABEL_PATTERN}, native index from 0)")
            out[i - start] = read_label_png(path, height=video.height, width=video.width)
        return out

    def present_classes(self, label_set_names: tuple[str, ...], *, sample: int = 50) -> tuple[str, ...]:
        """Names of the classes that occur in up to `sample` evenly spaced label files."""
        files = sorted(self.folder.glob("gt_*.png"))
        picks = files[:: max(1, len(files) // sample)]
        seen = np.zeros(256, bool)
        for path in picks:
            seen[np.unique(np.asarray(Image.open(path)))] = True
        return tuple(n for i, n in enumerate(label_set_names) if seen[i])


def write_label_png(label: np.ndarray, path: Path) -> None:
    """Write (H, W) uint8 ids as an 8-bit PNG, atomically (temp file, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
    os.close(fd)
    try:
        Image.fromarray(label, mode="L").save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def label_cache_dir(root: Path, video: Video, teacher: Teacher) -> Path:
    """The cache folder of (video content + resolution + fps, teacher)."""
    digest = hashlib.sha1(f"{video.key}|{teacher.name}|{video.height}x{video.width}".encode()).hexdigest()
    return root / digest[:16]


class CachedTeacher(Teacher):
    """Wraps a teacher with an on-disk cache of `gt_%06d.png` by processed frame index."""

    def __init__(self, teacher: Teacher, root: str | Path) -> None:
        self.teacher = teacher
        self.root = Path(root)
        self.name = teacher.name

    def labels(self, video: Video, start: int, stop: int, *, frames=None) -> np.ndarray:
        folder = label_cache_dir(self.root, video, self.teacher)
        paths = [folder / (LABEL_PATTERN % i) for i in range(start, stop)]
        if all(p.is_file() for p in paths):
            return np.stack([np.asarray(Image.open(p), np.uint8) for p in paths])
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
        from amslib.student import Predictor

        self.name = name
        self._predict = Predictor(model, batch_size=batch_size)

    def label(self, frames: np.ndarray) -> np.ndarray:
        return self._predict(frames)
