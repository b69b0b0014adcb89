"""Local video files, label folders, the label cache and gt_%06d.png import/export."""
import numpy as np
import pytest

from amslib.core.labels import CITYSCAPES19
from amslib.data.video import FileVideo, VideoError, open_video
from amslib.models.teachers import CachedTeacher, LabelFolderTeacher, OracleTeacher, Teacher, export_labels, label_cache_dir


def write_mp4(path, frames, fps):
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), frames.shape[2:0:-1], fps=fps, quality=9,
                                         macro_block_size=1)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


@pytest.fixture
def clip(tmp_path):
    """A 3 s, 10 fps, 64x128 clip: left half bright, right half dark, moving edge."""
    frames = np.zeros((30, 64, 128, 3), np.uint8)
    for i in range(30):
        frames[i, :, : 40 + i] = 220
    path = tmp_path / "clip.mp4"
    write_mp4(path, frames, 10)
    return path


def test_file_video_reads_and_resamples(clip):
    video = FileVideo(clip, height=32, fps=5.0, classes=("road",), label_set=CITYSCAPES19)
    assert video.num_frames == 15 and video.native_fps == pytest.approx(10)
    frames = np.concatenate([f for _, f in video.chunks(4)])
    assert frames.shape == (15, 32, 64, 3)
    # processed frame 3 is native frame 6, whose bright part ends at column (40 + 6) / 2 = 23
    row = frames[3, 16]
    assert row[:20].mean() > 180 and row[27:].mean() < 40
    np.testing.assert_array_equal(video.frames(3, 4)[0], frames[3])  # rewinding works


def test_scaling_a_clip_logs_nothing_but_other_warnings_pass(clip, caplog):
    # the reader scales 64x128 to 32x64 on purpose: imageio-ffmpeg's frame-size warning would
    # reach the notebook as a red line per clip (issue #24); other warnings of its logger pass
    import logging

    from amslib.data.video import _scaling_expected

    video = FileVideo(clip, height=32, fps=5.0, classes=("road",), label_set=CITYSCAPES19)
    assert video.frames(0, 2).shape == (2, 32, 64, 3)
    assert "frame size" not in caplog.text
    with _scaling_expected():
        logging.getLogger("imageio_ffmpeg").warning("something else went wrong")
    assert "something else went wrong" in caplog.text
    assert not logging.getLogger("imageio_ffmpeg").filters  # the filter lasts only the block


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        open_video(str(tmp_path / "nope.mp4"), height=32, fps=5)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VideoError, match="cannot read video"):
        open_video(str(bad), height=32, fps=5)


def test_unknown_synthetic_and_manifest_ids():
    with pytest.raises(VideoError, match="unknown synthetic video"):
        open_video("synthetic:moon", height=32, fps=5)
    with pytest.raises(VideoError, match="unknown video id 'no_such_video'"):
        open_video("no_such_video", height=32, fps=5)


def test_manifest_video_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path))
    with pytest.raises(VideoError, match="not downloaded"):
        open_video("outdoor_la", height=32, fps=5)


def test_label_folder_round_trip(clip, tmp_path):
    video = FileVideo(clip, height=32, fps=5.0, classes=("road", "sky"), label_set=CITYSCAPES19)

    class Half(Teacher):
        name = "half"

        def label(self, frames):
            return np.where(frames[..., 0] > 128, 0, 10).astype(np.uint8)  # road / sky

    assert export_labels(Half(), video, tmp_path / "gt") == 15
    names = sorted(p.name for p in (tmp_path / "gt").iterdir())
    assert names[:3] == ["gt_000000.png", "gt_000002.png", "gt_000004.png"]  # native indices
    folder = LabelFolderTeacher(tmp_path / "gt")
    np.testing.assert_array_equal(folder.labels(video, 0, 15), Half().label(video.frames(0, 15)))
    assert folder.present_classes(CITYSCAPES19.names) == ("road", "sky")


def test_label_folder_errors(tmp_path, clip):
    with pytest.raises(VideoError, match="label folder not found"):
        LabelFolderTeacher(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no gt_"):
        LabelFolderTeacher(tmp_path / "empty")
    (tmp_path / "some").mkdir()
    from amslib.models.teachers import write_label_png
    write_label_png(np.zeros((32, 64), np.uint8), tmp_path / "some" / "gt_000000.png")
    video = FileVideo(clip, height=32, fps=5.0, classes=("road",), label_set=CITYSCAPES19)
    with pytest.raises(VideoError, match="missing label .*gt_000002.png"):
        LabelFolderTeacher(tmp_path / "some").labels(video, 0, 2)


def test_cache_serves_second_call_without_teacher(clip, tmp_path):
    video = FileVideo(clip, height=32, fps=5.0, classes=("road",), label_set=CITYSCAPES19)

    class Counting(Teacher):
        name = "counting"
        calls = 0

        def label(self, frames):
            Counting.calls += 1
            return (frames[..., 1] // 100).astype(np.uint8)

    cached = CachedTeacher(Counting(), tmp_path / "cache")
    first = cached.labels(video, 0, 5)
    second = cached.labels(video, 0, 5)
    assert Counting.calls == 1
    np.testing.assert_array_equal(first, second)
    assert len(list(label_cache_dir(tmp_path / "cache", video, Counting()).glob("gt_*.png"))) == 5
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_oracle_needs_a_synthetic_video(clip):
    video = FileVideo(clip, height=32, fps=5.0, classes=("road",), label_set=CITYSCAPES19)
    with pytest.raises(VideoError, match="only knows synthetic"):
        OracleTeacher().labels(video, 0, 1)
