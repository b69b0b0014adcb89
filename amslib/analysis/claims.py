"""`python -m amslib claims`: the paper's claims next to what the workbench measures.

One sweep (amslib/analysis/experiments.py) runs every configuration the claims need on
`synthetic:street` (and on a real clip when one is given), then each claim is checked by a
stated rule on runs compared over the same span of video, and docs/claims.md is written.
A claim that does not hold is reported as not holding, with the numbers and the reason.
The rules are in claim_rules.py (their names stay importable from here); here, the runs the
claims need and the document.

Spans (ClaimSpans) keep the whole command well under 30 minutes on a 2-core laptop: the
scheme ranking and the bandwidth totals use the whole video; the ablations (strategies,
ASR, encoders) its first `ablation_s` seconds; Just-In-Time and remote tracking, the
expensive baselines, the first `baseline_s` seconds, compared with AMS over the same span.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from amslib.analysis.claim_rules import (
    ASR_SAVING,
    CLAIM_TEXT,
    CLOSE_POINTS,
    COMPARED_STRATEGIES,
    EDGE_SCHEMES,
    FAR_MORE,
    Claim,
    _pct,
    claim_asr,
    claim_baselines,
    claim_budget,
    claim_edge,
    claim_encoders,
    claim_full,
    claim_ranking,
    claim_selection,
    claim_strategies,
    claim_strategies_reset,
    evaluate_claims,
    first_step_spreads,
    row_conditions,
    server_model,
)
from amslib.analysis.experiments import Job, run_sweep
from amslib.analysis.real_clips import claims_lines, load_benchmark
from amslib.analysis.results import RunResult, conditions, load_result, save_result
from amslib.core.config import RunConfig, with_overrides
from amslib.core.files import atomic_write, write_json


# The claims' names as one module, the rules' included (callers import them from here).
__all__ = [
    "ASR_SAVING", "CLAIM_TEXT", "CLOSE_POINTS", "COMPARED_STRATEGIES", "EDGE_SCHEMES", "FAR_MORE", "ORIGINAL_FPS",
    "QUICK_SPANS", "REAL_CLIPS_TABLE", "REPORT_FILE", "Claim", "ClaimSpans", "ClaimsReport", "claim_asr",
    "claim_baselines", "claim_budget", "claim_edge", "claim_encoders", "claim_full", "claim_jobs", "claim_ranking",
    "claim_runs", "claim_selection", "claim_strategies", "claim_strategies_reset", "claims_base", "claims_markdown",
    "evaluate_claims", "first_step_spreads", "load_claims", "real_clips_lines", "row_conditions", "run_claims",
    "runs_table", "server_model", "write_claims",
]

ORIGINAL_FPS = 30.0  # Mullapudi et al.'s strides (8..64 frames) are frames of 30 fps video


@dataclass(frozen=True)
class ClaimSpans:
    """Seconds of video per group of runs (None: the whole video)."""

    main_s: float | None = None
    ablation_s: float = 180.0
    baseline_s: float = 60.0


QUICK_SPANS = ClaimSpans(main_s=40.0, ablation_s=30.0, baseline_s=20.0)



def _equivalent_frames(frames_at_30: int, fps: float) -> int:
    """A stride of `frames_at_30` frames of 30 fps video, in frames at `fps` (at least 1)."""
    return max(1, round(frames_at_30 * fps / ORIGINAL_FPS))


def claim_runs(base: RunConfig, spans: ClaimSpans, *, synthetic: bool) -> dict[str, tuple[dict, float | None]]:
    """{run name: (overrides, seconds)}, longest first (workers pick them up in order)."""
    fps = base.fps
    baselines = {"jit_min_stride": _equivalent_frames(8, fps), "jit_max_stride": _equivalent_frames(64, fps),
                 "tracking_stride": _equivalent_frames(8, fps)}
    runs: dict[str, tuple[dict, float | None]] = {
        "ams": ({"scheme": "ams"}, spans.main_s),
        "jit": ({"scheme": "jit", "ledger_all_encoders": False, **baselines}, spans.baseline_s),
        "one_time": ({"scheme": "one_time"}, spans.main_s),
        "none": ({"scheme": "none"}, spans.main_s),
    }
    for strategy in ("full", "random", "first_layers", "last_layers", "first_and_last", "gradient_magnitude"):
        runs[f"ams_{strategy}"] = ({"scheme": "ams", "strategy": strategy}, spans.ablation_s)
    for strategy in ("gradient_guided", *COMPARED_STRATEGIES):  # C3 again from fresh Adam states
        runs[f"reset_{strategy}"] = ({"scheme": "ams", "strategy": strategy, "optimizer_state": "reset"},
                                     spans.ablation_s)
    runs["ams_asr"] = ({"scheme": "ams", "asr": True}, spans.ablation_s)
    runs["ams_sparse_q8"] = ({"scheme": "ams", "update_encoder": "sparse_q8"}, spans.ablation_s)
    if synthetic:
        runs["parked"] = ({"scheme": "ams", "video": "synthetic:parked"}, spans.ablation_s)
        runs["parked_asr"] = ({"scheme": "ams", "video": "synthetic:parked", "asr": True}, spans.ablation_s)
    runs["remote_tracking"] = ({"scheme": "remote_tracking", **baselines}, spans.baseline_s)
    for scheme in (*EDGE_SCHEMES, "edge_train"):  # the edge adapts on its own, or trains on labels sent down
        runs[scheme] = ({"scheme": scheme}, spans.main_s)
    return runs


def claim_jobs(base: RunConfig, spans: ClaimSpans, *, prefix: str = "", labels: str | None = None,
               label_set: str = "cityscapes19", manifest: str | None = None) -> list[Job]:
    """The sweep's jobs for one video (names prefixed by `prefix`)."""
    synthetic = base.video.startswith("synthetic:")
    jobs = []
    for name, (overrides, seconds) in claim_runs(base, spans, synthetic=synthetic).items():
        limits = [s for s in (seconds, base.max_seconds) if s is not None]
        config = with_overrides(base, {**overrides, "max_seconds": min(limits) if limits else None})
        jobs.append(Job(prefix + name, config, {"run": name, "video": config.video},
                        labels=None if config.video.startswith("synthetic:") else labels,
                        label_set=label_set, manifest=manifest))
    return jobs


