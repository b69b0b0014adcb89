"""The rules that check the paper's claims (`python -m amslib claims`, docs/claims.md): each
claim, with the paper's words (`CLAIM_TEXT`), is checked by a stated rule on runs compared
over the same span of video (`evaluate_claims`), and says why it holds or not; the first
update's spread of the selection strategies explains claim C3's result (`first_step_spreads`).
claims.py runs the configurations and writes the document.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd

from amslib.analysis.first_step import first_step_spread
from amslib.analysis.results import RunResult
from amslib.core.config import RunConfig
from amslib.data.video import open_video_for
from amslib.models.teachers import OracleTeacher
from amslib.sim.engine import Students
from amslib.sim.sampling import buffer_at

CLOSE_POINTS = 2.0  # "close" = within 2 mIoU points
FAR_MORE = 3.0  # "far more bandwidth" = at least 3x AMS's up + down
ASR_SAVING = 0.2  # ASR "saves uplink" = at least 20% less, losing at most CLOSE_POINTS mIoU
COMPARED_STRATEGIES = ("random", "first_layers", "last_layers", "first_and_last")  # claim C3's others
EDGE_SCHEMES = ("bn_adapt", "tent")  # adaptation on the edge alone


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
