"""LiveApp on the tiny video: the figure and the frame picture follow the run, the panel steers
it, Step pauses where an update arrives, the reference comes from a cache, errors show."""
import io
import json
import math
import time
from dataclasses import replace

import conftest
import numpy as np
import pandas as pd
import pytest
from conftest import TinyOracle
from PIL import Image

from amslib.analysis.results import RunResult
from amslib.core.config import ConfigError, EvalConfig, RunConfig, ServerConfig
from amslib.core.labels import CITYSCAPES19
from amslib.core.registry import SCHEMES
from amslib.sim.engine import Simulation, Students
from amslib.sim.state import FramesEvent, LinksEvent, UpdateEvent
from amslib.ui.widgets import (
    ARRIVALS,
    DOWNLINK,
    DOWNLINK_INTERVAL,
    MIOU,
    REFERENCE,
    UPLINK,
    UPLINK_INTERVAL,
    FrameView,
    LiveApp,
    config_with_controls,
    control_values,
    curve_points,
    draw_points,
    frame_picture,
    ledger_table,
    live_figure,
    next_draw_delay,
    reference_gain,
    server_text,
    summary_table,
)


def tiny_config(student, **adapt) -> RunConfig:
    """20 s of the tiny video at 2 fps: 40 frames, updates at 10 s and 15 s."""
    return conftest.tiny_config(student, max_seconds=20.0, **{"iterations": 2, **adapt})


@pytest.fixture(scope="module")
def students(tiny_student):
    from conftest import TinyVideo
    return Students.load(tiny_config(tiny_student), TinyVideo())


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One cache of reference runs for the module: every app's `none` reference is the same run."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture
def make_app(tiny_student, students, tiny_video, cache_dir):
    """An app on the tiny video, redrawing at every step; no reference unless asked for."""
    def make(teacher=None, *, reference="", scheme="ams", server=ServerConfig(), max_seconds=20.0, **adapt):
        config = replace(tiny_config(tiny_student, **adapt), scheme=scheme, server=server, max_seconds=max_seconds)
        return LiveApp(config, video=tiny_video, teacher=teacher or TinyOracle(), students=students,
                       refresh_s=0.0, reference=reference, cache_dir=cache_dir)
    return make


@pytest.fixture
def simulation_runs(monkeypatch) -> list[str]:
    """The scheme of every `Simulation.run()` that starts simulating from now on, in order."""
    runs, run = [], Simulation.run

    def counted(sim):
        runs.append(sim.config.scheme)  # at the generator's first step
        yield from run(sim)
    monkeypatch.setattr(Simulation, "run", counted)
    return runs


def error_text(app: LiveApp) -> str:
    return "".join(o.get("text", "") for o in app.log.outputs)


# -- pure functions against hand-computed values --------------------------------------------
def hand_result() -> RunResult:
    """4 frames at 2 fps, one class; uplink 1000 bits at frames 0 and 2; one update at 1.0 s
    (8000 bits, arrives 1.5 s) with a policy change, one at 1.5 s that sent nothing."""
    config = RunConfig(fps=2.0, eval=EvalConfig(window_s=0.4, warmup_s=0.0))
    frames = pd.DataFrame({"frame": [0, 1, 2, 3], "t_s": [0.0, 0.5, 1.0, 1.5],
                           "uplink_bits": [1000, 0, 1000, 0], "tp_road": [1, 0, 3, 1],
                           "fp_road": [1, 0, 0, 1], "fn_road": [0, 0, 1, 2]})
    updates = pd.DataFrame({"update": [1, 2], "t_update_s": [1.0, 1.5], "t_arrival_s": [1.5, np.nan],
                            "sent": [True, False], "downlink_bits": [8000, np.nan],
                            "compressed_bytes": [1000, np.nan], "fraction": [0.5, 0.5],
                            "policy_changes": ["fraction=0.5", ""]})
    return RunResult(config, ("road",), frames, updates)


