"""One AMS model update taken apart, for teaching (notebooks/05_how_ams_works.ipynb).

The engine (amslib/sim/engine.py) runs every update of a whole video; here a single update at
video time `t_s` is followed step by step, with the same pieces the engine uses:

1. sampling: the edge sends up the first frame at or after every 1/r seconds
   (`sample_times`, `sampled_frames` of amslib/sim/sampling.py, the clock the schemes run);
2. the server's buffer: the (frame, teacher label) samples of the last T seconds before
   `t_s` (`buffer_at`; `AmsScheme._ready` (amslib/sim/schemes/ams.py) on a lossless, instant uplink);
3. the update: K Adam steps by `Trainer.update`, gradient-guided selection of a fraction
   gamma of the parameters (`one_update`);
4. which parameters it picks, per block of the student, against `random`, `first_layers` and
   `last_layers` at the same gamma (`parameter_groups`, `selection_table`);
5. what the update weighs under every encoder of amslib/sim/codec.py (`encoded_sizes`);
6. what the edge gains: the student's mIoU on the next tau seconds before and after it
   applies the *decoded* update.

The update starts from the pretrained student (as every update does with
`reset_to_pretrained`, and the first update always does). Same seed, same buffer: the same
update as the engine's first one (tests/test_walkthrough.py checks it against a run).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from amslib.analysis.first_step import adam_first_step, first_step_spread  # noqa: F401 - notebook 05's wk.*
from amslib.analysis.plots import comparison_strip
from amslib.core.clock import frame_at
from amslib.core.config import AdaptConfig, RunConfig
from amslib.core.labels import LabelSet
from amslib.core.metrics import frame_counts, miou_pooled
from amslib.core.tf import keras
from amslib.data.video import Video
from amslib.models.student import Predictor, flat_weights, set_flat_weights
from amslib.models.teachers import LabelledFrames, Teacher
from amslib.sim.codec import EncodedUpdate, decode_update, encode_all  # encode_all: notebook 05 uses wk.encode_all too
from amslib.sim.engine import Students
from amslib.sim.sampling import (  # noqa: F401 - notebook 05 shows them as wk.*
    buffer_at,
    check_span,
    labelled_frames,
    sample_times,
    sampled_frames,
)
from amslib.sim.selection import fixed_mask_strategies, strategy_mask

COMPARED = ("random", "first_layers", "last_layers")  # fixed-mask rules shown next to the update's


# The paper's symbols and the AdaptConfig fields that hold them (SPEC.md, "Defaults").
SYMBOLS = (("τ (tau)", "update_interval_s", "seconds between two updates"),
           ("T", "horizon_s", "the server trains on the samples of the last T seconds"),
           ("K", "iterations", "training steps per update"),
           ("r", "sample_rate_fps", "frames per second the edge sends up"),
           ("γ (gamma)", "fraction", "share of the parameters an update sends down"))


def symbols_table(adapt: AdaptConfig) -> pd.DataFrame:
    """The paper's symbols with their values in `adapt`: symbol, parameter, value, meaning."""
    rows = [{"symbol": sym, "parameter": name, "value": getattr(adapt, name), "meaning": meaning}
            for sym, name, meaning in SYMBOLS]
    return pd.DataFrame(rows, dtype=object).set_index("symbol")  # object: K stays an int


# -- 2. frames with labels; the server's buffer ------------------------------------------------
def frames_between(video: Video, teacher: Teacher, *, start_s: float, stop_s: float) -> LabelledFrames:
    """Every frame the edge shows in [start_s, stop_s) (cut at the video's end), labelled."""
    check_span(start_s, stop_s)
    first = frame_at(start_s, video.fps)
    stop = min(video.num_frames, frame_at(stop_s, video.fps))
    if stop <= first:
        raise ValueError(f"no frame of the video ({video.duration_s:g} s) in [{start_s}, {stop_s}) s; "
                         "choose an earlier update time or a longer span")
    return labelled_frames(video, teacher, np.arange(first, stop))


