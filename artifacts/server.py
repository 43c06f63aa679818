"""The local endpoint: serves an artifact the way the SageMaker TensorFlow Serving image does.

One process answers the three APIs of `CONTRACT.md` on one port, so that one client talks to
this server and, after `cdk deploy`, to the real endpoint:

- the SageMaker container API: `GET /ping`, `POST /invocations` (custom attributes, content
  types, the image's JSON rewriting, CSV);
- the TFS REST API: `/v1/models/{name}[/versions/{v}]` with `:predict`, status and
  `/metadata` (also under `/tfs/v1/...`, where the image's nginx proxies it);
- the SageMaker runtime API path `POST /endpoints/{name}/invocations`, which boto3
  `sagemaker-runtime` and the SageMaker SDK call when `endpoint_url` points here.

Models are found with `artifacts.layout` (the image's discovery rules), loaded with
`tf.saved_model.load` and called through their signatures. The HTTP side is Starlette on
uvicorn; model calls run on a small thread pool (two workers by default, one per core of
the target machine), so a burst of requests queues instead of oversubscribing the CPU.

Typical use::

    python -m artifacts.server --artifact build/model.tar.gz --default-model vae

    with serve_in_background("build/model", "vae") as base_url:
        ...  # base_url == "http://127.0.0.1:<free port>"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from artifacts.layout import SAVED_MODEL_FILE, discover
from artifacts.pack import unpack_archive

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ENV = "SAGEMAKER_TFS_DEFAULT_MODEL_NAME"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
DEFAULT_PORT = 8080
#: The real-time runtime refuses request bodies above about 6 MB; so does this server.
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Model calls that run at once; more requests wait in line (the target has two cores).
DEFAULT_WORKERS = 2

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
MAX_CUSTOM_ATTRIBUTES_LENGTH = 1024
#: TFS model versions are int64.
MAX_VERSION = 2**63 - 1
#: `Content-Type` values `/invocations` accepts; the image compares them exactly.
INVOCATION_CONTENT_TYPES = (
    "application/json",
    "application/jsonlines",
    "application/jsons",
    "text/csv",
)
JSON_RESPONSE_TYPES = ("application/json", "application/jsonlines")
METHODS = ("predict", "classify", "regress")
SERVING_DEFAULT = "serving_default"
#: The production variant name the runtime reports; a one-variant endpoint's default.
PRODUCTION_VARIANT = "AllTraffic"


class RequestError(Exception):
    """A request the server refuses: the HTTP status and the message of `{"error": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------- the models


@dataclasses.dataclass(frozen=True)
class Signature:
    """One callable signature of a SavedModel, with the specs of its named tensors."""

    name: str
    function: Any  # a ConcreteFunction that takes the inputs as keyword arguments
    inputs: Mapping[str, Any]  # input name -> tf.TensorSpec
    outputs: Mapping[str, Any]  # output name -> tf.TensorSpec
    method_name: str  # "tensorflow/serving/predict" for every signature Keras exports


@dataclasses.dataclass(frozen=True)
class Servable:
    """One loaded version of one model."""

    model: str
    version: int
    path: Path
    signatures: Mapping[str, Signature]
    metadata: dict[str, Any]  # the signature definitions, as TFS's metadata API shows them
    handle: Any  # the loaded object; keeps the signatures' variables alive


class ModelRepository:
    """The models of one artifact: found at construction, loaded by `load()`.

    Construction applies the discovery rules and refuses an artifact the real image would
    never serve (no SavedModel, default model missing), before anything slow happens.
    `load()` then loads every version of every model; until it has finished, `ready` is
    False and `/ping` answers 503.
    """

    def __init__(
        self,
        models: Mapping[str, Mapping[int, Path]],
        default_model: str,
        *,
        cleanup_dir: Path | None = None,
    ) -> None:
        self.paths = {name: dict(versions) for name, versions in models.items()}
        self.default_model = default_model
        self._servables: dict[str, dict[int, Servable]] = {}
        self._cleanup_dir = cleanup_dir
        self._lock = threading.Lock()
        self.ready = False
        self.load_error: str | None = None

    @classmethod
    def from_artifact(
        cls, artifact: str | os.PathLike[str], default_model: str | None = None
    ) -> ModelRepository:
        """Find the models of a model directory or `model.tar.gz`.

        Args:
            artifact: A directory, or a tar archive that is unpacked into a temporary
                directory (removed by `close()`).
            default_model: The model `/invocations` uses when no `tfs-model-name` is given;
                falls back to `$SAGEMAKER_TFS_DEFAULT_MODEL_NAME`.

        Raises:
            ValueError: The artifact does not exist, is a damaged or unsafe tarball, holds
                no SavedModel by the discovery rules, no default model is named, or the
                default model is not in it.
        """
        artifact = Path(artifact)
        default_model = default_model or os.environ.get(DEFAULT_MODEL_ENV) or None
        if not artifact.exists():
            raise ValueError(f"artifact {artifact} does not exist; pass a directory or tarball")

        cleanup_dir = None
        root = artifact
        if artifact.is_file():
            if not tarfile.is_tarfile(artifact):
                raise ValueError(f"artifact {artifact} is a file but not a tar archive")
            cleanup_dir = Path(tempfile.mkdtemp(prefix="model-"))

        try:
            if cleanup_dir is not None:
                try:
                    root = unpack_archive(artifact, cleanup_dir)
                except (tarfile.TarError, EOFError) as error:
                    raise ValueError(f"artifact {artifact} cannot be unpacked: {error}") from None
            models = discover(root).models()
            if not models:
                raise ValueError(
                    f"no SavedModel found in {artifact}: expected <model>/<version>/"
                    f"{SAVED_MODEL_FILE} with a numeric version, e.g. vae/1/{SAVED_MODEL_FILE}"
                )
            if default_model is None:
                raise ValueError(
                    f"no default model named; pass --default-model or set {DEFAULT_MODEL_ENV} "
                    f"to one of {sorted(models)}"
                )
            if default_model not in models:
                raise ValueError(
                    f"default model {default_model!r} is not in {artifact}; "
                    f"models found: {sorted(models)}"
                )
        except BaseException:
            # Also on SIGTERM or Ctrl-C while unpacking: nothing else knows the directory.
            if cleanup_dir is not None:
                shutil.rmtree(cleanup_dir, ignore_errors=True)
            raise
        return cls(models, default_model, cleanup_dir=cleanup_dir)

    def load(self) -> None:
        """Load every version of every model; `ready` becomes True when all have loaded.

        Raises:
            Exception: Whatever TensorFlow raises for a SavedModel it cannot load; the
                message is kept in `load_error` for `/ping`.
        """
        try:
            servables = {
                name: {
                    version: _load_servable(name, version, path)
                    for version, path in versions.items()
                }
                for name, versions in self.paths.items()
            }
        except Exception as error:
            self.load_error = f"{type(error).__name__}: {error}"
            raise
        # TensorFlow leaves millions of long-lived Python objects behind. Parsing a request
        # creates one list per pixel, which triggers full garbage collections that walk all
        # of them (0.4 s instead of 0.04 s for 100 images); frozen objects are not walked.
        gc.freeze()
        with self._lock:
            self._servables = servables
            self.ready = True
        logger.info(
            "loaded %s; default model %r",
            ", ".join(f"{name} {sorted(v)}" for name, v in sorted(servables.items())),
            self.default_model,
        )

    def get(self, model: str, version: int | None = None) -> Servable:
        """The servable asked for: the highest version when `version` is None.

        Raises:
            RequestError: 404 naming the model or version asked for; 503 before loading.
        """
        if not self.ready:
            raise RequestError(503, "models are not loaded yet")
        versions = self._servables.get(model)
        if versions is None:
            raise RequestError(
                404,
                f"Servable not found for request: Latest({model}); "
                f"models: {sorted(self._servables)}",
            )
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise RequestError(
                404,
                f"Servable not found for request: Specific({model}, {version}); "
                f"versions of {model}: {sorted(versions)}",
            )
        return versions[version]

    def versions(self, model: str) -> list[int]:
        """The loaded versions of a model, lowest first (404 when there is no such model)."""
        self.get(model)
        return sorted(self._servables[model])

    def close(self) -> None:
        """Remove the directory a tarball was unpacked into, if any."""
        if self._cleanup_dir is not None:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)
            self._cleanup_dir = None


def _load_servable(model: str, version: int, path: Path) -> Servable:
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    handle = tf.saved_model.load(str(path))
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
    signature_defs = proto.meta_graphs[0].signature_def

    signatures = {}
    for name, function in handle.signatures.items():
        signatures[name] = Signature(
            name=name,
            function=function,
            inputs=dict(function.structured_input_signature[1]),
            outputs=dict(function.structured_outputs),
            method_name=signature_defs[name].method_name,
        )
    metadata = {
        "signature_def": {
            name: json_format.MessageToDict(signature_defs[name], preserving_proto_field_name=True)
            for name in sorted(signatures)
        }
    }
    logger.debug("loaded %s version %d from %s", model, version, path)
    return Servable(model, version, path, signatures, metadata, handle)


# ------------------------------------------------------------- the container's rewriting


def parse_custom_attributes(header: str | None) -> dict[str, str]:
    """The `tfs-*` pairs of `X-Amzn-SageMaker-Custom-Attributes`, as the image reads them.

    Only `tfs-[a-z-]+=<value>` pairs count and a value runs to the next comma, so other keys
    and spaces between pairs are ignored, but a space inside a value is kept. A pair whose
    value holds another `=` is ignored, as in the image.

    Raises:
        RequestError: 400 when the header holds a character that is not printable ASCII,
            naming it, or is longer than 1024 characters (the runtime API refuses both).
    """
    if not header:
        return {}
    bad = next((c for c in header if not " " <= c <= "~"), None)
    if bad is not None:
        # HTTP servers decode header bytes as Latin-1, so a UTF-8 "é" arrives as "Ã©";
        # name the character the client sent when the bytes are UTF-8.
        with contextlib.suppress(UnicodeError):
            header = header.encode("latin-1").decode("utf-8")
            bad = next(c for c in header if not " " <= c <= "~")
        raise RequestError(
            400,
            f"{CUSTOM_ATTRIBUTES_HEADER} must be printable ASCII; it contains {bad!r} "
            f"(U+{ord(bad):04X}) at character {header.index(bad) + 1}",
        )
    if len(header) > MAX_CUSTOM_ATTRIBUTES_LENGTH:
        raise RequestError(
            400,
            f"{CUSTOM_ATTRIBUTES_HEADER} must be at most {MAX_CUSTOM_ATTRIBUTES_LENGTH} "
            f"characters; got {len(header)} characters",
        )
    attributes = {}
    for pair in re.findall(r"tfs-[a-z\-]+=[^,]+", header):
        key_value = pair.split("=")
        if len(key_value) == 2:
            attributes[key_value[0]] = key_value[1]
    return attributes


def rewrite_json(body: str) -> str:
    """Turn an `/invocations` JSON body into a TFS request, as the image's nginx does."""
    if re.search(r'"(instances|inputs|examples)"\s*:', body):
        return body
    if re.search(r"[}\]]\s*[\[{]", body):
        lines = re.split(r"\r?\n", body.strip())
        instances = ",".join(line.strip() for line in lines if line.strip())
        if len(lines) == 1:
            return '{"instances":' + instances + "}"
        return '{"instances":[' + instances + "]}"
    if not re.match(r"\s*\[\s*\[", body):
        body = "[" + body + "]"
    return '{"instances":' + body + "}"


def rewrite_csv(body: str) -> str:
    """Turn a `text/csv` body into a TFS request: one instance per line, as the image does.

    A line of several numbers becomes a list; a line of one number becomes a scalar.
    Non-numeric data is quoted the way the image quotes it (which only handles the first
    comma of a line: its behaviour, kept).
    """
    needs_quotes = re.match(r'\s*("|[\d.Ee+\-]+)', body) is None
    lines = re.split(r"\r?\n", body.strip())
    parts = []
    for index, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if needs_quotes:
            line = '"' + line.replace('"', '\\"', 1).replace(",", '","', 1) + '"'
        parts.append(f"[{line}]" if "," in raw else line)
        if index != len(lines) - 1:
            parts.append(",")
    return '{"instances":[' + "".join(parts) + "]}"


# ------------------------------------------------------------------------- prediction


def _check_version(version: str | None) -> int | None:
    if version is None:
        return None
    # ASCII digits only (`\d` also matches other scripts' digits), and short enough for
    # `int()` and for TFS's int64 versions.
    if not re.fullmatch(r"[0-9]+", version):
        raise RequestError(400, f"Malformed request: model version {version!r} is not a number")
    digits = version.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > MAX_VERSION:
        raise RequestError(
            400, f"Malformed request: model version {version[:40]!r} is over {MAX_VERSION}"
        )
    return int(digits)


def _holds_boolean(value: Any) -> bool:
    """Whether a parsed JSON value holds `true` or `false` at any depth of its lists."""
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is bool:
            return True
        if type(item) is list:
            pending.extend(item)
    return False


def _to_tensor(
    value: Any, spec: Any, input_name: str, *, may_hold_booleans: bool = True
) -> np.ndarray:
    """A JSON value as an array of the input's dtype and shape, or a 400 saying why not.

    Args:
        value: The parsed JSON value of one input.
        spec: The input's `tf.TensorSpec`.
        input_name: The input's name, for error messages.
        may_hold_booleans: False when the request text has no `true` or `false`, which
            spares the walk over every value that looks for them.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as error:
        raise RequestError(
            400, f"input {input_name!r}: values do not form a tensor (ragged lists?): {error}"
        ) from None

    dtype = spec.dtype
    kind = array.dtype.kind
    # NumPy turns `[0.5, true]` into `[0.5, 1.0]` and `["a", true]` into `["a", "True"]`;
    # TFS refuses a boolean for any tensor that is not DT_BOOL.
    if not dtype.is_bool and (
        kind == "b" or (kind in "iufUS" and may_hold_booleans and _holds_boolean(value))
    ):
        raise RequestError(
            400, f"input {input_name!r}: expected {dtype.name} values, got a boolean (true/false)"
        )
    if dtype.is_bool:
        accepted = kind == "b"
    elif dtype.is_floating:
        accepted = kind in "fiu"
    elif dtype.is_integer:
        accepted = kind in "iu"
        if accepted and array.size:
            info = np.iinfo(dtype.as_numpy_dtype)
            accepted = info.min <= array.min() and array.max() <= info.max
    else:
        accepted = kind in "US"
    if not accepted:
        raise RequestError(
            400,
            f"input {input_name!r}: expected {dtype.name} values, got "
            f"{'mixed or ragged values' if kind == 'O' else array.dtype.name}",
        )

    if not spec.shape.is_compatible_with(array.shape):
        expected = [d if d is not None else -1 for d in spec.shape.as_list()]
        raise RequestError(
            400, f"input {input_name!r}: expected shape {expected}, got {list(array.shape)}"
        )
    return array.astype(dtype.as_numpy_dtype, copy=False)


def _row_inputs(instances: Any, signature: Signature) -> dict[str, Any]:
    """Row format: a list of instances, each a value or an object keyed by input name."""
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "'instances' must be a non-empty list")
    names = sorted(signature.inputs)
    if all(isinstance(instance, dict) for instance in instances):
        for instance in instances:
            if sorted(instance) != names:
                raise RequestError(
                    400, f"each instance must have the inputs {names}; got {sorted(instance)}"
                )
        return {name: [instance[name] for instance in instances] for name in names}
    if any(isinstance(instance, dict) for instance in instances):
        raise RequestError(400, "instances mix objects and plain values")
    if len(names) != 1:
        raise RequestError(
            400, f"signature has inputs {names}: each instance must be an object keyed by them"
        )
    return {names[0]: instances}


def _column_inputs(inputs: Any, signature: Signature) -> dict[str, Any]:
    """Column format: one value for a single input, or an object keyed by input name."""
    names = sorted(signature.inputs)
    if isinstance(inputs, dict):
        if sorted(inputs) != names:
            raise RequestError(400, f"'inputs' must have the keys {names}; got {sorted(inputs)}")
        return dict(inputs)
    if len(names) != 1:
        raise RequestError(400, f"signature has inputs {names}: 'inputs' must be an object")
    return {names[0]: inputs}


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def predict(servable: Servable, method: str, request_body: str) -> dict[str, Any]:
    """Answer one TFS REST request (`:predict`) with the servable's signature.

    Returns:
        `{"predictions": ...}` for row format, `{"outputs": ...}` for column format.

    Raises:
        RequestError: 400 for a malformed request, with the reason.
    """
    import tensorflow as tf

    try:
        request = json.loads(request_body)
    except (json.JSONDecodeError, RecursionError) as error:
        raise RequestError(400, f"malformed JSON: {error}") from None
    except ValueError as error:
        # Python refuses to convert an integer of more than 4300 digits, and says so with a
        # hint about its own settings that means nothing to a client.
        if "integer string conversion" not in str(error):
            raise RequestError(400, f"malformed JSON: {error}") from None
        raise RequestError(
            400,
            f"malformed JSON: a number has more than {sys.get_int_max_str_digits()} digits, "
            "too long to parse",
        ) from None
    if not isinstance(request, dict):
        raise RequestError(400, "the request must be a JSON object")

    signature_name = request.get("signature_name", SERVING_DEFAULT)
    if not isinstance(signature_name, str):
        raise RequestError(
            400, f"'signature_name' must be a string; got {json.dumps(signature_name)[:80]}"
        )
    signature = servable.signatures.get(signature_name)
    if signature is None:
        raise RequestError(
            400,
            f"Serving signature name: {signature_name!r} not found in signature def; "
            f"signatures of {servable.model}: {sorted(servable.signatures)}",
        )
    if method != "predict":
        # The artifact's signatures are all predict signatures (what Keras exports).
        expected = f"tensorflow/serving/{method}"
        if signature.method_name != expected:
            raise RequestError(
                400,
                f"Expected {method} signature method_name to be {expected}. "
                f"Was: {signature.method_name}",
            )
        raise RequestError(400, f"{method} is not implemented by the local endpoint")

    if ("instances" in request) == ("inputs" in request):
        raise RequestError(
            400,
            "the request must contain either 'instances' (row format) or 'inputs' "
            "(column format), not both and not neither",
        )
    row_format = "instances" in request
    if row_format:
        values = _row_inputs(request["instances"], signature)
    else:
        values = _column_inputs(request["inputs"], signature)
    may_hold_booleans = "true" in request_body or "false" in request_body
    tensors = {
        name: _to_tensor(value, signature.inputs[name], name, may_hold_booleans=may_hold_booleans)
        for name, value in values.items()
    }

    try:
        outputs = signature.function(**{k: tf.constant(v) for k, v in tensors.items()})
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
        raise RequestError(400, f"{type(error).__name__}: {error}") from None
    arrays = {name: tensor.numpy() for name, tensor in sorted(outputs.items())}

    if not row_format:
        if len(arrays) == 1:
            return {"outputs": _jsonable(next(iter(arrays.values())))}
        return {"outputs": {name: _jsonable(array) for name, array in arrays.items()}}
    if len(arrays) == 1:
        return {"predictions": _jsonable(next(iter(arrays.values())))}
    columns = {name: _jsonable(array) for name, array in arrays.items()}
    batch = {len(column) for column in columns.values()}
    if len(batch) != 1:
        raise RequestError(400, "outputs differ in batch size: use column format ('inputs')")
    return {
        "predictions": [
            {name: column[i] for name, column in columns.items()} for i in range(batch.pop())
        ]
    }


def status(repository: ModelRepository, model: str, version: int | None) -> dict[str, Any]:
    """The TFS model status response of one model, or of one of its versions."""
    if version is None:
        versions = repository.versions(model)
    else:
        versions = [repository.get(model, version).version]
    return {
        "model_version_status": [
            {
                "version": str(v),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for v in sorted(versions, reverse=True)
        ]
    }


def metadata(servable: Servable) -> dict[str, Any]:
    """The TFS metadata response: the model spec and its signature definitions."""
    return {
        "model_spec": {
            "name": servable.model,
            "signature_name": "",
            "version": str(servable.version),
        },
        "metadata": {"signature_def": servable.metadata},
    }


# ---------------------------------------------------------------------------- HTTP layer


def _json_response(status_code: int, payload: Any, **headers: str) -> Response:
    # NaN and Infinity are written as the bare words TFS writes (see docs/endpoint.md).
    body = json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()
    return Response(body, status_code, headers=headers or None, media_type="application/json")


def _error(status_code: int, message: str) -> Response:
    return _json_response(status_code, {"error": message})


@dataclasses.dataclass
class _Outcome:
    """What a handler learnt about a request, for its log line."""

    model: str = "-"
    version: str = "-"
    bytes_in: int = 0


class _Endpoint:
    """The request handlers, bound to one repository and one pool of model workers."""

    _TFS_PATH = re.compile(
        r"/(?:tfs/)?v1/models/(?P<model>[^/:]+)"
        r"(?:/versions/(?P<version>[^/:]+))?"
        r"(?::(?P<method>[a-z]+)|(?P<metadata>/metadata))?",
        re.IGNORECASE,
    )

    def __init__(
        self, repository: ModelRepository, *, max_payload_bytes: int, workers: int
    ) -> None:
        self.repository = repository
        self.max_payload_bytes = max_payload_bytes
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model")

    # Bodies ------------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes:
        """The request body, or 413 when it is over the limit.

        An oversized body is still read to its end (and dropped, up to a bound) so that
        the client, which is still sending, reads the 413 instead of a reset connection.
        """
        outcome: _Outcome = request.scope["state"]["outcome"]
        declared = request.headers.get("content-length", "")
        drain_limit = 4 * self.max_payload_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size <= self.max_payload_bytes:
                    chunks.append(chunk)
                elif size > drain_limit:
                    break
        except ClientDisconnect:
            # Nobody reads the answer; 499 (nginx's "client closed request") is for the log.
            outcome.bytes_in = size
            raise RequestError(499, "the client closed the connection while sending") from None
        outcome.bytes_in = size
        if size > self.max_payload_bytes:
            raise RequestError(
                413,
                f"request body of {declared or f'more than {size}'} bytes is over the "
                f"payload limit of {self.max_payload_bytes} bytes; split the batch",
            )
        return b"".join(chunks)

    async def _run(self, function, *args) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)

    def _predict_sync(
        self, model: str, version: str | None, method: str, body: str, outcome: _Outcome
    ) -> dict[str, Any]:
        outcome.model = model
        servable = self.repository.get(model, _check_version(version))
        outcome.version = str(servable.version)
        if method not in METHODS:
            raise RequestError(400, f"Malformed request: unknown method {method!r}")
        return predict(servable, method, body)

    # Routes ------------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        repository = self.repository
        if not repository.ready:
            reason = repository.load_error or "models are loading"
            return _error(503, f"default model {repository.default_model!r} is not ready: {reason}")
        return Response(b"", 200)

    async def invocations(self, request: Request) -> Response:
        outcome: _Outcome = request.scope["state"]["outcome"]
        body = await self._body(request)
        content_type = request.headers.get("content-type")
        if content_type not in INVOCATION_CONTENT_TYPES:
            raise RequestError(415, f"Unsupported Media Type: {content_type or 'Unknown'}")
        attributes = parse_custom_attributes(request.headers.get(CUSTOM_ATTRIBUTES_HEADER))
        model = attributes.get("tfs-model-name", self.repository.default_model)
        outcome.model = model
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "the body is not UTF-8 text") from None
        text = rewrite_csv(text) if content_type == "text/csv" else rewrite_json(text)

        result = await self._run(
            self._predict_sync,
            model,
            attributes.get("tfs-model-version"),
            attributes.get("tfs-method", "predict"),
            text,
            outcome,
        )
        accepted = [part.strip() for part in request.headers.get("accept", "").split(",")]
        media_type = next((t for t in accepted if t in JSON_RESPONSE_TYPES), "application/json")
        response = _json_response(200, result)
        response.headers["content-type"] = media_type
        return response

    async def runtime_invocations(self, request: Request) -> Response:
        """The runtime API: the container's answer, or a `ModelError` as the runtime sends.

        The runtime turns a container error into HTTP 424 `ModelError`, which botocore
        raises with `OriginalStatusCode` and `OriginalMessage`; the same client code then
        handles both endpoints' errors.
        """
        variant = {"x-amzn-invoked-production-variant": PRODUCTION_VARIANT}
        try:
            response = await self.invocations(request)
        except RequestError as error:
            if error.status == 413:
                # Refused by the runtime itself, before any container sees it.
                return _json_response(413, {"error": error.message, "message": error.message})
            original = json.dumps({"error": error.message})
            kind = "client" if error.status < 500 else "server"
            message = (
                f"Received {kind} error ({error.status}) from primary with message "
                f'"{original}". (local endpoint)'
            )
            return _json_response(
                424,
                {
                    "error": error.message,
                    "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
                    "Message": message,
                    "OriginalStatusCode": error.status,
                    "OriginalMessage": original,
                    "LogStreamArn": "",
                },
                **{"x-amzn-errortype": "ModelError"},
                **variant,
            )
        response.headers.update(variant)
        return response

    async def tfs(self, request: Request) -> Response:
        outcome: _Outcome = request.scope["state"]["outcome"]
        match = self._TFS_PATH.fullmatch(request.url.path)
        if match is None:
            raise RequestError(400, f"Malformed request: {request.method} {request.url.path}")
        model, version = match["model"], match["version"]
        outcome.model = model

        if request.method == "POST":
            if match["method"] is None:
                raise RequestError(405, "Method Not Allowed")
            body = await self._body(request)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError(400, "the body is not UTF-8 text") from None
            method = match["method"].lower()
            result = await self._run(self._predict_sync, model, version, method, text, outcome)
            return _json_response(200, result)

        if match["method"] is not None:
            raise RequestError(405, "Method Not Allowed")
        number = _check_version(version)
        if match["metadata"]:
            servable = self.repository.get(model, number)
            outcome.version = str(servable.version)
            return _json_response(200, metadata(servable))
        return _json_response(200, status(self.repository, model, number))


class _RequestLog:
    """ASGI middleware: turns any failure into a JSON error and logs one line per request.

    The line holds the model, version, status, bytes in and out, and latency; errors the
    handlers raise become `{"error": ...}` here, so no request can stop the server.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outcome = _Outcome()
        scope.setdefault("state", {})["outcome"] = outcome
        started = time.perf_counter()
        sent = {"status": 500, "bytes": 0, "started": False}

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                sent["started"] = True
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            logger.exception("%s %s failed", scope["method"], scope["path"])
            if not sent["started"]:
                await _error(500, "internal server error")(scope, receive, counting_send)
        logger.info(
            "%s %s model=%s version=%s status=%d bytes_in=%d bytes_out=%d latency_ms=%.1f",
            scope["method"],
            scope["path"],
            outcome.model,
            outcome.version,
            sent["status"],
            outcome.bytes_in,
            sent["bytes"],
            1000 * (time.perf_counter() - started),
        )


def create_app(
    repository: ModelRepository,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    workers: int = DEFAULT_WORKERS,
) -> Any:
    """The ASGI application serving `repository` (loaded or not: `/ping` tells).

    Args:
        repository: The models to serve.
        max_payload_bytes: Bodies above this get 413.
        workers: Model calls that run at once; further requests wait for a worker.

    Raises:
        ValueError: `max_payload_bytes` or `workers` is below 1.
    """
    if max_payload_bytes < 1:
        raise ValueError(f"max_payload_bytes must be positive; got {max_payload_bytes}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}")
    endpoint = _Endpoint(repository, max_payload_bytes=max_payload_bytes, workers=workers)

    def handle(route):
        async def guarded(request: Request) -> Response:
            try:
                return await route(request)
            except RequestError as error:
                return _error(error.status, error.message)

        return guarded

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return _error(error.status_code, error.detail)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        endpoint.pool.shutdown(wait=False, cancel_futures=True)

    app = Starlette(
        routes=[
            Route("/ping", handle(endpoint.ping), methods=["GET"]),
            Route("/invocations", handle(endpoint.invocations), methods=["POST"]),
            Route(
                "/endpoints/{name}/invocations",
                endpoint.runtime_invocations,
                methods=["POST"],
            ),
            Route("/v1/models/{path:path}", handle(endpoint.tfs), methods=["GET", "POST"]),
            Route("/tfs/v1/models/{path:path}", handle(endpoint.tfs), methods=["GET", "POST"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.endpoint = endpoint
    return _RequestLog(app)


# ---------------------------------------------------------------------------- running


class BackgroundServer:
    """Run an ASGI app with uvicorn in a daemon thread, on a port bound before it starts.

    Use as a context manager; `base_url` is set on entry and the server is stopped on exit,
    also when the body raises.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 30.0) -> str:
        """Start serving and return the base URL once the server accepts connections."""
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.host, self.port))
        host, port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"uvicorn-{port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local endpoint did not start on {host}:{port}")
            time.sleep(0.01)
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread; force the exit after `timeout`."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextlib.contextmanager
def serve_in_background(
    artifact: str | os.PathLike[str],
    default_model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Iterator[str]:
    """Serve an artifact from a background thread for the duration of a `with` block.

    Loads every model before yielding, so the endpoint is healthy (`/ping` 200) as soon as
    the block starts; stops the server and removes any unpacked tarball on exit, also when
    the block raises.

    Args:
        artifact: A model directory or `model.tar.gz`.
        default_model: The model `/invocations` uses without `tfs-model-name`; falls back
            to `$SAGEMAKER_TFS_DEFAULT_MODEL_NAME`.
        host: The address to bind; loopback by default.
        port: The port; 0 picks a free one.
        max_payload_bytes: Bodies above this get 413.

    Yields:
        The base URL, such as `http://127.0.0.1:40123`.

    Raises:
        ValueError: The artifact is refused (see `ModelRepository.from_artifact`).
    """
    repository = ModelRepository.from_artifact(artifact, default_model)
    try:
        repository.load()
        app = create_app(repository, max_payload_bytes=max_payload_bytes)
        with BackgroundServer(app, host, port) as base_url:
            logger.info("local endpoint serving %s at %s", artifact, base_url)
            yield base_url
    finally:
        repository.close()


def _int_in_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type` that takes an integer from `low` to `high` (no bound if None)."""
    allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer {allowed}; got {text!r}"
            ) from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{value} is out of range; expected an integer {allowed}"
            )
        return value

    return parse


