"""`python -m amslib claims`: the paper's claims next to what the workbench measures.

One sweep (amslib/analysis/experiments.py) runs every configuration the claims need on
`synthetic:street` (and on a real clip when one is given), then each claim is checked by a
stated rule on runs compared over the same span of video, and docs/claims.md is written.
A claim that does not hold is reported as not holding, with the numbers and the reason.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from amslib.analysis.experiments import Job, run_sweep
from amslib.analysis.first_step import first_step_spread
from amslib.analysis.real_clips import claims_lines, load_benchmark
from amslib.analysis.results import RunResult, conditions, load_result, save_result
from amslib.core.config import RunConfig, with_overrides
from amslib.core.files import atomic_write, write_json
from amslib.data.video import open_video_for
from amslib.models.teachers import OracleTeacher
from amslib.sim.engine import Students
from amslib.sim.sampling import buffer_at

ORIGINAL_FPS = 30.0  # Mullapudi et al.'s strides (8..64 frames) are frames of 30 fps video
CLOSE_POINTS = 2.0  # "close" = within 2 mIoU points
FAR_MORE = 3.0  # "far more bandwidth" = at least 3x AMS's up + down
ASR_SAVING = 0.2  # ASR "saves uplink" = at least 20% less, losing at most CLOSE_POINTS mIoU
COMPARED_STRATEGIES = ("random", "first_layers", "last_layers", "first_and_last")  # claim C3's others
EDGE_SCHEMES = ("bn_adapt", "tent")  # adaptation on the edge alone


@dataclass(frozen=True)
class ClaimSpans:
    """Seconds of video per group of runs (None: the whole video)."""

    main_s: float | None = None
    ablation_s: float = 180.0
    baseline_s: float = 60.0


QUICK_SPANS = ClaimSpans(main_s=40.0, ablation_s=30.0, baseline_s=20.0)


@dataclass(frozen=True)
class Claim:
    """One row of docs/claims.md on one video; `conditions`: the setting its runs share."""

    key: str
    measured: str
    holds: bool
    reason: str
    conditions: str = ""


CLAIM_TEXT = {
    "ranking": ("AMS > One-Time > No customization (mIoU)",
                "AMS gains 0.4-17.8 mIoU points over No customization"),
    "full": ("gradient-guided (gamma = 0.1) is close to training all parameters, at a fraction "
             "of the downlink", "small loss at ~1/10 of the parameters"),
    "strategies": ("gradient-guided beats random / first / last / first+last at equal fraction "
                   "(Adam's moments kept across updates, as the original)", "gradient-guided best"),
    "strategies_reset": ("the same, every update from a fresh Adam state (optimizer_state=reset)",
                         "gradient-guided best"),
    "asr": ("ASR saves uplink on static scenes", "fewer frames where the scene changes little"),
    "baselines": ("Just-In-Time and remote tracking cost far more bandwidth than AMS",
                  "Kbps up/down: JIT 2520/3207, Remote+Tracking 1880/30, AMS 169/206"),
    "budget": ("AMS needs under 300 Kbps each way", "AMS 169 up / 206 down"),
    "selection": ("(ours) ranking by |gradient| picks better parameters than ranking by one "
                  "Adam step's |change| (gradient-guided) or at random, at equal fraction",
                  "the paper ranks by one optimizer step's change"),
    "encoders": ("(ours) sparse encodings beat the original's bitmask + float16 + gzip on the "
                 "same updates", "the original sent bitmask + float16 + gzip"),
    "edge": ("(ours) AMS beats adapting on the edge alone (BatchNorm re-estimation, Tent) at the "
             "bandwidth and edge compute each needs", "not in the paper"),
}


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


# -- the rules ---------------------------------------------------------------------------------
def _same_span(results: dict[str, RunResult], names: list[str]) -> dict[str, dict]:
    """Summaries of `names`, each cut to the shortest of their spans."""
    seconds = min(len(results[n].frames) / results[n].config.fps for n in names)
    return {n: results[n].truncated(seconds).summary() for n in names}


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _span_text(summary: dict) -> str:
    return f"{summary['duration_s']:.0f} s"


def claim_ranking(r: dict[str, RunResult]) -> Claim:
    s = _same_span(r, ["ams", "one_time", "none"])
    ams, one, none = (s[k]["miou_window"] for k in ("ams", "one_time", "none"))
    holds = ams is not None and one is not None and none is not None and ams > one > none
    reason = "" if holds else ("AMS <= One-Time" if ams <= one else "One-Time <= No customization")
    return Claim("ranking", f"AMS {_pct(ams)} > One-Time {_pct(one)} > none {_pct(none)} "
                 f"(gain over none {_pct(ams - none)} points; {_span_text(s['ams'])})", holds, reason)


def claim_full(r: dict[str, RunResult]) -> Claim:
    s = _same_span(r, ["ams", "ams_full"])
    gg, full = s["ams"], s["ams_full"]
    loss = full["miou_window"] - gg["miou_window"]
    ratio = gg["downlink_kbps"] / full["downlink_kbps"] if full["downlink_kbps"] else math.nan
    holds = loss <= CLOSE_POINTS and ratio <= 0.5
    reason = "" if holds else (f"gradient-guided is {loss:.1f} points below full (> {CLOSE_POINTS})"
                               if loss > CLOSE_POINTS else f"downlink ratio {ratio:.2f} > 0.5")
    return Claim("full", f"gradient-guided {_pct(gg['miou_window'])} vs full {_pct(full['miou_window'])} "
                 f"(gradient-guided {-loss:+.1f} points) at {gg['downlink_kbps']:.0f} vs {full['downlink_kbps']:.0f} Kbps "
                 f"down ({100 * ratio:.0f}%; {_span_text(gg)})", holds, reason)


def _strategies(r: dict[str, RunResult], key: str, names: dict[str, str]) -> Claim:
    """Claim C3 on the runs `names` ({strategy: run name}, gradient_guided first)."""
    s = _same_span(r, list(names.values()))
    main = names["gradient_guided"]
    gg = s[main]["miou_window"]
    others = {k: s[n]["miou_window"] for k, n in names.items() if k != "gradient_guided"}
    down = {k: s[n]["downlink_kbps"] for k, n in names.items() if k != "gradient_guided"}
    beaten = [n for n, v in others.items() if v >= gg]
    text = ", ".join(f"{n} {_pct(v)} ({down[n]:.0f} Kbps)" for n, v in others.items())
    adapt = r[main].config.adapt
    reason = ""
    if beaten:
        margin = max(others[n] for n in beaten) - gg
        reason = f"not above {', '.join(beaten)} (by up to {margin:.1f} points)"  # why: evaluate_claims
    return Claim(key, f"gradient-guided {_pct(gg)} ({s[main]['downlink_kbps']:.0f} Kbps down); {text} "
                 f"({_span_text(s[main])}, fraction {adapt.fraction:g})", not beaten, reason,
                 row_conditions(r[main].config, r[main].server_times))


def claim_strategies(r: dict[str, RunResult]) -> Claim:
    return _strategies(r, "strategies", {"gradient_guided": "ams", **{k: f"ams_{k}" for k in COMPARED_STRATEGIES}})


def claim_strategies_reset(r: dict[str, RunResult]) -> Claim:
    return _strategies(r, "strategies_reset", {k: f"reset_{k}" for k in ("gradient_guided", *COMPARED_STRATEGIES)})


def claim_asr(r: dict[str, RunResult]) -> Claim:
    static = ("parked", "parked_asr") if "parked" in r else ("ams", "ams_asr")
    s = _same_span(r, list(static))
    off, on = s[static[0]], s[static[1]]
    saving = 1 - on["uplink_kbps"] / off["uplink_kbps"] if off["uplink_kbps"] else math.nan
    loss = off["miou_window"] - on["miou_window"]
    rates = r[static[1]].updates.get("sample_rate_fps", pd.Series(dtype=float))
    holds = saving >= ASR_SAVING and loss <= CLOSE_POINTS
    where = "near-static synthetic:parked" if static[0] == "parked" else "this clip"
    text = (f"on {where}: uplink {off['uplink_kbps']:.0f} -> {on['uplink_kbps']:.0f} Kbps "
            f"({100 * saving:.0f}% saved), mIoU {_pct(off['miou_window'])} -> {_pct(on['miou_window'])}, "
            f"mean r {rates.mean():.2f} fps")
    if static[0] == "parked":
        m = _same_span(r, ["ams", "ams_asr"])
        moving = 1 - m["ams_asr"]["uplink_kbps"] / m["ams"]["uplink_kbps"] if m["ams"]["uplink_kbps"] else math.nan
        text += f"; on the moving street {100 * moving:.0f}% saved"
    reason = "" if holds else (f"saved only {100 * saving:.0f}% (< {100 * ASR_SAVING:.0f}%)" if saving < ASR_SAVING
                               else f"lost {loss:.1f} mIoU points (> {CLOSE_POINTS})")
    return Claim("asr", text + f" ({_span_text(on)})", holds, reason)


def claim_baselines(r: dict[str, RunResult]) -> Claim:
    s = _same_span(r, ["ams", "jit", "remote_tracking"])
    total = {k: v["uplink_kbps"] + v["downlink_kbps"] for k, v in s.items()}
    text = "; ".join(f"{k} {v['uplink_kbps']:.0f}/{v['downlink_kbps']:.0f} (mIoU {_pct(v['miou_window'])})"
                     for k, v in s.items())
    cheap = [k for k in ("jit", "remote_tracking") if total[k] < FAR_MORE * total["ams"]]
    ratios = (f"JIT x{total['jit'] / total['ams']:.1f}, remote tracking x{total['remote_tracking'] / total['ams']:.1f} "
              "AMS's total" if total["ams"] > 0 else "AMS sent nothing in this span")
    return Claim("baselines", f"Kbps up/down: {text} ({_span_text(s['ams'])}; {ratios})", not cheap,
                 "" if not cheap else f"{', '.join(cheap)} under {FAR_MORE:g}x AMS's up + down")


def claim_budget(r: dict[str, RunResult]) -> Claim:
    s = r["ams"].summary()
    up, down = s["uplink_kbps"], s["downlink_kbps"]
    over = [n for n, v in (("uplink", up), ("downlink", down)) if v >= 300]
    return Claim("budget", f"AMS {up:.0f} up / {down:.0f} down Kbps ({_span_text(s)})", not over,
                 "" if not over else f"{' and '.join(over)} at or above 300 Kbps")


def claim_encoders(r: dict[str, RunResult]) -> Claim:
    by = r["ams"].summary()["downlink_kbps_by_encoder"]
    s = _same_span(r, ["ams", "ams_sparse_q8"])
    f16, q8 = by["sparse_f16"] / by["original"], by["sparse_q8"] / by["original"]
    holds = f16 < 1 and q8 < 1
    return Claim("encoders", f"same AMS updates: original {by['original']:.0f} Kbps, sparse_f16 {by['sparse_f16']:.0f} "
                 f"({100 * f16:.0f}%, lossless), sparse_q8 {by['sparse_q8']:.0f} ({100 * q8:.0f}%); applying "
                 f"sparse_q8 at the edge: mIoU {_pct(s['ams']['miou_window'])} -> "
                 f"{_pct(s['ams_sparse_q8']['miou_window'])} ({_span_text(s['ams'])})", holds,
                 "" if holds else "a sparse encoding was not smaller")


def claim_selection(r: dict[str, RunResult]) -> Claim:
    names = ["ams_gradient_magnitude", "ams", "ams_random"]
    s = _same_span(r, names)
    gm, gg, rnd = (s[n]["miou_window"] for n in names)
    holds = gm > gg and gm > rnd
    reason = "" if holds else (
        f"|gradient| ranking is {gm - max(gg, rnd):+.1f} points against the better of the two: which "
        f"{100 * r['ams'].config.adapt.fraction:g}% of the parameters move matters little at "
        f"K = {r['ams'].config.adapt.iterations} steps on this video")
    return Claim("selection", f"|gradient| {_pct(gm)} ({s[names[0]]['downlink_kbps']:.0f} Kbps down) vs "
                 f"gradient-guided {_pct(gg)} vs random {_pct(rnd)} ({_span_text(s['ams'])}, fraction "
                 f"{r['ams'].config.adapt.fraction:g})", holds, reason)


def claim_edge(r: dict[str, RunResult]) -> Claim:
    s = _same_span(r, ["ams", *EDGE_SCHEMES, "edge_train"])
    best = max(EDGE_SCHEMES, key=lambda k: s[k]["miou_window"] or -1.0)
    ams, edge = s["ams"], s[best]
    text = "; ".join(f"{k} {_pct(s[k]['miou_window'])} (0 Kbps, edge compute {s[k]['edge_compute_s_per_s']:.2f} s/s, "
                     f"flicker {_pct(s[k].get('flip_pct'))}%)" for k in EDGE_SCHEMES)
    holds = ams["miou_window"] > edge["miou_window"]
    et = s["edge_train"]
    text += (f"; edge_train (labels down, training on the edge) {_pct(et['miou_window'])} at {et['uplink_kbps']:.0f} up / "
             f"{et['downlink_kbps']:.0f} down Kbps, edge compute {et['edge_compute_s_per_s']:.2f} s/s, "
             f"its training {et['conditions']['edge_training_time']}")
    return Claim("edge", f"AMS {_pct(ams['miou_window'])} at {ams['uplink_kbps']:.0f} up / {ams['downlink_kbps']:.0f} "
                 f"down Kbps, no edge training (flicker {_pct(ams.get('flip_pct'))}%); {text} ({_span_text(ams)})",
                 holds, "" if holds else f"{best} matches or beats AMS here without any network")


RULES: tuple[Callable[[dict[str, RunResult]], Claim], ...] = (
    claim_ranking, claim_full, claim_strategies, claim_strategies_reset, claim_asr, claim_baselines, claim_budget,
    claim_selection, claim_encoders, claim_edge)


def row_conditions(config: RunConfig, server_times: dict | None = None) -> str:
    """The setting a claim's runs share, short: the training budget, the optimizer state, the
    link, and the server model (its compute on the clock or free; link queues)."""
    a, link = config.adapt, config.link
    up = "H.264" if link.uplink_codec == "h264" else "PNG"
    return (f"K = {a.iterations}, optimizer {a.optimizer_state}, "
            f"{'reset to pretrained' if a.reset_to_pretrained else 'updates build on each other'}; "
            f"{up} up, latency {1000 * link.latency_s:g} ms, unlimited bandwidth; {server_model(config, server_times)}")


def server_model(config: RunConfig, server_times: dict | None) -> str:
    """The server model a claim's runs used, short."""
    server = config.server
    if server.server_time == "off" or not server_times:
        return "server compute free (server_time=off)"
    t = server_times
    return (f"server on the clock (server_time={server.server_time}: a training step "
            f"{t['step_base_s']:.3f} s + {t['step_frame_s']:.3f} s a frame, teacher {t['teacher_frame_s']:.3f} s a frame"
            + (f", speedup {server.speedup:g}" if server.speedup != 1 else "") + f"; one device, {server.gpus} GPU)")


