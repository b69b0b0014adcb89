"""Shared fixtures: a tiny labelled video and a tiny student, so engine tests run in seconds."""
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from amslib.core.config import AdaptConfig, EvalConfig, RunConfig  # noqa: E402
from amslib.core.labels import CITYSCAPES19  # noqa: E402
from amslib.data.video import Video  # noqa: E402
from amslib.models.teachers import Teacher  # noqa: E402

TINY_CLASSES = ("road", "building", "sky")
# where `make test` fetched the rvm teacher's weights (the user's data root, before the suite's own)
USER_RVM = Path(os.environ.get("AMS_DATA_DIR", Path.home() / ".cache" / "amslib")) / "models" / "rvm"


@pytest.fixture(scope="session", autouse=True)
def _own_data_dir(tmp_path_factory):
    """The suite's $AMS_DATA_DIR is its own: it never writes into (or reads from) the user's
    cache of videos, labels and measured server times. Only the rvm teacher's fetched weights
    are shared (linked, read-only use), so no test fetches them from the registry."""
    root = tmp_path_factory.mktemp("ams_data")
    if USER_RVM.is_dir():
        (root / "models").mkdir()
        (root / "models" / "rvm").symlink_to(USER_RVM.resolve())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMS_DATA_DIR", str(root))
        yield


class TinyVideo(Video):
    """Sky over building over road, whose colours darken halfway through (a drift)."""

    def __init__(self, *, seconds: float = 40.0, fps: float = 2.0, height: int = 32) -> None:
        super().__init__(key=f"tiny-{seconds}-{fps}-{height}", fps=fps, num_frames=int(seconds * fps),
                         height=height, width=2 * height, classes=TINY_CLASSES, label_set=CITYSCAPES19)
        self.frame_reads = 0

    def labels(self, start: int, stop: int) -> np.ndarray:
        h, w = self.height, self.width
        out = np.empty((stop - start, h, w), np.uint8)
        for k, i in enumerate(range(start, stop)):
            horizon = h // 3 + (i % 4)
            out[k, :horizon] = CITYSCAPES19.names.index("sky")
            out[k, horizon:2 * h // 3] = CITYSCAPES19.names.index("building")
            out[k, 2 * h // 3:] = CITYSCAPES19.names.index("road")
        return out

    def frames(self, start: int, stop: int) -> np.ndarray:
        self.frame_reads += stop - start
        labels = self.labels(start, stop)
        colors = np.zeros((256, 3), np.uint8)
        out = np.empty((*labels.shape, 3), np.uint8)
        for k, i in enumerate(range(start, stop)):
            dark = i >= self.num_frames // 2
            colors[10], colors[2], colors[0] = ((20, 20, 60), (60, 40, 20), (30, 30, 30)) if dark else \
                ((120, 170, 240), (180, 90, 60), (110, 110, 110))
            out[k] = colors[labels[k]]
        return out


class TinyOracle(Teacher):
    """The tiny video's exact labels; `delay_s` slows each call, `fail_at` raises from a frame on."""

    name = "tiny-oracle"

    def __init__(self, *, delay_s: float = 0.0, fail_at: int | None = None) -> None:
        self.delay_s, self.fail_at = delay_s, fail_at

    def labels(self, video, start, stop, *, frames=None):
        if self.fail_at is not None and stop > self.fail_at:
            raise RuntimeError("teacher crashed")
        time.sleep(self.delay_s)
        return video.labels(start, stop)


def tiny_config(student, *, scheme: str = "ams", max_seconds: float | None = None, **adapt) -> RunConfig:
    """A run of the tiny video at 2 fps with `tiny_student`: updates every 5 s from 10 s on the
    last 20 s of 1-fps samples, 3 steps of batch 2, fraction 0.1 (`adapt` overrides these)."""
    adapt = {"update_interval_s": 5.0, "first_update_s": 10.0, "horizon_s": 20.0, "iterations": 3,
             "batch_size": 2, "sample_rate_fps": 1.0, "fraction": 0.1, **adapt}
    return RunConfig(video="tiny", scheme=scheme, height=32, fps=2.0, max_seconds=max_seconds,
                     student=str(student), width_multiplier=0.35, head_channels=16, edge_batch=8,
                     adapt=AdaptConfig(**adapt), eval=EvalConfig(warmup_s=0.0, window_s=4.0))


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """Path of a small student (32x64 input, width 0.35) pretrained on the tiny video's
    first, bright half: the dark half is a drift it has not seen."""
    import keras

    from amslib.models.pretrain import pretrain
    from amslib.models.student import StudentSpec, build_student, save_student

    keras.utils.set_random_seed(0)  # the same student whichever test asks first
    video = TinyVideo()
    half = video.num_frames // 2
    spec = StudentSpec(height=32, width=64, width_multiplier=0.35, head_channels=16)
    model = build_student(spec)
    pretrain(model, video.frames(0, half), video.labels(0, half), steps=150, batch_size=8, lr=3e-3)
    return save_student(model, spec, tmp_path_factory.mktemp("student") / "tiny.weights.h5")


@pytest.fixture
def tiny_video():
    return TinyVideo()
