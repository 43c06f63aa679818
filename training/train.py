"""SageMaker script-mode entry point: train the VAE on normal digits and export six models.

SageMaker runs `python train.py --epochs 10 --batch-size 50 ...` with the job's
hyperparameters as flags and the input and output folders in `SM_*` variables; the local main
job (`make local`) runs it the same way. Outside SageMaker the variables default to folders
under the project's `build/`.

Inputs (each channel holds `images.npy`, uint8 `[N, 28, 28, 1]`, and `labels.npy`, uint8 `[N]`):
    SM_CHANNEL_TRAIN   normal training images: the model learns from these only
    SM_CHANNEL_TEST    normal and anomalous test images: the normal ones give the validation loss

Outputs:
    SM_MODEL_DIR/<name>/<version>/   six SavedModels in the TensorFlow Serving layout
    SM_MODEL_DIR/metadata.json       threshold, hyperparameters, data checksums, versions
    SM_OUTPUT_DATA_DIR/history.json  the loss of every epoch

Imports nothing beyond TensorFlow, Keras and numpy (and the standard library), so this folder
runs unchanged in the SageMaker TensorFlow training image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("train")

METADATA_FILE = "metadata.json"

# The largest seed numpy's generators (and so Keras') accept.
MAX_SEED = 2**32 - 1

# Flags SageMaker may add on top of the job's hyperparameters; accepted and ignored.
SAGEMAKER_EXTRA_FLAGS = ("--model_dir",)


# ----------------------------------------------------------------------------- arguments


def parse_digits(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of digits"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train the convolutional VAE and export its SavedModels.",
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training images")
    parser.add_argument("--batch-size", type=int, default=50, help="images per gradient step")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--latent-dim", type=int, default=16, help="size of the latent space")
    parser.add_argument(
        "--normal-digits", type=parse_digits, default=(1, 4), help="digits taken as normal"
    )
    parser.add_argument("--anomaly-digit", type=int, default=5, help="digit taken as anomaly")
    parser.add_argument("--seed", type=int, default=42, help="seed of weights, noise, shuffling")
    parser.add_argument(
        "--threshold-percentile",
        type=float,
        default=99.0,
        help="percentile of the normal training images' error used as anomaly threshold",
    )
    parser.add_argument(
        "--model-version", type=int, default=1, help="version directory of the SavedModels"
    )
    for flag in SAGEMAKER_EXTRA_FLAGS:
        parser.add_argument(flag, help=argparse.SUPPRESS)
    return parser


# Where SageMaker's folders are when the variables are unset (a run outside SageMaker): under
# the project's build/ folder, whatever the working directory.
_BUILD = Path(__file__).resolve().parent.parent / "build"
LOCAL_DEFAULTS = {
    "SM_MODEL_DIR": str(_BUILD / "model"),
    "SM_CHANNEL_TRAIN": str(_BUILD / "data" / "train"),
    "SM_CHANNEL_TEST": str(_BUILD / "data" / "test"),
    "SM_OUTPUT_DATA_DIR": str(_BUILD / "output"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the flags; exit with status 2 and a message naming the flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for variable, default in LOCAL_DEFAULTS.items():
        setattr(args, variable.lower(), os.environ.get(variable, default))
    for flag, value, low in (
        ("--epochs", args.epochs, 1),
        ("--batch-size", args.batch_size, 1),
        ("--latent-dim", args.latent_dim, 1),
        ("--model-version", args.model_version, 0),
    ):
        if value < low:
            parser.error(f"{flag}: got {value}, must be an integer >= {low}")
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed: got {args.seed}, must be an integer from 0 to {MAX_SEED}")
    if not 0 < args.learning_rate < 1:
        parser.error(f"--learning-rate: got {args.learning_rate}, must be between 0 and 1")
    if not 0 < args.threshold_percentile < 100:
        parser.error(
            f"--threshold-percentile: got {args.threshold_percentile}, must be between 0 and 100"
        )
    if not args.normal_digits:
        parser.error("--normal-digits: got no digits, give one or more of 0-9 such as 1,4")
    for digit in args.normal_digits:
        if not 0 <= digit <= 9:
            parser.error(f"--normal-digits: got {digit}, digits must be 0-9")
    if not 0 <= args.anomaly_digit <= 9:
        parser.error(f"--anomaly-digit: got {args.anomaly_digit}, must be a digit 0-9")
    if args.anomaly_digit in args.normal_digits:
        parser.error(
            f"--anomaly-digit: got {args.anomaly_digit}, which is also among --normal-digits "
            f"{','.join(map(str, args.normal_digits))}; pick a digit that is not normal"
        )
    for variable in ("SM_CHANNEL_TRAIN", "SM_CHANNEL_TEST"):
        folder = getattr(args, variable.lower())
        if not Path(folder).is_dir():
            parser.error(
                f"{variable}={folder}: the channel is not a directory; "
                "prepare the data first (make local) or point the variable at it"
            )
    return args


# ----------------------------------------------------------------------------- data


class DataError(ValueError):
    """A channel file that cannot be trained on; the message names the file and the fault."""


def load_channel(folder: Path, digits: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, str]:
    """Read and check one channel; return images, labels and the SHA-256 of both files.

    Raises:
        DataError: a file is missing or not a `.npy` array, images are not uint8
            `[N, 28, 28, 1]`, the counts differ, or a label is outside `digits`.
    """
    paths = {name: folder / f"{name}.npy" for name in ("images", "labels")}
    arrays, digest = {}, hashlib.sha256()
    for name, path in paths.items():
        if not path.is_file():
            raise DataError(f"{path}: missing; each channel holds images.npy and labels.npy")
        raw = path.read_bytes()
        digest.update(raw)
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise DataError(f"{path}: not a readable .npy array ({error})") from error
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise DataError(
            f"{paths['images']}: {images.dtype} {list(images.shape)}, expected uint8 [N, 28, 28, 1]"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{paths['labels']}: {len(labels)} labels of shape {list(labels.shape)} for "
            f"{len(images)} images in {paths['images']}: the counts must match"
        )
    if len(images) == 0:
        raise DataError(f"{paths['images']}: no images")
    unexpected = sorted(set(np.unique(labels).tolist()) - set(digits))
    if unexpected:
        raise DataError(f"{paths['labels']}: labels {unexpected} outside the expected {digits}")
    return images, labels, digest.hexdigest()


def to_float(images: np.ndarray) -> np.ndarray:
    return images.astype("float32") / 255.0


# ----------------------------------------------------------------------------- training


def train(args: argparse.Namespace) -> dict:
    """Train, pick the threshold, export the models; return the metadata written."""
    # Check every input before TensorFlow is imported or any work starts.
    normal = tuple(args.normal_digits)
    train_images, _, train_sha = load_channel(Path(args.sm_channel_train), normal)
    test_images, test_labels, test_sha = load_channel(
        Path(args.sm_channel_test), (*normal, args.anomaly_digit)
    )
    validation_images = test_images[np.isin(test_labels, normal)]
    if len(validation_images) == 0:
        raise DataError(
            f"{args.sm_channel_test}: no images of the normal digits {normal} to validate on"
        )

    import keras
    import tensorflow as tf

    from model import VAE, export_models

    keras.utils.set_random_seed(args.seed)
    logger.info(
        "training on %d normal images (digits %s), validating on %d; TensorFlow %s, Keras %s",
        len(train_images),
        normal,
        len(validation_images),
        tf.__version__,
        keras.__version__,
    )

    vae = VAE(latent_dim=args.latent_dim, seed=args.seed)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate))
    started = time.perf_counter()
    history = vae.fit(
        to_float(train_images),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(to_float(validation_images),),
        shuffle=True,
        verbose=0,
        callbacks=[epoch_logger(keras, args.epochs)],
    )
    seconds = time.perf_counter() - started

    errors = vae.deterministic_error(to_float(train_images))
    threshold = float(np.percentile(errors, args.threshold_percentile))
    logger.info(
        "threshold %.4f: percentile %s of %d normal training errors",
        threshold,
        args.threshold_percentile,
        len(errors),
    )

    model_dir = Path(args.sm_model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    export_models(vae, model_dir, args.model_version, threshold)

    metadata = {
        "threshold": threshold,
        "threshold_percentile": args.threshold_percentile,
        "score": "reconstruction error on the deterministic path: summed pixel binary "
        "cross-entropy between the image and decoder(encoder_mean(image))",
        "model_version": args.model_version,
        "hyperparameters": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "latent_dim": args.latent_dim,
            "normal_digits": list(normal),
            "anomaly_digit": args.anomaly_digit,
            "seed": args.seed,
        },
        "data": {
            "train": {"images": len(train_images), "sha256": train_sha},
            "test": {"images": len(test_images), "sha256": test_sha},
        },
        "training_seconds": round(seconds, 3),
        "final_loss": {key: float(values[-1]) for key, values in history.history.items()},
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")

    output_dir = Path(args.sm_output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    history_rows = [
        {"epoch": i + 1, **{k: float(v[i]) for k, v in history.history.items()}}
        for i in range(len(history.epoch))
    ]
    (output_dir / "history.json").write_text(json.dumps(history_rows, indent=2) + "\n")
    return metadata


def epoch_logger(keras, epochs: int):
    """One log line per epoch; SageMaker metric definitions can match `train_loss=<x>`."""

    def log(epoch, logs):
        logger.info(
            "epoch %d/%d train_loss=%.4f val_loss=%.4f train_reconstruction=%.4f train_kl=%.4f",
            epoch + 1,
            epochs,
            logs.get("total_loss", float("nan")),
            logs.get("val_total_loss", float("nan")),
            logs.get("reconstruction_loss", float("nan")),
            logs.get("kl_loss", float("nan")),
        )

    return keras.callbacks.LambdaCallback(on_epoch_end=log)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    args = parse_args(argv)
    try:
        metadata = train(args)
    except DataError as error:
        logger.error("bad training data: %s", error)
        return 1
    logger.info("done: models in %s, threshold %.4f", args.sm_model_dir, metadata["threshold"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
