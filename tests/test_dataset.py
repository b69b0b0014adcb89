"""Dataset checks against hand-computed answers: the manifest's local status, class shares,
consecutive-label mIoU and its dips."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import TinyOracle

from amslib.analysis.dataset_checks import (
    NO_LABEL,
    class_frequencies,
    manifest_status,
    open_with_teacher,
    scene_change_timeline,
    scene_changes,
    video_facts,
)
from amslib.core.labels import CITYSCAPES19
from amslib.core.metrics import consecutive_miou
from amslib.data.manifest import load_manifest
from amslib.data.video import VideoError, sample_indices
from amslib.models.teachers import read_labelled

ROAD, BUILDING, SKY = CITYSCAPES19.ids(("road", "building", "sky"))




def test_manifest_status_finds_downloaded_files(tmp_path):
    (tmp_path / "outdoor_la.mp4").write_bytes(b"\0" * 2_000_000)
    (tmp_path / "outdoor_la.json").write_text(json.dumps({"frames": 4570, "fps": 5.0}))
    (tmp_path / "outdoor_nyc.mp4.part").write_bytes(b"\0" * 10)  # unfinished: not downloaded
    status = manifest_status(load_manifest(), tmp_path).set_index("video_id")
    assert len(status) == len(load_manifest())
    la = status.loc["outdoor_la"]
    assert la["downloaded"] and la["path"] == str(tmp_path / "outdoor_la.mp4")
    assert la["size_mb"] == 2.0 and la["frames"] == 4570 and la["fps"] == 5.0 and la["clip_s"] == 914
    assert not status.loc["outdoor_nyc", "downloaded"] and status["downloaded"].sum() == 1
    assert np.isnan(status.loc["lvs", "size_mb"]) and np.isnan(status.loc["lvs", "clip_s"])


def test_manifest_status_works_without_the_folder(tmp_path):
    status = manifest_status(load_manifest(), tmp_path / "missing")
    assert not status["downloaded"].any() and (status["path"] == "").all()


def test_class_frequencies_hand_computed():
    labels = np.array([[[ROAD, ROAD], [BUILDING, 255]], [[ROAD, ROAD], [SKY, 200]]], np.uint8)
    shares = class_frequencies(labels, CITYSCAPES19)
    assert shares.to_dict() == {"road": 0.5, NO_LABEL: 0.25, "building": 0.125, "sky": 0.125}
    assert list(shares.index) == ["road", NO_LABEL, "building", "sky"]  # largest first, ties by id
    with pytest.raises(ValueError, match="no label pixels"):
        class_frequencies(np.zeros((0, 2, 2), np.uint8), CITYSCAPES19)


def test_consecutive_miou_of_the_tiny_video(tiny_video):
    """TinyVideo's horizon is at row 10 + i % 4 of 32 (sky above, building to row 21, road).
    Frame 0 -> 1: sky 10/11, building 10/11, road 1; frame 3 -> 4: sky 10/13, building 8/11."""
    labels = tiny_video.labels(0, 5)
    miou = consecutive_miou(labels, class_ids=tiny_video.class_ids)
    assert miou[0] == pytest.approx((10 / 11 + 10 / 11 + 1) / 3)
    assert miou[3] == pytest.approx((10 / 13 + 8 / 11 + 1) / 3)
    assert consecutive_miou(labels[:1], class_ids=tiny_video.class_ids).shape == (0,)


def test_scene_change_timeline_steps_and_values(tiny_video):
    timeline = scene_change_timeline(tiny_video, TinyOracle(), step_s=2.0, max_seconds=10.0)
    # every 4 frames (2 s at 2 fps): the horizon is back where it was, the labels are equal
    assert timeline["frame"].tolist() == [4, 8, 12, 16] and timeline["t_s"].tolist() == [2.0, 4.0, 6.0, 8.0]
    assert np.allclose(timeline["miou_pct"], 100.0)
    half = scene_change_timeline(tiny_video, TinyOracle(), step_s=0.5, max_seconds=3.0)
    assert half["miou_pct"].iloc[0] == pytest.approx(100 * (10 / 11 + 10 / 11 + 1) / 3)
    with pytest.raises(ValueError, match="shorter than a frame"):
        scene_change_timeline(tiny_video, TinyOracle(), step_s=0.1)
    with pytest.raises(ValueError, match="fewer than two frames"):
        scene_change_timeline(tiny_video, TinyOracle(), step_s=5.0, max_seconds=4.0)


def test_scene_changes_are_drops_below_the_running_median():
    miou = [60, 61, 59, 30, 60, 62, 58, 50, 60]
    timeline = pd.DataFrame({"frame": range(9), "t_s": np.arange(9.0), "miou_pct": miou})
    dips = scene_changes(timeline, drop_pct=15.0, window=5)
    assert dips["frame"].tolist() == [3]
    assert dips["baseline_pct"].iloc[0] == 60 and dips["drop_pct"].iloc[0] == 30  # median of 61 59 30 60 62
    assert scene_changes(timeline, drop_pct=5.0, window=5)["frame"].tolist() == [3, 7]
    with pytest.raises(ValueError, match="drop_pct"):
        scene_changes(timeline, drop_pct=0.0)


def test_sample_indices_spread_and_limits(tiny_video):
    assert sample_indices(tiny_video, count=5).tolist() == [0, 20, 40, 59, 79]
    assert sample_indices(tiny_video, count=3, max_seconds=5.0).tolist() == [0, 4, 9]
    assert sample_indices(tiny_video, count=100, max_seconds=2.0).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="count"):
        sample_indices(tiny_video, count=0)
    with pytest.raises(ValueError, match="max_seconds"):
        sample_indices(tiny_video, count=3, max_seconds=0)


def test_read_labelled_returns_frames_and_labels(tiny_video):
    frames, labels = read_labelled(tiny_video, TinyOracle(), np.array([3, 50]))
    assert frames.shape == (2, 32, 64, 3) and labels.shape == (2, 32, 64)
    assert np.array_equal(frames[1], tiny_video.frames(50, 51)[0])
    assert np.array_equal(labels[0], tiny_video.labels(3, 4)[0])


def test_open_with_teacher_and_facts():
    video, teacher = open_with_teacher("synthetic:street", None, height=32, fps=5.0)
    facts = video_facts(video)
    assert (facts["duration_s"], facts["num_frames"], facts["width"], facts["height"]) == (480.0, 2400, 64, 32)
    assert facts["fps"] == 5.0 and "person" in facts["classes"] and teacher.name == "oracle"


def test_open_with_teacher_errors(tmp_path):
    with pytest.raises(VideoError, match="no exact labels; give a teacher"):
        open_with_teacher(str(tmp_path / "missing.mp4"), None, height=32, fps=5.0)
    with pytest.raises(VideoError, match="labels in voc21 but 'synthetic:street' is scored in cityscapes19"):
        open_with_teacher("synthetic:street", "tflite:selfie_landscape", height=32, fps=5.0)