def test_curve_points_hand_computed():
    p = curve_points(hand_result())
    np.testing.assert_allclose(p["t_s"], [0, 0.5, 1.0, 1.5])
    # window 0.4 s holds one frame: IoU = TP / (TP + FP + FN); frame 1 has no pixel: NaN
    np.testing.assert_allclose(p["miou_pct"], [50.0, np.nan, 75.0, 25.0])
    # average from 0 to the end of each frame (elapsed = t + 0.5 s), in Kbps
    np.testing.assert_allclose(p["uplink_kbps"], [2.0, 1.0, 2000 / 1.5 / 1000, 1.0])
    np.testing.assert_allclose(p["downlink_kbps"], [0, 0, 8000 / 1.5 / 1000, 4.0])
    np.testing.assert_allclose(p["arrival_t_s"], [1.5])
    np.testing.assert_allclose(p["arrival_miou_pct"], [25.0])
    assert list(p["arrival_text"]) == ["update 1: 1.0 kB down, fraction 0.5"]
    np.testing.assert_allclose(p["change_t_s"], [1.0])
    assert list(p["change_text"]) == ["fraction=0.5"]
    # update intervals [0, 1.0) and [1.0, 1.5): uplink 1000 bits in each (frames 0 and 2),
    # downlink the 8000 bits of the update at 1.0 s in the first, none (not sent) in the second
    np.testing.assert_allclose(p["interval_start_s"], [0.0, 1.0])
    np.testing.assert_allclose(p["interval_end_s"], [1.0, 1.5])
    np.testing.assert_allclose(p["interval_uplink_kbps"], [1.0, 2.0])
    np.testing.assert_allclose(p["interval_downlink_kbps"], [8.0, 0.0])


def test_draw_points_shows_each_interval_from_its_end():
    """The per-interval rates are read like a meter at each update: the rate of [0, 1.0) from
    1.0 s, that of [1.0, 1.5) from 1.5 s to the last frame."""
    fig = live_figure()
    draw_points(fig, curve_points(hand_result()))
    np.testing.assert_allclose(fig.data[DOWNLINK_INTERVAL].x, [1.0, 1.5, 1.5])
    np.testing.assert_allclose(fig.data[DOWNLINK_INTERVAL].y, [8.0, 0.0, 0.0])
    np.testing.assert_allclose(fig.data[UPLINK_INTERVAL].y, [1.0, 2.0, 2.0])
    np.testing.assert_allclose(fig.data[MIOU].y, [50.0, np.nan, 75.0, 25.0])
    assert len(fig.data[REFERENCE].x) == 0  # drawn apart, by draw_reference


def browser_echo(fig) -> None:
    """What JupyterLab's plotly sends back after a redraw: each trace's full data. An array
    sent as numpy arrives in the browser as a typed array and comes back as a JSON object
    ({"0": v0, "1": v1, ...}); a list comes back as a list. plotly's handler raised on the
    former (issue #24: tracebacks in the Log Console only)."""
    def echoed(values):
        return {str(i): v for i, v in enumerate(values.tolist())} if isinstance(values, np.ndarray) else list(values)
    deltas = [{"uid": trace.uid, **{key: echoed(trace[key]) for key in ("x", "y")
                                    if trace[key] is not None and len(trace[key])}}
              for trace in fig.data]
    fig._js2py_traceDeltas = {"trace_deltas": deltas, "trace_edit_id": fig._last_trace_edit_id}


def test_a_redrawn_figure_takes_the_browsers_echo(make_app):
    from amslib.ui.widgets import draw_reference

    fig = live_figure()
    draw_points(fig, curve_points(hand_result()))
    draw_reference(fig, hand_result(), name="none")
    browser_echo(fig)  # raised ValueError ("truth value of an array ... is ambiguous") with numpy arrays
    np.testing.assert_allclose(fig.data[UPLINK].y, [2.0, 1.0, 2000 / 1.5 / 1000, 1.0])
    app = make_app()
    app.run_blocking()
    browser_echo(app.figure)


def test_bandwidth_axis_is_scaled_from_the_first_interval_on():
    from amslib.ui.drawing import bandwidth_axis

    points = curve_points(hand_result())
    # from 1.0 s on: up 1.33 and 1, down 5.33 and 4, per interval up 1, 2 and down 8, 0: top 1.1 x 8
    assert bandwidth_axis(points) == (pytest.approx(8.8), ())
    points["uplink_kbps"] = np.array([500.0, 1.0, 1.0, 1.0])  # one frame's bits over its 0.5 s at t = 0
    top, (note,) = bandwidth_axis(points)
    assert top == pytest.approx(8.8) and "500 Kbps" in note["text"]
    empty = curve_points(replace(hand_result(), updates=hand_result().updates.iloc[:0]))
    assert bandwidth_axis(empty) == (None, ())


