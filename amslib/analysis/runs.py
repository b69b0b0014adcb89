"""Running schemes to result tables: one run, a run followed live or with a progress bar,
and several schemes on one video with the students loaded once.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from amslib.analysis.results import RunResult, collect
from amslib.core.config import RunConfig
from amslib.sim.engine import Simulation
from amslib.sim.state import FramesEvent


def simulation_progress(total: int, desc: str) -> tuple[Callable, Callable[[], None]]:
    """A tqdm bar fed by a simulation's events: frames done out of `total`, and the number of
    updates sent; returns (on_event, close)."""
    from tqdm.auto import tqdm  # deferred: tqdm.auto probes for Jupyter when imported

    bar = tqdm(total=total, desc=desc, unit="frame", leave=True, dynamic_ncols=True)
    updates = [0]

    def on_event(event) -> None:
        if isinstance(event, FramesEvent):
            bar.update(len(event.rows))
        elif event.row.get("sent"):
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
        return collect(sim.config, sim.video.classes, sim.run(), on_event)
    on_progress, close = simulation_progress(sim.num_frames, sim.config.scheme)

    def both(event) -> None:
        on_progress(event)
        if on_event is not None:
            on_event(event)
    try:
        return collect(sim.config, sim.video.classes, sim.run(), both)
    finally:
        close()


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
