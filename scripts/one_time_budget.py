"""How many training steps One-Time needs to converge on its samples (docs/decisions.md).

One-Time trains once, on the samples of the first `one_time_s` seconds. This trains the
laptop student on exactly those samples (r = 1 frame/s, the oracle's labels), all parameters,
from the pretrained weights, and prints the mean training loss over each block of 10 steps,
and the mIoU on the samples themselves after 10, 25, 50, 100, 200 and 300 steps.

    python scripts/one_time_budget.py [--steps 300] [--out docs/one_time_budget.json]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import amslib as ams
from amslib.core.files import write_json
from amslib.core.metrics import frame_counts, miou_pooled
from amslib.models.student import set_flat_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--out", default="docs/one_time_budget.json")
    args = parser.parse_args()
    config = ams.preset(args.preset)
    video, teacher = ams.open_video_for(config), ams.OracleTeacher()
    students = ams.Students.load(config, video)
    samples = ams.walkthrough.buffer_at(video, teacher, t_s=config.adapt.one_time_s,
                                        horizon_s=config.adapt.one_time_s, rate_fps=config.adapt.sample_rate_fps)
    trainer, rng = students.trainer, np.random.default_rng(config.seed)
    trainer.reset_optimizer(lr=config.adapt.lr)
    trainer.unmask()
    set_flat_weights(trainer.model, students.pretrained)
    losses, checkpoints = [], {}
    for step in range(1, args.steps + 1):
        losses += trainer.fit(samples.frames, samples.labels, steps=1, batch_size=config.adapt.batch_size, rng=rng)
        if step in (10, 25, 50, 100, 200, 300):
            pred = students.server_predictor(samples.frames)
            checkpoints[step] = 100 * miou_pooled(frame_counts(samples.labels, pred, class_ids=video.class_ids))
    blocks = np.asarray(losses).reshape(-1, 10).mean(axis=1)
    out = {"preset": args.preset, "samples": len(samples), "one_time_s": config.adapt.one_time_s,
           "batch_size": config.adapt.batch_size, "lr": config.adapt.lr,
           "loss_per_10_steps": [round(float(v), 4) for v in blocks],
           "miou_on_samples_pct": {str(k): round(float(v), 1) for k, v in checkpoints.items()}}
    for k, v in enumerate(blocks):
        print(f"steps {10 * k + 1:>3}-{10 * k + 10:>3}: mean loss {v:.4f}")
    for step, miou in checkpoints.items():
        print(f"after {step:>3} steps: mIoU on the {len(samples)} samples {miou:.1f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out), out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
