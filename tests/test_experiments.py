"""Sweeps and claims: grids, the tidy table, plots, parallel runs (processes and a local Dask
cluster), and docs/claims.md on a tiny synthetic street."""
import json

import numpy as np
import pandas as pd
import pytest

from amslib.analysis.claims import (
    CLAIM_TEXT,
    ClaimSpans,
    claim_jobs,
    claims_base,
    claims_markdown,
    load_claims,
    run_claims,
    write_claims,
)
from amslib.analysis.experiments import (
    EXPERIMENTS,
    Job,
    experiment_jobs,
    grid_jobs,
    parse_axes,
    run_experiment,
    run_sweep,
    sweep_table,
)
from amslib.analysis.plots import pareto_front
from amslib.cli import main
from amslib.core.config import AdaptConfig, BaselineConfig, ConfigError, EvalConfig, RunConfig, preset, with_overrides

TINY_SET = ["height=32", "fps=1", "duration_s=20", "width_multiplier=0.35", "head_channels=16", "edge_batch=8",
            "iterations=2", "first_update_s=5", "update_interval_s=5", "horizon_s=20", "batch_size=2",
            "one_time_s=10", "warmup_s=0", "window_s=4", "jit_u_max=1"]


@pytest.fixture(scope="module")
def base(tiny_student):
    """synthetic:street at 32x64, 1 fps, 20 s, with the tiny student: seconds per run."""
    return RunConfig(video="synthetic:street", height=32, fps=1.0, duration_s=20.0, student=str(tiny_student),
                     width_multiplier=0.35, head_channels=16, edge_batch=8,
                     adapt=AdaptConfig(iterations=2, first_update_s=5, update_interval_s=5, horizon_s=20,
                                       batch_size=2, one_time_s=10),
                     eval=EvalConfig(warmup_s=0, window_s=4), baseline=BaselineConfig(jit_u_max=1))


# -- grids -------------------------------------------------------------------------------------
def test_grid_product_filters_and_names(base):
    jobs = grid_jobs(base, {"strategy": ("gradient_guided", "full"), "fraction": (0.05, 0.2)},
                     keep=EXPERIMENTS["strategies"].keep)
    assert [j.name for j in jobs] == ["strategy=gradient_guided,fraction=0.05",
                                      "strategy=gradient_guided,fraction=0.2", "strategy=full,fraction=0.2"]
    assert jobs[0].config.adapt.fraction == 0.05 and jobs[2].config.adapt.strategy == "full"


def test_asr_grid_never_runs_atr_alone_and_substitutes_the_video(base):
    jobs = experiment_jobs("asr", base)
    params = [(j.params["asr"], j.params["atr"], j.params["video"]) for j in jobs]
    assert (False, True, "synthetic:street") not in params and len(jobs) == 6
    assert {p[2] for p in params} == {"synthetic:street", "synthetic:parked"}
    assert all(not (j.config.adapt.atr and not j.config.adapt.asr) for j in jobs)


def test_horizon_experiment_trains_every_update_from_the_pretrained_weights(base):
    laptop = with_overrides(base, {"reset_to_pretrained": False})  # as the laptop preset sets it
    jobs = experiment_jobs("horizon", laptop, quick=True)
    assert jobs and all(j.config.adapt.reset_to_pretrained for j in jobs)
    assert not any(j.config.adapt.reset_to_pretrained for j in experiment_jobs("schemes", laptop, quick=True))


def test_every_experiment_builds_and_axes_parse(base):
    for name in EXPERIMENTS:
        assert experiment_jobs(name, base, quick=True)
    axes = parse_axes(base, {"fraction": "0.05, 0.1", "update_encoder": "sparse_q8"})
    assert axes == {"fraction": (0.05, 0.1), "update_encoder": ("sparse_q8",)}
    jobs = experiment_jobs("strategies", base, quick=True, axes={"fraction": (0.3,)})
    assert {j.config.adapt.fraction for j in jobs} == {0.3}
    with pytest.raises(ConfigError, match="unknown experiment"):
        experiment_jobs("vibes", base)
    with pytest.raises(ConfigError, match="fraction must be"):
        parse_axes(base, {"fraction": "0.1,7"})


def test_pareto_front_known_points():
    cost = np.array([0.0, 10.0, 20.0, 15.0, 30.0, 40.0])
    value = np.array([10.0, 40.0, 35.0, 50.0, 50.0, np.nan])
    # 0: cheapest; 1: best at 10; 2 dominated by 1; 3: best overall; 4 dominated by 3 (same value, dearer)
    assert list(pareto_front(cost, value)) == [True, True, False, True, False, False]


