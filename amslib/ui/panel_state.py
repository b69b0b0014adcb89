"""The live panel's run and its threads: `PanelState` is the part of `widgets.LiveApp` that
begins a run, steps it (by hand, to the next update's arrival, or on a background thread so the
kernel stays free for the sliders), pauses, resumes and stops it, keeps the buttons in step
with the state, and runs the reference scheme first (or reads it from the cache of runs).
The state itself lives on the app (`fleet`, `state`, `_thread`, `_go`, ...).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from amslib.analysis.results import RunResult
from amslib.analysis.runs import cached_run
from amslib.sim.engine import Simulation
from amslib.sim.state import FramesEvent, LinksEvent, UpdateEvent
from amslib.ui.controls import START_FIELDS, config_with_controls
from amslib.ui.drawing import DrawTiming, FrameView, draw_reference
from amslib.ui.fleet_view import LiveRun


class PanelState:
    """The running part of `widgets.LiveApp`: one run at a time, stepped here or on a
    background thread; its first step runs the reference."""

    @property
    def running(self) -> bool:
        """A run is going: stepping, or paused."""
        return self.fleet is not None and self.fleet.going

    @property
    def source(self) -> LiveRun | None:
        """The device drawn: its LiveRun (None before the first run)."""
        return None if self.fleet is None else self.fleet.runs[self.device]

    @property
    def sim(self) -> Simulation | None:
        """The simulation drawn (None before the first run)."""
        return None if self.source is None else self.source.sim

    @property
    def reference(self) -> RunResult | None:
        """The reference run of the device drawn (None: no reference, or not run yet)."""
        return self.references[self.device] if self.device < len(self.references) else None

    # -- running -----------------------------------------------------------------------
    def begin(self) -> None:
        """Set up a new run from the panel's values (loads the video and the students the
        first time); advance it with `step()`, `run_to_arrival()` or `run_blocking()`, or use
        `start()`. Its first step runs the reference scheme (or reads it from the cache)."""
        self._check_not_running()
        config = config_with_controls(self.config, self.values())
        self.status.value = "loading the video and the students..."
        self.fleet = self._new_fleet(config)
        n = len(self.fleet.runs)
        self._reference_name = self.reference_control.value
        self._reference_due = bool(self._reference_name)
        self.references, self.reference_from_cache, self._reference_pct = [], None, []
        self.timing, self._notes, self._showing_arrival = DrawTiming(), (), False
        self.device = self.device if self.device < n else 0  # the device drawn last time, if the fleet has it
        self._show_device_choice(n)
        self._go.set()
        self._set_state("running")
        self.figure.update_xaxes(range=[0, self.sim.num_frames / self.sim.video.fps])
        draw_reference(self.figure, None)
        self._draw()

    def _check_not_running(self) -> None:
        if self.running:
            raise RuntimeError("a run is already going: stop() it (and join() a background run) first")

    def _check_no_other_thread(self) -> None:
        """Only one thread may advance the run's generator (a second gets ValueError)."""
        if self._thread_alive() and threading.current_thread() is not self._thread:
            raise RuntimeError("a background run is going: stop() and join() it before stepping by hand")

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def step(self) -> FramesEvent | UpdateEvent | LinksEvent | None:
        """Advance the run by one event (beginning one if this app has none yet; the first
        step runs the reference); None once the run has ended. In a fleet the event is any
        device's (`fleet.runs[k]` has collected it). Redraws when the drawing budget allows,
        and always where `run_to_arrival` / Step pauses."""
        self._check_no_other_thread()
        if not self.running:
            if self.fleet is not None:
                return None
            self.begin()
        if self._reference_due:
            self._load_reference()
        if self.state == "paused":
            self._set_state("running")
        self._showing_arrival = False
        started = time.perf_counter()
        try:
            item = self.fleet.advance()
        except Exception:
            self.fleet.close()
            self._finish("failed")
            raise
        finally:
            self.timing.run_s += time.perf_counter() - started  # the simulation's time; redraws book theirs
        event = None if item is None else item[1]
        if event is None:
            self._finish("stopped" if self.fleet.stopped else "finished")
        elif self.source.arrived and self._step_to_arrival:  # only the device drawn: Step waits for its arrival
            self._pause_at_arrival()
        elif time.perf_counter() >= self._next_draw:
            self._draw()
        return event

    def _pause_at_arrival(self) -> None:
        """An update reached the edge while stepping to it: pause and show (before, after)."""
        self._step_to_arrival = False
        self._go.clear()
        self._showing_arrival = True
        self._set_state("paused")
        self._draw()

    def run_to_arrival(self) -> tuple[FrameView, FrameView] | None:
        """What Step does, synchronously: step until an update reaches the edge (in a fleet,
        the edge of the device drawn), pause there, and return the frames just before and just
        after it; None if the run ended first. Policy changes made now apply at the next update."""
        self._check_no_other_thread()
        self._step_to_arrival = True
        try:
            while self.step() is not None:
                if self.state == "paused":
                    return self.source.arrival
            return None
        finally:
            self._step_to_arrival = False

    def run_blocking(self, max_events: int | None = None, *,
                     max_updates: int | None = None) -> RunResult:
        """Step synchronously until the run ends, `max_events` events, or `max_updates`
        update events have passed (the run then waits, paused); returns the result so far.
        The figure is redrawn last."""
        self._step_to_arrival = False
        events = updates = 0
        while max_events is None or events < max_events:
            event = self.step()
            if event is None:
                break
            events += 1
            updates += isinstance(event, UpdateEvent)
            if max_updates is not None and updates >= max_updates:
                break
        if self.running:
            self._set_state("paused")
        self._draw(book=self.running)
        return self.result()

    def start(self) -> None:
        """Begin a new run and step it on a background thread, so the kernel stays free for
        the widgets; errors on that thread appear in the log Output."""
        self.begin()
        self._step_to_arrival = False
        self._run_in_background()

    def step_to_arrival(self) -> None:
        """The Step button: run in the background to the next update's arrival at the edge
        and pause there, showing the frames just before and after it (begins a run if none
        is going)."""
        if not self.running:
            self.begin()
        self._step_to_arrival = True
        self._run_in_background()

    def pause(self) -> None:
        """Pause the run after its current batch of frames (Resume or Step go on)."""
        if not self.running:
            return
        self._step_to_arrival = False
        self._go.clear()
        if self._thread_alive():
            self.status.value = "pausing after the current batch of frames..."
        else:
            self._set_state("paused")
            self._draw()

    def resume(self) -> None:
        """Go on running in the background, from a pause or a run stepped by hand."""
        if not self.running:
            return
        self._step_to_arrival = False
        self._run_in_background()

    def _run_in_background(self) -> None:
        self._set_state("running")
        self._go.set()
        if not self._thread_alive():
            self._thread = threading.Thread(target=self._run_thread, name="amslib-live-run", daemon=True)
            self._thread.start()

    def _run_thread(self) -> None:
        try:
            while True:
                if not self._go.is_set():
                    if self.state != "paused":  # Pause pressed (a pause at an arrival has drawn)
                        self._set_state("paused")
                        self._draw()
                    self._go.wait()
                if self.step() is None:
                    break
        except Exception as err:  # noqa: BLE001 - a thread's exception would vanish; show it
            self.show_error(err)
        finally:
            if self.running:  # whatever failed, the panel goes back to a usable, idle state
                self.fleet.close()
                self._set_state("failed")

    def stop(self) -> None:
        """End the run: a background one after its current batch of frames (`join()` waits
        for it), one stepped by hand or paused at once."""
        if not self.running:
            return
        self.fleet.stop()
        if self._reference_sim is not None:
            self._reference_sim.stop()
        if self._thread_alive():
            self.status.value = "stopping after the current batch of frames..."
            self._go.set()  # a paused thread wakes, and its run ends
        else:
            self.fleet.close()
            self._finish("stopped")

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for a background run to end or pause; True if its thread is not running any
        more. (A paused run's thread waits: `join` returns False then.)"""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self._thread_alive()

    def _finish(self, state: str) -> None:
        """The run ended: the last redraw, then what drawing cost it, in the status line."""
        self._set_state(state)
        self._draw(status=False)  # its time is the run's last drawing cost; one final status line
        self._notes = (*self._notes, self.timing.text())
        self._draw_status()

    def _set_state(self, state: str) -> None:
        """The state, and the buttons and fixed fields it allows."""
        self.state = state
        going, paused = self.running, state == "paused"
        self.start_button.disabled = going
        self.pause_button.disabled = not going or paused
        self.resume_button.disabled = not (going and paused)
        self.stop_button.disabled = not going
        for control in (*(self.controls[n] for n in START_FIELDS), self.reference_control):
            control.disabled = going

    # -- the reference -----------------------------------------------------------------
    def _load_reference(self) -> None:
        """Run the reference scheme on each device's config, alone (or read it from the
        cache), and draw the one of the device drawn. A failure is shown under the panel; the
        live run goes on without a reference."""
        self._reference_due, name = False, self._reference_name
        references, from_cache = [], []
        try:
            for k, live in enumerate(self.fleet.runs):
                if self.fleet.stopped:  # Stop pressed while the references ran
                    break
                reference, cached = self._run_reference(live.sim, name, device=k)
                references.append(reference)
                from_cache.append(cached)
            self.references, self.reference_from_cache = references, all(from_cache)
            self._reference_pct = [100.0 * r.window_miou() for r in references]
        except Exception as err:  # noqa: BLE001 - shown under the panel; the live run goes on
            self.log.append_stderr(f"the reference run ({name}) failed; the live run goes on without it:\n")
            self.show_error(err)
            self._notes = ("no reference: its run failed (see below)",)
        finally:
            self._reference_sim = None
        with self._draw_lock:
            draw_reference(self.figure, self.reference, name=name)

    def _run_reference(self, sim: Simulation, name: str, *, device: int) -> tuple[RunResult, bool]:
        """The `name` run of `sim`'s config and video, alone on the server: (its result, read
        from the cache?). A fleet's device k runs its own reference (its seed, its street)."""
        config = replace(sim.config, scheme=name, server=replace(sim.config.server, devices=1))
        reference = Simulation.create(config, video=sim.video, teacher=self._teacher, students=self._students)
        self._reference_sim = reference
        of = f" for device {device}" if len(self.fleet.runs) > 1 else ""
        self.status.value = f"reference: running {name}{of} first (cached for the next Start)..."
        return cached_run(reference, cache_dir=self.cache_dir, on_event=self._reference_progress(reference, of))

    def _reference_progress(self, sim: Simulation, of: str = "") -> Callable:
        """on_event for the reference run: its progress in the status line, every second."""
        done, last = [0], [0.0]

        def on_event(event) -> None:
            if isinstance(event, FramesEvent):
                done[0] += len(event.rows)
                if time.monotonic() - last[0] >= 1.0:
                    last[0] = time.monotonic()
                    self.status.value = (f"reference: running {sim.config.scheme}{of} first, "
                                         f"{done[0] / sim.video.fps:.1f} / {sim.num_frames / sim.video.fps:.1f} s "
                                         "of video (cached for the next Start)")
        return on_event
