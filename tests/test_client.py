"""Real clients against the local endpoint serving the trained artifact, on loopback.

Unmodified boto3 `sagemaker-runtime`, the SageMaker SDK's `TensorFlowPredictor` and plain
HTTP all talk to one server; the deterministic models must answer what the same SavedModel
answers in process. `EndpointClient`, the scoring client, is checked the same way.
"""

from __future__ import annotations

import json

import boto3
import httpx
import numpy as np
import pytest
import tensorflow as tf
from botocore.exceptions import ClientError

from artifacts.client import EndpointClient, EndpointError
from artifacts.client import main as client_main
from artifacts.server import DEFAULT_MAX_PAYLOAD_BYTES, serve_in_background
from infra.settings import MODEL_NAMES

pytestmark = pytest.mark.slow

DETERMINISTIC = ("encoder_mean", "encoder_lgvar", "decoder", "anomaly_score")
#: Float tolerance between the endpoint and the in-process call (float32, JSON round trip).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def endpoint_url(trained_model_dir):
    with serve_in_background(trained_model_dir, "vae") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def images(small_channels):
    return np.load(small_channels / "test" / "images.npy")[:24].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def inputs(signatures, images):
    """The input each model takes: images, or latent means for the decoder."""
    z_mean = signatures["encoder_mean"](images=tf.constant(images))["z_mean"].numpy()
    return {name: z_mean if name == "decoder" else images for name in MODEL_NAMES}


@pytest.fixture(scope="module")
def runtime(endpoint_url):
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def in_process(signatures, name, array):
    """Output name -> array from the SavedModel's serving signature, called directly."""
    input_name = next(iter(signatures[name].structured_input_signature[1]))
    outputs = signatures[name](**{input_name: tf.constant(array)})
    return {key: value.numpy() for key, value in outputs.items()}


def assert_matches(actual, expected):
    """`actual`: output name -> values from the endpoint; `expected`: from in process."""
    assert sorted(actual) == sorted(expected)
    for name, values in expected.items():
        if values.dtype == bool:
            assert np.asarray(actual[name]).tolist() == values.tolist()
        else:
            np.testing.assert_allclose(actual[name], values, **TOLERANCE)


def by_output(predictions, output_names):
    """Row-format predictions as output name -> array."""
    if isinstance(predictions[0], dict):
        return {name: np.asarray([p[name] for p in predictions]) for name in output_names}
    (name,) = output_names
    return {name: np.asarray(predictions)}


# ------------------------------------------------------------------- boto3 sagemaker-runtime


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_boto3_invoke_endpoint_reaches_each_model_by_custom_attributes(
    runtime, signatures, inputs, name
):
    response = runtime.invoke_endpoint(
        EndpointName="vae-anomaly",
        Body=json.dumps({"instances": inputs[name].tolist()}),
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes=f"tfs-model-name={name}",
    )

    expected = in_process(signatures, name, inputs[name])
    actual = by_output(json.loads(response["Body"].read())["predictions"], expected)
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ContentType"] == "application/json"
    if name in DETERMINISTIC:
        assert_matches(actual, expected)
    else:
        # vae and encoder_sampler sample the latent: same shapes, different values.
        for output, values in expected.items():
            assert actual[output].shape == values.shape
            assert np.isfinite(actual[output]).all()


def test_boto3_without_custom_attributes_reaches_the_default_model(runtime, images):
    response = runtime.invoke_endpoint(
        EndpointName="vae-anomaly",
        Body=json.dumps(images[:2].tolist()),
        ContentType="application/json",
    )

    reconstructions = np.asarray(json.loads(response["Body"].read())["predictions"])
    assert reconstructions.shape == (2, 28, 28, 1)
    assert reconstructions.min() >= 0.0
    assert reconstructions.max() <= 1.0


def test_boto3_sees_a_container_error_as_model_error_with_the_original_status(runtime):
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(
            EndpointName="vae-anomaly",
            Body=json.dumps({"instances": [[1.0, 2.0]]}),
            ContentType="application/json",
            CustomAttributes="tfs-model-name=encoder_mean",
        )

    response = caught.value.response
    assert response["OriginalStatusCode"] == 400
    assert "expected shape [-1, 28, 28, 1]" in json.loads(response["OriginalMessage"])["error"]


