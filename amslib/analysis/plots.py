"""Figures: plotly for interactive curves, PIL for still pictures (reports)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from amslib.analysis.results import SUMMARY_COLUMNS, RunResult
from amslib.core.labels import LabelSet

SCHEME_COLORS = {"none": "#7f7f7f", "one_time": "#ff7f0e", "ams": "#1f77b4", "jit": "#d62728",
                 "remote_tracking": "#2ca02c"}


def cumulative_kbps(event_t_s: np.ndarray, bits: np.ndarray, at_s: np.ndarray,
                    elapsed_s: np.ndarray) -> np.ndarray:
    """Average Kbps at each time `at_s` of the `bits` sent at times `event_t_s` (<= at_s),
    over `elapsed_s` seconds of video (at_s + one frame, as in `RunResult.summary`)."""
    order = np.argsort(event_t_s, kind="stable")
    sent = np.concatenate([[0.0], np.cumsum(bits[order])])
    return sent[np.searchsorted(event_t_s[order], at_s, side="right")] / elapsed_s / 1000.0


def settled_top(t_s: np.ndarray, values: list[np.ndarray], *, settle_s: float, margin: float = 1.1) -> float:
    """The top of a y-axis for curves `values` over times `t_s` that leaves out the values
    before `settle_s`: an average "so far" over the first frames is one frame's bits over a
    fraction of a second (a 2200-Kbps peak at t = 0 flattened the rest, issue #24). `margin`
    times the largest value from `settle_s` on (of all values, when none is that late)."""
    t_s = np.asarray(t_s, float)
    late = t_s >= settle_s
    pick = [np.asarray(v, float)[late if late.any() else slice(None)] for v in values]
    finite = np.concatenate([p[np.isfinite(p)] for p in pick]) if pick else np.zeros(0)
    return margin * float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def timeline_figure(results: dict[str, RunResult]) -> go.Figure:
    """Trailing-window mIoU (%) over time per scheme, and the average up/downlink Kbps so far
    (downlink solid, uplink dotted, each named in the bandwidth plot's own legend). The
    bandwidth axis is scaled from the first update on (`settled_top`); the start-up peak it
    leaves out is named in the subplot's title, and the hover still gives every value."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("mIoU, trailing window (%)", "Average bandwidth so far (Kbps)"))
    settle_s = min((r.config.adapt.first_update_s for r in results.values()), default=0.0)
    curves, t_all = [], []
    for k, (name, result) in enumerate(results.items()):
        color = SCHEME_COLORS.get(name)
        # schemes that send alike (every scheme's uplink, none's and one_time's empty downlink)
        # draw the same line: each earlier one wider, under the next, so both show
        width = 2 + 2.5 * (len(results) - 1 - k)
        t = result.frames["t_s"].to_numpy()
        fig.add_scatter(x=t, y=100 * result.window_miou(), name=name, line=dict(color=color),
                        legendgroup=name, row=1, col=1)
        sent = result.updates[result.updates.get("sent", False) == True] if len(result.updates) else result.updates  # noqa: E712
        elapsed = t + 1.0 / result.config.fps
        down = (cumulative_kbps(sent["t_update_s"].to_numpy(float), sent["downlink_bits"].to_numpy(float), t,
                                elapsed) if len(sent) else np.zeros_like(t))
        up = cumulative_kbps(t, result.frames["uplink_bits"].to_numpy(float), t, elapsed)
        fig.add_scatter(x=t, y=down, name=f"{name}: downlink (updates)", line=dict(color=color, width=width),
                        legend="legend2", row=2, col=1)
        fig.add_scatter(x=t, y=up, name=f"{name}: uplink (frames), dotted",
                        line=dict(color=color, dash="dot", width=width), legend="legend2", row=2, col=1)
        curves += [down, up]
        t_all += [t, t]
    if curves:
        top = settled_top(np.concatenate(t_all), [np.concatenate(curves)], settle_s=settle_s)
        peak = max(float(np.nanmax(c)) if len(c) else 0.0 for c in curves)
        fig.update_yaxes(range=[0, top], title_text="Kbps", row=2, col=1)
        if peak > top:
            fig.layout.annotations[1].text = (f"Average bandwidth so far (Kbps); axis from {settle_s:g} s on: "
                                              f"the first frames' average, up to {peak:,.0f} Kbps, is off the axis")
    fig.update_xaxes(title_text="video time (s)", row=2, col=1)
    fig.update_layout(height=640, template="plotly_white", legend=dict(orientation="h", y=1.08),
                      legend2=dict(x=1.02, y=0.42, yanchor="top",
                                   title_text="bandwidth (equal lines:<br>the wider one under)"))
    return fig


def write_report(results: dict[str, RunResult], summaries: dict[str, dict], path: str | Path) -> None:
    """A self-contained HTML report: the summary table and the timeline figure."""
    rows = "".join(
        f"<tr><td>{name}</td>" + "".join(f"<td>{_fmt(s.get(k))}</td>" for k in _TABLE_KEYS) + "</tr>"
        for name, s in summaries.items())
    head = "".join(f"<th>{k}</th>" for k in ("scheme", *_TABLE_KEYS))
    html = (f"<html><head><meta charset='utf-8'><title>AMS Workbench report</title></head><body>"
            f"<h2>AMS Workbench report</h2><table border='1' cellpadding='4'>"
            f"<tr>{head}</tr>{rows}</table>"
            + timeline_figure(results).to_html(full_html=False, include_plotlyjs=True)
            + "</body></html>")
    Path(path).write_text(html)


_TABLE_KEYS = SUMMARY_COLUMNS


def _fmt(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def comparison_strip(frames: np.ndarray, labels: np.ndarray, predictions: dict[str, np.ndarray],
                     *, label_set: LabelSet, titles: list[str], teacher: str = "teacher") -> Image.Image:
    """A picture: one column per moment; rows = frame, the teacher's label (row named
    `teacher`), then each scheme's prediction; below, a colour key of the classes shown. frames
    (M, H, W, 3) uint8; labels and predictions (M, H, W) uint8. Small frames are scaled up so
    the text stays readable beside them."""
    m, h, w = labels.shape
    scale = max(1, -(-96 // h))  # at least 96 rows a picture
    grow = (lambda images: np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)) if scale > 1 else (lambda x: x)
    rows = [("frame", grow(frames)), (teacher, grow(label_set.colorize(labels)))]
    rows += [(name, grow(label_set.colorize(p))) for name, p in predictions.items()]
    h, w = h * scale, w * scale
    font = ImageFont.load_default(size=15)
    shown = [i for i in np.unique(np.concatenate([labels.ravel(), *(p.ravel() for p in predictions.values())]))
             if i < label_set.num_classes]
    margin, pad, top, key_h = 12 + max(int(font.getlength(name)) for name, _ in rows), 4, 24, 26
    canvas = Image.new("RGB", (margin + m * (w + pad), top + len(rows) * (h + pad) + key_h), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(titles):
        draw.text((margin + j * (w + pad), 3), title, fill="black", font=font)
    for r, (name, images) in enumerate(rows):
        y = top + r * (h + pad)
        draw.text((4, y + h // 2 - 8), name, fill="black", font=font)
        for j in range(m):
            canvas.paste(Image.fromarray(images[j]), (margin + j * (w + pad), y))
    x, y = 4, top + len(rows) * (h + pad) + 4
    for i in shown:  # the colour key: a swatch and the name of every class in the pictures
        name = label_set.names[i]
        draw.rectangle([x, y + 2, x + 14, y + 16], fill=tuple(label_set.colors[i]), outline="black")
        draw.text((x + 20, y), name, fill="black", font=font)
        x += 34 + int(font.getlength(name))
    return canvas


# -- sweeps ------------------------------------------------------------------------------------
def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(N,) bool: the points no other point beats (no cost as low with a value as high, one
    of them strictly). cost, value: (N,) floats; NaN values are never on the front."""
    cost, value = np.asarray(cost, float), np.asarray(value, float)
    front = ~np.isnan(value)
    for i in np.flatnonzero(front):
        others = ~np.isnan(value) & (np.arange(len(cost)) != i)
        dominated = others & (cost <= cost[i]) & (value >= value[i]) & ((cost < cost[i]) | (value > value[i]))
        front[i] = not dominated.any()
    return front


def pareto_figure(table, *, title: str, x: str = "downlink_kbps", y: str = "miou_window") -> go.Figure:
    """mIoU (%) against downlink Kbps per run of a sweep table, the Pareto front joined."""
    front = pareto_front(table[x].to_numpy(float), table[y].to_numpy(float))
    colors = [SCHEME_COLORS.get(s, "#1f77b4") for s in table.get("scheme", ["ams"] * len(table))]
    fig = go.Figure()
    fig.add_scatter(x=table[x], y=table[y], mode="markers+text", text=table["run"], textposition="top center",
                    marker=dict(size=10, color=colors, symbol=["star" if f else "circle" for f in front]),
                    name="runs")
    on_front = table[front].sort_values(x)
    fig.add_scatter(x=on_front[x], y=on_front[y], mode="lines", line=dict(dash="dot", color="#444"),
                    name="Pareto front")
    fig.update_layout(title=title, template="plotly_white", height=500,
                      xaxis_title="downlink (Kbps, 1 Kbps = 1000 bit/s)", yaxis_title="mIoU, trailing window (%)")
    return fig


def bars_figure(table, *, title: str) -> go.Figure:
    """mIoU (%) and up/downlink Kbps of each run of a sweep table, side by side."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("mIoU, trailing window (%)", "bandwidth (Kbps)"))
    fig.add_bar(x=table["run"], y=table["miou_window"], name="mIoU", row=1, col=1)
    fig.add_bar(x=table["run"], y=table["uplink_kbps"], name="uplink", row=1, col=2)
    fig.add_bar(x=table["run"], y=table["downlink_kbps"], name="downlink", row=1, col=2)
    fig.update_layout(title=title, template="plotly_white", height=450, barmode="group")
    return fig


def capacity_figure(table, *, title: str = "capacity") -> go.Figure:
    """A capacity sweep: mean and worst device mIoU (%), update staleness (s) and GPU
    utilisation against devices per GPU, one line per scheduler (and update interval)."""
    table = table.assign(devices_per_gpu=table["devices"] / table["gpus"])
    series = [c for c in ("scheduler", "update_interval_s") if c in table and table[c].nunique() > 1] or ["scheduler"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("device mIoU (%): mean, worst dotted",
                                                        "update staleness, mean (s)", "GPU utilisation"))
    groups = list(table.groupby(series, sort=True))
    for k, (key, rows) in enumerate(groups):
        rows = rows.sort_values("devices_per_gpu")
        name = ", ".join(f"{c}={v}" for c, v in zip(series, key if isinstance(key, tuple) else (key,)))
        # lines of equal values (fifo and utility often keep the GPU equally busy) would hide
        # each other: the first series is drawn widest and palest, each next one narrower on
        # top of it, with its own marker, so both show (the title says so)
        look = dict(color=color_of(k), width=2 + 3 * (len(groups) - 1 - k))
        marker = dict(symbol=_SYMBOLS[k % len(_SYMBOLS)], size=9 - k)
        line = dict(mode="lines+markers", marker=marker, opacity=1.0 if k == len(groups) - 1 else 0.6,
                    name=name, legendgroup=name)
        x = rows["devices_per_gpu"]
        fig.add_scatter(x=x, y=rows["miou_window"], line=look, row=1, col=1, **line)
        fig.add_scatter(x=x, y=rows["miou_window_worst"], showlegend=False, line=dict(look, dash="dot"),
                        row=1, col=1, **line)
        fig.add_scatter(x=x, y=rows["staleness_mean_s"], showlegend=False, line=look, row=1, col=2, **line)
        fig.add_scatter(x=x, y=rows["gpu_utilisation"], showlegend=False, line=look, row=1, col=3, **line)
    fig.update_xaxes(title_text="devices per GPU", type="log", dtick=0.30103)
    note = " (equal values overlap: the wider, paler line lies under the narrower)" if len(groups) > 1 else ""
    fig.update_layout(title=f"{title}{note}", template="plotly_white", height=440)
    return fig


def server_timeline_figure(server, *, title: str = "the server's GPUs", devices: int | None = None) -> go.Figure:
    """Each job a GPU ran (a fleet's `server` table) as a bar from its start to its end, one
    row per GPU, coloured by device; the hover gives its queue wait. `devices`: the fleet's
    size, so that each of its devices has a legend entry."""
    fig = go.Figure()
    known = sorted(set(server["device"]) | set(range(devices or 0)))
    for device in known:  # every device in the legend, one that never got the GPU too
        rows = server[server["device"] == device]
        fig.add_bar(y=[f"GPU {g}" for g in rows["gpu"]], x=rows["t_end_s"] - rows["t_start_s"], base=rows["t_start_s"],
                    orientation="h", name=f"device {device}", marker_color=color_of(int(device)),
                    customdata=rows[["kind", "queue_wait_s"]].to_numpy(),
                    hovertemplate="%{customdata[0]}: from %{base:.1f} s for %{x:.1f} s, after waiting %{customdata[1]:.1f} s")
    # a horizontal legend above the bars: a vertical one was cut to the plot's height (two of
    # four devices shown, issue #24)
    fig.update_layout(title=title, template="plotly_white", height=220 + 40 * server["gpu"].nunique(),
                      barmode="overlay", xaxis_title="simulated time (s)", margin=dict(t=90),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_SYMBOLS = ("circle", "diamond", "square", "x", "triangle-up", "star")


def color_of(k: int) -> str:
    """The k-th colour of the palette (devices, series), cycling."""
    return _PALETTE[k % len(_PALETTE)]


def heatmap_figure(table, *, x: str, y: str, title: str, value: str = "miou_window") -> go.Figure:
    """`value` over a 2-D grid of a sweep table (mean over any other parameters)."""
    grid = table.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=[str(c) for c in grid.columns],
                               y=[str(i) for i in grid.index], colorscale="Viridis",
                               text=np.round(grid.to_numpy(), 1), texttemplate="%{text}",
                               colorbar=dict(title=value)))
    fig.update_layout(title=f"{title}: {value} (%)", template="plotly_white", height=450,
                      xaxis_title=x, yaxis_title=y)
    return fig


def class_timeline_figure(results: dict[str, RunResult], class_name: str) -> go.Figure:
    """One class's trailing-window IoU (%) over video time, one line per run."""
    fig = go.Figure()
    for name, result in results.items():
        if class_name not in result.classes:
            raise ValueError(f"class '{class_name}' is not in run '{name}'; its classes are: "
                             + ", ".join(result.classes))
        k = result.classes.index(class_name)
        fig.add_scatter(x=result.frames["t_s"], y=100 * result.window_iou()[:, k], name=name,
                        mode="lines", line=dict(color=SCHEME_COLORS.get(name)))
    fig.update_layout(title=f"IoU of '{class_name}', trailing window (%)", template="plotly_white",
                      height=400, xaxis_title="video time (s)", yaxis_title="IoU (%)",
                      yaxis_range=[0, 100])
    return fig


def figures_html(figures: dict[str, go.Figure], *, title: str, table=None) -> str:
    """A self-contained HTML page: an optional table, then the figures (plotly.js once)."""
    parts = [f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h2>{title}</h2>"]
    if table is not None:
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.2f}", border=1))
    for k, fig in enumerate(figures.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(k == 0)))
    return "".join(parts) + "</body></html>"


# -- dataset checks (notebooks/01_dataset_check.ipynb) -------------------------------------------
def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb)


def class_frequency_figure(shares, *, label_set: LabelSet, title: str = "Pixel share per class") -> go.Figure:
    """Bars of a `dataset.class_frequencies` Series (shares 0-1, shown in %), each bar in its
    class's palette colour (grey for ids outside the label set)."""
    colors = [_hex(label_set.colors[label_set.names.index(n)]) if n in label_set.names else "#bbbbbb"
              for n in shares.index]
    fig = go.Figure(go.Bar(x=list(shares.index), y=100 * shares.to_numpy(float), marker_color=colors,
                           marker_line=dict(color="#333", width=1)))
    fig.update_layout(title=title, template="plotly_white", height=360, yaxis_title="pixels (%)",
                      xaxis_title="class")
    return fig


def scene_change_figure(timeline, changes=None, *, step_s: float) -> go.Figure:
    """The consecutive-label mIoU (%) of a `dataset.scene_change_timeline` over time, with
    the dips of `dataset.scene_changes` marked."""
    fig = go.Figure()
    fig.add_scatter(x=timeline["t_s"], y=timeline["miou_pct"], mode="lines", name=f"mIoU(label t, label t-{step_s:g} s)")
    if changes is not None and len(changes):
        fig.add_scatter(x=changes["t_s"], y=changes["miou_pct"], mode="markers", name="scene change",
                        marker=dict(symbol="triangle-down", size=11, color="#d62728"))
    fig.update_layout(title="Scene changes: dips of consecutive-label mIoU", template="plotly_white",
                      height=360, xaxis_title="video time (s)", yaxis_title="mIoU (%)",
                      yaxis_range=[0, 100], legend=dict(orientation="h", y=1.12))
    return fig
