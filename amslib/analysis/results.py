"""Tidy results of a run: one row per frame, one row per update, and the config that made
them; saved as CSV + JSON (written to temp files, then renamed) and loadable again."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from amslib.core import metrics
from amslib.core.clock import TIME_EPS_S
from amslib.core.config import UPDATE_ENCODERS, RunConfig
from amslib.core.files import atomic_write, write_json
from amslib.sim.state import FramesEvent, LinksEvent

FRAMES_FILE, UPDATES_FILE, CONFIG_FILE, SUMMARY_FILE, SEGMENTS_FILE, TRANSFERS_FILE = (
    "frames.csv", "updates.csv", "config.json", "summary.json", "segments.csv", "transfers.csv")


def _slug(name: str) -> str:
    return name.replace(" ", "_")


@dataclass
class RunResult:
    """Per-frame and per-update tables of one run. `frames` has `tp_/fp_/fn_<class>` columns
    (pixel counts) from which every mIoU protocol is recomputed."""

    config: RunConfig
    classes: tuple[str, ...]
    frames: pd.DataFrame
    updates: pd.DataFrame
    # forgetting per earlier scene (segment, start_s, end_s, live_miou, final_miou, forgetting),
    # measured after the run by `runs.measure_forgetting`; None when not measured
    segments: pd.DataFrame | None = None
    # every hand-over to the links (direction, t_offered_s, t_start_s, t_arrival_s, queue_s,
    # bits, cancelled, dropped); None for runs saved before links were logged
    transfers: pd.DataFrame | None = None
    # the seconds the server's work cost in this run (ServerTimes as a dict; None: free)
    server_times: dict | None = None

    def counts(self) -> np.ndarray:
        """(N, K, 3) int64 [TP, FP, FN] per frame and class."""
        cols = [[f"{kind}_{_slug(c)}" for kind in ("tp", "fp", "fn")] for c in self.classes]
        return self.frames[[c for trio in cols for c in trio]].to_numpy(np.int64).reshape(
            len(self.frames), len(self.classes), 3)

    def window_miou(self) -> np.ndarray:
        """(N,) trailing-window mIoU per frame, in [0, 1]."""
        return metrics.miou_window(self.counts(), self.frames["t_s"].to_numpy(),
                                   window_s=self.config.eval.window_s)

    def window_iou(self) -> np.ndarray:
        """(N, K) trailing-window IoU per frame and class, in [0, 1] (NaN: class unseen)."""
        return metrics.iou_window(self.counts(), self.frames["t_s"].to_numpy(),
                                  window_s=self.config.eval.window_s)

    def summary(self) -> dict:
        """Headline numbers (mIoU in percent, after the warm-up) and bandwidth in Kbps."""
        t = self.frames["t_s"].to_numpy()
        duration_s = (len(t) / self.config.fps) if len(t) else 0.0
        eval_from = self.config.eval.warmup_s if t.size and t[-1] >= self.config.eval.warmup_s else 0.0
        keep = t >= eval_from
        counts = self.counts()
        window = self.window_miou()
        per_class = metrics.iou(counts[keep].sum(axis=0))
        down_bits = float(self.updates["downlink_bits"].sum()) if "downlink_bits" in self.updates else 0.0
        kbps = (lambda bits: metrics.kbps(bits, duration_s)) if duration_s else (lambda bits: 0.0)
        return {
            "scheme": self.config.scheme,
            "video": self.config.video,
            "duration_s": duration_s,
            "eval_from_s": eval_from,  # warm-up excluded; 0 when the run is shorter than it
            "miou_window": _pct(np.nanmean(window[keep]) if np.any(~np.isnan(window[keep])) else math.nan),
            "miou_pooled": _pct(metrics.miou_pooled(counts[keep])),
            "miou_frame_mean": _pct(metrics.miou_frame_mean(counts[keep])),
            "iou_per_class": {c: _pct(v) for c, v in zip(self.classes, per_class)},
            "uplink_kbps": kbps(float(self.frames["uplink_bits"].sum())),
            "downlink_kbps": kbps(down_bits),
            "num_updates": int(self.updates["sent"].fillna(False).astype(bool).sum()) if "sent" in self.updates else 0,
            "update_encoder": self.config.link.update_encoder,
            # the same model updates under every encoder (0: no model sent; None: not sized,
            # ledger_all_encoders=false)
            "downlink_kbps_by_encoder": {name: self._encoder_kbps(name, kbps) for name in UPDATE_ENCODERS},
            "kbps_unit": "1 Kbps = 1000 bit/s",
            **self.model_age(keep),
            **self.continual(window, keep, duration_s),
            **self.delivery(duration_s),
            "conditions": conditions(self.config, self.server_times),
        }

    def continual(self, window: np.ndarray, keep: np.ndarray, duration_s: float) -> dict:
        """What continual- and test-time-adaptation users judge besides mean accuracy: flicker
        (% of pixels whose predicted class flips frame to frame, next to the teacher's own),
        recovery after each scene change (s until the window mIoU regains 90% of its level in
        the 10 s before), and the edge's own compute (frames through a training step or an
        extra forward pass; seconds of it under the edge profile, per second of video)."""
        f = self.frames
        out: dict = {}
        if "pred_flip" in f:
            out["flip_pct"] = _pct(np.nanmean(f["pred_flip"].to_numpy(float)[keep]) if keep.any() else math.nan)
            out["teacher_flip_pct"] = _pct(np.nanmean(f["teacher_flip"].to_numpy(float)[keep]) if keep.any() else math.nan)
        if "label_miou_1s" in f:
            changes = self.scene_changes()
            recovery = metrics.recovery_times(f["t_s"].to_numpy(), window, changes)
            out["scene_changes_s"] = [round(float(c), 2) for c in changes]
            out["recovery_s"] = [None if math.isnan(r) else round(float(r), 2) for r in recovery]
            out["recovery_mean_s"] = (round(float(np.nanmean(recovery)), 2)
                                      if np.any(~np.isnan(recovery)) else None)
        # final minus live mIoU on the earlier scenes (None: no earlier scene, or not measured)
        has = self.segments is not None and len(self.segments)
        out["forgetting_pct"] = round(float(self.segments["forgetting"].mean()), 3) if has else None
        if "edge_train_frames" in f:
            edge = self.config.edge
            train = float(f["edge_train_frames"].fillna(0).sum())
            forward = float(f["edge_forward_frames"].fillna(0).sum())
            # a training step whose forward pass is the frame's prediction (Tent) costs that
            # pass once: the inference the edge makes anyway is not edge compute
            if "edge_shared_frames" in f:
                forward -= float(f["edge_shared_frames"].fillna(0).sum())
            seconds = edge.inference_s * (edge.train_factor * train + forward)
            out["edge_train_frames"] = int(train)
            out["edge_compute_s_per_s"] = seconds / duration_s if duration_s else 0.0
        return out

    def model_age(self, keep: np.ndarray) -> dict:
        """The age of the model the edge runs, averaged over its frames after the warm-up: the
        frame's time minus the capture time of the newest frame behind that model (the
        pretrained model counts as made at 0 s, so a device never served ages with the
        stream). None for runs saved before it was recorded."""
        if "model_age_s" not in self.frames or not keep.any():
            return {"model_age_mean_s": None, "model_age_max_s": None}
        age = self.frames["model_age_s"].to_numpy(float)[keep]
        return {"model_age_mean_s": round(float(np.mean(age)), 3), "model_age_max_s": round(float(np.max(age)), 3)}

    def delivery(self, duration_s: float) -> dict:
        """What the links carried (bits that arrived by the run's end, next to what was offered),
        how long sends queued, what was dropped or superseded, and the server's staleness
        (the capture of the newest frame an update was computed from -> the first frame the
        edge runs with it) and queue wait. The same keys for every
        run (None where a run has no such thing, or was saved before links were logged)."""
        u = self.updates

        def column(name: str) -> np.ndarray:
            values = u[name].to_numpy(float) if name in u else np.zeros(0)
            return values[np.isfinite(values)]

        stale, wait, busy = column("staleness_s"), column("queue_wait_s"), column("server_s")
        out: dict = {"staleness_mean_s": round(float(stale.mean()), 3) if stale.size else None,
                     "staleness_max_s": round(float(stale.max()), 3) if stale.size else None,
                     "server_queue_wait_mean_s": round(float(wait.mean()), 3) if wait.size else None,
                     "server_busy_s": round(float(busy.sum()), 3) if busy.size else None,
                     "updates_withdrawn": (int(u["superseded_by_newer"].fillna(False).astype(bool).sum())
                                           if "superseded_by_newer" in u else 0)}
        keys = [f"{d}link_{k}" for d in ("up", "down") for k in ("delivered_kbps", "queue_mean_s", "queue_max_s")]
        out.update(dict.fromkeys([*keys, "uplink_dropped_sends", "downlink_superseded"]))
        t = self.transfers
        if t is None or not duration_s:
            return out
        for direction in ("up", "down"):
            x = t[t["direction"] == direction]
            live = x[~(x["cancelled"].astype(bool) | x["dropped"].astype(bool))]
            delivered = float(live.loc[live["t_arrival_s"] <= duration_s + TIME_EPS_S, "bits"].sum())
            out[f"{direction}link_delivered_kbps"] = metrics.kbps(delivered, duration_s)
            out[f"{direction}link_queue_mean_s"] = round(float(live["queue_s"].mean()), 3) if len(live) else 0.0
            out[f"{direction}link_queue_max_s"] = round(float(live["queue_s"].max()), 3) if len(live) else 0.0
        out["uplink_dropped_sends"] = int(t.loc[t["direction"] == "up", "dropped"].astype(bool).sum())
        out["downlink_superseded"] = int(t.loc[t["direction"] == "down", "cancelled"].astype(bool).sum())
        return out

    def scene_changes(self, *, drop_pct: float = 15.0, window: int = 31, min_gap_s: float = 20.0) -> np.ndarray:
        """Times (s) of the scene changes in the teacher's labels: dips of the label's mIoU
        against its label one second before, as notebook 01 finds them (dataset checks)."""
        timeline = pd.DataFrame({"t_s": self.frames["t_s"], "miou_pct": 100 * self.frames["label_miou_1s"]})
        timeline = timeline.dropna()
        if timeline.empty:
            return np.zeros(0)
        # one row a frame here, one a second in notebook 01: the same `window` in seconds
        dips = metrics.scene_dips(timeline["miou_pct"], drop_pct=drop_pct, window=max(1, round(window * self.config.fps)))
        return metrics.change_times(timeline["t_s"].to_numpy(), dips, min_gap_s=min_gap_s)

    def _encoder_kbps(self, encoder: str, kbps: Callable[[float], float]) -> float | None:
        column = f"bytes_{encoder}"
        if column in self.updates:
            return kbps(8.0 * float(self.updates[column].fillna(0).sum()))
        sent_models = "num_params" in self.updates and self.updates["num_params"].notna().any()
        return None if sent_models else 0.0

    def truncated(self, seconds: float) -> "RunResult":
        """This run as if it had stopped after `seconds` (frames and updates before then), so
        runs of different lengths compare on the same span."""
        frames = self.frames[self.frames["t_s"] < seconds - TIME_EPS_S].reset_index(drop=True)
        updates = self.updates
        if "t_update_s" in updates:
            updates = updates[updates["t_update_s"] < seconds - TIME_EPS_S].reset_index(drop=True)
        limit = seconds if self.config.max_seconds is None else min(seconds, self.config.max_seconds)
        transfers = self.transfers
        if transfers is not None:
            transfers = transfers[transfers["t_offered_s"] < seconds - TIME_EPS_S].reset_index(drop=True)
        return RunResult(replace(self.config, max_seconds=limit), self.classes, frames, updates,
                         transfers=transfers, server_times=self.server_times)


def conditions(config: RunConfig, server_times: dict | None = None) -> dict:
    """The idealisations and training budget a run's numbers rest on (shown with every
    result: run summary, claims, notebook captions); `server_times`, the seconds the run's
    server work cost (RunResult.server_times), when known."""
    a, link, server = config.adapt, config.link, config.server
    out = {"server_compute": _server_text(server, server_times),
           "server_share": (f"{server.devices} devices on {server.gpus} GPU(s), {server.scheduler} scheduler"
                            if server.devices > 1 else f"one device on {server.gpus} GPU(s)"),
           "link_queues": ("uplink queue unbounded (a sample is late, never dropped)" if link.uplink_queue_s is None
                           else f"uplink drops a sample that would queue > {link.uplink_queue_s:g} s")
                          + ("; a newer update replaces one still queued" if link.supersede_queued else ""),
           "uplink": f"{_bandwidth(link.uplink_kbps, link.uplink_trace)}, {link.uplink_codec}"
                     + (f" at {link.h264_kbps:g} Kbps per sampled frame/s" if link.uplink_codec == "h264" else ""),
           "downlink": f"{_bandwidth(link.downlink_kbps, link.downlink_trace)}, {link.update_encoder} encoder",
           "latency_s": link.latency_s}
    if server.server_time != "off":
        free = []
        if config.scheme == "jit":
            free.append("Just-In-Time's accuracy check of its server copy on each key frame before and after "
                        "each step (a forward pass) is free")
        if server.scheduler == "utility" and server.devices > 1:
            free.append("the utility scheduler's measurement (the server copy's forward pass on each device's "
                        "2 newest samples, with their teacher labels) is free" if config.scheme in ("ams", "one_time")
                        else f"the utility scheduler has no measure for {config.scheme} (every job's utility is 0): "
                             "it serves in fifo order")
        if free:
            out["server_free_work"] = "; ".join(free)
    if config.scheme in ("ams", "one_time", "edge_train"):
        out["optimizer_state"] = a.optimizer_state
        if config.scheme != "edge_train":  # the edge trains on from the model it runs
            out["reset_to_pretrained"] = a.reset_to_pretrained
        out["training_budget"] = (f"{a.one_time_iterations} steps of {a.batch_size} frames, once" if config.scheme == "one_time"
                                  else f"{a.iterations} steps of {a.batch_size} frames per update"
                                  + (", on the edge" if config.scheme == "edge_train" else ""))
    if config.scheme == "edge_train":
        edge = config.edge
        out["edge_training_time"] = (
            "free (edge_train_time=off): the edge runs its new model as its labels arrive"
            if edge.edge_train_time == "off" else
            f"on the clock (edge_train_time=profile): {a.iterations} steps x up to {a.batch_size} frames x "
            f"{edge.train_factor:g} x {edge.inference_s * 1000:g} ms = up to "
            f"{edge.training_s(a.iterations, a.batch_size):.3g} s a training, one at a time; its new model runs when "
            "the training ends")
    return out


def _server_text(server, times: dict | None) -> str:
    if server.server_time == "off":
        return "free (server_time=off): the teacher's labels and the training take no simulated time"
    text = f"on the clock (server_time={server.server_time}"
    if times:
        text += (f": step {times['step_base_s']:.3g} s + {times['step_frame_s']:.3g} s/frame, "
                 f"teacher {times['teacher_frame_s']:.3g} s/frame")
    return text + (f", speedup {server.speedup:g})" if server.speedup != 1 else ")")


def conditions_text(config: RunConfig, server_times: dict | None = None) -> str:
    """`conditions` as one line, for a caption or a terminal."""
    return "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in conditions(config, server_times).items())


def conditions_table(config: RunConfig, server_times: dict | None = None, *, width: int = 60) -> pd.DataFrame:
    """`conditions` as a short (condition, value) table to show under results: each value
    up to its first explanation (": " or "; ", a parenthesis closed) and at most `width` characters. The full
    text is in the run's summary.json (`conditions`) and `conditions_text`."""
    rows = {k.replace("_", " "): _short(str(v), width) for k, v in conditions(config, server_times).items()}
    return pd.DataFrame({"value": rows}).rename_axis("condition")


