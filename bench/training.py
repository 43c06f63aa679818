"""Benchmark: the training entry point against a plain `model.fit` of the same model.

Both run in fresh processes on the same channels, one after the other, so each has its own
peak memory (max RSS from `wait4`) and neither shares caches with the other. Printed:

- training throughput (images per second during `fit`) and the whole-process wall time;
- peak memory of each process;
- the entry point's figures as ratios against the plain fit measured in the same run;
- scoring throughput of the exported models, in process: `anomaly_score` (one call, two
  numbers back) against the reference way (`vae` reconstructions back, error computed here).

Typical use::

    python -m bench.training                 # 2 epochs on the full normal training split
    python -m bench.training --epochs 1 --limit-per-digit 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_measured(command: list[str], *, cwd: Path, env: dict) -> tuple[float, float, str]:
    """Run a command; return wall seconds, peak RSS in MiB and its stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{output}")
    return seconds, usage.ru_maxrss / 1024.0, output


def plain_fit_worker(args: argparse.Namespace) -> None:
    """The baseline: the same VAE, same data and settings, a bare `fit` and nothing else."""
    import keras

    from training.model import VAE

    keras.utils.set_random_seed(args.seed)
    images = np.load(Path(args.data) / "train" / "images.npy").astype("float32") / 255.0
    vae = VAE(latent_dim=args.latent_dim, seed=args.seed)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate))
    started = time.perf_counter()
    vae.fit(images, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=0)
    print(json.dumps({"fit_seconds": time.perf_counter() - started, "images": len(images)}))


def scoring_throughput(model_dir: Path, images: np.ndarray, repeats: int = 3) -> dict:
    """Images per second through `anomaly_score` and through `vae` + client-side error."""
    from pipeline.evaluate import reconstruction_error
    from pipeline.score import InProcessModels

    predict = InProcessModels(model_dir, version=1)
    predict("anomaly_score", images[:100])  # trace and warm up both graphs
    predict("vae", images[:100])

    def best_of(fn) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return len(images) / min(times)

    return {
        "anomaly_score": best_of(lambda: predict("anomaly_score", images)),
        "vae_reconstruction_plus_client_error": best_of(
            lambda: reconstruction_error(images, predict("vae", images)["reconstructions"])
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit-per-digit", type=int, default=None)
    parser.add_argument("--plain-fit-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_fit_worker:
        plain_fit_worker(args)
        return 0

    from infra.settings import Settings
    from pipeline.channels import prepare_channels

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        scratch = Path(scratch)
        data = prepare_channels(Settings(), scratch / "data", limit_per_digit=args.limit_per_digit)
        flags = [
            "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size),
            "--latent-dim", str(args.latent_dim),
            "--learning-rate", str(args.learning_rate),
            "--seed", str(args.seed),
        ]  # fmt: skip

        plain_seconds, plain_peak, plain_out = run_measured(
            [
                sys.executable,
                "-m",
                "bench.training",
                "--plain-fit-worker",
                "--data",
                str(data),
                *flags,
            ],
            cwd=ROOT,
            env=env,
        )
        plain = json.loads(plain_out.strip().splitlines()[-1])

        entry_env = {
            **env,
            "SM_MODEL_DIR": str(scratch / "model"),
            "SM_CHANNEL_TRAIN": str(data / "train"),
            "SM_CHANNEL_TEST": str(data / "test"),
            "SM_OUTPUT_DATA_DIR": str(scratch / "output"),
        }
        entry_seconds, entry_peak, _ = run_measured(
            [sys.executable, "train.py", *flags], cwd=ROOT / "training", env=entry_env
        )
        metadata = json.loads((scratch / "model" / "metadata.json").read_text())

        test_images = np.load(data / "test" / "images.npy").astype("float32") / 255.0
        scoring = scoring_throughput(scratch / "model", test_images)

    trained = plain["images"] * args.epochs
    plain_rate = trained / plain["fit_seconds"]
    entry_rate = trained / metadata["training_seconds"]
    print(
        f"training: {plain['images']} images x {args.epochs} epochs, batch {args.batch_size}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'':34s}{'fit images/s':>14s}{'process s':>12s}{'peak MiB':>11s}")
    print(
        f"{'plain model.fit (baseline)':34s}{plain_rate:14.0f}{plain_seconds:12.1f}"
        f"{plain_peak:11.0f}"
    )
    print(f"{'entry point train.py':34s}{entry_rate:14.0f}{entry_seconds:12.1f}{entry_peak:11.0f}")
    print(
        f"{'ratio entry / baseline':34s}{entry_rate / plain_rate:14.2f}"
        f"{entry_seconds / plain_seconds:12.2f}{entry_peak / plain_peak:11.2f}"
    )
    print("  (the entry point's process also checks data, validates each epoch, learns the")
    print("   threshold and exports six SavedModels; the baseline only fits)")
    print(f"scoring in process, {len(test_images)} test images, best of 3:")
    reference = scoring["vae_reconstruction_plus_client_error"]
    for name, rate in scoring.items():
        print(f"  {name:40s}{rate:10.0f} images/s   ratio {rate / reference:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
