"""The server's fine-tuning of a student copy (the trainer that every scheme shares).

`Trainer.update` runs one update under a policy (`AdaptConfig`): it starts from the given
base weights and lets the policy's strategy (amslib/sim/selection.py) train and choose what
is sent. The traced step projects every variable back onto a frozen base outside a mask, so
a strategy can restrict training to the scalars it sends.
"""
from __future__ import annotations

import numpy as np

from amslib.core.config import AdaptConfig
from amslib.core.registry import STRATEGIES
from amslib.core.tf import keras, quiet_function, tf
from amslib.models.student import set_flat_weights
from amslib.sim.selection import TrainResult, draw_batch, top_fraction_mask


class Trainer:
    """Adam fine-tuning of `model` with the loss restricted to the video's classes.

    The traced step optionally projects every variable back onto a frozen base outside a
    mask after each optimizer step (so Adam's momentum cannot move masked-out scalars).
    BatchNorm runs in inference mode: batches of 10 are too small for its statistics.
    """

    def __init__(self, model: keras.Model, *, class_ids: tuple[int, ...], lr: float,
                 class_weighting: str = "pixels") -> None:
        self.model = model
        self.balanced = class_weighting == "balanced"  # AdaptConfig.class_weighting
        self.optimizer = keras.optimizers.Adam(learning_rate=lr)
        variables = model.trainable_variables
        self.optimizer.build(variables)
        self._masks = [tf.Variable(tf.ones(v.shape, tf.bool), trainable=False) for v in variables]
        self._bases = [tf.Variable(tf.zeros(v.shape), trainable=False) for v in variables]
        self._class_table = tf.constant(np.isin(np.arange(256), class_ids))
        # One traced step for all cases: without a mask, the mask is all-True (a cheap
        # no-op projection), which avoids tracing a second graph or a tf.cond. A fixed
        # signature with any batch size: a trace that depended on the batch sizes seen first
        # (Just-In-Time's 1, AMS's 10) gave slightly different numbers run to run.
        h, w = model.input_shape[1:3]
        signature = [tf.TensorSpec((None, h, w, 3), tf.uint8), tf.TensorSpec((None, h, w), tf.uint8)]
        self._step = quiet_function(self._train_step, input_signature=signature, autograph=False)
        self._gradients = quiet_function(self._loss_and_gradients, input_signature=signature, autograph=False)
        total = sum(int(np.prod(v.shape)) for v in variables)
        self._restrict = quiet_function(self._restrict_all, autograph=False, input_signature=[
            tf.TensorSpec((total,), tf.bool), tf.TensorSpec((total,), tf.float32)])

    def _loss_and_gradients(self, frames, labels):
        """The loss over the video's classes on one batch, and its gradients (one per variable)."""
        weights = tf.cast(tf.gather(self._class_table, tf.cast(labels, tf.int32)), tf.float32)
        targets = tf.where(weights > 0, tf.cast(labels, tf.int32), 0)
        with tf.GradientTape() as tape:
            logits = self.model(tf.cast(frames, tf.float32), training=False)
            ce = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
            if self.balanced:  # each present class's mean, then their mean
                counts = tf.math.bincount(tf.reshape(targets, [-1]), weights=tf.reshape(weights, [-1]),
                                          minlength=256, maxlength=256)
                per_pixel = weights / tf.maximum(tf.gather(counts, targets), 1.0)
                loss = tf.reduce_sum(ce * per_pixel) / tf.maximum(tf.reduce_sum(tf.cast(counts > 0, tf.float32)), 1.0)
            else:
                loss = tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        return loss, tape.gradient(loss, self.model.trainable_variables)

    def _train_step(self, frames, labels):
        loss, gradients = self._loss_and_gradients(frames, labels)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(gradients, variables))
        for v, m, b in zip(variables, self._masks, self._bases):
            v.assign(tf.where(m, v, b))
        return loss

    def reset_optimizer(self, *, lr: float) -> None:
        """Fresh Adam state: zero moments and step count (a run's start; every update under
        optimizer_state=reset)."""
        for v in self.optimizer.variables:
            v.assign(tf.zeros_like(v))
        self.optimizer.learning_rate.assign(lr)

    def restrict(self, mask: np.ndarray | None, base: np.ndarray | None) -> None:
        """Restrict the following steps to `mask` (None: all parameters) around `base`."""
        if mask is None:  # every scalar moves: the bases are never read
            total = sum(int(np.prod(m.shape)) for m in self._masks)
            self._restrict(tf.ones((total,), tf.bool), tf.zeros((total,), tf.float32))
            return
        self._restrict(tf.convert_to_tensor(mask), tf.convert_to_tensor(np.asarray(base, np.float32)))

    def _restrict_all(self, mask, base):
        """One traced call for every variable's mask and base (Python's loop of assigns cost
        0.73 s per update on the laptop student, cProfile of a 60-s laptop AMS run on 2 loaded
        cores)."""
        sizes = [int(np.prod(v.shape)) for v in self.model.trainable_variables]
        for v, m, b, part_mask, part_base in zip(self.model.trainable_variables, self._masks, self._bases,
                                                 tf.split(mask, sizes), tf.split(base, sizes)):
            m.assign(tf.reshape(part_mask, v.shape))
            b.assign(tf.reshape(part_base, v.shape))
        return tf.constant(0)

    def fit(self, frames: np.ndarray, labels: np.ndarray, *, steps: int, batch_size: int,
            rng: np.random.Generator) -> list[float]:
        """`steps` Adam steps on random batches drawn from frames (N, H, W, 3) uint8 and
        labels (N, H, W) uint8."""
        losses = []
        for _ in range(steps):
            pick = draw_batch(rng, len(frames), batch_size)
            losses.append(float(self._step(frames[pick], labels[pick])))
        return losses

    def update(self, frames: np.ndarray, labels: np.ndarray, *, base: np.ndarray, policy: AdaptConfig,
               rng: np.random.Generator) -> TrainResult:
        """One server update from `base` (P,) float32 under `policy` (its strategy, fraction,
        iterations, batch size, lr and optimizer_state): train, select, return the new values."""
        strategy = STRATEGIES.load(STRATEGIES.check(policy.strategy))
        set_flat_weights(self.model, base)
        if policy.optimizer_state == "reset":
            self.reset_optimizer(lr=policy.lr)
        else:  # persist: Adam's moments and step count carry over from the last update
            self.optimizer.learning_rate.assign(policy.lr)
        return strategy.train(self, frames, labels, base=base, policy=policy, rng=rng)

    def gradient(self, frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(P,) float32 gradient of the loss on exactly this batch, in `flat_weights` order."""
        _, gradients = self._gradients(frames, labels)
        return np.concatenate([np.asarray(g).ravel() for g in gradients])

    def gradient_mask(self, frames: np.ndarray, labels: np.ndarray, fraction: float, *,
                      batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """(P,) bool: the round(fraction * P) scalars of largest |gradient| on a batch drawn
        as `fit` draws its first one."""
        pick = draw_batch(rng, len(frames), batch_size)
        return top_fraction_mask(self.gradient(frames[pick], labels[pick]), fraction)

    def step_on(self, frames: np.ndarray, labels: np.ndarray) -> float:
        """One Adam step on all parameters with exactly this batch (N, H, W, 3) uint8 and
        (N, H, W) uint8, keeping the optimizer's state (Just-In-Time's online training)."""
        return float(self._step(frames, labels))

    def unmask(self) -> None:
        """Let every parameter move in the following steps."""
        self.restrict(None, None)
