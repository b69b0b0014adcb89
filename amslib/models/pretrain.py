"""Distillation pretraining of a new student (the `pretrain` command, the shipped students,
`make student`): frames spread over videos, labelled by their teachers, fitted with Keras.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from amslib.core.tf import keras, quiet_first_call, tf
from amslib.data.video import sample_indices
from amslib.models.checkpoints import IMAGENET, load_initial_weights
from amslib.models.imagenet import IMAGENET_PADDING, IMAGENET_WIDTH
from amslib.models.student import BACKBONE_OUTPUT, StudentSpec, build_head, build_student, student_file_spec
from amslib.models.teachers import read_labelled


def pretrain(model: keras.Model, frames: np.ndarray, labels: np.ndarray, *, steps: int,
             batch_size: int = 16, lr: float = 1e-3, seed: int = 0,
             callbacks: list | None = None) -> list[float]:
    """Distillation pretraining on (N, H, W, 3) uint8 frames (or what `model` takes) and
    (N, H, W) uint8 labels, with `keras.Model.fit` (BatchNorm learns its statistics here, unlike in
    the online updates). Returns the loss per epoch of `steps_per_epoch` steps."""
    keras.utils.set_random_seed(seed)
    # jit_compile=False: XLA is Keras' default on TensorFlow, but on a 2-core CPU it took
    # 121 s to compile a 32x64 student and ran 3x slower per step than plain graph mode (46 s, 1 s).
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    data = (tf.data.Dataset.from_tensor_slices((frames, labels))
            .shuffle(len(frames), seed=seed, reshuffle_each_iteration=True)
            .repeat().batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y)))  # frames or features
    epochs = max(1, steps // 100)
    # oneDNN logs its DT_INT32 line at the first step on some CPUs: that step runs quietly
    # (compile() reset the function; fit() keeps the one made here)
    model.make_train_function()
    model.train_function = quiet_first_call(model.train_function)
    history = model.fit(data, epochs=epochs, steps_per_epoch=max(1, steps // epochs),
                        verbose=0, callbacks=callbacks or [], shuffle=False)  # the dataset shuffles
    recalibrate_batchnorm(model, frames)
    return [float(v) for v in history.history["loss"]]


def pretrain_head(model: keras.Model, frames: np.ndarray, labels: np.ndarray, *, steps: int,
                  batch_size: int = 16, lr: float = 1e-3, seed: int = 0,
                  callbacks: list | None = None) -> list[float]:
    """`pretrain` with the backbone frozen: its features of every frame ((N, H, W, 3) uint8)
    are computed once, in inference mode, and only the head is fitted on them, then copied
    into `model`. Keeps an ImageNet backbone's features (and BatchNorm statistics) as they
    are, and costs a head's step instead of the whole network's (on this project's 2-core CPU
    a width-1.0 student's full step at 128x256 took about 3 s, the head's a few ms)."""
    spec = StudentSpec(num_classes=model.output_shape[-1], height=model.input_shape[1], width=model.input_shape[2],
                       head_channels=model.get_layer("aspp0").filters)
    backbone = keras.Model(model.input, model.get_layer(BACKBONE_OUTPUT).output)
    features = np.concatenate([backbone(tf.cast(frames[i:i + batch_size], tf.float32), training=False).numpy()
                               for i in range(0, len(frames), batch_size)])
    keras.utils.set_random_seed(seed)
    head = build_head(spec, features.shape[1:])
    losses = pretrain(head, features, labels, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                      callbacks=callbacks)
    for layer in head.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return losses


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


def spec_for_init(spec: StudentSpec, init: str | None) -> StudentSpec:
    """The spec a pretraining from `init` builds: 'imagenet' needs width 1.0 (one clear line
    otherwise) and PyTorch's padding; a student file brings its own padding."""
    if init == IMAGENET:
        if spec.width_multiplier != IMAGENET_WIDTH:
            raise ValueError(f"--init imagenet is a MobileNetV2 of width {IMAGENET_WIDTH:g}, not {spec.width_multiplier:g}: "
                             f"pretrain with --width-multiplier {IMAGENET_WIDTH:g} and run with --set "
                             f"width_multiplier={IMAGENET_WIDTH:g} (docs/students.md, 'Students from ImageNet': why not 0.5)")
        return replace(spec, padding=IMAGENET_PADDING)
    if init and str(init).endswith(".weights.h5") and Path(init).is_file():
        try:
            saved = student_file_spec(init) or {}
        except ValueError:  # not a student file at all: loading it says so in one line
            return spec
        check_init_file(init, saved, spec)
        return replace(spec, padding=saved.get("padding", "same"))
    return spec


def check_init_file(path: str | Path, saved: dict, spec: StudentSpec) -> None:
    """One line when a student file to start from (`saved`: its recorded spec) has another
    width, head or label set than the pretraining's `spec`."""
    wrong = [f"{k}={saved[k]:g}" if isinstance(saved[k], float) else f"{k}={saved[k]}"
             for k in ("width_multiplier", "num_classes", "output_stride", "head_channels")
             if k in saved and saved[k] != getattr(spec, k)]
    if wrong:
        raise ValueError(f"--init {path} is a student with {', '.join(wrong)}; this pretraining builds "
                         f"width_multiplier={spec.width_multiplier:g}, num_classes={spec.num_classes}: pretrain "
                         "with the same width (--width-multiplier) and label set, or start from 'imagenet'")


def pretrain_on_videos(pairs: list, spec, *, steps: int, samples: int, seed: int = 0,
                       init: str | None = None, exclude: tuple[str, ...] = (), freeze_backbone: bool = False,
                       callbacks: list | None = None) -> tuple[keras.Model, list[float], int]:
    """Distillation pretraining of a new student of `spec` on (video, teacher) pairs:
    `samples` frames in all, spread evenly over each video. `init`: start from weights
    ('imagenet': the ImageNet backbone, amslib.models.imagenet, for a width-1.0 spec, built
    with its padding; a .weights.h5, a TF1 checkpoint, an AMS dict or a .npz; `exclude` layers
    left out of it). `freeze_backbone`: fit the head only (`pretrain_head`). `save_student`
    records the padding the model was built with.
    Returns (model, loss per epoch, number of frames used)."""
    keras.utils.set_random_seed(seed)  # initial weights too: the file is reproducible
    model = build_student(spec_for_init(spec, init))
    if init:  # before reading the videos: a checkpoint that does not fit fails at once
        load_initial_weights(model, init, exclude=exclude)
    per_video = -(-samples // len(pairs))
    data = [read_labelled(video, teacher, sample_indices(video, count=max(1, per_video))) for video, teacher in pairs]
    frames, labels = np.concatenate([f for f, _ in data]), np.concatenate([y for _, y in data])
    fit = pretrain_head if freeze_backbone else pretrain
    losses = fit(model, frames, labels, steps=steps, seed=seed, callbacks=callbacks)
    return model, losses, len(frames)