# -- 4. which parameters, per block ---------------------------------------------------------
_PART = re.compile(r"(_(expand|depthwise|project))?(_BatchNorm)?$")


def block_name(layer: str) -> str:
    """The student's block of a layer: 'expanded_conv_3_expand_BatchNorm' -> 'expanded_conv_3',
    'Conv_BatchNorm' -> 'Conv'; a layer outside MobileNetV2's blocks is its own block."""
    return _PART.sub("", layer) or layer


def parameter_groups(model: keras.Model, *, by: str = "block") -> pd.DataFrame:
    """One row per group of the model's parameters, in `flat_weights` order (input to output):
    group, start, stop (offsets into the (P,) vector), num_params. `by`: 'block' (the
    MobileNetV2 block or head branch) or 'layer' (a Keras layer; BatchNorm separate)."""
    if by not in ("block", "layer"):
        raise ValueError(f"by must be 'block' or 'layer', got '{by}'")
    rows, offset = [], 0
    for v in model.trainable_variables:
        layer = v.path.split("/")[0]
        name, size = block_name(layer) if by == "block" else layer, int(np.prod(v.shape))
        if rows and rows[-1]["group"] == name:
            rows[-1]["stop"] += size
        else:
            rows.append({"group": name, "start": offset, "stop": offset + size})
        offset += size
    table = pd.DataFrame(rows)
    table["num_params"] = table["stop"] - table["start"]
    return table