# -- the document ------------------------------------------------------------------------------
@dataclass
class ClaimsReport:
    """Claims per video ({video: [Claim]}), the runs behind them, and how they were made."""

    claims: dict[str, list[Claim]]
    results: dict[str, dict[str, RunResult]]
    base: RunConfig
    spans: ClaimSpans
    command: str
    wall_s: float
    load: float = math.nan  # 15-minute load average at the end
    spreads: dict | None = None  # C3's first-step spreads on the synthetic video (first_step_spreads)


def run_claims(base: RunConfig, *, spans: ClaimSpans = ClaimSpans(), clip: RunConfig | None = None,
               labels: str | None = None, label_set: str = "cityscapes19", manifest: str | None = None,
               workers: int | None = None, cluster=None, command: str = "python -m amslib claims",
               on_result=None) -> ClaimsReport:
    """Run the claims' sweep on `base` (synthetic:street) and on `clip` when given."""
    tic = time.perf_counter()
    jobs = claim_jobs(base, spans)
    if clip is not None:
        jobs += claim_jobs(clip, spans, prefix="clip-", labels=labels, label_set=label_set, manifest=manifest)
    done = run_sweep(jobs, workers=workers, cluster=cluster, on_result=on_result)
    results = {base.video: {j.params["run"]: done[j.name] for j in jobs if not j.name.startswith("clip-")}}
    if clip is not None:
        results[clip.video] = {j.params["run"]: done[j.name] for j in jobs if j.name.startswith("clip-")}
    spreads = first_step_spreads(base) if base.video.startswith("synthetic:") else None
    claims = {video: evaluate_claims(runs, spreads=spreads if video == base.video else None)
              for video, runs in results.items()}
    return ClaimsReport(claims, results, base, spans, command, time.perf_counter() - tic, _load_average(), spreads)


