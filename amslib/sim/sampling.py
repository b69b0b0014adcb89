"""When the edge sends a frame up: its sampling clock, in one place for the engine's schemes
and for the walkthrough (notebook 05) that shows which frames an update trained on.

The clock asks for a sample every 1 / r seconds from 0 s; the edge sends the first frame at
or after each of those times (so at r above the frame rate, every frame). A scheme advances
the clock by 1 / r after each sample, so r may change between samples (ASR).
"""
from __future__ import annotations

import math

import numpy as np

from amslib.core.clock import TIME_EPS_S, frame_at


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


def check_span(start_s: float, stop_s: float) -> None:
    if not (0 <= start_s <= stop_s):
        raise ValueError(f"need 0 <= start_s <= stop_s seconds, got {start_s} and {stop_s}")
