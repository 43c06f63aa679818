"""Score MNIST through the served models and write the report.

The analysis needs only a `predict(model_name, inputs) -> {output name: array}` function, so
the same code scores through SavedModels loaded in this process, through the local endpoint
and through a deployed SageMaker endpoint.

Two reconstruction errors per image are computed:
- deterministic path (the default, used for flagging): `encoder_mean` then `decoder`, which
  the `anomaly_score` model computes in one call; repeatable for the same image;
- `vae` path: the full model, which samples the latent, so the error varies between calls.
Each path has its own threshold, learned from the normal training images on that path.

After `cdk deploy`, a platform engineer runs the same analysis against the real endpoint::

    python -m pipeline.score --endpoint-name <name> --region eu-west-1
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline import report
from pipeline.evaluate import evaluate, reconstruction_error, threshold_from

logger = logging.getLogger(__name__)

Predict = Callable[[str, np.ndarray], dict[str, np.ndarray]]

DEFAULT_PATH = "deterministic"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclasses.dataclass
class Channels:
    """The images of the two channels as floats in [0, 1], with their digit labels."""

    train_images: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @classmethod
    def load(cls, data_dir: Path) -> Channels:
        def images(channel: str) -> np.ndarray:
            return np.load(data_dir / channel / "images.npy").astype(np.float32) / 255.0

        return cls(
            train_images=images("train"),
            test_images=images("test"),
            test_labels=np.load(data_dir / "test" / "labels.npy"),
        )


def endpoint_predict(client) -> Predict:
    """`predict` through an `artifacts.client.EndpointClient` (local or deployed endpoint).

    A model with one output answers with a bare array in TFS's column format; it is keyed
    here by the output's name so that both ways of scoring look the same.
    """
    from training.model import SIGNATURES

    def predict(model: str, inputs: np.ndarray) -> dict[str, np.ndarray]:
        result = client.predict(model, inputs)
        if isinstance(result, dict):
            return result
        (output,) = SIGNATURES[model][1]
        return {output: result}

    return predict


class InProcessModels:
    """`predict` over SavedModels loaded with `tf.saved_model.load`, in batches."""

    def __init__(self, model_dir: Path, version: int, batch_size: int = 1000):
        import tensorflow as tf

        from infra.settings import MODEL_NAMES

        self._tf = tf
        self.batch_size = batch_size
        self.signatures = {
            name: tf.saved_model.load(str(model_dir / name / str(version))).signatures[
                "serving_default"
            ]
            for name in MODEL_NAMES
            if (model_dir / name / str(version)).is_dir()
        }

    def __call__(self, model: str, inputs: np.ndarray) -> dict[str, np.ndarray]:
        signature = self.signatures[model]
        (input_name,) = signature.structured_input_signature[1]
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(inputs), self.batch_size):
            batch = self._tf.constant(inputs[start : start + self.batch_size])
            for key, value in signature(**{input_name: batch}).items():
                parts.setdefault(key, []).append(value.numpy())
        return {key: np.concatenate(values) for key, values in parts.items()}


def analyse(
    predict: Predict,
    channels: Channels,
    *,
    normal_digits: tuple[int, ...],
    anomaly_digit: int,
    threshold_percentile: float,
    served_threshold: float | None = None,
) -> dict:
    """Score both paths, learn thresholds from normal training images, evaluate the test set.

    Returns:
        `metrics` (JSON-ready) and `arrays` (what the figures need).
    """
    train, test, labels = channels.train_images, channels.test_images, channels.test_labels
    is_anomaly = labels == anomaly_digit

    logger.info("scoring %d normal training images on both paths", len(train))
    train_scored = predict("anomaly_score", train)
    train_deterministic = train_scored["score"]
    train_vae = reconstruction_error(train, predict("vae", train)["reconstructions"])

    logger.info("scoring %d test images on both paths", len(test))
    test_scored = predict("anomaly_score", test)
    z_mean = predict("encoder_mean", test)["z_mean"]
    deterministic_reconstructions = predict("decoder", z_mean)["reconstructions"]
    test_deterministic = reconstruction_error(test, deterministic_reconstructions)
    test_vae = reconstruction_error(test, predict("vae", test)["reconstructions"])

    # `anomaly_score` must agree with the two-model path it stands for.
    agreement = float(np.max(np.abs(test_scored["score"] - test_deterministic)))
    if agreement > 1e-3 * max(1.0, float(np.max(np.abs(test_deterministic)))):
        raise RuntimeError(
            f"anomaly_score differs from encoder_mean + decoder by up to {agreement}: "
            "the artifact's models do not belong together"
        )

    thresholds = {
        "deterministic": threshold_from(train_deterministic, threshold_percentile),
        "vae": threshold_from(train_vae, threshold_percentile),
    }
    paths = {
        "deterministic": evaluate(test_scored["score"], is_anomaly, thresholds["deterministic"]),
        "vae": evaluate(test_vae, is_anomaly, thresholds["vae"]),
    }
    metrics = {
        "default_path": DEFAULT_PATH,
        "normal_digits": list(normal_digits),
        "anomaly_digit": anomaly_digit,
        "threshold_percentile": threshold_percentile,
        "served_threshold": served_threshold,
        "anomaly_score_max_abs_difference": agreement,
        "paths": paths,
    }
    if served_threshold is not None:
        # The flag the endpoint returns uses the threshold learned in training.
        served_flags = test_scored["is_anomaly"].astype(bool)
        metrics["served_flags_match_threshold"] = bool(
            np.array_equal(served_flags, test_scored["score"] > served_threshold)
        )
    arrays = {
        "test_images": test,
        "test_labels": labels,
        "is_anomaly": is_anomaly,
        "z_mean": z_mean,
        "deterministic_reconstructions": deterministic_reconstructions,
        "scores": {"deterministic": test_scored["score"], "vae": test_vae},
        "thresholds": thresholds,
    }
    return {"metrics": metrics, "arrays": arrays}


def write_report(out_dir: Path, result: dict, extra: dict | None = None) -> dict[str, Path]:
    """Write `metrics.json` and the figures into `out_dir`; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics, arrays = {**result["metrics"], **(extra or {})}, result["arrays"]
    path = metrics["default_path"]
    scores, threshold = arrays["scores"][path], arrays["thresholds"][path]
    is_anomaly, labels = arrays["is_anomaly"], arrays["test_labels"]
    normal_name = "normal (" + ",".join(map(str, metrics["normal_digits"])) + ")"
    anomaly_name = f"anomaly ({metrics['anomaly_digit']})"

    normal_index = np.flatnonzero(~is_anomaly)[:10]
    anomaly_index = np.flatnonzero(is_anomaly)[:10]
    images, reconstructions = arrays["test_images"], arrays["deterministic_reconstructions"]
    files = {
        "metrics": report.write_metrics(out_dir / "metrics.json", metrics),
        "reconstructions": report.plot_reconstructions(
            out_dir / "reconstructions.png",
            (images[normal_index], reconstructions[normal_index]),
            (images[anomaly_index], reconstructions[anomaly_index]),
            (normal_name, anomaly_name),
        ),
        "latent_pca": report.plot_latent_pca(out_dir / "latent_pca.png", arrays["z_mean"], labels),
        "error_histogram": report.plot_error_histogram(
            out_dir / "error_histogram.png",
            scores,
            is_anomaly,
            threshold,
            (normal_name, anomaly_name),
            path,
        ),
        "roc_curve": report.plot_roc(
            out_dir / "roc_curve.png",
            scores,
            is_anomaly,
            threshold,
            metrics["paths"][path]["continuous"]["roc_auc"],
            path,
        ),
    }
    return files


