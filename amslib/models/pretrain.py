"""Distillation pretraining of a new student (the `pretrain` command, the shipped students,
`make student`): frames spread over videos, labelled by their teachers, fitted with Keras.
"""
from __future__ import annotations

import numpy as np

from amslib.core.tf import keras, tf
from amslib.data.video import sample_indices
from amslib.models.checkpoints import load_initial_weights
from amslib.models.student import build_student
from amslib.models.teachers import read_labelled


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


def pretrain_on_videos(pairs: list, spec, *, steps: int, samples: int, seed: int = 0,
                       init: str | None = None, exclude: tuple[str, ...] = (),
                       callbacks: list | None = None) -> tuple[keras.Model, list[float], int]:
    """Distillation pretraining of a new student of `spec` on (video, teacher) pairs:
    `samples` frames in all, spread evenly over each video. `init`: start from weights
    (.weights.h5, a TF1 checkpoint or an AMS dict; `exclude` layers left out of it).
    Returns (model, loss per epoch, number of frames used)."""
    keras.utils.set_random_seed(seed)  # initial weights too: the file is reproducible
    model = build_student(spec)
    if init:  # before reading the videos: a checkpoint that does not fit fails at once
        load_initial_weights(model, init, exclude=exclude)
    per_video = -(-samples // len(pairs))
    data = [read_labelled(video, teacher, sample_indices(video, count=max(1, per_video))) for video, teacher in pairs]
    frames, labels = np.concatenate([f for f, _ in data]), np.concatenate([y for _, y in data])
    losses = pretrain(model, frames, labels, steps=steps, seed=seed, callbacks=callbacks)
    return model, losses, len(frames)
