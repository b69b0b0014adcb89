"""The live panel's drawing: the plotly figure (mIoU over a reference, bandwidth) and how
points go into it, the frame picture (one frame, or the frames just before and after an
update arrived), and the throttle that keeps redraws to a share of the run's wall time.

`PanelDrawing` is the part of `widgets.LiveApp` that redraws the figure, the picture and the
status line from the device drawn; the state it reads lives on the app.
"""
from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from amslib.analysis.plots import SCHEME_COLORS, settled_top
from amslib.analysis.results import RunResult
from amslib.core.labels import LabelSet
from amslib.sim.state import FramesEvent
from amslib.ui.pictures import png, render_panel, stack
from amslib.ui.readouts import curve_points, reference_gain, server_text, status_text

# Trace order in the live figure: the reference first, so its curve lies under the live one.
REFERENCE, MIOU, ARRIVALS, UPLINK, DOWNLINK, UPLINK_INTERVAL, DOWNLINK_INTERVAL = range(7)
_CHANGE_COLOR, _REFERENCE_COLOR = "#d62728", "#b0b0b0"
_UPLINK_COLOR, _DOWNLINK_COLOR = "#8c564b", "#9467bd"


def next_draw_delay(draw_s: float, *, budget: float, least_s: float) -> float:
    """Seconds to wait after a redraw that took `draw_s` before the next one, so drawing
    takes at most `budget` of the wall time (draw_s of every draw_s / budget seconds), and
    never less than `least_s`."""
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"the drawing budget is a share of the wall time in (0, 1], got {budget}")
    return max(least_s, draw_s * (1.0 - budget) / budget)


@dataclass
class DrawTiming:
    """What drawing cost in one run: `draw_s` seconds in `draws` redraws (curves, frame
    picture and status, on the run's thread or the kernel's), against `run_s` seconds of
    wall time stepping the run (drawing included, pauses and the reference run not)."""

    draw_s: float = 0.0
    draws: int = 0
    run_s: float = 0.0

    @property
    def share(self) -> float:
        """draw_s / run_s (NaN before the run has stepped)."""
        return self.draw_s / self.run_s if self.run_s > 0 else math.nan

    def text(self) -> str:
        return (f"drawing {100 * self.share:.1f}% of the run's wall time ({self.draws} redraws, "
                f"{self.draw_s:.2f} of {self.run_s:.1f} s)")


@dataclass(frozen=True)
class FrameView:
    """One frame as the edge ran it: `index`, `t_s`, `frame` (H, W, 3) uint8, the teacher's
    `label` and the edge's `prediction` (H, W) uint8 class ids, the edge's model `version`."""

    index: int
    t_s: float
    frame: np.ndarray
    label: np.ndarray
    prediction: np.ndarray
    version: int

    def title(self, scheme: str) -> str:
        return f"frame {self.index}, t = {self.t_s:.2f} s, {scheme} model version {self.version}"


def frame_views(event: FramesEvent, fps: float) -> list[FrameView]:
    """A FrameView per frame of `event` (empty when the event carries no frames)."""
    if event.frames is None or event.labels is None:
        return []
    return [FrameView(event.start + k, (event.start + k) / fps, event.frames[k], event.labels[k],
                      event.predictions[k], int(row.get("model_version", 0))) for k, row in enumerate(event.rows)]


def frame_picture(views: tuple[FrameView, ...], *, label_set: LabelSet, classes: tuple[str, ...],
                  scheme: str, errors: bool, min_height: int = 128) -> Image.Image:
    """The live panel's picture: one frame (`views` of one), or the frames just before and
    just after an update arrived (`views` of two), each as `pictures.render_panel` draws it."""
    if len(views) == 2:
        titled = [(views[0], f"just before the update arrived: {views[0].title(scheme)}"),
                  (views[1], f"just after (the edge runs the new model): {views[1].title(scheme)}")]
    elif len(views) == 1:
        titled = [(views[0], views[0].title(scheme))]
    else:
        raise ValueError(f"frame_picture draws one frame or a (before, after) pair, got {len(views)}")
    return stack([render_panel(v.frame, v.label, v.prediction, label_set=label_set, classes=classes,
                               title=title, min_height=min_height, errors=errors) for v, title in titled])


# -- the figure ----------------------------------------------------------------------------
def plain(value):
    """`value` with every numpy array as a list and every numpy scalar as a Python number
    (in dicts, lists and tuples too), for a FigureWidget. The browser sends each redrawn
    trace back, its typed arrays as JSON objects ({"0": ..., "1": ...}); plotly's
    `_remove_overlapping_props` then tests `if not input_val` on the array it holds, which
    raises for a numpy array ("The truth value of an array ... is ambiguous"), in a comm
    callback nobody sees but JupyterLab's Log Console (issue #24). Lists compare fine."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def widget_figure(fig: go.Figure) -> go.FigureWidget:
    """A FigureWidget of `fig`, its traces' arrays as lists (`plain`)."""
    return go.FigureWidget(data=[plain(trace.to_plotly_json()) for trace in fig.data], layout=fig.layout)