def evaluate_claims(results: dict[str, RunResult], *, spreads: dict[str, dict] | None = None) -> list[Claim]:
    """Every claim's row from one video's runs (named as in `claim_runs`); `spreads`
    ({optimizer_state: text}) is appended to the strategy rows (C3)."""
    claims = []
    for rule in RULES:
        try:
            claim = rule(results)
        except (ArithmeticError, KeyError, TypeError, ValueError) as err:  # one rule's failure is its row's
            key = rule.__name__.removeprefix("claim_")
            claim = Claim(key, "not measured", False, f"could not be evaluated: {type(err).__name__}: {err}")
        measured, reason = claim.measured, claim.reason
        conditions = claim.conditions or row_conditions(results["ams"].config, results["ams"].server_times)
        if claim.key == "ranking":
            conditions += f"; One-Time trains {results['one_time'].config.adapt.one_time_iterations} steps once"
        if claim.key == "baselines":
            conditions += " (JIT's training and the teacher's labels of remote tracking included)"
            measured += _staleness_text(results, ("ams", "jit", "remote_tracking"))
        if claim.key == "edge":
            edge = results["ams"].config.edge
            conditions += (f"; edge profile: {1000 * edge.inference_s:g} ms a frame forward, a training step "
                           f"{edge.train_factor:g}x that (phone-class, SPEC.md)")
        state = {"strategies": "persist", "strategies_reset": "reset"}.get(claim.key)
        spread = (spreads or {}).get(state)
        if spread:
            measured += f". First Adam step ({state}): {spread['text']}"
        if state and not claim.holds:
            reason = f"{claim.reason}; {_strategies_cause(spread, results['ams'].config)}"
        claims.append(replace(claim, measured=measured, reason=reason, conditions=conditions))
    return claims


