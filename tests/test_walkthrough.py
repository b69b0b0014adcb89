"""One update taken apart (amslib/ui/walkthrough.py): known answers, and the engine's own numbers."""
from dataclasses import replace
from types import SimpleNamespace

import conftest
import numpy as np
import pandas as pd
import pytest
from conftest import TinyOracle

from amslib.analysis.runs import simulate
from amslib.core import metrics
from amslib.core.config import UPDATE_ENCODERS, AdaptConfig
from amslib.models.student import flat_weights
from amslib.sim.codec import decode_update, encode_update
from amslib.sim.engine import Students
from amslib.sim.schemes.ams import AmsScheme
from amslib.sim.selection import selection_count
from amslib.ui import walkthrough as wk


def tiny_config(student, **adapt):
    """One update at 10 s on the last 20 s, judged until the run ends at 15 s (tau = 5 s)."""
    return conftest.tiny_config(student, max_seconds=15.0, **adapt)


@pytest.fixture(scope="module")
def students(tiny_student):
    from conftest import TinyVideo
    return Students.load(tiny_config(tiny_student), TinyVideo())


def walk_of(config, video, students, *, t_s=10.0):
    buffer = wk.buffer_at(video, TinyOracle(), t_s=t_s, horizon_s=config.adapt.horizon_s,
                          rate_fps=config.adapt.sample_rate_fps)
    upcoming = wk.frames_between(video, TinyOracle(), start_s=t_s, stop_s=t_s + config.adapt.update_interval_s)
    return wk.one_update(students, buffer, upcoming, config=config, t_s=t_s, class_ids=video.class_ids), upcoming


def test_symbols_table():
    table = wk.symbols_table(AdaptConfig(update_interval_s=7.0, fraction=0.05))
    assert table.loc["τ (tau)", "value"] == 7.0 and table.loc["γ (gamma)", "value"] == 0.05
    assert table.loc["T", "parameter"] == "horizon_s" and table.loc["K", "value"] == 200
    assert isinstance(table.loc["K", "value"], int)
    assert table.loc["r", "value"] == 1.0


# -- 1. sampling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("start, stop, rate, expected", [
    (2.0, 5.0, 1.0, [2.0, 3.0, 4.0]),       # stop excluded
    (0.0, 6.0, 0.4, [0.0, 2.5, 5.0]),       # one sample every 2.5 s from 0 s
    (1.2, 2.6, 2.0, [1.5, 2.0, 2.5]),       # the clock starts at 0 s, not at start_s
    (3.0, 3.0, 1.0, []),
])
def test_sample_times(start, stop, rate, expected):
    np.testing.assert_allclose(wk.sample_times(start, stop, rate_fps=rate), expected)


def test_sampled_frames_known_answers():
    # r = 0.3 at 5 fps: sample times 0, 3.33, 6.67, 10 s -> frames 0, 17 (3.4 s), 34 (6.8 s), 50
    assert wk.sampled_frames(0.0, 10.0, rate_fps=0.3, fps=5.0).tolist() == [0, 17, 34]
    # the sample asked for at 3.33 s is frame 17 at 3.4 s: inside a span that starts at 3.35 s
    assert wk.sampled_frames(3.35, 10.0, rate_fps=0.3, fps=5.0).tolist() == [17, 34]
    # faster than the frames: every frame is sent
    assert wk.sampled_frames(0.0, 3.0, rate_fps=10.0, fps=2.0).tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("fps, rate", [(5.0, 1.0), (5.0, 0.3), (10.0, 0.7), (2.0, 2.0), (2.0, 3.0), (30.0, 0.45)])
def test_sampled_frames_are_the_engines(fps, rate):
    scheme = AmsScheme(SimpleNamespace(adapt=AdaptConfig(sample_rate_fps=rate)))
    state = SimpleNamespace(next_sample_s=0.0)
    scheme.start(state)
    sent = [i for i in range(int(60 * fps)) if scheme.wants_sample(state, i, i / fps)]
    assert wk.sampled_frames(0.0, 60.0, rate_fps=rate, fps=fps).tolist() == sent
    assert wk.sampled_frames(12.3, 41.0, rate_fps=rate, fps=fps).tolist() == [
        i for i in sent if 12.3 <= i / fps < 41.0]


