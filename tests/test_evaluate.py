"""The evaluation on hand-made scores, where every number can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate import evaluate, reconstruction_error, threshold_from


def test_threshold_is_the_interpolated_percentile_of_normal_errors():
    normal = np.arange(1.0, 101.0)  # 1, 2, ..., 100

    # The 99th percentile of 1..100 with linear interpolation: 1 + 0.99 * 99 = 99.01.
    assert threshold_from(normal, 99.0) == pytest.approx(99.01)
    assert threshold_from(normal, 50.0) == pytest.approx(50.5)


def test_confusion_matrix_and_metrics_at_the_threshold():
    # Six normal images, four anomalies; threshold 5: scores above it are flagged.
    scores = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 5.0, 7.0, 8.0, 9.0, 4.5])
    truth = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)

    result = evaluate(scores, truth, threshold=5.0)

    at = result["at_threshold"]
    # Normal: 1, 2, 3, 4, 5 kept (5 is not above 5), 6 flagged -> tn 5, fp 1.
    # Anomalous: 7, 8, 9 flagged, 4.5 missed -> tp 3, fn 1.
    assert at["confusion_matrix"] == [[5, 1], [1, 3]]
    assert at["accuracy"] == pytest.approx(8 / 10)
    assert at["precision"] == pytest.approx(3 / 4)
    assert at["recall"] == pytest.approx(3 / 4)
    assert at["f1"] == pytest.approx(3 / 4)
    # Cohen's kappa: p_o = 0.8, p_e = 0.6 * 0.6 + 0.4 * 0.4 = 0.52.
    assert at["cohen_kappa"] == pytest.approx((0.8 - 0.52) / (1 - 0.52))
    # From 0/1 predictions the ROC AUC is the mean of TPR and TNR: (0.75 + 5/6) / 2.
    assert at["roc_auc_from_predictions"] == pytest.approx((0.75 + 5 / 6) / 2)
    # Continuous: of 24 (anomaly, normal) pairs, 4.5 ranks below 6 and 5 -> 2 pairs lost.
    assert result["continuous"]["roc_auc"] == pytest.approx(22 / 24)
    assert result["images"] == {"normal": 6, "anomalous": 4}


def test_perfect_separation_scores_one_everywhere():
    scores = np.array([0.1, 0.2, 0.9, 0.8])
    truth = np.array([False, False, True, True])

    result = evaluate(scores, truth, threshold=0.5)

    assert result["at_threshold"]["confusion_matrix"] == [[2, 0], [0, 2]]
    assert result["continuous"] == {"roc_auc": 1.0, "pr_auc": 1.0}


def test_refuses_a_single_class():
    with pytest.raises(ValueError, match="both normal and anomalous"):
        evaluate(np.array([1.0, 2.0]), np.array([False, False]), threshold=1.5)


def test_reconstruction_error_is_summed_pixel_cross_entropy():
    images = np.zeros((2, 28, 28, 1), dtype=np.float32)
    images[1] = 1.0
    reconstructions = np.full((2, 28, 28, 1), 0.5, dtype=np.float32)

    errors = reconstruction_error(images, reconstructions)

    # Every pixel costs -log(0.5) whatever its value: 784 * ln 2 per image.
    np.testing.assert_allclose(errors, [784 * np.log(2.0)] * 2, rtol=1e-6)


def test_reconstruction_error_clips_certain_mistakes():
    images = np.ones((1, 28, 28, 1), dtype=np.float32)
    reconstructions = np.zeros((1, 28, 28, 1), dtype=np.float32)

    errors = reconstruction_error(images, reconstructions)

    # log(0) is clipped to log(1e-7): finite, 784 * 16.118...
    np.testing.assert_allclose(errors, [-784 * np.log(np.float32(1e-7))], rtol=1e-5)