def runs_table(report: ClaimsReport) -> pd.DataFrame:
    """One row per run behind the claims: video, run, span and headline numbers."""
    rows = []
    for video, runs in report.results.items():
        for name, result in runs.items():
            s = result.summary()
            rows.append({"video": s["video"], "run": name, "scheme": s["scheme"], "seconds": s["duration_s"],
                         "miou_window": s["miou_window"], "miou_pooled": s["miou_pooled"],
                         "uplink_kbps": s["uplink_kbps"], "downlink_kbps": s["downlink_kbps"],
                         "num_updates": s["num_updates"], "staleness_mean_s": s.get("staleness_mean_s"),
                         "server_busy_s": s.get("server_busy_s")})
    return pd.DataFrame(rows)


def claims_markdown(report: ClaimsReport) -> str:
    """docs/claims.md."""
    videos = list(report.claims)
    head = "| claim | paper | " + " | ".join(f"{v} (measured) | holds? | conditions" for v in videos) + " |"
    lines = ["# The paper's claims against the workbench", "",
             f"Generated by `{report.command}` ({report.wall_s / 60:.1f} min on {_machine()}; "
             f"load average {report.load:.1f} over the run's last 15 min). Every number below is measured "
             "by that command; nothing is copied. "
             "mIoU is the trailing-10 s-window mIoU in percent (after the warm-up), bandwidth in "
             "Kbps = 1000 bit/s. Every row states its conditions, the server model among them: "
             + _server_sentence(report) + ". " + _edge_sentence(report.base),
             "", head, "|" + "---|" * (2 + 3 * len(videos))]
    for k, key in enumerate(CLAIM_TEXT):
        claim, paper = CLAIM_TEXT[key]
        cells = []
        for video in videos:
            c = report.claims[video][k]
            cells += [c.measured, "yes" if c.holds else f"**no**: {c.reason}", c.conditions]
        lines.append("| " + " | ".join(_cell(t) for t in (claim, paper, *cells)) + " |")
    lines += ["", "## How it was measured", ""] + _setup_lines(report)
    lines += ["", "## What the server's time does to the key-frame baselines", ""] + _baseline_lines(report)
    table = runs_table(report)
    lines += ["", "## The runs", "", _markdown_table(table), ""]
    lines += ["## Real clips (ours)", ""] + real_clips_lines(REAL_CLIPS_TABLE) + [""]
    return "\n".join(lines)


REAL_CLIPS_TABLE = Path("docs/real_clips.csv")  # `python -m amslib clips` writes it; claims only read it


def real_clips_lines(path: str | Path) -> list[str]:
    """The real-clip benchmark's section, from its saved table (the benchmark is not re-run)."""
    try:
        table, sidecar = load_benchmark(path)
    except FileNotFoundError:
        table, sidecar = None, {}
    return claims_lines(table, sidecar, source=str(path))


def _cell(text: str) -> str:
    """Text for a markdown table cell: a bare | (as in |gradient|) would split the cell."""
    return text.replace("|", "\\|")


