"""The server on the simulated clock: what its work costs, and the GPUs that do it.

Every scheme hands its server work (label these samples and train; label this key frame and
train until it passes; label this key frame) to a `Server` as a `Job`. A job waits until its
inputs have arrived and a GPU is free; the GPU then runs it, and the job itself says when it
ends (Just-In-Time only knows how many steps it needs once it has run them) and sends its
result down at that time. With `server_time=off` every job takes no time, so a job runs the
moment its inputs are there: exactly the free server of the earlier tables.

Several edge devices may share one server (amslib/sim/fleet.py): waiting jobs are taken, each
time a GPU is free, by the scheduler (`fifo`: the earliest place in the queue, which a job
keeps when a newer one of its device replaces it or is asked again after its device's last
job, ties in turn; `round_robin`: the next device in turn; `utility`: the device whose
accuracy fell most since its last update, as the server measures it on that device's newest
samples).

Costs (`ServerTimes`): a training step on b frames takes step_base_s + b * step_frame_s and the
teacher takes teacher_frame_s per frame, divided by `speedup`; from a shipped profile, fixed
numbers, or `measured`: this machine's own step and teacher, timed once per student shape,
resolution and batch size and cached in <data root>/server_times.json.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from amslib.core.clock import TIME_EPS_S
from amslib.core.config import SCHEDULERS, ConfigError, RunConfig, ServerConfig
from amslib.core.files import CACHE_LOG, data_root, write_json
from amslib.core.profiles import SERVER_PROFILES

MEASURE_REPEATS = 5  # timed repetitions of each step or teacher call (after one untimed warm-up)


@dataclass(frozen=True)
class ServerTimes:
    """Seconds of server work: a training step on b frames, and the teacher on n frames."""

    step_base_s: float = 0.0
    step_frame_s: float = 0.0
    teacher_frame_s: float = 0.0
    speedup: float = 1.0
    source: str = "off"  # where the numbers came from, for the run's conditions

    def train_s(self, steps: int, batch: int) -> float:
        return steps * (self.step_base_s + batch * self.step_frame_s) / self.speedup

    def teacher_s(self, frames: int) -> float:
        return frames * self.teacher_frame_s / self.speedup

    @property
    def free(self) -> bool:
        return self.step_base_s == self.step_frame_s == self.teacher_frame_s == 0.0


@dataclass
class Job:
    """Server work for one device. `run(start_s)` does the work as of `start_s` and returns
    (end_s, ledger row or None); it is called once, when a GPU takes the job."""

    device: int
    kind: str  # "update" (AMS, One-Time), "key_frame" (Just-In-Time, remote tracking), "labels" (edge_train)
    t_request_s: float  # when the scheme asked (a scheduled update, a key frame's arrival)
    ready_s: float  # when its inputs are at the server (>= t_request_s)
    run: Callable[[float], tuple[float, dict | None]]
    utility: float = 0.0  # the `utility` scheduler serves the largest first
    row: dict | None = None  # the ledger row it will complete (a withdrawn job's row says so)
    # its place in the fifo queue: when the device first asked for this work (a job that replaces
    # a waiting one, or one asked again after the device's last job ended, keeps the earlier
    # place); None: ready_s
    place_s: float | None = None
    seq: int = 0
    start_s: float | None = None  # set when a GPU takes it
    end_s: float | None = None
    gpu: int | None = None


@dataclass
class Server:
    """`gpus` GPUs taking waiting jobs by `scheduler`; `busy` logs every job run."""

    gpus: int = 1
    scheduler: str = "fifo"
    free_at_s: list[float] = field(default_factory=list)
    waiting: list[Job] = field(default_factory=list)
    busy: list[dict] = field(default_factory=list)
    before_run: Callable[[Job], None] | None = None  # a fleet swaps the device's server state in
    # when each device's last job ends: one job per device in flight, on any number of GPUs (a
    # device's next job starts from what its last one produces)
    device_free_at_s: dict[int, float] = field(default_factory=dict)
    _seq: int = 0
    _last_device: int = -1

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'")
        self.free_at_s = [0.0] * self.gpus

    def submit(self, job: Job) -> Job:
        job.ready_s = max(job.ready_s, job.t_request_s)
        job.place_s = job.ready_s if job.place_s is None else min(job.place_s, job.ready_s)
        self._seq += 1
        job.seq = self._seq
        self.waiting.append(job)
        return job

    def cancel(self, job: Job) -> bool:
        """Withdraw a job that no GPU has taken yet; False if it already ran."""
        if job in self.waiting:
            self.waiting.remove(job)
            return True
        return False

    def next_start_s(self) -> float:
        """When the next waiting job can start (inf if none waits)."""
        if not self.waiting:
            return math.inf
        return max(min(self.free_at_s), min(self._earliest_s(j) for j in self.waiting))

    def _earliest_s(self, job: Job) -> float:
        """When `job` may start: its inputs are there and its device's last job has ended."""
        return max(job.ready_s, self.device_free_at_s.get(job.device, -math.inf))

    def dispatch(self, now_s: float) -> list[Job]:
        """Run every job that can start by `now_s`, in start order; returns them. Call it only
        once every device has reached `now_s` (so every job asked for by then is waiting)."""
        done = []
        while self.waiting and (t := self.next_start_s()) <= now_s + TIME_EPS_S:
            gpu = int(np.argmin(self.free_at_s))
            start = max(t, self.free_at_s[gpu])
            job = self._pick([j for j in self.waiting if self._earliest_s(j) <= start + TIME_EPS_S])
            self.waiting.remove(job)
            if self.before_run is not None:
                self.before_run(job)
            job.start_s, job.gpu = start, gpu
            job.end_s, _ = job.run(start)
            self.free_at_s[gpu] = self.device_free_at_s[job.device] = job.end_s
            self._last_device = job.device
            self.busy.append({"gpu": gpu, "device": job.device, "kind": job.kind, "t_request_s": job.t_request_s,
                              "t_ready_s": job.ready_s, "t_start_s": start, "t_end_s": job.end_s,
                              "queue_wait_s": start - job.ready_s})
            done.append(job)
        return done

    def _pick(self, ready: list[Job]) -> Job:
        def turn(j: Job) -> int:  # the devices after the last one served come first
            return (j.device - self._last_device - 1) % (1 << 30)

        if self.scheduler == "utility":
            return min(ready, key=lambda j: (-j.utility, j.place_s, turn(j), j.seq))
        if self.scheduler == "round_robin":
            return min(ready, key=lambda j: (turn(j), j.place_s, j.seq))
        # fifo: the earliest place in the queue; ties in turn, never always the lowest device
        return min(ready, key=lambda j: (j.place_s, turn(j), j.seq))

    def utilisation(self, duration_s: float) -> float:
        """Busy GPU-seconds within [0, duration_s] over gpus * duration_s."""
        return utilisation(self.busy, gpus=self.gpus, duration_s=duration_s)


