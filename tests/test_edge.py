"""Adaptation on the edge (bn_adapt, tent) and the metrics of continual learning: known answers."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import TinyOracle, TinyVideo, tiny_config

from amslib.analysis.results import RunResult
from amslib.analysis.runs import measure_forgetting, simulate
from amslib.core import metrics
from amslib.core.config import AdaptConfig, EvalConfig, RunConfig
from amslib.models.student import flat_weights
from amslib.sim.engine import Students
from amslib.sim.schemes.edge import TentStep, batchnorm_layers


# -- the metrics, on hand-made sequences ----------------------------------------------------------
def test_flip_rates_known_answer():
    a = np.zeros((3, 2, 2), np.uint8)
    a[1, 0, 0] = 1          # one pixel of four flips
    a[2] = 1                # then all four are 1: three of them flip
    np.testing.assert_allclose(metrics.flip_rates(a), [np.nan, 0.25, 0.75])
    np.testing.assert_allclose(metrics.flip_rates(a, previous=np.ones((2, 2), np.uint8)), [1.0, 0.25, 0.75])


def test_recovery_time_known_answer():
    t = np.arange(0, 40, 1.0)
    miou = np.full(40, 0.8)
    miou[20:26] = 0.3           # the scene changes at 20 s: accuracy falls...
    miou[26:] = 0.75            # ...and regains 0.75 >= 0.9 * 0.8 at 26 s
    np.testing.assert_allclose(metrics.recovery_times(t, miou, np.array([20.0, 5.0])), [6.0, 0.0])
    never = miou.copy()
    never[20:] = 0.5
    assert np.isnan(metrics.recovery_times(t, never, np.array([20.0]))[0])
    late = np.full(40, 0.8)
    late[23:29] = 0.3           # a trailing window falls only 3 s after the change...
    late[29:] = 0.8             # ...and is back at 29 s: 9 s after the change, not 0
    np.testing.assert_allclose(metrics.recovery_times(t, late, np.array([20.0])), [9.0])


def test_scene_changes_merge_nearby_dips():
    series = pd.Series([90.0] * 10 + [40.0, 45.0] + [90.0] * 10 + [30.0] + [90.0] * 10)
    dips = metrics.scene_dips(series, drop_pct=15, window=31)
    assert np.flatnonzero(dips).tolist() == [10, 11, 22]
    t = np.arange(len(series)) * 2.0
    np.testing.assert_allclose(metrics.change_times(t, dips, min_gap_s=10.0), [20.0, 44.0])


def _hand_result(live_perfect: bool) -> RunResult:
    """40 frames of the tiny video at 2 fps, with a scene change at 10 s, scored live either
    perfectly or not at all."""
    video, classes = TinyVideo(seconds=20.0), ("road", "building", "sky")
    labels = video.labels(0, 40)
    counts = metrics.frame_counts(labels, labels if live_perfect else np.full_like(labels, 255),
                                  class_ids=video.class_ids)
    rows = {"frame": np.arange(40), "t_s": np.arange(40) / 2.0, "label_miou_1s": np.where(np.arange(40) == 20, 0.2, 1.0)}
    for k, c in enumerate(classes):
        for j, kind in enumerate(("tp", "fp", "fn")):
            rows[f"{kind}_{c}"] = counts[:, k, j]
    config = RunConfig(video="tiny", height=32, fps=2.0, eval=EvalConfig(warmup_s=0.0, window_s=4.0))
    return RunResult(config, classes, pd.DataFrame(rows), pd.DataFrame())


def _truth_from_pixels(frames: np.ndarray) -> np.ndarray:
    """The tiny video's labels read back from its colours (every class has its own red value)."""
    table = np.full(256, 255, np.uint8)
    table[[110, 30]], table[[180, 60]], table[[120, 20]] = 0, 2, 10  # road, building, sky (bright, dark)
    return table[frames[..., 0]]


