"""AMS and One-Time customization (SPEC.md): the server trains on the samples the edge sent
up and sends the chosen parameters down; ASR adapts the sampling rate r, ATR the interval.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from amslib.core.clock import TIME_EPS_S
from amslib.core.config import AdaptConfig
from amslib.core.metrics import frame_counts, label_similarity, miou_pooled
from amslib.models.student import set_flat_weights
from amslib.sim.sampling import sample_due
from amslib.sim.schemes.base import Scheme, server_columns
from amslib.sim.server import Job
from amslib.sim.state import RunState, Sample

# ASR and ATR (SPEC.md, "Mechanisms"): r <- clip(r - 0.2 tanh(20 (phi - 0.6)), 0.1, 1.0); and
# when the mean of the last 5 rates < 0.25, the update interval grows by 2 s per update up
# to 6 tau, back to tau once that mean rises above 0.35.
ASR_STEP_FPS, ASR_GAIN, ASR_TARGET_PHI = 0.2, 20.0, 0.6
ATR_HISTORY, ATR_SLEEP_BELOW_FPS, ATR_WAKE_ABOVE_FPS = 5, 0.25, 0.35
ATR_GROWTH_S, ATR_MAX_FACTOR = 2.0, 6.0


def asr_rate(rate_fps: float, phi: float, *, min_fps: float, max_fps: float) -> float:
    """ASR: r <- clip(r - 0.2 tanh(20 (phi - 0.6)), min, max); r unchanged when phi is NaN."""
    if math.isnan(phi):
        return rate_fps
    step = ASR_STEP_FPS * math.tanh(ASR_GAIN * (phi - ASR_TARGET_PHI))
    return float(min(max_fps, max(min_fps, rate_fps - step)))


def atr_interval(interval_s: float, hibernating: bool, rates_fps: list[float], *,
                 tau_s: float) -> tuple[float, bool]:
    """ATR: (next update interval, hibernating) from the history of sampling rates.

    Hibernate while the mean of the last 5 rates is < 0.25 and keep hibernating (growing the
    interval by 2 s per update, up to 6 tau) until that mean rises above 0.35; then tau again.
    (The original never appended to the history, so its ATR never acted: SPEC.md, defects.)"""
    mean = float(np.mean(rates_fps[-ATR_HISTORY:]))
    if mean > ATR_WAKE_ABOVE_FPS:
        return tau_s, False
    if mean < ATR_SLEEP_BELOW_FPS or hibernating:
        return min(interval_s + ATR_GROWTH_S, ATR_MAX_FACTOR * tau_s), True
    return interval_s, False


class AmsScheme(Scheme):
    """AMS (SPEC.md): sample at r fps, every tau seconds train on the last T seconds of
    samples and send the chosen parameters; ASR adapts r, ATR adapts tau."""

    segments = True

    def start(self, state: RunState) -> None:
        self.rate_fps = self.sim.adapt.sample_rate_fps
        self.interval_s = self.sim.adapt.update_interval_s
        self.hibernating = False
        self.rates: list[float] = []
        self.last_label: np.ndarray | None = None
        self.job: Job | None = None  # the last update handed to the server
        self.asked_s: float | None = None  # when a postponed or replaced update was first asked for
        # the server copy's accuracy on its newest samples right after the last update (the
        # utility scheduler serves first the device that fell most below it; 1.0 before any)
        self.accuracy_after = 1.0

    def first_update_s(self) -> float:
        return self.sim.adapt.first_update_s

    def sample_rate_fps(self, state: RunState) -> float:
        return self.rate_fps

    def wants_sample(self, state: RunState, index: int, t_s: float) -> bool:
        # r is in samples per second everywhere (the original mixed it with a fraction of frames)
        if not sample_due(t_s, state.next_sample_s):
            return False
        state.next_sample_s += 1.0 / self.rate_fps
        return True

    def wait_or_supersede(self, state: RunState, t_s: float) -> tuple[bool, dict | None]:
        """Before a new update: (postponed, row). While the server still trains the last one,
        this one waits for it (postponed: the update is asked again when it ends); one still
        waiting for a GPU is withdrawn and this newer one takes its place (its row, unsent)."""
        job = self.job
        if job is not None and job.end_s is not None and job.end_s > t_s + TIME_EPS_S:
            state.next_update_s = job.end_s
            self.asked_s = t_s if self.asked_s is None else self.asked_s  # its place in the queue
            return True, None
        if job is not None and job.end_s is None and self.sim.server.cancel(job):
            self.asked_s = job.place_s  # the newer one takes the withdrawn one's place
            return False, {**job.row, "sent": False, "superseded_by_newer": True, "t_arrival_s": math.nan}
        return False, None

    def update(self, state: RunState, t_s: float) -> dict | None:
        postponed, withdrawn = self.wait_or_supersede(state, t_s)
        if postponed:
            return None
        if withdrawn is not None:
            state.ledger.append(withdrawn)
        changes = self.sim.take_policy_changes()
        # A new r, or ASR switched off, restarts from the policy's r (ASR had moved it);
        # likewise the interval when ATR is switched off.
        if "sample_rate_fps" in changes or changes.get("asr") is False:
            self.rate_fps = self.sim.adapt.sample_rate_fps
        if "update_interval_s" in changes or changes.get("atr") is False:
            self.interval_s, self.hibernating = self.sim.adapt.update_interval_s, False
        # With an H.264 uplink the interval's samples go up as one stream now, and the server
        # starts once it has arrived (t_train_s) and a GPU is free (t_start_s).
        t_train = self.sim.flush_outbox(state, t_s, rate_fps=self.rate_fps)
        ready = self._ready(state, t_s, t_train)
        row = self._row(state, t_s, ready, changes)
        row.update(self._adapt_rates(ready))
        state.next_update_s = t_s + self.interval_s
        row.update(update_interval_s=self.interval_s, t_train_s=t_train)  # interval to the next update
        if not ready:
            row.update(t_arrival_s=math.nan, sent=False)
            self.asked_s = None
            return row
        self.submit(state, t_s, t_train, row, ready, self.sim.adapt)
        return None

    def _ready(self, state: RunState, t_s: float, arrived_by_s: float) -> list[Sample]:
        """Samples of the last `horizon_s` before `t_s` that have arrived by `arrived_by_s`
        (older ones are dropped)."""
        state.buffer = [s for s in state.buffer if s.t_s >= t_s - self.sim.adapt.horizon_s]
        return [s for s in state.buffer if s.arrival_s <= arrived_by_s + TIME_EPS_S]

    def _row(self, state: RunState, t_s: float, ready: list[Sample], changes: dict) -> dict:
        adapt = self.sim.adapt
        row = {"update": state.updates + 1, "t_update_s": t_s, "num_samples": len(ready),
               "policy_changes": ", ".join(f"{k}={v}" for k, v in changes.items())}
        row.update({k: getattr(adapt, k) for k in ("strategy", "fraction", "iterations", "batch_size",
                                                   "lr", "update_interval_s", "horizon_s",
                                                   "reset_to_pretrained", "optimizer_state")})
        return row

    def _adapt_rates(self, ready: list[Sample]) -> dict:
        """ASR and ATR on the samples received since the last update (SPEC.md, "ASR/ATR")."""
        new = sorted((s for s in ready if not s.seen), key=lambda s: s.t_s)
        for s in new:
            s.seen = True
        adapt = self.sim.adapt
        phi = math.nan
        if new:
            phi = label_similarity(np.stack([s.label for s in new]), previous=self.last_label,
                                   class_ids=self.sim.video.class_ids)
            self.last_label = new[-1].label
        if adapt.asr:
            self.rate_fps = asr_rate(self.rate_fps, phi, min_fps=adapt.asr_min_fps, max_fps=adapt.asr_max_fps)
            self.rates.append(self.rate_fps)
        if adapt.atr:
            self.interval_s, self.hibernating = atr_interval(
                self.interval_s, self.hibernating, self.rates, tau_s=adapt.update_interval_s)
        # r and the interval from now on: what ASR/ATR chose (or the policy's values)
        return {"num_new_samples": len(new), "phi": phi, "sample_rate_fps": self.rate_fps,
                "hibernating": self.hibernating}

    def submit(self, state: RunState, t_s: float, t_ready: float, row: dict, samples: list[Sample],
               policy: AdaptConfig) -> None:
        """Hand the update to the server: when a GPU takes it, it labels the samples not yet
        labelled, trains on all of them under `policy`, and sends the result when done."""

        newest_s = max(s.t_s for s in samples)  # the newest frame the update is computed from

        def run(start_s: float) -> tuple[float, None]:
            unlabelled = [s for s in samples if not s.labelled]
            for s in unlabelled:
                s.labelled = True
            times = self.sim.times
            # a step trains on min(batch_size, samples) frames: the batch the trainer draws
            batch = min(policy.batch_size, len(samples))
            end_s = start_s + times.teacher_s(len(unlabelled)) + times.train_s(policy.iterations, batch)
            row.update(self._train_and_send(state, end_s, samples, policy, captured_s=newest_s))
            if self.sim.server.scheduler == "utility":  # what the new model reaches on its newest samples
                self.accuracy_after = self.server_accuracy(samples)
            state.ledger.append(server_columns(row, t_s, t_ready, start_s, end_s, captured_s=newest_s,
                                               fps=self.sim.video.fps))
            return end_s, None

        job = Job(device=self.sim.device, kind="update", t_request_s=t_s, ready_s=t_ready, run=run, row=row,
                  place_s=self.asked_s)
        self.asked_s = None
        if self.sim.server.scheduler == "utility":
            set_flat_weights(self.sim.trainer.model, state.server_weights)  # what the edge runs, as the server knows it
            job.utility = row["utility"] = self.accuracy_after - self.server_accuracy(samples)
        self.job = self.sim.submit(job)

    def server_accuracy(self, samples: list[Sample], *, newest: int = 2) -> float:
        """The server copy's mIoU (0..1) on the `newest` samples' labels, pooled: the utility
        scheduler's measure (Ekya's micro-profiler in spirit). Its time is not charged."""
        recent = sorted(samples, key=lambda s: s.t_s)[-newest:]
        pred = self.sim.students.server_predictor(np.stack([s.frame for s in recent]))
        counts = frame_counts(np.stack([s.label for s in recent]), pred, class_ids=self.sim.video.class_ids)
        value = miou_pooled(counts)
        return 1.0 if math.isnan(value) else float(value)

    def _train_and_send(self, state: RunState, t_s: float, samples: list[Sample], policy: AdaptConfig, *,
                        captured_s: float) -> dict:
        """Train on `samples` under `policy` and send the result at `t_s` (the ledger only records)."""
        base = self.sim.pretrained if policy.reset_to_pretrained else state.server_weights
        tic = time.perf_counter()
        with self.sim.timed("server_training"):
            result = self.sim.trainer.update(np.stack([s.frame for s in samples]), np.stack([s.label for s in samples]),
                                             base=base, policy=policy, rng=state.rng)
        train_wall_s = time.perf_counter() - tic
        ledger = self.sim.send_model(state, t_s, result.values, result.mask, base, captured_s=captured_s)
        return {**ledger, "loss_first": result.losses[0], "loss_last": result.losses[-1],
                "train_wall_s": train_wall_s}


class OneTimeScheme(AmsScheme):
    """One-Time customization: sample the first `one_time_s` seconds, fine-tune the whole
    model once on all of them (strategy full, `one_time_iterations` steps), send it, then
    freeze. No ASR/ATR."""

    def first_update_s(self) -> float:
        return self.sim.adapt.one_time_s

    def wants_sample(self, state: RunState, index: int, t_s: float) -> bool:
        return t_s < self.sim.adapt.one_time_s and super().wants_sample(state, index, t_s)

    def update(self, state: RunState, t_s: float) -> dict | None:
        changes = self.sim.take_policy_changes()
        t_train = self.sim.flush_outbox(state, t_s, rate_fps=self.rate_fps)
        ready = [s for s in state.buffer if s.arrival_s <= t_train + TIME_EPS_S]  # all of them: no horizon
        row = self._row(state, t_s, ready, changes)
        row.update(strategy="full", fraction=1.0, sample_rate_fps=self.rate_fps, num_new_samples=len(ready),
                   phi=math.nan, hibernating=False, t_train_s=t_train)
        state.next_update_s = math.inf
        if not ready:
            row.update(t_arrival_s=math.nan, sent=False)
            return row
        policy = replace(self.sim.adapt, strategy="full", fraction=1.0, iterations=self.sim.adapt.one_time_iterations)
        row.update(iterations=policy.iterations)
        self.submit(state, t_s, t_train, row, ready, policy)
        return None