def _exit_on_signal(signum: int, frame: Any) -> None:
    """A signal handler that exits with the status a shell reports for the signal."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_exit() -> Iterator[None]:
    """SIGTERM and SIGINT end the process with `SystemExit`, so `finally` blocks run.

    uvicorn catches both signals for its graceful shutdown and then raises the caught signal
    again under the handler that was there before it started. Under Python's default
    handlers SIGTERM kills the process on the spot, skipping every `finally` (the unpacked
    tarball stayed behind), and SIGINT prints a `KeyboardInterrupt` traceback. The status
    stays the shell's: 143 for SIGTERM, 130 for SIGINT.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    for number, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(number, _exit_on_signal)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv: list[str] | None = None) -> int:
    """Command line: serve an artifact until interrupted. Returns the exit status.

    SIGTERM and SIGINT stop the server gracefully and end the process with status 143 and
    130; the unpacked tarball is removed in every case.
    """
    parser = argparse.ArgumentParser(
        prog="python -m artifacts.server",
        description="Serve a model directory or model.tar.gz with the SageMaker TFS contract.",
    )
    parser.add_argument("--artifact", required=True, help="model directory or model.tar.gz")
    parser.add_argument(
        "--default-model",
        default=os.environ.get(DEFAULT_MODEL_ENV),
        help=f"model used without tfs-model-name (default: ${DEFAULT_MODEL_ENV})",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    # A string default goes through `type` too, so a bad $SAGEMAKER_BIND_TO_PORT is refused
    # the same way as a bad --port.
    parser.add_argument(
        "--port",
        type=_int_in_range(0, 65535),
        default=os.environ.get(PORT_ENV, str(DEFAULT_PORT)),
        help=f"port, 0 for any free one (default: ${PORT_ENV} or {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--max-payload-bytes",
        type=_int_in_range(1),
        default=DEFAULT_MAX_PAYLOAD_BYTES,
        help="request bodies above this get 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=_int_in_range(1),
        default=DEFAULT_WORKERS,
        help="model calls at once (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    with _signals_exit():
        try:
            repository = ModelRepository.from_artifact(args.artifact, args.default_model)
        except ValueError as error:
            logger.error("refusing to start: %s", error)
            return 2
        try:
            return _serve(repository, args)
        finally:
            repository.close()


def _serve(repository: ModelRepository, args: argparse.Namespace) -> int:
    """Serve until uvicorn stops; the exit status is 1 when a model failed to load."""
    # Bind first and load in the background, as the image does: /ping answers 503 until
    # every model has loaded, and a model that fails to load stops the server.
    app = create_app(repository, max_payload_bytes=args.max_payload_bytes, workers=args.workers)
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_config=None, access_log=False)
    )

    def load() -> None:
        try:
            repository.load()
        except Exception:
            logger.exception("refusing to serve: a SavedModel failed to load")
            server.should_exit = True

    threading.Thread(target=load, name="load-models", daemon=True).start()
    server.run()
    return 0 if repository.ready else 1


if __name__ == "__main__":
    raise SystemExit(main())
