"""The scheme interface, and the `none` scheme (the pretrained student, never updated).

A scheme decides what the edge samples and shows, and what the server does at its update
times; the Simulation (amslib/sim/engine.py) drives the clock, links and tables for all.
"""
from __future__ import annotations

import math

import numpy as np

from amslib.core.clock import NEVER
from amslib.models.student import set_flat_weights
from amslib.sim.state import Pending, RunState, Sample


def server_columns(row: dict, t_s: float, t_ready: float, start_s: float, end_s: float) -> dict:
    """`row` with the server's times: when its inputs were there, when it started and ended,
    how long it queued, and its staleness (asked for -> arrived at the edge)."""
    row.update(t_train_s=t_ready, t_start_s=start_s, t_end_s=end_s, queue_wait_s=start_s - t_ready,
               server_s=end_s - start_s, staleness_s=row["t_arrival_s"] - t_s)
    return row


class Scheme:
    """What the edge samples and shows, and what the server does at its update times.
    One instance per run (it may keep per-run state); the Simulation drives the clock.
    The base class is the `none` scheme: the pretrained student, never updated."""

    segments = False  # an H.264 uplink batches samples into one stream per update

    def __init__(self, sim) -> None:  # sim: amslib.sim.engine.Simulation
        self.sim = sim

    def start(self, state: RunState) -> None:
        """Called once before the first frame."""

    def first_update_s(self) -> float:
        return math.inf

    def sample_rate_fps(self, state: RunState) -> float:
        return self.sim.adapt.sample_rate_fps

    def wants_sample(self, state: RunState, index: int, t_s: float) -> bool:
        """Does the edge send frame `index` up? (May advance the sampling schedule.)"""
        return False

    def on_sent(self, state: RunState, sample: Sample) -> None:
        """A sample has been handed to the uplink (sent on its own, not in a segment)."""

    def next_key_frame(self, state: RunState) -> int:
        """A frame that must end a batch (a key frame whose reply comes at once); none here."""
        return NEVER

    def predict(self, state: RunState, start: int, frames: np.ndarray) -> np.ndarray:
        """What the edge shows for frames (N, H, W, 3): the student's (N, H, W) class ids."""
        return self.sim.edge_predictor(frames)

    def on_arrival(self, state: RunState, pending: Pending) -> None:
        """Something sent down has arrived: by default new weights for the edge's student."""
        set_flat_weights(self.sim.edge_predictor.model, pending.weights)
        state.edge_weights = pending.weights

    def finish(self, state: RunState) -> None:
        """Called once after the last frame, before the run's last rows are collected."""

    def update(self, state: RunState, t_s: float) -> dict:  # pragma: no cover - never scheduled
        raise NotImplementedError
