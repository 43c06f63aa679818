"""The training entry point, run as SageMaker script mode runs it, and the models it exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from infra.settings import MODEL_NAMES
from pipeline.evaluate import reconstruction_error
from tests.conftest import SMALL_LATENT_DIM, run_entry_point

pytestmark = pytest.mark.slow

EXPECTED_SIGNATURES = {
    # model: (input name, input shape, {output name: (shape, dtype)})
    "vae": ("images", [None, 28, 28, 1], {"reconstructions": ([None, 28, 28, 1], tf.float32)}),
    "encoder_mean": ("images", [None, 28, 28, 1], {"z_mean": ([None, 8], tf.float32)}),
    "encoder_lgvar": ("images", [None, 28, 28, 1], {"z_log_var": ([None, 8], tf.float32)}),
    "encoder_sampler": ("images", [None, 28, 28, 1], {"z": ([None, 8], tf.float32)}),
    "decoder": ("z", [None, 8], {"reconstructions": ([None, 28, 28, 1], tf.float32)}),
    "anomaly_score": (
        "images",
        [None, 28, 28, 1],
        {"score": ([None], tf.float32), "is_anomaly": ([None], tf.bool)},
    ),
}


@pytest.fixture(scope="module")
def images(small_channels):
    return np.load(small_channels / "test" / "images.npy")[:40].astype("float32") / 255.0


def test_writes_every_savedmodel_in_the_tfs_layout(trained_model_dir):
    written = sorted(
        p.parent.relative_to(trained_model_dir).as_posix()
        for p in trained_model_dir.rglob("saved_model.pb")
    )

    assert written == sorted(f"{name}/1" for name in MODEL_NAMES)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIGNATURES))
def test_signature_has_documented_names_and_shapes(signatures, name):
    input_name, input_shape, outputs = EXPECTED_SIGNATURES[name]
    signature = signatures[name]

    _, kwargs = signature.structured_input_signature
    assert list(kwargs) == [input_name]
    assert kwargs[input_name].shape.as_list() == input_shape
    assert kwargs[input_name].dtype == tf.float32
    assert sorted(signature.structured_outputs) == sorted(outputs)
    for output, (shape, dtype) in outputs.items():
        assert signature.structured_outputs[output].shape.as_list() == shape
        assert signature.structured_outputs[output].dtype == dtype


def test_encoder_mean_and_decoder_are_deterministic(signatures, images):
    first = signatures["encoder_mean"](images=tf.constant(images))["z_mean"].numpy()
    second = signatures["encoder_mean"](images=tf.constant(images))["z_mean"].numpy()
    decoded = [
        signatures["decoder"](z=tf.constant(first))["reconstructions"].numpy() for _ in range(2)
    ]

    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(decoded[0], decoded[1])


def test_sampling_models_draw_fresh_noise_for_every_example(signatures, images):
    same = np.repeat(images[:1], 4, axis=0)

    z = signatures["encoder_sampler"](images=tf.constant(same))["z"].numpy()
    again = signatures["encoder_sampler"](images=tf.constant(same))["z"].numpy()

    # Four copies of one image get four different samples, and a second call differs too.
    assert len({row.tobytes() for row in z}) == 4
    assert not np.array_equal(z, again)


def test_decoder_outputs_lie_in_the_unit_interval(signatures):
    z = np.random.default_rng(0).normal(scale=3.0, size=(64, SMALL_LATENT_DIM)).astype("float32")

    out = signatures["decoder"](z=tf.constant(z))["reconstructions"].numpy()

    assert out.shape == (64, 28, 28, 1)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_anomaly_score_equals_the_deterministic_path_and_flags_above_threshold(
    signatures, images, trained_model_dir
):
    threshold = json.loads((trained_model_dir / "metadata.json").read_text())["threshold"]

    scored = signatures["anomaly_score"](images=tf.constant(images))
    z_mean = signatures["encoder_mean"](images=tf.constant(images))["z_mean"]
    reconstructions = signatures["decoder"](z=z_mean)["reconstructions"].numpy()

    expected = reconstruction_error(images, reconstructions)
    np.testing.assert_allclose(scored["score"].numpy(), expected, rtol=1e-4)
    np.testing.assert_array_equal(scored["is_anomaly"].numpy(), scored["score"].numpy() > threshold)


def test_metadata_records_threshold_settings_checksums_and_versions(trained_run):
    metadata = json.loads((trained_run["model_dir"] / "metadata.json").read_text())

    assert metadata["threshold"] > 0
    assert metadata["threshold_percentile"] == 99.0
    assert metadata["hyperparameters"]["latent_dim"] == SMALL_LATENT_DIM
    assert metadata["hyperparameters"]["normal_digits"] == [1, 4]
    assert metadata["data"]["train"]["images"] == 300
    assert len(metadata["data"]["train"]["sha256"]) == 64
    assert metadata["versions"]["tensorflow"] == tf.__version__


def test_logs_training_and_validation_loss_every_epoch(trained_run):
    history = json.loads((trained_run["output"] / "history.json").read_text())

    assert [row["epoch"] for row in history] == [1, 2]
    assert all(
        np.isfinite(row["total_loss"]) and np.isfinite(row["val_total_loss"]) for row in history
    )
    assert "epoch 1/2 train_loss=" in trained_run["log"]
    assert "epoch 2/2 train_loss=" in trained_run["log"]


def test_model_version_flag_sets_the_version_directory(tmp_path, small_channels):
    result = run_entry_point(
        ["--epochs", "1", "--latent-dim", "2", "--model-version", "7"],
        model_dir=tmp_path / "model",
        train=small_channels / "train",
        test=small_channels / "test",
        output=tmp_path / "output",
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "decoder" / "7" / "saved_model.pb").is_file()
    assert not (tmp_path / "model" / "decoder" / "1").exists()


# ------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs: got 0"),
        (["--latent-dim", "0"], "--latent-dim: got 0"),
        (["--normal-digits", "1,12"], "--normal-digits: got 12"),
        (["--anomaly-digit", "-1"], "--anomaly-digit: got -1"),
        (["--anomaly-digit", "4"], "--anomaly-digit: got 4, which is also among --normal-digits"),
        (["--normal-digits", "1,x"], "'1,x' is not a comma-separated list of digits"),
        (["--epoch", "5"], "unrecognized arguments: --epoch 5"),
        (["--seed", "-1"], "--seed: got -1, must be an integer from 0 to 4294967295"),
        (["--batch-size", "0"], "--batch-size: got 0"),
    ],
)
def test_rejects_bad_flags_naming_flag_and_value(tmp_path, small_channels, args, message):
    result = run_entry_point(
        args,
        model_dir=tmp_path / "model",
        train=small_channels / "train",
        test=small_channels / "test",
        output=tmp_path / "output",
    )

    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "model").exists()


def test_rejects_a_missing_channel_directory(tmp_path, small_channels):
    result = run_entry_point(
        [],
        model_dir=tmp_path / "model",
        train=tmp_path / "nowhere",
        test=small_channels / "test",
        output=tmp_path / "output",
    )

    assert result.returncode == 2
    assert f"SM_CHANNEL_TRAIN={tmp_path / 'nowhere'}" in result.stderr


def test_stops_before_training_on_a_bad_data_file(tmp_path, small_channels):
    bad = tmp_path / "train"
    bad.mkdir()
    np.save(bad / "images.npy", np.zeros((5, 28, 28, 1), dtype=np.uint8))
    np.save(bad / "labels.npy", np.ones(4, dtype=np.uint8))

    result = run_entry_point(
        [],
        model_dir=tmp_path / "model",
        train=bad,
        test=small_channels / "test",
        output=tmp_path / "output",
    )

    assert result.returncode == 1
    assert "4 labels" in result.stdout and "for 5 images" in result.stdout
    assert "epoch" not in result.stdout
    assert not (tmp_path / "model").exists()
