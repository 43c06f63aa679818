"""Small SavedModels with the artifact's signatures, for the endpoint's tests.

They stand in for the trained artifact where the weights do not matter (the contract's
rules, layout edge cases) and are quick to build: each model is one matrix product with
fixed weights, saved under the same model names, signature names, input and output names
and dtypes as the training job exports.

Typical use::

    root = build_toy_artifact(tmp_path)          # six models at version 1, plus `scaler`
    build_scaler(tmp_path / "m", {"0001": 1.0})  # one model with chosen version directories
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

LATENT_DIM = 4
IMAGE_SHAPE = (28, 28, 1)
#: Mean squared error above which the toy `anomaly_score` model flags an image.
THRESHOLD = 0.05

_IMAGES = tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name="images")
_LATENT = tf.TensorSpec([None, LATENT_DIM], tf.float32, name="z")


class _ToyVae(tf.Module):
    """An encoder and a decoder that are single matrix products with fixed weights."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        pixels = int(np.prod(IMAGE_SHAPE))
        self.w_mean = tf.Variable(rng.normal(0, 0.05, (pixels, LATENT_DIM)), dtype=tf.float32)
        self.w_lgvar = tf.Variable(rng.normal(0, 0.05, (pixels, LATENT_DIM)), dtype=tf.float32)
        self.w_decoder = tf.Variable(rng.normal(0, 0.5, (LATENT_DIM, pixels)), dtype=tf.float32)

    def _flat(self, images):
        return tf.reshape(images, [-1, int(np.prod(IMAGE_SHAPE))])

    def _decode(self, z):
        return tf.reshape(tf.sigmoid(z @ self.w_decoder), [-1, *IMAGE_SHAPE])

    def _sample(self, images):
        z_mean = self._flat(images) @ self.w_mean
        z_log_var = self._flat(images) @ self.w_lgvar
        return z_mean + tf.exp(0.5 * z_log_var) * tf.random.normal(tf.shape(z_mean))

    @tf.function(input_signature=[_IMAGES])
    def encoder_mean(self, images):
        return {"z_mean": self._flat(images) @ self.w_mean}

    @tf.function(input_signature=[_IMAGES])
    def encoder_both(self, images):
        return {
            "z_mean": self._flat(images) @ self.w_mean,
            "z_log_var": self._flat(images) @ self.w_lgvar,
        }

    @tf.function(input_signature=[_IMAGES])
    def encoder_lgvar(self, images):
        return {"z_log_var": self._flat(images) @ self.w_lgvar}

    @tf.function(input_signature=[_IMAGES])
    def encoder_sampler(self, images):
        return {"z": self._sample(images)}

    @tf.function(input_signature=[_LATENT])
    def decoder(self, z):
        return {"reconstructions": self._decode(z)}

    @tf.function(input_signature=[_IMAGES])
    def vae(self, images):
        return {"reconstructions": self._decode(self._sample(images))}

    @tf.function(input_signature=[_IMAGES])
    def anomaly_score(self, images):
        reconstructions = self._decode(self._flat(images) @ self.w_mean)
        score = tf.reduce_mean(tf.square(images - reconstructions), axis=[1, 2, 3])
        return {"score": score, "is_anomaly": score > THRESHOLD}


class _Scaler(tf.Module):
    """`y = x * factor`: a model whose version is visible in its output."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = tf.Variable(factor, dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def scale(self, x):
        return {"y": x * self.factor}


def build_toy_artifact(root: Path) -> Path:
    """Write the six models of the artifact at version 1 under `root`, plus extras.

    Extras that the discovery rules must handle: `scaler` under two leading directories
    with versions `0001`, `2` and `010` (10 is the highest), a hidden checkpoint directory
    that is not a version, and a `metadata.json` beside the models.

    Returns:
        `root`.
    """
    module = _ToyVae()
    signatures = {
        "vae": {"serving_default": module.vae},
        "encoder_mean": {
            "serving_default": module.encoder_mean,
            "both": module.encoder_both,
        },
        "encoder_lgvar": {"serving_default": module.encoder_lgvar},
        "encoder_sampler": {"serving_default": module.encoder_sampler},
        "decoder": {"serving_default": module.decoder},
        "anomaly_score": {"serving_default": module.anomaly_score},
    }
    for name, functions in signatures.items():
        tf.saved_model.save(module, str(root / name / "1"), signatures=functions)

    build_scaler(root / "extra" / "nested", {"0001": 1.0, "2": 2.0, "010": 10.0})
    # A copy that is not a version: its directory name is not all digits.
    build_scaler(root / "extra" / "nested", {".ipynb_checkpoints": -1.0})
    (root / "metadata.json").write_text(json.dumps({"threshold": THRESHOLD}))
    return root


def build_scaler(parent: Path, versions: Mapping[str, float]) -> Path:
    """Write model `scaler` under `parent`, one SavedModel per version directory name.

    Returns:
        The model directory, `parent / "scaler"`.
    """
    for version_dir, factor in versions.items():
        module = _Scaler(factor)
        tf.saved_model.save(
            module,
            str(parent / "scaler" / version_dir),
            signatures={"serving_default": module.scale},
        )
    return parent / "scaler"


def toy_images(count: int, seed: int = 0) -> np.ndarray:
    """Images `[count, 28, 28, 1]` in [0, 1], float32, from a fixed seed."""
    return np.random.default_rng(seed).random((count, *IMAGE_SHAPE), dtype=np.float32)
