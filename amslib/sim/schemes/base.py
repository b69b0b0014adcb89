"""The scheme interface, and the `none` scheme (the pretrained student, never updated).

A scheme decides what the edge samples and shows, and what the server does at its update
times; the Simulation (amslib/sim/engine.py) drives the clock, links and tables for all.
"""
from __future__ import annotations

import math

import numpy as np

from amslib.core.clock import NEVER, frame_at
from amslib.models.student import set_flat_weights
from amslib.sim.state import Pending, RunState, Sample


def server_columns(row: dict, t_s: float, t_ready: float, start_s: float, end_s: float, *,
                   captured_s: float, fps: float) -> dict:
    """`row` with the server's times: when its inputs were there, when it started and ended,
    how long it queued, and its staleness (`staleness_s`)."""
    row.update(t_train_s=t_ready, t_start_s=start_s, t_end_s=end_s, queue_wait_s=start_s - t_ready,
               server_s=end_s - start_s)
    return staleness_columns(row, captured_s=captured_s, t_live_s=row["t_arrival_s"], fps=fps)


def staleness_columns(row: dict, *, captured_s: float, t_live_s: float, fps: float) -> dict:
    """One staleness for every scheme: from the capture of the newest frame an update (or a
    label) was computed from (`t_captured_s`) to the first frame the edge runs with it
    (`t_first_run_s`: the first frame at or after it arrives, or its training on the edge
    ends). NaN when it never reaches the edge."""
    first = frame_at(t_live_s, fps) / fps if math.isfinite(t_live_s) else math.nan
    row.update(t_captured_s=captured_s, t_first_run_s=first, staleness_s=first - captured_s)
    return row


class Scheme:
    """What the edge samples and shows, and what the server does at its update times.
    One instance per run (it may keep per-run state); the Simulation drives the clock.
    The base class is the `none` scheme: the pretrained student, never updated."""

    segments = False  # an H.264 uplink batches samples into one stream per update
    has_model = True  # what the edge shows is its model's prediction (remote tracking: a tracked label)

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
        state.model_data_s = max(state.model_data_s, pending.captured_s)

    def model_age_s(self, state: RunState, t_s: float) -> float:
        """The age of the model that showed the frame at `t_s`: `t_s` minus the capture time of
        the newest frame behind it."""
        return t_s - state.model_data_s

    def final_predict(self, frames: np.ndarray) -> np.ndarray | None:
        """What the edge would show for frames (N, H, W, 3) after the run, predicted as it
        predicts live (the forgetting measure's predictor)."""
        return self.sim.edge_predictor(frames)

    def finish(self, state: RunState) -> None:
        """Called once after the last frame, before the run's last rows are collected."""

    def update(self, state: RunState, t_s: float) -> dict:  # pragma: no cover - never scheduled
        raise NotImplementedError
