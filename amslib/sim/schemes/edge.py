"""Adaptation on the edge alone: no server, no network (0 Kbps either way).

- `bn_adapt`: every `update_interval_s` (from `first_update_s`), the edge re-estimates its
  student's BatchNorm statistics on its own last `bn_frames` frames (forward passes only; the
  weights stay as pretrained). A shift of colour and light moves the statistics first.
- `tent` (Wang et al., ICLR 2021, "Tent: Fully Test-Time Adaptation by Entropy Minimization"):
  on every batch of frames it shows, the edge takes one Adam step that lowers the mean entropy
  of its own per-pixel predictions, changing only BatchNorm's scale and shift, with BatchNorm
  normalising by the batch's own statistics; its prediction of the batch is the one from that
  forward pass (Tent's online setting).

Both account their compute on the edge (frames through a training step, extra forward
passes): the summary's `edge_compute_s_per_s` under the `edge` profile (`EdgeConfig`).
"""
from __future__ import annotations

import numpy as np

from amslib.core.tf import keras, tf
from amslib.models.pretrain import recalibrate_batchnorm
from amslib.sim.schemes.base import Scheme
from amslib.sim.state import RunState


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
        return pred

    def update(self, state: RunState, t_s: float) -> dict:
        edge = self.sim.config.edge
        frames = np.stack(self.recent) if self.recent else None
        if frames is not None:
            recalibrate_batchnorm(self.sim.edge_predictor.model, frames, momentum=edge.bn_momentum,
                                  max_frames=edge.bn_frames)
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
        self._step = tf.function(self._train, input_signature=[tf.TensorSpec(shape, tf.uint8)], autograph=False)

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
        if getattr(students, "tent", None) is None or students.tent.model is not self.sim.edge_predictor.model:
            students.tent = TentStep(self.sim.edge_predictor.model, lr=self.sim.config.edge.tent_lr)
        students.tent.reset(lr=self.sim.config.edge.tent_lr)
        self.step = students.tent

    def predict(self, state: RunState, start: int, frames: np.ndarray) -> np.ndarray:
        pred, _ = self.step(frames)
        state.edge_train_frames += len(frames)
        return pred
