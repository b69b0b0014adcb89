"""`python -m amslib bench`: how fast the workbench runs here, measured, written to JSON.

Every number is measured on this machine in this process (or a child process, for peak
memory); `machine` says what the machine is. Nothing here is asserted: targets are compared
in docs/BENCHMARKS.md.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from amslib.analysis.results import collect
from amslib.core.config import RunConfig, preset, with_overrides
from amslib.core.files import write_json
from amslib.core.tf import keras, tf
from amslib.data.video import open_video_for
from amslib.models.student import Predictor, StudentSpec, build_student
from amslib.models.teachers import CachedTeacher, KerasTeacher
from amslib.sim.codec import encode_update
from amslib.sim.engine import Simulation, Students


def machine_info() -> dict:
    """Cores, CPU model and GPU names (TensorFlow's view)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return {"cores": os.cpu_count(), "cpu": cpu, "gpus": gpus, "python": platform.python_version(),
            "tensorflow": tf.__version__}


def _timed(fn: Callable[[], object], *, repeat: int = 1) -> tuple[float, object]:
    """Best wall time of `repeat` calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        tic = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - tic)
    return best, out


def sim_speed(config: RunConfig, students=None) -> tuple[float, dict]:
    """Simulated seconds per wall second of one run (model loading and tracing excluded)."""
    sim = Simulation.create(config, students=students)
    frames, labels = sim.video.frames(0, 2), sim.video.labels(0, 2)
    sim.students.predictor(frames)  # trace both models before timing
    sim.students.trainer.fit(frames, labels, steps=1, batch_size=2, rng=np.random.default_rng(0))
    wall, result = _timed(lambda: collect(config, sim.video.classes, sim.run()))
    return result.frames["t_s"].size / config.fps / wall, {"wall_s": wall, "students": sim.students,
                                                             "result": result}


def sim_overhead(config: RunConfig, students=None) -> dict:
    """Where one run's wall time goes: the server's training, the edge's inference, the video
    (rendering or decoding) and the teacher's labels, encoding updates, and the rest, the
    simulation's own work (clock, links, metrics, tables, weight patching). `overhead_share`
    is the rest over the wall time; `overhead_share_with_video` counts the video source and the
    teacher as overhead too (for a synthetic video they are the renderer's)."""
    sim = Simulation.create(config, students=students)
    frames, labels = sim.video.frames(0, 2), sim.video.labels(0, 2)
    sim.students.predictor(frames)  # trace both models before timing
    sim.students.trainer.fit(frames, labels, steps=1, batch_size=2, rng=np.random.default_rng(0))
    wall, _ = _timed(lambda: collect(config, sim.video.classes, sim.run()))
    parts = {k: round(v, 3) for k, v in sim.wall_s.items()}
    work = parts.get("server_training", 0.0) + parts.get("edge_inference", 0.0)
    source = parts.get("video", 0.0) + parts.get("teacher", 0.0)
    rest = wall - work - source
    return {"wall_s": round(wall, 3), "parts_s": parts, "rest_s": round(rest, 3),
            "overhead_share": rest / wall, "overhead_share_with_video": (rest + source) / wall,
            "video_s": config.max_seconds}


def edge_speed(config: RunConfig, *, frames: int) -> dict:
    """Batched edge inference against the frame-by-frame (batch 1) reference, same frames."""
    video = open_video_for(config)
    students = Students.load(config, video)
    x = video.frames(0, frames)
    batched = students.predictor
    reference = Predictor(batched.model, batch_size=1)
    batched(x[:2]), reference(x[:1])  # trace both
    t_batched, y_batched = _timed(lambda: batched(x), repeat=2)
    t_reference, y_reference = _timed(lambda: reference(x), repeat=2)
    return {"edge_ms_per_frame": 1000 * t_batched / frames,
            "ms_per_frame_by_batch": batch_profile(batched, x),
            "gflop_per_frame": conv_gflops(batched.model),
            "reference_ms_per_frame": 1000 * t_reference / frames,
            "batched_speedup_vs_reference": t_reference / t_batched,
            "reference_pixels_equal": float(np.mean(y_batched == y_reference)),
            "students": students, "video": video}


def reference_run(config: RunConfig, students) -> dict:
    """The `none` scheme end to end with the batched edge and with the frame-by-frame
    reference (edge_batch=1), on the same frames: wall-time ratio and whether they agree."""
    batched = replace(config, scheme="none")
    reference = replace(batched, edge_batch=1)
    fast, fast_detail = sim_speed(batched, students)
    slow, slow_detail = sim_speed(reference)
    # edge compute is booked on each batch's first frame (NaN on the others): not a result
    booked = ["edge_train_frames", "edge_forward_frames", "edge_shared_frames"]
    a, b = (detail["result"].frames.drop(columns=booked, errors="ignore") for detail in (fast_detail, slow_detail))
    return {"speedup": fast / slow, "batched_sim_s_per_wall_s": fast, "reference_sim_s_per_wall_s": slow,
            "frames": len(a), "tables_equal": bool(a.equals(b)),
            "max_abs_miou_frame_diff": float((a["miou_frame"] - b["miou_frame"]).abs().max())}


def conv_gflops(model) -> float:
    """Multiply-adds x 2 of the model's convolutions for one frame, in GFLOP."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            per_pixel = kh * kw * (c_in if isinstance(layer, keras.layers.DepthwiseConv2D) else c_in * c_out)
            total += 2 * h * w * per_pixel
    return total / 1e9


def batch_profile(predictor, frames: np.ndarray, *, sizes=(1, 2, 4, 8, 16, 32)) -> dict:
    """ms per frame at each batch size: where the curve flattens, the edge is bound by
    convolution arithmetic, not by per-call overhead that batching removes."""
    out = {}
    for size in sizes:
        p = Predictor(predictor.model, batch_size=size)
        p(frames[:size])  # trace
        wall, _ = _timed(lambda: p(frames), repeat=2)
        out[str(size)] = 1000 * wall / len(frames)
    return out


def train_speed(students, video, *, steps: int, batch_size: int) -> float:
    """Milliseconds per server training step (Adam, batch `batch_size`)."""
    x = video.frames(0, batch_size * 2)
    y = video.labels(0, batch_size * 2)
    rng = np.random.default_rng(0)
    students.trainer.fit(x, y, steps=1, batch_size=batch_size, rng=rng)  # trace
    wall, _ = _timed(lambda: students.trainer.fit(x, y, steps=steps, batch_size=batch_size, rng=rng))
    return 1000 * wall / steps


def label_cache_speedup(config: RunConfig, *, frames: int, root: Path) -> dict:
    """First labelling (a full-width DeepLab student as teacher) against the cached second."""
    video = open_video_for(config)
    teacher_model = build_student(StudentSpec(height=video.height, width=video.width))
    shutil.rmtree(root, ignore_errors=True)
    cached = CachedTeacher(KerasTeacher(teacher_model, name="bench-deeplab"), root)
    x = video.frames(0, frames)
    KerasTeacher(teacher_model, name="warm").label(x[:1])
    first, a = _timed(lambda: cached.labels(video, 0, frames, frames=x))
    second, b = _timed(lambda: cached.labels(video, 0, frames, frames=x))
    assert np.array_equal(a, b)
    shutil.rmtree(root, ignore_errors=True)
    return {"first_s": first, "second_s": second, "speedup": first / second}


def update_sizes(students, video, config: RunConfig) -> dict:
    """Bytes of one gradient-guided update under each encoding."""
    x, y = video.frames(0, 20), video.labels(0, 20)
    a = config.adapt
    result = students.trainer.update(x, y, base=students.pretrained, rng=np.random.default_rng(0),
                                     policy=replace(a, strategy="gradient_guided", iterations=2))
    sparse = encode_update(result.values, result.mask)
    return {"mask1bit_fp16_gzip": sparse.compressed_bytes,
            "mask1bit_fp16_raw": sparse.mask_bytes + sparse.value_bytes,
            "full_fp16_gzip": encode_update(result.values, None).compressed_bytes,
            "full_fp32_raw": 4 * result.values.size, "fraction": a.fraction,
            "num_params": int(result.values.size)}


def peak_rss_child(minutes: float, *, fps: float, height: int) -> float:
    """Peak RSS (MiB) of a child process running `none` on a synthetic video of `minutes`.

    Read from VmHWM in /proc/self/status: `getrusage`'s ru_maxrss would also count the
    parent's memory at fork time, which survives the exec."""
    code = ("from amslib.core.config import preset, with_overrides; from amslib.analysis.runs import simulate; "
            f"c = with_overrides(preset('laptop'), dict(scheme='none', height={height}, fps={fps}, "
            f"duration_s={60 * minutes})); simulate(c); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB


def fleet_child(devices: int, *, seconds: float, height: int) -> dict:
    """Wall seconds and peak RSS (MiB) of a child process running an AMS fleet of `devices` on
    one GPU (laptop preset, the same street for each, a fixed server cost of 0.2 s a step), the
    students loaded and traced before the clock starts."""
    code = ("import time; from amslib.core.config import preset, with_overrides; "
            "from amslib.analysis.fleet import run_fleet; from amslib.data.video import open_video_for; "
            "from amslib.sim.engine import Students; "
            f"c = with_overrides(preset('laptop'), dict(scheme='ams', devices={devices}, fleet_videos='same', "
            f"height={height}, max_seconds={seconds}, first_update_s=10.0, server_time='fixed', step_base_s=0.2)); "
            "v = open_video_for(c); s = Students.load(c, v); tic = time.perf_counter(); "
            "run_fleet(c, students=s, video=v); wall = time.perf_counter() - tic; "
            "print(wall, [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, kib = out.stdout.strip().splitlines()[-1].split()
    return {"wall_s": float(wall), "peak_rss_mib": int(kib) / 1024}


def fleet_cost(*, devices=(1, 2, 4), seconds: float = 60.0, height: int = 128) -> dict:
    """A fleet's cost against N separate devices: each fleet's wall time over N times one
    device's (the goal: at most 1.1) and its peak memory (the goal: flat in N)."""
    runs = {n: fleet_child(n, seconds=seconds, height=height) for n in devices}
    one = runs[devices[0]]["wall_s"] / devices[0]
    return {"wall_s": {str(n): r["wall_s"] for n, r in runs.items()},
            "peak_rss_mib": {str(n): r["peak_rss_mib"] for n, r in runs.items()},
            "wall_vs_n_times_one": {str(n): r["wall_s"] / (n * one) for n, r in runs.items()},
            "setup": f"AMS fleets of {', '.join(map(str, devices))} devices on 1 GPU, laptop preset at {height} px, "
                     f"{seconds:g} s each, the same street, fixed server cost 0.2 s a step; a child process each"}


def run_bench(*, quick: bool, log: Callable[[str], None] = print) -> dict:
    """All measurements; `quick` uses fewer frames and shorter runs (minutes, not tens)."""
    out: dict = {"quick": quick, "machine": machine_info()}
    laptop = preset("laptop")
    edge = edge_speed(laptop, frames=64 if quick else 256)
    students, video = edge.pop("students"), edge.pop("video")
    out.update({k: edge[k] for k in ("edge_ms_per_frame", "batched_speedup_vs_reference")})
    out["edge_detail"] = edge
    log(f"edge: {edge['edge_ms_per_frame']:.1f} ms/frame batched, x{edge['batched_speedup_vs_reference']:.1f} vs batch 1")
    ref = reference_run(with_overrides(laptop, {"max_seconds": 30.0 if quick else 120.0}), students)
    out["reference_run"] = ref
    log(f"reference run (none, whole engine): batched x{ref['speedup']:.1f} faster, tables equal: {ref['tables_equal']}")
    out["train_ms_per_step"] = train_speed(students, video, steps=5 if quick else 20,
                                           batch_size=laptop.adapt.batch_size)
    log(f"train: {out['train_ms_per_step']:.0f} ms/step (laptop)")
    out["update_bytes"] = update_sizes(students, video, laptop)
    log(f"update: {out['update_bytes']}")
    out["label_cache_speedup"] = label_cache_speedup(laptop, frames=32 if quick else 128,
                                                     root=Path(".cache/bench-labels"))["speedup"]
    log(f"label cache: x{out['label_cache_speedup']:.0f}")
    out["sim_seconds_per_wall_second"] = sim_speeds(quick=quick, laptop_students=students, log=log)
    overhead = with_overrides(laptop, {"scheme": "ams", "max_seconds": 60.0 if quick else 120.0, "first_update_s": 10.0})
    out["sim_overhead"] = sim_overhead(overhead, students)
    log(f"overhead (laptop ams): {100 * out['sim_overhead']['overhead_share']:.1f}% of the wall time "
        f"({100 * out['sim_overhead']['overhead_share_with_video']:.1f}% with the video and teacher); "
        f"{out['sim_overhead']['parts_s']}")
    minutes = (1, 3) if quick else (1, 5, 15)
    out["peak_rss_mib"] = {str(m): peak_rss_child(m, fps=2.0, height=256) for m in minutes}
    out["peak_rss_setup"] = "scheme none, synthetic:street at 256x512, 2 fps, laptop student"
    log(f"peak RSS MiB by video minutes: {out['peak_rss_mib']}")
    out["fleet_cost"] = fleet_cost(seconds=30.0 if quick else 60.0)
    log(f"fleet: wall vs N x one device {out['fleet_cost']['wall_vs_n_times_one']}, "
        f"peak RSS MiB {out['fleet_cost']['peak_rss_mib']}")
    return out


def sim_speeds(*, quick: bool, laptop_students, log: Callable[[str], None]) -> dict:
    """{scheme: {preset: simulated s per wall s}} for none and ams under laptop and paper.

    The first update is moved to one update interval in, so a short run is in steady state.
    """
    speeds: dict = {"none": {}, "ams": {}, "_setup": {}}
    for name in ("laptop", "paper"):
        base = preset(name)
        seconds = (60.0 if quick else 120.0) if name == "laptop" else (10.0 if quick else 20.0)
        for scheme in ("none", "ams"):
            config = with_overrides(base, {"scheme": scheme, "max_seconds": seconds,
                                           "first_update_s": base.adapt.update_interval_s})
            if name == "paper" and scheme == "ams" and quick:
                config = replace(config, adapt=replace(config.adapt, iterations=20))
            value, _ = sim_speed(config, laptop_students if name == "laptop" else None)
            speeds[scheme][name] = value
            speeds["_setup"][f"{scheme}/{name}"] = {"max_seconds": seconds,
                                                    "iterations": config.adapt.iterations}
            log(f"{scheme:>4} {name:>6}: {value:.2f} simulated s per wall s")
    return speeds


def write_bench(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)


TARGETS = (
    # (what, key path, target, comparison)
    ("`ams` under `laptop`, simulated s per wall s", ("sim_seconds_per_wall_second", "ams", "laptop"), 1.0, ">="),
    ("batched edge vs frame-by-frame reference (speed-up)", ("batched_speedup_vs_reference",), 5.0, ">="),
    ("second labelling from the cache (speed-up)", ("label_cache_speedup",), 20.0, ">="),
)
# (what, key path, goal): targets met when the measured value is at most the goal
CEILINGS = (
    ("simulation's own overhead, `laptop` AMS run (share of wall time)", ("sim_overhead", "overhead_share"), 0.10),
)


def _get(data: dict, path: tuple[str, ...]):
    for key in path:
        data = data[key]
    return data


def markdown(result: dict) -> str:
    """docs/BENCHMARKS.md from a bench result: machine, targets, every number."""
    m = result["machine"]
    lines = ["# Benchmarks", "",
             "Written by `python -m amslib bench --out docs/bench.json --markdown docs/BENCHMARKS.md`"
             + (" (`--quick`)" if result["quick"] else "") + "; every number is measured, none asserted.", "",
             f"Machine: {m['cores']} cores, {m['cpu']}, GPUs: {', '.join(m['gpus']) or 'none'}, "
             f"Python {m['python']}, TensorFlow {m['tensorflow']}.", "",
             *([result["note"], ""] if result.get("note") else []),
             "## Targets", "", "| target | measured | goal | met |", "|---|---|---|---|"]
    for what, path, goal, op in TARGETS:
        value = _get(result, path)
        lines.append(f"| {what} | {value:.2f} | {op} {goal:g} | {'yes' if value >= goal else 'no'} |")
    for what, path, goal in CEILINGS:
        try:
            value = _get(result, path)
        except KeyError:
            continue  # a bench file from before this measurement
        lines.append(f"| {what} | {value:.3f} | <= {goal:g} | {'yes' if value <= goal else 'no'} |")
    rss = result["peak_rss_mib"]
    lines.append(f"| peak memory, 15-minute 256x512 video | {rss.get('15', float('nan')):.0f} MiB | < 2048 MiB, flat | "
                 f"{'yes' if rss.get('15', 1e9) < 2048 else 'no (not measured)' if '15' not in rss else 'no'} |")
    lines += ["", "## Simulation speed (simulated seconds per wall second)", "",
              "| scheme | laptop | paper |", "|---|---|---|"]
    speeds = result["sim_seconds_per_wall_second"]
    for scheme in ("none", "ams"):
        lines.append(f"| {scheme} | {speeds[scheme]['laptop']:.2f} | {speeds[scheme]['paper']:.3f} |")
    lines += ["", f"Runs: {json_line(speeds['_setup'])}; the first update is moved to one update "
              "interval in so a short run is in steady state; model loading and tracing are excluded.", "",
              "## Other measurements", "",
              f"- edge inference, laptop preset, batched: {result['edge_ms_per_frame']:.2f} ms/frame "
              f"(frame by frame: {result['edge_detail']['reference_ms_per_frame']:.2f} ms/frame; "
              f"{100 * result['edge_detail']['reference_pixels_equal']:.3f}% of predicted pixels identical)",
              f"- edge ms/frame by batch size (the profile of the edge speed-up): "
              f"{json_line(result['edge_detail']['ms_per_frame_by_batch'])}; the student's convolutions "
              f"cost {result['edge_detail']['gflop_per_frame']:.2f} GFLOP per frame, so batched inference runs "
              f"at {result['edge_detail']['gflop_per_frame'] / result['edge_ms_per_frame'] * 1000:.0f} GFLOP/s",
              f"- whole `none` run, batched vs reference: x{result['reference_run']['speedup']:.2f}, "
              f"{result['reference_run']['frames']} frames, tables equal: {result['reference_run']['tables_equal']}",
              f"- server training step (laptop, batch {preset('laptop').adapt.batch_size}): "
              f"{result['train_ms_per_step']:.0f} ms",
              f"- update bytes (one gradient-guided update, laptop student): {json_line(result['update_bytes'])}",
              *([f"- where a `laptop` AMS run's wall time goes ({result['sim_overhead']['video_s']:g} s of video, "
                 f"{result['sim_overhead']['wall_s']:.1f} s wall): {json_line(result['sim_overhead']['parts_s'])}; "
                 f"the rest, the simulation's own work: {result['sim_overhead']['rest_s']:.1f} s "
                 f"({100 * result['sim_overhead']['overhead_share']:.1f}%; "
                 f"{100 * result['sim_overhead']['overhead_share_with_video']:.1f}% counting the synthetic video's "
                 "rendering and its labels as overhead too)"] if "sim_overhead" in result else []),
              f"- peak RSS by video minutes ({result['peak_rss_setup']}): {json_line(result['peak_rss_mib'])}",
              *([f"- a fleet's cost ({result['fleet_cost']['setup']}): wall seconds "
                 f"{json_line(result['fleet_cost']['wall_s'])}; against N times one device "
                 f"{json_line({k: round(v, 3) for k, v in result['fleet_cost']['wall_vs_n_times_one'].items()})} "
                 "(goal: at most 1.1); peak RSS MiB "
                 f"{json_line(result['fleet_cost']['peak_rss_mib'])} (goal: flat)"] if "fleet_cost" in result else []),
              ""]
    return "\n".join(lines)


def json_line(data: dict) -> str:
    return ", ".join(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}" for k, v in data.items())
