"""The real-clip benchmark: every example clip (amslib.data.examples), a student from ImageNet.

For each clip: the selfie teacher labels it (cached), a student whose backbone is the shipped
ImageNet MobileNetV2 has its head fitted on the *other* clips' labelled frames (leave one out,
backbone frozen: `pretrain_head`), and every scheme of `BenchmarkConfig.schemes` runs on the
clip with one set of parameters for all clips (never tuned per clip). `python -m amslib clips`
writes the table (docs/real_clips.csv) with how long each stage took; `docs/claims.md` reads it.

The clips last 4-80 s, the paper's videos 7-15 minutes: updates come every `update_interval_s`
(5 s here, the paper's 10 s) from `first_update_s`, so a clip with fewer than `min_updates`
AMS updates is marked "too short for AMS to pay" in the table's `note`.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from amslib.analysis.results import save_result
from amslib.analysis.runs import run_simulation
from amslib.core.config import preset, with_overrides
from amslib.core.files import atomic_write, frames_dir, labels_dir, write_json
from amslib.core.labels import VOC21
from amslib.data.examples import CLIPS, example_clip
from amslib.data.video import CachedVideo, open_video
from amslib.models.checkpoints import IMAGENET, load_initial_weights
from amslib.models.pretrain import pretrain, pretrain_head, spec_for_init
from amslib.models.student import StudentSpec, adopt_student_file, build_student, save_student
from amslib.models.teachers import CachedTeacher
from amslib.models.zoo import parse_teacher
from amslib.sim.engine import Simulation

# The same for every clip: the laptop preset's schemes, at the clips' time scale.
RUN_OVERRIDES = (("first_update_s", 5.0), ("update_interval_s", 5.0), ("one_time_s", 5.0),
                 ("horizon_s", 60.0), ("warmup_s", 0.0), ("window_s", 5.0), ("one_time_iterations", 30))
TABLE_COLUMNS = ("clip", "scheme", "frames", "duration_s", "iou_person", "iou_background", "miou_pooled",
                 "miou_window", "truth_person_pct", "pred_person_pct", "pred_person_pct_updated", "uplink_kbps",
                 "downlink_kbps", "num_updates", "run_s", "note")


@dataclass(frozen=True)
class BenchmarkConfig:
    """What the benchmark runs. `samples_per_clip`: labelled frames of each other clip that
    fit a student's head, for `pretrain_steps` Adam steps; `run_overrides` apply to every run."""

    clips: tuple[str, ...] = tuple(CLIPS)
    teacher: str = "tflite:selfie_landscape"
    preset: str = "laptop"
    width_multiplier: float = 1.0  # the ImageNet backbone's width (docs/students.md: why not 0.5)
    pretrain_steps: int = 300
    # Fit the head only, on features computed once (a 2-core budget); False trains every layer
    # (`pretrain`): far better on carphone (docs/students.md, "Students from ImageNet") at ~3 s a step here.
    freeze_backbone: bool = True
    samples_per_clip: int = 40
    schemes: tuple[str, ...] = ("none", "one_time", "ams", "bn_adapt", "tent", "edge_train")
    run_overrides: tuple[tuple[str, object], ...] = RUN_OVERRIDES
    min_updates: int = 3
    max_seconds: float | None = 30.0  # each clip's first 30 s (only vtest, 79.5 s, is longer): a 2-core budget
    seed: int = 0
    # the clips that are held out and run (None: every clip); each student still fits on all the others
    held_out: tuple[str, ...] | None = None
    # one student for every held-out clip instead of a leave-one-out student each (fewer folds:
    # the clips it learnt from must not be among those run)
    student: str | None = None

    def run_config(self, clip_path: Path, student: Path, seconds: float):
        base = preset(self.preset)
        config = with_overrides(base, {**dict(self.run_overrides), "video": str(clip_path), "student": str(student),
                                       "width_multiplier": self.width_multiplier, "max_seconds": seconds,
                                       "seed": self.seed})
        return adopt_student_file(config, set(dict(self.run_overrides)))


@dataclass
class LabelledClip:
    """A clip decoded at the preset's size and fps, every frame labelled by the teacher."""

    name: str
    video: object
    frames: np.ndarray  # (N, H, W, 3) uint8, the frames the file really holds
    labels: np.ndarray  # (N, H, W) uint8 VOC ids

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.video.fps


def label_clip(name: str, config: BenchmarkConfig, teacher: CachedTeacher, cache: Path) -> LabelledClip:
    """Decode a clip (frames cached) and label every frame it really holds (labels cached)."""
    run = preset(config.preset)
    video = CachedVideo(open_video(str(example_clip(name)), height=run.height, fps=run.fps, label_set=VOC21.name,
                                   classes=teacher.teacher.classes), cache)
    stop = video.num_frames if config.max_seconds is None else min(video.num_frames, int(config.max_seconds * run.fps))
    frames = video.frames(0, stop)  # a header may promise more frames than the file holds
    labels = teacher.labels(video, 0, len(frames), frames=frames)
    return LabelledClip(name, video, frames, labels)


