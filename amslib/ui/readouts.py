"""What the live panel shows, as numbers and text, computed from a run's tables so far:
the curve points (trailing-window mIoU, bandwidth averaged and per update interval, update
arrivals, policy changes), the gain over a reference run, the status line, a fleet's server
line, the summary and the per-update ledger. Pure functions of `RunResult` and arrays; the
figure and picture they feed are in `drawing.py`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from amslib.analysis.plots import cumulative_kbps
from amslib.analysis.results import RunResult
from amslib.core.clock import TIME_EPS_S

LEDGER_COLUMNS = ("update", "t_update_s", "t_arrival_s", "num_samples", "strategy", "fraction",
                  "num_sent", "mask_bytes", "value_bytes", "compressed_bytes", "policy_changes")


def _sent_updates(updates: pd.DataFrame) -> pd.DataFrame:
    """The update rows whose parameters were sent down (an update with no samples is not)."""
    if updates.empty or "sent" not in updates:
        return updates.iloc[0:0]
    return updates[updates["sent"].fillna(False).astype(bool)]


def curve_points(result: RunResult) -> dict[str, np.ndarray]:
    """The live figure's data for a run so far.

    Per frame (N,): `t_s`, `miou_pct` (trailing-window mIoU, %, NaN where no class is seen),
    `uplink_kbps` and `downlink_kbps` (average from 0 to the end of the frame, as in
    `RunResult.summary`; downlink bits count from the update's time). Per update that reached
    the edge by the last frame (M,): `arrival_t_s`, `arrival_miou_pct`, `arrival_text`. Per
    update that applied a policy change (C,): `change_t_s`, `change_text`.
    """
    frames, empty = result.frames, np.zeros(0)
    t = frames["t_s"].to_numpy(float) if len(frames) else empty
    miou = 100.0 * result.window_miou() if len(frames) else empty
    elapsed = t + 1.0 / result.config.fps
    up = np.cumsum(frames["uplink_bits"].to_numpy(float)) / elapsed / 1000.0 if len(t) else empty
    sent = _sent_updates(result.updates)
    down = cumulative_kbps(sent["t_update_s"].to_numpy(float), sent["downlink_bits"].to_numpy(float),
                            t, elapsed) if len(sent) else np.zeros_like(t)
    points = {"t_s": t, "miou_pct": miou, "uplink_kbps": up, "downlink_kbps": down}
    points.update(_arrival_points(sent, t, miou))
    points.update(_change_points(result.updates))
    points.update(interval_points(result))
    return points


def interval_points(result: RunResult) -> dict[str, np.ndarray]:
    """Bandwidth per update interval, so a new `fraction` shows in the downlink at the first
    update that uses it (the average so far moves slowly).

    The intervals end at the distinct update times t_1 < ... < t_M that are > 0 and begin
    at the one before (t_0 = 0): per interval (M,) `interval_start_s`, `interval_end_s`,
    `interval_uplink_kbps` (bits of the frames in [start, end) over its length) and
    `interval_downlink_kbps` (bits sent by the updates made at its end, over its length: what
    the server sent for that interval's samples; an update at 0 s counts in the first)."""
    updates, frames = result.updates, result.frames
    times = updates["t_update_s"].to_numpy(float) if len(updates) and "t_update_s" in updates else np.zeros(0)
    ends = np.unique(times[times > TIME_EPS_S])
    if not len(ends) or frames.empty:
        return {k: np.zeros(0) for k in ("interval_start_s", "interval_end_s", "interval_uplink_kbps",
                                         "interval_downlink_kbps")}
    starts = np.concatenate([[0.0], ends[:-1]])
    length_s = ends - starts
    down_bits = updates["downlink_bits"].fillna(0).to_numpy(float) if "downlink_bits" in updates \
        else np.zeros(len(updates))
    down = np.zeros(len(ends))
    np.add.at(down, np.searchsorted(ends, times - TIME_EPS_S), down_bits)  # t_k - eps: at its own end
    t = frames["t_s"].to_numpy(float)
    inside = t < ends[-1] - TIME_EPS_S
    up = np.zeros(len(ends))
    np.add.at(up, np.searchsorted(ends, t[inside] + TIME_EPS_S), frames["uplink_bits"].to_numpy(float)[inside])
    return {"interval_start_s": starts, "interval_end_s": ends, "interval_uplink_kbps": up / length_s / 1000.0,
            "interval_downlink_kbps": down / length_s / 1000.0}


def _arrival_points(sent: pd.DataFrame, t: np.ndarray, miou: np.ndarray) -> dict[str, np.ndarray]:
    """Markers where updates reached the edge, at the mIoU of the first frame that used them."""
    if len(sent) and len(t):
        sent = sent[sent["t_arrival_s"] <= t[-1] + TIME_EPS_S]
    if not len(sent) or not len(t):
        return {"arrival_t_s": np.zeros(0), "arrival_miou_pct": np.zeros(0),
                "arrival_text": np.zeros(0, dtype=object)}
    arrival = sent["t_arrival_s"].to_numpy(float)
    first_frame = np.minimum(np.searchsorted(t, arrival - TIME_EPS_S), len(t) - 1)
    # every scheme books `downlink_bits`; a model update also its gzip size and fraction
    kbytes = sent["compressed_bytes"] / 1000 if "compressed_bytes" in sent else sent["downlink_bits"] / 8000
    fraction = sent["fraction"] if "fraction" in sent else pd.Series(np.nan, index=sent.index)
    text = [f"update {int(u)}: {kb:.1f} kB down" + ("" if pd.isna(f) else f", fraction {f:g}")
            for u, kb, f in zip(sent["update"], kbytes, fraction)]
    return {"arrival_t_s": arrival, "arrival_miou_pct": miou[first_frame],
            "arrival_text": np.array(text, dtype=object)}


def _change_points(updates: pd.DataFrame) -> dict[str, np.ndarray]:
    """Where a policy change took effect: the update whose `policy_changes` is not empty."""
    if updates.empty or "policy_changes" not in updates:
        return {"change_t_s": np.zeros(0), "change_text": np.zeros(0, dtype=object)}
    changed = updates[updates["policy_changes"].fillna("").astype(str) != ""]
    return {"change_t_s": changed["t_update_s"].to_numpy(float),
            "change_text": changed["policy_changes"].to_numpy(object)}


def reference_gain(t_s: np.ndarray, miou_pct: np.ndarray, reference_pct: np.ndarray, *,
                   warmup_s: float) -> tuple[float, float]:
    """(gain, from_s): the live run's mean trailing-window mIoU minus the reference run's, in
    points, over the frames so far from `from_s` on: the end of the warm-up once the run has
    passed it, else 0 (as `RunResult.summary` counts). t_s, miou_pct (N,) of the live run;
    reference_pct (M,) of the reference, frame by frame from frame 0. Frames where either is
    NaN are left out; the gain is NaN when no frame is left."""
    n = min(len(t_s), len(reference_pct))
    t, live, ref = t_s[:n], miou_pct[:n], reference_pct[:n]
    from_s = warmup_s if n and t[-1] >= warmup_s else 0.0
    keep = (t >= from_s) & ~np.isnan(live) & ~np.isnan(ref)
    return (float(np.mean(live[keep] - ref[keep])) if keep.any() else math.nan), from_s


def status_text(state: str, points: dict[str, np.ndarray], *, duration_s: float, fps: float,
                pending: dict[str, Any], gain: tuple[str, float, float] | None = None,
                notes: tuple[str, ...] = ()) -> str:
    """One line: state, video time done, updates arrived, latest mIoU, the gain over the
    reference so far (`gain`: its name, the points from `reference_gain` and their start),
    changes waiting, and `notes`."""
    t = points["t_s"]
    parts = [f"{state}: {(t[-1] + 1.0 / fps) if len(t) else 0.0:.1f} / {duration_s:.1f} s of video",
             f"{len(points['arrival_t_s'])} updates arrived"]
    seen = points["miou_pct"][~np.isnan(points["miou_pct"])]
    if len(seen):
        parts.append(f"mIoU {seen[-1]:.1f}%")
    if gain is not None and not math.isnan(gain[1]):
        parts.append(f"gain over {gain[0]} {gain[1]:+.1f} points (mean from {gain[2]:g} s)")
    if pending:
        parts.append("pending: " + ", ".join(f"{k}={v}" for k, v in pending.items())
                     + " (applies at the next update)")
    return " | ".join((*parts, *notes))


def server_text(busy: list[dict], *, gpus: int, now_s: float) -> str:
    """A fleet's shared server so far, for the status line: the jobs a GPU has started by
    `now_s`, the share of the GPUs' time from 0 to `now_s` they kept busy, and their mean
    wait in the queue. `busy`: `Server.busy`, one dict per job (t_start_s, t_end_s,
    queue_wait_s; a job started by now may end after it: only its part up to now counts)."""
    started = [job for job in busy if job["t_start_s"] <= now_s + TIME_EPS_S]
    busy_s = sum(max(0.0, min(job["t_end_s"], now_s) - job["t_start_s"]) for job in started)
    share = busy_s / (gpus * now_s) if now_s > 0 else 0.0
    wait_s = float(np.mean([job["queue_wait_s"] for job in started])) if started else 0.0
    return (f"server: {len(started)} jobs started, GPU busy {100 * share:.0f}% so far, "
            f"mean queue wait {wait_s:.2f} s")


def summary_table(result: RunResult) -> pd.DataFrame:
    """`result.summary()` as a one-column table, per-class IoU flattened to `iou_<class>`."""
    summary = dict(result.summary())
    per_class = summary.pop("iou_per_class")
    summary.update({f"iou_{name}": value for name, value in per_class.items()})
    return pd.DataFrame({"value": pd.Series(summary, dtype=object)})


def ledger_table(result: RunResult) -> pd.DataFrame:
    """The per-update ledger: when, how much was sent (mask, values, gzip), what changed."""
    return result.updates.reindex(columns=list(LEDGER_COLUMNS)).set_index("update")
