"""mIoU on a held-out real clip against pretraining steps: from ImageNet or from scratch, and
how the laptop preset should get an ImageNet student (docs/students.md, "Students from ImageNet").

The students learn from the other example clips (40 frames each, the selfie teacher's labels,
as in the real-clip benchmark) and are scored, never updated (`none`), on every frame of the
held-out clip at the laptop preset's 128x256 and 5 fps. Students:
- `imagenet_head`: width 1.0, ImageNet backbone frozen, head fitted (`pretrain_head`);
- `imagenet_full`: width 1.0 from ImageNet, every layer trained (`pretrain`);
- `scratch_w100`, `scratch_w050`: width 1.0 / 0.5 from random weights;
- `distilled_w050`: width 0.5 from random weights on the same frames labelled by the final
  `imagenet_head` student instead of the teacher (a width-0.5 student distilled from it).
Also the speed of width 1.0 and 0.5 here: inference ms per frame and seconds per training step.

    python scripts/imagenet_steps.py [--held-out carphone] [--out docs/imagenet_steps.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from amslib.analysis.real_clips import BenchmarkConfig, label_clip
from amslib.core.files import frames_dir, labels_dir, write_json
from amslib.core.labels import VOC21
from amslib.core.metrics import frame_counts, iou, miou_pooled
from amslib.core.tf import keras
from amslib.data.examples import CLIPS
from amslib.models.checkpoints import IMAGENET, load_initial_weights
from amslib.models.pretrain import pretrain, pretrain_head, recalibrate_batchnorm, spec_for_init
from amslib.models.student import Predictor, StudentSpec, build_student
from amslib.models.teachers import CachedTeacher
from amslib.models.zoo import parse_teacher


def score(model, clip) -> dict:
    """Pooled mIoU and person IoU (%) of `model` on every frame of the held-out clip."""
    counts = frame_counts(clip.labels, Predictor(model)(clip.frames), class_ids=clip.video.class_ids)
    per_class = iou(counts.sum(axis=0))
    return {"miou": 100 * float(miou_pooled(counts)), "iou_person": 100 * float(np.nan_to_num(per_class[-1]))}


class Checkpoints(keras.callbacks.Callback):
    """Scores the student at the given steps (BatchNorm statistics re-estimated first, as
    `pretrain` does at its end; that changes only the moving averages, not the training)."""

    def __init__(self, student, at, frames, clip, curve):
        super().__init__()
        self.student, self.at, self.frames, self.clip, self.curve, self.step = student, set(at), frames, clip, curve, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step in self.at:
            recalibrate_batchnorm(self.student, self.frames)
            self.curve[self.step] = score(self.student, self.clip)


def curve(name, spec, init, frames, labels, clip, steps, *, head_only=False) -> tuple[dict, object, float]:
    keras.utils.set_random_seed(0)
    model = build_student(spec_for_init(spec, init))
    if init:
        load_initial_weights(model, init)
    points = {0: score(model, clip)}
    start = time.perf_counter()
    if head_only:  # the head trains on cached features: score after each budget
        for k in steps:
            keras.utils.set_random_seed(0)
            m = build_student(spec_for_init(spec, init))
            load_initial_weights(m, init)
            pretrain_head(m, frames, labels, steps=k)
            points[k] = score(m, clip)
        model = m
    else:
        pretrain(model, frames, labels, steps=max(steps), callbacks=[Checkpoints(model, steps, frames, clip, points)])
        points[max(steps)] = score(model, clip)
    seconds = time.perf_counter() - start
    print(name, {k: f"{v['miou']:.1f}/{v['iou_person']:.1f}" for k, v in sorted(points.items())},
          f"{seconds:.0f} s", flush=True)
    return points, model, seconds


class StepTimes(keras.callbacks.Callback):
    """Wall time of every training step (the first ones include tracing: left out below)."""

    def __init__(self):
        super().__init__()
        self.ends = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def speed(spec, *, steps: int = 13, skip: int = 3) -> dict:
    """Inference ms per frame (batches of 32) and seconds per training step (batch 16, the
    mean of the steps after the first `skip`, which include tracing)."""
    model = build_student(spec)
    frames = np.random.default_rng(0).integers(0, 255, (48, spec.height, spec.width, 3), dtype=np.uint8)
    predict = Predictor(model)
    predict(frames[:32])
    start = time.perf_counter()
    predict(frames)
    ms = 1000 * (time.perf_counter() - start) / len(frames)
    times = StepTimes()
    pretrain(model, frames, np.zeros(frames.shape[:3], np.uint8), steps=steps, callbacks=[times])
    step_s = float(np.mean(np.diff(times.ends)[skip:]))
    return {"inference_ms_per_frame": ms, "train_s_per_step": step_s, "parameters": int(model.count_params())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", default="carphone")
    parser.add_argument("--full-steps", default="25,50,100")
    parser.add_argument("--head-steps", default="25,50,100,300")
    parser.add_argument("--out", default="docs/imagenet_steps.json")
    parser.add_argument("--speed-only", action="store_true", help="measure the speed again into an existing --out")
    args = parser.parse_args()
    wide = StudentSpec(num_classes=VOC21.num_classes, height=128, width=256)
    narrow = StudentSpec(num_classes=VOC21.num_classes, height=128, width=256, width_multiplier=0.5)
    if args.speed_only:
        out = json.loads(Path(args.out).read_text())
        out["speed"] = measure_speed(wide, narrow)
        return write_json(Path(args.out), out)
    config = BenchmarkConfig()
    teacher = CachedTeacher(parse_teacher(config.teacher), labels_dir())
    clips = {name: label_clip(name, config, teacher, frames_dir()) for name in CLIPS}
    held = clips[args.held_out]
    others = [c for n, c in clips.items() if n != args.held_out]
    picks = [np.unique(np.linspace(0, len(c.frames) - 1, config.samples_per_clip).round().astype(int)) for c in others]
    frames = np.concatenate([c.frames[p] for c, p in zip(others, picks)])
    labels = np.concatenate([c.labels[p] for c, p in zip(others, picks)])
    full, head = [int(s) for s in args.full_steps.split(",")], [int(s) for s in args.head_steps.split(",")]
    out = {"held_out": args.held_out, "train_frames": int(len(frames)), "curves": {}, "seconds": {}}
    runs = [("imagenet_head", wide, IMAGENET, head, True), ("imagenet_full", wide, IMAGENET, full, False),
            ("scratch_w100", wide, None, full, False), ("scratch_w050", narrow, None, full, False)]
    for name, spec, init, steps, head_only in runs:
        points, model, seconds = curve(name, spec, init, frames, labels, held, steps, head_only=head_only)
        out["curves"][name], out["seconds"][name] = points, seconds
        if name == "imagenet_head":
            distil_labels = Predictor(model)(frames)  # the ImageNet student's labels of the same frames
    points, _, seconds = curve("distilled_w050", narrow, None, frames, distil_labels, held, full)
    out["curves"]["distilled_w050"], out["seconds"]["distilled_w050"] = points, seconds
    out["speed"] = measure_speed(wide, narrow)
    write_json(Path(args.out), out)


def measure_speed(wide: StudentSpec, narrow: StudentSpec) -> dict:
    speeds = {"w100": speed(spec_for_init(wide, IMAGENET)), "w050": speed(narrow),
              "load_average_1min": os.getloadavg()[0]}  # other jobs on the cores slow every number
    print(speeds, flush=True)
    return speeds


if __name__ == "__main__":
    main()