def utilisation(busy, *, gpus: int, duration_s: float) -> float:
    """Busy GPU-seconds within [0, duration_s] of the jobs `busy` (rows with t_start_s and
    t_end_s: `Server.busy`, or a fleet's server table's records) over gpus * duration_s."""
    if duration_s <= 0:
        return 0.0
    return sum(max(0.0, min(b["t_end_s"], duration_s) - b["t_start_s"]) for b in busy) / (gpus * duration_s)


# -- what the work costs ---------------------------------------------------------------

def server_times(config: RunConfig, *, measure: Callable[[], ServerTimes] | None = None) -> ServerTimes:
    """The run's ServerTimes from `config.server`: free, fixed, a profile's entry, or measured
    (`measure()` times this machine; its result is cached per machine, student and batch)."""
    server: ServerConfig = config.server
    if server.server_time == "off":
        return ServerTimes(speedup=server.speedup)
    if server.server_time == "fixed":
        return ServerTimes(server.step_base_s, server.step_frame_s, server.teacher_frame_s, server.speedup, "fixed")
    if server.server_time in SERVER_PROFILES:
        try:
            entry = SERVER_PROFILES[server.server_time].entry(
                height=config.height, width_multiplier=config.width_multiplier,
                output_stride=config.output_stride, head_channels=config.head_channels)
        except KeyError as err:
            raise ConfigError(f"server_time={server.server_time}: {err.args[0]}") from None
        return ServerTimes(entry.step_base_s, entry.step_frame_s, entry.teacher_frame_s, server.speedup,
                           f"profile {server.server_time}")
    key = measured_key(config)
    cache = data_root() / "server_times.json"
    try:
        known = json.loads(cache.read_text()) if cache.is_file() else {}
        if not isinstance(known, dict):
            raise ValueError("not a table of measurements")
    except ValueError as err:  # a damaged file is never read as times: the run refuses
        raise ConfigError(f"{cache} is damaged ({err}); remove it with `python -m amslib cache --clear "
                          "server_times` (the next measured run measures again)") from None
    if key in known and entry_checksum(key, known[key]) != known[key].get("sha256"):
        CACHE_LOG.warning("server times: the entry for %s in %s is damaged or unchecked: measured again", key, cache)
        del known[key]
    if key not in known:
        if measure is None:
            raise ConfigError("server_time=measured needs the run's students to time (Simulation.create does it)")
        times = measure()
        entry = {k: v for k, v in asdict(times).items() if k not in ("speedup", "source")}
        known[key] = {**entry, "sha256": entry_checksum(key, entry)}
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, known)
    entry = known[key]
    return ServerTimes(entry["step_base_s"], entry["step_frame_s"], entry["teacher_frame_s"], server.speedup,
                       "measured on this machine")


