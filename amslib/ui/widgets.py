"""A live notebook view of one AMS run: a policy panel, Start/Stop, and a figure that grows
as `Simulation.run()` yields its events (SPEC.md; the paper's tau, T, K, r, gamma as widgets).

Pure functions come first (`curve_points`, `config_with_controls`, `summary_table`,
`ledger_table`); `LiveApp` wraps them with ipywidgets and a plotly `FigureWidget` and holds
all the state. `app.start()` runs the simulation on a background thread so the kernel stays
free for the sliders; `app.step()` / `app.run_blocking()` do the same synchronously, for
tests and headless execution (a background thread there dies with the kernel at the end).

    app = LiveApp(preset("laptop"))
    display(app.widget)   # then press Start, or: app.run_blocking()
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from amslib.analysis.plots import SCHEME_COLORS, class_timeline_figure, cumulative_kbps
from amslib.analysis.results import ResultCollector, RunResult
from amslib.core.clock import TIME_EPS_S
from amslib.core.config import SCHEMES, STRATEGIES, ConfigError, RunConfig
from amslib.data.video import Video
from amslib.models.teachers import Teacher
from amslib.sim.engine import Simulation, Students
from amslib.sim.state import FramesEvent, UpdateEvent

# Policy fields the server can change between updates (`Simulation.set_policy`).
LIVE_FIELDS = ("strategy", "fraction", "update_interval_s", "horizon_s", "iterations", "lr",
               "sample_rate_fps", "asr", "atr")
# Fields fixed for a whole run (the scheme and the link): read at Start, locked while running.
START_FIELDS = ("scheme", "downlink_kbps", "latency_s")
LEDGER_COLUMNS = ("update", "t_update_s", "t_arrival_s", "num_samples", "strategy", "fraction",
                  "num_sent", "mask_bytes", "value_bytes", "compressed_bytes", "policy_changes")
# Trace order in the live figure.
MIOU, ARRIVALS, UPLINK, DOWNLINK = range(4)
_CHANGE_COLOR = "#d62728"


# -- pure functions ------------------------------------------------------------------------
def control_values(config: RunConfig) -> dict[str, Any]:
    """The policy panel's values for `config` (an unlimited downlink, None, shows as 0)."""
    values: dict[str, Any] = {name: getattr(config.adapt, name) for name in LIVE_FIELDS}
    values.update(scheme=config.scheme, downlink_kbps=config.link.downlink_kbps or 0.0,
                  latency_s=config.link.latency_s)
    return values