@pytest.mark.parametrize("call, message", [
    (lambda: wk.sample_times(0.0, 5.0, rate_fps=0.0), "rate_fps"),
    (lambda: wk.sample_times(5.0, 1.0, rate_fps=1.0), "start_s <= stop_s"),
    (lambda: wk.sample_times(-1.0, 1.0, rate_fps=1.0), "0 <= start_s"),
    (lambda: wk.sampled_frames(0.0, 1.0, rate_fps=1.0, fps=0.0), "fps"),
])
def test_sampling_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- 2. the server's buffer ----------------------------------------------------------------------
def test_buffer_holds_the_last_horizon_of_samples(tiny_video):
    buffer = wk.buffer_at(tiny_video, TinyOracle(), t_s=10.0, horizon_s=20.0, rate_fps=1.0)
    # the engine's first update at 10 s trains on the samples at 0..9 s (tests/test_engine.py)
    np.testing.assert_allclose(buffer.times_s, np.arange(10.0))
    assert buffer.indices.tolist() == list(range(0, 20, 2))
    later = wk.buffer_at(tiny_video, TinyOracle(), t_s=25.0, horizon_s=20.0, rate_fps=1.0)
    np.testing.assert_allclose(later.times_s, np.arange(5.0, 25.0))
    assert later.frames.shape == (20, 32, 64, 3) and later.labels.shape == (20, 32, 64)
    k = 7
    np.testing.assert_array_equal(later.frames[k], tiny_video.frames(later.indices[k], later.indices[k] + 1)[0])
    np.testing.assert_array_equal(later.labels[k], tiny_video.labels(later.indices[k], later.indices[k] + 1)[0])


def test_frames_between_and_pick(tiny_video):
    clip = wk.frames_between(tiny_video, TinyOracle(), start_s=38.0, stop_s=45.0)  # cut at the 40 s end
    assert clip.indices.tolist() == [76, 77, 78, 79]
    np.testing.assert_allclose(clip.times_s, [38.0, 38.5, 39.0, 39.5])
    assert clip.pick(2).indices.tolist() == [76, 79] and clip.pick(10).indices.tolist() == [76, 77, 78, 79]


@pytest.mark.parametrize("call, message", [
    (lambda v: wk.buffer_at(v, TinyOracle(), t_s=50.0, horizon_s=20.0, rate_fps=1.0), "video's length"),
    (lambda v: wk.buffer_at(v, TinyOracle(), t_s=0.0, horizon_s=20.0, rate_fps=1.0), "t_s"),
    (lambda v: wk.buffer_at(v, TinyOracle(), t_s=10.0, horizon_s=0.0, rate_fps=1.0), "horizon_s"),
    (lambda v: wk.buffer_at(v, TinyOracle(), t_s=10.0, horizon_s=0.2, rate_fps=1.0), "no frames"),
    (lambda v: wk.frames_between(v, TinyOracle(), start_s=40.0, stop_s=50.0), "no frame"),
    (lambda v: wk.labelled_frames(v, TinyOracle(), np.array([3, 80])), r"\[0, 80\)"),
])
def test_buffer_errors(tiny_video, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_video)


# -- 4. per-block selection ---------------------------------------------------------------------
@pytest.mark.parametrize("layer, block", [
    ("Conv", "Conv"), ("Conv_BatchNorm", "Conv"), ("expanded_conv_depthwise", "expanded_conv"),
    ("expanded_conv_3_expand_BatchNorm", "expanded_conv_3"), ("expanded_conv_16_project", "expanded_conv_16"),
    ("concat_projection_BatchNorm", "concat_projection"), ("logits_semantic", "logits_semantic")])
def test_block_name(layer, block):
    assert wk.block_name(layer) == block


