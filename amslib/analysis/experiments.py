"""The paper's experiments as sweeps: many runs of the simulation, one tidy table, plots.

An experiment is a grid over parameters (`Experiment.axes`, any `--set` name); each grid
point is a `Job` (a full RunConfig) and each job one simulation. `run_sweep` runs jobs in
parallel in worker processes on this machine, or on a Dask cluster given its scheduler
address (`--cluster tcp://host:8786`), which must have amslib installed on its workers:

    sweep = run_experiment("strategies", preset("laptop"), quick=True, out="runs/strategies")
    sweep.table                 # one row per run: its parameters and summary numbers
    sweep.figures["pareto"]     # mIoU against downlink Kbps, the Pareto front marked

Experiments (EXPERIMENTS): `schemes` (AMS against the four baselines), `strategies`
(strategy x fraction), `horizon` (training horizon T x evaluation horizon tau: the
original's `horizon` mode, where each model is used for tau seconds after training on the
last T), `asr` (ASR/ATR on and off, on the video and on the near-static synthetic:parked),
`encoders` (every update encoder; the edge applies what it decodes), `capacity` (devices per
GPU x scheduler x update interval: fleet runs with the server's time on the clock,
amslib/analysis/fleet.py).
"""
from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from amslib.analysis.fleet import FleetResult, run_fleet, save_fleet
from amslib.analysis.plots import bars_figure, capacity_figure, figures_html, heatmap_figure, pareto_figure
from amslib.analysis.results import SUMMARY_COLUMNS as RESULT_COLUMNS
from amslib.analysis.results import RunResult, save_result
from amslib.analysis.runs import simulate
from amslib.core.config import (
    SCHEDULERS,
    SCHEMES,
    STRATEGIES,
    UPDATE_ENCODERS,
    ConfigError,
    RunConfig,
    _field_owner,
    with_overrides,
)
from amslib.core.files import atomic_write
from amslib.core.labels import get_label_set
from amslib.data.video import important_classes, open_video_for
from amslib.models.teachers import LabelFolderTeacher
from amslib.sim.engine import Students

TABLE_FILE, REPORT_FILE = "table.csv", "report.html"
SUMMARY_COLUMNS = ("scheme", "video", "duration_s", "eval_from_s", *RESULT_COLUMNS)
# a fleet run's own columns (capacity)
FLEET_COLUMNS = ("miou_window_worst", "staleness_mean_s", "staleness_worst_s", "model_age_mean_s", "model_age_worst_s",
                 "devices_unserved", "server_queue_wait_mean_s",
                 "gpu_utilisation")
# what `Sweep.view` shows of a run by default
VIEW_COLUMNS = ("miou_window", "miou_window_worst", "staleness_mean_s", "gpu_utilisation", "uplink_kbps",
                "downlink_kbps", "num_updates")


@dataclass(frozen=True)
class Job:
    """One run of a sweep: `params` are its grid coordinates (columns of the table).
    A video file needs `labels` (a folder of gt_%06d.png), as for `amslib run`."""

    name: str
    config: RunConfig
    params: dict = field(default_factory=dict)
    labels: str | None = None
    label_set: str = "cityscapes19"
    manifest: str | None = None


@dataclass(frozen=True)
class Experiment:
    """A grid of runs: the product of `axes` (parameter -> values), filtered by `keep`."""

    name: str
    description: str
    axes: dict[str, tuple]
    quick_axes: dict[str, tuple]
    heatmap: tuple[str, str] | None = None  # (x, y) parameters of a heatmap of mIoU
    keep: Callable[[dict], bool] = lambda params: True
    fixed: dict = field(default_factory=dict)  # parameters every run of it sets, whatever the preset
    quick_fixed: dict = field(default_factory=dict)  # and those its quick grid sets
    defaults: dict = field(default_factory=dict)  # parameters it sets unless the base changed them
    figure: Callable | None = None  # its own figure of the table, beside the Pareto and bar plots


