"""The simulation: edge, link and server on one simulated clock (SPEC.md).

The edge runs its model on every frame and sends sampled frames up. The server keeps the
samples that have *arrived*, and at update times trains a student copy and sends what
changed down; the edge patches its model when the update *arrives* (after the link's
latency and transmission time, amslib/sim/link.py). Between arrivals the edge model is fixed, so
frames are run in batches up to the next event.

What the edge samples, when the server updates and what it sends is the *scheme*'s, looked
up by name in `amslib.core.registry.SCHEMES` (one module per family under
amslib/sim/schemes/). Every scheme drives the same clock, link and result tables.

`Simulation.run()` is a generator of events (`FramesEvent`, `UpdateEvent`) so a progress bar,
a notebook plot and a CLI can all follow a run live; `set_policy()` changes the policy while
it runs, taking effect at the next update.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from amslib.core.clock import TIME_EPS_S, frame_at, frames_until
from amslib.core.config import AdaptConfig, ConfigError, RunConfig
from amslib.core.metrics import consecutive_miou, flip_rates, frame_counts
from amslib.core.registry import ENCODERS, SCHEMES
from amslib.data.video import SyntheticVideo, Video, VideoError, open_video_for
from amslib.models.student import Predictor, StudentSpec, flat_weights, load_student, set_flat_weights
from amslib.models.teachers import OracleTeacher, Teacher
from amslib.sim.codec import decode_update, encode_all, h264_segment, png_bytes
from amslib.sim.link import Link, make_link
from amslib.sim.schemes.base import Scheme
from amslib.sim.server import Job, Server, ServerTimes, measure_server, server_times
from amslib.sim.state import FramesEvent, LinksEvent, Pending, RunState, Sample, UpdateEvent
from amslib.sim.training import Trainer


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
    pretrained_state: list | None = None  # every weight of the edge copy, BatchNorm statistics too
    tent: object | None = None  # the edge copy's traced Tent step, made by the first tent run

    @staticmethod
    def key_for(config: RunConfig, video: Video) -> tuple:
        return (config.student, video.label_set.name, video.height, video.width, video.class_ids,
                config.width_multiplier, config.output_stride, config.head_channels, config.edge_batch,
                config.adapt.class_weighting)  # the trainer's loss is traced with it

    @classmethod
    def load(cls, config: RunConfig, video: Video) -> "Students":
        spec = StudentSpec(num_classes=video.label_set.num_classes, height=video.height,
                           width=video.width, width_multiplier=config.width_multiplier,
                           output_stride=config.output_stride, head_channels=config.head_channels)
        edge = load_student(spec, config.student)
        server = load_student(spec, config.student)
        return cls(key=cls.key_for(config, video),
                   predictor=Predictor(edge, batch_size=config.edge_batch),
                   trainer=Trainer(server, class_ids=video.class_ids, lr=config.adapt.lr,
                                   class_weighting=config.adapt.class_weighting),
                   pretrained=flat_weights(edge),
                   server_predictor=Predictor(server, batch_size=config.edge_batch),
                   pretrained_state=edge.get_weights())



@dataclass
class Simulation:
    """One run of one scheme on one video. Build with `Simulation.create(config)`."""

    config: RunConfig
    video: Video
    teacher: Teacher
    adapt: AdaptConfig
    students: Students
    times: ServerTimes = field(default_factory=ServerTimes)  # what the server's work costs
    device: int = 0  # this edge device's number in a fleet (amslib/sim/fleet.py)
    server: Server | None = None  # shared by a fleet; None: the run makes its own
    pending_policy: dict = field(default_factory=dict)  # asked for, applied at the next update
    frames_read: int | None = None  # set when the video ended before the frames it promised
    _policy_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # wall seconds this run spent per kind of work (video, teacher, edge_inference,
    # server_training, encoding): the benchmark's breakdown of where a run's time goes
    wall_s: dict = field(default_factory=dict, repr=False, compare=False)
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
        _check_video(config, video)
        if students is None or students.key != Students.key_for(config, video):
            students = Students.load(config, video)
        times = server_times(config, measure=lambda: measure_server_times(config, video, teacher, students))
        return cls(config=config, video=video, teacher=teacher, adapt=config.adapt, students=students, times=times)

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
        with self._policy_lock:  # a panel calls this from the kernel while the run's thread reads
            policy = replace(self.adapt, **{**self.pending_policy, **changes})  # raises ConfigError if invalid
            replace(self.config, adapt=policy)  # and the run's own checks (sample_rate_fps <= fps)
            self.pending_policy.update(changes)

    def pending_changes(self) -> dict:
        """The policy changes asked for and not yet applied by an update."""
        with self._policy_lock:
            return dict(self.pending_policy)

    def take_policy_changes(self) -> dict:
        """Apply the pending policy changes (a scheme calls this at each update)."""
        with self._policy_lock:
            changes = dict(self.pending_policy)
            self.pending_policy.clear()
        if changes:
            self.adapt = replace(self.adapt, **changes)
        return changes

    @contextmanager
    def timed(self, kind: str):
        """Add the wall time of the block to `wall_s[kind]`."""
        tic = time.perf_counter()
        try:
            yield
        finally:
            self.wall_s[kind] = self.wall_s.get(kind, 0.0) + time.perf_counter() - tic

    def stop(self) -> None:
        """Ask a running `run()` to end after the current batch of frames."""
        self.stopped = True

    # -- the clock ---------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        limit = self.config.max_seconds
        n = self.video.num_frames
        return n if limit is None else min(n, frames_until(limit, self.video.fps))

    def frame_at(self, t_s: float) -> int:
        """First frame index whose time is >= t_s (`clock.NEVER` for 'never')."""
        return frame_at(t_s, self.video.fps)

    def run(self) -> Iterator[FramesEvent | UpdateEvent | LinksEvent]:
        """Simulate the whole video (or `max_seconds`), yielding events as they happen; the
        last event is the links' log (`LinksEvent`)."""
        self.begin()
        while not self.done and not self.stopped:
            yield from self.serve()  # before the frames: a policy changed on seeing a row applies next
            yield from self.advance()
        yield from self.finish()

    def begin(self, *, server: Server | None = None) -> None:
        """Set up a run: fresh links and state, the scheme, the pretrained edge model. A fleet
        passes the `server` its devices share (and then dispatches it itself)."""
        uplink, downlink = _links(self.config)
        self.state = state = RunState(uplink=uplink, downlink=downlink, rng=np.random.default_rng(self.config.seed))
        self.owns_server = server is None
        self.server = server or Server(gpus=self.config.server.gpus, scheduler=self.config.server.scheduler)
        self.scheme = scheme = SCHEMES.load(self.config.scheme)(self)
        state.next_update_s = scheme.first_update_s()
        if self.students.pretrained_state is not None:  # every weight: edge schemes move BatchNorm's statistics
            self.edge_predictor.model.set_weights(self.students.pretrained_state)
        else:
            set_flat_weights(self.edge_predictor.model, self.pretrained)
        self.trainer.reset_optimizer(lr=self.adapt.lr)  # a run never inherits another run's Adam state
        state.edge_weights = state.server_weights = self.pretrained
        scheme.start(state)
        self.i = 0
        self.done = self.num_frames == 0

    @property
    def now_s(self) -> float:
        """The time of the next frame to run."""
        return self.i / self.video.fps

    def serve(self) -> list:
        """The server's work that can start by now (a run's own server; a fleet dispatches its
        shared one itself), and the rows it wrote."""
        if self.owns_server:
            self.server.dispatch(self.now_s)
        return self._rows(self.state)

    def advance(self, until_s: float = math.inf) -> list:
        """One step of the run: the frames up to the next event (stopping before `until_s`),
        then the updates due. Returns its events; sets `done` after the last frame.

        `until_s`: when the shared server can next start a job (a fleet). Updates due at or
        after it, within the last frame, wait until the fleet has dispatched that job, and run
        first in the next step: work that could start is taken before a newer update withdraws
        it (each update is within a frame of its time either way)."""
        state, scheme, i, n = self.state, self.scheme, self.i, self.num_frames
        events: list = self._rows(state)
        self._run_due_updates(state, scheme, until_s)  # those deferred by the last step
        events += self._rows(state)
        self._apply_arrivals(state, scheme, i / self.video.fps)
        stop = self._next_boundary(state, scheme, i, n)
        if until_s < math.inf:
            stop = max(i + 1, min(stop, self.frame_at(until_s)))
        event = self._run_frames(state, scheme, i, stop)
        if event.rows:
            events.append(event)
        if len(event.rows) < stop - i:  # a file shorter than its header said: the run ends here
            self.frames_read = i + len(event.rows)
            self.done = True
            return events
        self.i = i = stop
        self._run_due_updates(state, scheme, until_s)
        events += self._rows(state)
        self.done = i >= n or self.stopped
        return events

    def _run_due_updates(self, state: RunState, scheme: Scheme, until_s: float) -> None:
        """The updates due by the current frame (and before `until_s`); a run's own server first
        starts the work that can start by each update's time."""
        while (self.i < self.num_frames and self.i >= self.frame_at(state.next_update_s)
               and state.next_update_s < until_s - TIME_EPS_S):
            if self.owns_server:
                self.server.dispatch(state.next_update_s)
            row = scheme.update(state, state.next_update_s)
            if row is not None:
                state.ledger.append(row)

    def finish(self) -> list:
        """After the last frame: the server finishes the work it was given (its rows say when
        that would have arrived), then the links' log."""
        if self.owns_server:
            self.server.dispatch(math.inf)
        self.scheme.finish(self.state)
        return [*self._rows(self.state), LinksEvent(self.link_rows())]

    def _rows(self, state: RunState) -> list[UpdateEvent]:
        rows, state.ledger = state.ledger, []
        for row in rows:  # a later update may withdraw it from the downlink queue (`_supersede`)
            if row.get("sent") and "version" in row:
                state.sent_rows[row["version"]] = row
        return [UpdateEvent(row) for row in rows]

    def submit(self, job: Job) -> Job:
        """Hand server work to the server, as this device's."""
        job.device = self.device
        return self.server.submit(job)

    def link_rows(self) -> list[dict]:
        """Every hand-over to either link: offered, started, arrived, bits; cancelled or dropped."""
        return [{"direction": direction, "t_offered_s": x.t_offered_s, "t_start_s": x.t_start_s,
                 "t_arrival_s": x.t_arrival_s, "queue_s": x.queue_s, "bits": x.bits,
                 "cancelled": x.cancelled, "dropped": x.dropped}
                for direction, link in (("up", self.state.uplink), ("down", self.state.downlink))
                for x in link.transfers]

    def _next_boundary(self, state: RunState, scheme: Scheme, i: int, n: int) -> int:
        candidates = [n, i + self.config.edge_batch, self.frame_at(state.next_update_s),
                      scheme.next_key_frame(state) + 1, self.frame_at(self.server.next_start_s())]
        candidates += [self.frame_at(p.arrival_s) for p in state.pending]
        return max(i + 1, min(c for c in candidates if c > i))

    def _apply_arrivals(self, state: RunState, scheme: Scheme, t_s: float) -> None:
        arrived = [p for p in state.pending if p.arrival_s <= t_s + TIME_EPS_S]
        for p in sorted(arrived, key=lambda p: p.version):
            scheme.on_arrival(state, p)
            state.version = max(state.version, p.version)  # a late label never rolls the version back
        state.pending = [p for p in state.pending if p.arrival_s > t_s + TIME_EPS_S]

    # -- the edge ----------------------------------------------------------------------
    def _run_frames(self, state: RunState, scheme: Scheme, start: int, stop: int) -> FramesEvent:
        with self.timed("video"):
            frames = self.video.frames(start, stop)
        stop = start + len(frames)
        if not len(frames):
            return FramesEvent(start=start, rows=[], counts=np.zeros((0, len(self.video.class_ids), 3), np.int64),
                               predictions=np.zeros((0, self.video.height, self.video.width), np.uint8))
        with self.timed("teacher"):
            truth = self.teacher.labels(self.video, start, stop, frames=frames)
        with self.timed("edge_inference"):
            pred = scheme.predict(state, start, frames)
        counts = frame_counts(truth, pred, class_ids=self.video.class_ids)
        temporal = self._temporal(state, truth, pred)
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
            rows.append({"frame": index, "t_s": t_s, "model_version": state.version, "uplink_bits": bits,
                         "model_age_s": scheme.model_age_s(state, t_s),
                         **{k: float(v[offset]) for k, v in temporal.items()}})
        # edge compute booked on the batch's first frame (a scheme's own training on the edge)
        rows[0].update(edge_train_frames=state.edge_train_frames, edge_forward_frames=state.edge_forward_frames,
                       edge_shared_frames=state.edge_shared_frames)
        state.edge_train_frames = state.edge_forward_frames = state.edge_shared_frames = 0
        return FramesEvent(start=start, rows=rows, counts=counts, predictions=pred, frames=frames, labels=truth)

    def _temporal(self, state: RunState, truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
        """Per frame: how many pixels the edge's prediction and the teacher's label flip from
        the frame before (flicker), and the teacher's label against its label one second
        before (`label_miou_1s`, the scene-change signal of notebook 01)."""
        previous_truth = state.last_truths[-1] if state.last_truths else None
        out = {"pred_flip": flip_rates(pred, previous=state.last_pred),
               "teacher_flip": flip_rates(truth, previous=previous_truth)}
        lag = max(1, round(self.video.fps))
        history = state.last_truths + list(truth)
        first = len(state.last_truths)  # index of this batch's first frame in `history`
        # pair by pair: one 2-frame confusion matrix each measured 2x faster than one call on
        # the whole batch (6.4 vs 12.4 ms for 32 frames at 128x256)
        out["label_miou_1s"] = np.array([
            consecutive_miou(np.stack([history[k - lag], history[k]]), class_ids=self.video.class_ids)[0]
            if k >= lag else np.nan for k in range(first, len(history))])
        state.last_pred, state.last_truths = pred[-1], history[-lag:]
        return out

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
        bound = self.config.link.uplink_queue_s
        if bound is not None and state.uplink.backlog_s(t_s) > bound + TIME_EPS_S:
            state.uplink.drop(t_s, bits)  # the queue is full: these samples never leave the edge
            state.dropped_samples += len(samples)
            return 0
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
        if not self.teacher.labels_pixels:
            return [s.label for s in samples]
        return list(self.teacher.label(decoded))

    # -- the server's downlink -----------------------------------------------------------
    def send_model(self, state: RunState, t_s: float, values: np.ndarray, mask: np.ndarray | None,
                   base: np.ndarray, *, captured_s: float) -> dict:
        """Encode new weights with every encoder (for the ledger), send the configured one
        down, and queue the decoded weights for the edge. Returns the ledger columns."""
        chosen = self.config.link.update_encoder
        superseded = self._supersede(state, t_s)
        if superseded and mask is not None:
            # the edge will hold what it had before the withdrawn updates: send their changes too
            held = self._held_weights(state)
            mask, base = mask | (held != base), held
        with self.timed("encoding"):
            encoded = encode_all(values, mask, base=base,
                                 encoders=ENCODERS.names if self.config.link.ledger_all_encoders else (chosen,))
            sent = encoded[chosen]
            sizes = {f"bytes_{name}": e.compressed_bytes for name, e in encoded.items()}
            weights = decode_update(sent, base)  # what the edge will hold
        state.server_weights = weights  # the server continues from what the edge has
        state.updates += 1
        arrival = state.downlink.send(t_s, sent.bits, tag=state.updates)
        state.pending.append(Pending(arrival, state.updates, weights=weights, captured_s=captured_s))
        return {"sent": True, "version": state.updates, "t_arrival_s": arrival, "encoder": chosen,
                "num_params": sent.num_params,
                "supersedes": ",".join(map(str, superseded)),
                "num_sent": sent.num_sent, "mask_bytes": sent.mask_bytes, "value_bytes": sent.value_bytes,
                "compressed_bytes": sent.compressed_bytes, "downlink_bits": sent.bits, **sizes}


    def _supersede(self, state: RunState, t_s: float) -> list[int]:
        """With `supersede_queued`, withdraw the updates still waiting in the downlink queue at
        `t_s` (a newer one replaces them); returns their version numbers."""
        if not self.config.link.supersede_queued:
            return []
        versions = [v for v in state.downlink.cancel_queued(t_s) if v is not None]
        state.pending = [p for p in state.pending if p.version not in versions or p.weights is None]
        state.superseded += len(versions)
        withdraw_rows([*state.sent_rows.values(), *state.ledger], versions)
        return versions

    def _held_weights(self, state: RunState) -> np.ndarray:
        """The weights the edge will hold once what is still on its way down has arrived."""
        queued = [p for p in state.pending if p.weights is not None]
        return max(queued, key=lambda p: p.version).weights if queued else state.edge_weights


def withdraw_rows(rows: list[dict], versions: list[int]) -> None:
    """Book the ledger rows of `versions` as never sent: withdrawn from the downlink queue before
    their first bit left, they never reach the edge. Their bits are kept as `offered_bits`."""
    gone = set(versions)
    for row in rows:
        if row.get("version") in gone and row.get("sent"):
            sizes = {k: 0 for k in row if k.startswith("bytes_")}
            row.update(sent=False, withdrawn_from_downlink=True, offered_bits=row.get("downlink_bits"),
                       downlink_bits=0, compressed_bytes=0, t_arrival_s=math.nan, staleness_s=math.nan, **sizes)


def measure_server_times(config: RunConfig, video: Video, teacher: Teacher, students: Students) -> ServerTimes:
    """Time this machine's training step and teacher on the run's first frames."""
    from amslib.models.teachers import read_labelled  # deferred: only a measurement reads frames here

    count = min(config.adapt.batch_size, video.num_frames)
    frames, labels = read_labelled(video, teacher, np.arange(count))
    return measure_server(students.trainer, teacher, frames, labels, batch=config.adapt.batch_size,
                          num_classes=video.label_set.num_classes)


def _links(config: RunConfig) -> tuple[Link, Link]:
    link = config.link
    return (make_link(link.uplink_kbps, link.uplink_trace, link.latency_s),
            make_link(link.downlink_kbps, link.downlink_trace, link.latency_s))


def _check_video(config: RunConfig, video: Video) -> None:
    """The video must be the one the config describes (a video built by hand may not be),
    and the run must hold at least one frame, before anything runs or is written."""
    if abs(video.fps - config.fps) > 1e-9 or video.height != config.height:
        raise ConfigError(f"the video is {video.height} px high at {video.fps:g} fps but the config says "
                          f"{config.height} px at {config.fps:g} fps; open it with open_video_for(config), or "
                          "set height and fps to the video's")
    if video.num_frames == 0:
        raise VideoError(f"video {video.key} has no frames")
    if config.max_seconds is not None and frames_until(config.max_seconds, video.fps) == 0:
        raise ConfigError(f"max_seconds={config.max_seconds:g} holds no frame at {video.fps:g} fps; give at "
                          f"least {1 / video.fps:g} s")