def selection_table(groups: pd.DataFrame, masks: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy table of what each mask selects per group: one row per (strategy, group) with
    num_params, num_selected and share (num_selected / num_params, in [0, 1]).
    groups: from `parameter_groups`; masks: strategy name -> (P,) bool."""
    total = int(groups["stop"].iloc[-1])
    frames = []
    for strategy, mask in masks.items():
        if mask.shape != (total,):
            raise ValueError(f"mask '{strategy}' has shape {mask.shape}; the groups cover {total} parameters")
        selected = np.add.reduceat(mask.astype(np.int64), groups["start"].to_numpy())
        frames.append(pd.DataFrame({"strategy": strategy, "group": groups["group"],
                                    "num_params": groups["num_params"], "num_selected": selected}))
    table = pd.concat(frames, ignore_index=True)
    table["share"] = table["num_selected"] / table["num_params"]
    return table


def comparison_masks(num_params: int, fraction: float, *, seed: int,
                     strategies: tuple[str, ...] = COMPARED) -> dict[str, np.ndarray]:
    """(P,) bool masks the fixed-mask `strategies` would pick at `fraction` (same count,
    round(fraction * P), as gradient-guided selection)."""
    fixed = fixed_mask_strategies()
    unknown = [s for s in strategies if s not in fixed]
    if unknown:
        raise ValueError(f"cannot compare with {unknown}: use fixed-mask strategies ({', '.join(fixed)})")
    rng = np.random.default_rng(seed)
    return {s: strategy_mask(s, num_params, fraction, rng=rng) for s in strategies}


# -- 5. what it weighs ---------------------------------------------------------------------------
def encoded_sizes(encoded: dict[str, EncodedUpdate], *, num_params: int) -> pd.DataFrame:
    """One row per encoder: num_sent, mask_bytes and value_bytes (before compression),
    compressed_bytes (what goes down); then two reference rows for the whole model,
    float32 (4 bytes per parameter) and float16 (2 bytes). `ratio_to_float32`: the share of
    the full float32 model."""
    rows = [{"encoder": name, "num_sent": e.num_sent, "mask_bytes": e.mask_bytes,
             "value_bytes": e.value_bytes, "compressed_bytes": e.compressed_bytes}
            for name, e in encoded.items()]
    for name, width in (("full model, float32", 4), ("full model, float16", 2)):
        rows.append({"encoder": name, "num_sent": num_params, "mask_bytes": 0,
                     "value_bytes": width * num_params, "compressed_bytes": width * num_params})
    table = pd.DataFrame(rows)
    table["ratio_to_float32"] = table["compressed_bytes"] / (4 * num_params)
    return table


# -- 3 and 6. one update, before and after --------------------------------------------------
@dataclass(frozen=True)
class UpdateWalk:
    """Everything about one update. P = number of parameters, K = iterations,
    N = buffer samples, M = frames in the next tau seconds.

    losses (K,): training loss per step (step 1 trains all parameters, then selection);
    base, values, edge_weights (P,) float32: before, after training (server), after decoding
    (edge); mask (P,) bool: the parameters sent; selection: `selection_table` of the update's
    mask and the compared strategies; sizes: `encoded_sizes`; miou: `miou_table`;
    before_next, after_next (M, H, W) uint8: the edge's predictions on the next tau seconds.
    """

    t_s: float
    strategy: str
    fraction: float
    encoder: str
    losses: np.ndarray
    base: np.ndarray
    values: np.ndarray
    edge_weights: np.ndarray
    mask: np.ndarray
    selection: pd.DataFrame
    sizes: pd.DataFrame
    miou: pd.DataFrame
    before_next: np.ndarray
    after_next: np.ndarray

    @property
    def num_params(self) -> int:
        return int(self.base.size)

    @property
    def num_selected(self) -> int:
        return int(self.mask.sum())


def predict_with(predictor: Predictor, weights: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The student's (N, H, W) uint8 prediction of frames (N, H, W, 3) uint8 with `weights`
    (P,) float32; the predictor's own weights are restored afterwards."""
    saved = flat_weights(predictor.model)
    set_flat_weights(predictor.model, weights)
    try:
        return predictor(frames)
    finally:
        set_flat_weights(predictor.model, saved)


def pooled_miou(labels: np.ndarray, predictions: np.ndarray, *, class_ids: tuple[int, ...]) -> float:
    """mIoU (in [0, 1]) of the counts pooled over frames: labels (truth) and predictions
    (N, H, W) uint8; only the video's classes count (amslib/core/metrics.py)."""
    return miou_pooled(frame_counts(labels, predictions, class_ids=class_ids))


def miou_table(before: dict[str, float], after: dict[str, float]) -> pd.DataFrame:
    """mIoU in percent per span (the keys of `before`/`after`, in [0, 1]) before and after
    the update, and the gain in points."""
    table = pd.DataFrame({"before_%": pd.Series(before) * 100, "after_%": pd.Series(after) * 100})
    table["gain_points"] = table["after_%"] - table["before_%"]
    return table.rename_axis("student's mIoU on")


def one_update(students: Students, buffer: LabelledFrames, upcoming: LabelledFrames, *,
               config: RunConfig, t_s: float, class_ids: tuple[int, ...], base: np.ndarray | None = None,
               by: str = "block", compare: tuple[str, ...] = COMPARED) -> UpdateWalk:
    """One update at `t_s` of the student in `students` (the engine's, loaded for the video)
    on `buffer`, judged on `upcoming` (the next tau seconds) over the video's `class_ids`.

    Uses config.adapt (strategy, fraction gamma, iterations K, batch_size, lr),
    config.link.update_encoder (what the edge decodes; every encoder is sized) and
    config.seed (the engine's first update draws its batches from the same generator).
    `base` (P,) float32: the weights before the update (default: the pretrained ones)."""
    base = students.pretrained if base is None else np.asarray(base, np.float32)
    _check_inputs(students, buffer, upcoming, base)
    adapt = config.adapt
    result = students.trainer.update(buffer.frames, buffer.labels, base=base, policy=adapt,
                                     rng=np.random.default_rng(config.seed))
    mask = np.ones(base.size, bool) if result.mask is None else result.mask  # `full` sends all
    encoded = encode_all(result.values, result.mask, base=base)
    edge = decode_update(encoded[config.link.update_encoder], base)  # what the edge will hold
    masks = {adapt.strategy: mask,
             **comparison_masks(base.size, adapt.fraction, seed=config.seed, strategies=compare)}
    on_buffer = before_after(students.predictor, buffer, base=base, edge=edge, class_ids=class_ids)
    on_next = before_after(students.predictor, upcoming, base=base, edge=edge, class_ids=class_ids)
    spans = (f"buffer (last {adapt.horizon_s:g} s)", f"next {adapt.update_interval_s:g} s")
    return UpdateWalk(
        t_s=t_s, strategy=adapt.strategy, fraction=adapt.fraction, encoder=config.link.update_encoder,
        losses=np.asarray(result.losses), base=base, values=result.values, edge_weights=edge, mask=mask,
        selection=selection_table(parameter_groups(students.trainer.model, by=by), masks),
        sizes=encoded_sizes(encoded, num_params=base.size),
        miou=miou_table(dict(zip(spans, (on_buffer[0], on_next[0]))), dict(zip(spans, (on_buffer[1], on_next[1])))),
        before_next=on_next[2], after_next=on_next[3])


def before_after(predictor: Predictor, clip: LabelledFrames, *, base: np.ndarray, edge: np.ndarray,
                 class_ids: tuple[int, ...]) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(mIoU before, mIoU after, predictions before, predictions after) of the student on
    `clip` with weights `base` and then `edge` (P,); mIoU pooled over the clip, in [0, 1];
    predictions (N, H, W) uint8."""
    before = predict_with(predictor, base, clip.frames)
    after = predict_with(predictor, edge, clip.frames)
    return (pooled_miou(clip.labels, before, class_ids=class_ids),
            pooled_miou(clip.labels, after, class_ids=class_ids), before, after)


def _check_inputs(students: Students, buffer: LabelledFrames, upcoming: LabelledFrames,
                  base: np.ndarray) -> None:
    if len(buffer) == 0 or len(upcoming) == 0:
        raise ValueError("the buffer and the upcoming frames must not be empty")
    size = tuple(students.predictor.model.input_shape[1:3])
    for name, clip in (("buffer", buffer), ("upcoming", upcoming)):
        if clip.frames.shape[1:3] != size:
            raise ValueError(f"{name} frames are {clip.frames.shape[1:3]}, the student takes {size}: "
                             "load the students for this video (Students.load(config, video))")
    if base.shape != students.pretrained.shape:
        raise ValueError(f"base has {base.size} values, the student has {students.pretrained.size} parameters")


# -- figures -----------------------------------------------------------------------------------
def sampling_figure(samples: LabelledFrames, *, start_s: float, stop_s: float, fps: float,
                    rate_fps: float, max_thumbnails: int = 10) -> go.Figure:
    """Timeline of [start_s, stop_s): a tick per frame the edge shows (fps), a marker per
    frame it sends up (r), and thumbnails of up to `max_thumbnails` of those."""
    frames_t = np.arange(frame_at(start_s, fps), frame_at(stop_s, fps)) / fps
    fig = go.Figure()
    fig.add_scatter(x=frames_t, y=np.full(len(frames_t), 0.1), mode="markers", name=f"frames shown ({fps:g} fps)",
                    marker=dict(symbol="line-ns-open", size=10, color="#999"))
    fig.add_scatter(x=samples.times_s, y=np.full(len(samples), 0.1), mode="markers", name=f"sent up (r = {rate_fps:g} fps)",
                    marker=dict(size=11, color="#1f77b4"))
    shown = samples.pick(max_thumbnails)
    width = (stop_s - start_s) / max(len(shown), 1) * 0.92
    for t, frame in zip(shown.times_s, shown.frames):
        fig.add_layout_image(source=Image.fromarray(frame), x=t, y=0.6, xref="x", yref="y", sizex=width,
                             sizey=0.7, xanchor="center", yanchor="middle", sizing="contain", layer="above")
    fig.update_layout(template="plotly_white", height=300, title="What the edge sends up",
                      xaxis=dict(title="video time (s)", range=[start_s - width / 2, stop_s + width / 2]),
                      yaxis=dict(visible=False, range=[0, 1]), legend=dict(orientation="h", y=-0.35))
    return fig


def loss_figure(losses: np.ndarray) -> go.Figure:
    """Training loss per step (K steps): step 1 moves every parameter (that step's changes
    rank them for gradient-guided selection), steps 2..K only the selected ones."""
    steps = np.arange(1, len(losses) + 1)
    fig = go.Figure()
    fig.add_scatter(x=steps, y=losses, mode="lines+markers", name="loss")
    fig.add_scatter(x=steps[:1], y=losses[:1], mode="markers", marker=dict(size=13, color="#d62728"),
                    name="step 1: all parameters, then select gamma")
    fig.update_layout(template="plotly_white", height=320, title="The K training iterations",
                      xaxis_title="step", yaxis_title="cross-entropy on the buffer's classes")
    return fig


def selection_figure(selection: pd.DataFrame) -> go.Figure:
    """Share (%) of each group's parameters that each strategy selects (`selection_table`)."""
    fig = go.Figure()
    for strategy, rows in selection.groupby("strategy", sort=False):
        fig.add_bar(x=rows["group"], y=100 * rows["share"], name=strategy,
                    customdata=rows[["num_selected", "num_params"]],
                    hovertemplate="%{x}: %{customdata[0]} of %{customdata[1]} (%{y:.1f}%)")
    fig.update_layout(template="plotly_white", height=420, barmode="group",
                      title="Share of each block's parameters selected (same count for every strategy)",
                      yaxis_title="selected (%)", xaxis_tickangle=-45, legend=dict(orientation="h", y=1.1))
    return fig


def sizes_figure(sizes: pd.DataFrame) -> go.Figure:
    """Bytes of the update per encoder and of the full model (`encoded_sizes`), log scale."""
    fig = go.Figure(go.Bar(x=sizes["encoder"], y=sizes["compressed_bytes"],
                           text=[f"{b / 1000:.1f} kB" for b in sizes["compressed_bytes"]], textposition="outside"))
    fig.update_layout(template="plotly_white", height=360, title="What one update weighs",
                      yaxis=dict(title="bytes sent (log)", type="log"))
    return fig


def legend_image(label_set: LabelSet, classes: tuple[str, ...]) -> Image.Image:
    """A row of colour swatches with the names of `classes` (the label palette)."""
    canvas = Image.new("RGB", (110 * len(classes), 22), "white")
    draw = ImageDraw.Draw(canvas)
    palette = label_set.palette()
    for k, (name, cid) in enumerate(zip(classes, label_set.ids(classes))):
        draw.rectangle([110 * k + 4, 4, 110 * k + 18, 18], fill=tuple(int(c) for c in palette[cid]))
        draw.text((110 * k + 22, 5), name, fill="black")
    return canvas


def samples_strip(samples: LabelledFrames, *, label_set: LabelSet, count: int = 6) -> Image.Image:
    """Up to `count` samples, evenly spaced: frames above their labels (class palette)."""
    shown = samples.pick(count)
    return comparison_strip(shown.frames, shown.labels, {}, label_set=label_set,
                            titles=[f"t = {t:.1f} s" for t in shown.times_s])


def before_after_strip(walk: UpdateWalk, upcoming: LabelledFrames, *, label_set: LabelSet,
                       count: int = 4) -> Image.Image:
    """Up to `count` frames of the next tau seconds: frame, teacher, the edge's prediction
    before and after the update."""
    picks = np.unique(np.linspace(0, len(upcoming) - 1, max(1, min(count, len(upcoming)))).round().astype(int))
    return comparison_strip(upcoming.frames[picks], upcoming.labels[picks],
                            {"before": walk.before_next[picks], "after": walk.after_next[picks]},
                            label_set=label_set, titles=[f"t = {t:.1f} s" for t in upcoming.times_s[picks]])
