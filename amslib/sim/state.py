"""What one run shares between the clock, the edge, the link and the scheme: the events a
run yields, the samples and updates in flight, and the run's mutable state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from amslib.sim.link import Link


@dataclass
class FramesEvent:
    """A batch of evaluated frames: per-frame rows and (N, K, 3) [TP, FP, FN] counts."""

    start: int
    rows: list[dict]
    counts: np.ndarray
    predictions: np.ndarray  # (N, H, W) uint8, for live views; not stored in results
    frames: np.ndarray | None = None  # (N, H, W, 3) uint8 as the edge read them, for live views
    labels: np.ndarray | None = None  # (N, H, W) uint8, the teacher's, for live views


@dataclass
class UpdateEvent:
    """Something the server computed and (maybe) sent down; `row` is its ledger entry."""

    row: dict


@dataclass
class LinksEvent:
    """The end of a run: every hand-over to the links (Simulation.link_rows)."""

    rows: list[dict]


@dataclass
class Sample:
    """A frame the edge sent up: `frame` is what the server decodes, `label` the teacher's."""

    t_s: float
    index: int
    frame: np.ndarray
    label: np.ndarray
    arrival_s: float = math.inf
    seen: bool = False  # already used by an update's ASR measurement
    labelled: bool = False  # the server's teacher has labelled it (its time was paid)
    edge_frame: np.ndarray | None = None  # the frame as the edge has it (before any codec)

    def __post_init__(self) -> None:
        if self.edge_frame is None:
            self.edge_frame = self.frame


@dataclass
class Pending:
    """Something on its way down: model weights (P,) or a label (H, W) of frame `index`."""

    arrival_s: float
    version: int
    weights: np.ndarray | None = None
    label: np.ndarray | None = None
    frame: np.ndarray | None = None  # the frame the label belongs to (for tracking)
    captured_s: float = math.nan  # capture time of the newest frame behind it (the model's age counts from it)


@dataclass
class RunState:
    """Mutable state of one run shared by every scheme (kept off the Simulation so a run is
    restartable); a scheme keeps its own extra state on itself."""

    uplink: Link
    downlink: Link
    rng: np.random.Generator
    next_update_s: float = math.inf
    next_sample_s: float = 0.0
    buffer: list[Sample] = field(default_factory=list)  # arrived or in flight, for the server
    outbox: list[Sample] = field(default_factory=list)  # sampled, awaiting an H.264 segment
    carry_bits: int = 0  # uplink bits handed over between frames, booked on the next frame
    pending: list[Pending] = field(default_factory=list)
    edge_weights: np.ndarray | None = None
    server_weights: np.ndarray | None = None
    version: int = 0
    updates: int = 0
    last_pred: np.ndarray | None = None  # the edge's prediction of the previous frame (H, W)
    last_truths: list = field(default_factory=list)  # the teacher's labels of the last second's frames
    edge_train_frames: int = 0  # frames through a training step on the edge, not booked yet
    edge_forward_frames: int = 0  # extra forward passes on the edge (beyond inference), not booked yet
    edge_shared_frames: int = 0  # training steps whose forward pass is also the frame's inference, not booked yet
    ledger: list[dict] = field(default_factory=list)  # update rows not yet yielded (the server writes them when it runs)
    dropped_samples: int = 0  # refused by a full uplink queue (LinkConfig.uplink_queue_s)
    superseded: int = 0  # updates withdrawn from the downlink queue by a newer one
    # capture time of the newest frame behind the model the edge runs (0: the pretrained model
    # counts as made at the stream's start, so a device never served ages with the stream)
    model_data_s: float = 0.0
    sent_rows: dict = field(default_factory=dict)  # version -> its ledger row, once yielded (a withdrawal rewrites it)
