"""Accuracy and bandwidth metrics (SPEC.md, "Metrics").

Only pixels whose *truth* (teacher label) is one of the video's important classes count; a
prediction outside those classes is a miss for the true class. Per frame we keep, for each
important class, TP, FP and FN pixel counts; IoU = TP / (TP + FP + FN), NaN when the class
is absent from both truth and prediction. All three mIoU protocols are sums of these counts.
"""
from __future__ import annotations

import math

import numpy as np


def confusion_matrices(truth: np.ndarray, pred: np.ndarray, *, class_ids: tuple[int, ...]) -> np.ndarray:
    """(N, K, K+1) int64 counts per frame: rows = true class k, columns = predicted class k
    or K = 'other'.

    truth, pred: (N, H, W) integer class ids of the same label set. Pixels whose truth is
    not in `class_ids` are ignored.
    """
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and pred {pred.shape} must have the same shape")
    n, k = len(truth), len(class_ids)
    lookup = np.full(256, k, np.int64)  # any other id -> 'other'
    lookup[list(class_ids)] = np.arange(k)
    t = lookup[truth.reshape(n, -1)]
    p = lookup[pred.reshape(n, -1)]
    frame = np.arange(n)[:, None] * (k * (k + 1))
    keep = t < k
    flat = (frame + t * (k + 1) + p)[keep]
    return np.bincount(flat, minlength=n * k * (k + 1)).reshape(n, k, k + 1)


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, *, class_ids: tuple[int, ...]) -> np.ndarray:
    """(K, K+1) counts of one frame (H, W) or pooled over frames (N, H, W)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.ndim == 2:
        truth, pred = truth[None], pred[None] if pred.ndim == 2 else pred
    return confusion_matrices(truth, pred, class_ids=class_ids).sum(axis=0)


def frame_counts(truth: np.ndarray, pred: np.ndarray, *, class_ids: tuple[int, ...]) -> np.ndarray:
    """(N, K, 3) int64 [TP, FP, FN] per frame and class. truth, pred: (N, H, W) class ids."""
    cm = confusion_matrices(truth, pred, class_ids=class_ids)
    k = len(class_ids)
    tp = np.diagonal(cm[:, :, :k], axis1=1, axis2=2)
    fp = cm[:, :, :k].sum(axis=1) - tp
    fn = cm.sum(axis=2) - tp
    return np.stack([tp, fp, fn], axis=-1)


def iou(counts: np.ndarray) -> np.ndarray:
    """(..., K, 3) [TP, FP, FN] -> (..., K) IoU in [0, 1], NaN where TP+FP+FN == 0."""
    counts = np.asarray(counts, np.float64)
    union = counts[..., 0] + counts[..., 1] + counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, counts[..., 0] / union, np.nan)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where a row is all NaN (no warning)."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0.0).sum(axis=-1)
    n = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def miou_pooled(counts: np.ndarray) -> float:
    """mIoU of the counts summed over all frames: (N, K, 3) -> scalar in [0, 1]."""
    return float(_nanmean_rows(iou(counts.sum(axis=0))))


def miou_per_frame(counts: np.ndarray) -> np.ndarray:
    """(N, K, 3) -> (N,) each frame's own mIoU (NaN for a frame with no counted pixel)."""
    return _nanmean_rows(iou(counts))


def miou_frame_mean(counts: np.ndarray) -> float:
    """Mean over frames of per-frame mIoU (frames without counted pixels skipped)."""
    per_frame = miou_per_frame(counts)
    return float(np.nanmean(per_frame)) if np.any(~np.isnan(per_frame)) else float("nan")


def iou_window(counts: np.ndarray, times_s: np.ndarray, *, window_s: float) -> np.ndarray:
    """(N, K, 3) counts -> (N, K) IoU of each class over each frame's trailing window
    (t - window_s, t]; NaN where the class has no pixel in the window."""
    cumulative = np.concatenate([np.zeros((1, *counts.shape[1:]), np.int64), np.cumsum(counts, axis=0)])
    first = np.searchsorted(times_s, times_s - window_s, side="right")
    summed = cumulative[np.arange(1, len(times_s) + 1)] - cumulative[first]
    return iou(summed)


def miou_window(counts: np.ndarray, times_s: np.ndarray, *, window_s: float) -> np.ndarray:
    """(N,) mIoU of the counts summed over each frame's trailing window (t - window_s, t].

    The original's headline protocol: a per-frame curve, averaged afterwards.
    """
    return _nanmean_rows(iou_window(counts, times_s, window_s=window_s))