def config_with_controls(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """A copy of `config` with the panel's `values` (downlink_kbps 0 means unlimited: None).
    Raises ConfigError for an unknown name or an invalid value. (Not `with_overrides`: that
    parses strings, and reads the scheme 'none' as None.)"""
    unknown = sorted(set(values) - set(LIVE_FIELDS) - set(START_FIELDS))
    if unknown:
        raise ConfigError(f"unknown policy value(s) {', '.join(unknown)}; the panel has: "
                          + ", ".join((*START_FIELDS, *LIVE_FIELDS)))
    link = {k: values[k] for k in ("downlink_kbps", "latency_s") if k in values}
    if "downlink_kbps" in link and not link["downlink_kbps"]:
        link["downlink_kbps"] = None
    return replace(config, scheme=values.get("scheme", config.scheme),
                   adapt=replace(config.adapt, **{k: v for k, v in values.items() if k in LIVE_FIELDS}),
                   link=replace(config.link, **link))


def _sent_updates(updates: pd.DataFrame) -> pd.DataFrame:
    """The update rows whose parameters were sent down (an update with no samples is not)."""
    if updates.empty or "sent" not in updates:
        return updates.iloc[0:0]
    return updates[updates["sent"].fillna(False).astype(bool)]


def curve_points(result: RunResult) -> dict[str, np.ndarray]:
    """The live figure's data for a run so far.

    Per frame (N,): `t_s`, `miou_pct` (trailing-window mIoU, %, NaN where no class is seen),
    `uplink_kbps` and `downlink_kbps` (average from 0 to the end of the frame, as in
    `RunResult.summary`; downlink bits count from the update's time). Per update that reached
    the edge by the last frame (M,): `arrival_t_s`, `arrival_miou_pct`, `arrival_text`. Per
    update that applied a policy change (C,): `change_t_s`, `change_text`.
    """
    frames, empty = result.frames, np.zeros(0)
    t = frames["t_s"].to_numpy(float) if len(frames) else empty
    miou = 100.0 * result.window_miou() if len(frames) else empty
    elapsed = t + 1.0 / result.config.fps
    up = np.cumsum(frames["uplink_bits"].to_numpy(float)) / elapsed / 1000.0 if len(t) else empty
    sent = _sent_updates(result.updates)
    down = cumulative_kbps(sent["t_update_s"].to_numpy(float), sent["downlink_bits"].to_numpy(float),
                            t, elapsed) if len(sent) else np.zeros_like(t)
    points = {"t_s": t, "miou_pct": miou, "uplink_kbps": up, "downlink_kbps": down}
    points.update(_arrival_points(sent, t, miou))
    points.update(_change_points(result.updates))
    return points


def _arrival_points(sent: pd.DataFrame, t: np.ndarray, miou: np.ndarray) -> dict[str, np.ndarray]:
    """Markers where updates reached the edge, at the mIoU of the first frame that used them."""
    if len(sent) and len(t):
        sent = sent[sent["t_arrival_s"] <= t[-1] + TIME_EPS_S]
    if not len(sent) or not len(t):
        return {"arrival_t_s": np.zeros(0), "arrival_miou_pct": np.zeros(0),
                "arrival_text": np.zeros(0, dtype=object)}
    arrival = sent["t_arrival_s"].to_numpy(float)
    first_frame = np.minimum(np.searchsorted(t, arrival - TIME_EPS_S), len(t) - 1)
    text = [f"update {int(r.update)}: {r.compressed_bytes / 1000:.1f} kB down, fraction {r.fraction:g}"
            for r in sent.itertuples()]
    return {"arrival_t_s": arrival, "arrival_miou_pct": miou[first_frame],
            "arrival_text": np.array(text, dtype=object)}


def _change_points(updates: pd.DataFrame) -> dict[str, np.ndarray]:
    """Where a policy change took effect: the update whose `policy_changes` is not empty."""
    if updates.empty or "policy_changes" not in updates:
        return {"change_t_s": np.zeros(0), "change_text": np.zeros(0, dtype=object)}
    changed = updates[updates["policy_changes"].fillna("").astype(str) != ""]
    return {"change_t_s": changed["t_update_s"].to_numpy(float),
            "change_text": changed["policy_changes"].to_numpy(object)}


def status_text(state: str, points: dict[str, np.ndarray], *, duration_s: float, fps: float,
                pending: dict[str, Any]) -> str:
    """One line: state, video time done, updates arrived, latest mIoU, changes waiting."""
    t = points["t_s"]
    parts = [f"{state}: {(t[-1] + 1.0 / fps) if len(t) else 0.0:.1f} / {duration_s:.1f} s of video",
             f"{len(points['arrival_t_s'])} updates arrived"]
    seen = points["miou_pct"][~np.isnan(points["miou_pct"])]
    if len(seen):
        parts.append(f"mIoU {seen[-1]:.1f}%")
    if pending:
        parts.append("pending: " + ", ".join(f"{k}={v}" for k, v in pending.items())
                     + " (applies at the next update)")
    return " | ".join(parts)


def summary_table(result: RunResult) -> pd.DataFrame:
    """`result.summary()` as a one-column table, per-class IoU flattened to `iou_<class>`."""
    summary = dict(result.summary())
    per_class = summary.pop("iou_per_class")
    summary.update({f"iou_{name}": value for name, value in per_class.items()})
    return pd.DataFrame({"value": pd.Series(summary, dtype=object)})


def ledger_table(result: RunResult) -> pd.DataFrame:
    """The per-update ledger: when, how much was sent (mask, values, gzip), what changed."""
    return result.updates.reindex(columns=list(LEDGER_COLUMNS)).set_index("update")


# -- errors in callbacks -------------------------------------------------------------------
def guarded(callback: Callable, on_error: Callable[[BaseException], None]) -> Callable:
    """`callback`, with any exception handed to `on_error`: ipywidgets would only send a
    callback's exception to the kernel log, where a notebook user never sees it."""
    def wrapped(*args: Any) -> None:
        try:
            callback(*args)
        except Exception as err:  # noqa: BLE001 - shown to the user, not swallowed
            on_error(err)
    return wrapped


def error_text(err: BaseException, *, brief: tuple[type[BaseException], ...] = (ConfigError,)) -> str:
    """How an error reads in a log Output: a `brief` one as 'Type: message', any other as its
    traceback."""
    if isinstance(err, brief):
        return f"{type(err).__name__}: {err}\n"
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))


