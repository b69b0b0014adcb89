"""Caches never serve damaged data: the label cache records each label's checksum at write
time and checks it on read; `python -m amslib cache` lists, verifies and clears the data root."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TinyOracle, TinyVideo
from PIL import Image

from amslib.analysis import cache
from amslib.cli import main
from amslib.models.teachers import (
    DONE_FILE,
    LABEL_PATTERN,
    CachedTeacher,
    label_cache_dir,
    label_video,
    read_checked_label,
    write_label_png,
)


class Counting(TinyOracle):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def labels(self, video, start, stop, *, frames=None):
        self.calls.append((start, stop))
        return super().labels(video, start, stop, frames=frames)


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:40])
    elif how == "flipped":  # one byte inside the image data
        at = data.index(b"IDAT") + 8
        path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
    elif how == "missing":
        path.unlink()
    elif how == "no checksum":  # a valid PNG written without one (an older cache, or by hand)
        Image.open(path).copy().save(path, format="PNG")


def test_a_cached_label_is_checked_against_the_checksum_written_with_it(tmp_path):
    label = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8)
    path = tmp_path / "gt_000000.png"
    write_label_png(label, path)
    np.testing.assert_array_equal(read_checked_label(path), label)
    for how in ("truncated", "flipped", "no checksum"):
        write_label_png(label, path)
        _damage(path, how)
        assert read_checked_label(path) is None, how
    assert read_checked_label(tmp_path / "absent.png") is None


@pytest.mark.parametrize("how", ["truncated", "flipped", "missing", "no checksum", "done marker missing"])
def test_labelling_again_after_damage_recomputes_the_damaged_label(tmp_path, caplog, how):
    video, teacher = TinyVideo(seconds=8.0), Counting()
    first = label_video(video, teacher, tmp_path / "gt", cache_root=tmp_path / "cache", chunk=4)
    assert first.frames == 16 and teacher.calls == [(0, 4), (4, 8), (8, 12), (12, 16)]
    folder = label_cache_dir(tmp_path / "cache", video, teacher)
    if how == "done marker missing":
        (folder / DONE_FILE).unlink()
    else:
        _damage(folder / (LABEL_PATTERN % 5), how)
    teacher.calls.clear()
    with caplog.at_level("WARNING", logger="amslib.cache"):
        again = label_video(video, teacher, tmp_path / "gt2", cache_root=tmp_path / "cache", chunk=4)
    if how == "done marker missing":  # every label still checks: nothing is recomputed
        assert teacher.calls == [] and not caplog.records
    else:
        assert teacher.calls == [(4, 8)] and not again.cached  # only the damaged label's chunk
        assert len(caplog.records) == 1 and "1 label(s)" in caplog.records[0].getMessage()
    for i in range(16):  # the published labels are the teacher's, the damaged one included
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "gt2" / (LABEL_PATTERN % i))),
                                      video.labels(i, i + 1)[0])
    assert label_video(video, teacher, tmp_path / "gt3", cache_root=tmp_path / "cache", chunk=4).cached


def test_a_run_reading_the_cache_recomputes_a_damaged_label(tmp_path, caplog):
    video, inner = TinyVideo(seconds=4.0), Counting()
    teacher = CachedTeacher(inner, tmp_path / "cache")
    np.testing.assert_array_equal(teacher.labels(video, 0, 8), video.labels(0, 8))
    _damage(label_cache_dir(tmp_path / "cache", video, inner) / (LABEL_PATTERN % 3), "flipped")
    inner.calls.clear()
    with caplog.at_level("WARNING", logger="amslib.cache"):
        np.testing.assert_array_equal(teacher.labels(video, 0, 8), video.labels(0, 8))
    assert inner.calls == [(0, 8)] and len(caplog.records) == 1


def test_the_cache_command_lists_verifies_and_clears(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path))
    video = TinyVideo(seconds=4.0)
    label_video(video, TinyOracle(), tmp_path / "out", cache_root=tmp_path / "labels", chunk=4)
    (tmp_path / "server_times.json").write_text(json.dumps({"m|h128": {"step_base_s": 0.1, "step_frame_s": 0.01,
                                                                        "teacher_frame_s": 0.02}}))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(b"x" * 2048)
    assert main(["cache"]) == 0
    listing = capsys.readouterr().out
    assert "labels" in listing and "server_times" in listing and "clip.mp4" in listing and "2.0 KiB" in listing
    assert main(["cache", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "ok: 8 labels" in out and "ok: 1 measurement(s)" in out and "not checked" in out
    folder = label_cache_dir(tmp_path / "labels", video, TinyOracle())
    _damage(folder / (LABEL_PATTERN % 2), "truncated")
    (tmp_path / "server_times.json").write_text("{not json")
    assert main(["cache", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "damaged: 1 of 8 labels fail their checksum (first: gt_000002.png)" in out
    assert "cache --clear server_times" in out and "2 damaged of 3 entries" in out
    assert main(["cache", "--clear", "server_times"]) == 0 and not (tmp_path / "server_times.json").exists()
    assert main(["cache", "--clear", "labels"]) == 0 and not (tmp_path / "labels").exists()
    assert main(["cache", "--clear", "nonsense"]) == 2
    assert "unknown cache kind 'nonsense'" in capsys.readouterr().err
    assert [e.kind for e in cache.entries(tmp_path)] == ["videos"]