def test_intervals_fold_an_update_at_zero_into_the_first():
    """Just-In-Time may update at 0 s: its bits count in the interval ending at the next update."""
    result = hand_result()
    updates = pd.DataFrame({"update": [1, 2], "t_update_s": [0.0, 1.0], "t_arrival_s": [0.1, 1.1],
                            "sent": [True, True], "downlink_bits": [2000, 4000],
                            "compressed_bytes": [250, 500], "fraction": [0.1, 0.1]})
    p = curve_points(replace(result, updates=updates))
    np.testing.assert_allclose(p["interval_end_s"], [1.0])
    np.testing.assert_allclose(p["interval_downlink_kbps"], [6.0])  # (2000 + 4000) bits over 1 s
    np.testing.assert_allclose(p["interval_uplink_kbps"], [1.0])  # frames 0 and 1


def test_reference_gain_hand_computed():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    live = np.array([50.0, np.nan, 70.0, 80.0])
    ref = np.array([40.0, 45.0, 60.0, np.nan, 90.0])  # longer: the reference ran the whole video
    # warm-up 2 s passed: frames at 2 and 3 s; frame 3 has no reference value -> 70 - 60
    assert reference_gain(t, live, ref, warmup_s=2.0) == (10.0, 2.0)
    # warm-up not reached yet: from 0 s, frames 0 and 2 -> mean(10, 10)
    assert reference_gain(t[:3], live[:3], ref, warmup_s=5.0) == (10.0, 0.0)
    gain, _ = reference_gain(t[:2], np.full(2, np.nan), ref, warmup_s=0.0)
    assert math.isnan(gain)


def test_server_text_hand_computed():
    """GPUs 2, now 10 s: job A 0-4 s (waited 0), job B 6-14 s (waited 1 s; 4 s of it by now),
    job C starts at 12 s (not yet): 8 busy seconds of 20."""
    busy = [{"t_start_s": 0.0, "t_end_s": 4.0, "queue_wait_s": 0.0},
            {"t_start_s": 6.0, "t_end_s": 14.0, "queue_wait_s": 1.0},
            {"t_start_s": 12.0, "t_end_s": 13.0, "queue_wait_s": 2.0}]
    assert server_text(busy, gpus=2, now_s=10.0) == ("server: 2 jobs started, GPU busy 40% so far, "
                                                     "mean queue wait 0.50 s")
    assert server_text([], gpus=1, now_s=0.0) == "server: 0 jobs started, GPU busy 0% so far, mean queue wait 0.00 s"


def test_next_draw_delay_keeps_drawing_within_its_budget():
    assert next_draw_delay(0.05, budget=0.1, least_s=0.3) == pytest.approx(0.45)  # 0.05 of every 0.5 s
    assert next_draw_delay(0.01, budget=0.1, least_s=0.3) == 0.3
    assert next_draw_delay(0.2, budget=0.5, least_s=0.0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="share of the wall time"):
        next_draw_delay(0.1, budget=0.0, least_s=0.0)


def test_frame_picture_one_frame_or_a_pair():
    road, sky = CITYSCAPES19.ids(("road", "sky"))
    label = np.full((8, 16), road, np.uint8)
    label[:3] = sky
    view = FrameView(4, 2.0, np.zeros((8, 16, 3), np.uint8), label, np.full((8, 16), road, np.uint8), 1)
    kw = dict(label_set=CITYSCAPES19, classes=("road", "sky"), scheme="ams", min_height=32)
    one = frame_picture((view,), errors=False, **kw)
    with_errors = frame_picture((view,), errors=True, **kw)
    pair = frame_picture((view, view), errors=False, **kw)
    tile = 16 * 4 + 6  # width x scale 4, and the gap
    assert one.width == max(3 * tile, 440) and with_errors.width == max(4 * tile, 440)
    assert pair.height == 2 * one.height + 8 and pair.width == one.width
    assert tuple(np.asarray(with_errors)[34 + 4, 3 * tile + 4]) == (255, 0, 0)  # a sky pixel predicted road
    assert tuple(np.asarray(one)[34 + 4, 3 * tile + 4]) == (255, 255, 255)  # no error tile
    with pytest.raises(ValueError, match="one frame or a"):
        frame_picture((), errors=False, **kw)


def test_curve_points_of_an_empty_run():
    result = RunResult(RunConfig(), (), pd.DataFrame(), pd.DataFrame())
    p = curve_points(result)
    assert all(len(v) == 0 for v in p.values())


