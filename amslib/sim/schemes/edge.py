"""Adaptation on the edge alone: no server, no network (0 Kbps either way).

- `bn_adapt`: every `update_interval_s` (from `first_update_s`), the edge re-estimates its
  student's BatchNorm statistics on its own last `bn_frames` frames (forward passes only; the
  weights stay as pretrained). A shift of colour and light moves the statistics first.
- `edge_train` (see `EdgeTrainScheme`): labels from the server, training on the edge.
- `tent` (Wang et al., ICLR 2021, "Tent: Fully Test-Time Adaptation by Entropy Minimization"):
  on every frame it shows, the edge takes one Adam step that lowers the mean entropy of its own
  per-pixel predictions, changing only BatchNorm's scale and shift, with BatchNorm normalising
  by that frame's own statistics (over its pixels); its prediction of the frame is the one from
  that forward pass (Tent's online setting). One frame at a time, so a frame is normalised with
  the past only: Tent's paper adapts on whole test batches, which on a live stream means
  waiting for the batch's later frames (an earlier version stepped once per `edge_batch` of 32
  frames, so frame j used the statistics of frames after it, and `edge_batch` changed Tent's
  numbers).

Both account their compute on the edge (frames through a training step, extra forward
passes): the summary's `edge_compute_s_per_s` under the `edge` profile (`EdgeConfig`). Tent's
step is its prediction too: its forward pass is the inference the edge makes anyway, so each
frame costs (train_factor - 1) forward passes more than showing it.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from amslib.core.clock import TIME_EPS_S
from amslib.core.tf import keras, quiet_function, tf
from amslib.models.pretrain import recalibrate_batchnorm
from amslib.models.student import set_flat_weights
from amslib.sim.codec import label_png_bytes
from amslib.sim.schemes.ams import AmsScheme
from amslib.sim.schemes.base import Scheme, server_columns, staleness_columns
from amslib.sim.server import Job
from amslib.sim.state import Pending, RunState, Sample


def batchnorm_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


class BnAdaptScheme(Scheme):
    """BatchNorm statistics re-estimated on the edge's recent frames (see the module docstring)."""

    def start(self, state: RunState) -> None:
        self.recent: list[np.ndarray] = []

    def first_update_s(self) -> float:
        return self.sim.adapt.first_update_s

    def predict(self, state: RunState, start: int, frames: np.ndarray) -> np.ndarray:
        pred = self.sim.edge_predictor(frames)
        self.recent = (self.recent + list(frames))[-self.sim.config.edge.bn_frames:]
        self.newest_s = (start + len(frames) - 1) / self.sim.video.fps
        return pred

    def update(self, state: RunState, t_s: float) -> dict:
        edge = self.sim.config.edge
        frames = np.stack(self.recent) if self.recent else None
        if frames is not None:
            recalibrate_batchnorm(self.sim.edge_predictor.model, frames, momentum=edge.bn_momentum,
                                  max_frames=edge.bn_frames)
            state.model_data_s = self.newest_s  # its statistics come from frames up to this one
            state.edge_forward_frames += len(frames)
        state.next_update_s = t_s + self.sim.adapt.update_interval_s
        return {"update": state.updates + 1, "t_update_s": t_s, "num_samples": 0 if frames is None else len(frames),
                "sent": False, "t_arrival_s": np.nan, "downlink_bits": 0, "edge_forward_frames": 0 if frames is None
                else len(frames)}


class TentStep:
    """One Tent step on a model: BatchNorm in batch-statistics mode, entropy of the softmax
    over classes averaged over pixels, Adam on BatchNorm's gamma and beta only. Traced once
    per model; `reset(lr)` gives a run a fresh optimizer."""

    def __init__(self, model: keras.Model, *, lr: float) -> None:
        self.model = model
        norms = batchnorm_layers(model)
        self.variables = [v for layer in norms for v in (layer.gamma, layer.beta)]
        self.optimizer = keras.optimizers.Adam(learning_rate=lr)
        self.optimizer.build(self.variables)
        shape = (None, *model.input_shape[1:])
        self._step = quiet_function(self._train, input_signature=[tf.TensorSpec(shape, tf.uint8)], autograph=False)

    def reset(self, *, lr: float) -> None:
        for v in self.optimizer.variables:
            v.assign(tf.zeros_like(v))
        self.optimizer.learning_rate.assign(lr)

    def entropy(self, logits):
        """Mean over pixels of -sum_c p log p (nats)."""
        log_p = tf.nn.log_softmax(logits, axis=-1)
        return tf.reduce_mean(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1))

    def _train(self, frames):
        with tf.GradientTape() as tape:
            logits = self.model(tf.cast(frames, tf.float32), training=True)  # batch statistics
            loss = self.entropy(logits)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
        return tf.cast(tf.argmax(logits, axis=-1), tf.uint8), loss

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        pred, loss = self._step(frames)
        return pred.numpy(), float(loss)


