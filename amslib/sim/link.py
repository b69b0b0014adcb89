"""The link between edge and server: a serial queue per direction with a bandwidth (constant
or a trace over time) and a one-way latency (SPEC.md, "The system": updates and labels
arrive late when the link is slow).

A trace is a CSV of (time_s, kbps) rows: the rate from each time until the next row's, the
last rate holding on. 1 Kbps = 1000 bit/s, as everywhere in the workbench.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from amslib.core.clock import TIME_EPS_S

_BITS_EPS = 1e-12  # bits left below this count as sent (float round-off, not a time)


@dataclass(frozen=True)
class RateTrace:
    """A piecewise-constant rate: `kbps[k]` from `times_s[k]` until `times_s[k + 1]`.

    times_s: (M,) float64, strictly increasing, times_s[0] == 0; kbps: (M,) float64 >= 0.
    """

    times_s: np.ndarray
    kbps: np.ndarray

    def __post_init__(self) -> None:
        t, r = np.asarray(self.times_s, float), np.asarray(self.kbps, float)
        if t.ndim != 1 or t.shape != r.shape or t.size == 0:
            raise ValueError("a rate trace needs equally long, non-empty time_s and kbps columns")
        if t[0] != 0 or np.any(np.diff(t) <= 0):
            raise ValueError("a rate trace's time_s must start at 0 and increase strictly; "
                             f"got {t[:5].tolist()}...")
        if np.any(r < 0) or not np.all(np.isfinite(r)):
            raise ValueError("a rate trace's kbps must be finite and >= 0")

    @classmethod
    def constant(cls, kbps: float) -> "RateTrace":
        return cls(np.array([0.0]), np.array([float(kbps)]))

    @classmethod
    def from_csv(cls, path: str | Path) -> "RateTrace":
        """Read a CSV with columns `time_s` and `kbps` (a header row is required). A trace
        that starts after 0 s is extended back to 0 s with its first rate."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"link trace not found: {path}; give a CSV with columns time_s,kbps")
        table = pd.read_csv(path)
        missing = {"time_s", "kbps"} - set(table.columns)
        if missing:
            raise ValueError(f"link trace {path} lacks column(s) {', '.join(sorted(missing))}; "
                             f"it has {', '.join(map(str, table.columns))}; expected time_s,kbps")
        t = table["time_s"].to_numpy(float)
        r = table["kbps"].to_numpy(float)
        if t.size and t[0] > 0:
            t, r = np.concatenate([[0.0], t]), np.concatenate([[r[0]], r])
        try:
            return cls(t, r)
        except ValueError as err:
            raise ValueError(f"link trace {path}: {err}") from None

    def kbps_at(self, t_s: float) -> float:
        return float(self.kbps[max(0, np.searchsorted(self.times_s, t_s, side="right") - 1)])

    def finish_s(self, start_s: float, bits: float) -> float:
        """When `bits` handed over at `start_s` have been transmitted (inf if the rate drops to
        0 for good before they are)."""
        t, remaining = float(start_s), float(bits)
        k = max(0, int(np.searchsorted(self.times_s, t, side="right")) - 1)
        while remaining > _BITS_EPS:
            rate = self.kbps[k] * 1000.0  # bit/s
            end = self.times_s[k + 1] if k + 1 < self.times_s.size else math.inf
            if rate > 0:
                needed = remaining / rate
                if t + needed <= end:
                    return t + needed
                remaining -= rate * (end - t)
            if math.isinf(end):
                return math.inf
            t, k = end, k + 1
        return t


@dataclass
class Transfer:
    """One hand-over to a link: when it was offered, started, finished and arrived, and its
    bits; `cancelled` when superseded before it started, `dropped` when refused by a full queue."""

    tag: object
    t_offered_s: float
    t_start_s: float
    t_done_s: float
    t_arrival_s: float
    bits: int
    cancelled: bool = False
    dropped: bool = False

    @property
    def queue_s(self) -> float:
        return self.t_start_s - self.t_offered_s


@dataclass
class Link:
    """One direction: transmissions queue behind each other (serial), then take `latency_s`.
    `rate` None means unlimited bandwidth (transmission takes no time). Every hand-over is
    logged in `transfers` (offered, queued, sent, arrived)."""

    rate: RateTrace | None
    latency_s: float = 0.0
    free_at_s: float = 0.0
    bits: int = 0
    transfers: list[Transfer] = field(default_factory=list)

    def send(self, t_s: float, bits: int, *, tag: object = None) -> float:
        """Arrival time of `bits` handed to the link at `t_s`."""
        start = max(t_s, self.free_at_s)
        done = start if self.rate is None else self.rate.finish_s(start, bits)
        self.free_at_s = done
        self.bits += bits
        self.transfers.append(Transfer(tag, t_s, start, done, done + self.latency_s, bits))
        return done + self.latency_s

    def backlog_s(self, t_s: float) -> float:
        """How long something handed over at `t_s` would wait before its first bit is sent."""
        return max(0.0, self.free_at_s - t_s)

    def drop(self, t_s: float, bits: int, *, tag: object = None) -> None:
        """Log a hand-over the queue refused (nothing is sent)."""
        self.transfers.append(Transfer(tag, t_s, math.inf, math.inf, math.inf, bits, dropped=True))

    def cancel_queued(self, t_s: float) -> list[object]:
        """Withdraw every transfer that has not started by `t_s` (they sit at the queue's tail,
        the link being serial); returns their tags. The link is then free when the last
        started transfer ends."""
        live = [x for x in self.transfers if not (x.cancelled or x.dropped)]
        waiting = [x for x in live if x.t_start_s > t_s]
        for x in waiting:
            x.cancelled = True
            self.bits -= x.bits
        if waiting:
            self.free_at_s = max((x.t_done_s for x in live if x.t_start_s <= t_s), default=0.0)
        return [x.tag for x in waiting]

    def delivered_bits(self, until_s: float) -> int:
        """Bits that arrived by `until_s` (whole transfers; cancelled and dropped ones never do)."""
        return sum(x.bits for x in self.transfers
                   if not (x.cancelled or x.dropped) and x.t_arrival_s <= until_s + TIME_EPS_S)


def make_link(kbps: float | None, trace: str, latency_s: float) -> Link:
    """A fresh link from a LinkConfig direction: a trace file, a constant rate, or unlimited."""
    if trace:
        return Link(RateTrace.from_csv(trace), latency_s)
    return Link(None if kbps is None else RateTrace.constant(kbps), latency_s)
