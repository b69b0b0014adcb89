"""The command line's video commands and helpers (`python -m amslib` is amslib/cli.py):
teachers and labelling (`label`), pretraining a student on videos (`pretrain --video`),
`download`, `cache` and the real-clip benchmark (`clips`). Same rules as cli.py: one line per
user error, outputs written atomically, slow imports deferred to the command that needs them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amslib.core.config import parse_set_args, preset, with_overrides
from amslib.core.files import atomic_dir, data_root, frames_dir, labels_dir
from amslib.core.labels import get_label_set
from amslib.core.progress import progress_bar
from amslib.core.registry import SCHEMES


def cmd_download(args: argparse.Namespace) -> None:
    from amslib.data import download as dl  # deferred: slow import

    if args.source:  # a file got by hand: cut only if --start/--end say so
        name = args.name or (dl.name_for_url(args.video) if "://" in args.video else args.video)
        request = dl.Request("local", name, args.start, args.end, args.max_height)
        clip = dl.import_local(args.source, request, out_dir=args.out, fps=args.fps)
    else:
        request = dl.request_for(args.video, start_s=args.start, end_s=args.end, max_height=args.max_height,
                                 name=args.name, manifest=args.manifest)
        options = dl.Options(retries=args.retries)
        with progress_bar(request.name, unit="s") as update:
            clip = dl.fetch(request, out_dir=args.out, options=options,
                            on_progress=lambda p: update(p.done, p.total))
    print(f"{'cached' if clip.cached else 'wrote'} {clip.path} ({clip.frames} frames, {clip.fps:g} fps, "
          f"{clip.duration_s:.1f} s, {clip.width}x{clip.height}; sha256 {clip.sha256[:16]}...)")



# --------------------------------------------------------------------------- teachers, labelling


def teacher_for(spec: str, *, labels: str | None = None, label_set: str | None = None):
    """The teacher of a --teacher spec; model teachers get the on-disk label cache."""
    from amslib.models.teachers import (  # deferred: slow import
        CachedTeacher,
        LabelFolderTeacher,
        OracleTeacher,
    )

    if labels:
        raise ValueError("give --labels DIR or --teacher SPEC, not both (labels:DIR is a teacher spec)")
    teacher = _parse_with_progress(spec, label_set)
    if isinstance(teacher, (OracleTeacher, LabelFolderTeacher)):
        return teacher
    cached = CachedTeacher(teacher, labels_dir())
    cached.label_set = teacher.label_set
    cached.classes = getattr(teacher, "classes", None)
    return cached


def _parse_with_progress(spec: str, label_set: str | None):
    """parse_teacher with a progress bar for a model-zoo download (shown only if one runs)."""
    from amslib.models.zoo import parse_teacher  # deferred: slow import

    with progress_bar("model", unit="B", scale=True) as update:
        return parse_teacher(spec, default_label_set=label_set, on_progress=lambda p: update(p.done, p.total))


def split_classes(text: str | None) -> tuple[str, ...] | None:
    """--classes 'road;car' (or 'road,car') -> ('road', 'car'); None when not given."""
    if not text:
        return None
    return tuple(c.strip() for c in text.replace(",", ";").split(";") if c.strip())


def teacher_classes(teacher, label_set: str) -> tuple[str, ...]:
    """The classes a label folder holds or a model can output, else all of the label set."""
    from amslib.models.teachers import LabelFolderTeacher  # deferred: slow import

    names = get_label_set(label_set).names
    if isinstance(teacher, LabelFolderTeacher):
        return teacher.present_classes(names)
    return tuple(getattr(teacher, "classes", None) or names)


def frame_cached(video):
    from amslib.data.video import CachedVideo, FileVideo  # deferred: slow import

    return CachedVideo(video, frames_dir()) if isinstance(video, FileVideo) else video


def open_at_native_fps(spec: str, *, height: int, fps: float | None, label_set: str | None,
                       manifest: str | None, classes: tuple[str, ...] | None = None):
    """Open a video at `fps`, or a file at its own frame rate when fps is None."""
    from amslib.data.video import FileVideo, open_video  # deferred: slow import

    options = dict(height=height, label_set=label_set, manifest=manifest, classes=classes)
    if fps is None and Path(spec).is_file():
        from amslib.data.download import probe  # deferred: slow import

        fps = probe(spec).fps  # reads the header only: cheaper than opening the video twice
    video = open_video(spec, fps=fps or 10.0, **options)
    if fps is None and isinstance(video, FileVideo) and video.native_fps != video.fps:
        video = open_video(spec, fps=video.native_fps, **options)
    return video


def cmd_label(args: argparse.Namespace) -> None:
    from amslib.models.teachers import label_video  # deferred: slow import

    teacher = _parse_with_progress(args.teacher, args.label_set)
    video = open_at_native_fps(args.video, height=args.height, fps=args.fps, manifest=args.manifest,
                                label_set=teacher.label_set or args.label_set)
    with progress_bar("label", unit="frame", total=video.num_frames) as update:
        report = label_video(video, teacher, args.out, cache_root=labels_dir(), on_progress=update)
    source = "from the cache" if report.cached else f"with {teacher.name}"
    print(f"wrote {report.frames} labels ({video.height}x{video.width}, {video.fps:g} fps) to "
          f"{report.out_dir} {source} in {report.seconds:.2f} s")
    if getattr(teacher, "license", None):
        print(f"licence: {teacher.license}")


def add_label_parser(sub) -> None:
    label = sub.add_parser("label", help="label every frame of a video with a teacher (gt_%%06d.png)")
    label.add_argument("--video", required=True, help="a local video file, a manifest video_id, real:NAME or "
                       "synthetic:street")
    label.add_argument("--teacher", required=True,
                       help="oracle, rvm, deeplab:MODEL, tflite:PATH, tfjs:PATH, keras:PATH or labels:DIR "
                            "(options after '?')")
    label.add_argument("--out", required=True, help="folder for gt_%%06d.png (native frame index)")
    label.add_argument("--height", type=int, default=256, help="label resolution: height x 2*height")
    label.add_argument("--fps", type=float, help="frames per second to label (default: every frame)")
    label.add_argument("--label-set", default="cityscapes19", help="label set of a labels:DIR teacher")
    label.add_argument("--manifest", help="a data_manifest.csv other than the repository's")
    label.set_defaults(func=cmd_label)


# --------------------------------------------------------------------------- pretraining on videos


def _pretrain_label_set(teachers, wanted: str | None) -> str:
    """The label set of the pretraining: --label-set, else the one the teachers agree on."""
    sets = {t.label_set for t in teachers if getattr(t, "label_set", None)}
    if wanted and sets - {wanted}:
        raise ValueError(f"--label-set {wanted} does not match the teachers' label set(s) {', '.join(sorted(sets))}")
    if len(sets) > 1:
        raise ValueError(f"the teachers label in different sets ({', '.join(sorted(sets))}); pretrain on one")
    return wanted or (sets.pop() if sets else "cityscapes19")


def _pretraining_pairs(args):
    """[(video, teacher)] of the --video/--teacher pairs, and their label set."""

    videos = args.video or ["synthetic:street"]
    specs = args.teacher or ["oracle"]
    if len(specs) == 1:
        specs = specs * len(videos)
    if len(specs) != len(videos):
        raise ValueError(f"{len(videos)} --video but {len(specs)} --teacher; give one teacher, or one per video")
    teachers = [teacher_for(spec, label_set=args.label_set) for spec in specs]
    label_set = _pretrain_label_set(teachers, args.label_set)
    pairs = [(open_at_native_fps(v, height=args.height, fps=None, label_set=label_set, manifest=None), t)
             for v, t in zip(videos, teachers)]
    return pairs, get_label_set(label_set)


def pretrain_on_videos(args: argparse.Namespace) -> None:
    from amslib.core.tf import keras  # deferred: slow import
    from amslib.models.pretrain import pretrain_on_videos  # deferred: slow import
    from amslib.models.student import StudentSpec, save_student  # deferred: slow import

    pairs, label_set = _pretraining_pairs(args)
    spec = StudentSpec(num_classes=label_set.num_classes, height=args.height, width=2 * args.height,
                       width_multiplier=args.width_multiplier)

    class Progress(keras.callbacks.Callback):
        def __init__(self, update):
            super().__init__()
            self.update, self.step = update, 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            self.update(self.step)

    with progress_bar("pretrain", unit="step", total=args.steps) as update:
        model, losses, count = pretrain_on_videos(pairs, spec, steps=args.steps, samples=args.samples,
                                                  seed=args.seed, init=args.init, exclude=tuple(args.init_exclude),
                                                  freeze_backbone=args.freeze_backbone, callbacks=[Progress(update)])
    out = save_student(model, spec, args.out)
    print(f"{count} frames ({label_set.name}), final loss {losses[-1]:.4f}; wrote {out}")


def add_download_parser(sub) -> None:
    down = sub.add_parser("download", help="download a manifest video or a URL (cut, cached, resumable)")
    down.add_argument("video", help="a data_manifest.csv video_id or a URL (YouTube or a direct file)")
    down.add_argument("--start", type=float, help="section start in seconds (default: the manifest's)")
    down.add_argument("--end", type=float, help="section end in seconds (default: the manifest's)")
    down.add_argument("--max-height", type=int, default=480, help="tallest format to fetch (pixels)")
    down.add_argument("--out", help="output folder (default: $AMS_DATA_DIR/videos, where run looks)")
    down.add_argument("--name", help="file name stem (default: the video_id, or the URL's id)")
    down.add_argument("--from", dest="source", metavar="PATH",
                      help="import a video, image folder or image tar you downloaded by hand")
    down.add_argument("--fps", type=float, help="frame rate of images imported with --from")
    down.add_argument("--retries", type=int, default=3, help="retries of network errors")
    down.add_argument("--manifest", help="a data_manifest.csv other than the repository's")
    down.set_defaults(func=cmd_download)


def add_cache_parser(sub) -> None:
    cache = sub.add_parser("cache", help="what the data root holds (kind, key, size, age); --verify checks it, "
                           "--clear KIND removes one kind")
    cache.add_argument("--verify", action="store_true",
                       help="check every entry that records a checksum (exit 1 if any is damaged)")
    cache.add_argument("--clear", metavar="KIND",
                       help="remove one kind: labels, frames, server_times, runs, videos, models or examples")
    cache.set_defaults(func=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    from amslib.analysis import cache  # deferred: it imports the teachers

    if args.clear:
        removed = cache.clear(args.clear)
        print(f"removed {removed}" if removed else f"no {args.clear} under {data_root()}")
        return 0
    found = cache.entries()
    if not found:
        print(f"{data_root()} holds no cache")
        return 0
    print(f"{data_root()}:")
    for entry in found:
        if args.verify:
            cache.verify(entry)
        status = f"  {entry.status}" if entry.status else ""
        print(f"{entry.kind:<12} {entry.key:<40} {cache.human_size(entry.bytes):>10} {cache.human_age(entry.age_s):>8}{status}")
    damaged = [e for e in found if e.damaged]
    if args.verify:
        print(f"{len(damaged)} damaged of {len(found)} entries" if damaged else f"all {len(found)} entries sound "
              "(those that record a checksum checked)")
    return 1 if damaged else 0


# --------------------------------------------------------------------------- the real-clip benchmark


def add_clips_parser(sub) -> None:
    clips = sub.add_parser("clips", help="the real-clip benchmark: a leave-one-out ImageNet student per example "
                           "clip, every scheme on it; writes the table")
    clips.add_argument("--clips", help="','-separated example clips (default: all of amslib.data.examples.CLIPS)")
    clips.add_argument("--steps", type=int, default=300, help="pretraining steps of each leave-one-out student")
    clips.add_argument("--train-backbone", action="store_true",
                       help="train every layer (default: fit only the head, on frozen ImageNet features computed once)")
    clips.add_argument("--max-seconds", type=float, default=30.0, help="each clip's first seconds (default 30: "
                       "only vtest is longer)")
    clips.add_argument("--held-out", help="','-separated clips to run (default: every clip of --clips); each "
                       "student still fits on all the other clips")
    clips.add_argument("--schemes", help="','-separated schemes (default: none,one_time,ams,bn_adapt,tent,edge_train)")
    clips.add_argument("--set", nargs="+", metavar="KEY=VALUE", action="extend",
                       help="run settings on top of the benchmark's own (e.g. lr=0.0001), for every run; the "
                            "table's .json records them")
    clips.add_argument("--teacher", default="tflite:selfie_landscape", help="the truth (e.g. rvm)")
    clips.add_argument("--student", help="one student for every held-out clip instead of a leave-one-out one each "
                       "(fewer folds; it must not have learnt from the clips it runs on)")
    clips.add_argument("--runs", default="runs/clips", help="where every run's tables and students go")
    clips.add_argument("--out", default="docs/real_clips.csv", help="the table (a .json of config and timings beside it)")
    clips.set_defaults(func=cmd_clips)


def cmd_clips(args: argparse.Namespace) -> None:
    from amslib.analysis.real_clips import (  # deferred: slow import
        RUN_OVERRIDES,
        BenchmarkConfig,
        benchmark_markdown,
        run_benchmark,
        save_benchmark,
    )
    from amslib.data.examples import CLIPS  # deferred: slow import

    names = tuple(c.strip() for c in args.clips.split(",")) if args.clips else tuple(CLIPS)
    unknown = [c for c in names if c not in CLIPS]
    if unknown or len(names) < 2:
        raise ValueError(f"--clips needs two or more of: {', '.join(CLIPS)}" + (f" (unknown: {', '.join(unknown)})"
                                                                                 if unknown else ""))
    held_out = tuple(c.strip() for c in args.held_out.split(",")) if args.held_out else None
    if held_out is not None and not set(held_out) <= set(names):
        raise ValueError(f"--held-out must name clips of --clips ({', '.join(names)}); got {args.held_out}")
    schemes = tuple(s.strip() for s in args.schemes.split(",")) if args.schemes else BenchmarkConfig.schemes
    for scheme in schemes:
        SCHEMES.check(scheme)
    overrides = tuple(parse_set_args(args.set or []).items())
    if args.student and held_out is None:
        raise ValueError("--student runs one student on the --held-out clips: name them (none it learnt from)")
    config = BenchmarkConfig(clips=names, pretrain_steps=args.steps, max_seconds=args.max_seconds,
                             freeze_backbone=not args.train_backbone, held_out=held_out, schemes=schemes,
                             run_overrides=RUN_OVERRIDES + overrides, teacher=args.teacher, student=args.student)
    with_overrides(preset(config.preset), dict(config.run_overrides))  # a bad --set fails here, in one line
    with atomic_dir(args.runs, marker=CLIPS_RUNS_MARKER) as staging:
        (staging / CLIPS_RUNS_MARKER).write_text("runs of `python -m amslib clips`\n")
        table, timings = run_benchmark(config, staging, on_stage=lambda text: print(text, file=sys.stderr, flush=True))
        out = save_benchmark(table, timings, config, args.out)
    print(benchmark_markdown(table))
    print(f"labelling {sum(timings['label_s'].values()):.0f} s, pretraining {sum(timings['pretrain_s'].values()):.0f} s, "
          f"runs {sum(timings['runs_s'].values()):.0f} s; wrote {out} and {args.runs}")


CLIPS_RUNS_MARKER = "CLIPS_RUNS.txt"  # marks a folder of `clips` runs (that a new one may replace)
