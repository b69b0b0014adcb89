"""Key-frame schemes: the paper's remote baselines behind the scheme interface (SPEC.md, "Baselines").

Both send *key frames* up, every `stride` frames, and the server answers each key frame when
it arrives:

- `jit` — Just-In-Time (Mullapudi et al., ICCV 2019, "Online Model Distillation"), run
  remotely as in the AMS paper. The server labels the key frame with the teacher and
  measures its student copy's mIoU on it; below `jit_threshold` it trains on that frame,
  one Adam step at a time, until it passes or `jit_u_max` steps are spent, and then sends
  the whole model down. Stride rule (ours, following Mullapudi et al.'s Algorithm 1): a key
  frame that passes (before or after its steps) doubles the stride, one that still fails
  halves it, within [jit_min_stride, jit_max_stride]. The server's Adam state persists
  across key frames (one continuous online fine-tune).
- `remote_tracking` — remote inference + tracking: the server runs the teacher on the key
  frame and sends its label back (an 8-bit PNG); the edge carries the newest label forward,
  frame to frame, with dense optical flow (OpenCV's Farneback). Until the first label
  arrives, the edge shows the pretrained student's output.

The stride decision reaches the edge when the server is done with the key frame (a few
bytes; its latency is ignored). A key frame still waiting for the server when a newer one
arrives is dropped: the server works on the newest (with the server's time on, a queue of
stale key frames would otherwise grow without bound).
"""
from __future__ import annotations

import math

import numpy as np

from amslib.core.clock import TIME_EPS_S
from amslib.core.metrics import frame_counts, miou_per_frame
from amslib.models.student import flat_weights, set_flat_weights
from amslib.sim.codec import label_png_bytes
from amslib.sim.schemes.base import Scheme, server_columns
from amslib.sim.server import Job
from amslib.sim.state import Pending, RunState, Sample