def summary(metrics: dict, report_dir: Path) -> str:
    """A few lines for the terminal."""
    lines = []
    for name, path in metrics["paths"].items():
        at, cont = path["at_threshold"], path["continuous"]
        (tn, fp), (fn, tp) = at["confusion_matrix"]
        default = " (default)" if name == metrics["default_path"] else ""
        lines.append(
            f"{name:13s}{default:10s} threshold {path['threshold']:8.2f}  "
            f"accuracy {at['accuracy']:.4f}  precision {at['precision']:.4f}  "
            f"recall {at['recall']:.4f}  F1 {at['f1']:.4f}  kappa {at['cohen_kappa']:.4f}  "
            f"ROC AUC {cont['roc_auc']:.4f} (from 0/1 predictions "
            f"{at['roc_auc_from_predictions']:.4f})  PR AUC {cont['pr_auc']:.4f}  "
            f"[tn {tn} fp {fp} fn {fn} tp {tp}]"
        )
    lines.append(f"report: {report_dir}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: score the MNIST channels through an endpoint and write the report."""
    from artifacts.client import EndpointClient
    from infra.settings import Settings
    from pipeline.channels import prepare_channels

    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description="Score MNIST through a SageMaker endpoint.")
    parser.add_argument("--endpoint-name", required=True, help="the deployed endpoint's name")
    parser.add_argument("--region", help="AWS region (default: the configured one)")
    parser.add_argument("--endpoint-url", help="runtime URL, for a local endpoint")
    parser.add_argument("--report-dir", type=Path, help="default: build/report-<endpoint name>")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    settings = Settings.from_cdk_json(root / "cdk.json")
    data_dir = prepare_channels(settings, root / "build" / "data")
    client = EndpointClient(args.endpoint_name, args.endpoint_url, args.region)
    result = analyse(
        endpoint_predict(client),
        Channels.load(data_dir),
        normal_digits=settings.normal_digits,
        anomaly_digit=settings.anomaly_digit,
        threshold_percentile=settings.threshold_percentile,
    )
    report_dir = args.report_dir or root / "build" / f"report-{args.endpoint_name}"
    write_report(report_dir, result, {"scored_through": f"endpoint {args.endpoint_name}"})
    print(summary(result["metrics"], report_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
