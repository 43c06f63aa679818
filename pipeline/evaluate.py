"""The reference analysis: reconstruction error, a threshold from normal data, and metrics.

An image is flagged as an anomaly when its reconstruction error is above the threshold, the
given percentile of the normal training images' errors. The metrics come from scikit-learn:
at the threshold (accuracy, precision, recall, F1, Cohen's kappa, confusion matrix) and on the
continuous score (ROC AUC, PR AUC). The reference analysis computed its AUC from the 0/1
predictions; that figure is reported too, labelled as such. The anomaly is the positive class.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn import metrics

logger = logging.getLogger(__name__)

# The same clipping as `training.model.reconstruction_error` (and Keras' cross-entropy).
EPSILON = 1e-7


def reconstruction_error(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image summed pixel binary cross-entropy, in float32 as the models compute it.

    Args:
        images: `[N, 28, 28, 1]` floats in [0, 1].
        reconstructions: `[N, 28, 28, 1]` floats in [0, 1].
    """
    images = np.asarray(images, dtype=np.float32)
    clipped = np.clip(np.asarray(reconstructions, dtype=np.float32), EPSILON, 1.0 - EPSILON)
    pixel = -(images * np.log(clipped) + (1.0 - images) * np.log(1.0 - clipped))
    return pixel.reshape(len(images), -1).sum(axis=1, dtype=np.float32)


def threshold_from(normal_errors: np.ndarray, percentile: float) -> float:
    """The `percentile`-th percentile of the normal images' errors (linear interpolation)."""
    return float(np.percentile(np.asarray(normal_errors, dtype=np.float64), percentile))


def evaluate(scores: np.ndarray, is_anomaly: np.ndarray, threshold: float) -> dict:
    """Metrics of flagging `scores > threshold` against the truth `is_anomaly`.

    Returns:
        A JSON-ready dict: counts, the metrics at the threshold, the confusion matrix as
        `[[tn, fp], [fn, tp]]` (rows truth, columns prediction, normal first), and the AUCs.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(is_anomaly, dtype=bool)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {truth.shape} must be equal 1-D")
    if truth.all() or not truth.any():
        raise ValueError("evaluation needs both normal and anomalous images")
    predicted = scores > threshold

    return {
        "threshold": float(threshold),
        "images": {"normal": int((~truth).sum()), "anomalous": int(truth.sum())},
        "at_threshold": {
            "accuracy": float(metrics.accuracy_score(truth, predicted)),
            "precision": float(metrics.precision_score(truth, predicted, zero_division=0)),
            "recall": float(metrics.recall_score(truth, predicted, zero_division=0)),
            "f1": float(metrics.f1_score(truth, predicted, zero_division=0)),
            "cohen_kappa": float(metrics.cohen_kappa_score(truth, predicted)),
            "confusion_matrix": metrics.confusion_matrix(truth, predicted, labels=[False, True])
            .astype(int)
            .tolist(),
            "roc_auc_from_predictions": float(metrics.roc_auc_score(truth, predicted)),
        },
        "continuous": {
            "roc_auc": float(metrics.roc_auc_score(truth, scores)),
            "pr_auc": float(metrics.average_precision_score(truth, scores)),
        },
    }