def live_figure(*, scheme: str = "ams") -> go.FigureWidget:
    """Two rows sharing video time: trailing-window mIoU (%) over a reference run's (grey),
    with update-arrival markers; uplink/downlink Kbps averaged so far (lines) and per update
    interval (steps). Trace indices: REFERENCE, MIOU, ARRIVALS, UPLINK, DOWNLINK,
    UPLINK_INTERVAL, DOWNLINK_INTERVAL (each interval's rate shown from its end to the next)."""
    color = SCHEME_COLORS.get(scheme, "#1f77b4")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("mIoU, trailing window (%)",
                                        "Bandwidth (Kbps): average so far, and per update interval"))
    fig.add_scatter(x=[], y=[], name="reference", mode="lines", line=dict(color=_REFERENCE_COLOR, width=3),
                    row=1, col=1)
    fig.add_scatter(x=[], y=[], name="mIoU", mode="lines", line=dict(color=color), row=1, col=1)
    fig.add_scatter(x=[], y=[], name="update arrived", mode="markers", hoverinfo="text+x",
                    marker=dict(symbol="triangle-up", size=10, color="#2ca02c"), row=1, col=1)
    # the bandwidth lines in colours of their own (the mIoU line has the scheme's) and in a
    # legend of their own beside their plot, each direction named (issue #24)
    up, down = dict(color=_UPLINK_COLOR, dash="dot"), dict(color=_DOWNLINK_COLOR)
    fig.add_scatter(x=[], y=[], name="uplink (frames), average, dotted", mode="lines", line=up,
                    legend="legend2", row=2, col=1)
    fig.add_scatter(x=[], y=[], name="downlink (updates), average", mode="lines", line=down,
                    legend="legend2", row=2, col=1)
    step = dict(mode="lines", line_shape="hv", opacity=0.4, legend="legend2", row=2, col=1)
    fig.add_scatter(x=[], y=[], name="uplink per interval", line=dict(up, width=3), **step)
    fig.add_scatter(x=[], y=[], name="downlink per interval", line=dict(down, width=3), **step)
    fig.update_yaxes(range=[0, 100], title_text="mIoU (%)", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", title_text="Kbps", row=2, col=1)
    fig.update_xaxes(title_text="video time (s)", row=2, col=1)
    fig.update_layout(height=560, width=980, template="plotly_white", margin=dict(t=40, b=40),
                      legend=dict(x=1.02, y=1.0), legend2=dict(x=1.02, y=0.45, yanchor="top"))
    return widget_figure(fig)


def _steps(end: np.ndarray, value: np.ndarray, until_s: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y of a step line ("hv") that shows value[k], the rate over the interval ending at
    end[k], from end[k] until the next interval ends (the last one until `until_s`): a meter
    read at each update, so a change of `fraction` steps up where its update is marked."""
    if not len(value):
        return np.zeros(0), np.zeros(0)
    return np.append(end, max(until_s, end[-1])), np.append(value, value[-1])


def bandwidth_axis(points: dict[str, np.ndarray]) -> tuple[float | None, tuple[dict, ...]]:
    """The bandwidth axis's top once the first update interval has ended (None before:
    autorange), scaled from then on (`plots.settled_top`): the average over the first frames
    is one frame's bits over a fraction of a second; and a note naming that peak when it is
    off the axis (the hover still gives every value)."""
    if not len(points["interval_end_s"]):
        return None, ()
    settle_s = float(points["interval_end_s"][0])
    curves = [points["uplink_kbps"], points["downlink_kbps"], points["interval_uplink_kbps"],
              points["interval_downlink_kbps"]]
    times = [points["t_s"], points["t_s"], points["interval_end_s"], points["interval_end_s"]]
    top = settled_top(np.concatenate(times), [np.concatenate(curves)], settle_s=settle_s)
    peak = max((float(np.nanmax(c)) for c in curves if len(c)), default=0.0)
    if peak <= top:
        return top, ()
    return top, (dict(x=1.0, xref="paper", xanchor="right", y=1.0, yref="y2 domain", showarrow=False,
                      text=f"axis from {settle_s:g} s: the first frames' average ({peak:,.0f} Kbps) is off it",
                      font=dict(size=10, color="#666")),)


def draw_points(fig: go.FigureWidget, points: dict[str, np.ndarray], *, titles: tuple = ()) -> None:
    """Write `points` (from `curve_points`) into `fig` as one batched message; policy changes
    become dashed vertical lines labelled with the change. `titles`: annotations to keep.
    The reference trace is left as it is (`draw_reference`)."""
    lines = [dict(type="line", xref="x", yref="paper", x0=float(t), x1=float(t), y0=0, y1=1,
                  line=dict(color=_CHANGE_COLOR, dash="dash", width=1)) for t in points["change_t_s"]]
    labels = [dict(x=float(t), xref="x", y=0.98, yref="y domain", text=text, showarrow=False,
                   xanchor="left", font=dict(color=_CHANGE_COLOR, size=11))
              for t, text in zip(points["change_t_s"], points["change_text"])]
    end = points["interval_end_s"]
    until_s = float(points["t_s"][-1]) if len(points["t_s"]) else 0.0
    t_s = plain(points["t_s"])
    with fig.batch_update():
        fig.data[MIOU].update(x=t_s, y=plain(points["miou_pct"]))
        fig.data[ARRIVALS].update(x=plain(points["arrival_t_s"]), y=plain(points["arrival_miou_pct"]),
                                  hovertext=plain(list(points["arrival_text"])))
        fig.data[UPLINK].update(x=t_s, y=plain(points["uplink_kbps"]))
        fig.data[DOWNLINK].update(x=t_s, y=plain(points["downlink_kbps"]))
        for trace, key in ((UPLINK_INTERVAL, "interval_uplink_kbps"), (DOWNLINK_INTERVAL, "interval_downlink_kbps")):
            x, y = _steps(end, points[key], until_s)
            fig.data[trace].update(x=plain(x), y=plain(y))
        top, note = bandwidth_axis(points)
        fig.layout.yaxis2.range = None if top is None else [0.0, top]
        fig.layout.shapes = lines
        fig.layout.annotations = (*titles, *labels, *note)


def draw_reference(fig: go.FigureWidget, reference: RunResult | None, *, name: str = "") -> None:
    """The reference run's trailing-window mIoU (%) as the grey curve (empty when None)."""
    if reference is None or reference.frames.empty:
        fig.data[REFERENCE].update(x=[], y=[], name="reference")
        return
    fig.data[REFERENCE].update(x=plain(reference.frames["t_s"].to_numpy(float)), y=plain(100.0 * reference.window_miou()),
                               name=f"reference: {name or reference.config.scheme}")



class PanelDrawing:
    """The drawing part of `widgets.LiveApp`: the figure, the frame picture and the status
    line of the device drawn, redrawn within the drawing budget (`timing` books the cost)."""

    def snapshot(self) -> go.Figure:
        """A static copy of the live figure (it stays visible in a saved notebook)."""
        return go.Figure(self.figure)

    def picture(self) -> Image.Image | None:
        """The frame picture the panel shows (a PIL image: it stays visible in a saved
        notebook); None before the first frame."""
        views = self._views()
        if not views:
            return None
        video = self.sim.video
        return frame_picture(views, label_set=video.label_set, classes=video.classes,
                             scheme=self.sim.config.scheme, errors=self.show_errors.value)

    def _views(self) -> tuple[FrameView, ...]:
        source = self.source
        if source is None:
            return ()
        with source.lock:
            if self._showing_arrival and source.arrival is not None:
                return source.arrival
            return () if source.latest is None else (source.latest,)

    def _draw(self, *, book: bool = True, status: bool = True) -> None:
        """Redraw the curves, the picture and the status; book its time in `timing` as part
        of the run's (not for a redraw after the run's end), and when the next throttled
        redraw may come."""
        started = time.perf_counter()
        with self._draw_lock:
            points = curve_points(self.result())
            draw_points(self.figure, points, titles=self._titles)
            self._draw_picture(count=False)
            if status:
                self._draw_status(points)
        spent = time.perf_counter() - started
        if book:
            self.timing.draw_s += spent
            self.timing.run_s += spent
            self.timing.draws += 1
        self._next_draw = time.perf_counter() + next_draw_delay(spent, budget=self.draw_budget,
                                                                least_s=self.refresh_s)

    def _draw_picture(self, *, count: bool = True) -> None:
        started = time.perf_counter()
        with self._draw_lock:
            picture = self.picture()
            if picture is not None:
                self.image.value = png(picture)
                self.image.layout.display = None
        if count:  # the error-mask toggle redraws the picture alone
            self.timing.draw_s += time.perf_counter() - started

    def _draw_status(self, points: dict[str, np.ndarray] | None = None) -> None:
        if self.sim is None:
            return
        points = curve_points(self.result()) if points is None else points
        fps = self.sim.video.fps
        gain = None
        if self.reference is not None:
            gain = (self._reference_name, *reference_gain(points["t_s"], points["miou_pct"],
                                                          self._reference_pct[self.device],
                                                          warmup_s=self.sim.config.eval.warmup_s))
        notes, state = self._notes, self.state
        views = self._views()
        if len(views) == 1:  # the picture lags the run by up to a redraw: say which moment it shows
            notes = (f"picture: t = {views[0].t_s:.1f} s", *notes)
        if self._showing_arrival and self.source.arrival is not None:
            after = self.source.arrival[1]
            notes = (f"update arrived at frame {after.index} (t = {after.t_s:.2f} s): the frames just "
                     "before and after it are shown; press Step or Resume", *notes)
        fleet = self.fleet
        if fleet.server is not None:
            state = f"{state}, device {self.device} of {len(fleet.runs)} shown"
            notes = (server_text(list(fleet.server.busy), gpus=fleet.server.gpus, now_s=fleet.now_s), *notes)
        text = status_text(state, points, duration_s=self.sim.num_frames / fps, fps=fps,
                           pending=self.pending(), gain=gain, notes=notes)
        self.status.value = html.escape(text, quote=False)
