"""Command line: `python -m amslib demo|run|sweep|runs|pretrain|download|label|bench ...`.

Every user error ends as one line on stderr (`error: ...`) and exit code 2; outputs are
written only when a command succeeds, each file atomically.

Each command imports what it runs when it runs: the simulation, the models and the
analysis bring TensorFlow, pandas and plotly (seconds to import), which `--help`, a usage
error or `download` should not wait for. Those imports are marked "deferred: slow import" below.

The video commands (`label`, `download`, `cache`, `clips`, `pretrain --video`) and the teacher
helpers are in cli_videos.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from amslib.cli_real import add_agreement_parser, add_drift_parser, add_fetch_parser
from amslib.cli_videos import (
    add_cache_parser,
    add_clips_parser,
    add_download_parser,
    add_label_parser,
    frame_cached,
    pretrain_on_videos,
    split_classes,
    teacher_classes,
    teacher_for,
)
from amslib.core.config import parse_set_args, preset, with_overrides
from amslib.core.files import atomic_dir, atomic_write, write_json
from amslib.core.registry import SCHEMES

DEMO_SCHEMES = ("none", "one_time", "ams")
# The demo's uplink is the paper's, H.264 at 100 Kbps per sampled frame/s; AMS runs once more
# with lossless PNG frames, so both codecs show in its table.
DEMO_LINK = {"uplink_codec": "h264", "h264_kbps": 100.0}
DEMO_PNG_RUN = "ams_png_up"
CLAIMS_RUNS_MARKER = "CLAIMS_RUNS.txt"  # marks a folder of claims runs (that a new one may replace)


def _run_one(config, *, video=None, teacher=None, snapshots=(), students=None):
    """Run one scheme with a progress bar; keep the predictions at `snapshots` frames.
    Returns (result, predictions kept, the simulation)."""
    from amslib.analysis.runs import prediction_recorder, run_simulation  # deferred: slow import
    from amslib.sim.engine import Simulation  # deferred: slow import

    sim = Simulation.create(config, video=video, teacher=teacher, students=students)
    on_event, kept = prediction_recorder(snapshots)
    return run_simulation(sim, on_event=on_event, progress=True), kept, sim


def _table(summaries: dict[str, dict]) -> str:
    from amslib.analysis.results import SUMMARY_COLUMNS as keys  # deferred: slow import
    width = max(10, *(len(name) + 1 for name in summaries))
    cols = {k: max(12, len(k) + 2) for k in keys}
    lines = [f"{'scheme':<{width}}" + "".join(f"{k:>{cols[k]}}" for k in keys)]
    for name, s in summaries.items():
        cells = "".join(f"{s.get(k):>{cols[k]}.1f}" if isinstance(s.get(k), float) else f"{str(s.get(k, '')):>{cols[k]}}"
                        for k in keys)
        lines.append(f"{name:<{width}}" + cells)
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> None:

    from amslib.analysis.results import conditions_text  # deferred: slow import
    from amslib.data.video import open_video_for  # deferred: slow import

    overrides = {"video": "synthetic:street", **DEMO_LINK}
    if args.max_seconds:
        overrides["max_seconds"] = args.max_seconds
    base = with_overrides(preset(args.preset), overrides)
    video = open_video_for(base)
    n = video.num_frames if base.max_seconds is None else min(video.num_frames, int(base.max_seconds * base.fps))
    snapshots = [int(n * q) for q in (0.15, 0.4, 0.65, 0.9)]  # moments shown in demo.png
    with atomic_dir(args.out, marker="summary.json") as staging:  # the whole demo folder, or none
        summaries = _demo_runs(base, video, snapshots, staging)
    print(_table(summaries))
    print(f"conditions: {conditions_text(base)} ({DEMO_PNG_RUN}: the same AMS with a lossless PNG uplink)")
    out = Path(args.out)
    print(f"wrote {out / 'summary.json'}, {out / 'report.html'}, {out / 'demo.png'}")


def _demo_runs(base, video, snapshots: list[int], out: Path) -> dict[str, dict]:
    """The demo's runs on `video`, written to `out`; returns their summaries."""
    from amslib.analysis.plots import comparison_strip, write_report  # deferred: slow import
    from amslib.analysis.results import save_result  # deferred: slow import

    results, summaries, kept = {}, {}, {}
    students = None  # loaded and traced once, shared by every run
    runs = {scheme: {"scheme": scheme} for scheme in DEMO_SCHEMES}
    runs[DEMO_PNG_RUN] = {"scheme": "ams", "uplink_codec": "png"}
    for name, changes in runs.items():
        config = with_overrides(base, changes)
        results[name], kept[name], sim = _run_one(config, video=video, snapshots=snapshots, students=students)
        students = sim.students
        summaries[name] = results[name].summary()
    for scheme, result in results.items():
        save_result(result, out / scheme)
    write_json(out / "summary.json", summaries)
    write_report(results, summaries, out / "report.html")
    frames = np.stack([video.frames(f, f + 1)[0] for f in snapshots])
    labels = np.stack([video.labels(f, f + 1)[0] for f in snapshots])
    strip = comparison_strip(frames, labels, {s: np.stack([kept[s][f] for f in snapshots]) for s in DEMO_SCHEMES},
                             label_set=video.label_set, titles=[f"t = {f / video.fps:.0f} s" for f in snapshots])
    strip.save(out / "demo.png")
    return summaries


