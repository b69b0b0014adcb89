"""A fleet run: several edge devices, one server of `gpus` GPUs (ServerConfig.devices > 1).

Device k runs the configured scheme on its own video (`synthetic:street` with seed + k, or
the same video for all with `fleet_videos=same`), with its own links, scheme state and
samples; the server's GPUs take the devices' jobs by the scheduler (amslib/sim/server.py).
The devices advance on one clock: the device furthest behind runs next, never past the next
moment a GPU could take a job, so every job asked for by then is in the queue when the
scheduler chooses.

Memory stays flat in the number of devices: one traced edge model and one traced trainer
serve them all; each device keeps only its weights (and its Adam moments on the server),
swapped in when it runs.

    fleet = run_fleet(with_overrides(preset("laptop"), {"devices": 4, "server_time": "measured"}))
    fleet.summary()   # mean and worst device mIoU, staleness, GPU utilisation
    fleet.devices[2]  # device 2's RunResult (the tables of a one-device run)
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from amslib.analysis.results import ResultCollector, RunResult, save_result
from amslib.analysis.runs import simulation_progress
from amslib.core.clock import TIME_EPS_S
from amslib.core.config import ConfigError, RunConfig
from amslib.core.files import atomic_write, write_json
from amslib.models.student import set_flat_weights
from amslib.sim.engine import Simulation, Students
from amslib.sim.server import Job, Server, utilisation

FLEET_SCHEMES = ("none", "one_time", "ams", "jit", "remote_tracking")  # edge-only schemes need no server
SERVER_FILE, FLEET_SUMMARY_FILE = "server.csv", "fleet_summary.json"


@dataclass
class FleetResult:
    """Each device's RunResult, and the server's log: one row per job a GPU ran."""

    config: RunConfig
    devices: list[RunResult]
    server: pd.DataFrame  # gpu, device, kind, t_request_s, t_ready_s, t_start_s, t_end_s, queue_wait_s
    server_times: dict | None = None

    def device_table(self) -> pd.DataFrame:
        """One row per device: its mIoU, bandwidth, updates and staleness."""
        keys = ("miou_window", "miou_pooled", "uplink_kbps", "downlink_kbps", "num_updates",
                "staleness_mean_s", "model_age_mean_s", "server_queue_wait_mean_s")
        return pd.DataFrame([{"device": k, **{key: d.summary().get(key) for key in keys}}
                             for k, d in enumerate(self.devices)])

    def summary(self) -> dict:
        """Mean and worst device mIoU (%), staleness, model age, queue wait and GPU utilisation;
        the per-device summaries' bandwidths averaged; `miou_window` is the devices' mean.
        Staleness is over the updates that were sent (a device never served has none:
        `devices_unserved` counts the devices whose edge never ran an updated model); the
        model's age covers every device and frame, so a starved device shows there."""
        per_device = [d.summary() for d in self.devices]
        miou = _values(per_device, "miou_window")
        stale = _values(per_device, "staleness_mean_s")
        age = _values(per_device, "model_age_mean_s")
        duration = max(s["duration_s"] for s in per_device)
        server = self.server
        first = per_device[0]
        return {
            **{k: first[k] for k in ("scheme", "video", "duration_s", "eval_from_s", "update_encoder", "kbps_unit")},
            "devices": len(self.devices), "gpus": self.config.server.gpus, "scheduler": self.config.server.scheduler,
            "miou_window": _round(np.nanmean(miou)), "miou_window_worst": _round(np.nanmin(miou)),
            "miou_pooled": _round(np.nanmean(_values(per_device, "miou_pooled"))),
            "miou_frame_mean": _round(np.nanmean(_values(per_device, "miou_frame_mean"))),
            "uplink_kbps": float(np.mean([s["uplink_kbps"] for s in per_device])),
            "downlink_kbps": float(np.mean([s["downlink_kbps"] for s in per_device])),
            "num_updates": int(sum(s["num_updates"] for s in per_device)),
            "staleness_mean_s": _round(np.nanmean(stale)) if np.isfinite(stale).any() else None,
            "staleness_worst_s": _round(np.nanmax(stale)) if np.isfinite(stale).any() else None,
            # devices whose edge never ran anything but the pretrained model
            "devices_unserved": int(sum(int(d.frames["model_version"].max()) == 0 for d in self.devices)),
            "model_age_mean_s": _round(np.nanmean(age)) if np.isfinite(age).any() else None,
            "model_age_worst_s": _round(np.nanmax(age)) if np.isfinite(age).any() else None,
            "server_queue_wait_mean_s": _round(server["queue_wait_s"].mean()) if len(server) else 0.0,
            "gpu_utilisation": _round(utilisation(server.to_dict("records"), gpus=self.config.server.gpus,
                                                  duration_s=duration)),
            "downlink_kbps_by_encoder": {k: float(np.mean([s["downlink_kbps_by_encoder"][k] or 0.0 for s in per_device]))
                                         for k in first["downlink_kbps_by_encoder"]},
            "per_device_miou_window": [_round(v) for v in miou],
            "conditions": first["conditions"],
        }


def _values(summaries: list[dict], key: str) -> np.ndarray:
    """Each summary's `key` (None: NaN; a real 0.0 stays 0.0)."""
    return np.array([math.nan if s.get(key) is None else s[key] for s in summaries], float)