# -- running sweeps ------------------------------------------------------------------------------
def test_experiment_in_process_writes_table_report_and_runs(base, tmp_path):
    sweep = run_experiment("encoders", base, quick=True, workers=1, out=tmp_path / "enc")
    table = pd.read_csv(tmp_path / "enc" / "table.csv")
    assert list(table["update_encoder"]) == ["original", "sparse_f16", "sparse_q8"]
    assert {"miou_window", "uplink_kbps", "downlink_kbps", "downlink_kbps_original",
            "downlink_kbps_sparse_q8"} <= set(table.columns)
    # every run sizes its updates with every encoder; each sends its own
    for _, row in table.iterrows():
        assert row["downlink_kbps"] == pytest.approx(row[f"downlink_kbps_{row['update_encoder']}"])
    # the lossless sparse encoding changes nothing at the edge but the bits
    f16, orig = table.set_index("update_encoder").loc[["sparse_f16", "original"], "miou_pooled"]
    assert f16 == orig
    assert (tmp_path / "enc" / "report.html").stat().st_size > 10_000
    assert sorted(p.name for p in (tmp_path / "enc" / "runs").iterdir()) == [
        "update_encoder=original", "update_encoder=sparse_f16", "update_encoder=sparse_q8"]
    assert set(sweep.figures) == {"pareto", "bars"}


def _pair(base):
    short = with_overrides(base, {"max_seconds": 10.0})
    return [Job("none", with_overrides(short, {"scheme": "none"})),
            Job("ams", with_overrides(short, {"scheme": "ams"}))]


def test_local_parallel_sweep_matches_in_process(base):
    jobs = _pair(base)
    here = run_sweep(jobs, workers=1)
    parallel = run_sweep(jobs, workers=2)
    assert list(parallel) == ["none", "ams"]
    pd.testing.assert_frame_equal(parallel["none"].frames, here["none"].frames)
    assert parallel["ams"].summary()["num_updates"] == here["ams"].summary()["num_updates"] == 1  # at 5 s


def test_a_trained_run_gives_the_same_numbers_in_a_worker_process_and_in_process():
    # the laptop student at 64x128, one AMS update at 8 s: large enough that TensorFlow splits
    # its reductions by its thread count (a worker on 1 thread of 2 cores once moved these)
    config = with_overrides(preset("laptop"), {"height": 64, "max_seconds": 12.0, "first_update_s": 8.0,
                                               "ledger_all_encoders": False, "scheme": "ams"})
    jobs = [Job("ams", config), Job("ams_again", config)]
    here = run_sweep(jobs[:1], workers=1)["ams"]
    parallel = run_sweep(jobs, workers=2)
    for name in ("ams", "ams_again"):
        pd.testing.assert_frame_equal(parallel[name].frames, here.frames)
        pd.testing.assert_frame_equal(parallel[name].updates.drop(columns="train_wall_s"),
                                      here.updates.drop(columns="train_wall_s"))


def test_sweep_on_a_local_dask_cluster(base):
    distributed = pytest.importorskip("distributed")
    jobs = _pair(base)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        done = run_sweep(jobs, cluster=cluster.scheduler_address)
    here = run_sweep(jobs[:1], workers=1)
    pd.testing.assert_frame_equal(done["none"].frames, here["none"].frames)
    table = sweep_table(jobs, done)
    assert list(table["run"]) == ["none", "ams"] and table.loc[1, "num_updates"] == 1


# -- claims --------------------------------------------------------------------------------------
def test_claims_document_has_every_claim_with_a_measured_number(base, tmp_path):
    spans = ClaimSpans(main_s=20.0, ablation_s=15.0, baseline_s=6.0)
    jobs = claim_jobs(claims_base(base), spans)
    assert {j.params["run"] for j in jobs} >= {"none", "one_time", "ams", "jit", "remote_tracking", "ams_full",
                                               "ams_random", "parked", "parked_asr", "ams_sparse_q8"}
    report = run_claims(claims_base(base), spans=spans, workers=1, command="claims test")
    claims = report.claims["synthetic:street"]
    assert [c.key for c in claims] == list(CLAIM_TEXT)
    for c in claims:
        assert any(ch.isdigit() for ch in c.measured), c
        assert c.holds or c.reason, f"{c.key} does not hold but gives no reason"
        assert "server on the clock (server_time=measured" in c.conditions and "optimizer" in c.conditions, c
    by_key = {c.key: c for c in claims}
    assert "optimizer reset" in by_key["strategies_reset"].conditions
    assert "optimizer persist" in by_key["strategies"].conditions
    assert "First Adam step (persist)" in by_key["strategies"].measured
    assert "First Adam step (reset)" in by_key["strategies_reset"].measured
    assert "One-Time trains" in by_key["ranking"].conditions
    path = write_claims(report, tmp_path / "claims.md", runs_dir=tmp_path / "runs")
    text = path.read_text()
    assert "`claims test`" in text and text.count("\n| ") >= len(CLAIM_TEXT) + len(jobs)
    assert "the server's compute is on the simulated clock" in text
    # the document again from the saved runs, running nothing
    again = load_claims(tmp_path / "runs")
    assert [(c.key, c.holds) for c in again.claims["synthetic:street"]] == [(c.key, c.holds) for c in claims]
    assert claims_markdown(again).splitlines()[4:12] == text.splitlines()[4:12]
    assert "| conditions" in text and "What the server's time does to the key-frame baselines" in text
    assert (tmp_path / "runs" / "synthetic_street" / "jit" / "summary.json").is_file()
    assert "**no**" in claims_markdown(report) or all(c.holds for c in claims)


