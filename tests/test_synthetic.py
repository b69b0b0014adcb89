"""Tests of the built-in video `synthetic:street` (amslib.data.synthetic)."""
from __future__ import annotations

import numpy as np
import pytest

from amslib.core.labels import CITYSCAPES19
from amslib.data.synthetic import CLASSES, StreetConfig, SyntheticStreet, source_samples

IDS = dict(zip(CLASSES, CITYSCAPES19.ids(CLASSES)))
HEIGHT = 64          # small frames keep the suite fast; geometry scales with the height


@pytest.fixture(scope="module")
def video() -> SyntheticStreet:
    return SyntheticStreet(StreetConfig(seed=0, height=HEIGHT))


def _segment_frames(video: SyntheticStreet, name: str, n: int = 12) -> list[int]:
    """n frame indices spread over the middle of segment `name` (away from the cross-fades)."""
    starts = [s for s, _ in video.SEGMENTS] + [video.num_frames / video.fps]
    k = [seg for _, seg in video.SEGMENTS].index(name)
    lo, hi = starts[k], starts[k + 1]
    times = np.linspace(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo), n)
    return [int(t * video.fps) for t in times]


def _class_share(labels: np.ndarray, name: str) -> float:
    return float(np.mean(labels == IDS[name]))


# -- shapes, dtypes, label ids -------------------------------------------------------------

@pytest.mark.parametrize("height", [32, 64, 128])
def test_render_shapes_and_dtypes(height):
    video = SyntheticStreet(StreetConfig(height=height, duration_s=20.0))
    frame, label = video.render(3)
    assert (video.height, video.width) == (height, 2 * height)
    assert frame.shape == (height, 2 * height, 3) and frame.dtype == np.uint8
    assert label.shape == (height, 2 * height) and label.dtype == np.uint8


def test_num_frames_is_duration_times_fps():
    assert SyntheticStreet(StreetConfig(duration_s=12.0, fps=7.5)).num_frames == 90
    assert SyntheticStreet().num_frames == 4800


def test_labels_hold_only_the_video_classes(video):
    labels = video.labels(0, 1)
    for i in range(0, video.num_frames, 97):
        labels = np.concatenate([labels, video.render(i)[1][None]])
    assert set(np.unique(labels)) <= set(IDS.values())


def test_every_class_appears_over_the_video(video):
    seen = set()
    for i in range(0, video.num_frames, 120):
        seen |= set(np.unique(video.render(i)[1]).tolist())
    assert seen == set(IDS.values())


def test_frames_and_labels_match_render(video):
    frames, labels = video.frames(100, 104), video.labels(100, 104)
    assert frames.shape == (4, HEIGHT, 2 * HEIGHT, 3) and labels.shape == (4, HEIGHT, 2 * HEIGHT)
    for j, i in enumerate(range(100, 104)):
        frame, label = video.render(i)
        np.testing.assert_array_equal(frames[j], frame)
        np.testing.assert_array_equal(labels[j], label)
    assert video.frames(7, 7).shape[0] == 0


# -- determinism ---------------------------------------------------------------------------

def test_render_is_deterministic_across_instances_and_call_orders(video):
    other = SyntheticStreet(StreetConfig(seed=0, height=HEIGHT))
    order = [4000, 17, 2500, 3333, 0]
    first = {i: video.render(i) for i in order}
    second = {i: other.render(i) for i in reversed(order)}
    for i in order:
        np.testing.assert_array_equal(first[i][0], second[i][0])
        np.testing.assert_array_equal(first[i][1], second[i][1])


def test_render_returns_fresh_arrays_and_redraws_identically(video):
    frame, label = video.render(250)
    frame[:] = 0
    label[:] = 0
    again_frame, again_label = video.render(250)               # served from the recent frames
    assert again_frame.any() and again_label.any()
    drawn_frame, drawn_label = video._draw(250)                # drawn from scratch
    np.testing.assert_array_equal(again_frame, drawn_frame)
    np.testing.assert_array_equal(again_label, drawn_label)


def test_seed_changes_the_world(video):
    other = SyntheticStreet(StreetConfig(seed=1, height=HEIGHT))
    assert not np.array_equal(video.render(600)[1], other.render(600)[1])


# -- what the video shows --------------------------------------------------------------------

