"""A convolutional variational autoencoder for 28x28 grey images, and its export.

Read top to bottom: the sampling layer, the encoder, the decoder, the model with its loss,
then the export of the six SavedModels the endpoint serves. Imports nothing beyond TensorFlow,
Keras (bundled with it) and numpy, so it runs unchanged in the SageMaker TensorFlow image.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers, ops

logger = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28, 1)

# Probabilities are clipped to [EPSILON, 1 - EPSILON] before the log, as Keras does.
EPSILON = 1e-7


# ----------------------------------------------------------------------------- the loss terms


def reconstruction_error(images, reconstructions):
    """Per-image reconstruction error: pixel binary cross-entropy summed over the image.

    Args:
        images: `[N, 28, 28, 1]` in [0, 1].
        reconstructions: the decoder's output for them, `[N, 28, 28, 1]` in [0, 1].

    Returns:
        `[N]` float32 errors. The same number is the anomaly score.
    """
    clipped = ops.clip(reconstructions, EPSILON, 1.0 - EPSILON)
    pixel = -(images * ops.log(clipped) + (1.0 - images) * ops.log(1.0 - clipped))
    return ops.sum(pixel, axis=(1, 2, 3))


def kl_divergence(z_mean, z_log_var):
    """Per-image KL divergence of N(z_mean, exp(z_log_var)) from the standard normal."""
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)


# ----------------------------------------------------------------------------- the layers


class Sampling(layers.Layer):
    """Draws z = mean + sigma * epsilon, with fresh noise for every example and dimension."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def build_encoder(latent_dim: int) -> keras.Model:
    """Two strided convolutions, then dense heads for the latent mean and log-variance."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(images)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(latent_dim: int) -> keras.Model:
    """A dense layer back to 7x7x64, two transposed convolutions up to 28x28, a sigmoid."""
    z = keras.Input(shape=(latent_dim,), name="z")
    x = layers.Dense(7 * 7 * 64, activation="relu")(z)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
    reconstructions = layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(z, reconstructions, name="decoder")


# ----------------------------------------------------------------------------- the model


class VAE(keras.Model):
    """Encoder, sampling and decoder, trained on reconstruction error plus KL divergence.

    The losses are tracked with `keras.metrics.Mean` trackers listed in `metrics`, so Keras
    shows them (a key named `loss` would be read from the compiled-loss tracker instead).
    """

    def __init__(self, latent_dim: int = 16, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.encoder = build_encoder(latent_dim)
        self.decoder = build_decoder(latent_dim)
        self.sampling = Sampling(seed=seed, name="sampling")
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def call(self, images, training=False):
        z_mean, z_log_var = self.encoder(images, training=training)
        return self.decoder(self.sampling([z_mean, z_log_var]), training=training)

    def vae_losses(self, images, training):
        z_mean, z_log_var = self.encoder(images, training=training)
        reconstructions = self.decoder(self.sampling([z_mean, z_log_var]), training=training)
        reconstruction = ops.mean(reconstruction_error(images, reconstructions))
        kl = ops.mean(kl_divergence(z_mean, z_log_var))
        return reconstruction + kl, reconstruction, kl

    def update_trackers(self, total, reconstruction, kl):
        self.total_loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(reconstruction)
        self.kl_loss_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            total, reconstruction, kl = self.vae_losses(images, training=True)
        gradients = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        return self.update_trackers(total, reconstruction, kl)

    def test_step(self, data):
        images = data[0] if isinstance(data, tuple) else data
        return self.update_trackers(*self.vae_losses(images, training=False))

    def deterministic_error(self, images, batch_size: int = 1000):
        """Reconstruction error on the deterministic path (latent mean, no sampling)."""
        errors = []
        for start in range(0, len(images), batch_size):
            batch = ops.convert_to_tensor(images[start : start + batch_size])
            z_mean, _ = self.encoder(batch, training=False)
            errors.append(reconstruction_error(batch, self.decoder(z_mean, training=False)))
        return ops.convert_to_numpy(ops.concatenate(errors, axis=0))


# ----------------------------------------------------------------------------- the export

#: Model name -> (input name, output names), as served and documented in the README.
SIGNATURES = {
    "vae": ("images", ("reconstructions",)),
    "encoder_mean": ("images", ("z_mean",)),
    "encoder_lgvar": ("images", ("z_log_var",)),
    "encoder_sampler": ("images", ("z",)),
    "decoder": ("z", ("reconstructions",)),
    "anomaly_score": ("images", ("score", "is_anomaly")),
}


def export_models(vae: VAE, model_dir: Path, version: int, threshold: float) -> dict[str, Path]:
    """Write the six SavedModels as `<model_dir>/<name>/<version>/`, TFS layout.

    Each has a `serving_default` signature with named inputs and outputs (`SIGNATURES`).
    `anomaly_score` scores on the deterministic path and flags errors above `threshold`.

    Returns:
        Model name -> the version directory written.
    """
    image_spec = tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name="images")
    latent_spec = tf.TensorSpec([None, vae.latent_dim], tf.float32, name="z")
    encoder, decoder, sampling = vae.encoder, vae.decoder, vae.sampling
    threshold_value = tf.constant(threshold, dtype=tf.float32)

    def reconstruct(images):
        z_mean, z_log_var = encoder(images, training=False)
        return {"reconstructions": decoder(sampling([z_mean, z_log_var]), training=False)}

    def encode_mean(images):
        return {"z_mean": encoder(images, training=False)[0]}

    def encode_log_var(images):
        return {"z_log_var": encoder(images, training=False)[1]}

    def encode_sample(images):
        z_mean, z_log_var = encoder(images, training=False)
        return {"z": sampling([z_mean, z_log_var])}

    def decode(z):
        return {"reconstructions": decoder(z, training=False)}

    def score(images):
        z_mean, _ = encoder(images, training=False)
        errors = reconstruction_error(images, decoder(z_mean, training=False))
        return {"score": errors, "is_anomaly": errors > threshold_value}

    plans = {
        "vae": (reconstruct, image_spec, (encoder, decoder, sampling)),
        "encoder_mean": (encode_mean, image_spec, (encoder,)),
        "encoder_lgvar": (encode_log_var, image_spec, (encoder,)),
        "encoder_sampler": (encode_sample, image_spec, (encoder, sampling)),
        "decoder": (decode, latent_spec, (decoder,)),
        "anomaly_score": (score, image_spec, (encoder, decoder)),
    }
    # `verbose` came with later Keras 3 releases; the training image may ship an older one.
    quiet = (
        {"verbose": False}
        if "verbose" in inspect.signature(keras.export.ExportArchive.write_out).parameters
        else {}
    )
    written = {}
    for name, (fn, spec, tracked) in plans.items():
        archive = keras.export.ExportArchive()
        for layer in tracked:
            archive.track(layer)
        archive.add_endpoint(name="serving_default", fn=fn, input_signature=[spec])
        path = model_dir / name / str(version)
        archive.write_out(str(path), **quiet)
        written[name] = path
        logger.info("exported %s to %s", name, path)
    return written
