"""The server on the clock (amslib/sim/server.py), links that queue (amslib/sim/link.py), and
the regression promise: server_time=off reproduces the tables made before either existed."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from server_off_golden import CASES, golden_config, tables  # noqa: E402

from amslib.analysis.runs import simulate
from amslib.core.config import ConfigError, ServerConfig, preset, with_overrides
from amslib.sim.link import Link, RateTrace
from amslib.sim.server import Job, Server, fit_step

GOLDEN = json.loads((Path(__file__).parent / "data" / "server_off_golden.json").read_text())


def golden_mismatches(got: dict, want: dict, *, window_atol: float, bits_rtol: float, time_atol: float) -> list[str]:
    """What differs between two `tables` (empty: they agree within the tolerances); model
    versions, uplink bits, update times and counts must be equal."""
    out = [k for k in ("model_version", "uplink_bits") if got[k] != want[k]]
    if not np.allclose(got["window_miou"], want["window_miou"], atol=window_atol, rtol=0, equal_nan=True):
        out.append("window_miou")
    for column, values in want["updates"].items():
        mine, theirs = np.array(got["updates"][column], float), np.array(values, float)
        if column == "downlink_bits":  # float16 payloads of trained weights
            ok = np.allclose(mine, theirs, rtol=bits_rtol, atol=0, equal_nan=True)
        elif column == "t_arrival_s":  # after those bits
            ok = np.allclose(mine, theirs, atol=time_atol, rtol=0, equal_nan=True)
        else:
            ok = got["updates"][column] == values
        if not ok:
            out.append(column)
    return out


# Trained weights round differently on different CPUs. Measured across the three recorded here
# (an Intel Xeon and two AMD EPYC kinds, one with AVX-512), the largest differences between any
# two: window mIoU 0.0217 (jit) and 0.0064 (every other scheme), payload sizes 1.1e-3 relative,
# arrival times 2.9e-3 s. The tolerances are those, with room; counts, model versions, uplink
# bits and update times must be equal on every CPU.
CROSS_CPU = {"window_atol": 0.01, "bits_rtol": 2e-3, "time_atol": 5e-3}
WINDOW_ATOL = {"jit": 0.03}  # one Adam step per key frame until it passes: the steps' count amplifies rounding


def golden_check(name: str, got: dict) -> dict[str, list[str]]:
    """What differs from each recording, within the cross-CPU tolerances (an empty list: this
    run agrees with that CPU's recording)."""
    tolerances = {**CROSS_CPU, "window_atol": WINDOW_ATOL.get(name, CROSS_CPU["window_atol"])}
    return {cpu: golden_mismatches(got, runs[name], **tolerances) for cpu, runs in GOLDEN.items()}


def server_off(scheme: str, overrides: dict):
    return golden_config(scheme, {**overrides, "server_time": "off", "uplink_queue_s": None, "supersede_queued": False})


@pytest.mark.parametrize("name,scheme,overrides", CASES, ids=[c[0] for c in CASES])
def test_server_time_off_reproduces_the_tables_made_before_it(name, scheme, overrides):
    # on any CPU: within the measured cross-CPU rounding of at least one recording
    mismatches = golden_check(name, tables(simulate(server_off(scheme, overrides))))
    assert any(not m for m in mismatches.values()), mismatches


def test_the_server_off_regression_fails_on_a_real_change():
    # a deliberate mutation: AMS trains 8 steps per update instead of the preset's 10
    name, scheme, overrides = next(c for c in CASES if c[0] == "ams")
    mutated = server_off(scheme, {**overrides, "iterations": 8})
    mismatches = golden_check(name, tables(simulate(mutated)))
    assert all("window_miou" in m for m in mismatches.values()), mismatches


def test_golden_recordings_differ_across_cpus_only_by_rounding():
    # the recordings themselves: equal where no training is involved, within the tolerances
    # where it is, and the jit tolerance is needed
    cpus = sorted(GOLDEN)
    assert len(cpus) >= 3
    exact = {"window_atol": 0.0, "bits_rtol": 0.0, "time_atol": 0.0}
    for a, b in zip(cpus, cpus[1:]):
        for name in ("none", "remote_tracking"):
            assert not golden_mismatches(GOLDEN[a][name], GOLDEN[b][name], **exact), name
        for name in GOLDEN[a]:
            tolerances = {**CROSS_CPU, "window_atol": WINDOW_ATOL.get(name, CROSS_CPU["window_atol"])}
            assert not golden_mismatches(GOLDEN[a][name], GOLDEN[b][name], **tolerances), (a, b, name)
    assert "window_miou" in golden_mismatches(GOLDEN[cpus[0]]["jit"], GOLDEN[cpus[1]]["jit"], **CROSS_CPU)


def _job(device, ready, seconds, log, utility=0.0):
    return Job(device=device, kind="update", t_request_s=ready, ready_s=ready, utility=utility,
               run=lambda start: (log.append((device, start)) or start + seconds, None))


@pytest.mark.parametrize("scheduler,order", [("fifo", [0, 0, 1, 2]), ("round_robin", [0, 1, 2, 0]),
                                             ("utility", [0, 2, 1, 0])])
def test_a_busy_gpu_takes_waiting_jobs_by_its_scheduler(scheduler, order):
    log: list = []
    server = Server(gpus=1, scheduler=scheduler)
    server.submit(_job(0, 0.0, 5.0, log, utility=0.1))  # runs at once: nothing else waits
    server.submit(_job(0, 1.0, 5.0, log, utility=0.1))
    server.submit(_job(1, 2.0, 5.0, log, utility=0.2))
    server.submit(_job(2, 3.0, 5.0, log, utility=0.9))
    server.dispatch(math.inf)
    assert [d for d, _ in log] == order
    assert [s for _, s in log] == [0.0, 5.0, 10.0, 15.0]  # one GPU: back to back
    assert server.utilisation(20.0) == 1.0


def test_two_gpus_run_two_jobs_at_once_and_a_job_waits_for_its_inputs():
    log: list = []
    server = Server(gpus=2)
    for device, ready in ((0, 0.0), (1, 0.0), (2, 7.0)):
        server.submit(_job(device, ready, 4.0, log))
    assert server.next_start_s() == 0.0
    server.dispatch(3.0)
    assert log == [(0, 0.0), (1, 0.0)] and server.next_start_s() == 7.0
    server.dispatch(7.0)
    assert log[-1] == (2, 7.0)
    assert [b["queue_wait_s"] for b in server.busy] == [0.0, 0.0, 0.0]


def test_a_waiting_job_can_be_withdrawn_a_started_one_cannot():
    log: list = []
    server = Server()
    first, second = _job(0, 0.0, 5.0, log), _job(0, 1.0, 5.0, log)
    server.submit(first), server.submit(second)
    server.dispatch(1.0)
    assert not server.cancel(first) and server.cancel(second)
    server.dispatch(math.inf)
    assert log == [(0, 0.0)]


def test_step_times_are_a_line_in_the_batch_size():
    base, per_frame = fit_step(0.30, 1.20, 10)
    assert per_frame == pytest.approx(0.1) and base == pytest.approx(0.2)
    assert fit_step(0.5, 0.5, 1) == (0.0, 0.5)


def test_a_full_uplink_delivers_at_most_its_rate_and_drops_what_would_queue_too_long():
    # a 100 Kbps uplink fed a 60 KB PNG every second for 60 s: 480 Kbps offered
    link, bound, dropped = Link(RateTrace.constant(100.0)), 10.0, 0
    for t in range(60):
        if link.backlog_s(float(t)) > bound:
            link.drop(float(t), 480_000)
            dropped += 1
        else:
            link.send(float(t), 480_000)
    delivered = link.delivered_bits(60.0) / 60.0 / 1000.0
    assert delivered <= 100.0 + 1e-9
    assert dropped == 60 - 15  # 4.8 s a sample: the queue admits one every 4.8 s, 15 in a minute
    sent = [x for x in link.transfers if not x.dropped]
    assert max(x.queue_s for x in sent) <= bound + 4.8  # queued at most the bound (plus the one ahead)


def test_cancelling_queued_transfers_frees_the_link_from_the_last_started_one():
    link = Link(RateTrace.constant(100.0))
    link.send(0.0, 500_000, tag=1)  # 5 s on the wire: 0..5
    link.send(1.0, 500_000, tag=2)  # queued: 5..10
    assert link.cancel_queued(2.0) == [2]
    assert link.send(2.0, 100_000, tag=3) == pytest.approx(6.0)  # starts when tag 1 ends
    assert link.delivered_bits(6.0) == 600_000


@pytest.mark.parametrize("overrides,message", [
    ({"devices": 0}, "devices must be >= 1"),
    ({"scheduler": "lottery"}, "scheduler must be one of fifo, round_robin, utility"),
    ({"server_time": "tpu"}, "server_time must be one of off, measured, fixed"),
    ({"speedup": -2.0}, "speedup must be > 0"),
    ({"step_frame_s": -0.1}, "step_frame_s must be >= 0"),
])
def test_bad_server_settings_are_one_clear_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(preset("laptop"), overrides)


def test_server_config_is_part_of_the_run_config_and_its_json():
    config = with_overrides(preset("laptop"), {"server_time": "fixed", "step_frame_s": "0.05", "devices": "4"})
    assert config.server == ServerConfig(server_time="fixed", step_frame_s=0.05, devices=4)
    assert type(config).from_dict(json.loads(config.to_json())) == config


def _tiny(**overrides):
    # AMS at 64x128 for 30 s; a slow fixed server: an update takes 10 steps x 0.5 s + 5 labels
    return with_overrides(preset("laptop"), {"height": 64, "max_seconds": 30.0, "first_update_s": 6.0,
                                             "update_interval_s": 6.0, "ledger_all_encoders": False,
                                             "server_time": "fixed", "step_base_s": 0.5, "teacher_frame_s": 0.1,
                                             **overrides})


def test_the_ledger_has_the_servers_times_and_an_update_is_sent_when_its_training_ends():
    result = simulate(_tiny())
    sent = result.updates[result.updates["sent"] == True]  # noqa: E712
    assert len(sent) >= 3
    np.testing.assert_allclose(sent["t_end_s"] - sent["t_start_s"], 10 * 0.5 + sent["num_new_samples"] * 0.1,
                               atol=1e-9)
    assert (sent["t_start_s"] >= sent["t_train_s"] - 1e-9).all()
    np.testing.assert_allclose(sent["t_arrival_s"], sent["t_end_s"])  # unlimited links: no transmission time
    # by hand: samples at 1 fps, the newest 1 s before each update; 10 x 0.5 s of training and 6
    # new labels x 0.1 s; a free link: 1 + 5.6 s, from that sample's capture to its model's first frame
    np.testing.assert_allclose(sent["staleness_s"], 6.6)
    summary = result.summary()
    assert summary["staleness_mean_s"] == pytest.approx(float(sent["staleness_s"].mean()), abs=1e-3)
    arrived = sent.loc[sent["t_arrival_s"] <= summary["duration_s"], "downlink_bits"].sum()
    assert summary["downlink_delivered_kbps"] == pytest.approx(arrived / summary["duration_s"] / 1000)
    assert "server_time=fixed" in summary["conditions"]["server_compute"]
    # the edge runs each update from its arrival, not from when it was scheduled
    frames = result.frames
    first = sent.iloc[0]
    before = frames[frames["t_s"] < first["t_arrival_s"] - 1e-9]["model_version"]
    assert (before == 0).all()
    at = frames[frames["t_s"] >= first["t_arrival_s"] - 1e-9]["model_version"]
    assert at.iloc[0] == first["version"] == 1  # and from its arrival on, the new model


def test_an_update_waits_for_the_last_one_still_training():
    result = simulate(_tiny(step_base_s=1.0))  # 10 s of training per 6 s interval
    sent = result.updates[result.updates["sent"] == True]  # noqa: E712
    starts, ends = sent["t_start_s"].to_numpy(), sent["t_end_s"].to_numpy()
    assert np.all(starts[1:] >= ends[:-1] - 1e-9)  # one device's updates never overlap
    assert np.all(sent["t_update_s"].to_numpy()[1:] >= ends[:-1] - 1e-9)  # postponed, not piled up


def test_a_slower_server_serves_staler_updates():
    fast, slow = simulate(_tiny(speedup=10.0)), simulate(_tiny())
    assert fast.summary()["staleness_mean_s"] < slow.summary()["staleness_mean_s"]


def test_more_devices_on_one_gpu_never_raise_the_mean_accuracy():
    from amslib.analysis.fleet import run_fleet

    runs = {n: run_fleet(_tiny(devices=n, fleet_videos="same")) for n in (1, 3)}
    one, three = runs[1].summary(), runs[3].summary()
    assert three["miou_window"] <= one["miou_window"] + 0.5
    assert three["staleness_mean_s"] > one["staleness_mean_s"]
    assert three["gpu_utilisation"] > one["gpu_utilisation"]
    server = runs[3].server
    assert set(server["device"]) == {0, 1, 2}
    busy = server.sort_values("t_start_s")
    assert np.all(busy["t_start_s"].to_numpy()[1:] >= busy["t_end_s"].to_numpy()[:-1] - 1e-9)  # one GPU


def test_a_fleet_needs_a_scheme_with_a_server():
    from amslib.analysis.fleet import run_fleet

    with pytest.raises(ConfigError, match="adapts on the edge alone"):
        run_fleet(_tiny(devices=2, scheme="tent"))
    with pytest.raises(ConfigError, match="'edge_train' trains on the edge, and a fleet of it .* is not modelled"):
        run_fleet(_tiny(devices=2, scheme="edge_train"))


def test_the_utility_scheduler_weighs_each_update_by_the_accuracy_its_device_lost():
    from amslib.analysis.fleet import run_fleet

    fleet = run_fleet(_tiny(devices=2, scheduler="utility", max_seconds=20.0))
    for device in fleet.devices:
        u = device.updates[device.updates["sent"] == True]  # noqa: E712
        assert u["utility"].notna().all() and (u["utility"].abs() <= 1.0).all()
    first = fleet.devices[0].updates["utility"].iloc[0]
    assert first > 0  # before any update the reference is 1.0: what the pretrained model misses


def test_updates_withdrawn_from_a_starved_downlink_are_booked_unsent(tmp_path):
    # 500 Kbps, then 5 Kbps from 12 s: the third update is still being sent at the end, and each
    # later one waits behind it until a newer one replaces it
    trace = tmp_path / "down.csv"
    trace.write_text("time_s,kbps\n0,500\n12,5\n")
    result = simulate(golden_config("ams", {"max_seconds": 48.0, "update_interval_s": 4.0, "first_update_s": 4.0,
                                            "downlink_trace": str(trace)}))
    u, duration = result.updates, result.summary()["duration_s"]
    sent = u[u["sent"] == True]  # noqa: E712
    ran = set(result.frames["model_version"]) - {0}
    on_the_way = set(sent.loc[sent["t_arrival_s"] > duration, "version"].astype(int))
    assert ran == {1, 2}
    assert set(sent["version"].astype(int)) == ran | on_the_way == {1, 2, 3, 11}  # 11 of 11 were booked before
    withdrawn = u[u["withdrawn_from_downlink"] == True]  # noqa: E712
    assert list(withdrawn["version"].astype(int)) == list(range(4, 11))
    assert withdrawn["t_arrival_s"].isna().all() and withdrawn["staleness_s"].isna().all()
    assert (withdrawn["downlink_bits"] == 0).all() and (withdrawn["offered_bits"] > 0).all()
    summary = result.summary()
    assert summary["num_updates"] == 4 and summary["downlink_superseded"] == 7
    assert summary["downlink_kbps"] == pytest.approx(sent["downlink_bits"].sum() / duration / 1000)
    assert summary["staleness_max_s"] == pytest.approx(float(sent["staleness_s"].max()), abs=1e-3)


def test_a_fifo_server_at_3x_overload_serves_every_device_in_turn():
    # 4 devices on 1 GPU, 4.25 s of training per update every 5 s (3.4x overload). A job that
    # replaces a waiting one keeps its place, and so does one asked again after its device's
    # last job: every device's first training starts by 35 s (before, devices 2 and 3 waited
    # until 34.75 s and 47.5 s while devices 0 and 1 were served 10 times)
    from amslib.analysis.fleet import run_fleet

    fleet = run_fleet(_tiny(devices=4, fleet_videos="same", max_seconds=40.0, first_update_s=5.0,
                            update_interval_s=5.0, step_base_s=0.425, teacher_frame_s=0.0))
    server = fleet.server
    first = server.groupby("device")["t_start_s"].min()
    assert list(first.index) == [0, 1, 2, 3] and (first < 35.0).all()
    np.testing.assert_allclose(first.to_numpy(), [5.0, 9.25, 13.5, 17.75])  # back to back, in turn
    served = server.groupby("device").size()
    assert served.max() - served.min() <= 1


def test_fifo_keeps_a_replaced_jobs_place_and_breaks_ties_in_turn():
    log: list = []
    server = Server(gpus=1)
    server.submit(_job(0, 0.0, 5.0, log))
    old = server.submit(_job(1, 1.0, 5.0, log))
    server.submit(_job(2, 2.0, 5.0, log))
    server.dispatch(0.0)
    assert server.cancel(old)  # device 1's waiting job is replaced by a newer one at 3 s
    newer = _job(1, 3.0, 5.0, log)
    newer.place_s = old.place_s
    server.submit(newer)
    server.dispatch(math.inf)
    assert [d for d, _ in log] == [0, 1, 2]  # not [0, 2, 1]: device 1 asked first
    tied: list = []
    server = Server(gpus=1)
    server.submit(_job(1, 0.0, 2.0, tied))
    server.dispatch(0.0)
    for device in (0, 2):  # asked at the same time while device 1 trains
        server.submit(_job(device, 1.0, 1.0, tied))
    server.dispatch(math.inf)
    assert [d for d, _ in tied] == [1, 2, 0]  # the tie goes to the device after the last served


def test_one_job_per_device_in_flight_on_two_gpus():
    log: list = []
    server = Server(gpus=2)
    server.submit(_job(0, 0.0, 8.0, log))
    server.dispatch(4.0)
    server.submit(_job(0, 4.0, 8.0, log))  # device 0 again while its first job trains
    server.submit(_job(1, 5.0, 8.0, log))
    server.dispatch(math.inf)
    assert log == [(0, 0.0), (1, 5.0), (0, 8.0)]  # the free GPU takes device 1; device 0 waits for itself


def test_jit_on_two_gpus_never_overlaps_one_devices_key_frames():
    # key frames every 1.6 s reach the server 2 s late, while each takes 8 s to train on
    result = simulate(_tiny(scheme="jit", gpus=2, step_base_s=1.0, max_seconds=24.0, latency_s=2.0))
    ran = result.updates.dropna(subset=["t_start_s"]).sort_values("t_start_s")
    assert len(ran) >= 2
    starts, ends = ran["t_start_s"].to_numpy(), ran["t_end_s"].to_numpy()
    assert np.all(starts[1:] >= ends[:-1] - 1e-9)


def test_staleness_runs_from_the_newest_frames_capture_to_the_first_frame_run_with_it():
    result = simulate(_tiny(latency_s=0.3))
    u = result.updates[result.updates["sent"] == True]  # noqa: E712
    fps = result.config.fps
    np.testing.assert_allclose(u["t_first_run_s"], np.ceil(u["t_arrival_s"] * fps - 1e-6) / fps)
    np.testing.assert_allclose(u["staleness_s"], u["t_first_run_s"] - u["t_captured_s"])
    assert (u["t_captured_s"] <= u["t_update_s"]).all() and (u["t_captured_s"] > u["t_update_s"] - 2.0).all()
    # capture -> uplink (0.3 s) -> labels and 10 steps -> downlink (0.3 s): more than the server's time
    assert (u["staleness_s"] >= u["server_s"] + 0.6 - 1e-9).all()
    # each frame runs a model as old as the frame's time minus its newest frame's capture
    frames = result.frames
    for _, row in u.iterrows():
        on = frames[frames["model_version"] == row["version"]]
        np.testing.assert_allclose(on["model_age_s"], on["t_s"] - row["t_captured_s"])
    pretrained = frames[frames["model_version"] == 0]
    np.testing.assert_allclose(pretrained["model_age_s"], pretrained["t_s"])  # made at the stream's start
    # key-frame schemes count from the key frame's capture too, so their uplink is in it
    jit = simulate(_tiny(scheme="jit", latency_s=0.3, max_seconds=12.0)).updates
    jit = jit[jit["sent"] == True]  # noqa: E712
    np.testing.assert_allclose(jit["t_captured_s"], jit["key_frame"] / fps)
    assert (jit["staleness_s"] >= jit["server_s"] + 0.6 - 1e-9).all()


def test_a_fleet_summary_counts_a_starved_device_and_keeps_zeros():
    from amslib.analysis.fleet import _values, run_fleet

    assert np.array_equal(_values([{"x": 0.0}, {"x": None}, {}], "x"), [0.0, np.nan, np.nan], equal_nan=True)
    # 3 devices, one GPU, 12 s per update: only device 0's first model reaches its edge in 20 s
    fleet = run_fleet(_tiny(devices=3, fleet_videos="same", max_seconds=20.0, step_base_s=1.2, teacher_frame_s=0.0))
    s = fleet.summary()
    table = fleet.device_table()
    assert [int(d.frames["model_version"].max()) for d in fleet.devices] == [1, 0, 0] and s["devices_unserved"] == 2
    assert s["staleness_worst_s"] == pytest.approx(table["staleness_mean_s"].max(), abs=1e-3)
    starved = fleet.devices[2].frames
    kept = starved["t_s"] >= fleet.devices[2].summary()["eval_from_s"]
    assert s["model_age_worst_s"] == pytest.approx(starved.loc[kept, "t_s"].mean(), abs=1e-3)  # the pretrained model's age
    assert s["model_age_worst_s"] > s["model_age_mean_s"] > table["model_age_mean_s"][0]


def test_an_update_is_charged_for_the_frames_its_steps_train_on():
    # 6 samples at the first update (1 a second from 0 s), batch 10: each of the 10 steps trains
    # on 6 frames at 0.1 s a frame, and the 6 new labels cost 0.1 s each
    result = simulate(_tiny(step_base_s=0.0, step_frame_s=0.1, max_seconds=12.0))
    first = result.updates.iloc[0]
    assert first["num_samples"] == 6
    assert first["server_s"] == pytest.approx(10 * 6 * 0.1 + 6 * 0.1)


def test_the_server_work_left_free_is_named_in_the_conditions():
    from amslib.analysis.results import conditions

    jit = conditions(_tiny(scheme="jit"))
    assert "accuracy check" in jit["server_free_work"] and "is free" in jit["server_free_work"]
    assert "measurement" in conditions(_tiny(devices=2, scheduler="utility"))["server_free_work"]
    assert "fifo order" in conditions(_tiny(scheme="jit", devices=2, scheduler="utility"))["server_free_work"]
    assert "server_free_work" not in conditions(_tiny()) and "server_free_work" not in conditions(_tiny(server_time="off"))


def test_conditions_table_is_short_and_keeps_each_values_head():
    from amslib.analysis.results import conditions_table

    table = conditions_table(_tiny(devices=2, scheduler="utility"),
                             {"step_base_s": 0.1, "step_frame_s": 0.01, "teacher_frame_s": 0.02}, width=40)
    value = table["value"]
    assert value["server compute"] == "on the clock (server_time=fixed)"  # its numbers: summary.json
    assert value["server share"] == "2 devices on 1 GPU(s), utility scheduler"
    assert value["server free work"].endswith("…") and len(value["server free work"]) == 40
    assert table.index.name == "condition" and (value.str.len() <= 40).all()
    assert conditions_table(_tiny(server_time="off"))["value"]["server compute"] == "free (server_time=off)"


def test_work_that_can_start_is_taken_before_a_newer_update_in_the_same_frame_withdraws_it():
    # 2 devices on 1 GPU: device 0's training ends at 9.25 s, between frames (5 fps); device 1's
    # job, waiting since 5 s, starts then, and its update due at 9.4 s waits for it; before, the
    # update at 9.4 s withdrew it and the GPU stood idle until its replacement
    from amslib.analysis.fleet import run_fleet

    fleet = run_fleet(_tiny(devices=2, fleet_videos="same", max_seconds=14.0, first_update_s=5.0,
                            update_interval_s=4.4, step_base_s=0.425, teacher_frame_s=0.0))
    jobs = fleet.server.sort_values("t_start_s")
    assert list(jobs["device"][:2]) == [0, 1]
    assert (jobs["t_request_s"].iloc[1], jobs["t_start_s"].iloc[1]) == pytest.approx((5.0, 9.25))
    assert (jobs["t_start_s"] >= jobs["t_request_s"] - 1e-9).all()