class TentScheme(Scheme):
    """Tent on the edge: one entropy-minimising step per batch of frames (see the module docstring)."""

    def start(self, state: RunState) -> None:
        students = self.sim.students
        if students.tent is None or students.tent.model is not self.sim.edge_predictor.model:
            students.tent = TentStep(self.sim.edge_predictor.model, lr=self.sim.config.edge.tent_lr)
        students.tent.reset(lr=self.sim.config.edge.tent_lr)
        self.step = students.tent

    def predict(self, state: RunState, start: int, frames: np.ndarray) -> np.ndarray:
        pred = np.stack([self.step(frames[k:k + 1])[0][0] for k in range(len(frames))])  # causal: frame by frame
        state.edge_train_frames += len(frames)
        state.edge_shared_frames += len(frames)  # each step's forward pass is the frame's prediction
        return pred

    def model_age_s(self, state: RunState, t_s: float) -> float:
        return 0.0  # each frame is shown by the model its own step adapted

    def final_predict(self, frames: np.ndarray) -> np.ndarray:
        """As scored live: each frame normalised by its own statistics (no step taken)."""
        model = self.sim.edge_predictor.model
        return np.stack([tf.argmax(model(tf.cast(f[None], tf.float32), training=True), axis=-1).numpy()[0]
                         for f in frames]).astype(np.uint8)


