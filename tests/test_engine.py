"""The simulation's clock, link, schemes and live policy changes, on a tiny video."""
import math

import conftest
import numpy as np
import pandas as pd
import pytest
from conftest import TinyOracle

from amslib.analysis.results import load_result, save_result
from amslib.analysis.runs import simulate
from amslib.core import metrics
from amslib.core.config import ConfigError, LinkConfig
from amslib.sim.engine import Simulation, Students
from amslib.sim.state import FramesEvent, UpdateEvent


def tiny_config(student, **adapt):
    """The shared tiny run, with One-Time training on the first 10 s."""
    return conftest.tiny_config(student, **{"one_time_s": 10.0, **adapt})


@pytest.fixture(scope="module")
def students(tiny_student):
    """Models loaded and traced once for the whole module (each run resets them)."""
    from conftest import TinyVideo
    return Students.load(tiny_config(tiny_student), TinyVideo())


def run(config, video, students, **kw):
    return simulate(config, video=video, teacher=TinyOracle(), students=students, **kw)


def test_none_never_updates_or_sends(tiny_student, students, tiny_video):
    from dataclasses import replace
    result = run(replace(tiny_config(tiny_student), scheme="none"), tiny_video, students)
    assert len(result.frames) == 80 and result.updates.empty
    assert result.frames["uplink_bits"].sum() == 0 and (result.frames["model_version"] == 0).all()
    s = result.summary()
    assert s["uplink_kbps"] == 0 and s["downlink_kbps"] == 0 and s["num_updates"] == 0


def test_ams_update_schedule_sampling_and_ledger(tiny_student, students, tiny_video):
    result = run(tiny_config(tiny_student), tiny_video, students)
    u = result.updates
    # first update at 10 s, then every 5 s until the 40 s video ends: 10, 15, ..., 35
    np.testing.assert_allclose(u["t_update_s"], [10, 15, 20, 25, 30, 35])
    # one sample per second, PNG-sized; the server's buffer holds the last 20 s that arrived
    assert (result.frames["uplink_bits"] > 0).sum() == 40
    # (the update at t runs before the frame at t is seen: samples at 0..t-1 s)
    assert list(u["num_samples"]) == [10, 15, 20, 20, 20, 20]
    p = int(u["num_params"].iloc[0])
    assert (u["num_sent"] == round(0.1 * p)).all()
    assert (u["mask_bytes"] == math.ceil(p / 8)).all() and (u["value_bytes"] == 2 * u["num_sent"]).all()
    assert (u["downlink_bits"] == 8 * u["compressed_bytes"]).all()
    # unlimited link, no latency: the edge uses update k from the frame at its time on
    version_at = result.frames.set_index("t_s")["model_version"]
    assert version_at[9.5] == 0 and version_at[10.0] == 1 and version_at[35.0] == 6


def test_latency_and_downlink_delay_arrival(tiny_student, students, tiny_video):
    from dataclasses import replace
    config = replace(tiny_config(tiny_student), link=LinkConfig(downlink_kbps=100.0, latency_s=1.0))
    result = run(config, tiny_video, students)
    first = result.updates.iloc[0]
    expected = 10.0 + first["downlink_bits"] / 100_000 + 1.0
    assert first["t_arrival_s"] == pytest.approx(expected)
    frames = result.frames
    assert frames.loc[frames["t_s"] < expected, "model_version"].max() == 0
    assert frames.loc[frames["t_s"] >= expected + 0.5, "model_version"].min() >= 1


def test_one_time_trains_once_on_first_seconds(tiny_student, students, tiny_video):
    from dataclasses import replace
    result = run(replace(tiny_config(tiny_student), scheme="one_time"), tiny_video, students)
    u = result.updates
    assert len(u) == 1 and u["t_update_s"].iloc[0] == 10.0 and u["num_samples"].iloc[0] == 10
    assert u["strategy"].iloc[0] == "full" and u["num_sent"].iloc[0] == u["num_params"].iloc[0]
    sent_at = result.frames.loc[result.frames["uplink_bits"] > 0, "t_s"]
    assert sent_at.max() < 10.0
    # One-Time's own budget, not AMS's per-update one; stated in the summary
    assert u["iterations"].iloc[0] == result.config.adapt.one_time_iterations == 100
    assert result.summary()["conditions"]["training_budget"] == "100 steps of 2 frames, once"


def test_summary_states_the_conditions(tiny_student, students, tiny_video):
    from dataclasses import replace
    config = replace(tiny_config(tiny_student), link=LinkConfig(downlink_kbps=100.0, latency_s=0.5))
    c = run(config, tiny_video, students).summary()["conditions"]
    assert c["server_compute"].startswith("free") and c["link_queues"].startswith("uplink queue unbounded")
    assert c["server_share"] == "one device on 1 GPU(s)"
    assert c["optimizer_state"] == "persist" and c["reset_to_pretrained"] is True
    assert c["uplink"] == "unlimited bandwidth, png" and c["downlink"] == "100 Kbps, original encoder"
    assert c["training_budget"] == "3 steps of 2 frames per update" and c["latency_s"] == 0.5


