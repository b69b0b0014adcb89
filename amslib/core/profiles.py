"""Shipped server time profiles: what one training step and one teacher frame cost on named
hardware, measured once with `python -m amslib server-profile` (the command and machine are
recorded with each), for `--set server_time=<name>` (ServerConfig).

A profile holds one entry per student shape and resolution, since a step's cost depends on
both; the batch size enters through the linear model step(b) = step_base_s + b * step_frame_s,
fitted from steps timed at batch 1 and at the run's batch size.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProfileEntry:
    height: int
    width_multiplier: float
    output_stride: int
    head_channels: int
    step_base_s: float
    step_frame_s: float
    teacher_frame_s: float


@dataclass(frozen=True)
class ServerProfile:
    hardware: str
    command: str
    teacher: str  # what `teacher_frame_s` timed
    entries: tuple[ProfileEntry, ...]

    def entry(self, *, height: int, width_multiplier: float, output_stride: int, head_channels: int) -> ProfileEntry:
        for e in self.entries:
            if (e.height, e.width_multiplier, e.output_stride, e.head_channels) == (
                    height, width_multiplier, output_stride, head_channels):
                return e
        shapes = "; ".join(f"height={e.height} width_multiplier={e.width_multiplier:g} output_stride={e.output_stride} "
                           f"head_channels={e.head_channels}" for e in self.entries)
        raise KeyError(f"this profile has no entry for height={height} width_multiplier={width_multiplier:g} "
                       f"output_stride={output_stride} head_channels={head_channels} (it has: {shapes}); use "
                       "server_time=measured or server_time=fixed")


SERVER_PROFILES: dict[str, ServerProfile] = {}
