"""Dataset checks: which manifest videos are on disk, and what one video holds.

Pure functions behind `notebooks/01_dataset_check.ipynb` (STYLE.md, principle 7):

    manifest_status(load_manifest(), videos_dir())   # one row per video: downloaded? where? size?
    video, teacher = open_with_teacher("synthetic:street", "oracle", height=128, fps=5.0)
    video_facts(video)                                # duration, fps, resolution, frames
    frames, labels = read_labelled(video, teacher, sample_indices(video, count=24))
    class_frequencies(labels, video.label_set)        # pixel share per class
    scene_change_timeline(video, teacher, step_s=1.0) # mIoU of label t vs label t - step

A *scene change* is a dip of the consecutive-label mIoU: the teacher's label of frame t
agrees little with the label `step_s` earlier (the same similarity AMS's ASR measures,
SPEC.md, "Mechanisms").
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from amslib.core.labels import LabelSet
from amslib.core.metrics import consecutive_miou, scene_drops
from amslib.data.manifest import VideoEntry
from amslib.data.video import SYNTHETIC_PREFIX, Video, VideoError, frames_in, open_video
from amslib.models.teachers import OracleTeacher, Teacher, read_labelled
from amslib.models.zoo import parse_teacher

# Files next to a downloaded video that are not the video (download.py's sidecar, resume state).
_NOT_VIDEO = (".json", ".part", ".tmp")
STATUS_COLUMNS = ("video_id", "title", "dataset", "access", "clip_s", "downloaded", "path", "size_mb",
                  "frames", "fps")


# -- the manifest on disk ----------------------------------------------------------------------
def local_file(video_id: str, videos_dir: Path) -> Path | None:
    """The downloaded file of `video_id` in `videos_dir` (as `open_video` finds it), or None."""
    if not videos_dir.is_dir():
        return None
    files = sorted(p for p in videos_dir.glob(f"{video_id}.*") if p.suffix not in _NOT_VIDEO)
    return files[0] if files else None


def _sidecar(path: Path) -> dict:
    """The download sidecar (<name>.json) next to `path`; {} if absent or unreadable."""
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}


def manifest_status(manifest: Mapping[str, VideoEntry], videos_dir: str | Path) -> pd.DataFrame:
    """One row per manifest video (columns STATUS_COLUMNS): `downloaded`, the file's `path`
    and `size_mb` (1 MB = 10^6 bytes), and `frames`/`fps` from its download sidecar (NaN when
    not downloaded or without sidecar). Reads only the folder listing: works offline."""
    folder = Path(videos_dir)
    rows = []
    for entry in manifest.values():
        path = local_file(entry.video_id, folder)
        side = _sidecar(path) if path else {}
        rows.append({"video_id": entry.video_id, "title": entry.title, "dataset": entry.dataset,
                     "access": entry.access, "clip_s": entry.duration_s, "downloaded": path is not None,
                     "path": str(path) if path else "", "size_mb": path.stat().st_size / 1e6 if path else math.nan,
                     "frames": side.get("frames", math.nan), "fps": side.get("fps", math.nan)})
    return pd.DataFrame(rows, columns=list(STATUS_COLUMNS)).astype({"clip_s": float, "size_mb": float,
                                                                    "frames": float, "fps": float})


# -- a video and its teacher ---------------------------------------------------------------------
def open_with_teacher(spec: str, teacher_spec: str | None, *, height: int, fps: float,
                      seed: int = 0) -> tuple[Video, Teacher]:
    """Open a video ('synthetic:street', a local file or a downloaded manifest id) with the
    teacher that labels it: `teacher_spec` as `teachers_models.parse_teacher` reads it (e.g.
    'tflite:selfie_landscape', 'labels:DIR'); None or 'oracle' means exact labels, which only
    synthetic videos have. The video's classes are the teacher's when it names them."""
    if teacher_spec in (None, "oracle"):
        if not spec.startswith(SYNTHETIC_PREFIX):
            raise VideoError(f"'{spec}' has no exact labels; give a teacher, e.g. "
                             "'tflite:selfie_landscape' or 'labels:DIR' (a folder of gt_%06d.png)")
        return open_video(spec, height=height, fps=fps, seed=seed), OracleTeacher()
    teacher = parse_teacher(teacher_spec)
    video = open_video(spec, height=height, fps=fps, seed=seed, label_set=teacher.label_set,
                       classes=getattr(teacher, "classes", None))
    if teacher.label_set and teacher.label_set != video.label_set.name:
        raise VideoError(f"teacher '{teacher_spec}' labels in {teacher.label_set} but '{spec}' is scored "
                         f"in {video.label_set.name}; choose a {video.label_set.name} teacher")
    return video, teacher


def video_facts(video: Video) -> dict:
    """Duration (s), fps, resolution, frame count, label set and important classes of `video`;
    a file adds its path and native frame rate."""
    facts = {"video": video.key, "duration_s": round(video.duration_s, 3), "fps": video.fps,
             "width": video.width, "height": video.height, "num_frames": video.num_frames,
             "label_set": video.label_set.name, "classes": ", ".join(video.classes)}
    for name in ("path", "native_fps"):
        if hasattr(video, name):
            facts[name] = str(getattr(video, name)) if name == "path" else getattr(video, name)
    return facts


# -- what the labels say ----------------------------------------------------------------------
NO_LABEL = "(no label)"


def class_frequencies(labels: np.ndarray, label_set: LabelSet) -> pd.Series:
    """Share of pixels (0-1) per class over labels (N, H, W) or (H, W) uint8, for the classes
    that occur, largest first; ids outside the label set (and 255) count as NO_LABEL."""
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=256)
    if counts.sum() == 0:
        raise ValueError("no label pixels given; pass at least one (H, W) label")
    k = label_set.num_classes
    shares = pd.Series(counts[:k], index=list(label_set.names), dtype=float)
    shares[NO_LABEL] = counts[k:].sum()
    shares = shares[shares > 0] / counts.sum()
    return shares.sort_values(ascending=False, kind="stable").rename("share").rename_axis("class")


def scene_change_timeline(video: Video, teacher: Teacher, *, step_s: float,
                          max_seconds: float | None = None) -> pd.DataFrame:
    """One row per frame t = step, 2 step, ... (every `step_s` seconds over the first
    `max_seconds`): `frame`, `t_s` and `miou_pct`, the mIoU (%) between the teacher's label
    of frame t and of the frame `step_s` earlier, over the video's important classes."""
    step = int(round(step_s * video.fps))
    if step < 1:
        raise ValueError(f"step_s={step_s} is shorter than a frame at {video.fps:g} fps; "
                         f"give at least {1 / video.fps:g} s")
    indices = np.arange(0, frames_in(video, max_seconds), step)
    if len(indices) < 2:
        raise ValueError(f"step_s={step_s} leaves fewer than two frames; give a shorter step or more seconds")
    _, labels = read_labelled(video, teacher, indices)
    miou = consecutive_miou(labels, class_ids=video.class_ids)
    return pd.DataFrame({"frame": indices[1:], "t_s": indices[1:] / video.fps, "miou_pct": 100.0 * miou})


def scene_changes(timeline: pd.DataFrame, *, drop_pct: float = 15.0, window: int = 31) -> pd.DataFrame:
    """The dips of a `scene_change_timeline`: rows whose `miou_pct` is at least `drop_pct`
    points below the running median of the `window` rows centred on them (`baseline_pct`).
    A moving camera lowers the whole curve; a scene change is a drop below its own level."""
    if drop_pct <= 0:
        raise ValueError(f"need drop_pct > 0 and window >= 1, got {drop_pct} and {window}")
    baseline, drop = scene_drops(timeline["miou_pct"], window=window)
    dips = timeline.assign(baseline_pct=baseline, drop_pct=drop)
    return dips[drop >= drop_pct].reset_index(drop=True)