def test_policy_change_takes_effect_at_next_update(tiny_student, students, tiny_video):
    sim = Simulation.create(tiny_config(tiny_student), video=tiny_video, teacher=TinyOracle(), students=students)
    rows = []
    for event in sim.run():
        if isinstance(event, UpdateEvent):
            rows.append(event.row)
            if len(rows) == 2:
                sim.set_policy(fraction=0.5, update_interval_s=10.0)
    assert [r["fraction"] for r in rows] == [0.1, 0.1, 0.5, 0.5]
    assert [r["t_update_s"] for r in rows] == [10, 15, 20, 30]
    assert rows[2]["policy_changes"] == "fraction=0.5, update_interval_s=10.0"
    assert rows[2]["num_sent"] == round(0.5 * rows[2]["num_params"])


def test_invalid_policy_change_is_rejected_at_once(tiny_student, students, tiny_video):
    sim = Simulation.create(tiny_config(tiny_student), video=tiny_video, teacher=TinyOracle(), students=students)
    with pytest.raises(ConfigError, match="fraction"):
        sim.set_policy(fraction=2.0)
    assert sim.pending_policy == {}


def test_stop_ends_run_early(tiny_student, students, tiny_video):
    sim = Simulation.create(tiny_config(tiny_student), video=tiny_video, teacher=TinyOracle(), students=students)
    seen = 0
    for event in sim.run():
        if isinstance(event, FramesEvent):
            seen += len(event.rows)
            sim.stop()
    assert seen == 8


@pytest.mark.parametrize("optimizer_state, from_pretrained, least_gain", [("reset", True, 0.10), ("persist", False, 0.05)])
def test_adaptation_improves_on_drift(tiny_student, students, tiny_video, optimizer_state, from_pretrained, least_gain):
    """Gains on the dark half, measured on this machine: 60 points from fresh Adam states with every
    update from the pretrained weights; 84 with the moments kept and updates building on each other
    (the laptop preset's pairing). Kept moments with every update restarting from the pretrained
    weights (the paper preset's pairing) gained 9.5 points on an earlier machine and none on this
    one, where the tiny student's pretraining rounds differently: too fragile to test."""
    from dataclasses import replace
    config = tiny_config(tiny_student, iterations=20, fraction=0.2, optimizer_state=optimizer_state,
                         reset_to_pretrained=from_pretrained)
    ams = run(config, tiny_video, students)
    none = run(replace(config, scheme="none"), tiny_video, students)
    dark = slice(50, None)  # the dark half, after the edge got updates trained on it
    gain = (metrics.miou_pooled(ams.counts()[dark]) - metrics.miou_pooled(none.counts()[dark]))
    assert gain > least_gain, f"AMS should recover from the drift; gained only {100 * gain:.1f} points"


def test_same_config_same_result(tiny_student, students):
    from conftest import TinyVideo
    a = run(tiny_config(tiny_student), TinyVideo(), students)
    b = run(tiny_config(tiny_student), TinyVideo(), students)
    assert a.frames.equals(b.frames)
    np.testing.assert_array_equal(a.updates["compressed_bytes"], b.updates["compressed_bytes"])


def test_results_round_trip(tiny_student, students, tiny_video, tmp_path):
    result = run(tiny_config(tiny_student), tiny_video, students)
    save_result(result, tmp_path / "run")
    loaded = load_result(tmp_path / "run")
    assert loaded.config == result.config and loaded.classes == result.classes
    assert loaded.summary() == result.summary()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.json", "frames.csv", "segments.csv", "summary.json", "transfers.csv", "updates.csv"]
    pd.testing.assert_frame_equal(loaded.transfers, result.transfers, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.segments, result.segments, check_dtype=False)


def test_load_result_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved run"):
        load_result(tmp_path)


def test_compare_schemes_matches_separate_runs(tiny_student, tiny_video, students):
    from dataclasses import replace

    import pandas as pd

    from amslib.analysis.results import comparison_table
    from amslib.analysis.runs import compare_schemes

    base = tiny_config(tiny_student)
    both = compare_schemes(base, ("none", "ams"), video=tiny_video, teacher=TinyOracle(),
                           students=students, progress=False)
    alone = run(replace(base, scheme="ams"), tiny_video, students)
    assert list(both) == ["none", "ams"]
    pd.testing.assert_frame_equal(both["ams"].frames, alone.frames)  # shared students reset
    table = comparison_table(both)
    assert list(table.index) == ["none", "ams"]
    assert table.loc["none", "downlink_kbps"] == 0 and table.loc["ams", "num_updates"] == 6
    assert table.loc["ams", "miou_pooled"] == pytest.approx(alone.summary()["miou_pooled"])


def test_a_video_that_is_not_the_configs_is_refused(tiny_student, students):
    """A video built by hand must be the one the config (saved with the run) describes."""
    from dataclasses import replace

    from conftest import TinyVideo

    from amslib.core.config import ConfigError
    with pytest.raises(ConfigError, match="the config says 32 px at 4 fps"):
        Simulation.create(replace(tiny_config(tiny_student), fps=4.0), video=TinyVideo(), teacher=TinyOracle(),
                          students=students)
    with pytest.raises(ConfigError, match="holds no frame at 2 fps; give at least 0.5 s"):
        Simulation.create(replace(tiny_config(tiny_student), max_seconds=0.1), video=TinyVideo(),
                          teacher=TinyOracle(), students=students)