# -- the command line ----------------------------------------------------------------------------
def test_cli_sweep_writes_files(tmp_path, capsys, tiny_student):
    out = tmp_path / "sweep"
    code = main(["sweep", "encoders", "--student", str(tiny_student), "--workers", "1", "--out", str(out),
                 "--axis", "update_encoder=original,sparse_q8", "--set", *TINY_SET, "max_seconds=10"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(pd.read_csv(out / "table.csv")) == 2 and "wrote" in captured.out
    summary = json.loads((out / "runs" / "update_encoder=sparse_q8" / "summary.json").read_text())
    assert summary["update_encoder"] == "sparse_q8"


@pytest.mark.parametrize("args, message", [
    (["sweep", "vibes", "--out", "{out}"], "unknown experiment 'vibes'"),
    (["sweep", "strategies", "--axis", "fraction=2", "--out", "{out}"], "fraction must be in"),
    (["claims", "--video", "{tmp}/clip.mp4", "--out", "{out}"], "needs a teacher"),
    (["claims", "--set", "atr=true", "--out", "{out}"], "atr=true needs asr=true"),
])
def test_cli_sweep_and_claims_errors(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([a.format(tmp=tmp_path, out=out) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert not out.exists()


def test_claims_cells_escape_bars():
    from amslib.analysis.claims import _cell

    assert _cell("|gradient| 56.4") == "\\|gradient\\| 56.4"
    row = "| " + " | ".join(_cell(t) for t in ("a|b", "c")) + " |"
    assert row.replace("\\|", "").count("|") == 3  # three column bars: two cells


def test_capacity_grid_puts_the_server_on_the_clock_unless_the_base_chose(base):
    jobs = experiment_jobs("capacity", base, quick=True)
    assert sorted((j.params["devices"], j.params["scheduler"]) for j in jobs) == [
        (1, "fifo"), (1, "utility"), (2, "fifo"), (2, "utility"), (4, "fifo"), (4, "utility")]
    assert all(j.config.server.server_time == "measured" and j.config.scheme == "ams" for j in jobs)
    assert all(j.config.max_seconds == 80.0 for j in jobs)
    fixed = with_overrides(base, {"server_time": "fixed", "step_base_s": 0.5})
    assert {j.config.server.server_time for j in experiment_jobs("capacity", fixed, quick=True)} == {"fixed"}


def test_a_capacity_sweep_writes_fleet_runs_a_table_and_its_figure(base, tmp_path):
    tiny = with_overrides(base, {"max_seconds": 20.0, "first_update_s": 5.0, "update_interval_s": 5.0,
                                 "server_time": "fixed", "step_base_s": 0.4, "ledger_all_encoders": False})
    sweep = run_experiment("capacity", tiny, axes={"devices": (1, 2), "scheduler": ("fifo",), "update_interval_s": (5.0,)},
                           workers=1, out=tmp_path / "cap")
    table = pd.read_csv(tmp_path / "cap" / "table.csv")
    assert list(table["devices"]) == [1, 2]
    assert {"miou_window_worst", "staleness_mean_s", "gpu_utilisation"} <= set(table.columns)
    assert table["gpu_utilisation"].iloc[1] > table["gpu_utilisation"].iloc[0]
    assert "capacity" in sweep.figures
    two = tmp_path / "cap" / "runs" / sweep.jobs[1].name
    assert (two / "device_01" / "frames.csv").is_file() and (two / "server.csv").is_file()


def test_sweep_progress_counts_runs_and_passes_results_on(capsys):
    from amslib.analysis.experiments import Job, sweep_progress

    seen = []
    with sweep_progress(2, "capacity", lambda job, result: seen.append((job.name, result))) as follow:
        follow(Job("devices=1", RunConfig()), "r1")
        follow(Job("devices=2", RunConfig()), "r2")
    assert seen == [("devices=1", "r1"), ("devices=2", "r2")]
    err = capsys.readouterr().err  # tqdm's text bar outside a notebook
    assert "capacity: runs" in err and "2/2" in err and "devices=2" in err


def test_sweep_view_puts_each_varied_parameter_in_a_column():
    from amslib.analysis.experiments import Job, Sweep

    jobs = [Job(f"devices={d},scheduler={s}", RunConfig(), {"devices": d, "scheduler": s, "update_interval_s": 10.0})
            for d in (1, 2) for s in ("fifo",)]
    table = pd.DataFrame({"run": [j.name for j in jobs], "devices": [1, 2], "scheduler": ["fifo", "fifo"],
                          "update_interval_s": [10.0, 10.0], "miou_window": [40.123456, 38.98765],
                          "downlink_kbps": [12.3456, 24.6913], "video": ["synthetic:street"] * 2})
    view = Sweep("capacity", jobs, {}, table, {}).view()
    assert view.index.names == ["devices"]  # scheduler and interval do not differ
    assert list(view.columns) == ["miou_window", "downlink_kbps"]
    assert view.loc[2, "miou_window"] == 38.99 and view.loc[1, "downlink_kbps"] == 12.35