def test_boto3_body_over_the_payload_limit_is_413(runtime):
    body = b'{"instances": [' + b"0.5," * (DEFAULT_MAX_PAYLOAD_BYTES // 4) + b"0.5]}"

    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="vae-anomaly", Body=body, ContentType="text/csv")

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "payload limit" in caught.value.response["Error"]["Message"]


# ------------------------------------------------------------------- SageMaker SDK predictor


@pytest.mark.parametrize("name", ["encoder_mean", "anomaly_score"])
def test_sagemaker_tensorflow_predictor_reaches_a_model_by_name(
    endpoint_url, signatures, inputs, name
):
    import sagemaker
    from sagemaker.tensorflow import TensorFlowPredictor

    boto_session = boto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_runtime_client=boto_session.client(
            "sagemaker-runtime", endpoint_url=endpoint_url
        ),
    )
    predictor = TensorFlowPredictor("vae-anomaly", sagemaker_session=session, model_name=name)

    result = predictor.predict(inputs[name])

    expected = in_process(signatures, name, inputs[name])
    assert_matches(by_output(result["predictions"], expected), expected)


# ------------------------------------------------------------------------ plain HTTP (TFS)


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("request_format", ["instances", "inputs"])
def test_tfs_rest_predict_equals_the_in_process_savedmodel(
    endpoint_url, signatures, inputs, name, request_format
):
    response = httpx.post(
        f"{endpoint_url}/v1/models/{name}/versions/1:predict",
        json={request_format: inputs[name].tolist()},
        timeout=30,
    )

    expected = in_process(signatures, name, inputs[name])
    body = response.json()
    if request_format == "instances":
        actual = by_output(body["predictions"], expected)
    else:
        outputs = body["outputs"]
        actual = outputs if isinstance(outputs, dict) else {next(iter(expected)): outputs}
    assert_matches({k: np.asarray(v) for k, v in actual.items()}, expected)


# -------------------------------------------------------------------------- EndpointClient


def test_client_splits_a_batch_under_the_size_limit_and_keeps_the_order(
    endpoint_url, signatures, images
):
    client = EndpointClient("vae-anomaly", endpoint_url=endpoint_url, max_request_bytes=30_000)

    bodies = list(client.request_bodies(images, "anomaly_score"))
    scores = client.predict("anomaly_score", images)

    assert len(bodies) > 3
    assert max(len(body) for body in bodies) <= 30_000
    assert sum(len(json.loads(body)["inputs"]) for body in bodies) == len(images)
    assert_matches(scores, in_process(signatures, "anomaly_score", images))
    assert scores["score"].dtype == np.float32


def test_client_returns_one_array_for_a_model_with_one_output(endpoint_url, signatures, images):
    client = EndpointClient("vae-anomaly", endpoint_url=endpoint_url)

    z_mean = client.predict("encoder_mean", images, version=1)

    expected = in_process(signatures, "encoder_mean", images)["z_mean"]
    np.testing.assert_allclose(z_mean, expected, **TOLERANCE)


def test_client_error_names_model_status_and_server_message(endpoint_url, images):
    client = EndpointClient("vae-anomaly", endpoint_url=endpoint_url)

    with pytest.raises(EndpointError, match=r"model 'anomaly_score': HTTP 404: .*Specific"):
        client.predict("anomaly_score", images, version=2)
    with pytest.raises(EndpointError, match=r"model 'decoder': HTTP 400: input 'z'"):
        client.predict("decoder", images)


def test_client_refuses_an_instance_larger_than_the_limit(endpoint_url, images):
    client = EndpointClient("vae-anomaly", endpoint_url=endpoint_url, max_request_bytes=1_000)

    with pytest.raises(ValueError, match=r"instance 0 .* over the request limit of 1000 bytes"):
        client.predict("anomaly_score", images)


def test_client_needs_a_region_for_a_deployed_endpoint(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    with pytest.raises(ValueError, match="no AWS region for endpoint 'vae-anomaly'"):
        EndpointClient("vae-anomaly")


def test_client_command_line_writes_the_outputs(endpoint_url, signatures, images, tmp_path):
    np.save(tmp_path / "images.npy", images)

    status = client_main(
        [
            "--endpoint-name",
            "vae-anomaly",
            "--endpoint-url",
            endpoint_url,
            "--model",
            "anomaly_score",
            "--input",
            str(tmp_path / "images.npy"),
            "--output",
            str(tmp_path / "scores.npz"),
        ]
    )

    written = np.load(tmp_path / "scores.npz")
    assert status == 0
    assert_matches(dict(written), in_process(signatures, "anomaly_score", images))
