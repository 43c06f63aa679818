"""Shared fixtures: small real MNIST channels and one real training run per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import Settings
from pipeline.channels import prepare_channels

ROOT = Path(__file__).resolve().parent.parent
TRAINING_DIR = ROOT / "training"

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

#: Latent size of the session's small model (smaller than the default 16 to tell them apart).
SMALL_LATENT_DIM = 8


def run_entry_point(
    args: list[str],
    *,
    model_dir: Path,
    train: Path,
    test: Path,
    output: Path,
    code_dir: Path = TRAINING_DIR,
) -> subprocess.CompletedProcess:
    """Run `train.py` as SageMaker script mode does: from its folder, `SM_*` set.

    Nothing of the project is put on the path (no PYTHONPATH), as in the training image.
    """
    env = {
        **{key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        "SM_MODEL_DIR": str(model_dir),
        "SM_CHANNEL_TRAIN": str(train),
        "SM_CHANNEL_TEST": str(test),
        "SM_OUTPUT_DATA_DIR": str(output),
    }
    return subprocess.run(
        [sys.executable, "-s", "train.py", *args],
        cwd=code_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def small_channels(tmp_path_factory) -> Path:
    """Real MNIST channels, at most 150 images of each digit (train: 300, test: 450)."""
    out = tmp_path_factory.mktemp("channels")
    return prepare_channels(Settings(), out, limit_per_digit=150)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_channels) -> dict:
    """One real training run on the small channels: 2 epochs, latent size 8."""
    base = tmp_path_factory.mktemp("trained")
    paths = {"model_dir": base / "model", "output": base / "output"}
    result = run_entry_point(
        ["--epochs", "2", "--latent-dim", str(SMALL_LATENT_DIM), "--model_dir", "s3://b/k"],
        train=small_channels / "train",
        test=small_channels / "test",
        **paths,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {**paths, "log": result.stdout + result.stderr}


@pytest.fixture(scope="session")
def trained_model_dir(trained_run) -> Path:
    """A model directory with six SavedModels at version 1 and `metadata.json`."""
    return trained_run["model_dir"]


@pytest.fixture(scope="session")
def signatures(trained_model_dir) -> dict:
    """The `serving_default` signature of each trained model, loaded in this process."""
    import tensorflow as tf

    from infra.settings import MODEL_NAMES

    return {
        name: tf.saved_model.load(str(trained_model_dir / name / "1")).signatures["serving_default"]
        for name in MODEL_NAMES
    }
