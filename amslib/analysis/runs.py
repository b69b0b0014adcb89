"""Running schemes to result tables: one run, a run followed live or with a progress bar,
a run read back from a cache keyed by what decides it, and several schemes on one video with
the students loaded once.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from amslib.analysis.results import CONFIG_FILE, RunResult, collect, load_result, save_result
from amslib.core.config import RunConfig
from amslib.core.files import CACHE_LOG, atomic_dir, damaged_files, write_checksums
from amslib.core.metrics import frame_counts, miou_pooled
from amslib.models.teachers import read_labelled
from amslib.sim.engine import Simulation
from amslib.sim.state import FramesEvent, UpdateEvent


# Wall seconds per simulated frame (one device, one scheme) on a 2-core CPU at the laptop
# preset's 128x256, measured: notebook 00's two schemes of 600 frames in 62-90 s (0.05-0.075),
# notebook 07's capacity sweep of 8,400 device-frames with the server's time in 982 s (0.12).
SECONDS_PER_FRAME = (0.05, 0.12)


def time_estimate(frames: int, *, height: int = 128, width: int = 256) -> str:
    """What a notebook says before a long cell: about how long `frames` simulated frames (all
    runs and devices together) take on a 2-core CPU, scaled by the pixels per frame."""
    scale = (height * width) / (128 * 256)
    low, high = (frames * s * scale for s in SECONDS_PER_FRAME)
    unit, div = ("min", 60.0) if high >= 120 else ("s", 1.0)
    return (f"about {low / div:.0f}-{high / div:.0f} {unit} on a 2-core CPU ({frames} frames at {height}x{width}; "
            f"measured {SECONDS_PER_FRAME[0]}-{SECONDS_PER_FRAME[1]} s a frame at 128x256)")


def simulation_progress(total: int, desc: str) -> tuple[Callable, Callable[[], None]]:
    """A tqdm bar fed by a simulation's events: frames done out of `total`, and the number of
    updates sent; returns (on_event, close)."""
    from tqdm.auto import tqdm  # deferred: tqdm.auto probes for Jupyter when imported

    bar = tqdm(total=total, desc=desc, unit="frame", leave=True, dynamic_ncols=True)
    updates = [0]

    def on_event(event) -> None:
        if isinstance(event, FramesEvent):
            bar.update(len(event.rows))
        elif isinstance(event, UpdateEvent) and event.row.get("sent"):
            updates[0] += 1
            bar.set_postfix(updates=updates[0])
    return on_event, bar.close


def simulate(config: RunConfig, *, video=None, teacher=None, students=None,
             on_event: Callable | None = None) -> RunResult:
    """Run one scheme to the end and return its tables; `on_event` follows it live.
    `students` (an `engine.Students`) reuses already loaded models."""
    return run_simulation(Simulation.create(config, video=video, teacher=teacher, students=students),
                          on_event=on_event)


def run_simulation(sim, *, on_event: Callable | None = None, progress: bool = False) -> RunResult:
    """Run a created `engine.Simulation` to the end and return its tables; `on_event` follows
    it live; `progress` draws a bar of frames done and updates sent."""
    if not progress:
        return _with_forgetting(sim, collect(sim.config, sim.video.classes, sim.run(), on_event))
    on_progress, close = simulation_progress(sim.num_frames, sim.config.scheme)

    def both(event) -> None:
        on_progress(event)
        if on_event is not None:
            on_event(event)
    try:
        result = collect(sim.config, sim.video.classes, sim.run(), both)
    finally:
        close()
    return _with_forgetting(sim, result)


def _with_forgetting(sim: Simulation, result: RunResult) -> RunResult:
    """The result with the server's times and its forgetting table (unless the run was
    stopped early or has no frames)."""
    result = replace(result, server_times=None if sim.times.free else asdict(sim.times))
    if sim.stopped or result.frames.empty:
        return result
    return replace(result, segments=measure_forgetting(sim, result))


def run_key(sim: Simulation) -> str:
    """Hex SHA-256 of what decides a run's tables: its config (scheme, policy, seed, link),
    the video's key (content, size, fps), the teacher's name (model file hash or label
    folder) and every pretrained weight of the student. Not the code: a changed simulation
    needs a new cache folder."""
    digest = hashlib.sha256()
    for part in (sim.config.to_json(), sim.video.key, sim.teacher.name):
        digest.update(part.encode() + b"\0")
    for array in sim.students.pretrained_state or [sim.students.pretrained]:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def cached_run(sim: Simulation, *, cache_dir: str | Path, on_event: Callable | None = None) -> tuple[RunResult, bool]:
    """(result, from_cache): `sim`'s run to its end, read back from
    `cache_dir/<scheme>-<run_key>` when an earlier call saved the same run there; else run
    (`on_event` follows it), then saved whole (`files.atomic_dir`) with its files' SHA-256
    (`files.write_checksums`); a saved run whose files no longer match is run again, and the
    run says so in one line. A stopped run is not saved."""
    folder = Path(cache_dir) / f"{sim.config.scheme}-{run_key(sim)[:24]}"
    if (folder / CONFIG_FILE).is_file():
        damaged = damaged_files(folder)  # every file against the SHA-256 recorded when it was saved
        if damaged:
            CACHE_LOG.warning("run cache: %s in %s missing or damaged: run again", ", ".join(damaged), folder)
        else:
            result = load_result(folder)
            if result.config == sim.config:  # a folder of another run under a colliding name is run again
                return result, True
    result = run_simulation(sim, on_event=on_event)
    if not sim.stopped:
        with atomic_dir(folder, marker=CONFIG_FILE) as staging:
            save_result(result, staging)
            write_checksums(staging)
    return result, False


def measure_forgetting(sim: Simulation, result: RunResult, *, per_segment: int = 8) -> pd.DataFrame:
    """After a run: the final edge model's mIoU (pooled, %) on up to `per_segment` frames of
    each scene before the last (scenes split at `result.scene_changes()`), next to what those
    frames scored live; `forgetting` = final - live (negative: forgotten). The final model
    predicts as the scheme predicted live (`Scheme.final_predict`: Tent with each frame's own
    BatchNorm statistics); remote tracking, whose live output is a tracked label and not a
    model's, has no forgetting (an empty table)."""
    t = result.frames["t_s"].to_numpy()
    edges = [0.0, *result.scene_changes(), t[-1] + 1.0 / result.config.fps if len(t) else 0.0]
    counts, rows = result.counts(), []
    if not sim.scheme.has_model:
        edges = []  # no model to measure (remote tracking shows tracked labels): not measured
    for k, (a, b) in enumerate(zip(edges[:-2], edges[1:-1])):  # every scene but the last
        inside = np.flatnonzero((t >= a) & (t < b))
        if not len(inside):
            continue
        picks = inside[np.unique(np.linspace(0, len(inside) - 1, min(per_segment, len(inside))).round().astype(int))]
        indices = result.frames["frame"].to_numpy()[picks]
        frames, labels = read_labelled(sim.video, sim.teacher, indices)
        final = frame_counts(labels, sim.scheme.final_predict(frames), class_ids=sim.video.class_ids)
        live_pct, final_pct = 100 * miou_pooled(counts[picks]), 100 * miou_pooled(final)
        rows.append({"segment": k, "start_s": a, "end_s": b, "live_miou": live_pct, "final_miou": final_pct,
                     "forgetting": final_pct - live_pct})
    return pd.DataFrame(rows, columns=["segment", "start_s", "end_s", "live_miou", "final_miou", "forgetting"])


def prediction_recorder(frames: Iterable[int]) -> tuple[Callable, dict[int, np.ndarray]]:
    """(on_event, kept): pass on_event to `simulate`; `kept` then maps each of `frames` to
    the student's (H, W) uint8 prediction on it, as the edge made it during the run."""
    wanted, kept = sorted(set(frames)), {}

    def on_event(event) -> None:
        if isinstance(event, FramesEvent):
            for f in wanted:
                if event.start <= f < event.start + len(event.rows):
                    kept[f] = event.predictions[f - event.start]
    return on_event, kept


def compare_schemes(base: RunConfig, schemes: Iterable[str] = ("none", "ams"), *, video=None,
                    teacher=None, students=None, progress: bool = True) -> dict[str, RunResult]:
    """Run each of `schemes` on `base`'s video, one after the other, loading and tracing the
    students once (each run starts from the pretrained weights); a progress bar per scheme.
    Returns {scheme: RunResult} in the order given."""
    results: dict[str, RunResult] = {}
    for scheme in schemes:
        sim = Simulation.create(replace(base, scheme=scheme), video=video, teacher=teacher, students=students)
        video, students = sim.video, sim.students
        results[scheme] = run_simulation(sim, progress=progress)
    return results