def _short(text: str, width: int) -> str:
    cut = min((i for i in (text.find(": "), text.find("; ")) if i > 0), default=len(text))
    text = text[:cut] + (")" if text[:cut].count("(") > text[:cut].count(")") else "")
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def _bandwidth(kbps: float | None, trace: str) -> str:
    return f"trace {trace}" if trace else ("unlimited bandwidth" if kbps is None else f"{kbps:g} Kbps")


def _pct(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * float(value), 3)


class ResultCollector:
    """Builds a RunResult from a simulation's events; pass `on_event` to follow live."""

    def __init__(self, config: RunConfig, classes: tuple[str, ...]) -> None:
        self.config, self.classes = config, classes
        self.frame_rows: list[dict] = []
        self.update_rows: list[dict] = []
        self.transfers: pd.DataFrame | None = None

    def add(self, event) -> None:
        if isinstance(event, LinksEvent):
            self.add_links(event)
        elif isinstance(event, FramesEvent):
            per_frame = metrics.miou_per_frame(event.counts)
            for row, counts, m in zip(event.rows, event.counts, per_frame):
                row = dict(row, miou_frame=m)
                for c, (tp, fp, fn) in zip(self.classes, counts):
                    row.update({f"tp_{_slug(c)}": tp, f"fp_{_slug(c)}": fp, f"fn_{_slug(c)}": fn})
                self.frame_rows.append(row)
        else:
            self.update_rows.append(event.row)

    def add_links(self, event) -> None:
        self.transfers = pd.DataFrame(event.rows, columns=TRANSFER_COLUMNS)

    def result(self) -> RunResult:
        return RunResult(self.config, self.classes, pd.DataFrame(self.frame_rows),
                         pd.DataFrame(self.update_rows, columns=_UPDATE_COLUMNS if not self.update_rows else None),
                         transfers=self.transfers)


