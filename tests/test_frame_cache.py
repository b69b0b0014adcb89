"""CachedVideo: decoded frames kept on disk for repeated runs, read back without decoding."""
import numpy as np
import pytest

from amslib.core.labels import CITYSCAPES19
from amslib.data.video import CachedVideo, FileVideo, Video


def write_mp4(path, frames, fps):
    import imageio_ffmpeg
    writer = imageio_ffmpeg.write_frames(str(path), frames.shape[2:0:-1], fps=fps, macro_block_size=1)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


def test_frames_are_stored_on_the_first_pass_and_read_back(tmp_path):
    frames = np.zeros((20, 32, 64, 3), np.uint8)
    for i in range(20):
        frames[i, :, : 3 * i] = 200
    write_mp4(tmp_path / "v.mp4", frames, 10)
    video = FileVideo(tmp_path / "v.mp4", height=16, fps=5.0, classes=("road",), label_set=CITYSCAPES19)
    cached = CachedVideo(video, tmp_path / "frames")
    first = np.concatenate([f for _, f in cached.chunks(3)])
    assert cached.complete and first.shape == (10, 16, 32, 3)
    np.testing.assert_array_equal(first, np.concatenate([f for _, f in video.chunks(4)]))

    again = CachedVideo(video, tmp_path / "frames")
    again.video = None  # reading back must not touch the decoder
    np.testing.assert_array_equal(again.frames(2, 7), first[2:7])
    assert again.native_index(3) == 3 and again.key == video.key
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        f"{cached.path.stem}.done", cached.path.name]


class ShortVideo(Video):
    """Promises 10 frames, has 7 (a container whose header over-promises)."""

    def __init__(self):
        super().__init__(key="short", fps=1.0, num_frames=10, height=4, width=8, classes=("road",),
                         label_set=CITYSCAPES19)

    def frames(self, start, stop):
        stop = min(stop, 7)
        return np.stack([np.full((4, 8, 3), i, np.uint8) for i in range(start, stop)]) if stop > start \
            else np.zeros((0, 4, 8, 3), np.uint8)


def test_a_video_that_ends_early_is_cached_with_its_real_length(tmp_path):
    cached = CachedVideo(ShortVideo(), tmp_path)
    assert sum(len(f) for _, f in cached.chunks(4)) == 7 and cached.complete
    back = CachedVideo(ShortVideo(), tmp_path)
    assert len(back.frames(0, 10)) == 7 and back.frames(6, 7)[0, 0, 0, 0] == 6
    assert len(back.frames(8, 10)) == 0


def test_an_unfinished_pass_is_not_used(tmp_path):
    cached = CachedVideo(ShortVideo(), tmp_path)
    cached.frames(0, 3)
    assert not cached.complete
    with pytest.raises(AttributeError):
        fresh = CachedVideo(ShortVideo(), tmp_path)
        fresh.video = None
        fresh.frames(0, 2)  # not complete: it must decode, and there is no decoder
