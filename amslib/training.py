"""The server's fine-tuning of a student copy, and the choice of parameters to send.

Gradient-guided selection (SPEC.md, "Mechanisms"): take one Adam step on all parameters,
rank every scalar by |change|, keep the top `fraction`, revert the rest, then train the
remaining steps changing only the kept ones. The mask is recomputed at every update.

The other strategies fix the mask before training and train all `iterations` steps inside
it; each picks exactly round(fraction * P) scalars, so all compare at equal `fraction`:
`first_layers` / `last_layers` take the first / last scalars in the model's parameter
order (input to output; the boundary layer is cut part-way to keep the count exact),
`first_and_last` half from each end, `random` a fresh uniform draw at every update.
`full` trains and sends every parameter.

`gradient_magnitude` (ours, not the paper's) ranks by |gradient| on the first batch instead
of by one Adam step's change, then trains all `iterations` steps inside that mask. The reason:
each update starts Adam afresh, and Adam's first step is lr * g / (|g| + eps'), about lr for
every scalar whose |g| is well above eps' (1e-7 / sqrt(1 - beta2), 3.2e-6), so ranking by
that change barely tells the scalars apart (README, "Decisions").
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from amslib.config import STRATEGIES
from amslib.student import flat_weights, set_flat_weights


@dataclass(frozen=True)
class TrainResult:
    """Parameters after an update: `values` (P,) float32, `mask` (P,) bool or None for all."""

    values: np.ndarray
    mask: np.ndarray | None
    losses: tuple[float, ...]


def top_fraction_mask(delta: np.ndarray, fraction: float) -> np.ndarray:
    """(P,) bool selecting exactly round(fraction * P) scalars (at least 1) with the largest
    |delta|; the same count for every strategy keeps them comparable at equal `fraction`."""
    k = selection_count(delta.size, fraction)
    mask = np.zeros(delta.size, bool)
    mask[np.argpartition(np.abs(delta), delta.size - k)[delta.size - k:]] = True
    return mask


MASKED_STRATEGIES = ("first_layers", "last_layers", "first_and_last", "random")


def draw_batch(rng: np.random.Generator, num_samples: int, batch_size: int) -> np.ndarray:
    """Indices of one training batch: `batch_size` of `num_samples` (all if fewer), no repeats."""
    return rng.choice(num_samples, size=min(batch_size, num_samples), replace=False)


def selection_count(num_params: int, fraction: float) -> int:
    """round(fraction * P), at least 1 and at most P: the scalars every strategy sends."""
    return min(num_params, max(1, int(round(fraction * num_params))))


def strategy_mask(strategy: str, num_params: int, fraction: float, *,
                  rng: np.random.Generator) -> np.ndarray:
    """(P,) bool of the scalars a fixed-mask strategy trains (see the module docstring)."""
    k = selection_count(num_params, fraction)
    mask = np.zeros(num_params, bool)
    if strategy == "first_layers":
        mask[:k] = True
    elif strategy == "last_layers":
        mask[num_params - k:] = True
    elif strategy == "first_and_last":
        mask[:k // 2] = True
        mask[num_params - (k - k // 2):] = True
    elif strategy == "random":
        mask[rng.choice(num_params, size=k, replace=False)] = True
    else:
        raise ValueError(f"'{strategy}' is not a fixed-mask strategy; use one of {', '.join(MASKED_STRATEGIES)}")
    return mask


class Trainer:
    """Adam fine-tuning of `model` with the loss restricted to the video's classes.

    The traced step optionally projects every variable back onto a frozen base outside a
    mask after each optimizer step (so Adam's momentum cannot move masked-out scalars).
    BatchNorm runs in inference mode: batches of 10 are too small for its statistics.
    """

    def __init__(self, model: keras.Model, *, class_ids: tuple[int, ...], lr: float) -> None:
        self.model = model
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
        self._step = tf.function(self._train_step, input_signature=signature, autograph=False)
        self._gradients = tf.function(self._loss_and_gradients, input_signature=signature,
                                      autograph=False)

    def _loss_and_gradients(self, frames, labels):
        """The loss over the video's classes on one batch, and its gradients (one per variable)."""
        weights = tf.cast(tf.gather(self._class_table, tf.cast(labels, tf.int32)), tf.float32)
        targets = tf.where(weights > 0, tf.cast(labels, tf.int32), 0)
        with tf.GradientTape() as tape:
            logits = self.model(tf.cast(frames, tf.float32), training=False)
            ce = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
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
        """Fresh Adam state for a new update (each update is an independent fine-tune)."""
        for v in self.optimizer.variables:
            v.assign(tf.zeros_like(v))
        self.optimizer.learning_rate.assign(lr)

    def _set_mask(self, mask: np.ndarray | None, base: np.ndarray | None) -> None:
        """Restrict the following steps to `mask` (None: all parameters) around `base`."""
        if mask is None:
            for m in self._masks:
                m.assign(tf.ones(m.shape, tf.bool))
            return
        offset = 0
        for v, m, b in zip(self.model.trainable_variables, self._masks, self._bases):
            size = int(np.prod(v.shape))
            m.assign(mask[offset:offset + size].reshape(v.shape))
            b.assign(base[offset:offset + size].reshape(v.shape))
            offset += size

    def fit(self, frames: np.ndarray, labels: np.ndarray, *, steps: int, batch_size: int,
            rng: np.random.Generator) -> list[float]:
        """`steps` Adam steps on random batches drawn from frames (N, H, W, 3) uint8 and
        labels (N, H, W) uint8."""
        losses = []
        for _ in range(steps):
            pick = draw_batch(rng, len(frames), batch_size)
            losses.append(float(self._step(frames[pick], labels[pick])))
        return losses

    def update(self, frames: np.ndarray, labels: np.ndarray, *, base: np.ndarray,
               strategy: str, fraction: float, iterations: int, batch_size: int, lr: float,
               rng: np.random.Generator) -> TrainResult:
        """One server update from `base` (P,) float32: train, select, return the new values."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy '{strategy}'; use one of {', '.join(STRATEGIES)}")
        set_flat_weights(self.model, base)
        self.reset_optimizer(lr=lr)
        fit = dict(batch_size=batch_size, rng=rng)
        if strategy in MASKED_STRATEGIES or strategy == "gradient_magnitude":
            mask = (self.gradient_mask(frames, labels, fraction, batch_size=batch_size, rng=rng)
                    if strategy == "gradient_magnitude"
                    else strategy_mask(strategy, base.size, fraction, rng=rng))
            self._set_mask(mask, base)
            losses = self.fit(frames, labels, steps=iterations, **fit)
            return TrainResult(flat_weights(self.model), mask, tuple(losses))
        self._set_mask(None, base)
        losses = self.fit(frames, labels, steps=1, **fit)
        if strategy == "full":
            losses += self.fit(frames, labels, steps=iterations - 1, **fit)
            return TrainResult(flat_weights(self.model), None, tuple(losses))
        after_one = flat_weights(self.model)
        mask = top_fraction_mask(after_one - base, fraction)
        set_flat_weights(self.model, np.where(mask, after_one, base))  # revert the rest
        self._set_mask(mask, base)
        losses += self.fit(frames, labels, steps=iterations - 1, **fit)
        return TrainResult(flat_weights(self.model), mask, tuple(losses))

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
        self._set_mask(None, None)


def pretrain(model: keras.Model, frames: np.ndarray, labels: np.ndarray, *, steps: int,
             batch_size: int = 16, lr: float = 1e-3, seed: int = 0,
             callbacks: list | None = None) -> list[float]:
    """Distillation pretraining from scratch on (N, H, W, 3) uint8 frames and (N, H, W)
    uint8 labels, with `keras.Model.fit` (BatchNorm learns its statistics here, unlike in
    the online updates). Returns the loss per epoch of `steps_per_epoch` steps."""
    keras.utils.set_random_seed(seed)
    # jit_compile=False: XLA is Keras' default on TensorFlow, but on a 2-core CPU it took
    # 121 s to compile a 32x64 student and ran 3x slower per step than plain graph mode (46 s, 1 s).
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    data = (tf.data.Dataset.from_tensor_slices((frames, labels))
            .shuffle(len(frames), seed=seed, reshuffle_each_iteration=True)
            .repeat().batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y)))
    epochs = max(1, steps // 100)
    history = model.fit(data, epochs=epochs, steps_per_epoch=max(1, steps // epochs),
                        verbose=0, callbacks=callbacks or [], shuffle=False)  # the dataset shuffles
    recalibrate_batchnorm(model, frames)
    return [float(v) for v in history.history["loss"]]


def recalibrate_batchnorm(model: keras.Model, frames: np.ndarray, *, batch_size: int = 16,
                          max_frames: int = 400, momentum: float = 0.9) -> None:
    """Re-estimate BatchNorm moving statistics with the weights frozen.

    Trained from scratch, the weights move faster than BatchNorm's moving averages (momentum
    0.997) follow, and inference with the stale statistics fell from 66% to 16% mIoU on the
    training frames themselves; a pass over up to `max_frames` frames fixes that.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = momentum
    try:
        for start in range(0, min(len(frames), max_frames), batch_size):
            model(tf.cast(frames[start:start + batch_size], tf.float32), training=True)
    finally:
        for layer, value in zip(norms, saved):
            layer.momentum = value