def _staleness_text(results: dict[str, RunResult], names: tuple[str, ...]) -> str:
    """Each run's mean staleness (newest frame captured -> first frame run with it), when the server took time."""
    stale = {n: results[n].summary().get("staleness_mean_s") for n in names if n in results}
    parts = [f"{n} {s:.2f} s" for n, s in stale.items() if s is not None]
    return f". Staleness (newest frame captured -> first frame run with it), mean: {', '.join(parts)}" if parts else ""


def _strategies_cause(spread: dict | None, config: RunConfig) -> str:
    """Why C3 fails, from the measured first-step spread (near-ties, or not); without a
    measured spread (a real clip), the two candidate causes."""
    a = config.adapt
    small_k = (f"which {100 * a.fraction:g}% of the parameters move matters little at K = {a.iterations} steps per "
               "update on this video")
    if spread is None:
        return ("where one Adam step moves most scalars alike, ranking by it nearly ties them; or " + small_k)
    if spread["tied"] >= 0.25:
        return (f"ranking by one Adam step's change ties {100 * spread['tied']:.0f}% of the scalars at the "
                "top-10% threshold (near-ties), so gradient-guided selection picks nearly at random among them")
    return (f"not near-ties: only {100 * spread['tied']:.1f}% of the scalars tie at the threshold under this "
            f"optimizer state, so the ranking is real; {small_k} (every rule within a few points)")