def _no_atr_without_asr(params: dict) -> bool:
    return params.get("asr", False) or not params.get("atr", False)


def _full_once(params: dict) -> bool:
    """`full` ignores the fraction: run it once, at the grid's largest fraction."""
    return params.get("strategy") != "full" or params.get("fraction") == params.get("_max_fraction")


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("schemes", "AMS against the four baselines (SPEC.md, Baselines) and adaptation on the edge alone",
               {"scheme": SCHEMES.names}, {"scheme": SCHEMES.names}),
    Experiment("strategies", "which parameters to update, at equal fraction",
               {"strategy": STRATEGIES.names, "fraction": (0.01, 0.05, 0.1, 0.2)},
               {"strategy": ("gradient_guided", "gradient_magnitude", "random"), "fraction": (0.05, 0.2)},
               heatmap=("fraction", "strategy"), keep=_full_once),
    # Each update trains from the pretrained weights, as the original's horizon mode did, so a
    # model knows only its last T seconds (with updates that build on each other, T would not
    # limit what it learned).
    Experiment("horizon", "training horizon T x evaluation horizon tau (the original's horizon mode: "
               "every update from the pretrained weights)",
               {"horizon_s": (30.0, 60.0, 120.0, 240.0), "update_interval_s": (5.0, 10.0, 20.0, 40.0)},
               {"horizon_s": (10.0, 30.0), "update_interval_s": (5.0, 10.0)},
               heatmap=("update_interval_s", "horizon_s"), fixed={"reset_to_pretrained": True}),
    Experiment("asr", "adaptive sampling and training rates on and off, moving and static scenes",
               {"asr": (False, True), "atr": (False, True), "video": ("{video}", "synthetic:parked")},
               {"asr": (False, True), "atr": (False,), "video": ("{video}",)},
               keep=_no_atr_without_asr),
    Experiment("encoders", "every update encoder on the same policy (the edge applies what it decodes)",
               {"update_encoder": UPDATE_ENCODERS.names}, {"update_encoder": UPDATE_ENCODERS.names}),
    # AMS on N devices sharing one GPU whose training steps and teacher take this machine's
    # measured time: how many devices it keeps adapted, and how fairly (worst device).
    Experiment("capacity", "devices per GPU x scheduler x update interval: AMS fleets on one server "
               "whose work takes its measured time",
               {"devices": (1, 2, 4, 8), "scheduler": SCHEDULERS, "update_interval_s": (10.0, 20.0)},
               {"devices": (1, 2, 4), "scheduler": ("fifo", "utility")},
               fixed={"scheme": "ams"}, quick_fixed={"max_seconds": 80.0}, defaults={"server_time": "measured"},
               figure=lambda table, title: {"capacity": capacity_figure(table, title=title)}),
)}


def job_name(params: dict) -> str:
    """A file-system-safe name from grid coordinates: 'strategy=random,fraction=0.1'."""
    text = ",".join(f"{k}={v}" for k, v in params.items())
    return "".join(c if c.isalnum() or c in "=,._-" else "_" for c in text) or "run"


def grid_jobs(base: RunConfig, axes: dict[str, Iterable], *, keep: Callable[[dict], bool] = lambda p: True,
              labels: str | None = None, label_set: str = "cityscapes19",
              manifest: str | None = None) -> list[Job]:
    """One Job per point of the product of `axes` that `keep` accepts. A value '{video}'
    stands for the base video; 'synthetic:...' videos are skipped for a file base video
    (they would need no labels, but compare nothing with it)."""
    names = list(axes)
    values = [list(axes[n]) for n in names]
    fractions = [v for v in axes.get("fraction", ()) if isinstance(v, (int, float))]
    jobs = []
    for point in itertools.product(*values):
        params = dict(zip(names, point))
        if "video" in params:
            params["video"] = base.video if params["video"] == "{video}" else params["video"]
        if not keep({**params, "_max_fraction": max(fractions, default=None)}):
            continue
        config = with_overrides(base, params)
        file_labels = labels if not config.video.startswith("synthetic:") else None
        jobs.append(Job(job_name(params), config, params, file_labels, label_set, manifest))
    names_seen = [j.name for j in jobs]
    if len(set(names_seen)) != len(names_seen):
        raise ConfigError("two runs of the sweep have the same parameters; give each axis distinct values")
    return jobs


