"""The simulation: edge, link and server on one simulated clock (SPEC.md).

The edge runs its model on every frame and sends sampled frames up. The server keeps the
samples that have *arrived*, and at update times trains a student copy and sends what
changed down; the edge patches its model when the update *arrives* (after the link's
latency and transmission time, amslib/link.py). Between arrivals the edge model is fixed, so
frames are run in batches up to the next event.

What the edge samples, when the server updates and what it sends is the *scheme*'s: `none`,
`one_time` and `ams` (with ASR and ATR) live here; `jit` and `remote_tracking` in
amslib/baselines.py. Every scheme drives the same clock, link and result tables.

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

from amslib.codec import decode_update, encode_update, h264_segment, png_bytes
from amslib.config import UPDATE_ENCODERS, AdaptConfig, RunConfig
from amslib.link import Link, make_link
from amslib.metrics import frame_counts, miou_per_frame
from amslib.student import Predictor, StudentSpec, flat_weights, load_student, set_flat_weights
from amslib.teacher import OracleTeacher, Teacher
from amslib.training import Trainer
from amslib.video import SyntheticVideo, Video, VideoError, open_video_for

_EPS = 1e-9

# ASR and ATR (SPEC.md, "Mechanisms"): r <- clip(r - 0.2 tanh(20 (phi - 0.6)), 0.1, 1.0); and
# when the mean of the last 5 rates < 0.25, the update interval grows by 2 s per update up
# to 6 tau, back to tau once that mean rises above 0.35.
ASR_STEP_FPS, ASR_GAIN, ASR_TARGET_PHI = 0.2, 20.0, 0.6
ATR_HISTORY, ATR_SLEEP_BELOW_FPS, ATR_WAKE_ABOVE_FPS = 5, 0.25, 0.35
ATR_GROWTH_S, ATR_MAX_FACTOR = 2.0, 6.0


@dataclass
class FramesEvent:
    """A batch of evaluated frames: per-frame rows and (N, K, 3) [TP, FP, FN] counts."""

    start: int
    rows: list[dict]
    counts: np.ndarray
    predictions: np.ndarray  # (N, H, W) uint8, for live views; not stored in results


@dataclass
class UpdateEvent:
    """Something the server computed and (maybe) sent down; `row` is its ledger entry."""

    row: dict


@dataclass
class Sample:
    """A frame the edge sent up: `frame` is what the server decodes, `label` the teacher's."""

    t_s: float
    index: int
    frame: np.ndarray
    label: np.ndarray
    arrival_s: float = math.inf
    seen: bool = False  # already used by an update's ASR measurement
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


@dataclass
class Students:
    """The edge's and the server's student copies, loaded and traced once. Reusable across
    runs of the same video and student (each run starts from the pretrained weights), which
    saves the seconds TensorFlow spends tracing; pass it to `Simulation.create`."""

    key: tuple
    predictor: Predictor
    trainer: Trainer
    pretrained: np.ndarray
    server_predictor: Predictor | None = None  # the server copy's inference (Just-In-Time)

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
                   pretrained=flat_weights(edge),
                   server_predictor=Predictor(server, batch_size=config.edge_batch))


# -- pure pieces of AMS's adaptive policies ---------------------------------------------------
def label_similarity(labels: np.ndarray, *, previous: np.ndarray | None,
                     class_ids: tuple[int, ...]) -> float:
    """phi: mean mIoU between consecutive teacher labels (N, H, W) uint8, the first paired with
    `previous` (H, W) when given; NaN with no pair. A static scene gives phi near 1."""
    seq = labels if previous is None else np.concatenate([previous[None], labels])
    if len(seq) < 2:
        return math.nan
    per_pair = miou_per_frame(frame_counts(seq[:-1], seq[1:], class_ids=class_ids))
    return float(np.nanmean(per_pair)) if np.any(~np.isnan(per_pair)) else math.nan