class EdgeTrainScheme(AmsScheme):
    """On-device training on labels sent down (as Shoggoth, DAC 2023, does): the edge samples
    and sends frames up as AMS does; every `update_interval_s` the server labels the frames
    that came up since the last update with the teacher (a server job: its time on the clock
    as AMS's labelling is) and sends each label down (an 8-bit PNG, as remote tracking does);
    once an update's last label has arrived, the edge fine-tunes its own student (all
    parameters, `iterations` steps of `batch_size`) on the labelled frames of the last
    `horizon_s` seconds it holds. The uplink is AMS's; the downlink carries labels,
    never weights; the training is the edge's, booked as edge compute (`edge_compute_s_per_s`).

    When the new model runs is `EdgeConfig.edge_train_time`: "off" (the idealisation) at once,
    as the labels arrive; "profile" when the training ends, K * b * train_factor * inference_s
    later, the edge training one model at a time (a training whose labels came while the edge
    was busy starts when it is free; one still waiting when newer labels complete is replaced by
    the newer, which trains on every label held then)."""

    def start(self, state: RunState) -> None:
        super().start(state)
        self.held: list[Sample] = []  # labelled frames at the edge (the edge's copy of each frame)
        # per update whose labels are on their way, oldest first: [labels still to arrive, its
        # ledger row, its policy] (the downlink is one queue: an update's labels arrive in order)
        self.waiting: list[list] = []
        self.queued: tuple[dict, object] | None = None  # (row, policy) of a training waiting for the edge
        self.busy_until_s = -math.inf  # when the edge's current training ends ("profile")
        self.latest = state.edge_weights  # the edge's newest trained weights (live, or about to be)
        self.trained = 0  # the edge's model version: its own trainings

    def on_arrival(self, state: RunState, pending: Pending) -> None:
        """A label arrived: the edge keeps it with its own copy of the frame, and with an
        update's last label it trains (or queues the training). Also the edge's own events:
        a queued training's start, and a trained model going live ("profile")."""
        if pending.weights is not None:  # a training ended: its model runs from now on
            super().on_arrival(state, pending)
            return
        if pending.label is None:  # the edge is free: the queued training starts
            row, policy = self.queued
            self.queued = None
            self._train(state, pending.arrival_s, row, policy)
            return
        self.held.append(Sample(pending.arrival_s, -1, pending.frame, pending.label, arrival_s=pending.arrival_s))
        batch = self.waiting[0]
        batch[0] -= 1
        if batch[0] > 0:
            return
        _, row, policy = self.waiting.pop(0)
        t_s = pending.arrival_s
        if t_s >= self.busy_until_s - TIME_EPS_S:  # the edge is free (always, under "off")
            self._train(state, t_s, row, policy)
        elif self.queued is not None:  # still waiting for the edge: the newer labels replace it
            state.ledger.append({**self.queued[0], "superseded_by_newer": True, "staleness_s": math.nan})  # never ran
            self.queued = (row, policy)
        else:
            self.queued = (row, policy)
            state.pending.append(Pending(self.busy_until_s, state.version))  # the edge's wake-up

    def update(self, state: RunState, t_s: float) -> dict | None:
        changes = self.sim.take_policy_changes()
        policy = replace(self.sim.adapt, strategy="full", fraction=1.0)
        t_sent = self.sim.flush_outbox(state, t_s, rate_fps=self.rate_fps)
        new = [s for s in self._ready(state, t_s, t_sent) if not s.seen]
        state.next_update_s = t_s + policy.update_interval_s
        row = self._row(state, t_s, self.held, changes)
        row.update(strategy="full", fraction=1.0, sent=bool(new), num_labels_sent=len(new), encoder="label_png")
        if not new:  # nothing new came up: no label goes down, and the edge does not train
            row.update(downlink_bits=0, t_arrival_s=math.nan)
            return row
        for sample in new:
            sample.seen = True
        captured_s = max(s.t_s for s in new)  # the newest frame behind the training these labels start

        def run(start_s: float) -> tuple[float, None]:
            """The server's teacher labels the new samples from `start_s`, then sends each label."""
            unlabelled = [s for s in new if not s.labelled]
            for s in unlabelled:
                s.labelled = True
            end_s = start_s + self.sim.times.teacher_s(len(unlabelled))
            bits, last_arrival = 0, math.nan
            for sample in new:  # one PNG each
                label_bits = 8 * label_png_bytes(sample.label)
                last_arrival = state.downlink.send(end_s, label_bits)
                bits += label_bits
                # a label never changes the model the edge runs: it carries the running version
                state.pending.append(Pending(last_arrival, state.version, label=sample.label, frame=sample.edge_frame))
            row.update(downlink_bits=bits, t_arrival_s=last_arrival)
            # the server's part (t_train_s and the staleness: the edge's, when it has trained)
            server_columns(row, t_s, t_sent, start_s, end_s, captured_s=captured_s, fps=self.sim.video.fps)
            self.waiting.append([len(new), row, policy])
            return end_s, None

        self.sim.submit(Job(device=self.sim.device, kind="labels", t_request_s=t_s, ready_s=t_sent, run=run, row=row))
        return None

    def finish(self, state: RunState) -> None:
        """The run ended: updates whose labels had not all arrived, or whose training still
        waited for the edge, are logged untrained."""
        untrained = [row for _, row, _ in self.waiting] + ([self.queued[0]] if self.queued is not None else [])
        state.ledger.extend({**row, "staleness_s": math.nan} for row in untrained)  # their models never ran
        self.waiting, self.queued = [], None

    def _train(self, state: RunState, t_s: float, row: dict, policy) -> None:
        """K steps at `t_s` on the labelled frames the edge holds, from its newest model; the
        result runs at once ("off") or when the training ends ("profile")."""
        self.held = [s for s in self.held if s.t_s >= t_s - policy.horizon_s]  # s.t_s: when its label arrived
        result = self.sim.trainer.update(np.stack([s.frame for s in self.held]), np.stack([s.label for s in self.held]),
                                         base=self.latest, policy=policy, rng=state.rng)
        self.latest = state.server_weights = result.values
        self.trained += 1
        batch = min(policy.batch_size, len(self.held))
        trained_frames = policy.iterations * batch
        state.edge_train_frames += trained_frames  # booked on the next frame (the summary counts it there)
        t_live = t_s
        if self.sim.config.edge.edge_train_time == "off":
            set_flat_weights(self.sim.edge_predictor.model, result.values)
            state.edge_weights = result.values
            state.version = self.trained
            state.model_data_s = max(state.model_data_s, row["t_captured_s"])
        else:
            t_live = self.busy_until_s = t_s + self.sim.config.edge.training_s(policy.iterations, batch)
            state.pending.append(Pending(t_live, self.trained, weights=result.values, captured_s=row["t_captured_s"]))
        # staleness: its newest frame's capture -> its model running at the edge (not its labels' arrival)
        staleness_columns(row, captured_s=row["t_captured_s"], t_live_s=t_live, fps=self.sim.video.fps)
        row.update(t_train_s=t_s, t_live_s=t_live, num_samples=len(self.held),
                   loss_first=result.losses[0], loss_last=result.losses[-1], edge_train_frames=trained_frames)
        state.ledger.append(row)
