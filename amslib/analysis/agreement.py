"""How two teachers agree on one video: a quick check of the measuring stick.

Before concluding anything from a run scored against a teacher, check the teacher: label
the same frames with a reference teacher (e.g. `rvm`) and another (e.g. the selfie model),
and compare them class by class.

    result = teacher_agreement(video, reference, other)
    result.table        # per class: each teacher's pixel share, IoU between them, and how
                        # much of the reference's pixels the other finds (recall) and how much
                        # of what it marks the reference agrees with (precision), in %
    result.worst        # frame indices where they disagree most (at least `min_gap_s` apart)

Frames are labelled in order, chunk after chunk (a recurrent teacher carries its state);
only counts are kept, so a long video needs no more memory than one chunk.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from amslib.core.metrics import frame_counts
from amslib.data.video import Video, frames_in
from amslib.models.teachers import Teacher

AGREEMENT_COLUMNS = ("class", "reference_pct", "other_pct", "iou_pct", "found_pct", "precision_pct")


@dataclass(frozen=True)
class Agreement:
    """Two teachers on one video: `table` (columns AGREEMENT_COLUMNS, one row per class of the
    video), `disagreement` (N,) the share of each frame's pixels they label differently,
    `worst` the frames (indices) where they disagree most."""

    video: str
    reference: str
    other: str
    frames: int
    fps: float
    table: pd.DataFrame
    disagreement: np.ndarray
    worst: np.ndarray

    def summary(self) -> dict:
        return {"video": self.video, "reference": self.reference, "other": self.other, "frames": self.frames,
                "fps": self.fps, "disagreement_pct": round(100 * float(self.disagreement.mean()), 2),
                "worst_frames": [int(i) for i in self.worst],
                "classes": self.table.round(2).to_dict(orient="records")}


def agreement_table(counts: np.ndarray, names: tuple[str, ...]) -> pd.DataFrame:
    """Per class, from (K, 3) [TP, FP, FN] counts of `other` against `reference`: the pixel
    shares (%) of each, IoU, recall ('found') and precision (%); NaN where undefined."""
    counts = np.asarray(counts, np.float64)
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    total = (tp + fn).sum()  # every scored pixel has one reference class
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = {"class": list(names), "reference_pct": 100 * (tp + fn) / total, "other_pct": 100 * (tp + fp) / total,
                "iou_pct": 100 * tp / (tp + fp + fn), "found_pct": 100 * tp / (tp + fn),
                "precision_pct": 100 * tp / (tp + fp)}
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))


def worst_frames(disagreement: np.ndarray, *, count: int, min_gap: int) -> np.ndarray:
    """Up to `count` frame indices of highest disagreement, each at least `min_gap` frames
    from those picked before it (so a strip shows different moments), in time order."""
    picked: list[int] = []
    for i in np.argsort(-disagreement, kind="stable"):
        if len(picked) == count:
            break
        if all(abs(int(i) - j) >= min_gap for j in picked):
            picked.append(int(i))
    return np.array(sorted(picked), np.int64)


def teacher_agreement(video: Video, reference: Teacher, other: Teacher, *, max_seconds: float | None = None,
                      chunk: int = 32, strip: int = 4, min_gap_s: float = 2.0,
                      on_progress: Callable[[int, int], None] | None = None) -> Agreement:
    """Label the video's frames (the first `max_seconds`, or all) with both teachers and
    compare them over the video's classes; `on_progress(done, total)` counts frames."""
    total = frames_in(video, max_seconds)
    if total == 0:
        raise ValueError(f"{video.key} has no frame to compare; give a longer video or max_seconds")
    ids = video.class_ids
    counts = np.zeros((len(ids), 3), np.int64)
    disagreement = []
    for start in range(0, total, chunk):
        frames = video.frames(start, min(start + chunk, total))
        if not len(frames):
            break
        stop = start + len(frames)
        a = reference.labels(video, start, stop, frames=frames)
        b = other.labels(video, start, stop, frames=frames)
        counts += frame_counts(a, b, class_ids=ids).sum(axis=0)
        disagreement.append((a != b).mean(axis=(1, 2)))
        if on_progress:
            on_progress(stop, total)
    disagreement = np.concatenate(disagreement)
    return Agreement(video=video.key, reference=reference.name, other=other.name, frames=len(disagreement),
                     fps=video.fps, table=agreement_table(counts, tuple(video.classes)), disagreement=disagreement,
                     worst=worst_frames(disagreement, count=strip, min_gap=max(1, round(min_gap_s * video.fps))))