def jit_stride(stride: int, passed: bool, *, min_stride: int, max_stride: int) -> int:
    """Just-In-Time's next stride: double after a key frame that passes, halve after one
    that fails, kept in [min_stride, max_stride]."""
    return min(max_stride, stride * 2) if passed else max(min_stride, stride // 2)


def warp_label(label: np.ndarray, previous: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Carry a label (H, W) uint8 of frame `previous` (H, W, 3) uint8 onto `frame`: dense
    Farneback flow from `frame` back to `previous`, then nearest-neighbour sampling of the
    label there (pixels whose source lies outside take the nearest border label)."""
    import cv2  # deferred: only remote tracking needs OpenCV, and it is slow to import

    prev_gray = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    # OpenCV's documented defaults: pyramid 0.5 x 3 levels, 15 px window, 3 iterations
    flow = cv2.calcOpticalFlowFarneback(gray, prev_gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = label.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(label, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_REPLICATE)


class KeyFrameScheme(Scheme):
    """Send every `stride`-th frame up on its own; handle one arrived key frame per update."""

    def start(self, state: RunState) -> None:
        self.stride = self.initial_stride()
        self.next_key = 0
        self.last_key = -1
        self.job: Job | None = None  # the last key frame handed to the server

    def initial_stride(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_rate_fps(self, state: RunState) -> float:
        return self.sim.video.fps / self.stride

    def wants_sample(self, state: RunState, index: int, t_s: float) -> bool:
        if index < self.next_key:
            return False
        self.next_key, self.last_key = index + self.stride, index
        return True

    def on_sent(self, state: RunState, sample: Sample) -> None:
        state.next_update_s = min(state.next_update_s, sample.arrival_s)

    def next_key_frame(self, state: RunState) -> int:
        return self.next_key

    def take_key(self, state: RunState, t_s: float) -> Sample:
        """The earliest key frame that has arrived by `t_s`; schedules the next update."""
        arrived = [s for s in state.buffer if s.arrival_s <= t_s + TIME_EPS_S]
        key = min(arrived, key=lambda s: (s.arrival_s, s.index))
        state.buffer.remove(key)
        state.next_update_s = min((s.arrival_s for s in state.buffer), default=math.inf)
        return key

    def set_stride(self, stride: int, key: Sample, t_s: float) -> None:
        """Adopt a new stride after `key`; the next key frame moves unless a later one has
        already been sent under the old stride."""
        self.stride = stride
        if key.index == self.last_key:
            self.next_key = max(key.index + stride, self.sim.frame_at(t_s))

    def submit(self, state: RunState, t_s: float, key: Sample, work) -> None:
        """Hand the key frame's work to the server (`work(start_s)` does it and returns its
        end); an older key frame still waiting is dropped, with an unsent row that says so."""
        if self.job is not None and self.sim.server.cancel(self.job):
            state.ledger.append({**self.job.row, "sent": False, "superseded_by_newer": True, "t_arrival_s": math.nan})
        row = {"update": state.updates + 1, "t_update_s": t_s, "key_frame": key.index, "num_samples": 1}
        self.job = self.sim.submit(Job(device=self.sim.device, kind="key_frame", t_request_s=t_s, ready_s=key.arrival_s,
                                       run=lambda start_s: (work(start_s), None), row=row))

    def key_row(self, state: RunState, t_s: float, key: Sample, changes: dict) -> dict:
        return {"update": state.updates + 1, "t_update_s": t_s, "key_frame": key.index,
                "num_samples": 1, "policy_changes": ", ".join(f"{k}={v}" for k, v in changes.items())}


class JitScheme(KeyFrameScheme):
    """Just-In-Time, remotely: see the module docstring."""

    def initial_stride(self) -> int:
        return self.sim.config.baseline.jit_min_stride

    def start(self, state: RunState) -> None:
        super().start(state)
        trainer = self.sim.trainer
        set_flat_weights(trainer.model, state.server_weights)
        trainer.reset_optimizer(lr=self.sim.adapt.lr)
        trainer.unmask()

    def _accuracy(self, key: Sample) -> float:
        """The server copy's mIoU on the key frame, in [0, 1] (1 if no pixel counts)."""
        pred = self.sim.students.server_predictor(key.frame[None])
        value = miou_per_frame(frame_counts(key.label[None], pred, class_ids=self.sim.video.class_ids))[0]
        return 1.0 if math.isnan(value) else float(value)

    def update(self, state: RunState, t_s: float) -> None:
        changes = self.sim.take_policy_changes()
        key = self.take_key(state, t_s)
        self.submit(state, t_s, key, lambda start_s: self._train_on_key(state, t_s, key, changes, start_s))

    def _train_on_key(self, state: RunState, t_s: float, key: Sample, changes: dict, start_s: float) -> float:
        """The server's work on one key frame from `start_s`: label it, train until it passes,
        send the model when done. Returns when the server is done."""
        trainer, base, times = self.sim.trainer, self.sim.config.baseline, self.sim.times
        if "lr" in changes:
            trainer.optimizer.learning_rate.assign(self.sim.adapt.lr)
        set_flat_weights(trainer.model, state.server_weights)  # a fleet's server copy served another device
        before = after = self._accuracy(key)
        losses = []
        while after < base.jit_threshold and len(losses) < base.jit_u_max:
            losses.append(trainer.step_on(key.frame[None], key.label[None]))
            after = self._accuracy(key)
        end_s = start_s + times.teacher_s(1) + times.train_s(len(losses), 1)
        self.set_stride(jit_stride(self.stride, after >= base.jit_threshold, min_stride=base.jit_min_stride,
                                   max_stride=base.jit_max_stride), key, end_s)
        row = self.key_row(state, t_s, key, changes)
        row.update(strategy="full", fraction=1.0, lr=self.sim.adapt.lr, accuracy_before=before,
                   accuracy_after=after, train_steps=len(losses), stride=self.stride,
                   sample_rate_fps=self.sample_rate_fps(state))
        if not losses:
            row.update(sent=False, t_arrival_s=math.nan)
        else:
            row.update(self.sim.send_model(state, end_s, flat_weights(trainer.model), None, state.server_weights,
                                           captured_s=key.t_s))
            set_flat_weights(trainer.model, state.server_weights)  # continue from what the edge will hold
            row.update(loss_first=losses[0], loss_last=losses[-1])
        state.ledger.append(server_columns(row, t_s, key.arrival_s, start_s, end_s, captured_s=key.t_s,
                                           fps=self.sim.video.fps))
        return end_s


class RemoteTrackingScheme(KeyFrameScheme):
    """Remote inference + optical-flow tracking: see the module docstring."""

    has_model = False  # it shows tracked labels: no forgetting to measure

    def initial_stride(self) -> int:
        return self.sim.config.baseline.tracking_stride

    def start(self, state: RunState) -> None:
        super().start(state)
        self.label: np.ndarray | None = None  # the newest label, carried to `self.frame`
        self.frame: np.ndarray | None = None

    def predict(self, state: RunState, start: int, frames: np.ndarray) -> np.ndarray:
        out = np.empty(frames.shape[:3], np.uint8)
        student = None
        for k, frame in enumerate(frames):
            if self.label is None:
                student = self.sim.edge_predictor(frames) if student is None else student
                out[k] = student[k]
                continue
            self.label, self.frame = warp_label(self.label, self.frame, frame), frame
            out[k] = self.label
        return out

    def on_arrival(self, state: RunState, pending: Pending) -> None:
        self.label, self.frame = pending.label, pending.frame
        state.model_data_s = max(state.model_data_s, pending.captured_s)  # the label tracked from now on

    def update(self, state: RunState, t_s: float) -> None:
        changes = self.sim.take_policy_changes()
        key = self.take_key(state, t_s)
        self.submit(state, t_s, key, lambda start_s: self._label_key(state, t_s, key, changes, start_s))

    def _label_key(self, state: RunState, t_s: float, key: Sample, changes: dict, start_s: float) -> float:
        """The server labels the key frame from `start_s` and sends the label when done."""
        end_s = start_s + self.sim.times.teacher_s(1)
        label_bytes = label_png_bytes(key.label)
        arrival = state.downlink.send(end_s, 8 * label_bytes)
        state.updates += 1
        # the edge tracks from the frame it kept, not from the server's decoded copy
        state.pending.append(Pending(arrival, state.updates, label=key.label, frame=key.edge_frame, captured_s=key.t_s))
        row = self.key_row(state, t_s, key, changes)
        row.update(sent=True, t_arrival_s=arrival, stride=self.stride, sample_rate_fps=self.sample_rate_fps(state),
                   fraction=math.nan,  # no model parameters are sent
                   encoder="label_png", compressed_bytes=label_bytes, downlink_bits=8 * label_bytes)
        state.ledger.append(server_columns(row, t_s, key.arrival_s, start_s, end_s, captured_s=key.t_s,
                                           fps=self.sim.video.fps))
        return end_s