TRANSFER_COLUMNS = ["direction", "t_offered_s", "t_start_s", "t_arrival_s", "queue_s", "bits", "cancelled", "dropped"]
_UPDATE_COLUMNS = ["update", "t_update_s", "t_arrival_s", "sent", "num_samples", "downlink_bits"]


def collect(config: RunConfig, classes: tuple[str, ...], events: Iterable,
            on_event: Callable | None = None) -> RunResult:
    """Consume `events` into a RunResult, calling `on_event(event)` after each one."""
    collector = ResultCollector(config, classes)
    for event in events:
        collector.add(event)
        if on_event is not None:
            on_event(event)
    return collector.result()


def save_result(result: RunResult, out_dir: str | Path) -> Path:
    """Write frames.csv, updates.csv, config.json and summary.json into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / FRAMES_FILE, lambda tmp: result.frames.to_csv(tmp, index=False))
    atomic_write(out / UPDATES_FILE, lambda tmp: result.updates.to_csv(tmp, index=False))
    if result.segments is not None:
        atomic_write(out / SEGMENTS_FILE, lambda tmp: result.segments.to_csv(tmp, index=False))
    if result.transfers is not None:
        atomic_write(out / TRANSFERS_FILE, lambda tmp: result.transfers.to_csv(tmp, index=False))
    write_json(out / CONFIG_FILE, {"config": result.config.to_dict(), "classes": list(result.classes),
                                   "server_times": result.server_times})
    write_json(out / SUMMARY_FILE, result.summary())
    return out


def load_result(out_dir: str | Path) -> RunResult:
    """Load a run saved by `save_result`."""
    out = Path(out_dir)
    missing = [f for f in (FRAMES_FILE, UPDATES_FILE, CONFIG_FILE) if not (out / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{out} is not a saved run: missing {', '.join(missing)}")
    meta = json.loads((out / CONFIG_FILE).read_text())
    updates = pd.read_csv(out / UPDATES_FILE, keep_default_na=False, na_values=[""])
    segments = pd.read_csv(out / SEGMENTS_FILE) if (out / SEGMENTS_FILE).is_file() else None
    transfers = pd.read_csv(out / TRANSFERS_FILE) if (out / TRANSFERS_FILE).is_file() else None
    return RunResult(RunConfig.from_dict(meta["config"]), tuple(meta["classes"]),
                     pd.read_csv(out / FRAMES_FILE), updates, segments, transfers, meta.get("server_times"))


SUMMARY_COLUMNS = ("miou_window", "miou_pooled", "miou_frame_mean", "uplink_kbps", "downlink_kbps",
                   "num_updates", "flip_pct", "recovery_mean_s", "forgetting_pct", "edge_compute_s_per_s")


def comparison_table(results: dict[str, RunResult]) -> pd.DataFrame:
    """One row per run (by name): mIoU by the three protocols (%), Kbps each way, updates."""
    summaries = {name: r.summary() for name, r in results.items()}
    rows = {name: {k: s.get(k) for k in SUMMARY_COLUMNS} for name, s in summaries.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")


def per_class_table(results: dict[str, RunResult]) -> pd.DataFrame:
    """Runs x classes: each class's IoU (%) over the run after the warm-up, as in `summary`
    (NaN: the class never appeared there)."""
    rows = {name: r.summary()["iou_per_class"] for name, r in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index").astype(float).rename_axis("run")