@pytest.mark.parametrize("live_perfect, final, expected", [
    (True, "truth", 0.0),       # nothing forgotten
    (True, "nothing", -100.0),  # the final model lost the first scene entirely
    (False, "truth", 100.0),    # it learned the first scene after the fact
])
def test_forgetting_known_answer(live_perfect, final, expected):
    result = _hand_result(live_perfect)
    np.testing.assert_allclose(result.scene_changes(), [10.0])
    predict = _truth_from_pixels if final == "truth" else (lambda frames: np.full(frames.shape[:3], 255, np.uint8))
    scheme = SimpleNamespace(has_model=True, final_predict=predict)
    sim = SimpleNamespace(video=TinyVideo(seconds=20.0), teacher=TinyOracle(), scheme=scheme)
    table = measure_forgetting(sim, result, per_segment=5)
    assert table["segment"].tolist() == [0] and table["end_s"].iloc[0] == 10.0
    assert table["forgetting"].iloc[0] == pytest.approx(expected)


# -- the schemes ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def students(tiny_student):
    return Students.load(tiny_config(tiny_student), TinyVideo())


def test_tent_changes_only_batchnorm_scale_and_shift_and_lowers_entropy(students):
    model = students.predictor.model
    model.set_weights(students.pretrained_state)
    before = {v.path: v.numpy().copy() for v in model.weights}
    frames = TinyVideo().frames(40, 48)  # the dark half: a drift
    step = TentStep(model, lr=1e-2)
    entropy = lambda: float(step.entropy(model(frames.astype(np.float32), training=True)))  # noqa: E731
    first = entropy()
    for _ in range(5):
        step(frames)
    assert entropy() < first
    scale_shift = {v.path for layer in batchnorm_layers(model) for v in (layer.gamma, layer.beta)}
    moved = {v.path for v in model.weights if not np.array_equal(v.numpy(), before[v.path])}
    trainable_moved = moved & {v.path for v in model.trainable_weights}
    assert trainable_moved and trainable_moved <= scale_shift  # only BatchNorm's gamma and beta learn
    model.set_weights(students.pretrained_state)


def test_edge_schemes_cost_no_bandwidth_and_account_their_compute(tiny_student, students):
    video, teacher = TinyVideo(), TinyOracle()
    keys = None
    for scheme in ("ams", "bn_adapt", "tent", "edge_train", "none"):
        result = simulate(tiny_config(tiny_student, scheme=scheme), video=video, teacher=teacher, students=students)
        s = result.summary()
        keys = keys or set(s)
        assert set(s) == keys, scheme  # every scheme writes the same summary keys
        if scheme in ("bn_adapt", "tent"):
            assert s["uplink_kbps"] == s["downlink_kbps"] == 0.0
        if scheme == "tent":
            # a step per frame; its forward pass is the frame's prediction: (3 - 1) passes extra
            assert s["edge_train_frames"] == 80 and s["edge_compute_s_per_s"] == pytest.approx(0.040 * 2 * 80 / 40)
        if scheme == "bn_adapt":
            assert s["edge_train_frames"] == 0 and s["edge_compute_s_per_s"] > 0
        assert {"flip_pct", "teacher_flip_pct", "recovery_s", "forgetting_pct"} <= set(s)
    # the run after an edge-only one starts from the pretrained student, BatchNorm statistics too
    np.testing.assert_array_equal(flat_weights(students.predictor.model), students.pretrained)
    model = students.predictor.model
    moving = [np.array(layer.moving_mean) for layer in batchnorm_layers(model)]
    simulate(tiny_config(tiny_student, scheme="none"), video=video, teacher=teacher, students=students)
    assert all(np.array_equal(m, np.array(layer.moving_mean)) for m, layer in zip(moving, batchnorm_layers(model)))


