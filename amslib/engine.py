"""The AMS simulation: edge, link and server on one simulated clock (SPEC.md).

The edge runs its student on every frame and samples frames at `sample_rate_fps` for the
uplink. The server keeps the samples of the last `horizon_s` seconds that have *arrived*,
and every `update_interval_s` fine-tunes a student copy for `iterations` steps, then sends
the chosen parameters down. The edge patches its model when the update *arrives* (after the
link's latency and transmission time). Between arrivals the edge model is fixed, so frames
are run in batches up to the next event.

`Simulation.run()` is a generator of events (`FramesEvent`, `UpdateEvent`) so a progress bar,
a notebook plot and a CLI can all follow a run live; `set_policy()` changes the policy while
it runs, taking effect at the next update.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from amslib.codec import decode_update, encode_update, png_bytes
from amslib.config import AdaptConfig, RunConfig
from amslib.metrics import frame_counts
from amslib.student import Predictor, StudentSpec, flat_weights, load_student, set_flat_weights
from amslib.teacher import OracleTeacher, Teacher
from amslib.training import Trainer
from amslib.video import SyntheticVideo, Video, VideoError, open_video_for

_EPS = 1e-9


@dataclass
class FramesEvent:
    """A batch of evaluated frames: per-frame rows and (N, K, 3) [TP, FP, FN] counts."""

    start: int
    rows: list[dict]
    counts: np.ndarray
    predictions: np.ndarray  # (N, H, W) uint8, for live views; not stored in results


@dataclass
class UpdateEvent:
    """A model update computed by the server; `row` is its ledger entry."""

    row: dict


@dataclass
class _Sample:
    t_s: float
    arrival_s: float
    frame: np.ndarray
    label: np.ndarray


@dataclass
class _Pending:
    arrival_s: float
    weights: np.ndarray
    version: int


@dataclass
class _Uplink:
    """A serial link: transmissions queue behind each other; None kbps = instantaneous."""

    kbps: float | None
    latency_s: float
    free_at_s: float = 0.0
    bits: int = 0

    def send(self, t_s: float, bits: int) -> float:
        """Arrival time of `bits` handed to the link at `t_s`."""
        start = max(t_s, self.free_at_s)
        done = start + (0.0 if self.kbps is None else bits / (self.kbps * 1000.0))
        self.free_at_s = done
        self.bits += bits
        return done + self.latency_s


@dataclass
class Students:
    """The edge's and the server's student copies, loaded and traced once. Reusable across
    runs of the same video and student (each run starts from the pretrained weights), which
    saves the seconds TensorFlow spends tracing; pass it to `Simulation.create`."""

    key: tuple
    predictor: Predictor
    trainer: Trainer
    pretrained: np.ndarray

    @staticmethod
    def key_for(config: RunConfig, video: Video) -> tuple:
        return (config.student, video.label_set.name, video.height, video.width, video.class_ids,
                config.width_multiplier, config.output_stride, config.head_channels, config.edge_batch)

    @classmethod
    def load(cls, config: RunConfig, video: Video) -> "Students":
        spec = StudentSpec(num_classes=video.label_set.num_classes, height=video.height,
                           width=video.width, width_multiplier=config.width_multiplier,
                           output_stride=config.output_stride, head_channels=config.head_channels)
        edge = load_student(spec, config.student)
        server = load_student(spec, config.student)
        return cls(key=cls.key_for(config, video),
                   predictor=Predictor(edge, batch_size=config.edge_batch),
                   trainer=Trainer(server, class_ids=video.class_ids, lr=config.adapt.lr),
                   pretrained=flat_weights(edge))


@dataclass
class Simulation:
    """One run of one scheme on one video. Build with `Simulation.create(config)`."""

    config: RunConfig
    video: Video
    teacher: Teacher
    adapt: AdaptConfig
    students: Students
    pending_policy: dict = field(default_factory=dict)
    stopped: bool = False

    @classmethod
    def create(cls, config: RunConfig, *, video: Video | None = None, teacher: Teacher | None = None,
               students: Students | None = None) -> "Simulation":
        """Open the video, choose the teacher, and load the students (or reuse `students`)."""
        video = video or open_video_for(config)
        if teacher is None:
            if not isinstance(video, SyntheticVideo):
                raise VideoError(f"video '{config.video}' needs a teacher: give a label folder (--labels DIR)")
            teacher = OracleTeacher()
        if students is None or students.key != Students.key_for(config, video):
            students = Students.load(config, video)
        return cls(config=config, video=video, teacher=teacher, adapt=config.adapt, students=students)

    @property
    def pretrained(self) -> np.ndarray:
        return self.students.pretrained

    @property
    def edge_predictor(self) -> Predictor:
        return self.students.predictor

    @property
    def trainer(self) -> Trainer:
        return self.students.trainer

    # -- live control ------------------------------------------------------------------
    def set_policy(self, **changes) -> None:
        """Change policy fields (e.g. fraction=0.05); validated now, applied at the next update."""
        replace(self.adapt, **{**self.pending_policy, **changes})  # raises ConfigError if invalid
        self.pending_policy.update(changes)

    def stop(self) -> None:
        """Ask a running `run()` to end after the current batch of frames."""
        self.stopped = True

    # -- the clock ---------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        limit = self.config.max_seconds
        n = self.video.num_frames
        return n if limit is None else min(n, int(math.floor(limit * self.video.fps + _EPS)))

    def _frame_at(self, t_s: float) -> int:
        """First frame index whose time is >= t_s (a huge index for 'never')."""
        if math.isinf(t_s):
            return 2**62
        return int(math.ceil(t_s * self.video.fps - _EPS))

    def _first_update_s(self) -> float:
        scheme = self.config.scheme
        if scheme == "ams":
            return self.adapt.first_update_s
        if scheme == "one_time":
            return self.adapt.one_time_s
        return math.inf

    def run(self) -> Iterator[FramesEvent | UpdateEvent]:
        """Simulate the whole video (or `max_seconds`), yielding events as they happen."""
        state = _RunState(uplink=_Uplink(self.config.link.uplink_kbps, self.config.link.latency_s),
                          downlink=_Uplink(self.config.link.downlink_kbps, self.config.link.latency_s),
                          next_update_s=self._first_update_s(), rng=np.random.default_rng(self.config.seed))
        set_flat_weights(self.edge_predictor.model, self.pretrained)
        state.edge_weights = state.server_weights = self.pretrained
        n = self.num_frames
        i = 0
        while i < n and not self.stopped:
            self._apply_arrivals(state, i / self.video.fps)
            stop = self._next_boundary(state, i, n)
            yield self._run_frames(state, i, stop)
            i = stop
            if i < n and i >= self._frame_at(state.next_update_s):
                yield self._update(state, state.next_update_s)

    def _next_boundary(self, state: "_RunState", i: int, n: int) -> int:
        candidates = [n, i + self.config.edge_batch, self._frame_at(state.next_update_s)]
        candidates += [self._frame_at(p.arrival_s) for p in state.pending]
        return max(i + 1, min(c for c in candidates if c > i))

    def _apply_arrivals(self, state: "_RunState", t_s: float) -> None:
        arrived = [p for p in state.pending if p.arrival_s <= t_s + _EPS]
        for p in sorted(arrived, key=lambda p: p.version):
            set_flat_weights(self.edge_predictor.model, p.weights)
            state.edge_weights = p.weights
            state.version = p.version
        state.pending = [p for p in state.pending if p.arrival_s > t_s + _EPS]

    # -- the edge ----------------------------------------------------------------------
    def _is_sampling(self, t_s: float) -> bool:
        if self.config.scheme == "none":
            return False
        if self.config.scheme == "one_time":
            return t_s < self.adapt.one_time_s
        return True

    def _run_frames(self, state: "_RunState", start: int, stop: int) -> FramesEvent:
        frames = self.video.frames(start, stop)
        stop = start + len(frames)
        truth = self.teacher.labels(self.video, start, stop, frames=frames)
        pred = self.edge_predictor(frames)
        counts = frame_counts(truth, pred, class_ids=self.video.class_ids)
        rows = []
        for offset in range(len(frames)):
            t_s = (start + offset) / self.video.fps
            bits = 0
            if self._is_sampling(t_s) and t_s + _EPS >= state.next_sample_s:
                bits = 8 * png_bytes(frames[offset])
                arrival = state.uplink.send(t_s, bits)
                state.buffer.append(_Sample(t_s, arrival, frames[offset], truth[offset]))
                state.next_sample_s += 1.0 / self.adapt.sample_rate_fps
            rows.append({"frame": start + offset, "t_s": t_s, "model_version": state.version,
                         "uplink_bits": bits})
        return FramesEvent(start=start, rows=rows, counts=counts, predictions=pred)

    # -- the server --------------------------------------------------------------------
    def _update(self, state: "_RunState", t_s: float) -> UpdateEvent:
        changes = dict(self.pending_policy)
        if changes:
            self.adapt = replace(self.adapt, **changes)
            self.pending_policy.clear()
        adapt = self.adapt
        one_time = self.config.scheme == "one_time"
        horizon_start = 0.0 if one_time else t_s - adapt.horizon_s
        state.buffer = [s for s in state.buffer if s.t_s >= horizon_start]
        ready = [s for s in state.buffer if s.arrival_s <= t_s + _EPS]
        state.next_update_s = math.inf if one_time else t_s + adapt.update_interval_s
        row = {"update": state.updates + 1, "t_update_s": t_s, "num_samples": len(ready),
               "policy_changes": ", ".join(f"{k}={v}" for k, v in changes.items())}
        row.update({k: getattr(adapt, k) for k in ("strategy", "fraction", "iterations", "batch_size",
                                                   "lr", "update_interval_s", "horizon_s",
                                                   "sample_rate_fps", "reset_to_pretrained")})
        if one_time:
            row["strategy"], row["fraction"] = "full", 1.0  # One-Time fine-tunes the whole model
        if not ready:
            row.update(t_arrival_s=math.nan, sent=False)
            return UpdateEvent(row)
        row.update(self._train_and_send(state, t_s, ready, row["strategy"], adapt))
        return UpdateEvent(row)

    def _train_and_send(self, state: "_RunState", t_s: float, samples: list[_Sample],
                        strategy: str, adapt: AdaptConfig) -> dict:
        base = self.pretrained if adapt.reset_to_pretrained else state.server_weights
        tic = time.perf_counter()
        result = self.trainer.update(
            np.stack([s.frame for s in samples]), np.stack([s.label for s in samples]),
            base=base, strategy=strategy, fraction=adapt.fraction, iterations=adapt.iterations,
            batch_size=adapt.batch_size, lr=adapt.lr, rng=state.rng)
        train_wall_s = time.perf_counter() - tic
        encoded = encode_update(result.values, result.mask)
        weights = decode_update(encoded, base)  # what the edge will hold
        state.server_weights = weights  # the server continues from what the edge has
        state.updates += 1
        arrival = state.downlink.send(t_s, encoded.bits)
        state.pending.append(_Pending(arrival, weights, state.updates))
        return {"sent": True, "t_arrival_s": arrival, "num_params": encoded.num_params,
                "num_sent": encoded.num_sent, "mask_bytes": encoded.mask_bytes,
                "value_bytes": encoded.value_bytes, "compressed_bytes": encoded.compressed_bytes,
                "downlink_bits": encoded.bits, "loss_first": result.losses[0],
                "loss_last": result.losses[-1], "train_wall_s": train_wall_s}


@dataclass
class _RunState:
    """Mutable state of one run (kept off the Simulation so a run is restartable)."""

    uplink: _Uplink
    downlink: _Uplink
    next_update_s: float
    rng: np.random.Generator
    next_sample_s: float = 0.0
    buffer: list[_Sample] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    edge_weights: np.ndarray | None = None
    server_weights: np.ndarray | None = None
    version: int = 0
    updates: int = 0