def cmd_run(args: argparse.Namespace) -> None:
    from amslib.analysis.results import conditions_text, save_result  # deferred: slow import
    from amslib.data.video import important_classes, open_video_for  # deferred: slow import
    from amslib.models.teachers import LabelFolderTeacher  # deferred: slow import

    from amslib.models.student import adopt_student_file  # deferred: slow import

    explicit = parse_set_args(args.set or [])
    overrides = {"video": args.video, "scheme": args.scheme, **explicit}
    if args.student:
        overrides["student"] = args.student
    config = adopt_student_file(with_overrides(preset(args.preset), overrides), set(explicit))
    teacher = LabelFolderTeacher(args.labels) if args.labels else None
    if args.teacher:
        teacher = teacher_for(args.teacher, labels=args.labels, label_set=args.label_set)
    label_set = getattr(teacher, "label_set", None) or args.label_set
    classes = important_classes(config.video, classes=split_classes(args.classes), manifest=args.manifest,
                                teacher_classes=teacher_classes(teacher, label_set) if teacher else None)
    video = open_video_for(config, classes=classes, label_set=label_set, manifest=args.manifest)
    if args.frame_cache:
        video = frame_cached(video)
    if config.server.devices > 1:
        return _run_fleet(config, video=video, teacher=teacher, out=args.out)
    with atomic_dir(args.out, marker="config.json") as staging:  # a complete run folder, or none
        result, _, sim = _run_one(config, video=video, teacher=teacher)
        save_result(result, staging)
    summary = result.summary()
    print(_table({config.scheme: summary}))
    print(_delivery_line(summary))
    print(f"conditions: {conditions_text(config, result.server_times)}")
    if getattr(teacher, "license", None):
        print(f"teacher licence: {teacher.license}")
    if sim.frames_read is not None:
        print(f"note: the video ended after {sim.frames_read} of the {sim.num_frames} frames its header "
              f"promised (a cut or damaged file?); the run covers its first {sim.frames_read / video.fps:g} s")
    out = Path(args.out)
    print(f"wrote {out}")


DELIVERY_KEYS = ("staleness_mean_s", "model_age_mean_s", "server_queue_wait_mean_s", "server_busy_s", "uplink_delivered_kbps",
                 "downlink_delivered_kbps", "uplink_queue_max_s", "downlink_queue_max_s", "uplink_dropped_sends",
                 "downlink_superseded")


def _delivery_line(summary: dict) -> str:
    """The server's and the links' numbers of a summary, as one line."""
    return "server and links: " + ", ".join(
        f"{k} {summary[k]:.3g}" if isinstance(summary[k], float) else f"{k} {summary[k]}"
        for k in DELIVERY_KEYS if summary.get(k) is not None)