# -- the figure ----------------------------------------------------------------------------
def live_figure(*, scheme: str = "ams") -> go.FigureWidget:
    """Two rows sharing video time: trailing-window mIoU (%) with update-arrival markers,
    and average uplink/downlink Kbps so far. Trace indices: MIOU, ARRIVALS, UPLINK, DOWNLINK."""
    color = SCHEME_COLORS.get(scheme, "#1f77b4")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("mIoU, trailing window (%)", "Average bandwidth so far (Kbps)"))
    fig.add_scatter(x=[], y=[], name="mIoU", mode="lines", line=dict(color=color), row=1, col=1)
    fig.add_scatter(x=[], y=[], name="update arrived", mode="markers", hoverinfo="text+x",
                    marker=dict(symbol="triangle-up", size=10, color="#2ca02c"), row=1, col=1)
    fig.add_scatter(x=[], y=[], name="uplink", mode="lines", line=dict(color=color, dash="dot"),
                    row=2, col=1)
    fig.add_scatter(x=[], y=[], name="downlink", mode="lines", line=dict(color=color), row=2, col=1)
    fig.update_yaxes(range=[0, 100], title_text="mIoU (%)", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", title_text="Kbps", row=2, col=1)
    fig.update_xaxes(title_text="video time (s)", row=2, col=1)
    fig.update_layout(height=520, template="plotly_white", margin=dict(t=60, b=40),
                      legend=dict(orientation="h", y=1.12))
    return go.FigureWidget(fig)


def draw_points(fig: go.FigureWidget, points: dict[str, np.ndarray], *, titles: tuple = ()) -> None:
    """Write `points` (from `curve_points`) into `fig` as one batched message; policy changes
    become dashed vertical lines labelled with the change. `titles`: annotations to keep."""
    lines = [dict(type="line", xref="x", yref="paper", x0=float(t), x1=float(t), y0=0, y1=1,
                  line=dict(color=_CHANGE_COLOR, dash="dash", width=1)) for t in points["change_t_s"]]
    labels = [dict(x=float(t), xref="x", y=0.98, yref="y domain", text=text, showarrow=False,
                   xanchor="left", font=dict(color=_CHANGE_COLOR, size=11))
              for t, text in zip(points["change_t_s"], points["change_text"])]
    with fig.batch_update():
        fig.data[MIOU].update(x=points["t_s"], y=points["miou_pct"])
        fig.data[ARRIVALS].update(x=points["arrival_t_s"], y=points["arrival_miou_pct"],
                                  hovertext=list(points["arrival_text"]))
        fig.data[UPLINK].update(x=points["t_s"], y=points["uplink_kbps"])
        fig.data[DOWNLINK].update(x=points["t_s"], y=points["downlink_kbps"])
        fig.layout.shapes = lines
        fig.layout.annotations = (*titles, *labels)


# -- the panel -----------------------------------------------------------------------------
def make_controls(config: RunConfig) -> dict[str, widgets.ValueWidget]:
    """One widget per policy field, named as the config field, set to `config`'s values.
    Bounds follow AdaptConfig/LinkConfig's checks, so the panel cannot make an invalid run."""
    v = control_values(config)
    common = dict(style={"description_width": "150px"}, layout=widgets.Layout(width="340px"))

    def text(kind, name, **kw):
        return kind(value=v[name], description=name, **common, **kw)

    return {
        "scheme": widgets.Dropdown(options=SCHEMES.names, value=v["scheme"], description="scheme", **common),
        "strategy": widgets.Dropdown(options=STRATEGIES.names, value=v["strategy"], description="strategy",
                                     **common),
        "fraction": widgets.FloatSlider(value=v["fraction"], min=0.01, max=1.0, step=0.01,
                                        readout_format=".2f", continuous_update=False,
                                        description="fraction", **common),
        "iterations": text(widgets.BoundedIntText, "iterations", min=1, max=100_000),
        "lr": text(widgets.BoundedFloatText, "lr", min=1e-6, max=0.5, step=1e-4),
        "update_interval_s": text(widgets.BoundedFloatText, "update_interval_s", min=0.1,
                                  max=3600.0, step=1.0),
        "horizon_s": text(widgets.BoundedFloatText, "horizon_s", min=1.0, max=36_000.0, step=10.0),
        "sample_rate_fps": text(widgets.BoundedFloatText, "sample_rate_fps", min=0.01, max=60.0,
                                step=0.1),
        "asr": widgets.Checkbox(value=v["asr"], description="asr (adaptive sampling rate)",
                                indent=False, **common),
        "atr": widgets.Checkbox(value=v["atr"], description="atr (adaptive training rate)",
                                indent=False, **common),
        "downlink_kbps": text(widgets.BoundedFloatText, "downlink_kbps", min=0.0, max=1e6, step=50.0,
                              description_tooltip="0 = unlimited"),
        "latency_s": text(widgets.BoundedFloatText, "latency_s", min=0.0, max=60.0, step=0.05),
    }


class LiveApp:
    """One live run at a time of `config` on `video`, drawn as it goes; all state is here.

    `video`, `teacher` and `students` (an `engine.Students`) are passed to
    `Simulation.create`; the students it loads are kept, so a second Start skips loading and
    tracing. `refresh_s`: least wall time between two redraws (the last one always happens).
    """

    def __init__(self, config: RunConfig, *, video: Video | None = None,
                 teacher: Teacher | None = None, students: Students | None = None,
                 refresh_s: float = 0.3) -> None:
        self.config, self.refresh_s = config, refresh_s
        self._video, self._teacher, self._students = video, teacher, students
        self.sim: Simulation | None = None
        self.collector: ResultCollector | None = None
        self.state = "ready"  # ready, running, stopped, finished or failed
        self._events = None  # the running `sim.run()` generator; None between runs
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the collector between the run's thread and the kernel
        self._syncing = False  # True while set_policy moves widgets (their observers stay quiet)
        self._last_draw = 0.0
        self.controls = make_controls(config)
        self.start_button = widgets.Button(description="Start", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          disabled=True)
        self.status = widgets.Label(value="ready: press Start")
        self.log = widgets.Output(layout=widgets.Layout(max_height="240px", overflow="auto"))
        self.figure = live_figure(scheme=config.scheme)
        self._titles = tuple(self.figure.layout.annotations)
        self.widget = self._layout()
        self._wire()

    # -- building ----------------------------------------------------------------------
    def _layout(self) -> widgets.Box:
        c = self.controls
        left = widgets.VBox([c[n] for n in ("scheme", "strategy", "fraction", "iterations", "lr")])
        right = widgets.VBox([c[n] for n in ("update_interval_s", "horizon_s", "sample_rate_fps",
                                             "downlink_kbps", "latency_s", "asr", "atr")])
        buttons = widgets.HBox([self.start_button, self.stop_button, self.status])
        return widgets.VBox([widgets.HBox([left, right]), buttons, self.figure, self.log])

    def _wire(self) -> None:
        for name, control in self.controls.items():
            control.observe(guarded(lambda change, name=name: self._on_control(name, change["new"]),
                                    self.show_error), names="value")
        self.start_button.on_click(guarded(lambda _: self.start(), self.show_error))
        self.stop_button.on_click(guarded(lambda _: self.stop(), self.show_error))

    def show_error(self, err: BaseException) -> None:
        """Append `err` to the log Output: a ConfigError as its message, else its traceback."""
        self.log.append_stderr(error_text(err))
        self.status.value = f"error: {type(err).__name__} (details below)"

    # -- the policy --------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The panel's current values, by config field name."""
        return {name: control.value for name, control in self.controls.items()}

    @property
    def running(self) -> bool:
        return self._events is not None

    def set_policy(self, **changes: Any) -> None:
        """Change policy values as if their widgets were moved. While a run is going, they
        apply at its next update (its `policy_changes` column records them); otherwise at the
        next Start. Raises ConfigError for an unknown name, an invalid value, a value outside
        the panel's range, or a scheme/link change while running."""
        if "downlink_kbps" in changes and changes["downlink_kbps"] is None:
            changes["downlink_kbps"] = 0.0  # the panel shows unlimited as 0
        self._check_panel(changes)
        if self.running:
            self.sim.set_policy(**changes)  # validated now, applied by the run at its next update
        else:
            config_with_controls(self.config, {**self.values(), **changes})  # validates
        self._syncing = True
        try:
            for name, value in changes.items():
                self.controls[name].value = value
        finally:
            self._syncing = False

    def _check_panel(self, changes: dict[str, Any]) -> None:
        unknown = sorted(set(changes) - set(self.controls))
        if unknown:
            raise ConfigError(f"unknown policy value(s) {', '.join(unknown)}; the panel has: "
                              + ", ".join(self.controls))
        fixed = sorted(set(changes) - set(LIVE_FIELDS))
        if self.running and fixed:
            raise ConfigError(f"{', '.join(fixed)} cannot change during a run; stop it, change "
                              "the value, and press Start again")
        for name, value in changes.items():
            control = self.controls[name]
            low, high = getattr(control, "min", None), getattr(control, "max", None)
            if low is not None and not low <= value <= high:
                raise ConfigError(f"{name}={value} is outside the panel's range [{low}, {high}]")

    def _on_control(self, name: str, value: Any) -> None:
        """A widget moved: queue live fields for the next update; else just validate."""
        if self._syncing:
            return
        if isinstance(value, float):
            value = round(value, 6)  # a slider's 0.07000000000000001 reads 0.07 in the ledger
        changes = self._with_dependants(name, value)
        try:
            if self.running and name in LIVE_FIELDS:
                self.sim.set_policy(**changes)  # validated now (with what is pending), applied at the next update
            else:
                config_with_controls(self.config, {**self.values(), **changes})  # shows a bad value at once
        except Exception:
            self._show_controls(self._in_force(), names=(name,))  # a refused change resets its control
            raise
        self._show_controls(changes)
        if self.running:
            self._draw_status()

    def _in_force(self) -> dict[str, Any]:
        """The policy values in force for the next update: the run's, with its pending
        changes (the panel's own values when no run is going)."""
        if not self.running:
            return self.values()
        adapt = {k: getattr(self.sim.adapt, k) for k in LIVE_FIELDS}
        return {**self.values(), **adapt, **self.sim.pending_changes()}

    def _with_dependants(self, name: str, value: Any) -> dict[str, Any]:
        """`{name: value}` and what it takes along: ATR needs ASR, so unticking ASR unticks
        ATR, and ticking ATR ticks ASR (either order of clicks ends in a valid policy)."""
        changes = {name: value}
        current = self._in_force()
        if name == "asr" and value is False and current.get("atr"):
            changes["atr"] = False
        if name == "atr" and value is True and not current.get("asr"):
            changes["asr"] = True
        return changes

    def _show_controls(self, values: dict[str, Any], *, names: tuple[str, ...] | None = None) -> None:
        """Move controls to `values` without their observers firing."""
        self._syncing = True
        try:
            for key in names or tuple(values):
                if key in self.controls and key in values and self.controls[key].value != values[key]:
                    self.controls[key].value = values[key]
        finally:
            self._syncing = False

    def pending(self) -> dict[str, Any]:
        """Policy changes asked for and not yet applied by an update."""
        return {} if self.sim is None else self.sim.pending_changes()

    # -- running -----------------------------------------------------------------------
    def begin(self) -> None:
        """Set up a new run from the panel's values (loads the video and the students the
        first time); advance it with `step()` or `run_blocking()`, or use `start()`."""
        self._check_not_running()
        config = config_with_controls(self.config, self.values())
        self.status.value = "loading the video and the students..."
        sim = Simulation.create(config, video=self._video, teacher=self._teacher,
                                students=self._students)
        self._video, self._students = sim.video, sim.students
        with self._lock:
            self.sim = sim
            self.collector = ResultCollector(config, sim.video.classes)
        self._events = sim.run()
        self.state = "running"
        self._lock_panel(True)
        self.figure.update_xaxes(range=[0, sim.num_frames / sim.video.fps])
        self._draw()

    def _check_not_running(self) -> None:
        if self.running:
            raise RuntimeError("a run is already going: stop() it (and join() a background run) first")

    def _check_no_other_thread(self) -> None:
        """Only one thread may advance the run's generator (a second gets ValueError)."""
        thread = self._thread
        if thread is not None and thread.is_alive() and threading.current_thread() is not thread:
            raise RuntimeError("a background run is going: stop() and join() it before stepping by hand")

    def step(self) -> FramesEvent | UpdateEvent | None:
        """Advance the run by one event (beginning one if this app has none yet); None once
        the run has ended. Redraws at most every `refresh_s` seconds."""
        self._check_no_other_thread()
        if self._events is None:
            if self.sim is not None:
                return None
            self.begin()
        try:
            event = next(self._events, None)
        except Exception:
            self._finish("failed")
            raise
        if event is None:
            self._finish("stopped" if self.sim.stopped else "finished")
            return None
        with self._lock:
            self.collector.add(event)
        if time.monotonic() - self._last_draw >= self.refresh_s:
            self._draw()
        return event

    def run_blocking(self, max_events: int | None = None, *,
                     max_updates: int | None = None) -> RunResult:
        """Step synchronously until the run ends, `max_events` events, or `max_updates`
        update events have passed; returns the result so far. The figure is redrawn last."""
        events = updates = 0
        while max_events is None or events < max_events:
            event = self.step()
            if event is None:
                break
            events += 1
            updates += isinstance(event, UpdateEvent)
            if max_updates is not None and updates >= max_updates:
                break
        self._draw()
        return self.result()

    def start(self) -> None:
        """Begin a new run and step it on a background thread, so the kernel stays free for
        the widgets; errors on that thread appear in the log Output."""
        self.begin()
        self._thread = threading.Thread(target=self._run_thread, name="amslib-live-run", daemon=True)
        self._thread.start()

    def _run_thread(self) -> None:
        try:
            while self.step() is not None:
                pass
        except Exception as err:  # noqa: BLE001 - a thread's exception would vanish; show it
            self.show_error(err)
        finally:
            if self.running:  # whatever failed, the panel goes back to a usable, idle state
                self._events = None
                self.state = "failed"
                self._lock_panel(False)

    def stop(self) -> None:
        """Ask the run to end after its current batch of frames; returns at once (`join()`
        waits for a background run)."""
        if self.sim is None or not self.running:
            return
        self.sim.stop()
        self.status.value = "stopping after the current batch of frames..."

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for a background run to end; True if none is going any more."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self._thread is None or not self._thread.is_alive()

    def _finish(self, state: str) -> None:
        self._events = None
        self.state = state
        self._lock_panel(False)
        self._draw()

    def _lock_panel(self, running: bool) -> None:
        """Start/Stop enable each other; the scheme and link are fixed during a run."""
        self.start_button.disabled, self.stop_button.disabled = running, not running
        for name in START_FIELDS:
            self.controls[name].disabled = running

    # -- results and drawing -----------------------------------------------------------
    def result(self) -> RunResult:
        """The tables of the current (or last) run so far; empty before the first run."""
        with self._lock:
            collector = self.collector or ResultCollector(self.config, ())
            return collector.result()

    def snapshot(self) -> go.Figure:
        """A static copy of the live figure (it stays visible in a saved notebook)."""
        return go.Figure(self.figure)

    def _draw(self) -> None:
        points = curve_points(self.result())
        draw_points(self.figure, points, titles=self._titles)
        self._draw_status(points)
        self._last_draw = time.monotonic()

    def _draw_status(self, points: dict[str, np.ndarray] | None = None) -> None:
        if self.sim is None:
            return
        points = curve_points(self.result()) if points is None else points
        fps = self.sim.video.fps
        self.status.value = status_text(self.state, points, duration_s=self.sim.num_frames / fps,
                                        fps=fps, pending=self.pending())


# -- a per-class drill-down over several runs ------------------------------------------------
def class_drilldown(results: dict[str, RunResult], *, class_name: str | None = None) -> widgets.VBox:
    """A class Dropdown over a plotly figure of that class's trailing-window IoU in every run
    of `results` (`plots.class_timeline_figure`); an error while redrawing shows below it."""
    if not results:
        raise ValueError("no runs to drill into: pass {name: RunResult}, e.g. a sweep's results")
    classes = next(iter(results.values())).classes
    choose = widgets.Dropdown(options=classes, value=class_name or classes[0], description="class")
    figure = go.FigureWidget(class_timeline_figure(results, choose.value))
    log = widgets.Output()

    def redraw(change: dict) -> None:
        new = class_timeline_figure(results, change["new"])
        with figure.batch_update():
            for trace, line in zip(figure.data, new.data):
                trace.y = line.y
            figure.layout.title = new.layout.title
    choose.observe(guarded(redraw, lambda err: log.append_stderr(error_text(err, brief=(Exception,)))),
                   names="value")
    return widgets.VBox([choose, figure, log])