def first_step_spreads(base: RunConfig, *, t_s: float = 240.0) -> dict[str, dict]:
    """{optimizer_state: {'text', 'tied'}}: how alike one Adam step moves the scalars of the update at
    `t_s` on `base`'s video (its first batch), from a fresh state and with the moments of one
    earlier update (K steps on the samples of tau seconds before): what C3's ranking ranks."""
    video = open_video_for(base)
    t_s = min(t_s, video.duration_s)
    a = base.adapt
    teacher = OracleTeacher()
    buffer = buffer_at(video, teacher, t_s=t_s, horizon_s=a.horizon_s, rate_fps=a.sample_rate_fps)
    earlier = buffer_at(video, teacher, t_s=max(t_s - a.update_interval_s, 1.0 / video.fps),
                            horizon_s=a.horizon_s, rate_fps=a.sample_rate_fps)
    students = Students.load(base, video)
    texts = {}
    for state in ("persist", "reset"):
        s = first_step_spread(students, buffer, base=students.pretrained, lr=a.lr, batch_size=a.batch_size,
                              seed=base.seed, optimizer_state=state, earlier=earlier, earlier_steps=a.iterations)
        texts[state] = {"tied": s["tied_at_threshold"], "text": (
            f"{100 * s['share_near_lr']:.1f}% of scalars move within 1% of lr, |change| "
            f"{s['change_p10']:.1e} to {s['change_p90']:.1e} (10th-90th percentile), "
            f"{100 * s['tied_at_threshold']:.1f}% tied at the top-10% threshold (update at {t_s:g} s)")}
    return texts


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
