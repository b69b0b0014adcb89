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

Pure functions come first (`curve_points`, `interval_points`, `reference_gain`,
`server_text`, `frame_picture`, `config_with_controls`, `summary_table`, `ledger_table`);
`LiveRun` follows one device's simulation; `LiveFleet` feeds a LiveRun per device from one
stream of (device, event): one `Simulation.run()`, or `fleet_events` of a fleet on one clock;
`LiveApp` wraps them with ipywidgets and a plotly `FigureWidget` and holds all the state. The
panel draws one `LiveRun` (`app.source`, device `app.device` of `app.fleet`); `Step` pauses at
an update's arrival at that device, and a policy change applies to every device at its own
next update.

`app.start()` runs the simulation on a background thread so the kernel stays free for the
sliders; `app.step()`, `app.run_to_arrival()` and `app.run_blocking()` do the same
synchronously, for tests and headless execution (a background thread there dies with the
kernel at the end).

    app = LiveApp(preset("laptop"))
    display(app.widget)   # then press Start or Step, or: app.run_to_arrival(); app.run_blocking()
"""
from __future__ import annotations

import html
import math
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from amslib.analysis.fleet import FleetResult, fleet_events, fleet_simulations, server_table
from amslib.analysis.plots import SCHEME_COLORS, class_timeline_figure, cumulative_kbps
from amslib.analysis.results import ResultCollector, RunResult
from amslib.analysis.runs import cached_run
from amslib.core.clock import TIME_EPS_S
from amslib.core.config import SCHEMES, STRATEGIES, ConfigError, RunConfig
from amslib.core.files import data_root
from amslib.core.labels import LabelSet
from amslib.data.video import Video
from amslib.models.teachers import Teacher
from amslib.sim.engine import Simulation, Students
from amslib.sim.server import Server
from amslib.sim.state import FramesEvent, LinksEvent, UpdateEvent
from amslib.ui.pictures import png, render_panel, stack

# Policy fields the server can change between updates (`Simulation.set_policy`).
LIVE_FIELDS = ("strategy", "fraction", "update_interval_s", "horizon_s", "iterations", "lr",
               "sample_rate_fps", "asr", "atr")
# Fields fixed for a whole run (the scheme, the link, the fleet's size): read at Start, locked while running.
START_FIELDS = ("scheme", "downlink_kbps", "latency_s", "devices")
MAX_DEVICES = 8  # the devices slider's top: a fleet the panel can still step through by hand
LEDGER_COLUMNS = ("update", "t_update_s", "t_arrival_s", "num_samples", "strategy", "fraction",
                  "num_sent", "mask_bytes", "value_bytes", "compressed_bytes", "policy_changes")
# Trace order in the live figure: the reference first, so its curve lies under the live one.
REFERENCE, MIOU, ARRIVALS, UPLINK, DOWNLINK, UPLINK_INTERVAL, DOWNLINK_INTERVAL = range(7)
_CHANGE_COLOR, _REFERENCE_COLOR = "#d62728", "#b0b0b0"
NO_REFERENCE = ""  # the reference dropdown's "(no reference)"


# -- pure functions ------------------------------------------------------------------------
def control_values(config: RunConfig) -> dict[str, Any]:
    """The policy panel's values for `config` (an unlimited downlink, None, shows as 0;
    `devices` is ServerConfig.devices, the edge devices sharing the server)."""
    values: dict[str, Any] = {name: getattr(config.adapt, name) for name in LIVE_FIELDS}
    values.update(scheme=config.scheme, downlink_kbps=config.link.downlink_kbps or 0.0,
                  latency_s=config.link.latency_s, devices=config.server.devices)
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
                   link=replace(config.link, **link),
                   server=replace(config.server, devices=values.get("devices", config.server.devices)))


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
    points.update(interval_points(result))
    return points


def interval_points(result: RunResult) -> dict[str, np.ndarray]:
    """Bandwidth per update interval, so a new `fraction` shows in the downlink at the first
    update that uses it (the average so far moves slowly).

    The intervals end at the distinct update times t_1 < ... < t_M that are > 0 and begin
    at the one before (t_0 = 0): per interval (M,) `interval_start_s`, `interval_end_s`,
    `interval_uplink_kbps` (bits of the frames in [start, end) over its length) and
    `interval_downlink_kbps` (bits sent by the updates made at its end, over its length: what
    the server sent for that interval's samples; an update at 0 s counts in the first)."""
    updates, frames = result.updates, result.frames
    times = updates["t_update_s"].to_numpy(float) if len(updates) and "t_update_s" in updates else np.zeros(0)
    ends = np.unique(times[times > TIME_EPS_S])
    if not len(ends) or frames.empty:
        return {k: np.zeros(0) for k in ("interval_start_s", "interval_end_s", "interval_uplink_kbps",
                                         "interval_downlink_kbps")}
    starts = np.concatenate([[0.0], ends[:-1]])
    length_s = ends - starts
    down_bits = updates["downlink_bits"].fillna(0).to_numpy(float) if "downlink_bits" in updates \
        else np.zeros(len(updates))
    down = np.zeros(len(ends))
    np.add.at(down, np.searchsorted(ends, times - TIME_EPS_S), down_bits)  # t_k - eps: at its own end
    t = frames["t_s"].to_numpy(float)
    inside = t < ends[-1] - TIME_EPS_S
    up = np.zeros(len(ends))
    np.add.at(up, np.searchsorted(ends, t[inside] + TIME_EPS_S), frames["uplink_bits"].to_numpy(float)[inside])
    return {"interval_start_s": starts, "interval_end_s": ends, "interval_uplink_kbps": up / length_s / 1000.0,
            "interval_downlink_kbps": down / length_s / 1000.0}


def _arrival_points(sent: pd.DataFrame, t: np.ndarray, miou: np.ndarray) -> dict[str, np.ndarray]:
    """Markers where updates reached the edge, at the mIoU of the first frame that used them."""
    if len(sent) and len(t):
        sent = sent[sent["t_arrival_s"] <= t[-1] + TIME_EPS_S]
    if not len(sent) or not len(t):
        return {"arrival_t_s": np.zeros(0), "arrival_miou_pct": np.zeros(0),
                "arrival_text": np.zeros(0, dtype=object)}
    arrival = sent["t_arrival_s"].to_numpy(float)
    first_frame = np.minimum(np.searchsorted(t, arrival - TIME_EPS_S), len(t) - 1)
    # every scheme books `downlink_bits`; a model update also its gzip size and fraction
    kbytes = sent["compressed_bytes"] / 1000 if "compressed_bytes" in sent else sent["downlink_bits"] / 8000
    fraction = sent["fraction"] if "fraction" in sent else pd.Series(np.nan, index=sent.index)
    text = [f"update {int(u)}: {kb:.1f} kB down" + ("" if pd.isna(f) else f", fraction {f:g}")
            for u, kb, f in zip(sent["update"], kbytes, fraction)]
    return {"arrival_t_s": arrival, "arrival_miou_pct": miou[first_frame],
            "arrival_text": np.array(text, dtype=object)}


def _change_points(updates: pd.DataFrame) -> dict[str, np.ndarray]:
    """Where a policy change took effect: the update whose `policy_changes` is not empty."""
    if updates.empty or "policy_changes" not in updates:
        return {"change_t_s": np.zeros(0), "change_text": np.zeros(0, dtype=object)}
    changed = updates[updates["policy_changes"].fillna("").astype(str) != ""]
    return {"change_t_s": changed["t_update_s"].to_numpy(float),
            "change_text": changed["policy_changes"].to_numpy(object)}


def reference_gain(t_s: np.ndarray, miou_pct: np.ndarray, reference_pct: np.ndarray, *,
                   warmup_s: float) -> tuple[float, float]:
    """(gain, from_s): the live run's mean trailing-window mIoU minus the reference run's, in
    points, over the frames so far from `from_s` on: the end of the warm-up once the run has
    passed it, else 0 (as `RunResult.summary` counts). t_s, miou_pct (N,) of the live run;
    reference_pct (M,) of the reference, frame by frame from frame 0. Frames where either is
    NaN are left out; the gain is NaN when no frame is left."""
    n = min(len(t_s), len(reference_pct))
    t, live, ref = t_s[:n], miou_pct[:n], reference_pct[:n]
    from_s = warmup_s if n and t[-1] >= warmup_s else 0.0
    keep = (t >= from_s) & ~np.isnan(live) & ~np.isnan(ref)
    return (float(np.mean(live[keep] - ref[keep])) if keep.any() else math.nan), from_s


def status_text(state: str, points: dict[str, np.ndarray], *, duration_s: float, fps: float,
                pending: dict[str, Any], gain: tuple[str, float, float] | None = None,
                notes: tuple[str, ...] = ()) -> str:
    """One line: state, video time done, updates arrived, latest mIoU, the gain over the
    reference so far (`gain`: its name, the points from `reference_gain` and their start),
    changes waiting, and `notes`."""
    t = points["t_s"]
    parts = [f"{state}: {(t[-1] + 1.0 / fps) if len(t) else 0.0:.1f} / {duration_s:.1f} s of video",
             f"{len(points['arrival_t_s'])} updates arrived"]
    seen = points["miou_pct"][~np.isnan(points["miou_pct"])]
    if len(seen):
        parts.append(f"mIoU {seen[-1]:.1f}%")
    if gain is not None and not math.isnan(gain[1]):
        parts.append(f"gain over {gain[0]} {gain[1]:+.1f} points (mean from {gain[2]:g} s)")
    if pending:
        parts.append("pending: " + ", ".join(f"{k}={v}" for k, v in pending.items())
                     + " (applies at the next update)")
    return " | ".join((*parts, *notes))


def server_text(busy: list[dict], *, gpus: int, now_s: float) -> str:
    """A fleet's shared server so far, for the status line: the jobs a GPU has started by
    `now_s`, the share of the GPUs' time from 0 to `now_s` they kept busy, and their mean
    wait in the queue. `busy`: `Server.busy`, one dict per job (t_start_s, t_end_s,
    queue_wait_s; a job started by now may end after it: only its part up to now counts)."""
    started = [job for job in busy if job["t_start_s"] <= now_s + TIME_EPS_S]
    busy_s = sum(max(0.0, min(job["t_end_s"], now_s) - job["t_start_s"]) for job in started)
    share = busy_s / (gpus * now_s) if now_s > 0 else 0.0
    wait_s = float(np.mean([job["queue_wait_s"] for job in started])) if started else 0.0
    return (f"server: {len(started)} jobs started, GPU busy {100 * share:.0f}% so far, "
            f"mean queue wait {wait_s:.2f} s")


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
    fig.add_scatter(x=[], y=[], name="uplink", mode="lines", line=dict(color=color, dash="dot"),
                    row=2, col=1)
    fig.add_scatter(x=[], y=[], name="downlink", mode="lines", line=dict(color=color), row=2, col=1)
    step = dict(mode="lines", line_shape="hv", opacity=0.4, row=2, col=1)
    fig.add_scatter(x=[], y=[], name="uplink per interval", line=dict(color=color, dash="dot", width=3), **step)
    fig.add_scatter(x=[], y=[], name="downlink per interval", line=dict(color=color, width=3), **step)
    fig.update_yaxes(range=[0, 100], title_text="mIoU (%)", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", title_text="Kbps", row=2, col=1)
    fig.update_xaxes(title_text="video time (s)", row=2, col=1)
    fig.update_layout(height=520, width=980, template="plotly_white", margin=dict(t=40, b=40),
                      legend=dict(x=1.02, y=1.0))
    return go.FigureWidget(fig)


def _steps(end: np.ndarray, value: np.ndarray, until_s: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y of a step line ("hv") that shows value[k], the rate over the interval ending at
    end[k], from end[k] until the next interval ends (the last one until `until_s`): a meter
    read at each update, so a change of `fraction` steps up where its update is marked."""
    if not len(value):
        return np.zeros(0), np.zeros(0)
    return np.append(end, max(until_s, end[-1])), np.append(value, value[-1])


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
    with fig.batch_update():
        fig.data[MIOU].update(x=points["t_s"], y=points["miou_pct"])
        fig.data[ARRIVALS].update(x=points["arrival_t_s"], y=points["arrival_miou_pct"],
                                  hovertext=list(points["arrival_text"]))
        fig.data[UPLINK].update(x=points["t_s"], y=points["uplink_kbps"])
        fig.data[DOWNLINK].update(x=points["t_s"], y=points["downlink_kbps"])
        for trace, key in ((UPLINK_INTERVAL, "interval_uplink_kbps"), (DOWNLINK_INTERVAL, "interval_downlink_kbps")):
            x, y = _steps(end, points[key], until_s)
            fig.data[trace].update(x=x, y=y)
        fig.layout.shapes = lines
        fig.layout.annotations = (*titles, *labels)


def draw_reference(fig: go.FigureWidget, reference: RunResult | None, *, name: str = "") -> None:
    """The reference run's trailing-window mIoU (%) as the grey curve (empty when None)."""
    if reference is None or reference.frames.empty:
        fig.data[REFERENCE].update(x=[], y=[], name="reference")
        return
    fig.data[REFERENCE].update(x=reference.frames["t_s"].to_numpy(float), y=100.0 * reference.window_miou(),
                               name=f"reference: {name or reference.config.scheme}")


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
        "devices": widgets.IntSlider(value=v["devices"], min=1, max=max(MAX_DEVICES, v["devices"]),
                                     continuous_update=False, description="devices",
                                     description_tooltip="edge devices sharing the server (a fleet run)", **common),
    }


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


class LiveApp:
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
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
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

    # -- the policy --------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The panel's current values, by config field name."""
        return {name: control.value for name, control in self.controls.items()}

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

    def set_policy(self, **changes: Any) -> None:
        """Change policy values as if their widgets were moved. While a run is going, they
        apply at its next update (its `policy_changes` column records them); otherwise at the
        next Start. Raises ConfigError for an unknown name, an invalid value, a value outside
        the panel's range, or a scheme/link change while running."""
        if "downlink_kbps" in changes and changes["downlink_kbps"] is None:
            changes["downlink_kbps"] = 0.0  # the panel shows unlimited as 0
        self._check_panel(changes)
        if self.running:
            self.fleet.set_policy(**changes)  # validated now, applied by each device at its next update
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
                self.fleet.set_policy(**changes)  # validated now (with what is pending), applied at each next update
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
        """Policy changes asked for and not yet applied by an update (of the device drawn)."""
        return {} if self.sim is None else self.sim.pending_changes()

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

    # -- results and drawing -----------------------------------------------------------
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
