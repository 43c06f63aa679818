"""The report a person reads after a run: `metrics.json` and four figures (matplotlib, PNG).

- `reconstructions.png`: normal and anomalous test images above their reconstructions.
- `latent_pca.png`: the 2-D PCA (scikit-learn) of the latent means, coloured by digit.
- `error_histogram.png`: reconstruction errors of normal and anomalous images, threshold line.
- `roc_curve.png`: the ROC curve of the continuous score, with the operating point.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import roc_curve

logger = logging.getLogger(__name__)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_metrics(path: Path, metrics: dict) -> Path:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    return path


def plot_reconstructions(
    path: Path,
    normal: tuple[np.ndarray, np.ndarray],
    anomalous: tuple[np.ndarray, np.ndarray],
    titles: tuple[str, str],
) -> Path:
    """Rows: normal inputs, their reconstructions, anomalous inputs, theirs."""
    columns = min(len(normal[0]), len(anomalous[0]), 10)
    figure, axes = plt.subplots(4, columns, figsize=(columns * 1.1, 5.0), squeeze=False)
    rows = [
        (normal[0], f"{titles[0]}: input"),
        (normal[1], "reconstruction"),
        (anomalous[0], f"{titles[1]}: input"),
        (anomalous[1], "reconstruction"),
    ]
    for row, (images, label) in enumerate(rows):
        for column in range(columns):
            axis = axes[row][column]
            axis.imshow(images[column].reshape(28, 28), cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle("Inputs and reconstructions (deterministic path)")
    return _save(figure, path)


def plot_latent_pca(path: Path, z_mean: np.ndarray, digits: np.ndarray) -> Path:
    """The latent means projected on their first two principal components."""
    pca = PCA(n_components=2, random_state=0)
    projected = pca.fit_transform(z_mean)
    figure, axis = plt.subplots(figsize=(6.0, 5.0))
    for digit in np.unique(digits):
        chosen = digits == digit
        axis.scatter(*projected[chosen].T, s=4, alpha=0.6, label=f"digit {digit}")
    explained = pca.explained_variance_ratio_
    axis.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    axis.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    axis.set_title("Latent means of the test images, PCA")
    axis.legend(markerscale=3)
    return _save(figure, path)


def plot_error_histogram(
    path: Path,
    errors: np.ndarray,
    is_anomaly: np.ndarray,
    threshold: float,
    labels: tuple,
    score_path: str,
) -> Path:
    """Histograms of the reconstruction error, normal against anomalous, and the threshold."""
    figure, axis = plt.subplots(figsize=(7.0, 4.5))
    bins = np.linspace(errors.min(), np.percentile(errors, 99.8), 80)
    axis.hist(errors[~is_anomaly], bins=bins, alpha=0.6, label=labels[0], density=True)
    axis.hist(errors[is_anomaly], bins=bins, alpha=0.6, label=labels[1], density=True)
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.1f}")
    axis.set_xlabel("reconstruction error (summed pixel binary cross-entropy)")
    axis.set_ylabel("density")
    axis.set_title(f"Reconstruction error of the test images ({score_path} path)")
    axis.legend()
    return _save(figure, path)


def plot_roc(
    path: Path,
    scores: np.ndarray,
    is_anomaly: np.ndarray,
    threshold: float,
    auc: float,
    score_path: str,
) -> Path:
    """The ROC curve of the continuous score, with the point the threshold picks."""
    false_positive, true_positive, _ = roc_curve(is_anomaly, scores)
    predicted = scores > threshold
    point = (
        float((predicted & ~is_anomaly).sum() / max((~is_anomaly).sum(), 1)),
        float((predicted & is_anomaly).sum() / max(is_anomaly.sum(), 1)),
    )
    figure, axis = plt.subplots(figsize=(5.5, 5.0))
    axis.plot(false_positive, true_positive, label=f"reconstruction error (AUC {auc:.4f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axis.scatter(*point, color="black", zorder=3, label="at the threshold")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(f"ROC curve, {score_path} path: anomaly is positive")
    axis.legend(loc="lower right")
    return _save(figure, path)