def leave_one_out_student(held_out: str, clips: dict[str, LabelledClip], config: BenchmarkConfig, out: Path) -> Path:
    """A student from ImageNet fitted on every clip but `held_out` (its head only, unless
    `config.freeze_backbone` is False)."""
    others = [c for name, c in clips.items() if name != held_out]
    picks = [np.unique(np.linspace(0, len(c.frames) - 1, config.samples_per_clip).round().astype(int)) for c in others]
    frames = np.concatenate([c.frames[p] for c, p in zip(others, picks)])
    labels = np.concatenate([c.labels[p] for c, p in zip(others, picks)])
    run = preset(config.preset)
    spec = spec_for_init(StudentSpec(num_classes=VOC21.num_classes, height=run.height, width=run.width,
                                     width_multiplier=config.width_multiplier), IMAGENET)
    model = build_student(spec)
    load_initial_weights(model, IMAGENET)
    fit = pretrain_head if config.freeze_backbone else pretrain
    fit(model, frames, labels, steps=config.pretrain_steps, seed=config.seed)
    return save_student(model, spec, out)


def clip_rows(name: str, results: dict, seconds: dict[str, float], config: BenchmarkConfig) -> list[dict]:
    """One table row per scheme of a clip's runs. Besides the scores: the share of pixels the
    teacher calls person (`truth_person_pct`), the share the edge showed as person over the run
    (`pred_person_pct`) and from the first new model on (`pred_person_pct_updated`; NaN for a
    scheme that never changed its model): a class the updates erase shows as 0 there."""
    ams = results.get("ams")
    updates = ams.summary()["num_updates"] if ams is not None else None
    shares = {scheme: person_shares(result) for scheme, result in results.items()}
    notes = []
    if updates is not None and updates < config.min_updates:
        notes.append(f"too short for AMS to pay: {updates} update(s) (fewer than {config.min_updates})")
    if ams is not None and shares["ams"][2] == 0.0:
        notes.append("AMS's updates erased the person class (none shown after the first)")
    rows = []
    for scheme, result in results.items():
        s = result.summary()
        truth, shown, updated = shares[scheme]
        rows.append({"clip": name, "scheme": scheme, "frames": len(result.frames), "duration_s": s["duration_s"],
                     "iou_person": s["iou_per_class"].get("person"), "iou_background": s["iou_per_class"].get("background"),
                     "miou_pooled": s["miou_pooled"], "miou_window": s["miou_window"], "truth_person_pct": truth,
                     "pred_person_pct": shown, "pred_person_pct_updated": updated, "uplink_kbps": s["uplink_kbps"],
                     "downlink_kbps": s["downlink_kbps"], "num_updates": s["num_updates"], "run_s": seconds[scheme],
                     "note": "; ".join(notes)})
    return rows


def person_shares(result) -> tuple[float, float, float]:
    """(% of the run's pixels the teacher calls person, % the edge showed as person, % it showed
    as person once its model version was past 0: NaN for `none`, and for `bn_adapt` and `tent`,
    which adapt in place without a new version)."""
    k = list(result.classes).index("person")
    counts = result.counts()[:, k].astype(float)  # (N, 3): TP, FP, FN
    pixels = float(result.config.height * result.config.width)
    truth = 100.0 * (counts[:, 0] + counts[:, 2]).sum() / (pixels * len(counts))
    shown = counts[:, 0] + counts[:, 1]
    changed = result.frames["model_version"].to_numpy() > 0
    updated = 100.0 * shown[changed].sum() / (pixels * changed.sum()) if changed.any() else float("nan")
    return truth, 100.0 * shown.sum() / (pixels * len(counts)), updated


def run_benchmark(config: BenchmarkConfig, out: str | Path, *,
                  on_stage: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """Label every clip, fit a leave-one-out student per clip, run every scheme on it; every
    run's tables go under `out/<clip>/<scheme>/`. Returns (table, timings in seconds)."""
    out, say = Path(out), on_stage or (lambda text: None)
    teacher = CachedTeacher(parse_teacher(config.teacher), labels_dir())
    timings: dict = {"label_s": {}, "pretrain_s": {}, "runs_s": {}}
    clips = {}
    for name in config.clips:
        say(f"labelling {name}")
        start = time.perf_counter()
        clips[name] = label_clip(name, config, teacher, frames_dir())
        timings["label_s"][name] = time.perf_counter() - start
    rows = []
    for name, clip in clips.items():
        if config.held_out is not None and name not in config.held_out:
            continue
        start = time.perf_counter()
        if config.student is None:
            say(f"pretraining a student without {name}")
            student = leave_one_out_student(name, clips, config, out / name / "student.weights.h5")
        else:
            student = Path(config.student)
        timings["pretrain_s"][name] = time.perf_counter() - start
        say(f"running {', '.join(config.schemes)} on {name}")
        results, seconds = _run_schemes(config.run_config(example_clip(name), student, clip.seconds), clip, teacher,
                                        config.schemes)
        timings["runs_s"][name] = sum(seconds.values())
        for scheme, result in results.items():
            save_result(result, out / name / scheme)
        rows += clip_rows(name, results, seconds, config)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), timings


