"""Score arrays through an endpoint: the deployed one by name, or the local one by URL.

The client speaks only the SageMaker runtime API (boto3 `sagemaker-runtime`,
`invoke_endpoint`), so the same code scores through `artifacts.server` on loopback and,
after `cdk deploy`, through the real endpoint. It picks the model with the
`tfs-model-name` custom attribute, sends column-format JSON (`{"inputs": ...}`, which the
container passes to TFS unchanged), and splits a large batch into requests whose bodies,
measured as sent, stay under the payload limit.

Typical use::

    client = EndpointClient("vae-anomaly", endpoint_url="http://127.0.0.1:8080")
    scores = client.predict("anomaly_score", images)   # {"score": ..., "is_anomaly": ...}

    python -m artifacts.client --endpoint-name vae-anomaly --model anomaly_score \\
        --input images.npy --output scores.npz
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

logger = logging.getLogger(__name__)

#: Request bodies are kept under this: 5 MiB, below the runtime's limit of about 6 MB
#: (older reports say 5 MB) with room to spare.
DEFAULT_MAX_REQUEST_BYTES = 5 * 1024 * 1024
#: Requests in flight at once; the local endpoint runs two model calls at a time.
DEFAULT_CONCURRENCY = 2
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_PREFIX = '{"inputs":['
_SUFFIX = "]}"

Prediction = dict[str, np.ndarray] | np.ndarray


class EndpointError(RuntimeError):
    """An endpoint refused a request; the message names the model, status and reason."""

    def __init__(self, model_name: str, status: int | None, message: str) -> None:
        super().__init__(f"model {model_name!r}: HTTP {status}: {message}")
        self.model_name = model_name
        self.status = status
        self.message = message


class EndpointClient:
    """Scores numpy arrays through one SageMaker endpoint.

    Args:
        endpoint_name: The endpoint's name (any name works for the local server).
        endpoint_url: The runtime API's URL; None for the AWS runtime of `region`. A
            loopback URL gets placeholder credentials, as the local server checks none.
        region: The AWS region; None for the configured one (required for AWS).
        max_request_bytes: Each request body stays at or under this many bytes.
        concurrency: Requests in flight at once while scoring a large batch.
        timeout: Seconds to wait for one response.

    Raises:
        ValueError: No region is configured for a deployed endpoint, or a limit is not
            positive.
    """

    def __init__(
        self,
        endpoint_name: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = 60.0,
    ) -> None:
        import boto3
        from botocore.config import Config

        if max_request_bytes < len(_PREFIX) + len(_SUFFIX) + 1:
            raise ValueError(f"max_request_bytes must be positive; got {max_request_bytes}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more; got {concurrency}")
        self.endpoint_name = endpoint_name
        self.max_request_bytes = max_request_bytes
        self.concurrency = concurrency

        local = endpoint_url is not None and urlparse(endpoint_url).hostname in LOOPBACK_HOSTS
        session = boto3.Session(region_name=region)
        region = session.region_name or ("us-east-1" if local else None)
        if region is None:
            raise ValueError(
                f"no AWS region for endpoint {endpoint_name!r}: pass region= (--region) "
                "or set AWS_REGION"
            )
        # The local server checks no signature; placeholder keys keep botocore from
        # searching for credentials (instance metadata included) off the loopback.
        credentials = (
            {"aws_access_key_id": "local", "aws_secret_access_key": "local"} if local else {}
        )
        self._runtime = session.client(
            "sagemaker-runtime",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                read_timeout=timeout,
                connect_timeout=10,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=max(10, concurrency),
            ),
            **credentials,
        )

    def predict(self, model_name: str, array: np.ndarray, version: int | None = None) -> Prediction:
        """Run `model_name` on every row of `array`, in as many requests as it takes.

        Args:
            model_name: The model of the artifact (`tfs-model-name`).
            array: The batch; its first axis is the instances, e.g. images `[N, 28, 28, 1]`.
            version: The model version; the highest when None.

        Returns:
            The output for a model with one output, else output name -> array; rows in the
            order of `array`. Floating outputs are float32, as the models emit them.

        Raises:
            ValueError: `array` is empty, or one instance alone is over the size limit.
            EndpointError: The endpoint refused a request.
        """
        array = np.asarray(array)
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(f"expected a non-empty batch; got an array of shape {array.shape}")
        bodies = list(self.request_bodies(array, model_name))
        logger.info(
            "scoring %d instances with %s in %d requests", len(array), model_name, len(bodies)
        )

        def send(body: bytes) -> Any:
            return self._invoke(model_name, version, body)

        if self.concurrency == 1 or len(bodies) == 1:
            answers = [send(body) for body in bodies]
        else:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="invoke") as pool:
                answers = list(pool.map(send, bodies))
        return _concatenate([_as_arrays(answer["outputs"]) for answer in answers])

    def request_bodies(self, array: np.ndarray, model_name: str) -> Iterator[bytes]:
        """Column-format request bodies, each as many whole instances as fit the limit."""
        budget = self.max_request_bytes - len(_PREFIX) - len(_SUFFIX)
        batch: list[str] = []
        size = 0
        for index, instance in enumerate(array):
            text = json.dumps(instance.tolist())
            if len(text) > budget:
                raise ValueError(
                    f"instance {index} for model {model_name!r} is {len(text)} bytes as JSON, "
                    f"over the request limit of {self.max_request_bytes} bytes"
                )
            # One comma joins each instance after the first.
            if batch and size + 1 + len(text) > budget:
                yield (_PREFIX + ",".join(batch) + _SUFFIX).encode()
                batch, size = [], 0
            size += len(text) + (1 if batch else 0)
            batch.append(text)
        yield (_PREFIX + ",".join(batch) + _SUFFIX).encode()

    def _invoke(self, model_name: str, version: int | None, body: bytes) -> Any:
        from botocore.exceptions import ClientError

        attributes = f"tfs-model-name={model_name}"
        if version is not None:
            attributes += f",tfs-model-version={version}"
        try:
            response = self._runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                Body=body,
                ContentType="application/json",
                Accept="application/json",
                CustomAttributes=attributes,
            )
        except ClientError as error:
            raise _endpoint_error(model_name, error) from error
        return json.loads(response["Body"].read())


def _endpoint_error(model_name: str, error: Any) -> EndpointError:
    """The runtime's error as an `EndpointError` with the container's own message.

    A container error arrives as `ModelError` with the container's status and body
    (`{"error": ...}`); other errors (413, throttling, a missing endpoint) carry the
    runtime's status and message.
    """
    response = error.response
    if "OriginalStatusCode" in response:
        message = response.get("OriginalMessage", "")
        with contextlib.suppress(ValueError, TypeError, KeyError):
            message = json.loads(message)["error"]
        return EndpointError(model_name, int(response["OriginalStatusCode"]), message)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    details = response.get("Error", {})
    return EndpointError(
        model_name, status, details.get("Message") or details.get("Code") or str(error)
    )


def _as_arrays(outputs: Any) -> Prediction:
    if isinstance(outputs, dict):
        return {name: _as_array(values) for name, values in outputs.items()}
    return _as_array(outputs)


def _as_array(values: Any) -> np.ndarray:
    array = np.asarray(values)
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _concatenate(parts: Sequence[Prediction]) -> Prediction:
    if isinstance(parts[0], dict):
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    """Command line: score a `.npy` batch and write the outputs to a `.npz` file."""
    parser = argparse.ArgumentParser(
        prog="python -m artifacts.client",
        description="Score a .npy batch through a SageMaker endpoint (deployed or local).",
    )
    parser.add_argument("--endpoint-name", required=True, help="the endpoint's name")
    parser.add_argument("--endpoint-url", help="runtime URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--region", help="AWS region (default: the configured one)")
    parser.add_argument("--model", required=True, help="model name, e.g. anomaly_score")
    parser.add_argument("--version", type=int, help="model version (default: the highest)")
    parser.add_argument("--input", required=True, type=Path, help=".npy file of instances")
    parser.add_argument("--output", required=True, type=Path, help=".npz file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    client = EndpointClient(args.endpoint_name, args.endpoint_url, args.region)
    result = client.predict(args.model, np.load(args.input), args.version)
    outputs = result if isinstance(result, dict) else {"outputs": result}
    np.savez(args.output, **outputs)
    for name, values in outputs.items():
        print(f"{name}: shape {list(values.shape)}, dtype {values.dtype}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