def asr_rate(rate_fps: float, phi: float, *, min_fps: float, max_fps: float) -> float:
    """ASR: r <- clip(r - 0.2 tanh(20 (phi - 0.6)), min, max); r unchanged when phi is NaN."""
    if math.isnan(phi):
        return rate_fps
    step = ASR_STEP_FPS * math.tanh(ASR_GAIN * (phi - ASR_TARGET_PHI))
    return float(min(max_fps, max(min_fps, rate_fps - step)))


def atr_interval(interval_s: float, hibernating: bool, rates_fps: list[float], *,
                 tau_s: float) -> tuple[float, bool]:
    """ATR: (next update interval, hibernating) from the history of sampling rates.

    Hibernate while the mean of the last 5 rates is < 0.25 and keep hibernating (growing the
    interval by 2 s per update, up to 6 tau) until that mean rises above 0.35; then tau again.
    (The original never appended to the history, so its ATR never acted: SPEC.md, defects.)"""
    mean = float(np.mean(rates_fps[-ATR_HISTORY:]))
    if mean > ATR_WAKE_ABOVE_FPS:
        return tau_s, False
    if mean < ATR_SLEEP_BELOW_FPS or hibernating:
        return min(interval_s + ATR_GROWTH_S, ATR_MAX_FACTOR * tau_s), True
    return interval_s, False


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
        _links(config)  # a bad trace file fails here, before anything runs
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

    def take_policy_changes(self) -> dict:
        """Apply the pending policy changes (a scheme calls this at each update)."""
        changes = dict(self.pending_policy)
        if changes:
            self.adapt = replace(self.adapt, **changes)
            self.pending_policy.clear()
        return changes

    def stop(self) -> None:
        """Ask a running `run()` to end after the current batch of frames."""
        self.stopped = True

    # -- the clock ---------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        limit = self.config.max_seconds
        n = self.video.num_frames
        return n if limit is None else min(n, int(math.floor(limit * self.video.fps + _EPS)))

    def frame_at(self, t_s: float) -> int:
        """First frame index whose time is >= t_s (a huge index for 'never')."""
        if math.isinf(t_s):
            return 2**62
        return int(math.ceil(t_s * self.video.fps - _EPS))

    def run(self) -> Iterator[FramesEvent | UpdateEvent]:
        """Simulate the whole video (or `max_seconds`), yielding events as they happen."""
        uplink, downlink = _links(self.config)
        state = RunState(uplink=uplink, downlink=downlink, rng=np.random.default_rng(self.config.seed))
        scheme = make_scheme(self)
        state.next_update_s = scheme.first_update_s()
        set_flat_weights(self.edge_predictor.model, self.pretrained)
        state.edge_weights = state.server_weights = self.pretrained
        scheme.start(state)
        n = self.num_frames
        i = 0
        while i < n and not self.stopped:
            self._apply_arrivals(state, scheme, i / self.video.fps)
            stop = self._next_boundary(state, scheme, i, n)
            yield self._run_frames(state, scheme, i, stop)
            i = stop
            while i < n and i >= self.frame_at(state.next_update_s):
                yield UpdateEvent(scheme.update(state, state.next_update_s))

    def _next_boundary(self, state: RunState, scheme: "Scheme", i: int, n: int) -> int:
        candidates = [n, i + self.config.edge_batch, self.frame_at(state.next_update_s),
                      scheme.next_key_frame(state) + 1]
        candidates += [self.frame_at(p.arrival_s) for p in state.pending]
        return max(i + 1, min(c for c in candidates if c > i))

    def _apply_arrivals(self, state: RunState, scheme: "Scheme", t_s: float) -> None:
        arrived = [p for p in state.pending if p.arrival_s <= t_s + _EPS]
        for p in sorted(arrived, key=lambda p: p.version):
            scheme.on_arrival(state, p)
            state.version = p.version
        state.pending = [p for p in state.pending if p.arrival_s > t_s + _EPS]

    # -- the edge ----------------------------------------------------------------------
    def _run_frames(self, state: RunState, scheme: "Scheme", start: int, stop: int) -> FramesEvent:
        frames = self.video.frames(start, stop)
        stop = start + len(frames)
        truth = self.teacher.labels(self.video, start, stop, frames=frames)
        pred = scheme.predict(state, start, frames)
        counts = frame_counts(truth, pred, class_ids=self.video.class_ids)
        rows = []
        for offset in range(len(frames)):
            index = start + offset
            t_s = index / self.video.fps
            bits, state.carry_bits = state.carry_bits, 0
            if scheme.wants_sample(state, index, t_s):
                sample = Sample(t_s, index, frames[offset], truth[offset])
                if self.config.link.uplink_codec == "h264" and scheme.segments:
                    state.outbox.append(sample)  # sent as one stream at the next update
                else:
                    bits += self.send_up(state, [sample], t_s, rate_fps=scheme.sample_rate_fps(state))
                    scheme.on_sent(state, sample)
            rows.append({"frame": index, "t_s": t_s, "model_version": state.version, "uplink_bits": bits})
        return FramesEvent(start=start, rows=rows, counts=counts, predictions=pred)

    def send_up(self, state: RunState, samples: list[Sample], t_s: float, *, rate_fps: float) -> int:
        """Encode `samples` (PNG each, or one H.264 segment at `rate_fps`), hand them to the
        uplink at `t_s`, and put them in the server's buffer. Returns the bits sent."""
        frames = np.stack([s.frame for s in samples])
        if self.config.link.uplink_codec == "png":
            bits, decoded = sum(8 * png_bytes(f) for f in frames), frames
        else:
            # the budget scales with the rate: h264_kbps per frame/s (LinkConfig)
            bits, decoded = h264_segment(frames, kbps=self.config.link.h264_kbps * rate_fps, fps=rate_fps)
            labels = self._server_labels(samples, decoded)
            for s, frame, label in zip(samples, decoded, labels):
                s.frame, s.label = frame, label
        arrival = state.uplink.send(t_s, bits)
        for s in samples:
            s.arrival_s = arrival
        state.buffer.extend(samples)
        return bits

    def flush_outbox(self, state: RunState, t_s: float, *, rate_fps: float) -> float:
        """Send the samples waiting for an H.264 segment (their bits go on the next frame).
        Returns when the server has them all: the segment's arrival, or `t_s` if none."""
        if not state.outbox:
            return t_s
        segment, state.outbox = state.outbox, []
        state.carry_bits += self.send_up(state, segment, t_s, rate_fps=rate_fps)
        return max(t_s, segment[0].arrival_s)

    def _server_labels(self, samples: list[Sample], decoded: np.ndarray) -> list[np.ndarray]:
        """The teacher's labels of the decoded frames when it labels pixels (a model); an
        index teacher (oracle, label folder) only knows the original frames' labels."""
        if type(self.teacher).label is Teacher.label:
            return [s.label for s in samples]
        return list(self.teacher.label(decoded))

    # -- the server's downlink -----------------------------------------------------------
    def send_model(self, state: RunState, t_s: float, values: np.ndarray, mask: np.ndarray | None,
                   base: np.ndarray) -> dict:
        """Encode new weights with every encoder (for the ledger), send the configured one
        down, and queue the decoded weights for the edge. Returns the ledger columns."""
        chosen = self.config.link.update_encoder
        sizes = {}
        sent = encode_update(values, mask, encoder=chosen, base=base)
        for name in UPDATE_ENCODERS if self.config.link.ledger_all_encoders else (chosen,):
            other = sent if name == chosen else encode_update(values, mask, encoder=name, base=base)
            sizes[f"bytes_{name}"] = other.compressed_bytes
        weights = decode_update(sent, base)  # what the edge will hold
        state.server_weights = weights  # the server continues from what the edge has
        state.updates += 1
        arrival = state.downlink.send(t_s, sent.bits)
        state.pending.append(Pending(arrival, state.updates, weights=weights))
        return {"sent": True, "t_arrival_s": arrival, "encoder": chosen, "num_params": sent.num_params,
                "num_sent": sent.num_sent, "mask_bytes": sent.mask_bytes, "value_bytes": sent.value_bytes,
                "compressed_bytes": sent.compressed_bytes, "downlink_bits": sent.bits, **sizes}