def parse_axes(base: RunConfig, items: dict[str, str]) -> dict[str, tuple]:
    """{'fraction': '0.05,0.1'} -> {'fraction': (0.05, 0.1)}, each value parsed and checked
    as a `--set` value of that parameter would be."""
    axes = {}
    for key, text in items.items():
        values = []
        for value in (v.strip() for v in text.split(",") if v.strip()):
            config = with_overrides(base, {key: value})
            sub, _ = _field_owner(config, key)
            values.append(getattr(config if sub is None else getattr(config, sub), key))
        if not values:
            raise ConfigError(f"--axis {key}= needs at least one value, e.g. {key}=a,b")
        axes[key] = tuple(values)
    return axes


def _value(config: RunConfig, key: str):
    owner, _ = _field_owner(config, key)
    return getattr(config if owner is None else getattr(config, owner), key)


def experiment_jobs(name: str, base: RunConfig, *, quick: bool = False,
                    axes: dict[str, Iterable] | None = None, **job_options) -> list[Job]:
    """The jobs of experiment `name` on `base`; `axes` replaces some of its value lists."""
    try:
        experiment = EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment '{name}'; choose one of: {', '.join(EXPERIMENTS)}") from None
    grid = dict(experiment.quick_axes if quick else experiment.axes)
    for key, values in (axes or {}).items():
        grid[key] = tuple(values)
    if "video" in grid and not base.video.startswith("synthetic:"):
        grid["video"] = ("{video}",)  # the synthetic parked scene compares nothing with a file
    fixed = {**experiment.fixed, **(experiment.quick_fixed if quick else {})}
    untouched = with_overrides(RunConfig(), {})  # the defaults a base may have left alone
    fixed.update({k: v for k, v in experiment.defaults.items()
                  if _value(base, k) == _value(untouched, k) and k not in fixed})
    return grid_jobs(with_overrides(base, fixed), grid, keep=experiment.keep, **job_options)


# -- running one job ---------------------------------------------------------------------------
_LOCAL = threading.local()  # traced students per worker thread: models are not shareable


def run_job(job: Job) -> RunResult | FleetResult:
    """Run one job in this process (a worker's entry point; reuses traced students); a job
    of several devices is a fleet run."""
    video, teacher = _open_job(job)
    cache = _LOCAL.__dict__.setdefault("students", {})
    key = Students.key_for(job.config, video)
    if key not in cache:
        cache.clear()  # one model pair at a time keeps a worker's memory flat
        cache[key] = Students.load(job.config, video)
    if job.config.server.devices > 1 or "devices" in job.params:  # a capacity grid's 1 is a fleet of one
        return run_fleet(job.config, video=None if job.config.video.startswith("synthetic:") else video,
                         teacher=teacher, students=cache[key])
    return simulate(job.config, video=video, teacher=teacher, students=cache[key])


def _open_job(job: Job):
    teacher = LabelFolderTeacher(job.labels) if job.labels else None
    held = teacher.present_classes(get_label_set(job.label_set).names) if teacher else None
    classes = important_classes(job.config.video, teacher_classes=held, manifest=job.manifest)
    video = open_video_for(job.config, classes=classes, label_set=job.label_set, manifest=job.manifest)
    return video, teacher