def test_parameter_groups_cover_the_flat_vector(students):
    model = students.trainer.model
    p = flat_weights(model).size
    for by in ("block", "layer"):
        groups = wk.parameter_groups(model, by=by)
        assert groups["start"].iloc[0] == 0 and groups["stop"].iloc[-1] == p
        assert (groups["start"].iloc[1:].to_numpy() == groups["stop"].iloc[:-1].to_numpy()).all()
        assert groups["num_params"].sum() == p and groups["group"].is_unique
    blocks = wk.parameter_groups(model)["group"].tolist()
    assert blocks[:3] == ["Conv", "expanded_conv", "expanded_conv_1"] and blocks[-1] == "logits_semantic"
    assert len(blocks) == 1 + 17 + 4  # stem, 17 inverted residuals, image pooling, aspp0, projection, logits
    with pytest.raises(ValueError, match="block"):
        wk.parameter_groups(model, by="variable")


def test_selection_table_known_counts():
    groups = pd.DataFrame({"group": ["a", "b", "c"], "start": [0, 3, 8], "stop": [3, 8, 10], "num_params": [3, 5, 2]})
    mask = np.zeros(10, bool)
    mask[[0, 4, 5, 6, 9]] = True
    table = wk.selection_table(groups, {"x": mask, "none": np.zeros(10, bool)})
    x = table[table["strategy"] == "x"]
    assert x["num_selected"].tolist() == [1, 3, 1]
    np.testing.assert_allclose(x["share"], [1 / 3, 3 / 5, 1 / 2])
    assert table[table["strategy"] == "none"]["num_selected"].sum() == 0
    with pytest.raises(ValueError, match="cover 10 parameters"):
        wk.selection_table(groups, {"short": np.ones(9, bool)})


def test_comparison_masks_pick_the_same_count():
    masks = wk.comparison_masks(1001, 0.1, seed=0)
    assert list(masks) == list(wk.COMPARED)
    assert all(m.sum() == 100 for m in masks.values())
    assert masks["first_layers"][:100].all() and masks["last_layers"][-100:].all()
    with pytest.raises(ValueError, match="fixed-mask"):
        wk.comparison_masks(1001, 0.1, seed=0, strategies=("gradient_guided",))


# -- 5. sizes ------------------------------------------------------------------------------------
def test_encoded_sizes_are_the_codecs():
    rng = np.random.default_rng(1)
    base = rng.normal(size=5000).astype(np.float32)
    mask = rng.random(5000) < 0.1
    values = np.where(mask, base + rng.normal(scale=1e-2, size=5000), base).astype(np.float32)
    table = wk.encoded_sizes(wk.encode_all(values, mask, base=base), num_params=5000).set_index("encoder")
    for name in UPDATE_ENCODERS:
        expected = encode_update(values, mask, encoder=name, base=base)
        assert table.loc[name, "compressed_bytes"] == expected.compressed_bytes
        assert table.loc[name, "num_sent"] == mask.sum()
    assert table.loc["original", "mask_bytes"] == 625 and table.loc["original", "value_bytes"] == 2 * mask.sum()
    assert table.loc["full model, float32", "compressed_bytes"] == 20000
    assert table.loc["full model, float16", "compressed_bytes"] == 10000
    assert table.loc["full model, float32", "ratio_to_float32"] == 1.0


# -- 3 and 6. one update --------------------------------------------------------------------------
def test_pooled_miou_and_table_known_answer():
    # classes 0 and 2: class 0 TP 2, FN 1 (predicted 2), FP 0 -> 2/3; class 2 TP 1, FP 1 -> 1/2
    truth = np.array([[[0, 0], [0, 2]]], np.uint8)
    pred = np.array([[[0, 0], [2, 2]]], np.uint8)
    assert wk.pooled_miou(truth, pred, class_ids=(0, 2)) == pytest.approx((2 / 3 + 1 / 2) / 2)
    table = wk.miou_table({"span": 0.25}, {"span": 0.5})
    assert table.loc["span"].tolist() == pytest.approx([25.0, 50.0, 25.0])