def test_scene_is_laid_out_like_a_street(video):
    """Road under the camera, no sky in the bottom quarter, the top row is sky or facades."""
    for i in range(0, video.num_frames, 200):
        label = video.render(i)[1]
        h, w = label.shape
        assert label[-1, w // 2] == IDS["road"]
        assert not np.any(label[3 * h // 4:] == IDS["sky"])
        top = np.isin(label[0], [IDS["sky"], IDS["building"], IDS["vegetation"]])
        assert top.mean() > 0.9


def test_consecutive_frames_change_a_little(video):
    """Within a segment the camera moves: frames differ, but far less than across the video."""
    a, b = (video.render(i)[0].astype(float) for i in (300, 301))
    near = np.abs(a - b).mean()
    far = np.abs(a - video.render(3300)[0].astype(float)).mean()
    assert 0 < near < 0.5 * far


def test_segments_have_five_classes_in_meaningful_amounts(video):
    for _, name in video.SEGMENTS:
        labels = np.stack([video.render(i)[1] for i in _segment_frames(video, name)])
        present = [c for c in CLASSES if _class_share(labels, c) > 0.003]
        assert len(present) >= 5, (name, present)


def test_class_mix_differs_between_segments(video):
    share = {name: np.stack([video.render(i)[1] for i in _segment_frames(video, name)])
             for name in ("downtown", "park", "highway")}
    assert _class_share(share["park"], "vegetation") > 3 * _class_share(share["downtown"], "vegetation")
    assert _class_share(share["downtown"], "building") > 4 * _class_share(share["park"], "building")
    assert _class_share(share["highway"], "sky") > 1.5 * _class_share(share["downtown"], "sky")
    assert _class_share(share["park"], "car") < 0.25 * _class_share(share["downtown"], "car")


def test_night_is_much_darker_than_day(video):
    day = np.mean([video.render(i)[0].mean() for i in _segment_frames(video, "residential", 6)])
    night = np.mean([video.render(i)[0].mean() for i in _segment_frames(video, "highway", 6)])
    assert night < 0.5 * day


def test_condition_describes_the_drift(video):
    assert [name for _, name in video.SEGMENTS] == ["residential", "downtown", "park", "highway", "old town"]
    starts = [s for s, _ in video.SEGMENTS]
    assert starts[0] == 0.0 and starts == sorted(starts) and starts[-1] < 480.0
    start = video.condition(0.0)
    assert start["segment"] == "residential" and start["light"] == pytest.approx(1.0)
    assert start["wet"] == 0.0 and start["lamps"] == 0.0
    night = video.condition(350.0)
    assert night["segment"] == "highway" and night["light"] < 0.3 and night["lamps"] == pytest.approx(1.0)
    assert video.condition(440.0)["wet"] > 0.5
    for (t, name) in video.SEGMENTS:
        assert video.condition(t + 1.0)["segment"] == name


def test_timeline_scales_with_the_duration():
    short = SyntheticStreet(StreetConfig(duration_s=60.0, height=32))
    assert [s for s, _ in short.SEGMENTS] == pytest.approx([0.0, 15.0, 26.25, 37.5, 48.75])


# -- source domain ---------------------------------------------------------------------------

def test_source_samples_are_deterministic_and_seeded():
    frames, labels = source_samples(3, height=HEIGHT, seed=0)
    assert frames.shape == (3, HEIGHT, 2 * HEIGHT, 3) and frames.dtype == np.uint8
    assert labels.shape == (3, HEIGHT, 2 * HEIGHT) and labels.dtype == np.uint8
    again = source_samples(3, height=HEIGHT, seed=0)
    np.testing.assert_array_equal(frames, again[0])
    np.testing.assert_array_equal(labels, again[1])
    other = source_samples(3, height=HEIGHT, seed=1)
    assert not np.array_equal(labels, other[1])
    assert set(np.unique(labels)) <= set(IDS.values())
    assert source_samples(0, height=HEIGHT)[0].shape == (0, HEIGHT, 2 * HEIGHT, 3)


def test_source_samples_look_like_the_first_segment(video):
    frames, labels = source_samples(6, height=HEIGHT, seed=2)
    first = _segment_frames(video, "residential", 6)
    day = np.mean([video.render(i)[0].mean() for i in first])
    assert abs(frames.mean() - day) < 0.15 * day          # daylight, not dusk or night
    assert _class_share(labels, "building") > 0.05 and _class_share(labels, "vegetation") > 0.02


# -- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(height=31), "even integer >= 32"),
    (dict(height=65), "even integer >= 32"),
    (dict(height=16), "height=128"),
    (dict(fps=0.0), "fps must be > 0"),
    (dict(fps=-5.0), "fps must be > 0"),
    (dict(duration_s=0.0), "duration_s must be > 0"),
    (dict(seed=-1), "seed must be a non-negative integer"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StreetConfig(**kwargs)


@pytest.mark.parametrize("index", [-1, 4800, 10**6])
def test_out_of_range_index_raises(video, index):
    with pytest.raises(IndexError, match="out of range.*4800 frames"):
        video.render(index)


def test_out_of_range_frames_raise(video):
    with pytest.raises(IndexError, match="out of range"):
        video.frames(4790, 4801)
    with pytest.raises(IndexError, match="out of range"):
        video.labels(5, 3)


def test_bad_timeline_raises():
    with pytest.raises(ValueError, match="unknown neighbourhood"):
        SyntheticStreet(StreetConfig(height=32), timeline=((0.0, "suburb"),))
    with pytest.raises(ValueError, match="must begin at 0.0"):
        SyntheticStreet(StreetConfig(height=32), timeline=((0.1, "park"),))