def test_tables():
    result = hand_result()
    ledger = ledger_table(result)
    assert list(ledger.index) == [1, 2] and ledger.loc[1, "policy_changes"] == "fraction=0.5"
    assert "mask_bytes" in ledger and "compressed_bytes" in ledger
    summary = summary_table(result)["value"]
    assert summary["num_updates"] == 1 and summary["iou_road"] == 50.0  # 5 / (5 + 2 + 3)


def test_controls_round_trip_and_unlimited_downlink():
    config = RunConfig()
    values = control_values(config)
    assert values["downlink_kbps"] == 0.0 and values["fraction"] == 0.1
    assert config_with_controls(config, values) == config
    changed = config_with_controls(config, {**values, "downlink_kbps": 300.0, "scheme": "none", "devices": 3})
    assert changed.link.downlink_kbps == 300.0 and changed.scheme == "none" and changed.server.devices == 3
    assert values["devices"] == 1 and changed.server.gpus == config.server.gpus
    with pytest.raises(ConfigError, match="fraction"):
        config_with_controls(config, {**values, "fraction": 0.0})


# -- the app ---------------------------------------------------------------------------
def test_run_blocking_grows_traces_to_every_frame(make_app):
    app = make_app()
    sizes = []
    while (event := app.step()) is not None:
        assert isinstance(event, (FramesEvent, UpdateEvent, LinksEvent))  # the links' log comes last
        sizes.append(len(app.figure.data[MIOU].x))
    assert sizes == sorted(sizes) and sizes[0] < 40  # it grew, live
    result = app.run_blocking()  # the run has ended: nothing more happens
    assert len(result.frames) == 40 and app.state == "finished"
    for trace in (MIOU, UPLINK, DOWNLINK):
        assert len(app.figure.data[trace].x) == 40
    np.testing.assert_allclose(app.figure.data[ARRIVALS].x, [10.0, 15.0])
    assert app.figure.data[UPLINK].y[-1] == pytest.approx(result.summary()["uplink_kbps"])
    assert app.figure.data[DOWNLINK].y[-1] == pytest.approx(result.summary()["downlink_kbps"])
    assert "finished: 20.0 / 20.0 s" in app.status.value and not app.log.outputs


def test_slider_change_mid_run_reaches_next_update(make_app):
    app = make_app()
    app.run_blocking(max_updates=1)
    assert app.running and len(app.result().updates) == 1
    app.controls["fraction"].value = 0.5  # as a user moving the slider
    assert "pending: fraction=0.5" in app.status.value
    result = app.run_blocking()
    rows = result.updates
    assert list(rows["fraction"]) == [0.1, 0.5] and list(rows["policy_changes"]) == ["", "fraction=0.5"]
    assert rows["num_sent"].iloc[1] == round(0.5 * rows["num_params"].iloc[1])
    assert [s.x0 for s in app.figure.layout.shapes] == [15.0]
    assert app.figure.layout.annotations[-1].text == "fraction=0.5"
    assert not app.log.outputs


def test_asr_checkbox_mid_run_applies_at_next_update(make_app):
    app = make_app(asr=True, asr_min_fps=0.1)
    app.run_blocking(max_updates=1)
    first = app.result().updates.iloc[0]
    app.controls["asr"].value = False  # unticked: r goes back to the policy's 1 fps
    assert "pending: asr=False" in app.status.value
    rows = app.run_blocking().updates
    assert list(rows["policy_changes"]) == ["", "asr=False"]
    assert rows["sample_rate_fps"].iloc[1] == 1.0 and not np.isnan(first["phi"])
    app.controls["atr"].value = True  # ATR needs ASR: ticking it ticks ASR too (no refusal)
    assert app.controls["asr"].value is True and app.values()["atr"] is True
    assert "Error" not in error_text(app)


def test_asr_then_atr_then_no_asr_before_an_update_leaves_a_valid_policy(make_app):
    """ASR on; tick ATR, then untick ASR before the next update: ATR goes too (it needs ASR),
    the run goes on and applies both, and the panel ends idle and usable."""
    app = make_app(asr=True)
    app.run_blocking(max_updates=1)
    app.controls["atr"].value = True
    app.controls["asr"].value = False
    assert app.controls["atr"].value is False and app.pending() == {"atr": False, "asr": False}
    rows = app.run_blocking().updates
    assert rows["policy_changes"].iloc[1] in ("atr=False, asr=False", "asr=False, atr=False")
    assert app.state == "finished" and not app.start_button.disabled and app.stop_button.disabled