def _init_worker(threads: int) -> None:
    """A fresh worker process: quiet TensorFlow, on `threads` threads (as a run in-process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from amslib.core.tf import tf  # deferred: after the log level is set, in the worker process

    tf.config.threading.set_intra_op_parallelism_threads(threads)


# -- running many ------------------------------------------------------------------------------
def run_sweep(jobs: list[Job], *, workers: int | None = None, cluster: Any = None,
              on_result: Callable[[Job, RunResult], None] | None = None) -> dict[str, RunResult]:
    """Run `jobs` and return {job name: result} in job order.

    cluster: a Dask scheduler address ('tcp://host:8786') or a `distributed` Client/cluster;
    otherwise `workers` processes on this machine (default: one per core; 1 runs here, in
    this process). `on_result(job, result)` is called as each job finishes."""
    if len({j.name for j in jobs}) != len(jobs):
        raise ConfigError("job names must be unique within a sweep")
    if cluster is not None:
        done = _run_on_dask(jobs, cluster, on_result)
    else:
        workers = max(1, min(len(jobs), workers or os.cpu_count() or 1))
        done = _run_local(jobs, workers, on_result)
    return {j.name: done[j.name] for j in jobs}


def _run_local(jobs: list[Job], workers: int, on_result) -> dict[str, RunResult]:
    done: dict[str, RunResult] = {}
    if workers == 1:
        for job in jobs:
            done[job.name] = run_job(job)
            if on_result:
                on_result(job, done[job.name])
        return done
    # Each worker's TensorFlow gets as many threads as a run in this process has (its default:
    # every core), not cores / workers: Eigen splits a reduction by its pool's size, so a
    # worker on 1 thread computed other numbers than the same config in-process on 2 (AMS's
    # window mIoU 0.001 apart, payloads 1e-3; JIT's server time 37.6 against 36.6 s). The
    # workers share the cores; a run is reproducible from its config in either.
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # spawn, not fork: TensorFlow's runtime does not survive a fork
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(threads,))
    try:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            done[job.name] = future.result()
            if on_result:
                on_result(job, done[job.name])
    except BaseException:
        # report the first failure now, not after every other run: drop the queued runs and
        # end the running ones (the pool has no public way to stop a running task)
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        raise
    pool.shutdown(wait=True)
    return done


def _run_on_dask(jobs: list[Job], cluster: Any, on_result) -> dict[str, RunResult]:
    try:
        from distributed import Client  # deferred: only --cluster needs Dask's client
        from distributed import as_completed as dask_completed  # deferred, as Client
    except ImportError as err:  # pragma: no cover - dask is a dependency
        raise ConfigError("--cluster needs dask[distributed]: pip install 'dask[distributed]'") from err
    address = getattr(cluster, "scheduler_address", cluster)
    client = Client(address, set_as_default=False)
    try:
        run = uuid.uuid4().hex[:8]
        futures = {client.submit(run_job, job, key=f"amslib-{run}-{job.name}", pure=False): job for job in jobs}
        done: dict[str, RunResult] = {}
        for future in dask_completed(list(futures), loop=client.loop):
            job = futures[future]
            done[job.name] = future.result()
            if on_result:
                on_result(job, done[job.name])
        return done
    finally:
        client.close()


# -- tables, plots and files -------------------------------------------------------------------
def sweep_table(jobs: list[Job], results: dict[str, RunResult]) -> pd.DataFrame:
    """One row per run: name, grid parameters, summary numbers (mIoU in %, Kbps = 1000 bit/s)
    and the downlink Kbps its updates would take under every encoder."""
    rows = []
    for job in jobs:
        summary = results[job.name].summary()
        row = {"run": job.name, **{k: v for k, v in job.params.items()}}
        row.update({k: summary.get(k) for k in SUMMARY_COLUMNS if k not in row})
        if "devices" in job.params or isinstance(results[job.name], FleetResult):
            row.update({k: summary.get(k) for k in ("devices", "gpus", *FLEET_COLUMNS) if k not in row})
        row.update({f"downlink_kbps_{k}": v for k, v in summary["downlink_kbps_by_encoder"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Sweep:
    """What `run_experiment` returns: jobs, results, the tidy table and its figures."""

    name: str
    jobs: list[Job]
    results: dict[str, RunResult]
    table: pd.DataFrame
    figures: dict[str, Any]

    def view(self, columns: Iterable[str] = VIEW_COLUMNS, *, digits: int = 2) -> pd.DataFrame:
        """The table to show: the grid parameters that differ between runs as the index (one
        column each, not the long `run` name), then `columns` (those the table has), rounded."""
        params = list(dict.fromkeys(k for job in self.jobs for k in job.params))
        varied = [k for k in params if self.table[k].astype(str).nunique() > 1] or ["run"]
        return self.table.set_index(varied)[[c for c in columns if c in self.table]].round(digits)


@contextmanager
def sweep_progress(total: int, name: str, on_result: Callable | None = None) -> Iterator[Callable]:
    """A callback `follow(job, result)` that moves a bar of runs done out of `total` (the last
    one finished in its postfix) and passes the call on to `on_result`."""
    from tqdm.auto import tqdm  # deferred: tqdm.auto probes for Jupyter when imported

    bar = tqdm(total=total, desc=f"{name}: runs", unit="run", leave=True, dynamic_ncols=True)

    def follow(job: Job, result) -> None:
        bar.set_postfix_str(job.name, refresh=False)
        bar.update(1)
        if on_result is not None:
            on_result(job, result)
    try:
        yield follow
    finally:
        bar.close()


def run_experiment(name: str, base: RunConfig, *, quick: bool = False, axes: dict | None = None,
                   workers: int | None = None, cluster: Any = None, out: str | Path | None = None,
                   on_result: Callable[[Job, RunResult], None] | None = None, progress: bool = False,
                   **job_options) -> Sweep:
    """Build, run, tabulate and plot experiment `name`; with `out`, write its files there.
    `progress`: a bar of the runs done out of all, with tqdm's estimate of the time left."""
    jobs = experiment_jobs(name, base, quick=quick, axes=axes, **job_options)
    if progress:
        with sweep_progress(len(jobs), name, on_result) as follow:
            results = run_sweep(jobs, workers=workers, cluster=cluster, on_result=follow)
    else:
        results = run_sweep(jobs, workers=workers, cluster=cluster, on_result=on_result)
    sweep = Sweep(name, jobs, results, sweep_table(jobs, results), {})
    sweep.figures = sweep_figures(sweep.table, heatmap=EXPERIMENTS[name].heatmap, title=name,
                                  extra=EXPERIMENTS[name].figure)
    if out is not None:
        save_sweep(sweep, out)
    return sweep


