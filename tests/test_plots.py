"""Figures that explain themselves (issue #24): uplink and downlink named, a start-up spike
off the bandwidth axis, every device in the timeline's legend, coinciding lines both shown."""
import numpy as np
import pandas as pd
import pytest

from amslib.analysis.plots import capacity_figure, server_timeline_figure, settled_top, timeline_figure
from amslib.analysis.results import RunResult
from amslib.core.config import AdaptConfig, EvalConfig, RunConfig


def test_settled_top_leaves_out_the_values_before_settling():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    assert settled_top(t, [np.array([2200.0, 50.0, 40.0, 60.0])], settle_s=1.0) == 1.1 * 60.0
    assert settled_top(t, [np.array([5.0, 1.0, 2.0, 3.0])], settle_s=9.0) == 1.1 * 5.0  # none that late: all
    assert settled_top(t, [np.zeros(4)], settle_s=0.0) == 1.0


def _run(scheme: str) -> RunResult:
    """4 s at 1 fps; 8000 bits up at t = 0 (the spike of an average over one frame), then 100."""
    config = RunConfig(scheme=scheme, fps=1.0, eval=EvalConfig(window_s=1.0, warmup_s=0.0),
                       adapt=AdaptConfig(first_update_s=2.0))
    frames = pd.DataFrame({"frame": range(4), "t_s": [0.0, 1.0, 2.0, 3.0], "uplink_bits": [8000, 100, 100, 100],
                           "tp_road": [1] * 4, "fp_road": [0] * 4, "fn_road": [1] * 4})
    updates = pd.DataFrame({"update": [1], "t_update_s": [2.0], "sent": [True], "downlink_bits": [3000]})
    return RunResult(config, ("road",), frames, updates)


def test_timeline_names_each_direction_and_keeps_the_spike_off_the_axis():
    fig = timeline_figure({"none": _run("none"), "ams": _run("ams")})
    names = [t.name for t in fig.data if t.legend == "legend2"]
    assert names == ["none: downlink (updates)", "none: uplink (frames), dotted",
                     "ams: downlink (updates)", "ams: uplink (frames), dotted"]
    # from 2 s on: uplink (8000 + 100 + 100) / 3 s and down 3000 / 3 s, at most 2.7 Kbps, then
    # (8300) / 4 s; the 8 Kbps of the first frame is left out and named
    assert fig.layout.yaxis2.range[1] == pytest.approx(1.1 * 8200 / 3 / 1000)
    assert "8 Kbps" in fig.layout.annotations[1].text and "off the axis" in fig.layout.annotations[1].text
    up = [t for t in fig.data if t.name.endswith("dotted")]  # the same uplink in both: none's wider, under
    assert list(up[0].y) == list(up[1].y) and up[0].line.width > up[1].line.width


def test_every_device_is_in_the_timeline_legend_even_one_never_served():
    server = pd.DataFrame({"gpu": [0, 0, 0], "device": [0, 1, 2], "kind": ["train"] * 3,
                           "t_start_s": [0.0, 1.0, 2.0], "t_end_s": [1.0, 2.0, 3.0], "queue_wait_s": [0.0] * 3})
    fig = server_timeline_figure(server, devices=4)
    assert [t.name for t in fig.data] == ["device 0", "device 1", "device 2", "device 3"]
    assert fig.layout.legend.orientation == "h"


def test_coinciding_capacity_lines_are_drawn_wide_under_narrow():
    table = pd.DataFrame({"devices": [1, 2, 1, 2], "gpus": [1] * 4, "scheduler": ["fifo", "fifo", "utility", "utility"],
                          "miou_window": [40.0, 38.0, 40.0, 39.0], "miou_window_worst": [40.0, 36.0, 40.0, 38.0],
                          "staleness_mean_s": [1.0, 2.0, 1.0, 2.0], "gpu_utilisation": [0.3, 0.6, 0.3, 0.6]})
    fig = capacity_figure(table)
    fifo, utility = [[t for t in fig.data if t.name == n and t.xaxis == "x3"][0] for n in ("scheduler=fifo", "scheduler=utility")]
    assert list(fifo.y) == list(utility.y)  # the same utilisation ...
    assert fifo.line.width > utility.line.width and fifo.marker.symbol != utility.marker.symbol  # ... both seen
    assert "overlap" in fig.layout.title.text


def test_comparison_strip_names_its_rows_and_keys_its_colours():
    """Small frames are scaled up, and a colour key row names the classes shown."""
    import numpy as np

    from amslib.analysis.plots import comparison_strip
    from amslib.core.labels import VOC21

    labels = np.zeros((2, 32, 64), np.uint8)
    labels[:, 10:20, 10:30] = 15  # person
    strip = comparison_strip(np.zeros((2, 32, 64, 3), np.uint8), labels, {"ams": labels}, label_set=VOC21,
                             titles=["0 s", "1 s"], teacher="rvm")
    pixels = np.asarray(strip)
    person = np.array(VOC21.colors[15])
    # three rows of pictures at least 96 px high each, then the key: a person swatch below them
    assert strip.height >= 3 * 96 + 24
    key = pixels[-26:]
    assert (np.abs(key.astype(int) - person).sum(axis=-1) == 0).sum() >= 100