def _run_schemes(base, clip: LabelledClip, teacher, schemes) -> tuple[dict, dict[str, float]]:
    """{scheme: result} and {scheme: wall seconds}; the students are loaded once (each run
    starts from the pretrained weights), so the first scheme's time includes loading them."""
    results, seconds, students = {}, {}, None
    for scheme in schemes:
        start = time.perf_counter()
        sim = Simulation.create(replace(base, scheme=scheme), video=clip.video, teacher=teacher, students=students)
        students = sim.students
        results[scheme] = run_simulation(sim)
        seconds[scheme] = time.perf_counter() - start
    return results, seconds


def save_benchmark(table: pd.DataFrame, timings: dict, config: BenchmarkConfig, path: str | Path) -> Path:
    """The table as CSV at `path`, and beside it `<stem>.json`: the config and the timings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.2f"))
    config_dict = {k: v for k, v in asdict(config).items() if k != "stages"}
    write_json(path.with_suffix(".json"), {"config": config_dict, "timings_s": timings,
                                           "clips": {name: CLIPS[name].about for name in config.clips}})
    return path


def load_benchmark(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """(table, sidecar JSON) of a saved benchmark; FileNotFoundError says how to make it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no real-clip benchmark at {path}; make it with `python -m amslib clips`")
    sidecar = path.with_suffix(".json")
    table = pd.read_csv(path)
    table["note"] = table["note"].fillna("")  # an empty note reads back as NaN
    return table, json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def benchmark_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown: a row per clip, mIoU pooled / person IoU per scheme."""
    schemes = list(dict.fromkeys(table["scheme"]))
    head = "| clip | s | person px % | " + " | ".join(f"`{s}`" for s in schemes) + " | AMS updates | note |"
    lines = [head, "|" + "---|" * (len(schemes) + 5)]
    for clip, rows in table.groupby("clip", sort=False):
        by = rows.set_index("scheme")
        cells = [f"{_pct(by.at[s, 'miou_pooled'])} / {_pct(by.at[s, 'iou_person'])}" if s in by.index else "" for s in schemes]
        updates = int(by.at["ams", "num_updates"]) if "ams" in by.index else ""
        person = rows["truth_person_pct"].iloc[0] if "truth_person_pct" in rows else None  # absent: saved before it
        lines.append(f"| `{clip}` | {rows['duration_s'].iloc[0]:.1f} | {_share(person)} | " + " | ".join(cells)
                     + f" | {updates} | {rows['note'].iloc[0] or ''} |")
    return "\n".join(lines)


def _share(value) -> str:
    """A share of pixels in %: two significant digits below 1 (0.016, 0.69), else one decimal."""
    return "-" if value is None or pd.isna(value) else (f"{value:.2g}" if value < 1 else f"{value:.1f}")


def _pct(value) -> str:
    """A percentage to one decimal; '-' where it is undefined (no person in truth or prediction)."""
    return "-" if value is None or pd.isna(value) else f"{float(value):.1f}"


def claims_lines(table: pd.DataFrame | None, sidecar: dict, *, source: str) -> list[str]:
    """docs/claims.md's section on the real clips, from a saved benchmark (`source`: its path),
    never a re-run: per clip, does AMS beat `none` and `one_time`, and where it cannot pay."""
    if table is None:
        return [f"Not measured: `{source}` is missing; `python -m amslib clips` (or `make clips`) writes it."]
    timings = sidecar.get("timings_s", {})
    total = {k: sum(v.values()) for k, v in timings.items()}
    setting = sidecar.get("config", {})
    fitted = "its head" if setting.get("freeze_backbone", True) else "every layer"
    teacher = setting.get("teacher", "tflite:selfie_landscape")
    start = (f"One student ({setting['student']}) runs on every clip, none of which it learnt from"
             if setting.get("student") else f"Each clip's student starts from the ImageNet backbone and has {fitted} "
             "fitted on the other clips (leave one out)")
    lines = [f"Read from `{source}`, written by `python -m amslib clips` (labelling {total.get('label_s', 0):.0f} s, "
             f"pretraining {total.get('pretrain_s', 0):.0f} s, runs {total.get('runs_s', 0):.0f} s). {start}; "
             f"the labels of `{teacher}` are the truth. Cells: pooled mIoU / person IoU, %; person px %: the share "
             "of the clip's pixels the teacher calls person.", "", benchmark_markdown(table), "",
             "| clip | AMS above `none`? | AMS above `one_time`? |", "|---|---|---|"]
    for clip, rows in table.groupby("clip", sort=False):
        by = rows.set_index("scheme")["miou_pooled"]
        if not {"ams", "none", "one_time"} <= set(by.index):
            continue
        note = rows["note"].iloc[0]
        verdict = [f"{'yes' if by['ams'] > by[other] else 'no'} ({by['ams'] - by[other]:+.1f} points)"
                   for other in ("none", "one_time")]
        if note:
            verdict = [f"{v}; {note}" for v in verdict]
        lines.append(f"| `{clip}` | {verdict[0]} | {verdict[1]} |")
    return lines
