"""LiveApp on the tiny video: the figure grows with the run, the panel steers it, errors show."""
import time
from dataclasses import replace

import conftest
import numpy as np
import pandas as pd
import pytest
from conftest import TinyOracle

from amslib.analysis.results import RunResult
from amslib.core.config import ConfigError, EvalConfig, RunConfig
from amslib.sim.engine import Students
from amslib.sim.state import FramesEvent, UpdateEvent
from amslib.ui.widgets import (
    ARRIVALS,
    DOWNLINK,
    MIOU,
    UPLINK,
    LiveApp,
    config_with_controls,
    control_values,
    curve_points,
    ledger_table,
    summary_table,
)


def tiny_config(student, **adapt) -> RunConfig:
    """20 s of the tiny video at 2 fps: 40 frames, updates at 10 s and 15 s."""
    return conftest.tiny_config(student, max_seconds=20.0, **{"iterations": 2, **adapt})


@pytest.fixture(scope="module")
def students(tiny_student):
    from conftest import TinyVideo
    return Students.load(tiny_config(tiny_student), TinyVideo())


@pytest.fixture
def make_app(tiny_student, students, tiny_video):
    def make(teacher=None, **adapt):
        return LiveApp(tiny_config(tiny_student, **adapt), video=tiny_video,
                       teacher=teacher or TinyOracle(), students=students, refresh_s=0.0)
    return make


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
    changed = config_with_controls(config, {**values, "downlink_kbps": 300.0, "scheme": "none"})
    assert changed.link.downlink_kbps == 300.0 and changed.scheme == "none"
    with pytest.raises(ConfigError, match="fraction"):
        config_with_controls(config, {**values, "fraction": 0.0})


# -- the app ---------------------------------------------------------------------------
def test_run_blocking_grows_traces_to_every_frame(make_app):
    app = make_app()
    sizes = []
    while (event := app.step()) is not None:
        assert isinstance(event, (FramesEvent, UpdateEvent))
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
    choose.value = "sky"
    np.testing.assert_allclose(figure.data[0].y, [50.0, np.nan])  # sky absent in frame 1
    table = per_class_table({"ams": result})  # pooled: road 4/6, sky 2/4
    np.testing.assert_allclose(table.loc["ams"].to_numpy(), [100 * 4 / 6, 50.0], atol=1e-3)
    with pytest.raises(ValueError, match="no runs"):
        class_drilldown({})