def _links(config: RunConfig) -> tuple[Link, Link]:
    link = config.link
    return (make_link(link.uplink_kbps, link.uplink_trace, link.latency_s),
            make_link(link.downlink_kbps, link.downlink_trace, link.latency_s))


# -- schemes -----------------------------------------------------------------------------------
class Scheme:
    """What the edge samples and shows, and what the server does at its update times.
    One instance per run (it may keep per-run state); the Simulation drives the clock.
    The base class is the `none` scheme: the pretrained student, never updated."""

    segments = False  # an H.264 uplink batches samples into one stream per update

    def __init__(self, sim: Simulation) -> None:
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
        return 2**62

    def predict(self, state: RunState, start: int, frames: np.ndarray) -> np.ndarray:
        """What the edge shows for frames (N, H, W, 3): the student's (N, H, W) class ids."""
        return self.sim.edge_predictor(frames)

    def on_arrival(self, state: RunState, pending: Pending) -> None:
        """Something sent down has arrived: by default new weights for the edge's student."""
        set_flat_weights(self.sim.edge_predictor.model, pending.weights)
        state.edge_weights = pending.weights

    def update(self, state: RunState, t_s: float) -> dict:  # pragma: no cover - never scheduled
        raise NotImplementedError


class AmsScheme(Scheme):
    """AMS (SPEC.md): sample at r fps, every tau seconds train on the last T seconds of
    samples and send the chosen parameters; ASR adapts r, ATR adapts tau."""

    segments = True

    def start(self, state: RunState) -> None:
        self.rate_fps = self.sim.adapt.sample_rate_fps
        self.interval_s = self.sim.adapt.update_interval_s
        self.hibernating = False
        self.rates: list[float] = []
        self.last_label: np.ndarray | None = None

    def first_update_s(self) -> float:
        return self.sim.adapt.first_update_s

    def sample_rate_fps(self, state: RunState) -> float:
        return self.rate_fps

    def wants_sample(self, state: RunState, index: int, t_s: float) -> bool:
        # r is in samples per second everywhere (the original mixed it with a fraction of frames)
        if t_s + _EPS < state.next_sample_s:
            return False
        state.next_sample_s += 1.0 / self.rate_fps
        return True

    def update(self, state: RunState, t_s: float) -> dict:
        changes = self.sim.take_policy_changes()
        # A new r, or ASR switched off, restarts from the policy's r (ASR had moved it);
        # likewise the interval when ATR is switched off.
        if "sample_rate_fps" in changes or changes.get("asr") is False:
            self.rate_fps = self.sim.adapt.sample_rate_fps
        if "update_interval_s" in changes or changes.get("atr") is False:
            self.interval_s, self.hibernating = self.sim.adapt.update_interval_s, False
        # With an H.264 uplink the interval's samples go up as one stream now, and the server
        # trains once it has arrived (t_train_s); its training time itself is not simulated.
        t_train = self.sim.flush_outbox(state, t_s, rate_fps=self.rate_fps)
        ready = self._ready(state, t_s, t_train)
        row = self._row(state, t_s, ready, changes)
        row.update(self._adapt_rates(ready))
        state.next_update_s = t_s + self.interval_s
        row.update(update_interval_s=self.interval_s, t_train_s=t_train)  # interval to the next update
        if not ready:
            row.update(t_arrival_s=math.nan, sent=False)
            return row
        row.update(self._train_and_send(state, t_train, ready, row["strategy"], row["fraction"]))
        return row

    def _ready(self, state: RunState, t_s: float, arrived_by_s: float) -> list[Sample]:
        """Samples of the last `horizon_s` before `t_s` that have arrived by `arrived_by_s`
        (older ones are dropped)."""
        state.buffer = [s for s in state.buffer if s.t_s >= t_s - self.sim.adapt.horizon_s]
        return [s for s in state.buffer if s.arrival_s <= arrived_by_s + _EPS]

    def _row(self, state: RunState, t_s: float, ready: list[Sample], changes: dict) -> dict:
        adapt = self.sim.adapt
        row = {"update": state.updates + 1, "t_update_s": t_s, "num_samples": len(ready),
               "policy_changes": ", ".join(f"{k}={v}" for k, v in changes.items())}
        row.update({k: getattr(adapt, k) for k in ("strategy", "fraction", "iterations", "batch_size",
                                                   "lr", "update_interval_s", "horizon_s",
                                                   "reset_to_pretrained")})
        return row

    def _adapt_rates(self, ready: list[Sample]) -> dict:
        """ASR and ATR on the samples received since the last update (SPEC.md, "ASR/ATR")."""
        new = sorted((s for s in ready if not s.seen), key=lambda s: s.t_s)
        for s in new:
            s.seen = True
        adapt = self.sim.adapt
        phi = math.nan
        if new:
            phi = label_similarity(np.stack([s.label for s in new]), previous=self.last_label,
                                   class_ids=self.sim.video.class_ids)
            self.last_label = new[-1].label
        if adapt.asr:
            self.rate_fps = asr_rate(self.rate_fps, phi, min_fps=adapt.asr_min_fps, max_fps=adapt.asr_max_fps)
            self.rates.append(self.rate_fps)
        if adapt.atr:
            self.interval_s, self.hibernating = atr_interval(
                self.interval_s, self.hibernating, self.rates, tau_s=adapt.update_interval_s)
        # r and the interval from now on: what ASR/ATR chose (or the policy's values)
        return {"num_new_samples": len(new), "phi": phi, "sample_rate_fps": self.rate_fps,
                "hibernating": self.hibernating}

    def _train_and_send(self, state: RunState, t_s: float, samples: list[Sample],
                        strategy: str, fraction: float) -> dict:
        adapt = self.sim.adapt
        base = self.sim.pretrained if adapt.reset_to_pretrained else state.server_weights
        tic = time.perf_counter()
        result = self.sim.trainer.update(
            np.stack([s.frame for s in samples]), np.stack([s.label for s in samples]),
            base=base, strategy=strategy, fraction=fraction, iterations=adapt.iterations,
            batch_size=adapt.batch_size, lr=adapt.lr, rng=state.rng)
        train_wall_s = time.perf_counter() - tic
        ledger = self.sim.send_model(state, t_s, result.values, result.mask, base)
        return {**ledger, "loss_first": result.losses[0], "loss_last": result.losses[-1],
                "train_wall_s": train_wall_s}