def test_a_refused_change_resets_its_control_and_says_why(make_app):
    app = make_app()
    app.run_blocking(max_updates=1)
    before = app.controls["sample_rate_fps"].value
    app.controls["sample_rate_fps"].value = 2 * app.config.fps  # more samples than frames
    assert "sample_rate_fps" in error_text(app) and "fps" in error_text(app)
    assert app.controls["sample_rate_fps"].value == before and app.pending() == {}
    app.run_blocking()
    assert app.state == "finished"


def test_set_policy_moves_the_widget_and_checks_values(make_app):
    app = make_app()
    app.set_policy(scheme="none", downlink_kbps=None)  # before a run: used at Start
    assert app.controls["scheme"].value == "none" and app.controls["downlink_kbps"].value == 0.0
    app.set_policy(scheme="ams")
    app.step()
    app.set_policy(iterations=3)
    assert app.controls["iterations"].value == 3 and app.pending() == {"iterations": 3}
    with pytest.raises(ConfigError, match="cannot change during a run"):
        app.set_policy(scheme="none")
    with pytest.raises(ConfigError, match="outside the panel's range"):
        app.set_policy(fraction=0.001)
    with pytest.raises(ConfigError, match="unknown policy value"):
        app.set_policy(gamma=0.2)
    assert app.controls["scheme"].disabled and app.start_button.disabled
    assert app.run_blocking().updates["iterations"].tolist() == [3, 3]
    assert not app.controls["scheme"].disabled and not app.start_button.disabled


def test_callback_error_is_shown_in_the_output(tiny_student, tiny_video):
    config = replace(tiny_config(tiny_student), student="/nonexistent/student.weights.h5")
    app = LiveApp(config, video=tiny_video, teacher=TinyOracle())
    app.start_button.click()  # the callback fails: the user sees why, nothing is swallowed
    text = error_text(app)
    assert "Traceback" in text and "FileNotFoundError" in text and "student weights not found" in text
    assert not app.running and app.state == "ready" and app.status.value.startswith("error")


def test_background_error_is_shown_in_the_output(make_app):
    app = make_app(teacher=TinyOracle(fail_at=10))
    app.start()
    assert app.join(timeout_s=60)
    assert "RuntimeError: teacher crashed" in error_text(app) and app.state == "failed"
    assert not app.start_button.disabled and app.stop_button.disabled


def test_start_runs_in_the_background_and_stop_ends_it(make_app):
    app = make_app(teacher=TinyOracle(delay_s=0.3))
    app.start()
    assert app.running and app.start_button.disabled and not app.stop_button.disabled
    with pytest.raises(RuntimeError, match="background run"):
        app.step()
    deadline = time.monotonic() + 30
    while not len(app.result().frames) and time.monotonic() < deadline:
        time.sleep(0.02)
    app.stop_button.click()
    assert app.join(timeout_s=30) and app.state == "stopped"
    frames = len(app.result().frames)
    assert 0 < frames < 40 and len(app.figure.data[MIOU].x) == frames
    assert not app.log.outputs and not app.start_button.disabled


def shown(app: LiveApp) -> np.ndarray:
    """The frame picture the panel's Image widget holds, as (H, W, 3) pixels."""
    return np.asarray(Image.open(io.BytesIO(app.image.value)).convert("RGB"))


def test_frame_picture_follows_the_run(make_app, tiny_video):
    app = make_app()
    app.run_blocking(max_events=1)  # the first batch: frames 0-7
    assert app.source.latest.index == 7 and app.source.latest.version == 0
    first = shown(app)
    np.testing.assert_array_equal(app.source.latest.frame, tiny_video.frames(7, 8)[0])
    np.testing.assert_array_equal(app.source.latest.label, tiny_video.labels(7, 8)[0])
    app.run_blocking(max_events=2)  # frames 8-15, then 16-19: the engine cuts the batch at the update (20)
    assert app.source.latest.index == 19 and not np.array_equal(shown(app), first)
    narrow = shown(app).shape
    app.show_errors.value = True  # the toggle redraws the picture with the error mask
    assert shown(app).shape[1] > narrow[1] and not app.log.outputs