def _run_fleet(config, *, video, teacher, out) -> None:
    """`run` with devices > 1: every device's tables, the server's log, one line per device."""
    from tqdm.auto import tqdm  # deferred: slow import

    from amslib.analysis.fleet import run_fleet, save_fleet  # deferred: slow import
    from amslib.analysis.results import conditions_text  # deferred: slow import

    n = config.server.devices
    total = n * (video.num_frames if config.max_seconds is None
                 else min(video.num_frames, round(config.max_seconds * video.fps)))
    bar = tqdm(total=total, desc=f"fleet of {n}", unit="frame")
    with atomic_dir(out, marker="fleet_summary.json") as staging:
        try:
            fleet = run_fleet(config, video=None if config.video.startswith("synthetic:") else video, teacher=teacher,
                              on_event=lambda k, e: bar.update(len(getattr(e, "rows", ())) if hasattr(e, "counts") else 0))
        finally:
            bar.close()
        save_fleet(fleet, staging)
    print(fleet.device_table().to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    s = fleet.summary()
    print(f"devices {s['devices']} on {s['gpus']} GPU(s), {s['scheduler']}: mIoU mean {s['miou_window']} worst "
          f"{s['miou_window_worst']}, staleness mean {s['staleness_mean_s']} s, model age mean "
          f"{s['model_age_mean_s']} s worst device {s['model_age_worst_s']} s, devices never served "
          f"{s['devices_unserved']}, GPU utilisation {s['gpu_utilisation']}")
    print(f"conditions: {conditions_text(config, fleet.server_times)}")
    print(f"wrote {out}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    from amslib.data.synthetic import source_samples  # deferred: slow import
    from amslib.models.pretrain import pretrain  # deferred: slow import
    from amslib.models.student import StudentSpec, build_student, save_student  # deferred: slow import

    if (args.teacher or args.init or args.freeze_backbone
            or (args.video or ["synthetic:street"]) != ["synthetic:street"]):
        return pretrain_on_videos(args)  # distillation from teachers on any videos
    from amslib.core.tf import keras  # deferred: slow import

    frames, labels = source_samples(args.samples, height=args.height, seed=args.seed)
    keras.utils.set_random_seed(args.seed)  # initial weights too: the file is reproducible
    model_spec = StudentSpec(height=args.height, width=2 * args.height, width_multiplier=args.width_multiplier)
    model = build_student(model_spec)
    from tqdm.auto import tqdm  # deferred: slow import

    bar = tqdm(total=args.steps, desc="pretrain", unit="step")

    class Progress(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            bar.update(1)
            bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.3f}")

    losses = pretrain(model, frames, labels, steps=args.steps, seed=args.seed, callbacks=[Progress()])
    bar.close()
    out = save_student(model, model_spec, args.out)
    print(f"final loss {losses[-1]:.4f}; wrote {out}")


def _sweep_base(args: argparse.Namespace, extra: dict | None = None):
    """The base config of a sweep or of claims: preset, then `extra`, then --set."""

    from amslib.models.student import adopt_student_file  # deferred: slow import

    explicit = parse_set_args(args.set or [])
    overrides = {"video": args.video, **(extra or {}), **explicit}
    if args.student:
        overrides["student"] = args.student
    return adopt_student_file(with_overrides(preset(args.preset), overrides), set(explicit))


def _job_progress(total: int, desc: str):
    """A tqdm bar over finished runs; returns (on_result, close)."""
    from tqdm.auto import tqdm  # deferred: slow import

    bar = tqdm(total=total, desc=desc, unit="run", leave=True, dynamic_ncols=True)

    def on_result(job, result) -> None:
        bar.update(1)
        bar.set_postfix_str(job.name[:40])
    return on_result, bar.close


def cmd_sweep(args: argparse.Namespace) -> None:
    from amslib.analysis.experiments import (  # deferred: slow import
        EXPERIMENTS,
        Sweep,
        experiment_jobs,
        parse_axes,
        run_sweep,
        save_sweep,
        sweep_figures,
        sweep_table,
    )

    extra = {"max_seconds": args.quick} if args.quick else {}
    base = _sweep_base(args, extra)
    axes = parse_axes(base, parse_set_args(args.axis or []))
    options = dict(labels=args.labels, label_set=args.label_set, manifest=args.manifest)
    jobs = experiment_jobs(args.experiment, base, quick=bool(args.quick), axes=axes, **options)
    with atomic_dir(args.out, marker="table.csv") as staging:  # the whole sweep folder, or none
        on_result, close = _job_progress(len(jobs), args.experiment)
        try:
            results = run_sweep(jobs, workers=args.workers, cluster=args.cluster, on_result=on_result)
        finally:
            close()
        table = sweep_table(jobs, results)
        experiment = EXPERIMENTS[args.experiment]
        figures = sweep_figures(table, heatmap=experiment.heatmap, title=args.experiment, extra=experiment.figure)
        save_sweep(Sweep(args.experiment, jobs, results, table, figures), staging)
    out = Path(args.out)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"wrote {out / 'table.csv'}, {out / 'report.html'} and {len(jobs)} runs under {out / 'runs'}")


def cmd_claims(args: argparse.Namespace) -> None:
    from amslib.analysis.claims import (  # deferred: slow import
        QUICK_SPANS,
        ClaimSpans,
        claim_jobs,
        claims_base,
        run_claims,
        write_claims,
    )

    street = with_overrides(claims_base(preset(args.preset)), {"video": "synthetic:street",
                                                               **parse_set_args(args.set or [])})
    if args.student:
        street = with_overrides(street, {"student": args.student})
    clip = with_overrides(street, {"video": args.video}) if args.video and args.video != street.video else None
    if clip is not None and not clip.video.startswith("synthetic:") and not args.labels:
        raise ValueError(f"video '{args.video}' needs a teacher: give a label folder (--labels DIR)")
    if args.from_runs:
        return _claims_from_runs(args)
    spans = QUICK_SPANS if args.quick else ClaimSpans()
    total = len(claim_jobs(street, spans)) + (len(claim_jobs(clip, spans)) if clip else 0)
    on_result, close = _job_progress(total, "claims")
    command = _claims_command(args)
    with atomic_dir(args.runs, marker=CLAIMS_RUNS_MARKER) as staging:  # every run's tables, or none
        try:
            report = run_claims(street, spans=spans, clip=clip, labels=args.labels, label_set=args.label_set,
                                manifest=args.manifest, workers=args.workers, cluster=args.cluster,
                                command=command, on_result=on_result)
        finally:
            close()
        (staging / CLAIMS_RUNS_MARKER).write_text(f"the runs behind {args.out}, made by {command}\n")
        path = write_claims(report, args.out, runs_dir=staging)  # the document itself: atomic
    for video, claims in report.claims.items():
        for c in claims:
            print(f"[{video}] {c.key:<10} {'holds' if c.holds else 'DOES NOT HOLD'}: {c.measured}"
                  + ("" if c.holds else f" ({c.reason})"))
    print(f"wrote {path} and the runs under {args.runs}")


def cmd_server_profile(args: argparse.Namespace) -> None:
    from amslib.analysis.bench import machine_info  # deferred: slow import
    from amslib.core.files import write_json  # deferred: slow import
    from amslib.data.video import open_video_for  # deferred: slow import
    from amslib.models.teachers import OracleTeacher  # deferred: slow import
    from amslib.sim.engine import Students, measure_server_times  # deferred: slow import

    entries = []
    for name in args.preset or ["laptop", "paper"]:
        config = with_overrides(preset(name), parse_set_args(args.set or []))
        video = open_video_for(config)
        times = measure_server_times(config, video, OracleTeacher(), Students.load(config, video))
        entry = {"height": config.height, "width_multiplier": config.width_multiplier,
                 "output_stride": config.output_stride, "head_channels": config.head_channels,
                 "step_base_s": round(times.step_base_s, 5), "step_frame_s": round(times.step_frame_s, 5),
                 "teacher_frame_s": round(times.teacher_frame_s, 5)}
        entries.append(entry)
        step = times.step_base_s + config.adapt.batch_size * times.step_frame_s
        print(f"{name}: ProfileEntry({', '.join(f'{k}={v}' for k, v in entry.items())})  "
              f"# a step of {config.adapt.batch_size}: {step:.3f} s")
    machine = machine_info()
    print(f"hardware: {machine['cores']} cores, {machine['cpu']}, GPUs: {', '.join(machine['gpus']) or 'none'}")
    if args.out:
        write_json(Path(args.out), {"hardware": machine, "entries": entries})
        print(f"wrote {args.out}")


def _claims_from_runs(args: argparse.Namespace) -> None:
    from amslib.analysis.claims import load_claims, write_claims  # deferred: slow import

    report = load_claims(args.runs)
    path = write_claims(report, args.out)
    print(f"wrote {path} from the runs under {args.runs} (made by {report.command})")


def _claims_command(args: argparse.Namespace) -> str:
    """The command line that reproduces a claims document (written into it)."""
    parts = ["python -m amslib claims"]
    for flag, value in (("--video", args.video), ("--labels", args.labels), ("--preset", args.preset),
                        ("--student", args.student)):
        if value and not (flag == "--preset" and value == "laptop"):
            parts.append(f"{flag} {value}")
    if args.set:
        parts.append("--set " + " ".join(args.set))
    if args.quick:
        parts.append("--quick")
    return " ".join(parts)


def cmd_bench(args: argparse.Namespace) -> None:
    from amslib.analysis.bench import (  # deferred: slow import
        markdown,  # deferred: slow import
        run_bench,
        write_bench,
    )

    result = run_bench(quick=args.quick)
    write_bench(result, Path(args.out))
    print(f"wrote {args.out}")
    if args.markdown:
        atomic_write(Path(args.markdown), lambda tmp: Path(tmp).write_text(markdown(result)))
        print(f"wrote {args.markdown}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m amslib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="none, one_time and ams on synthetic:street (H.264 uplink; AMS also "
                          "with PNG), with a report")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--preset", default="laptop")
    demo.add_argument("--quick", action="store_const", const=120.0, dest="max_seconds",
                      help="only the first 120 s (a fast check)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="one scheme on one video")
    run.add_argument("--video", default="synthetic:street",
                     help="synthetic:street, a data_manifest.csv video_id, or a local video file")
    run.add_argument("--scheme", default="ams", help="one of: " + ", ".join(SCHEMES))
    run.add_argument("--labels", help="folder of gt_%%06d.png teacher labels (needed for files)")
    run.add_argument("--teacher", help="oracle, deeplab:MODEL, tflite:PATH, keras:PATH or labels:DIR "
                     "(options after '?'); labels are cached")
    run.add_argument("--classes", help="important classes, ';'-separated (default: the manifest's for a "
                     "manifest video_id, else the teacher's)")
    run.add_argument("--frame-cache", action="store_true",
                     help="keep decoded frames on disk ($AMS_DATA_DIR/frames) for repeated runs")
    run.add_argument("--label-set", default="cityscapes19", help="label set of --labels")
    run.add_argument("--preset", default="laptop")
    run.add_argument("--manifest", help="a data_manifest.csv other than the repository's")
    run.add_argument("--student", help="student weights (.weights.h5)")
    run.add_argument("--set", nargs="*", action="extend", metavar="KEY=VALUE",
                     help="override any parameter (repeatable: every --set applies)")
    run.add_argument("--out", required=True)
    run.set_defaults(func=cmd_run)

    pre = sub.add_parser("pretrain", help="pretrain a student on the synthetic source domain")
    pre.add_argument("--video", action="append", help="a video to learn from (repeat for several; "
                     "default synthetic:street)")
    pre.add_argument("--teacher", action="append", help="its teacher spec (one for all videos, or one "
                     "per --video, in order)")
    pre.add_argument("--label-set", help="voc21 or cityscapes19 (default: the teachers')")
    pre.add_argument("--init", help="start from weights: 'imagenet' (the shipped ImageNet MobileNetV2 backbone, "
                     "width 1.0), .weights.h5, a TF1 checkpoint, an AMS dict or a .npz")
    pre.add_argument("--freeze-backbone", action="store_true",
                     help="fit only the head, on backbone features computed once (keeps --init imagenet's features)")
    pre.add_argument("--init-exclude", action="append", default=[], metavar="LAYER",
                     help="layers of --init to leave out, e.g. logits_semantic for a new label set")
    pre.add_argument("--out", required=True)
    pre.add_argument("--steps", type=int, default=1500)
    pre.add_argument("--samples", type=int, default=1500)
    pre.add_argument("--height", type=int, default=128)
    pre.add_argument("--width-multiplier", type=float, default=1.0)
    pre.add_argument("--seed", type=int, default=0)
    pre.set_defaults(func=cmd_pretrain)
    sweep = sub.add_parser("sweep", help="an experiment's grid of runs, in parallel: table and plots")
    sweep.add_argument("experiment", help="schemes, strategies, horizon, asr, encoders or capacity")
    _add_sweep_options(sweep)
    sweep.add_argument("--axis", nargs="*", action="extend", metavar="KEY=V1,V2",
                       help="replace the values of a grid axis, e.g. fraction=0.05,0.1")
    sweep.add_argument("--quick", action="store_const", const=120.0,
                       help="a small grid on the first 120 s (a fast check)")
    sweep.add_argument("--out", required=True)
    sweep.set_defaults(func=cmd_sweep)

    claims = sub.add_parser("claims", help="the paper's claims against measurements: docs/claims.md")
    _add_sweep_options(claims)
    claims.set_defaults(video=None)
    claims.add_argument("--quick", action="store_true", help="short spans (a fast check, not the doc)")
    claims.add_argument("--out", default="docs/claims.md")
    claims.add_argument("--runs", default="runs/claims", help="where every run's tables go")
    claims.add_argument("--from-runs", action="store_true",
                        help="write --out again from the runs saved under --runs, running nothing")
    claims.set_defaults(func=cmd_claims)

    add_download_parser(sub)
    add_label_parser(sub)
    add_agreement_parser(sub)
    add_fetch_parser(sub)
    add_drift_parser(sub)
    add_clips_parser(sub)
    add_cache_parser(sub)
    _add_runs_parser(sub)
    bench = sub.add_parser("bench", help="measure speed and memory; print and write JSON")
    bench.add_argument("--quick", action="store_true", help="fewer frames, shorter runs")
    bench.add_argument("--out", default="runs/bench.json")
    bench.add_argument("--markdown", help="also write a report (e.g. docs/BENCHMARKS.md)")
    bench.set_defaults(func=cmd_bench)
    prof = sub.add_parser("server-profile", help="time the server's training step and teacher here: a profile "
                          "entry for amslib/core/profiles.py, and the measured cache")
    prof.add_argument("--preset", action="extend", nargs="+", default=None,
                      help="presets to measure (default: laptop paper)")
    prof.add_argument("--set", nargs="*", action="extend", metavar="KEY=VALUE", help="override any parameter")
    prof.add_argument("--out", help="also write the entries as JSON here")
    prof.set_defaults(func=cmd_server_profile)
    return parser


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `sweep` and `claims`."""
    parser.add_argument("--video", default="synthetic:street",
                        help="synthetic:street, a data_manifest.csv video_id, or a local video file")
    parser.add_argument("--labels", help="folder of gt_%%06d.png teacher labels (needed for files)")
    parser.add_argument("--label-set", default="cityscapes19", help="label set of --labels")
    parser.add_argument("--manifest", help="a data_manifest.csv other than the repository's")
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--student", help="student weights (.weights.h5)")
    parser.add_argument("--set", nargs="*", action="extend", metavar="KEY=VALUE",
                        help="override any parameter of every run (repeatable: every --set applies)")
    parser.add_argument("--workers", type=int, help="parallel runs on this machine (default: one per core)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run on a Dask cluster instead (scheduler address, e.g. tcp://host:8786)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (ValueError, FileNotFoundError, KeyError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every output is staged and renamed when complete (core.files)
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    return code or 0


# --------------------------------------------------------------------------- saved runs


def _add_runs_parser(sub) -> None:
    runs = sub.add_parser("runs", help="list the runs saved under a folder (searched recursively): scheme, video, "
                          "the parameters that differ, mIoU, Kbps, updates, date")
    runs.add_argument("dir", nargs="?", default="runs", help="the folder to search (default: runs)")
    runs.add_argument("--scheme", help="only runs of these schemes (','-separated)")
    runs.add_argument("--video", help="only runs on these videos (','-separated)")
    runs.add_argument("--sort", default="date", metavar="COLUMN",
                      help="sort by this column, e.g. miou_window, downlink_kbps or a parameter (default: date)")
    runs.add_argument("--reverse", action="store_true", help="largest (or newest) first")
    runs.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> None:
    from amslib.analysis.saved_runs import list_runs, runs_text  # deferred: slow import

    def split(text: str | None) -> list[str] | None:
        return [part.strip() for part in text.split(",") if part.strip()] if text else None

    table = list_runs(args.dir, scheme=split(args.scheme), video=split(args.video), sort_by=args.sort,
                      descending=args.reverse,
                      on_skip=lambda folder, reason: print(f"skipped {folder}: {reason}", file=sys.stderr))
    print(runs_text(table))
    print(f"{len(table)} run(s) under {args.dir}; in Python: ams.load_run({table['path'][0]!r}) (the first)")