class OneTimeScheme(AmsScheme):
    """One-Time customization: sample the first `one_time_s` seconds, fine-tune the whole
    model once on all of them (strategy full), send it, then freeze. No ASR/ATR."""

    def first_update_s(self) -> float:
        return self.sim.adapt.one_time_s

    def wants_sample(self, state: RunState, index: int, t_s: float) -> bool:
        return t_s < self.sim.adapt.one_time_s and super().wants_sample(state, index, t_s)

    def update(self, state: RunState, t_s: float) -> dict:
        changes = self.sim.take_policy_changes()
        t_train = self.sim.flush_outbox(state, t_s, rate_fps=self.rate_fps)
        ready = [s for s in state.buffer if s.arrival_s <= t_train + _EPS]  # all of them: no horizon
        row = self._row(state, t_s, ready, changes)
        row.update(strategy="full", fraction=1.0, sample_rate_fps=self.rate_fps, num_new_samples=len(ready),
                   phi=math.nan, hibernating=False, t_train_s=t_train)
        state.next_update_s = math.inf
        if not ready:
            row.update(t_arrival_s=math.nan, sent=False)
            return row
        row.update(self._train_and_send(state, t_train, ready, "full", 1.0))
        return row


def make_scheme(sim: Simulation) -> Scheme:
    """The scheme object for `sim.config.scheme`, fresh for one run."""
    from amslib.baselines import JitScheme, RemoteTrackingScheme

    kinds = {"none": Scheme, "one_time": OneTimeScheme, "ams": AmsScheme, "jit": JitScheme,
             "remote_tracking": RemoteTrackingScheme}
    return kinds[sim.config.scheme](sim)