def _setup_lines(report: ClaimsReport) -> list[str]:
    base, spans = report.base, report.spans
    a, link, b = base.adapt, base.link, base.baseline
    runs = claim_runs(base, spans, synthetic=True)
    jit = runs["jit"][0]
    main = "the whole video" if spans.main_s is None else f"its first {spans.main_s:g} s"
    return [
        f"- Preset: {base.height}x{base.width} frames at {base.fps:g} fps, student width "
        f"{base.width_multiplier:g}; AMS tau = {a.update_interval_s:g} s (first update at {a.first_update_s:g} s), "
        f"T = {a.horizon_s:g} s, K = {a.iterations} steps, r = {a.sample_rate_fps:g} fps, gamma = {a.fraction:g}, "
        f"strategy {a.strategy}; warm-up {base.eval.warmup_s:g} s excluded from mIoU.",
        f"- Server: Adam's moments {'kept across updates' if a.optimizer_state == 'persist' else 'reset at every update'} "
        f"(optimizer_state={a.optimizer_state}; the strategies are also run with reset), "
        f"{'each update from the pretrained weights' if a.reset_to_pretrained else 'each update from the last one'} "
        f"(reset_to_pretrained={str(a.reset_to_pretrained).lower()}); One-Time trains {a.one_time_iterations} "
        f"steps once, AMS {a.iterations} per update. {_server_sentence(report)}; link queues unbounded (the "
        "links are unlimited here, so nothing queues).",
        f"- Link: latency {link.latency_s:g} s each way, unlimited bandwidth; uplink {link.uplink_codec}"
        + (f" at {link.h264_kbps:g} Kbps per sampled frame/s (two-pass libx264)" if link.uplink_codec == "h264" else "")
        + f"; updates sent with the `{link.update_encoder}` encoder.",
        f"- Spans (to finish well under 30 minutes on 2 cores): None, One-Time and AMS on {main}; the "
        f"strategy, ASR and encoder ablations on the first {spans.ablation_s:g} s; Just-In-Time and remote "
        f"tracking on the first {spans.baseline_s:g} s. Each claim compares runs over the same span "
        "(a longer run is cut to the shorter one).",
        f"- Baselines' strides are the original's frames at 30 fps, converted to {base.fps:g} fps: JIT "
        f"delta in [{jit['jit_min_stride']}, {jit['jit_max_stride']}] frames (8..64 at 30 fps), threshold "
        f"{b.jit_threshold:g}, u_max {b.jit_u_max}; remote tracking every {jit['tracking_stride']} frame(s). "
        "JIT's updates are sized with its sending encoder only (ledger_all_encoders=false: sizing every "
        "full model three ways tripled its run time).",
        f"- Rules: 'close' = within {CLOSE_POINTS:g} mIoU points, and 'at a fraction of the downlink' = at "
        f"most half; 'far more bandwidth' = at least {FAR_MORE:g}x AMS's up + down; ASR 'saves uplink' = at "
        f"least {100 * ASR_SAVING:.0f}% less uplink for at most {CLOSE_POINTS:g} mIoU points.",
        "- `synthetic:parked` is the street's first minutes played 10x slower: a near-static camera.",
    ]


def _baseline_lines(report: "ClaimsReport") -> list[str]:
    """Per video: how many key frames Just-In-Time and remote tracking handed the server, how
    many it dropped for newer ones, what each cost it and how stale the answers arrived: why
    they score what they do once the server's work takes time."""
    lines = []
    for video, runs in report.results.items():
        for name, what in (("jit", "trained on and sent the model"), ("remote_tracking", "labelled and sent the label")):
            if name not in runs:
                continue
            u = runs[name].updates
            dropped = int(u["superseded_by_newer"].fillna(False).astype(bool).sum()) if "superseded_by_newer" in u else 0
            served = u[u["t_start_s"].notna()] if "t_start_s" in u else u.iloc[0:0]
            sent = int(served["sent"].fillna(False).astype(bool).sum()) if len(served) else 0
            cost = float(served["server_s"].mean()) if len(served) else 0.0
            stale = runs[name].summary().get("staleness_mean_s")
            lines.append(f"- {video}, {name}: the server took {len(served)} key frames ({cost:.2f} s each on "
                         f"average) and {what} for {sent}; {dropped} key frames waiting behind a busy server were "
                         f"dropped for newer ones; the edge ran each answer {_pct(stale)} s after the key frame's "
                         "capture, on average (staleness).")
    return lines or ["- no key-frame runs"]