def sample_frames(video, teacher, *, count: int, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` frames evenly spaced over `video`, with the teacher's labels:
    (N, H, W, 3) uint8 frames, (N, H, W) uint8 labels. The video is read once, in order,
    a chunk at a time; only the picked frames are kept."""
    from amslib.dataset import sample_indices

    picks = sample_indices(video, count=max(1, count))
    frames, labels = [], []
    for start, block in video.chunks(chunk):
        for i in picks[(picks >= start) & (picks < start + len(block))]:
            frame = block[i - start][None]
            frames.append(frame[0])
            labels.append(teacher.labels(video, int(i), int(i) + 1, frames=frame)[0])
    return np.stack(frames), np.stack(labels)


def pretrain_on_videos(pairs: list, spec, *, steps: int, samples: int, seed: int = 0,
                       init: str | None = None, exclude: tuple[str, ...] = (),
                       callbacks: list | None = None) -> tuple[keras.Model, list[float], int]:
    """Distillation pretraining of a new student of `spec` on (video, teacher) pairs:
    `samples` frames in all, spread evenly over each video. `init`: start from weights
    (.weights.h5, a TF1 checkpoint or an AMS dict; `exclude` layers left out of it).
    Returns (model, loss per epoch, number of frames used)."""
    from amslib.checkpoints import load_initial_weights
    from amslib.student import build_student

    keras.utils.set_random_seed(seed)  # initial weights too: the file is reproducible
    model = build_student(spec)
    if init:  # before reading the videos: a checkpoint that does not fit fails at once
        load_initial_weights(model, init, exclude=exclude)
    per_video = -(-samples // len(pairs))
    data = [sample_frames(video, teacher, count=per_video) for video, teacher in pairs]
    frames, labels = np.concatenate([f for f, _ in data]), np.concatenate([y for _, y in data])
    losses = pretrain(model, frames, labels, steps=steps, seed=seed, callbacks=callbacks)
    return model, losses, len(frames)