def test_one_update_is_the_engines_first_update(tiny_student, students, tiny_video):
    """Same buffer, seed and base: the walk's update, sizes and mIoU are the engine's."""
    config = tiny_config(tiny_student)
    walk, upcoming = walk_of(config, tiny_video, students)
    ams = simulate(config, video=tiny_video, teacher=TinyOracle(), students=students)
    none = simulate(replace(config, scheme="none"), video=tiny_video, teacher=TinyOracle(), students=students)
    row = ams.updates.iloc[0]
    sizes = walk.sizes.set_index("encoder")["compressed_bytes"]
    for name in UPDATE_ENCODERS:
        assert sizes[name] == row[f"bytes_{name}"]
    assert walk.num_selected == row["num_sent"] == selection_count(walk.num_params, 0.1)
    assert walk.losses.tolist() == pytest.approx([row["loss_first"], *walk.losses[1:-1], row["loss_last"]])
    after = ams.frames["t_s"].to_numpy() >= 10.0
    assert (ams.frames.loc[after, "model_version"] == 1).all() and len(upcoming) == after.sum() == 10
    next_span = walk.miou.index[1]
    assert walk.miou.loc[next_span, "after_%"] == pytest.approx(100 * metrics.miou_pooled(ams.counts()[after]))
    assert walk.miou.loc[next_span, "before_%"] == pytest.approx(100 * metrics.miou_pooled(none.counts()[after]))


def test_one_update_parts(tiny_student, students, tiny_video):
    config = tiny_config(tiny_student, fraction=0.2, iterations=20, horizon_s=10.0, update_interval_s=4.0)
    before = flat_weights(students.predictor.model)
    walk, upcoming = walk_of(config, tiny_video, students, t_s=30.0)  # on the dark half: a drift
    k = selection_count(walk.num_params, 0.2)
    assert walk.mask.dtype == bool and walk.mask.sum() == k and len(walk.losses) == 20
    # only the selected scalars moved; the edge holds the decoded original encoding (float16)
    assert np.array_equal(walk.values[~walk.mask], walk.base[~walk.mask])
    np.testing.assert_array_equal(walk.edge_weights[walk.mask], walk.values[walk.mask].astype(np.float16))
    sums = walk.selection.groupby("strategy", sort=False)["num_selected"].sum()
    assert sums.index.tolist() == ["gradient_guided", *wk.COMPARED] and (sums == k).all()
    assert walk.before_next.shape == walk.after_next.shape == (len(upcoming), 32, 64)
    assert walk.miou.index.tolist() == ["buffer (last 10 s)", "next 4 s"]
    gain = walk.miou.loc["next 4 s", "gain_points"]
    assert gain > 10, f"an update trained on the drift should help the next frames; gained {gain:.1f} points"
    assert np.array_equal(flat_weights(students.predictor.model), before)  # predictions left it as it was


def test_one_update_decodes_the_configured_encoder(tiny_student, students, tiny_video):
    config = tiny_config(tiny_student)
    config = replace(config, link=replace(config.link, update_encoder="sparse_q8"))
    walk, _ = walk_of(config, tiny_video, students)
    sent = encode_update(walk.values, walk.mask, encoder="sparse_q8", base=walk.base)
    np.testing.assert_array_equal(walk.edge_weights, decode_update(sent, walk.base))
    assert walk.encoder == "sparse_q8"


def test_one_update_errors(tiny_student, students, tiny_video):
    config = tiny_config(tiny_student)
    buffer = wk.buffer_at(tiny_video, TinyOracle(), t_s=10.0, horizon_s=20.0, rate_fps=1.0)
    small = replace(buffer, frames=buffer.frames[:, :16, :32])
    with pytest.raises(ValueError, match="the student takes"):
        wk.one_update(students, small, buffer, config=config, t_s=10.0, class_ids=tiny_video.class_ids)
    with pytest.raises(ValueError, match="parameters"):
        wk.one_update(students, buffer, buffer, config=config, t_s=10.0, class_ids=tiny_video.class_ids,
                      base=np.zeros(10, np.float32))
    empty = wk.LabelledFrames(*(a[:0] for a in (buffer.indices, buffer.times_s, buffer.frames, buffer.labels)))
    with pytest.raises(ValueError, match="empty"):
        wk.one_update(students, empty, buffer, config=config, t_s=10.0, class_ids=tiny_video.class_ids)


