"""A live notebook view of one AMS run: a policy panel, Start / Step / Pause / Resume / Stop,
the frame the edge is looking at, and a figure that grows as `Simulation.run()` yields its
events (SPEC.md; the paper's tau, T, K, r, gamma as widgets).

What the panel shows:
* the current frame, the teacher's label and the edge's prediction (an error-mask toggle, the
  class legend), redrawn as batches of frames finish; `Step` pauses where the next update
  reaches the edge and shows the frames just before and just after it;
* the trailing-window mIoU, with a reference scheme's curve under it (default `none`: run
  first, or read back from a cache of runs with the same config), and the gain so far;
* uplink and downlink bandwidth per update interval and averaged from the start;
* for a fleet (the `devices` slider above 1: several edge devices sharing one server,
  amslib/analysis/fleet.py), a `device` dropdown choosing whose frames, curves, bandwidth and
  reference are drawn, and the shared server's jobs and GPU busy share in the status line.

Redraws are throttled so that drawing costs at most `draw_budget` (10 %) of the run's wall
time; `app.timing` records what it did cost.

The panel's parts, one job per module: `controls.py` (the policy fields, their widgets, how
they make a config; callback errors), `readouts.py` (pure: curve points, the gain over the
reference, the status and server lines, the summary and ledger tables), `drawing.py` (the
figure, the frame picture, the redraw throttle), `fleet_view.py` (`LiveRun` follows one
device's simulation; `LiveFleet` feeds a LiveRun per device from one stream of (device,
event): one `Simulation.run()`, or `fleet_events` of a fleet on one clock; the device drawn),
`panel_state.py` (a run begun, stepped, paused and stopped, its background thread, the
reference run). `LiveApp`, here, builds the widgets and holds all the state; each part above
is a mixin of it that reads that state. The panel draws one `LiveRun` (`app.source`, device
`app.device` of `app.fleet`); `Step` pauses at an update's arrival at that device, and a
policy change applies to every device at its own next update. The names of those modules stay
importable from here.

`app.start()` runs the simulation on a background thread so the kernel stays free for the
sliders; `app.step()`, `app.run_to_arrival()` and `app.run_blocking()` do the same
synchronously, for tests and headless execution (a background thread there dies with the
kernel at the end).

    app = LiveApp(preset("laptop"))
    display(app.widget)   # then press Start or Step, or: app.run_to_arrival(); app.run_blocking()
"""
from __future__ import annotations

import threading
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from amslib.analysis.plots import class_timeline_figure
from amslib.analysis.results import RunResult
from amslib.core.config import SCHEMES, RunConfig
from amslib.core.files import data_root
from amslib.data.video import Video
from amslib.models.teachers import Teacher
from amslib.sim.engine import Simulation, Students
from amslib.ui.controls import (
    LIVE_FIELDS,
    MAX_DEVICES,
    NO_REFERENCE,
    START_FIELDS,
    PolicyControls,
    config_with_controls,
    control_values,
    error_text,
    guarded,
    make_controls,
)
from amslib.ui.drawing import (
    ARRIVALS,
    DOWNLINK,
    DOWNLINK_INTERVAL,
    MIOU,
    REFERENCE,
    UPLINK,
    UPLINK_INTERVAL,
    DrawTiming,
    FrameView,
    PanelDrawing,
    draw_points,
    draw_reference,
    frame_picture,
    frame_views,
    live_figure,
    next_draw_delay,
    plain,
    widget_figure,
)
from amslib.ui.fleet_view import FleetView, LiveFleet, LiveRun
from amslib.ui.panel_state import PanelState
from amslib.ui.readouts import (
    LEDGER_COLUMNS,
    curve_points,
    interval_points,
    ledger_table,
    reference_gain,
    server_text,
    status_text,
    summary_table,
)