def test_step_pauses_right_after_an_update_arrives(make_app):
    """The first update is made at 10 s and, with no latency on an unlimited link, reaches the
    edge at once: frame 20 (2 fps) is the first one the new model runs on."""
    app = make_app()
    before, after = app.run_to_arrival()
    assert (before.index, before.version, after.index, after.version) == (19, 0, 20, 1)
    frames = app.result().frames
    assert frames["frame"].iloc[-1] < 20 + app.sim.config.edge_batch  # it stopped in the arrival's batch
    assert frames.loc[frames["frame"] == 20, "model_version"].item() == 1
    assert app.state == "paused" and app.running and not app.resume_button.disabled and app.pause_button.disabled
    assert "update arrived at frame 20 (t = 10.00 s)" in app.status.value
    single = frame_picture((after,), label_set=CITYSCAPES19, classes=app.sim.video.classes, scheme="ams",
                           errors=False)
    assert shown(app).shape[0] == 2 * single.height + 8  # the frames before and after, one above the other
    before, after = app.run_to_arrival()  # the next update (15 s) arrives at frame 30
    assert (before.index, after.index, after.version) == (29, 30, 2)
    assert app.run_to_arrival() is None and app.state == "finished"  # no update left: the run ends


def test_policy_change_while_paused_applies_at_the_next_update(make_app):
    app = make_app()
    app.run_to_arrival()  # paused at update 1's arrival
    app.controls["fraction"].value = 0.5  # as a user moving the slider while paused
    assert app.state == "paused" and "pending: fraction=0.5" in app.status.value
    assert app.pending() == {"fraction": 0.5} and list(app.result().updates["fraction"]) == [0.1]
    app.run_to_arrival()
    rows = app.result().updates
    assert list(rows["fraction"]) == [0.1, 0.5] and list(rows["policy_changes"]) == ["", "fraction=0.5"]
    assert app.pending() == {}
    # the downlink per update interval shows the change at once: update 2 sends 5x the values
    down = app.figure.data[DOWNLINK_INTERVAL].y
    assert down[-1] > 2 * down[0] and not app.log.outputs


def test_a_fleet_run_draws_the_device_chosen(make_app):
    """Two devices on one GPU whose updates take 1 s (2 steps of 0.5 s), every 5 s from 10 s
    over 30 s: device 0's reach it at 11, 16, 21, 26 s; device 1's wait 1 s for device 0's
    (first in, FIFO) and arrive at 12, 17, 22, 27 s."""
    app = make_app(reference="none", server=ServerConfig(server_time="fixed", step_base_s=0.5), max_seconds=30.0)
    assert app.device_control.layout.display == "none"  # one device: no selector
    app.controls["devices"].value = 2  # as a user moving the slider
    app.begin()
    assert app.device_control.options == (("device 0", 0), ("device 1", 1))
    assert app.device_control.layout.display is None and app.controls["devices"].disabled
    app.device_control.value = 1
    before, after = app.run_to_arrival()  # Step: on past device 0's arrival (11 s) to device 1's
    assert (before.index, after.index, after.version) == (23, 24, 1)
    runs = app.fleet.runs
    assert runs[0].arrival[1].index == 22 and app.source is runs[1] and app.state == "paused"
    assert runs[1].result().frames["frame"].iloc[-1] < 24 + app.sim.config.edge_batch  # stopped in the arrival's batch
    assert "paused, device 1 of 2 shown" in app.status.value and "update arrived at frame 24" in app.status.value
    assert "server: 2 jobs started" in app.status.value
    for device, arrival_s in ((1, 12.0), (0, 11.0), (1, 12.0)):  # switching redraws what that device has so far
        app.device_control.value = device
        np.testing.assert_allclose(app.figure.data[ARRIVALS].x, [arrival_s])
        np.testing.assert_allclose(app.figure.data[MIOU].y, 100 * runs[device].result().window_miou())
        np.testing.assert_allclose(app.figure.data[REFERENCE].y, 100 * app.references[device].window_miou())
        assert app.source.latest is runs[device].latest and f"device {device} of 2" in app.status.value
    # each device's reference is its own config (its seed) run alone on the server
    assert [r.config.seed for r in app.references] == [run.sim.config.seed for run in runs] == [0, 1]
    assert {r.config.server.devices for r in app.references} == {1}
    # while paused: every device applies it at its next update not yet made. Device 0 made its
    # 15-s update before the pause (20 s is its next); device 1's 15-s update waits for the job
    # device 0 can start at 15 s to be dispatched first, so it is still to come
    app.set_policy(fraction=0.5)
    assert app.pending() == {"fraction": 0.5}
    app.run_blocking()
    for run, first_s, changed in zip(runs, (11.0, 12.0), (2, 1)):
        rows = run.result().updates
        np.testing.assert_allclose(rows["t_arrival_s"], first_s + np.arange(4) * 5.0)
        assert list(rows["fraction"]) == [0.1] * changed + [0.5] * (4 - changed)
        assert list(rows["policy_changes"]) == ["fraction=0.5" if k == changed else "" for k in range(4)]
    # 8 jobs of 1 s on one GPU over 30 s; device 1 waited 1 s each time
    assert "server: 8 jobs started, GPU busy 27% so far, mean queue wait 0.50 s" in app.status.value
    summary = app.fleet_result().summary()
    assert summary["devices"] == 2 and summary["gpu_utilisation"] == pytest.approx(8 / 30, abs=1e-3)
    with pytest.raises(ValueError, match="device 2 is not in the run"):
        app.show_device(2)
    assert app.state == "finished" and not app.log.outputs