def kbps(bits: float, duration_s: float) -> float:
    """Average rate in Kbps, 1 Kbps = 1000 bit/s (the original divided by 1024)."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    return bits / duration_s / 1000.0


# -- phi: how alike consecutive labels are (ASR's measure; scene changes in dataset checks) --
def consecutive_miou(labels: np.ndarray, *, class_ids: tuple[int, ...]) -> np.ndarray:
    """(N - 1,) mIoU in [0, 1] between each label (N, H, W) and the one before it (the earlier
    label as truth, over `class_ids`); NaN where neither has an important class."""
    labels = np.asarray(labels)
    if len(labels) < 2:
        return np.zeros(0)
    return miou_per_frame(frame_counts(labels[:-1], labels[1:], class_ids=class_ids))


def label_similarity(labels: np.ndarray, *, previous: np.ndarray | None,
                     class_ids: tuple[int, ...]) -> float:
    """phi (SPEC.md, "ASR"): the mean of `consecutive_miou` over labels (N, H, W) uint8, the
    first paired with `previous` (H, W) when given; NaN with no pair or no class present.
    A static scene gives phi near 1."""
    seq = labels if previous is None else np.concatenate([previous[None], labels])
    per_pair = consecutive_miou(seq, class_ids=class_ids)
    return float(np.nanmean(per_pair)) if np.any(~np.isnan(per_pair)) else math.nan


# -- continual-learning metrics: flicker and recovery --------------------------------------------
def flip_rates(labels: np.ndarray, *, previous: np.ndarray | None = None) -> np.ndarray:
    """(N,) share of pixels whose class differs from the frame before, for (N, H, W) class
    ids; the first frame is paired with `previous` (H, W) when given, else NaN. Temporal
    consistency: a model that flickers flips more pixels than the scene (its teacher) does."""
    labels = np.asarray(labels)
    out = np.full(len(labels), math.nan)
    if len(labels) > 1:
        out[1:] = (labels[1:] != labels[:-1]).mean(axis=(1, 2))
    if previous is not None and len(labels):
        out[0] = float((labels[0] != previous).mean())
    return out


def recovery_times(t_s: np.ndarray, miou: np.ndarray, changes_s: np.ndarray, *, before_s: float = 10.0,
                   share: float = 0.9) -> np.ndarray:
    """(C,) seconds after each scene change at `changes_s` until the trailing-window mIoU
    `miou` (N,) at times `t_s` (N,) regains `share` of its mean over the `before_s` seconds
    before the change, having fallen below it within `before_s` after the change (a trailing
    window falls late): 0 if it did not fall; NaN if it never regains it (or had no level)."""
    t_s, miou = np.asarray(t_s, float), np.asarray(miou, float)
    out = np.full(len(changes_s), math.nan)
    for k, change in enumerate(changes_s):
        before = miou[(t_s >= change - before_s) & (t_s < change)]
        if not np.any(~np.isnan(before)):
            continue
        target = share * np.nanmean(before)
        fell = np.flatnonzero((t_s >= change) & (t_s <= change + before_s) & (miou < target))
        if not len(fell):
            out[k] = 0.0
            continue
        regained = np.flatnonzero((t_s > t_s[fell[0]]) & (miou >= target))
        if len(regained):
            out[k] = t_s[regained[0]] - change
    return out


def change_times(t_s: np.ndarray, dips: np.ndarray, *, min_gap_s: float = 20.0) -> np.ndarray:
    """The start times of scene changes from the times `t_s` of dip rows `dips` (bool, N):
    dips closer than `min_gap_s` to the previous one belong to the same change."""
    times = np.asarray(t_s, float)[np.asarray(dips, bool)]
    starts: list[float] = []
    for t in times:
        if not starts or t - starts[-1] >= min_gap_s:
            starts.append(float(t))
    return np.asarray(starts)


def scene_drops(miou_pct, *, window: int = 31):
    """(baseline, drop): the running median of a consecutive-label mIoU series (%, a pandas
    Series) over the `window` rows centred on each, and how far each row falls below it.
    A moving camera lowers the whole curve; a scene change is a drop below its own level."""
    if window < 1:
        raise ValueError(f"need window >= 1, got {window}")
    baseline = miou_pct.rolling(window, center=True, min_periods=1).median()
    return baseline, baseline - miou_pct


def scene_dips(miou_pct, *, drop_pct: float = 15.0, window: int = 31) -> np.ndarray:
    """(N,) bool: the rows at least `drop_pct` points below their running median (`scene_drops`)."""
    if drop_pct <= 0:
        raise ValueError(f"need drop_pct > 0 and window >= 1, got {drop_pct} and {window}")
    return (scene_drops(miou_pct, window=window)[1] >= drop_pct).to_numpy()