# The panel's names, importable from here as before its parts had modules of their own.
__all__ = [
    "LiveApp", "class_drilldown", "LIVE_FIELDS", "MAX_DEVICES", "NO_REFERENCE", "START_FIELDS",
    "config_with_controls", "control_values", "error_text", "guarded", "make_controls", "ARRIVALS",
    "DOWNLINK", "DOWNLINK_INTERVAL", "MIOU", "REFERENCE", "UPLINK", "UPLINK_INTERVAL", "DrawTiming",
    "FrameView", "draw_points", "draw_reference", "frame_picture", "frame_views", "live_figure",
    "next_draw_delay", "LiveFleet", "LiveRun", "LEDGER_COLUMNS", "curve_points", "interval_points",
    "ledger_table", "reference_gain", "server_text", "status_text", "summary_table",
]


class LiveApp(PanelState, FleetView, PolicyControls, PanelDrawing):
    """One live run at a time of `config` on `video`, drawn as it goes; all state is here.

    `video`, `teacher` and `students` (an `engine.Students`) are passed to
    `Simulation.create`; the students it loads are kept, so a second Start skips loading and
    tracing. With the `devices` slider above 1 the run is a fleet (`analysis.fleet`: each
    device its own seed, and on a synthetic video its own street, unless `video` is given) and
    the `device` dropdown chooses the device drawn (`app.device`, `app.source`).
    `reference`: the scheme whose run is drawn under the live curve ('' for none), one per
    device (each run alone on that device's config and video), read from / saved to
    `cache_dir` (default `<data root>/runs`, keyed by `runs.run_key`).
    `refresh_s`: least wall time between two redraws; `draw_budget`: the most of the run's
    wall time that redraws may take (the last redraw, and those at a pause, always happen).
    """

    def __init__(self, config: RunConfig, *, video: Video | None = None,
                 teacher: Teacher | None = None, students: Students | None = None,
                 reference: str = "none", cache_dir: str | Path | None = None,
                 refresh_s: float = 0.3, draw_budget: float = 0.1) -> None:
        next_draw_delay(0.0, budget=draw_budget, least_s=refresh_s)  # a bad budget fails here
        self.config, self.refresh_s, self.draw_budget = config, refresh_s, draw_budget
        self.cache_dir = Path(cache_dir) if cache_dir is not None else data_root() / "runs"
        self._video, self._teacher, self._students = video, teacher, students
        self._video_given = video is not None  # a fleet's devices share it (else each opens its own)
        self.fleet: LiveFleet | None = None  # the run: a LiveRun per device (one without a fleet)
        self.device = 0  # the device drawn
        self.references: list[RunResult] = []  # the reference run of each device
        self.reference_from_cache: bool | None = None  # None: no reference (yet); True: every one read back
        self._reference_name = NO_REFERENCE
        self._reference_due = False  # loaded by the run's first step, on the run's thread
        self._reference_sim: Simulation | None = None  # while the reference runs (Stop stops it)
        self._reference_pct: list[np.ndarray] = []  # per device, its trailing-window mIoU (%)
        self.state = "ready"  # ready, running, paused, stopped, finished or failed
        self.timing = DrawTiming()
        self._thread: threading.Thread | None = None
        self._go = threading.Event()  # cleared: the background run pauses before its next step
        self._go.set()
        self._step_to_arrival = False  # pause when the next update reaches the edge
        self._showing_arrival = False  # the picture shows the (before, after) frames of it
        self._draw_lock = threading.RLock()  # one redraw at a time (the run's thread, the kernel's)
        self._syncing = False  # True while set_policy moves widgets (their observers stay quiet)
        self._next_draw = 0.0
        self._notes: tuple[str, ...] = ()
        self._build(config, reference)
        self._wire()

    # -- building ----------------------------------------------------------------------
    def _build(self, config: RunConfig, reference: str) -> None:
        self.controls = make_controls(config)
        self.reference_control = widgets.Dropdown(
            options=[("(no reference)", NO_REFERENCE), *((n, n) for n in SCHEMES.names)],
            value=SCHEMES.check(reference) if reference else NO_REFERENCE, description="reference",
            description_tooltip="the scheme drawn under the live curve (run first, or read from the cache)",
            style={"description_width": "150px"}, layout=widgets.Layout(width="340px"))
        self.show_errors = widgets.Checkbox(value=False, description="error mask", indent=False,
                                            layout=widgets.Layout(width="120px"))
        # which device of a fleet run is drawn; shown once a run of several devices begins
        self.device_control = widgets.Dropdown(options=[("device 0", 0)], value=0, description="device",
                                               style={"description_width": "50px"},
                                               layout=widgets.Layout(width="160px", display="none"))
        button = dict(layout=widgets.Layout(width="96px"))
        self.start_button = widgets.Button(description="Start", icon="play", button_style="success", **button)
        self.step_button = widgets.Button(description="Step", icon="step-forward", **button,
                                          tooltip="run to the next update's arrival and pause there")
        self.pause_button = widgets.Button(description="Pause", icon="pause", disabled=True, **button)
        self.resume_button = widgets.Button(description="Resume", icon="play", disabled=True, **button)
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          disabled=True, **button)
        # HTML, not a Label: a long status line wraps instead of being cut
        self.status = widgets.HTML(value="ready: press Start, or Step to the first update",
                                   layout=widgets.Layout(width="980px"))
        # hidden until its first frame: an empty Image shows the browser's broken-image icon
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", display="none"))
        self.log = widgets.Output(layout=widgets.Layout(max_height="240px", overflow="auto"))
        self.figure = live_figure(scheme=config.scheme)
        self._titles = tuple(self.figure.layout.annotations)
        self.widget = self._layout()

    def _layout(self) -> widgets.Box:
        c = self.controls
        left = widgets.VBox([c[n] for n in ("scheme", "strategy", "fraction", "iterations", "lr")]
                            + [self.reference_control, c["devices"]])
        right = widgets.VBox([c[n] for n in ("update_interval_s", "horizon_s", "sample_rate_fps",
                                             "downlink_kbps", "latency_s", "asr", "atr")])
        buttons = widgets.HBox([self.start_button, self.step_button, self.pause_button, self.resume_button,
                                self.stop_button, self.show_errors, self.device_control])
        return widgets.VBox([widgets.HBox([left, right]), buttons, self.status, self.image, self.figure,
                             self.log])

    def _wire(self) -> None:
        for name, control in self.controls.items():
            control.observe(guarded(lambda change, name=name: self._on_control(name, change["new"]),
                                    self.show_error), names="value")
        for button, action in ((self.start_button, self.start), (self.step_button, self.step_to_arrival),
                               (self.pause_button, self.pause), (self.resume_button, self.resume),
                               (self.stop_button, self.stop)):
            button.on_click(guarded(lambda _, action=action: action(), self.show_error))
        self.show_errors.observe(guarded(lambda _: self._draw_picture(), self.show_error), names="value")
        self.device_control.observe(guarded(lambda change: self._on_device(change["new"]), self.show_error),
                                    names="value")

    def show_error(self, err: BaseException) -> None:
        """Append `err` to the log Output: a ConfigError as its message, else its traceback."""
        self.log.append_stderr(error_text(err))
        self.status.value = f"error: {type(err).__name__} (details below)"


# -- a per-class drill-down over several runs ------------------------------------------------
def class_drilldown(results: dict[str, RunResult], *, class_name: str | None = None) -> widgets.VBox:
    """A class Dropdown over a plotly figure of that class's trailing-window IoU in every run
    of `results` (`plots.class_timeline_figure`); an error while redrawing shows below it."""
    if not results:
        raise ValueError("no runs to drill into: pass {name: RunResult}, e.g. a sweep's results")
    classes = next(iter(results.values())).classes
    choose = widgets.Dropdown(options=classes, value=class_name or classes[0], description="class")
    figure = widget_figure(class_timeline_figure(results, choose.value))
    log = widgets.Output()

    def redraw(change: dict) -> None:
        new = class_timeline_figure(results, change["new"])
        with figure.batch_update():
            for trace, line in zip(figure.data, new.data):
                trace.y = plain(line.y)
            figure.layout.title = new.layout.title
    choose.observe(guarded(redraw, lambda err: log.append_stderr(error_text(err, brief=(Exception,)))),
                   names="value")
    return widgets.VBox([choose, figure, log])
