"""Typed, frozen configuration for a run, with the `paper` and `laptop` presets.

Every knob of the method is a named, unit-suffixed field here (SPEC.md, "Defaults"); library
code receives these objects explicitly and never reads flags or the environment.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from amslib.core.profiles import SERVER_PROFILES
from amslib.core.registry import ENCODERS as UPDATE_ENCODERS
from amslib.core.registry import SCHEMES, STRATEGIES

# The registries are the only lists of schemes, strategies and update encoders
# (amslib/core/registry.py); validation below reads them.
UPLINK_CODECS = ("png", "h264")
OPTIMIZER_STATES = ("persist", "reset")  # AdaptConfig.optimizer_state
CLASS_WEIGHTINGS = ("pixels", "balanced")  # AdaptConfig.class_weighting
EDGE_TRAIN_TIMES = ("off", "profile")  # EdgeConfig.edge_train_time
# ServerConfig.server_time: "off" (the server's work is free), "measured" (timed on this
# machine once, cached), "fixed" (the step_*/teacher_frame_s fields), or a shipped profile
# (amslib/core/profiles.py)
SERVER_TIMES = ("off", "measured", "fixed")
SCHEDULERS = ("fifo", "round_robin", "utility")
_SUBCONFIGS = ("adapt", "link", "eval", "baseline", "edge", "server")


class ConfigError(ValueError):
    """A parameter is out of range or unknown; the message says which and what is allowed."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class AdaptConfig:
    """The server's model-update policy (SPEC.md; the paper's tau, T, K, r, gamma)."""

    update_interval_s: float = 10.0  # tau: seconds between updates
    first_update_s: float = 100.0  # the original's first update came at 100 s
    horizon_s: float = 250.0  # T: the server trains on samples of the last T seconds
    iterations: int = 200  # K: training steps per update
    batch_size: int = 10  # frames per step
    lr: float = 1e-3  # Adam learning rate
    sample_rate_fps: float = 1.0  # r: frames per second sent up
    fraction: float = 0.1  # gamma: share of parameters sent down per update
    strategy: str = "gradient_guided"
    reset_to_pretrained: bool = True  # the original restored pretrained weights each update
    # Adam's moments across updates: `persist` keeps them from update to update, as the original
    # did (its restore before each update skipped every variable named Adam and the global step);
    # `reset` starts each update from a fresh Adam state, whose first step moves nearly every
    # scalar by about lr (docs/decisions.md). Each run starts from a fresh state either way.
    optimizer_state: str = "persist"
    # The training loss: `pixels` averages every pixel (the original's); `balanced` averages each
    # class present in the batch, then the classes, so a class on 1% of the pixels weighs as
    # much as the background (a remedy for a rare class being forgotten, docs/real-videos.md).
    class_weighting: str = "pixels"
    one_time_s: float = 60.0  # the One-Time baseline trains on the first 60 s only
    # One-Time's single update trains this many steps on its samples (AMS trains `iterations`
    # at every update); chosen so its training loss has levelled off (docs/decisions.md).
    one_time_iterations: int = 100
    asr: bool = False  # adaptive sampling rate: r follows the scene's change (SPEC.md, "ASR")
    atr: bool = False  # adaptive training rate: longer intervals while r stays low; needs asr
    asr_min_fps: float = 0.1  # ASR clips r to [asr_min_fps, asr_max_fps]
    asr_max_fps: float = 1.0

    def __post_init__(self) -> None:
        _check(self.update_interval_s > 0, f"update_interval_s must be > 0 seconds, got {self.update_interval_s}")
        _check(self.first_update_s >= 0, f"first_update_s must be >= 0 seconds, got {self.first_update_s}")
        _check(self.horizon_s > 0, f"horizon_s must be > 0 seconds, got {self.horizon_s}")
        _check(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(0 < self.lr < 1, f"lr must be in (0, 1), got {self.lr}")
        _check(0 < self.sample_rate_fps <= 60, f"sample_rate_fps must be in (0, 60], got {self.sample_rate_fps}")
        _check(0 < self.fraction <= 1, f"fraction must be in (0, 1], got {self.fraction}")
        _check(self.strategy in STRATEGIES, f"strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        _check(self.one_time_s > 0, f"one_time_s must be > 0 seconds, got {self.one_time_s}")
        _check(self.one_time_iterations >= 1, f"one_time_iterations must be >= 1, got {self.one_time_iterations}")
        _check(self.class_weighting in CLASS_WEIGHTINGS,
               f"class_weighting must be one of {', '.join(CLASS_WEIGHTINGS)}, got '{self.class_weighting}'")
        _check(self.optimizer_state in OPTIMIZER_STATES,
               f"optimizer_state must be one of {', '.join(OPTIMIZER_STATES)}, got '{self.optimizer_state}'")
        _check(0 < self.asr_min_fps <= self.asr_max_fps <= 60,
               f"need 0 < asr_min_fps <= asr_max_fps <= 60, got {self.asr_min_fps} and {self.asr_max_fps}")
        # ATR reads the history of ASR's rates; without ASR that history is constant.
        _check(self.asr or not self.atr, "atr=true needs asr=true (ATR follows the rates ASR chooses)")


@dataclass(frozen=True)
class LinkConfig:
    """The network between edge and server, and how things are encoded to cross it.

    Each direction has a constant bandwidth (`None`: unlimited) or a trace, a CSV of
    (time_s, kbps) rows (amslib/sim/link.py); the empty string means no trace.
    """

    uplink_kbps: float | None = None
    downlink_kbps: float | None = None
    latency_s: float = 0.0  # one-way
    uplink_trace: str = ""  # CSV path of (time_s, kbps); replaces uplink_kbps
    downlink_trace: str = ""
    uplink_codec: str = "png"  # sampled frames as PNG (lossless) or an H.264 stream
    # H.264 target bitrate of the sampled stream at r = 1 frame/s. It scales with the sampling
    # rate so every sampled frame gets the same budget: a lower r (ASR, key-frame strides)
    # then sends fewer bits, as the paper's ASR savings imply.
    h264_kbps: float = 100.0
    update_encoder: str = "original"  # how model updates are written (UPDATE_ENCODERS)
    ledger_all_encoders: bool = True  # also size every update with every encoder (the ledger)
    # The uplink drops a sample when the queue ahead of it would hold it longer than this
    # (None: an unbounded queue, the idealisation every earlier table was made with).
    uplink_queue_s: float | None = None
    # An update still waiting in the downlink queue when a newer one is sent is replaced by it
    # (the newer one then also carries what the dropped one changed).
    supersede_queued: bool = True

    def __post_init__(self) -> None:
        for name in ("uplink_kbps", "downlink_kbps"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"{name} must be > 0 Kbps (or none for unlimited), got {value}")
            trace = getattr(self, name.replace("_kbps", "_trace"))
            _check(not (trace and value is not None),
                   f"give {name} or {name.replace('_kbps', '_trace')}, not both")
        _check(self.latency_s >= 0, f"latency_s must be >= 0 seconds, got {self.latency_s}")
        _check(self.uplink_codec in UPLINK_CODECS,
               f"uplink_codec must be one of {', '.join(UPLINK_CODECS)}, got '{self.uplink_codec}'")
        _check(self.h264_kbps > 0, f"h264_kbps must be > 0, got {self.h264_kbps}")
        _check(self.uplink_queue_s is None or self.uplink_queue_s >= 0,
               f"uplink_queue_s must be >= 0 seconds (or none for unbounded), got {self.uplink_queue_s}")
        _check(self.update_encoder in UPDATE_ENCODERS,
               f"update_encoder must be one of {', '.join(UPDATE_ENCODERS)}, got '{self.update_encoder}'")


@dataclass(frozen=True)
class EvalConfig:
    """How accuracy is summarised (SPEC.md, "Metrics")."""

    window_s: float = 10.0  # trailing window of summed confusion matrices
    warmup_s: float = 250.0  # the original averaged mIoU only after the first 250 s

    def __post_init__(self) -> None:
        _check(self.window_s > 0, f"window_s must be > 0 seconds, got {self.window_s}")
        _check(self.warmup_s >= 0, f"warmup_s must be >= 0 seconds, got {self.warmup_s}")


@dataclass(frozen=True)
class BaselineConfig:
    """Parameters of the Just-In-Time and remote-tracking baselines (SPEC.md, "Baselines").

    Strides are in frames of the run's `fps`, as in Mullapudi et al. (at the laptop preset's
    5 fps, 8 frames are 1.6 s; at the original 30 fps they were 0.27 s).
    """

    jit_threshold: float = 0.9  # train while the student's mIoU on a key frame is below this
    jit_u_max: int = 8  # at most this many training steps per key frame
    jit_min_stride: int = 8  # delta: frames between key frames, kept in [min, max]
    jit_max_stride: int = 64
    tracking_stride: int = 8  # remote tracking: the edge sends every tracking_stride-th frame

    def __post_init__(self) -> None:
        _check(0 < self.jit_threshold <= 1, f"jit_threshold must be in (0, 1], got {self.jit_threshold}")
        _check(self.jit_u_max >= 1, f"jit_u_max must be >= 1, got {self.jit_u_max}")
        _check(1 <= self.jit_min_stride <= self.jit_max_stride,
               f"need 1 <= jit_min_stride <= jit_max_stride, got {self.jit_min_stride} and {self.jit_max_stride}")
        _check(self.tracking_stride >= 1, f"tracking_stride must be >= 1 frame, got {self.tracking_stride}")


@dataclass(frozen=True)
class EdgeConfig:
    """The edge device: what adapting on it costs, and the edge-only schemes' knobs.

    Compute profile (a phone-class default): `inference_s` per frame is the AMS paper's
    40 ms per frame for its student on a phone (SPEC.md: "30 fps, 40 ms on a phone"); a
    training step costs `train_factor` times a forward pass per frame (forward + backward, the
    usual 1:2 rule). Edge compute is reported as seconds of it per second of video."""

    inference_s: float = 0.040
    train_factor: float = 3.0
    # edge_train's own training on the clock: "off" (free: the edge runs its new model as its
    # labels arrive, the idealisation) or "profile" (a training of K steps on b frames takes
    # K * b * train_factor * inference_s, one at a time; the new model runs when it ends)
    edge_train_time: str = "off"
    bn_frames: int = 32  # bn_adapt: BatchNorm statistics from the edge's last this-many frames
    bn_momentum: float = 0.9  # bn_adapt: weight of the old statistics at each re-estimation batch
    tent_lr: float = 1e-4  # tent: Adam learning rate of BatchNorm's scale and shift

    def __post_init__(self) -> None:
        _check(self.inference_s > 0, f"inference_s must be > 0 seconds, got {self.inference_s}")
        _check(self.train_factor >= 1, f"train_factor must be >= 1, got {self.train_factor}")
        _check(self.edge_train_time in EDGE_TRAIN_TIMES,
               f"edge_train_time must be one of {', '.join(EDGE_TRAIN_TIMES)}, got '{self.edge_train_time}'")
        _check(self.bn_frames >= 1, f"bn_frames must be >= 1, got {self.bn_frames}")
        _check(0 <= self.bn_momentum < 1, f"bn_momentum must be in [0, 1), got {self.bn_momentum}")
        _check(0 < self.tent_lr < 1, f"tent_lr must be in (0, 1), got {self.tent_lr}")

    def training_s(self, iterations: int, frames: int) -> float:
        """Seconds `iterations` training steps on `frames` frames each take on this edge."""
        return iterations * frames * self.train_factor * self.inference_s


@dataclass(frozen=True)
class ServerConfig:
    """What the server's work costs on the simulated clock, and how many devices share it.

    `server_time` names where the times come from: "off" (free: the server answers at once,
    the idealisation of every earlier table), "measured" (the run's own training step and
    teacher timed once on this machine and cached, amslib/sim/server.py), "fixed" (the three
    fields below) or a shipped profile (amslib/core/profiles.py). A training step on b frames
    takes step_base_s + b * step_frame_s; the teacher takes teacher_frame_s per frame; all
    divided by `speedup` (a faster server). `devices` edge devices (a fleet run, each its own
    seed of the video) share `gpus` servers, which take waiting work by `scheduler`."""

    server_time: str = "off"
    step_base_s: float = 0.0
    step_frame_s: float = 0.0
    teacher_frame_s: float = 0.0
    speedup: float = 1.0
    devices: int = 1
    gpus: int = 1
    scheduler: str = "fifo"
    # a fleet on a synthetic video: each device its own street (seed + k), or all the same one
    fleet_videos: str = "seeds"

    def __post_init__(self) -> None:
        allowed = (*SERVER_TIMES, *SERVER_PROFILES)
        _check(self.server_time in allowed,
               f"server_time must be one of {', '.join(allowed)}, got '{self.server_time}'")
        for name in ("step_base_s", "step_frame_s", "teacher_frame_s"):
            value = getattr(self, name)
            _check(value >= 0 and value == value, f"{name} must be >= 0 seconds, got {value}")
        _check(self.speedup > 0, f"speedup must be > 0 (2 = a server twice as fast), got {self.speedup}")
        _check(self.devices >= 1, f"devices must be >= 1 edge device, got {self.devices}")
        _check(self.gpus >= 1, f"gpus must be >= 1, got {self.gpus}")
        _check(self.scheduler in SCHEDULERS,
               f"scheduler must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'")
        _check(self.fleet_videos in ("seeds", "same"), f"fleet_videos must be seeds or same, got '{self.fleet_videos}'")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run; saved next to its results."""

    video: str = "synthetic:street"
    scheme: str = "ams"
    height: int = 256  # frames are height x 2*height
    fps: float = 10.0  # frames per second the edge processes
    max_seconds: float | None = None  # stop after this many simulated seconds
    duration_s: float | None = None  # length of a synthetic video (None: its built-in 480 s)
    seed: int = 0
    student: str = "default"  # "default" (shipped) or a .weights.h5 path
    width_multiplier: float = 1.0
    output_stride: int = 16
    head_channels: int = 256  # channels of the DeepLab head branches
    edge_batch: int = 32  # frames per batched edge inference call
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    def __post_init__(self) -> None:
        _check(self.scheme in SCHEMES, f"scheme must be one of {', '.join(SCHEMES)}, got '{self.scheme}'")
        _check(self.height >= 32 and self.height % 8 == 0, f"height must be a multiple of 8 and >= 32, got {self.height}")
        _check(0 < self.fps <= 60, f"fps must be in (0, 60], got {self.fps}")
        _check(self.max_seconds is None or self.max_seconds > 0, f"max_seconds must be > 0, got {self.max_seconds}")
        _check(self.duration_s is None or self.duration_s > 0, f"duration_s must be > 0, got {self.duration_s}")
        _check(self.output_stride in (8, 16), f"output_stride must be 8 or 16, got {self.output_stride}")
        _check(self.width_multiplier > 0, f"width_multiplier must be > 0, got {self.width_multiplier}")
        _check(self.edge_batch >= 1, f"edge_batch must be >= 1, got {self.edge_batch}")
        # at most one sample per frame can go up: a higher rate would be logged but never sent
        _check(self.adapt.sample_rate_fps <= self.fps,
               f"sample_rate_fps={self.adapt.sample_rate_fps:g} is above the run's fps={self.fps:g}: at most one "
               f"sample per frame can be sent; give sample_rate_fps <= {self.fps:g}")
        _check(not self.adapt.asr or self.adapt.asr_max_fps <= self.fps,
               f"asr_max_fps={self.adapt.asr_max_fps:g} is above the run's fps={self.fps:g}; give asr_max_fps <= "
               f"{self.fps:g}")

    @property
    def width(self) -> int:
        return 2 * self.height

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        data = dict(data)
        nested = {"adapt": AdaptConfig, "link": LinkConfig, "eval": EvalConfig,
                  "baseline": BaselineConfig, "edge": EdgeConfig, "server": ServerConfig}
        for key, kind in nested.items():
            if key in data:
                data[key] = kind(**data[key])
        return cls(**data)


PRESETS: dict[str, RunConfig] = {
    # SPEC.md defaults at the paper's 256x512.
    "paper": RunConfig(),
    # Fast on a 2-core CPU: half-width student at 128x256, 5 fps, fewer steps per update.
    # With so few steps, each update continues from the last model instead of restarting
    # from the pretrained one (reset_to_pretrained=False), so adaptation accumulates.
    "laptop": RunConfig(
        height=128,
        fps=5.0,
        width_multiplier=0.5,
        adapt=AdaptConfig(iterations=10, first_update_s=20.0, horizon_s=120.0,
                          reset_to_pretrained=False),
        eval=EvalConfig(warmup_s=60.0),
    ),
}


def preset(name: str) -> RunConfig:
    """The named preset ('paper' or 'laptop')."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}") from None


def _field_owner(config: RunConfig, key: str) -> tuple[str | None, type]:
    """Which sub-config ('adapt', 'link', 'eval', 'baseline' or None for the top level) holds `key`."""
    for f in fields(config):
        if f.name == key and f.name not in _SUBCONFIGS:
            return None, type(config)
    for sub in _SUBCONFIGS:
        if key in {f.name for f in fields(getattr(config, sub))}:
            return sub, type(getattr(config, sub))
    known = sorted(
        [f.name for f in fields(config) if f.name not in _SUBCONFIGS]
        + [f.name for sub in _SUBCONFIGS for f in fields(getattr(config, sub))]
    )
    raise ConfigError(f"unknown parameter '{key}'; known parameters: {', '.join(known)}")


def _parse_value(text: str, current: Any, key: str) -> Any:
    """Parse `text` to the type of the field's current value ('none' clears an optional
    number such as downlink_kbps; a string field keeps the text, e.g. scheme=none)."""
    if isinstance(current, str):
        return text
    if text.lower() in ("none", "null", ""):
        return None
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float) or current is None:
            return float(text)
    except ValueError:
        raise ConfigError(f"parameter '{key}' expects a {type(current).__name__}, got '{text}'") from None
    return text


def with_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A copy of `config` with flat `key: value` overrides (values may be strings, as from
    `--set key=value`), each routed to the sub-config that owns the key."""
    top: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {sub: {} for sub in _SUBCONFIGS}
    for key, value in overrides.items():
        owner, _ = _field_owner(config, key)
        current = getattr(config if owner is None else getattr(config, owner), key)
        if isinstance(value, str):
            value = _parse_value(value, current, key)
        (top if owner is None else subs[owner])[key] = value
    for sub, changes in subs.items():
        if changes:
            top[sub] = replace(getattr(config, sub), **changes)
    return replace(config, **top)


def parse_set_args(items: list[str]) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'} (from every --set given); an item without '=',
    or one key given twice with different values, is an error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        if key in out and out[key] != value:
            raise ConfigError(f"--set gives {key} twice ({out[key]} and {value}); give it once")
        out[key] = value
    return out
