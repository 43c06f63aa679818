"""Benchmark the local endpoint on loopback against the same SavedModels called in process.

Starts `python -m artifacts.server` in a child process on a free loopback port, then for
each model of the artifact sends 1-image and 100-image requests from concurrent clients
(bounded in count and in time) and prints throughput, p50/p99 latency and the error count,
beside the in-process throughput of the same SavedModel measured in the same run. Last, it
scores a set of test images through `anomaly_score` and the reference way (`vae`
reconstructions back, the error computed by the client) and prints images per second.

Typical use (after `make local` has built the artifact and the data)::

    python -m bench.endpoint
    python -m bench.endpoint --artifact build/model.tar.gz --clients 4 --seconds 5
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from artifacts.client import EndpointClient
from artifacts.layout import discover
from artifacts.pack import unpack_archive
from infra.settings import MODEL_NAMES

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 100)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _ServerProcess:
    """`python -m artifacts.server` in a child process, stopped on exit by its pid."""

    def __init__(self, artifact: Path, default_model: str) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Closed in __exit__, with the process; it outlives any one block.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "artifacts.server",
                "--artifact",
                str(artifact),
                "--default-model",
                default_model,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )

    def __enter__(self) -> str:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"the server exited:\n{self._log.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/ping", timeout=1).status_code == 200:
                    return self.base_url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("the server did not become healthy within 180 s")

    def __exit__(self, *exc_info) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


def _load_inputs(data: Path, signatures) -> dict[str, np.ndarray]:
    """The input of each model for 100 test images: images, or latent means (decoder)."""
    import tensorflow as tf

    images = np.load(data)[: max(BATCH_SIZES)].astype(np.float32) / 255.0
    z_mean = signatures["encoder_mean"](images=tf.constant(images))["z_mean"].numpy()
    return {name: z_mean if name == "decoder" else images for name in signatures}


def _percentile(latencies: list[float], q: float) -> float:
    return float(np.percentile(latencies, q)) * 1000 if latencies else float("nan")


def load_endpoint(
    base_url: str, model: str, body: bytes, *, clients: int, requests: int, seconds: float
) -> dict[str, float]:
    """Send `body` to `model` from `clients` threads until `requests` or `seconds` run out.

    Returns:
        Requests sent, errors, wall seconds, and p50/p99 latency in milliseconds.
    """
    headers = {
        "Content-Type": "application/json",
        "X-Amzn-SageMaker-Custom-Attributes": f"tfs-model-name={model}",
    }
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    issued = iter(range(requests))
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base_url, timeout=60) as http:
            while time.monotonic() < deadline:
                with lock:
                    if next(issued, None) is None:
                        return
                started = time.perf_counter()
                try:
                    ok = http.post("/invocations", content=body, headers=headers).is_success
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors += not ok

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": wall,
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
    }


def in_process_rate(signature, array: np.ndarray, *, calls: int, seconds: float) -> float:
    """Instances per second of the signature called directly, bounded in calls and time."""
    import tensorflow as tf

    input_name = next(iter(signature.structured_input_signature[1]))
    tensor = tf.constant(array)
    signature(**{input_name: tensor})  # warm-up: the first call traces
    done = 0
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    while done < calls and time.monotonic() < deadline:
        signature(**{input_name: tensor})
        done += 1
    return done * len(array) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint", description=__doc__)
    parser.add_argument("--artifact", type=Path, default=Path("build/model.tar.gz"))
    parser.add_argument("--images", type=Path, default=Path("build/data/test/images.npy"))
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=400, help="at most, per 1-image case")
    parser.add_argument("--seconds", type=float, default=6.0, help="at most, per case")
    parser.add_argument("--score-images", type=int, default=2000, help="images to score")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for path in (args.artifact, args.images):
        if not path.exists():
            parser.error(f"{path} does not exist; run `make local` first to build it")
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as unpacked:
        root = args.artifact
        if root.is_file():
            root = unpack_archive(root, unpacked)
        models = discover(root).models()
        signatures = {
            name: tf.saved_model.load(str(versions[max(versions)])).signatures["serving_default"]
            for name, versions in models.items()
            if name in MODEL_NAMES
        }
        inputs = _load_inputs(args.images, signatures)
        # As the server does after loading: keep TensorFlow's objects out of the collections
        # that parsing large JSON responses triggers in this process.
        gc.freeze()

        print(f"machine: {os.cpu_count()} cores; {args.clients} concurrent clients on loopback")
        print(
            f"{'model':<16}{'batch':>6}{'req':>6}{'err':>5}{'req/s':>9}{'img/s':>9}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'in-proc img/s':>15}{'ratio':>7}"
        )
        total_errors = 0
        with _ServerProcess(args.artifact, "vae") as base_url:
            for name in signatures:
                for batch in BATCH_SIZES:
                    array = inputs[name][:batch]
                    body = json.dumps({"inputs": array.tolist()}).encode()
                    requests = max(20, args.requests // batch)
                    result = load_endpoint(
                        base_url,
                        name,
                        body,
                        clients=args.clients,
                        requests=requests,
                        seconds=args.seconds,
                    )
                    direct = in_process_rate(
                        signatures[name], array, calls=requests, seconds=args.seconds
                    )
                    rate = result["requests"] / result["seconds"]
                    total_errors += result["errors"]
                    print(
                        f"{name:<16}{batch:>6}{result['requests']:>6}{result['errors']:>5}"
                        f"{rate:>9.1f}{rate * batch:>9.0f}{result['p50_ms']:>9.1f}"
                        f"{result['p99_ms']:>9.1f}{direct:>15.0f}{rate * batch / direct:>7.2f}"
                    )

            images = np.load(args.images)[: args.score_images].astype(np.float32) / 255.0
            client = EndpointClient("bench", endpoint_url=base_url)
            started = time.perf_counter()
            client.predict("anomaly_score", images)
            one_number = len(images) / (time.perf_counter() - started)
            started = time.perf_counter()
            reconstructions = client.predict("vae", images)
            np.mean(np.square(images - reconstructions), axis=(1, 2, 3))
            reference = len(images) / (time.perf_counter() - started)
        print(
            f"scoring {len(images)} images through EndpointClient: anomaly_score "
            f"{one_number:.0f} img/s; reference (vae reconstructions, error on the client) "
            f"{reference:.0f} img/s; {one_number / reference:.1f}x"
        )
        print(f"errors: {total_errors}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
