"""Runs on a video of known scenes (`real:drift`): accuracy per scene, and recovery after each cut.

    scene_table(results, sequence)      # per scheme and scene: window mIoU and person IoU between
                                        # the cuts, plus a `whole` row per scheme
    recovery_table(results, sequence)   # per scheme and cut: seconds until the trailing-window
                                        # mIoU regains 90% of its level before the cut
    run_drift(config, schemes, ...)     # every scheme on real:drift with one student: the runs

A scene's window mIoU is the mean of the trailing-window mIoU over its frames (the summary's
protocol, `eval.window_s`); its person IoU pools the scene's pixels. Nothing is tuned per scene.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from amslib.analysis.results import RunResult, save_result
from amslib.analysis.runs import compare_schemes
from amslib.core import metrics
from amslib.data.drift import DriftSequence

SCENE_COLUMNS = ("scheme", "scene", "clip", "start_s", "end_s", "miou_window", "iou_person", "truth_person_pct")
RECOVERY_COLUMNS = ("scheme", "cut_s", "into", "before_pct", "after_5s_pct", "recovery_s")


def _pct(value: float) -> float:
    return round(100.0 * float(value), 2) if not math.isnan(value) else math.nan


def scene_table(results: dict[str, RunResult], sequence: DriftSequence) -> pd.DataFrame:
    """One row per scheme and scene (columns SCENE_COLUMNS), and a `whole` row per scheme."""
    rows = []
    for scheme, result in results.items():
        t = result.frames["t_s"].to_numpy()
        window, counts = result.window_miou(), result.counts()
        person = list(result.classes).index("person") if "person" in result.classes else None
        ends = (*sequence.starts_s[1:], max(sequence.duration_s, t[-1] + 1e-9 if len(t) else 0.0))
        spans = [(f"{k}", clip, start, end) for k, (clip, start, end) in enumerate(zip(sequence.clips, sequence.starts_s, ends))]
        for scene, clip, start, end in [*spans, ("whole", "all", 0.0, ends[-1])]:
            keep = (t >= start - 1e-9) & (t < end - 1e-9)
            if not keep.any():
                continue
            pooled = counts[keep].sum(axis=0)
            iou = metrics.iou(pooled)
            truth = (pooled[person, 0] + pooled[person, 2]) / pooled[:, [0, 2]].sum() if person is not None else math.nan
            rows.append({"scheme": scheme, "scene": scene, "clip": clip, "start_s": start, "end_s": round(end, 2),
                         "miou_window": _pct(np.nanmean(window[keep])),
                         "iou_person": _pct(iou[person]) if person is not None else math.nan,
                         "truth_person_pct": _pct(truth)})
    return pd.DataFrame(rows, columns=list(SCENE_COLUMNS))


def recovery_table(results: dict[str, RunResult], sequence: DriftSequence, *, before_s: float = 5.0) -> pd.DataFrame:
    """Per scheme and cut the run reached: the trailing-window mIoU's level over the `before_s` seconds before
    the cut, its mean over the 5 s after, and the seconds until it regains 90% of the level
    (`metrics.recovery_times`: 0 if it never fell, NaN if it never regained it)."""
    rows = []
    for scheme, result in results.items():
        t, window = result.frames["t_s"].to_numpy(), result.window_miou()
        cuts = [c for c in sequence.cuts_s if len(t) and c <= t[-1]]  # the cuts the run reached
        recovery = metrics.recovery_times(t, window, np.asarray(cuts), before_s=before_s)
        for cut, clip, seconds in zip(cuts, sequence.clips[1:], recovery):
            before = window[(t >= cut - before_s) & (t < cut)]
            after = window[(t >= cut) & (t < cut + 5.0)]
            rows.append({"scheme": scheme, "cut_s": cut, "into": clip,
                         "before_pct": _pct(np.nanmean(before)) if len(before) else math.nan,
                         "after_5s_pct": _pct(np.nanmean(after)) if len(after) else math.nan,
                         "recovery_s": round(float(seconds), 2) if not math.isnan(seconds) else math.nan})
    return pd.DataFrame(rows, columns=list(RECOVERY_COLUMNS))


def run_drift(config, schemes: tuple[str, ...], *, video, teacher, out: Path | None = None) -> dict[str, RunResult]:
    """Every scheme with `config` (its student, and the same settings for each) on `video`,
    the students loaded once (`runs.compare_schemes`); each run's tables go to out/<scheme>/
    when `out` is given."""
    results = compare_schemes(config, schemes, video=video, teacher=teacher)
    for scheme, result in results.items():
        if out is not None:
            save_result(result, out / scheme)
    return results


def markdown(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """A table as Markdown, numbers to one decimal, NaN as '-'."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.1f}"
        return str(value)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for _, row in table.iterrows()]
    return "\n".join(lines)