def _round(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 3)


def device_configs(config: RunConfig) -> list[RunConfig]:
    """Each device's config: seed + k (its own sampling and training draws; on a synthetic
    video also its own street, unless fleet_videos=same)."""
    if config.scheme not in FLEET_SCHEMES:
        why = ("trains on the edge, and a fleet of it (each device's training beside the server's labelling) is "
               "not modelled" if config.scheme == "edge_train" else "adapts on the edge alone")
        raise ConfigError(f"a fleet run needs a scheme with a server ({', '.join(FLEET_SCHEMES)}); "
                          f"'{config.scheme}' {why}: run it with devices=1")
    return [replace(config, seed=config.seed + k) for k in range(config.server.devices)]


def run_fleet(config: RunConfig, *, students: Students | None = None, teacher=None, video=None,
              on_event=None, progress: bool = False) -> FleetResult:
    """Run `config.server.devices` devices of `config` on one shared server (see the module
    docstring). `on_event(device, event)` follows it live; `progress` draws a bar of the
    frames done on all devices."""
    sims, server = fleet_simulations(config, students=students, teacher=teacher, video=video)
    collectors = [ResultCollector(sim.config, sim.video.classes) for sim in sims]
    on_progress, close = (simulation_progress(sum(sim.num_frames for sim in sims), f"{len(sims)} devices")
                          if progress else (None, lambda: None))
    try:
        for k, event in fleet_events(sims, server):
            collectors[k].add(event)
            if on_progress is not None:
                on_progress(event)
            if on_event is not None:
                on_event(k, event)
    finally:
        close()
    times = None if sims[0].times.free else asdict(sims[0].times)
    results = [replace(c.result(), server_times=times) for c in collectors]
    return FleetResult(config, results, server_table(server), times)


def fleet_simulations(config: RunConfig, *, students: Students | None = None, teacher=None,
                      video=None) -> tuple[list[Simulation], Server]:
    """The devices' simulations (one shared set of traced students) and their shared server."""
    sims: list[Simulation] = []
    distinct = config.server.fleet_videos == "seeds" and config.video.startswith("synthetic:") and video is None
    for k, device_config in enumerate(device_configs(config)):
        shared = None if distinct else (video if not sims else sims[0].video)
        sim = Simulation.create(device_config, students=students, teacher=teacher, video=shared)
        sim.device, students = k, sim.students
        sims.append(sim)
    server = Server(gpus=config.server.gpus, scheduler=config.server.scheduler)
    server.before_run = _adam_swapper(sims)
    return sims, server


def fleet_events(sims: list[Simulation], server: Server) -> Iterator[tuple[int, object]]:
    """Run the devices on one clock and yield (device, event) as they happen: the device
    furthest behind runs next, never past the next moment a GPU could take a job."""
    for sim in sims:
        sim.begin(server=server)
    edge_owner = None
    while any(not (sim.done or sim.stopped) for sim in sims):
        active = [k for k, sim in enumerate(sims) if not (sim.done or sim.stopped)]
        behind = min(active, key=lambda k: (sims[k].now_s, k))
        t_job = server.next_start_s()
        if t_job <= sims[behind].now_s + TIME_EPS_S:  # every device has reached it: the scheduler chooses
            server.dispatch(t_job)
            continue
        if edge_owner != behind:  # the one traced edge model runs this device's weights
            set_flat_weights(sims[behind].edge_predictor.model, sims[behind].state.edge_weights)
            edge_owner = behind
        for event in sims[behind].advance(until_s=t_job):
            yield behind, event
    server.dispatch(math.inf)  # work asked for before the end: its rows say when it would arrive
    for k, sim in enumerate(sims):
        for event in sim.finish():
            yield k, event


def server_table(server: Server) -> pd.DataFrame:
    """Every job the server's GPUs ran, one row each."""
    return pd.DataFrame(server.busy, columns=["gpu", "device", "kind", "t_request_s", "t_ready_s", "t_start_s",
                                              "t_end_s", "queue_wait_s"])


def _adam_swapper(sims: list[Simulation]):
    """The server copy's Adam moments belong to a device: swap them in before its job runs."""
    trainer = sims[0].trainer
    saved: dict[int, list[np.ndarray]] = {}
    owner = [None]

    def before_run(job: Job) -> None:
        if owner[0] == job.device:
            return
        if owner[0] is not None:
            saved[owner[0]] = [v.numpy() for v in trainer.optimizer.variables]
        if job.device in saved:
            for v, value in zip(trainer.optimizer.variables, saved[job.device]):
                v.assign(value)
        else:
            trainer.reset_optimizer(lr=sims[job.device].adapt.lr)
        owner[0] = job.device
    return before_run


def save_fleet(result: FleetResult, out: str | Path) -> Path:
    """out/device_<k>/ (each device's run files), out/server.csv and out/fleet_summary.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for k, device in enumerate(result.devices):
        save_result(device, out / f"device_{k:02d}")
    atomic_write(out / SERVER_FILE, lambda tmp: result.server.to_csv(tmp, index=False))
    write_json(out / FLEET_SUMMARY_FILE, {**result.summary(), "config": result.config.to_dict(),
                                          "server_times": result.server_times})
    return out
