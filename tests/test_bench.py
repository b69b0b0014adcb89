"""The benchmark's measurements run and agree with themselves (no timing is asserted)."""
from dataclasses import replace

import pytest

from amslib.analysis import bench
from amslib.core.config import AdaptConfig, RunConfig


def tiny(student):
    return RunConfig(video="synthetic:street", scheme="ams", height=32, fps=2.0, max_seconds=8.0,
                     student=str(student), width_multiplier=0.35, head_channels=16, edge_batch=8,
                     adapt=AdaptConfig(iterations=2, first_update_s=4.0, update_interval_s=4.0,
                                       batch_size=2))


@pytest.fixture(scope="module")
def edge(tiny_student):
    return bench.edge_speed(tiny(tiny_student), frames=16)


def test_edge_reference_and_update_sizes(tiny_student, edge):
    config = tiny(tiny_student)
    assert edge["edge_ms_per_frame"] > 0 and edge["batched_speedup_vs_reference"] > 0
    assert edge["reference_pixels_equal"] > 0.99  # same model, same frames, batch 1 vs 8
    ref = bench.reference_run(config, edge["students"])
    assert ref["frames"] == 16 and ref["max_abs_miou_frame_diff"] < 0.01
    sizes = bench.update_sizes(edge["students"], edge["video"], config)
    assert sizes["full_fp32_raw"] == 4 * sizes["num_params"]
    assert sizes["mask1bit_fp16_gzip"] < sizes["full_fp16_gzip"] < sizes["full_fp32_raw"]


def test_sim_speed_counts_simulated_seconds(tiny_student, edge):
    value, detail = bench.sim_speed(tiny(tiny_student), edge["students"])
    assert value > 0 and len(detail["result"].frames) == 16
    assert detail["result"].summary()["num_updates"] == 1  # at 4 s; 8 s is the end


def test_label_cache_speedup_is_measured(tmp_path, tiny_student):
    out = bench.label_cache_speedup(replace(tiny(tiny_student), height=32), frames=8, root=tmp_path / "c")
    assert out["first_s"] > 0 and out["second_s"] > 0
    assert not (tmp_path / "c").exists()  # the benchmark cleans its cache


def test_machine_info():
    info = bench.machine_info()
    assert info["cores"] >= 1 and "tensorflow" in info


def test_peak_memory_runs_a_child_process():
    # 6 s of the synthetic street at 32x64 in a fresh interpreter: its peak resident memory
    peak = bench.peak_rss_child(0.1, fps=2.0, height=32)
    assert 100 < peak < 4096


def test_a_fleets_cost_is_measured_against_n_times_one_device():
    cost = bench.fleet_cost(devices=(1, 2), seconds=12.0, height=32)
    assert set(cost["wall_s"]) == set(cost["peak_rss_mib"]) == {"1", "2"}
    assert cost["wall_vs_n_times_one"]["1"] == 1.0 and cost["wall_vs_n_times_one"]["2"] > 0
    assert all(100 < mib < 4096 for mib in cost["peak_rss_mib"].values())
    assert "AMS fleets of 1, 2 devices" in cost["setup"]
