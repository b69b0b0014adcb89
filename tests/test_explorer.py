"""The frame explorer on the tiny video: the right frame is shown, update buttons jump to the
arrival frames, per-class IoU matches a hand count, and callback errors reach the Output."""
import math

import conftest
import numpy as np
import pandas as pd
import pytest
from conftest import TinyOracle

from amslib.core.config import RunConfig
from amslib.core.labels import CITYSCAPES19
from amslib.sim.engine import Students
from amslib.ui.explorer import ERROR_RGB, FrameExplorer, error_mask, frame_iou, record_run, render_panel, update_arrivals

ROAD, BUILDING, SKY, CAR = CITYSCAPES19.ids(("road", "building", "sky", "car"))


def tiny_config(student, scheme="ams") -> RunConfig:
    """20 s of the tiny video at 2 fps (40 frames); updates at 10 s and 15 s."""
    return conftest.tiny_config(student, scheme=scheme, max_seconds=20.0, iterations=2)


@pytest.fixture(scope="module")
def students(tiny_student):
    from conftest import TinyVideo
    return Students.load(tiny_config(tiny_student), TinyVideo())


@pytest.fixture(scope="module")
def recording(tiny_student, students):
    from conftest import TinyVideo
    return record_run(tiny_config(tiny_student), video=TinyVideo(), teacher=TinyOracle(), students=students)


# -- pure functions -------------------------------------------------------------------------
def test_update_arrivals_first_frame_after_arrival():
    updates = pd.DataFrame({"update": [1, 2, 3, 4], "t_update_s": [10.0, 15.0, 20.0, 25.0],
                            "t_arrival_s": [10.2, 15.0, math.nan, 30.1], "sent": [True, True, False, True]})
    arrivals = update_arrivals(updates, fps=2.0, num_frames=50)
    # 10.2 s * 2 fps = 20.4 -> frame 21; 15.0 s is exactly frame 30; 30.1 s -> frame 61 > 50: not seen
    assert arrivals["update"].tolist() == [1, 2] and arrivals["arrival_frame"].tolist() == [21, 30]
    assert update_arrivals(pd.DataFrame(), fps=2.0, num_frames=5).empty


def test_error_mask_ignores_unlabelled_pixels():
    label = np.array([[ROAD, 255], [SKY, SKY]], np.uint8)
    pred = np.array([[ROAD, ROAD], [ROAD, SKY]], np.uint8)
    assert error_mask(label, pred).tolist() == [[False, False], [True, False]]
    with pytest.raises(ValueError, match="same shape"):
        error_mask(label, pred[:1])


def test_frame_iou_hand_computed():
    label = np.array([[ROAD, ROAD, BUILDING], [BUILDING, BUILDING, SKY]], np.uint8)
    pred = np.array([[ROAD, BUILDING, BUILDING], [BUILDING, SKY, SKY]], np.uint8)
    table = frame_iou(label, pred, class_ids=(ROAD, BUILDING, SKY, CAR),
                      classes=("road", "building", "sky", "car"))
    # road: TP 1, FN 1; building: TP 2, FP 1, FN 1; sky: TP 1, FP 1; car in neither
    assert table[["tp", "fp", "fn"]].to_numpy().tolist() == [[1, 0, 1], [2, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert table["iou_pct"].iloc[:3].tolist() == [50.0, 50.0, 50.0] and math.isnan(table.loc["car", "iou_pct"])


def test_render_panel_tiles():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    label = np.full((8, 16), ROAD, np.uint8)
    pred = label.copy()
    pred[2, 3] = SKY
    image = np.asarray(render_panel(frame, label, pred, label_set=CITYSCAPES19, classes=("road", "sky"),
                                    min_height=16))  # scaled x2: tiles 16 x 32
    top, pad = 34, 6
    assert np.array_equal(image[top:top + 16:2, 0:32:2], frame)
    assert np.array_equal(image[top + 4, 32 + pad + 6], CITYSCAPES19.colors[ROAD])  # teacher tile
    errors = image[top:top + 16:2, 3 * (32 + pad):3 * (32 + pad) + 32:2]
    mask = error_mask(label, pred)
    assert (errors[mask] == ERROR_RGB).all() and (errors[~mask] != ERROR_RGB).any(axis=-1).all()


# -- the recording and the app --------------------------------------------------------------
def test_recording_holds_every_frame(recording, tiny_video):
    assert recording.indices.tolist() == list(range(40)) and recording.predictions.dtype == np.uint8
    assert np.array_equal(recording.frames[7], tiny_video.frames(7, 8)[0])
    assert np.array_equal(recording.labels[7], tiny_video.labels(7, 8)[0])
    assert len(recording.result.frames) == 40


def test_panel_shows_the_chosen_frame(recording):
    app = FrameExplorer(recording)
    app.slider.value = 12
    assert app.frame == 12 and "frame 12, t = 6.00 s" in app.status.value
    panel = np.asarray(app.panel())
    scale = math.ceil(160 / 32)
    assert np.array_equal(panel[34:34 + 32 * scale:scale, 0:64 * scale:scale], recording.frames[12])
    assert app.image.value[:4] == b"\x89PNG"
    table = app.frame_table()
    expected = frame_iou(recording.labels[12], recording.predictions[12], class_ids=recording.class_ids,
                         classes=recording.classes)
    pd.testing.assert_frame_equal(table, expected)
    assert "road" in app.iou.value


def test_update_buttons_jump_to_arrival_frames(recording):
    app = FrameExplorer(recording)
    updates = recording.result.updates
    sent = updates[updates["sent"].fillna(False).astype(bool)]
    expected = [math.ceil(t * 2.0 - 1e-9) for t in sent["t_arrival_s"] if t * 2.0 < 40]
    assert expected and app.updates["arrival_frame"].tolist() == expected
    # the run agrees: the edge's model version changes exactly at those frames
    versions = recording.result.frames["model_version"].to_numpy()
    assert np.flatnonzero(np.diff(versions)).tolist() == [f - 1 for f in expected]
    app.next_button.click()
    assert app.frame == expected[0] and app.slider.value == expected[0] and "arrived" in app.status.value
    for frame in expected[1:]:
        assert app.next_update() == frame
    assert app.next_update() is None and "no update arrives after" in app.status.value
    app.previous_button.click()
    assert app.frame == (expected[-2] if len(expected) > 1 else expected[-1])
    app.update_list.value = expected[0]
    assert app.frame == expected[0] and app.update_list.value is None
    assert not app.log.outputs


def test_every_k_frames(tiny_student, tiny_video, students):
    rec = record_run(tiny_config(tiny_student), video=tiny_video, teacher=TinyOracle(), students=students,
                     every=3)
    assert rec.indices.tolist() == list(range(0, 40, 3)) and rec.step == 3
    app = FrameExplorer(rec)
    app.show(4)  # not kept: the next kept frame
    assert app.frame == 6 and app.slider.step == 3
    with pytest.raises(ValueError, match="every must be >= 1"):
        record_run(tiny_config(tiny_student), video=tiny_video, every=0)


def test_callback_errors_are_shown(recording):
    app = FrameExplorer(recording)

    def broken():
        raise RuntimeError("renderer crashed")
    app.panel = broken
    app.slider.value = 5
    text = "".join(o.get("text", "") for o in app.log.outputs)
    assert "RuntimeError: renderer crashed" in text and app.status.value.startswith("error: RuntimeError")
    with pytest.raises(ValueError, match="outside the recording"):
        app.show(400)
