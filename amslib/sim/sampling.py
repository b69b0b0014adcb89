"""When the edge sends a frame up: its sampling clock, in one place for the engine's schemes
and for the walkthrough (notebook 05) that shows which frames an update trained on; and the
server's buffer of labelled samples at an update (`buffer_at`).

The clock asks for a sample every 1 / r seconds from 0 s; the edge sends the first frame at
or after each of those times (so at r above the frame rate, every frame). A scheme advances
the clock by 1 / r after each sample, so r may change between samples (ASR).
"""
from __future__ import annotations

import math

import numpy as np

from amslib.core.clock import TIME_EPS_S, frame_at
from amslib.data.video import Video
from amslib.models.teachers import LabelledFrames, Teacher, read_labelled


def sample_due(t_s: float, next_sample_s: float) -> bool:
    """Is a frame shown at `t_s` due to be sent, the clock's next request being at `next_sample_s`?"""
    return t_s + TIME_EPS_S >= next_sample_s


def sample_times(start_s: float, stop_s: float, *, rate_fps: float) -> np.ndarray:
    """(S,) float64 times k / r (k = 0, 1, ...) in [start_s, stop_s): when the edge's sampling
    clock, started at 0 s, asks for a frame."""
    check_span(start_s, stop_s)
    if not rate_fps > 0:
        raise ValueError(f"rate_fps must be > 0 frames per second, got {rate_fps}")
    first, last = math.ceil(start_s * rate_fps - TIME_EPS_S), math.ceil(stop_s * rate_fps - TIME_EPS_S)
    return np.arange(first, max(first, last)) / rate_fps


def sampled_frames(start_s: float, stop_s: float, *, rate_fps: float, fps: float) -> np.ndarray:
    """(S,) int64 indices of the frames the edge sends up at a fixed rate r whose time
    index / fps is in [start_s, stop_s): the clock run from 0 s exactly as a scheme runs it."""
    check_span(start_s, stop_s)
    if not rate_fps > 0:
        raise ValueError(f"rate_fps must be > 0 frames per second, got {rate_fps}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    next_sample_s, kept = 0.0, []
    for index in range(frame_at(stop_s, fps)):
        t_s = index / fps
        if sample_due(t_s, next_sample_s):
            next_sample_s += 1.0 / rate_fps
            if t_s >= start_s - TIME_EPS_S:
                kept.append(index)
    return np.asarray(kept, np.int64)


def labelled_frames(video: Video, teacher: Teacher, indices: np.ndarray) -> LabelledFrames:
    """Read frames `indices` (N,) of `video` and label them with `teacher`."""
    indices = np.asarray(indices, np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= video.num_frames):
        raise ValueError(f"frame indices must be in [0, {video.num_frames}) for this video "
                         f"({video.duration_s:g} s), got {indices.min()}..{indices.max()}")
    frames, labels = read_labelled(video, teacher, indices)
    return LabelledFrames(indices, indices / video.fps, frames, labels)


def buffer_at(video: Video, teacher: Teacher, *, t_s: float, horizon_s: float,
              rate_fps: float) -> LabelledFrames:
    """The server's buffer at an update at `t_s`: the samples taken in [t_s - T, t_s), T =
    `horizon_s`, sampled at r = `rate_fps`, with the teacher's labels. Assumes what the
    engine does on an unlimited, lossless (PNG) uplink without latency: every sample taken
    before `t_s` has arrived."""
    if not horizon_s > 0:
        raise ValueError(f"horizon_s (T) must be > 0 seconds, got {horizon_s}")
    if not 0 < t_s <= video.duration_s:
        raise ValueError(f"t_s must be in (0, {video.duration_s:g}] seconds (the video's length), got {t_s}")
    indices = sampled_frames(max(0.0, t_s - horizon_s), t_s, rate_fps=rate_fps, fps=video.fps)
    return labelled_frames(video, teacher, indices[indices < video.num_frames])


def check_span(start_s: float, stop_s: float) -> None:
    if not (0 <= start_s <= stop_s):
        raise ValueError(f"need 0 <= start_s <= stop_s seconds, got {start_s} and {stop_s}")