def test_figures_and_pictures(tiny_student, students, tiny_video):
    from amslib.core.labels import CITYSCAPES19

    walk, upcoming = walk_of(tiny_config(tiny_student), tiny_video, students)
    samples = wk.labelled_frames(tiny_video, TinyOracle(), wk.sampled_frames(0.0, 6.0, rate_fps=1.0, fps=2.0))
    fig = wk.sampling_figure(samples, start_s=0.0, stop_s=6.0, fps=2.0, rate_fps=1.0, max_thumbnails=4)
    assert len(fig.data[0].x) == 12 and len(fig.data[1].x) == 6 and len(fig.layout.images) == 4
    assert len(wk.loss_figure(walk.losses).data[0].y) == 3
    assert len(wk.selection_figure(walk.selection).data) == 4
    assert list(wk.sizes_figure(walk.sizes).data[0].x) == walk.sizes["encoder"].tolist()
    picture = wk.before_after_strip(walk, upcoming, label_set=CITYSCAPES19, count=3)
    assert picture.size[0] > 3 * 64 and picture.size[1] > 4 * 32  # 3 columns; frame, teacher, before, after
    assert wk.samples_strip(samples, label_set=CITYSCAPES19, count=2).size[1] > 2 * 32
    assert wk.legend_image(CITYSCAPES19, ("road", "sky")).size == (220, 22)


def test_adam_first_step_formula_known_values():
    change = wk.adam_first_step(np.array([0.0, 1e-2, -1e-2, 1e-7 / np.sqrt(1e-3)]), lr=1e-3)
    np.testing.assert_allclose(change, [0.0, 1e-3 * 1e-2 / (1e-2 + 1e-7 / np.sqrt(1e-3)), 1e-3 * 1e-2 / (1e-2 + 1e-7 / np.sqrt(1e-3)), 0.5e-3])


def test_first_step_spread_is_the_formula(students, tiny_video):
    """The measured first Adam step is lr * |g| / (|g| + eps'), for every scalar: why ranking
    by it ties every scalar whose gradient is well above eps'."""
    buffer = wk.buffer_at(tiny_video, TinyOracle(), t_s=10.0, horizon_s=20.0, rate_fps=1.0)
    spread = wk.first_step_spread(students, buffer, base=students.pretrained, lr=1e-3, batch_size=2, seed=0)
    expected = wk.adam_first_step(spread["gradient"], lr=1e-3)
    np.testing.assert_allclose(spread["change"], expected, atol=2e-6)  # float32 weights near 1
    near = np.abs(expected - 1e-3) <= 1e-5
    assert spread["share_near_lr"] == pytest.approx(near.mean(), abs=0.01)
    assert spread["gradient_p90"] > 3 * spread["gradient_p10"]  # unlike gradients, alike moves
    np.testing.assert_array_equal(flat_weights(students.trainer.model), students.pretrained)  # restored


def test_persisted_moments_spread_the_first_step(students, tiny_video):
    """With Adam's moments kept from an earlier update, the first step is no longer ~lr for
    nearly every scalar: fewer move by lr, and |change| spreads out."""
    teacher = TinyOracle()
    buffer = wk.buffer_at(tiny_video, teacher, t_s=15.0, horizon_s=20.0, rate_fps=1.0)
    earlier = wk.buffer_at(tiny_video, teacher, t_s=10.0, horizon_s=20.0, rate_fps=1.0)
    options = dict(base=students.pretrained, lr=1e-3, batch_size=2, seed=0, earlier=earlier, earlier_steps=5)
    fresh = wk.first_step_spread(students, buffer, optimizer_state="reset", **options)
    kept = wk.first_step_spread(students, buffer, optimizer_state="persist", **options)
    assert kept["share_near_lr"] < fresh["share_near_lr"] / 2
    assert kept["tied_at_threshold"] < fresh["tied_at_threshold"]  # the top-10% ranking has fewer ties
    assert not np.allclose(kept["change"], fresh["change"])
    with pytest.raises(ValueError, match="needs `earlier`"):
        wk.first_step_spread(students, buffer, base=students.pretrained, lr=1e-3, batch_size=2, seed=0,
                             optimizer_state="persist")
