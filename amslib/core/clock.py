"""Simulated time and frame indices: frame k of a video at `fps` is shown at k / fps seconds.

Times are floats, so every comparison of a time with a frame's time allows TIME_EPS_S (a
nanosecond): 0.1 * 30 must be frame 3, not 2.9999999999999996 rounded up or down wrongly.
"""
from __future__ import annotations

import math

TIME_EPS_S = 1e-9
NEVER = 2**62  # a frame index for "never" (an event at an infinite time)


def frame_at(t_s: float, fps: float) -> int:
    """The first frame index whose time is >= t_s (NEVER for an infinite time)."""
    if math.isinf(t_s):
        return NEVER
    return int(math.ceil(t_s * fps - TIME_EPS_S))


def frames_until(t_s: float, fps: float) -> int:
    """The number of frames in the first `t_s` seconds of a video: floor(t_s * fps)."""
    return int(math.floor(t_s * fps + TIME_EPS_S))