def test_step_and_stop_buttons_in_a_fleet_run_in_the_background(make_app):
    """The Step button pauses at the arrival of the device drawn (device 0: 11 s, frame 22);
    Stop ends every device."""
    app = make_app(server=ServerConfig(server_time="fixed", step_base_s=0.5, devices=2))
    app.step_button.click()
    assert wait_until(lambda: app.state == "paused"), app.status.value
    assert app.source.arrival[1].index == 22 and app.device == 0 and not app.join(timeout_s=0.1)
    app.stop_button.click()
    assert app.join(timeout_s=30) and app.state == "stopped" and not app.running
    assert all(run.sim.stopped and run.frames_done < 40 for run in app.fleet.runs) and not app.log.outputs


def test_a_fleet_of_an_edge_only_scheme_is_refused_under_the_panel(make_app):
    app = make_app(scheme="tent")
    app.controls["devices"].value = 3
    app.start_button.click()
    assert "adapts on the edge alone" in error_text(app) and app.state == "ready" and not app.running


def test_drawing_time_is_measured(make_app):
    app = make_app()
    app.run_blocking()
    timing = app.timing
    assert timing.draws >= 2 and 0 < timing.draw_s < timing.run_s  # refresh_s=0: redrawn as often as the budget allows
    assert timing.share == timing.draw_s / timing.run_s
    assert f"drawing {100 * timing.share:.1f}% of the run's wall time" in app.status.value


def test_reference_comes_from_the_cache_on_the_second_run(make_app, simulation_runs, tmp_path):
    """The first app runs `none` before its own run and saves it; a second app with the same
    config reads it back: one simulation run, not two. The gain is the live curve's mean
    minus the reference's, frame by frame."""
    first = make_app(reference="none")
    first.cache_dir = tmp_path / "runs"  # an empty cache of its own
    result = first.run_blocking()
    assert simulation_runs == ["none", "ams"] and first.reference_from_cache is False
    assert len(list((tmp_path / "runs").iterdir())) == 1
    reference = first.reference
    np.testing.assert_allclose(first.figure.data[REFERENCE].y, 100 * reference.window_miou())
    assert first.figure.data[REFERENCE].name == "reference: none" and len(reference.frames) == 40
    gain = np.mean(100 * result.window_miou() - 100 * reference.window_miou())  # no warm-up, no NaN here
    assert f"gain over none {gain:+.1f} points (mean from 0 s)" in first.status.value

    second = make_app(reference="none")
    second.cache_dir = tmp_path / "runs"
    second.run_blocking()
    assert simulation_runs == ["none", "ams", "ams"] and second.reference_from_cache is True
    pd.testing.assert_frame_equal(second.reference.frames, reference.frames, check_dtype=False)
    np.testing.assert_allclose(second.figure.data[REFERENCE].y, first.figure.data[REFERENCE].y)
    second.controls["iterations"].value = 3  # another config: another reference run
    second.reference_control.value = "one_time"
    second.begin()  # a new run (Start, without its thread)
    second.run_blocking()
    assert simulation_runs[3:] == ["one_time", "ams"] and second.reference_from_cache is False