def sweep_figures(table: pd.DataFrame, *, heatmap: tuple[str, str] | None, title: str,
                  extra: Callable | None = None) -> dict[str, Any]:
    """The Pareto plot, a bar chart of mIoU and bandwidth, a heatmap for 2-D grids, and the
    experiment's own figure (`extra(table, title)`), first."""
    figures = {**(extra(table, title) if extra else {}),"pareto": pareto_figure(table, title=f"{title}: mIoU against downlink"),
               "bars": bars_figure(table, title=title)}
    if heatmap and all(c in table for c in heatmap):
        figures["heatmap"] = heatmap_figure(table, x=heatmap[0], y=heatmap[1], title=title)
    return figures


def save_sweep(sweep: Sweep, out: str | Path) -> Path:
    """out/table.csv, out/report.html (figures) and out/runs/<run>/ (each run's tables)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for job in sweep.jobs:
        result = sweep.results[job.name]
        (save_fleet if isinstance(result, FleetResult) else save_result)(result, out / "runs" / job.name)
    atomic_write(out / TABLE_FILE, lambda tmp: sweep.table.to_csv(tmp, index=False))
    atomic_write(out / REPORT_FILE, lambda tmp: Path(tmp).write_text(
        figures_html(sweep.figures, title=f"AMS Workbench sweep: {sweep.name}", table=sweep.table)))
    return out
