"""The runs the live panel follows: `LiveRun`, one device's simulation followed live (its
tables so far, the frames to show), and `LiveFleet`, a LiveRun per device fed from one stream
of (device, event): one `Simulation.run()`, or `fleet_events` of a fleet on one clock.

`FleetView` is the part of `widgets.LiveApp` that sets up a run of one device or a fleet,
chooses the device drawn (the `device` dropdown), and gives back the run's tables.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pandas as pd

from amslib.analysis.fleet import FleetResult, fleet_events, fleet_simulations, server_table
from amslib.analysis.results import ResultCollector, RunResult
from amslib.core.config import RunConfig
from amslib.sim.engine import Simulation
from amslib.sim.server import Server
from amslib.sim.state import FramesEvent, LinksEvent, UpdateEvent
from amslib.ui.drawing import FrameView, draw_reference, frame_views


class LiveRun:
    """One device's simulation followed live: its tables so far, and the frames to show: the
    last frame run (`latest`) and, once an update has reached the edge, the frames just before
    and just after the last such arrival (`arrival`). A `LiveFleet` feeds it its events
    (`add`); the panel draws one LiveRun, read under `lock` while another thread adds."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.collector = ResultCollector(sim.config, sim.video.classes)
        self.latest: FrameView | None = None
        self.arrival: tuple[FrameView, FrameView] | None = None
        self.arrived = False  # did the last event added show an update reaching the edge?
        self.frames_done = 0  # frames run so far (the device's video time is frames_done / fps)
        self.lock = threading.Lock()

    def add(self, event: FramesEvent | UpdateEvent | LinksEvent) -> None:
        """Collect the run's next event, and see its frames."""
        self.arrived = False
        with self.lock:
            self.collector.add(event)
            if isinstance(event, FramesEvent):
                self.frames_done = event.start + len(event.rows)
                self._see(frame_views(event, self.sim.video.fps))

    def _see(self, views: list[FrameView]) -> None:
        """Keep the last frame, and the (before, after) frames where the model version moved
        (the engine cuts batches at arrivals, so that is a batch's first frame)."""
        for k, view in enumerate(views):
            before = views[k - 1] if k else self.latest
            if before is not None and view.version != before.version:
                self.arrival, self.arrived = (before, view), True
                break
        if views:
            self.latest = views[-1]

    def result(self) -> RunResult:
        with self.lock:
            return self.collector.result()


class LiveFleet:
    """The edge devices of one run followed live, a LiveRun each (`runs[k]` is device k's),
    fed from one stream of (device, event): for a run of one device its own
    `Simulation.run()` (`server` None), for a fleet `analysis.fleet.fleet_events`, the
    devices on one clock sharing `server`. `advance()` steps it."""

    def __init__(self, sims: list[Simulation], server: Server | None = None) -> None:
        if server is None and len(sims) != 1:
            raise ValueError(f"{len(sims)} devices share one server: pass the Server of fleet_simulations")
        self.runs = tuple(LiveRun(sim) for sim in sims)
        self.server = server
        self.events: Iterator | None = _device_zero(sims[0]) if server is None else fleet_events(sims, server)

    @property
    def going(self) -> bool:
        return self.events is not None

    @property
    def stopped(self) -> bool:
        return any(run.sim.stopped for run in self.runs)

    @property
    def now_s(self) -> float:
        """The fleet's clock: the video time every device has run to."""
        return min(run.frames_done / run.sim.video.fps for run in self.runs)

    def advance(self) -> tuple[int, FramesEvent | UpdateEvent | LinksEvent] | None:
        """The next (device, event), added to that device's LiveRun (only its `arrived` may
        be set); None (and the run closed) once it has ended."""
        item = next(self.events, None)
        for run in self.runs:
            run.arrived = False
        if item is None:
            self.events = None
            return None
        self.runs[item[0]].add(item[1])
        return item

    def set_policy(self, **changes: Any) -> None:
        """The same policy change for every device, each applying it at its own next update."""
        for run in self.runs:
            run.sim.set_policy(**changes)

    def stop(self) -> None:
        """Ask every device to end after its current batch of frames."""
        for run in self.runs:
            run.sim.stop()

    def close(self) -> None:
        """End the run here (its generator is closed; nothing more is simulated)."""
        if self.events is not None:
            self.events.close()
            self.events = None


def _device_zero(sim: Simulation) -> Iterator[tuple[int, FramesEvent | UpdateEvent | LinksEvent]]:
    """(0, event) for each event of `sim.run()`; closing this closes the run."""
    events = sim.run()
    try:
        for event in events:
            yield 0, event
    finally:
        events.close()


class FleetView:
    """The fleet part of `widgets.LiveApp`: a new run's devices, the device drawn, and the
    tables of the run so far."""

    def _new_fleet(self, config: RunConfig) -> LiveFleet:
        """One device's `Simulation`, or a fleet's simulations and their shared server."""
        if config.server.devices == 1:
            sim = Simulation.create(config, video=self._video, teacher=self._teacher, students=self._students)
            self._video, self._students = sim.video, sim.students
            return LiveFleet([sim])
        sims, server = fleet_simulations(config, video=self._video if self._video_given else None,
                                         teacher=self._teacher, students=self._students)
        self._students = sims[0].students
        return LiveFleet(sims, server)

    def _show_device_choice(self, n: int) -> None:
        """The device dropdown lists the run's `n` devices (hidden for a run of one)."""
        self._syncing = True
        try:
            self.device_control.options = [(f"device {k}", k) for k in range(n)]
            self.device_control.value = self.device
        finally:
            self._syncing = False
        self.device_control.layout.display = None if n > 1 else "none"

    def show_device(self, device: int) -> None:
        """Draw device `device` of the run (what the device dropdown does): its frames, its
        curves and bandwidth from what it has collected so far, and its reference. A run
        stepping to an arrival (Step) now pauses at this device's next one."""
        if self.fleet is None:
            raise RuntimeError("no run yet: press Start (or call begin()) first")
        if not 0 <= device < len(self.fleet.runs):
            raise ValueError(f"device {device} is not in the run (devices 0 to {len(self.fleet.runs) - 1}); "
                             "set the devices slider and press Start for a larger fleet")
        with self._draw_lock:
            self.device, self._showing_arrival = device, False
            self._syncing = True  # called directly: the dropdown follows, quietly
            try:
                self.device_control.value = device
            finally:
                self._syncing = False
            self.figure.update_xaxes(range=[0, self.sim.num_frames / self.sim.video.fps])
            draw_reference(self.figure, self.reference, name=self._reference_name)
            self._draw(book=self.running)

    def _on_device(self, device: int) -> None:
        if not self._syncing:
            self.show_device(device)

    def result(self) -> RunResult:
        """The tables of the current (or last) run so far; empty before the first run."""
        if self.source is None:
            return ResultCollector(self.config, ()).result()
        return self.source.result()

    def fleet_result(self) -> FleetResult:
        """Every device's tables so far and the shared server's log (one row per job a GPU
        ran), as `analysis.fleet.run_fleet` returns them; a run of one device is a fleet of one."""
        if self.fleet is None:
            raise RuntimeError("no run yet: press Start (or call begin()) first")
        sim = self.fleet.runs[0].sim  # device 0 runs the panel's config (seed + 0)
        server = pd.DataFrame() if self.fleet.server is None else server_table(self.fleet.server)
        times = None if sim.times.free else asdict(sim.times)
        return FleetResult(sim.config, [run.result() for run in self.fleet.runs], server, times)