def _server_sentence(report: "ClaimsReport") -> str:
    """How the claims' server spent time, in one sentence."""
    base = report.base
    times = next((r.server_times for runs in report.results.values() for r in runs.values() if r.server_times), None)
    if base.server.server_time == "off" or not times:
        return "the server's compute is free (server_time=off: training and labelling take no simulated time)"
    return (f"the server's compute is on the simulated clock (server_time={base.server.server_time}, one device "
            f"on one GPU): a training step on b frames takes {times['step_base_s']:.3f} + b x "
            f"{times['step_frame_s']:.3f} s and the teacher {times['teacher_frame_s']:.3f} s a frame (the synthetic "
            "video's exact labels cost what the stand-in teacher, the width-1.0 student at output stride 8, costs); "
            "AMS and One-Time label an update's new samples and train before it is sent, Just-In-Time labels each "
            "key frame and trains on it before sending, remote tracking labels each key frame before its label "
            "goes down, `edge_train` labels an update's new samples before their labels go down, and a key frame "
            "still waiting when a newer one arrives is dropped")


def _edge_sentence(base: RunConfig) -> str:
    """How `edge_train`'s own training spent time, in one sentence (its runs' conditions)."""
    return f"`edge_train`'s training on the edge: {conditions(replace(base, scheme='edge_train'))['edge_training_time']}."


def _markdown_table(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(rows)


def _machine() -> str:
    return f"{platform.machine()} with {os.cpu_count() or 1} cores, CPU only"


def _load_average() -> float:
    """The 15-minute load average (nan where the OS has none): other jobs on a shared machine
    slow the command down, which its wall time alone would not say."""
    try:
        return os.getloadavg()[2]
    except (AttributeError, OSError):
        return math.nan


def write_claims(report: ClaimsReport, path: str | Path, *, runs_dir: str | Path | None = None) -> Path:
    """Write the markdown (atomically) and, with `runs_dir`, every run's tables there and how
    they were made (REPORT_FILE), from which `load_claims` rebuilds the report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if runs_dir is not None:
        folders = {}
        for video, runs in report.results.items():
            folders[video] = video.replace(":", "_").replace("/", "_")
            for name, result in runs.items():
                save_result(result, Path(runs_dir) / folders[video] / name)
        write_json(Path(runs_dir) / REPORT_FILE, {
            "base": report.base.to_dict(), "spans": asdict(report.spans), "command": report.command,
            "wall_s": report.wall_s, "load": report.load, "spreads": report.spreads,
            "runs": {video: {"folder": folders[video], "names": list(runs)} for video, runs in report.results.items()}})
    atomic_write(path, lambda tmp: Path(tmp).write_text(claims_markdown(report)))
    return path


REPORT_FILE = "claims_report.json"


def load_claims(runs_dir: str | Path) -> ClaimsReport:
    """The report `write_claims` saved under `runs_dir`, its claims evaluated again from the
    saved runs (the document can be re-rendered without running anything)."""
    runs_dir = Path(runs_dir)
    if not (runs_dir / REPORT_FILE).is_file():
        raise FileNotFoundError(f"{runs_dir} holds no saved claims ({REPORT_FILE} missing); run "
                                "`python -m amslib claims` first")
    meta = json.loads((runs_dir / REPORT_FILE).read_text())
    base = RunConfig.from_dict(meta["base"])
    results = {video: {name: load_result(runs_dir / entry["folder"] / name) for name in entry["names"]}
               for video, entry in meta["runs"].items()}
    spreads = meta.get("spreads")
    claims = {video: evaluate_claims(runs, spreads=spreads if video == base.video else None)
              for video, runs in results.items()}
    return ClaimsReport(claims, results, base, ClaimSpans(**meta["spans"]), meta["command"], meta["wall_s"],
                        meta["load"], spreads)


def claims_base(base: RunConfig) -> RunConfig:
    """The claims' common setting on top of a preset: an H.264 uplink (the paper's) at 100 Kbps
    per sampled frame/s, a 50 ms one-way latency, so labels and updates arrive late, the
    server's work on the clock at this machine's measured times (`--set server_time=off` for the
    free server of the earlier tables), and `edge_train`'s training on the clock under the edge
    profile, as the server's is (`--set edge_train_time=off` for the free edge)."""
    return replace(base, link=replace(base.link, uplink_codec="h264", h264_kbps=100.0, latency_s=0.05),
                   server=replace(base.server, server_time="measured"),
                   edge=replace(base.edge, edge_train_time="profile"))
