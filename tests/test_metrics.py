"""Metrics against hand-computed confusion matrices and IoUs."""
import math

import numpy as np
import pytest

from amslib.core import metrics

TRUTH = np.array([[0, 0, 1], [1, 2, 5]], np.uint8)
PRED = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)


def test_confusion_matrix_by_hand():
    cm = metrics.confusion_matrix(TRUTH, PRED, class_ids=(0, 1, 2))
    # truth 0 -> pred 0, 1; truth 1 -> pred 1, 2; truth 2 -> pred 2; truth 5 is ignored
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0]])


def test_prediction_outside_classes_is_a_miss():
    cm = metrics.confusion_matrix(np.array([[3, 3]]), np.array([[3, 7]]), class_ids=(3,))
    np.testing.assert_array_equal(cm, [[1, 1]])


def test_frame_counts_and_iou():
    counts = metrics.frame_counts(TRUTH[None], PRED[None], class_ids=(0, 1, 2))
    np.testing.assert_array_equal(counts[0], [[1, 0, 1], [1, 1, 1], [1, 1, 0]])
    np.testing.assert_allclose(metrics.iou(counts[0]), [1 / 2, 1 / 3, 1 / 2])


def test_absent_class_is_nan_not_zero():
    truth = np.zeros((1, 2, 2), np.uint8)
    counts = metrics.frame_counts(truth, truth.copy(), class_ids=(0, 1))
    ious = metrics.iou(counts[0])
    assert ious[0] == 1.0 and math.isnan(ious[1])
    assert metrics.miou_frame_mean(counts) == 1.0


def test_protocols_differ_as_expected():
    # frame A: class 0 perfect (100 px); frame B: class 0 all wrong (1 px as 'other').
    counts = np.array([[[100, 0, 0]], [[0, 0, 1]]], np.int64)
    assert metrics.miou_pooled(counts) == pytest.approx(100 / 101)
    assert metrics.miou_frame_mean(counts) == pytest.approx(0.5)


def test_window_sums_trailing_counts():
    counts = np.array([[[1, 0, 0]], [[0, 0, 1]], [[0, 0, 1]], [[1, 0, 0]]], np.int64)
    t = np.array([0.0, 1.0, 2.0, 3.0])
    w = metrics.miou_window(counts, t, window_s=2.0)  # windows (t-2, t]
    np.testing.assert_allclose(w, [1.0, 0.5, 0.0, 0.5])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        metrics.confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), class_ids=(0,))


def test_kbps_is_decimal():
    assert metrics.kbps(8000, 2.0) == 4.0
    with pytest.raises(ValueError):
        metrics.kbps(1, 0)