SERVER_TIME_KEYS = ("step_base_s", "step_frame_s", "teacher_frame_s")


def entry_checksum(key: str, entry: dict) -> str | None:
    """SHA-256 of a measurement's key and its three times (None: a time is missing), recorded
    with it when it is measured and checked when it is read."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), (int, float)) for k in SERVER_TIME_KEYS):
        return None
    return hashlib.sha256(json.dumps([key, *(float(entry[k]) for k in SERVER_TIME_KEYS)]).encode()).hexdigest()


def measured_key(config: RunConfig) -> str:
    """The cache key of a measurement: machine, student shape, resolution and batch."""
    return (f"{platform.node()}|{platform.machine()}|{platform.processor() or '-'}|h{config.height}"
            f"|w{config.width_multiplier:g}|os{config.output_stride}|hc{config.head_channels}"
            f"|b{config.adapt.batch_size}|{config.student}")


def time_calls(fn: Callable[[], object], *, repeats: int = MEASURE_REPEATS) -> float:
    """Median seconds of `fn()` over `repeats` calls after one untimed warm-up call."""
    fn()
    spans = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        spans.append(time.perf_counter() - tic)
    return float(np.median(spans))


def fit_step(seconds_at_1: float, seconds_at_b: float, batch: int) -> tuple[float, float]:
    """(step_base_s, step_frame_s) of the line through (1, seconds_at_1) and (batch,
    seconds_at_b); one point (batch 1) gives all of it to the per-frame part."""
    if batch <= 1:
        return 0.0, seconds_at_1
    per_frame = max(0.0, (seconds_at_b - seconds_at_1) / (batch - 1))
    return max(0.0, seconds_at_1 - per_frame), per_frame


def measure_server(trainer, teacher, frames: np.ndarray, labels: np.ndarray, *, batch: int,
                   num_classes: int) -> ServerTimes:
    """Time this machine's server work: the run's own training step (trainer, at batch 1 and
    at `batch`) and its teacher on one frame. A teacher that does not compute (the synthetic
    video's exact labels, a folder of labels) is stood in for by the heaviest student the
    workbench builds, width 1.0 at output stride 8, at the run's resolution; the paper's
    Xception-65 teacher is heavier still (docs/server.md)."""
    from amslib.models.student import Predictor, StudentSpec, build_student  # deferred: a model is built only when measuring

    def steps(b: int) -> float:
        pick = np.arange(b) % len(frames)
        return time_calls(lambda: trainer.step_on(frames[pick], labels[pick]))

    weights = [v.numpy() for v in trainer.model.weights]
    optimizer = [v.numpy() for v in trainer.optimizer.variables]
    trainer.unmask()
    base_s, frame_s = fit_step(steps(1), steps(batch), batch)
    for v, w in zip(trainer.model.weights, weights):  # timing trained the copy: put it back
        v.assign(w)
    for v, w in zip(trainer.optimizer.variables, optimizer):
        v.assign(w)
    if teacher.labels_pixels:
        teacher_s = time_calls(lambda: teacher.steady_label(frames[:1]))  # the model itself, never a cache
    else:
        h, w = frames.shape[1:3]
        stand_in = Predictor(build_student(StudentSpec(num_classes=num_classes, height=h, width=w,
                                                       width_multiplier=1.0, output_stride=8)), batch_size=1)
        teacher_s = time_calls(lambda: stand_in(frames[:1]))
    return ServerTimes(base_s, frame_s, teacher_s, source="measured on this machine")