def test_a_cached_run_of_another_config_is_run_again(make_app, simulation_runs, tmp_path):
    """A cache folder whose saved config is not the run's (a name collision, a hand edit) is
    not trusted: the reference runs again and replaces it."""
    first = make_app(reference="none")
    first.cache_dir = tmp_path
    first.run_blocking()
    folder = next(tmp_path.iterdir())
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["seed"] += 1
    (folder / "config.json").write_text(json.dumps(meta))
    again = make_app(reference="none")
    again.cache_dir = tmp_path
    again.run_blocking()
    assert simulation_runs == ["none", "ams", "none", "ams"] and again.reference_from_cache is False
    assert json.loads((folder / "config.json").read_text())["config"]["seed"] == first.config.seed


class FailsOnce(TinyOracle):
    """The tiny oracle, failing at its first call only (the reference run's)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def labels(self, video, start, stop, *, frames=None):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("teacher crashed")
        return super().labels(video, start, stop, frames=frames)


def test_a_failed_reference_run_is_shown_and_the_live_run_goes_on(make_app, tmp_path):
    app = make_app(teacher=FailsOnce(), reference="none")
    app.cache_dir = tmp_path / "runs"
    result = app.run_blocking()
    text = error_text(app)
    assert "the reference run (none) failed" in text and "RuntimeError: teacher crashed" in text
    assert app.reference is None and len(app.figure.data[REFERENCE].x) == 0
    assert app.state == "finished" and len(result.frames) == 40
    assert "no reference: its run failed" in app.status.value and "gain" not in app.status.value
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing cached


@pytest.mark.parametrize("scheme", SCHEMES.names)
def test_every_scheme_runs_in_the_panel(make_app, scheme):
    app = make_app(scheme=scheme, reference="none")
    result = app.run_blocking()
    assert app.state == "finished" and len(result.frames) == 40 and not app.log.outputs
    assert len(app.figure.data[MIOU].x) == 40 and len(app.figure.data[REFERENCE].x) == 40
    assert app.source.latest.index == 39 and shown(app).shape[0] > 0
    assert len(app.figure.data[UPLINK_INTERVAL].x) == len(app.figure.data[DOWNLINK_INTERVAL].x)
    assert "gain over none" in app.status.value


def wait_until(predicate, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_step_pause_and_resume_buttons_in_the_background(make_app):
    app = make_app(teacher=TinyOracle(delay_s=0.05))
    app.step_button.click()  # begins a run and steps it to the first arrival, in the background
    assert wait_until(lambda: app.state == "paused"), app.status.value
    assert app.source.arrival[1].index == 20 and not app.join(timeout_s=0.1)  # its thread waits
    frames = len(app.result().frames)
    time.sleep(0.3)
    assert len(app.result().frames) == frames  # paused: nothing runs
    app.resume_button.click()
    app.pause_button.click()
    assert wait_until(lambda: app.state == "paused"), app.status.value
    app.resume_button.click()
    assert wait_until(lambda: app.join(timeout_s=0.1)) and app.state == "finished"
    assert len(app.result().frames) == 40 and not app.log.outputs


def test_stop_while_paused_ends_the_run(make_app):
    app = make_app()
    app.run_to_arrival()
    app.stop_button.click()
    assert app.state == "stopped" and not app.running and not app.start_button.disabled
    assert len(app.result().frames) < 40


def test_class_drilldown_redraws_the_chosen_class():
    from amslib.analysis.results import per_class_table
    from amslib.ui.widgets import class_drilldown

    frames = pd.DataFrame({"frame": [0, 1], "t_s": [0.0, 0.5], "uplink_bits": [0, 0],
                           "tp_road": [1, 3], "fp_road": [1, 0], "fn_road": [0, 1],
                           "tp_sky": [2, 0], "fp_sky": [0, 0], "fn_sky": [2, 0]})
    config = RunConfig(fps=2.0, eval=EvalConfig(window_s=0.4, warmup_s=0.0))
    result = RunResult(config, ("road", "sky"), frames, pd.DataFrame())
    box = class_drilldown({"ams": result})
    choose, figure = box.children[0], box.children[1]
    np.testing.assert_allclose(figure.data[0].y, [50.0, 75.0])  # road: 1/2, then 3/4
    browser_echo(figure)
    choose.value = "sky"
    np.testing.assert_allclose(figure.data[0].y, [50.0, np.nan])  # sky absent in frame 1
    browser_echo(figure)
    table = per_class_table({"ams": result})  # pooled: road 4/6, sky 2/4
    np.testing.assert_allclose(table.loc["ams"].to_numpy(), [100 * 4 / 6, 50.0], atol=1e-3)
    with pytest.raises(ValueError, match="no runs"):
        class_drilldown({})
