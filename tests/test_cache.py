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
from amslib.sim.server import entry_checksum
from amslib.models.teachers import (
    DONE_FILE,
    LABEL_PATTERN,
    CachedTeacher,
    label_cache_dir,
    label_video,
    read_checked_label,
    write_label_png,
)


def notices(caplog) -> list:
    """What the caches said (TensorFlow's own warnings may be captured beside them)."""
    return [r for r in caplog.records if r.name == "amslib.cache"]


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
        assert teacher.calls == [] and not notices(caplog)
    else:
        assert teacher.calls == [(4, 8)] and not again.cached  # only the damaged label's chunk
        assert len(notices(caplog)) == 1 and "1 label(s)" in notices(caplog)[0].getMessage()
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
    assert inner.calls == [(0, 8)] and len(notices(caplog)) == 1


def test_the_cache_command_lists_verifies_and_clears(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path))
    video = TinyVideo(seconds=4.0)
    label_video(video, TinyOracle(), tmp_path / "out", cache_root=tmp_path / "labels", chunk=4)
    times = {"step_base_s": 0.1, "step_frame_s": 0.01, "teacher_frame_s": 0.02}
    (tmp_path / "server_times.json").write_text(json.dumps({"m|h128": {**times, "sha256": entry_checksum("m|h128", times)}}))
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


# -- the frame cache -------------------------------------------------------------------------------
class PatternVideo(TinyVideo):
    """The tiny video, counting the frames it decodes."""

    def __init__(self):
        super().__init__(seconds=80.0, height=8)  # 160 frames: three chunks of 64
        self.reads: list[tuple[int, int]] = []

    def frames(self, start, stop):
        self.reads.append((start, stop))
        return super().frames(start, stop)


def _filled(root):
    from amslib.data.video import CachedVideo

    video = PatternVideo()
    cached = CachedVideo(video, root)
    truth = np.concatenate([f for _, f in cached.chunks(50)])
    assert cached.complete and len(truth) == 160
    return cached, truth


@pytest.mark.parametrize("how", ["flipped", "truncated", "missing", "done marker missing", "no checksums"])
def test_the_frame_cache_rewrites_or_refills_what_is_damaged(tmp_path, caplog, how):
    from amslib.data.video import CachedVideo

    cached, truth = _filled(tmp_path)
    data, done = cached.path, cached.path.with_suffix(".done")
    if how == "flipped":  # one byte of frame 70 (the second chunk)
        with open(data, "r+b") as f:
            f.seek(data.stat().st_size - 90 * 8 * 16 * 3)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif how == "truncated":
        data.write_bytes(data.read_bytes()[:1000])
    elif how == "missing":
        data.unlink()
    elif how == "done marker missing":
        done.unlink()
    else:  # a cache from before checksums: `.done` held only the count
        done.write_text("160")
    video = PatternVideo()
    again = CachedVideo(video, tmp_path)
    with caplog.at_level("WARNING", logger="amslib.cache"):
        got = np.concatenate([f for _, f in again.chunks(50)])
    np.testing.assert_array_equal(got, truth)  # never the damaged frames
    if how == "flipped":
        assert video.reads == [(64, 128)] and len(notices(caplog)) == 1  # the one chunk, decoded again
        assert "1 chunk(s)" in notices(caplog)[0].getMessage()
    else:
        assert sum(b - a for a, b in video.reads) == 160  # filled anew from the video
        assert len(notices(caplog)) == (0 if how == "missing" else 1)
    third = CachedVideo(PatternVideo(), tmp_path)
    third.video = None  # now sound: read back without the decoder
    np.testing.assert_array_equal(third.frames(0, 160), truth)


# -- the reference-run cache -----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncated", "flipped", "missing", "checksums missing"])
def test_a_saved_run_whose_files_changed_is_run_again(tiny_student, tmp_path, caplog, how):
    from conftest import tiny_config

    from amslib.analysis.runs import cached_run
    from amslib.sim.engine import Simulation

    config, students = tiny_config(tiny_student, scheme="none", max_seconds=6.0), None

    def run():
        nonlocal students
        sim = Simulation.create(config, video=TinyVideo(), teacher=TinyOracle(), students=students)
        students = sim.students
        return cached_run(sim, cache_dir=tmp_path)

    first, _ = run()
    folder = next(tmp_path.iterdir())
    target = folder / ("checksums.json" if how == "checksums missing" else "frames.csv")
    if how == "truncated":
        target.write_bytes(target.read_bytes()[:40])
    elif how == "flipped":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    with caplog.at_level("WARNING", logger="amslib.cache"):
        again, from_cache = run()
    assert not from_cache and len(notices(caplog)) == 1 and "run again" in notices(caplog)[0].getMessage()
    assert first.frames.equals(again.frames)  # what a sound cache would have given
    assert run()[1]  # saved again, sound: read back


def test_verify_finds_a_damaged_frame_chunk_and_a_changed_run_file(tmp_path):
    from amslib.core.files import write_checksums

    cached, _ = _filled(tmp_path / "frames")
    run = tmp_path / "runs" / "none-abc"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "frames.csv").write_text("frame,t_s\n0,0.0\n")
    write_checksums(run)
    found = {e.kind: e for e in cache.entries(tmp_path)}
    assert set(found) == {"frames", "runs"}
    assert cache.verify(found["frames"]).status == "ok: 160 frames"
    assert cache.verify(found["runs"]).status == "ok: every file matches its checksum"
    with open(cached.path, "r+b") as f:  # the last byte: frame 159, the third chunk
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    (run / "frames.csv").write_text("frame,t_s\n0,9.0\n")
    assert cache.verify(found["frames"]).status.startswith("damaged: 1 chunk(s) of 64 frames fail their checksum "
                                                           "(first: frames 128-159")
    assert cache.verify(found["runs"]).status.startswith("damaged: frames.csv missing or changed")


def test_a_damaged_server_times_file_is_refused_in_one_line(tmp_path, monkeypatch):
    from amslib.core.config import ConfigError, preset, with_overrides
    from amslib.sim.server import server_times

    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path))
    (tmp_path / "server_times.json").write_text('{"cut sho')
    config = with_overrides(preset("laptop"), {"server_time": "measured"})
    with pytest.raises(ConfigError) as err:
        server_times(config, measure=lambda: pytest.fail("a damaged file must not be measured over"))
    message = str(err.value)
    assert "\n" not in message and "server_times.json is damaged" in message and "cache --clear server_times" in message


def test_a_damaged_server_time_measurement_is_measured_again(tmp_path, monkeypatch, caplog):
    from amslib.core.config import preset, with_overrides
    from amslib.sim.server import ServerTimes, measured_key, server_times

    monkeypatch.setenv("AMS_DATA_DIR", str(tmp_path))
    config = with_overrides(preset("laptop"), {"server_time": "measured"})
    measured = []

    def measure():
        measured.append(1)
        return ServerTimes(0.1, 0.01, 0.02)

    assert server_times(config, measure=measure).step_base_s == 0.1 and len(measured) == 1
    assert server_times(config, measure=measure).step_base_s == 0.1 and len(measured) == 1  # cached
    path = tmp_path / "server_times.json"
    path.write_text(path.read_text().replace("0.1,", "0.7,"))  # one digit changed on disk
    with caplog.at_level("WARNING", logger="amslib.cache"):
        assert server_times(config, measure=measure).step_base_s == 0.1 and len(measured) == 2
    assert len(notices(caplog)) == 1 and measured_key(config) in notices(caplog)[0].getMessage()