def test_bn_adapt_moves_only_the_statistics(tiny_student, students):
    from amslib.sim.engine import Simulation
    sim = Simulation.create(tiny_config(tiny_student, scheme="bn_adapt"), video=TinyVideo(), teacher=TinyOracle(),
                            students=students)
    rows = [e.row for e in sim.run() if hasattr(e, "row")]
    assert [r["t_update_s"] for r in rows] == [10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
    # the last bn_frames = 32 frames the edge showed (20 and 30 before there are 32)
    assert [r["edge_forward_frames"] for r in rows] == [20, 30, 32, 32, 32, 32] and not any(r["sent"] for r in rows)
    model = sim.edge_predictor.model
    np.testing.assert_array_equal(flat_weights(model), students.pretrained)  # no weight trained
    pretrained_means = [w for w, v in zip(students.pretrained_state, model.weights) if "moving_mean" in v.path]
    now = [v.numpy() for v in model.weights if "moving_mean" in v.path]
    assert any(not np.allclose(a, b) for a, b in zip(pretrained_means, now))


def test_config_knows_the_edge_profile():
    config = RunConfig(adapt=AdaptConfig())
    assert config.edge.inference_s == 0.040 and config.edge.train_factor == 3.0


def test_edge_train_sends_labels_down_and_trains_on_the_edge(tiny_student, students):
    video, teacher = TinyVideo(), TinyOracle()
    ams = simulate(tiny_config(tiny_student, scheme="ams"), video=video, teacher=teacher, students=students)
    edge = simulate(tiny_config(tiny_student, scheme="edge_train"), video=video, teacher=teacher, students=students)
    u = edge.updates
    assert (u["encoder"] == "label_png").all() and "num_params" not in u  # labels go down, never weights
    # every sample's label goes down once: 10 by the first update, then 5 per 5-s interval
    assert list(u["num_labels_sent"]) == [10, 5, 5, 5, 5, 5]
    assert (edge.frames["uplink_bits"] > 0).sum() == (ams.frames["uplink_bits"] > 0).sum()  # AMS's uplink
    s = edge.summary()
    # each update's labels arrive within its interval, and the edge trains once the last of them
    # is there (not at the next update): 6 times x 3 steps x batch 2, each new model run at once
    assert not u["loss_last"].isna().any() and (u["t_train_s"] >= u["t_arrival_s"]).all()
    assert (u["t_train_s"] < u["t_update_s"] + 5.0).all()
    assert s["edge_train_frames"] == 6 * 3 * 2
    assert s["downlink_kbps"] > 0 and edge.frames["model_version"].max() == 6
    first = edge.frames[edge.frames["t_s"] >= u["t_train_s"].iloc[0]]
    assert edge.frames[edge.frames["t_s"] < 10.0]["model_version"].max() == 0 and first["model_version"].iloc[0] == 1


def test_edge_train_logs_an_update_whose_labels_are_still_on_their_way_untrained(tiny_student, students):
    # a 0.5 Kbps downlink: the first update's 10 labels (about 780 bits each) take 15.7 s, past the run's end
    config = tiny_config(tiny_student, scheme="edge_train", max_seconds=20.0)
    config = replace(config, link=replace(config.link, downlink_kbps=0.5))
    edge = simulate(config, video=TinyVideo(), teacher=TinyOracle(), students=students)
    u = edge.updates
    assert list(u["num_labels_sent"]) == [10, 5] and "loss_last" not in u  # never trained
    assert (u["t_arrival_s"] > 20.0).all() and edge.frames["model_version"].max() == 0
    assert edge.summary()["edge_train_frames"] == 0


def test_edge_train_on_the_edge_profile_runs_each_model_when_its_training_ends(tiny_student, students):
    # 3 steps x batch 2 x train_factor 3 x 40 ms: a training takes 0.72 s, then its model runs
    config = tiny_config(tiny_student, scheme="edge_train")
    config = replace(config, edge=replace(config.edge, edge_train_time="profile"))
    edge = simulate(config, video=TinyVideo(), teacher=TinyOracle(), students=students)
    u = edge.updates
    assert (u["t_live_s"] - u["t_train_s"]).to_numpy() == pytest.approx([0.72] * 6)
    f = edge.frames
    first_live = u["t_live_s"].iloc[0]
    assert f[f["t_s"] < first_live]["model_version"].max() == 0 and f[f["t_s"] >= first_live]["model_version"].iloc[0] == 1
    assert "on the clock (edge_train_time=profile)" in edge.summary()["conditions"]["edge_training_time"]


def test_a_busy_edge_queues_one_training_and_the_newer_labels_replace_it(tiny_student, students):
    # a 1-s forward pass: a training takes 3 x 2 x 3 x 1 = 18 s, longer than the 5-s interval
    config = tiny_config(tiny_student, scheme="edge_train")
    config = replace(config, edge=replace(config.edge, edge_train_time="profile", inference_s=1.0))
    edge = simulate(config, video=TinyVideo(), teacher=TinyOracle(), students=students)
    u = edge.updates.sort_values("t_update_s").reset_index(drop=True)
    assert list(u["t_update_s"]) == [10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
    # 10 s trains at once (live 18 s later); 15 and 20 wait and are replaced; 25 trains when the
    # edge is free; 30 is replaced by 35, which is still waiting when the run ends
    trained = u["loss_last"].notna()
    assert list(u.loc[trained, "t_update_s"]) == [10.0, 25.0]
    assert list(u.loc[u["superseded_by_newer"].fillna(False).astype(bool), "t_update_s"]) == [15.0, 20.0, 30.0]
    assert u.loc[3, "t_train_s"] == pytest.approx(u.loc[0, "t_live_s"])  # the edge was free again
    assert u.loc[0, "t_live_s"] - u.loc[0, "t_train_s"] == pytest.approx(18.0)
    # its newest frame captured at 24 s (asked for at 25 s), its model running from 46 s
    assert (u.loc[3, "t_captured_s"], u.loc[3, "t_live_s"], u.loc[3, "staleness_s"]) == pytest.approx((24.0, 46.0, 22.0))
    assert edge.frames["model_version"].max() == 1 and edge.summary()["edge_train_frames"] == 2 * 3 * 2
    # staleness counts the models that ran
    assert list(u["staleness_s"].isna()) == [False, True, True, False, True, True]
    assert edge.summary()["staleness_mean_s"] == pytest.approx(u["staleness_s"].mean(), abs=1e-3)


def test_edge_train_labelling_is_server_work_on_the_clock(tiny_student, students):
    # the teacher at 0.1 s a frame: the first update's 10 labels leave the server 1 s after 10 s
    config = tiny_config(tiny_student, scheme="edge_train", max_seconds=20.0)
    config = replace(config, server=replace(config.server, server_time="fixed", teacher_frame_s=0.1))
    u = simulate(config, video=TinyVideo(), teacher=TinyOracle(), students=students).updates
    assert list(u["server_s"]) == pytest.approx([1.0, 0.5]) and list(u["t_start_s"]) == pytest.approx([10.0, 15.0])
    assert (u["t_arrival_s"] >= u["t_end_s"]).all() and (u["t_train_s"] >= u["t_arrival_s"]).all()


def test_tent_uses_only_the_past_whatever_the_edge_batch(tiny_student, students):
    # one step per frame, normalised by that frame alone: batching the edge's frames (a speed
    # setting) changes nothing (a step per batch of 32 let frame j see frames after it)
    video, teacher = TinyVideo(), TinyOracle()
    config = tiny_config(tiny_student, scheme="tent", max_seconds=12.0)
    one = simulate(config, video=video, teacher=teacher, students=students)
    four = simulate(replace(config, edge_batch=4), video=video, teacher=teacher)
    np.testing.assert_array_equal(one.window_miou(), four.window_miou())
    np.testing.assert_array_equal(one.frames["pred_flip"], four.frames["pred_flip"])


def test_forgetting_is_measured_with_the_predictor_scored_live(tiny_student, students):
    from amslib.sim.schemes.keyframe import RemoteTrackingScheme
    from amslib.sim.schemes.edge import TentScheme

    assert RemoteTrackingScheme.has_model is False and TentScheme.has_model is True
    video, teacher = TinyVideo(), TinyOracle()
    tracked = simulate(tiny_config(tiny_student, scheme="remote_tracking"), video=video, teacher=teacher,
                       students=students)
    assert tracked.segments is not None and tracked.segments.empty  # tracked labels: no model to forget with
    assert tracked.summary()["forgetting_pct"] is None


def test_the_model_age_of_edge_only_schemes(tiny_student, students):
    # Tent shows each frame with the model its own step adapted (age 0); bn_adapt's statistics
    # come from the frames up to its update, so its age grows from each update's newest frame
    video, teacher = TinyVideo(), TinyOracle()
    tent = simulate(tiny_config(tiny_student, scheme="tent", max_seconds=12.0), video=video, teacher=teacher,
                    students=students)
    assert (tent.frames["model_age_s"] == 0.0).all()
    bn = simulate(tiny_config(tiny_student, scheme="bn_adapt", max_seconds=20.0), video=video, teacher=teacher,
                  students=students)
    f, first = bn.frames, bn.updates["t_update_s"].iloc[0]
    before, after = f[f["t_s"] < first], f[f["t_s"] >= first]
    np.testing.assert_allclose(before["model_age_s"], before["t_s"])  # the pretrained model, made at 0 s
    assert after["model_age_s"].iloc[0] == pytest.approx(1 / video.fps)  # the frame just before the update
