"""The local endpoint against each rule of CONTRACT.md, over real HTTP on loopback.

One server per module serves a toy artifact (`tests/server_fixtures.py`): the six models of
the real artifact as single matrix products, and `scaler` (`y = x * version`), whose output
shows which version answered. The trained artifact is served in `test_client.py`.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf

from artifacts import server
from artifacts.pack import pack_directory
from artifacts.server import (
    BackgroundServer,
    ModelRepository,
    _to_tensor,
    create_app,
    parse_custom_attributes,
    rewrite_csv,
    rewrite_json,
    serve_in_background,
)
from tests.server_fixtures import LATENT_DIM, build_scaler, build_toy_artifact, toy_images

#: A small payload limit keeps the 413 tests cheap; 100 toy images fit under it.
PAYLOAD_LIMIT = 2_500_000
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
ROW = [1.0, 2.0, 3.0]


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return build_toy_artifact(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def http(toy_root):
    with (
        serve_in_background(toy_root, "vae", max_payload_bytes=PAYLOAD_LIMIT) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def scaler_tarball(tmp_path_factory):
    """A `model.tar.gz` of model `scaler` (versions 1 and 3) under one leading directory."""
    root = tmp_path_factory.mktemp("tarball")
    build_scaler(root / "tree" / "multi", {"1": 1.0, "3": 3.0})
    return pack_directory(root / "tree", root / "model.tar.gz")


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The directory `tempfile` creates in (where tarballs are unpacked), empty at first."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def unpacked_dirs(directory: Path) -> list[Path]:
    return sorted(directory.glob("model-*"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_errors(caplog) -> list[str]:
    """The server's ERROR records: a client's input must never produce one."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "artifacts.server" and record.levelno >= logging.ERROR
    ]


def invoke(http, body, *, content_type="application/json", attributes=None, **headers):
    if content_type is not None:
        headers["Content-Type"] = content_type
    if attributes is not None:
        headers[CUSTOM_ATTRIBUTES] = attributes
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return http.post("/invocations", content=content, headers=headers)


def in_process(toy_root, name, **inputs):
    signature = tf.saved_model.load(str(toy_root / name / "1")).signatures["serving_default"]
    return {key: value.numpy() for key, value in signature(**inputs).items()}


# ----------------------------------------------------------------- discovery and start-up


def test_serves_every_version_highest_first_and_skips_hidden_directories(http):
    response = http.get("/v1/models/scaler")

    assert response.status_code == 200
    assert response.json() == {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for version in ("10", "2", "1")
        ]
    }


def test_request_without_version_gets_the_highest_version(http):
    response = http.post("/v1/models/scaler:predict", json={"instances": [ROW]})

    assert response.json() == {"predictions": [[10.0, 20.0, 30.0]]}


@pytest.mark.parametrize(
    ("version", "factor"),
    [("1", 1.0), ("2", 2.0), ("10", 10.0), ("0010", 10.0)],
)
def test_version_directories_and_requests_ignore_leading_zeros(http, version, factor):
    # On disk the versions are `0001`, `2` and `010`, under two extra leading directories.
    response = http.post(f"/v1/models/scaler/versions/{version}:predict", json={"inputs": [ROW]})

    assert response.json() == {"outputs": [[factor * v for v in ROW]]}


def test_fails_to_start_when_no_savedmodel_follows_the_rules(tmp_path):
    build_scaler(tmp_path / "bad", {"latest": 1.0})  # not a numeric version

    with pytest.raises(ValueError, match=r"no SavedModel found in .*bad.*vae/1/saved_model\.pb"):
        ModelRepository.from_artifact(tmp_path / "bad", "scaler")


def test_fails_to_start_when_the_default_model_is_missing(toy_root):
    with pytest.raises(ValueError, match=r"default model 'nosuch' is not in .*'scaler'"):
        ModelRepository.from_artifact(toy_root, "nosuch")


def test_fails_to_start_without_a_default_model(toy_root, monkeypatch):
    monkeypatch.delenv(server.DEFAULT_MODEL_ENV, raising=False)

    with pytest.raises(ValueError, match="SAGEMAKER_TFS_DEFAULT_MODEL_NAME"):
        ModelRepository.from_artifact(toy_root)


def test_default_model_comes_from_the_environment(toy_root, monkeypatch):
    monkeypatch.setenv(server.DEFAULT_MODEL_ENV, "decoder")

    assert ModelRepository.from_artifact(toy_root).default_model == "decoder"


def test_fails_to_start_when_the_artifact_does_not_exist(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ModelRepository.from_artifact(tmp_path / "missing.tar.gz", "vae")


def test_command_line_refuses_to_start_with_a_clear_message(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="artifacts.server"):
        status = server.main(["--artifact", str(tmp_path), "--default-model", "vae", "--port", "0"])

    assert status == 2
    assert "refusing to start: no SavedModel found" in caplog.text


def test_loads_a_model_tarball_and_removes_what_it_unpacked(tmp_path):
    build_scaler(tmp_path / "tree" / "multi", {"3": 3.0})
    archive = pack_directory(tmp_path / "tree", tmp_path / "model.tar.gz")

    repository = ModelRepository.from_artifact(archive, "scaler")
    repository.load()
    unpacked = repository.get("scaler").path

    assert repository.get("scaler").version == 3
    repository.close()
    assert not unpacked.exists()


def test_tarball_with_an_unsafe_member_is_refused_and_removed(tmp_path, temp_dir):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("../escape.txt")
        member.size = 2
        tar.addfile(member, io.BytesIO(b"hi"))

    with pytest.raises(ValueError, match=r"model\.tar\.gz cannot be unpacked: .*escape\.txt"):
        ModelRepository.from_artifact(archive, "vae")
    assert unpacked_dirs(temp_dir) == []


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--max-payload-bytes", "-1", "-1 is out of range; expected an integer of at least 1"),
        ("--workers", "0", "0 is out of range; expected an integer of at least 1"),
        ("--port", "99999", "99999 is out of range; expected an integer from 0 to 65535"),
        ("--port", "http", "expected an integer from 0 to 65535; got 'http'"),
    ],
)
def test_command_line_refuses_numbers_out_of_range_before_unpacking(
    scaler_tarball, monkeypatch, capsys, flag, value, allowed
):
    def unpack(*args, **kwargs):
        raise AssertionError("the artifact was opened before the arguments were checked")

    monkeypatch.setattr(ModelRepository, "from_artifact", unpack)

    with pytest.raises(SystemExit) as exit_info:
        server.main(["--artifact", str(scaler_tarball), "--default-model", "scaler", flag, value])

    assert exit_info.value.code == 2
    assert f"error: argument {flag}: {allowed}" in capsys.readouterr().err


def test_port_from_the_environment_is_checked_like_the_flag(scaler_tarball, monkeypatch, capsys):
    monkeypatch.setenv(server.PORT_ENV, "70000")

    with pytest.raises(SystemExit) as exit_info:
        server.main(["--artifact", str(scaler_tarball), "--default-model", "scaler"])

    assert exit_info.value.code == 2
    assert "argument --port: 70000 is out of range" in capsys.readouterr().err


def test_app_refuses_fewer_than_one_worker(tmp_path):
    build_scaler(tmp_path, {"1": 1.0})
    repository = ModelRepository.from_artifact(tmp_path, "scaler")

    with pytest.raises(ValueError, match="workers must be at least 1; got 0"):
        create_app(repository, workers=0)


def test_command_line_removes_the_unpacked_tarball_when_start_up_fails(
    scaler_tarball, temp_dir, monkeypatch
):
    def failing_create_app(repository, **kwargs):
        assert len(unpacked_dirs(temp_dir)) == 1  # unpacked by now
        raise RuntimeError("cannot build the app")

    monkeypatch.setattr(server, "create_app", failing_create_app)

    with pytest.raises(RuntimeError, match="cannot build the app"):
        server.main(["--artifact", str(scaler_tarball), "--default-model", "scaler"])
    assert unpacked_dirs(temp_dir) == []


class CommandLineServer:
    """`python -m artifacts.server` on a tarball, in a process of its own.

    Its temporary directory (`TMPDIR`, where the tarball is unpacked) and its log are in
    `directory`; `stop(signal_number)` signals it and returns its exit status.
    """

    def __init__(self, tarball: Path, directory: Path) -> None:
        self.temp_dir = directory / "tmp"
        self.temp_dir.mkdir(parents=True)
        self.log_path = directory / "server.log"
        self.port = free_port()
        command = [sys.executable, "-m", "artifacts.server", "--artifact", str(tarball)]
        command += ["--default-model", "scaler", "--port", str(self.port)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, "TMPDIR": str(self.temp_dir)},
                cwd=Path(server.__file__).parents[1],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_healthy(self, timeout: float = 60) -> int | None:
        """The last `/ping` status: 200 unless the server exited or the time ran out."""
        status = None
        deadline = time.monotonic() + timeout
        while status != 200 and self.process.poll() is None and time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{self.port}/ping", timeout=5).status_code
            except httpx.TransportError:
                status = None  # not listening yet
            if status != 200:
                time.sleep(0.1)
        return status

    def stop(self, signal_number: int) -> int:
        self.process.send_signal(signal_number)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_command_line_stops_on_sigterm_or_sigint_and_removes_the_unpacked_tarball(
    scaler_tarball, tmp_path
):
    # Both at once: most of each one's time goes to importing TensorFlow.
    servers = {
        number: CommandLineServer(scaler_tarball, tmp_path / number.name)
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        pings = {number: s.wait_until_healthy() for number, s in servers.items()}
        serving_from = {number: unpacked_dirs(s.temp_dir) for number, s in servers.items()}
        statuses = {number: s.stop(number) for number, s in servers.items()}
    finally:
        for each in servers.values():
            each.kill()
    logs = {number: s.log_path.read_text() for number, s in servers.items()}

    assert pings == {signal.SIGTERM: 200, signal.SIGINT: 200}, logs
    assert [len(dirs) for dirs in serving_from.values()] == [1, 1]
    assert statuses == {signal.SIGTERM: 143, signal.SIGINT: 130}, logs
    for number, each in servers.items():
        assert unpacked_dirs(each.temp_dir) == [], number.name
        assert "Application shutdown complete" in logs[number]
        assert "Traceback" not in logs[number]


def test_ping_fails_until_the_models_are_loaded(tmp_path):
    build_scaler(tmp_path, {"1": 1.0})
    repository = ModelRepository.from_artifact(tmp_path, "scaler")

    with (
        BackgroundServer(create_app(repository)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        before = client.get("/ping")
        invocation = client.post(
            "/invocations", json={"instances": [ROW]}, headers={"Content-Type": "application/json"}
        )
        repository.load()
        after = client.get("/ping")

    assert before.status_code == 503
    assert "'scaler' is not ready" in before.json()["error"]
    assert invocation.status_code == 503
    assert after.status_code == 200


# ------------------------------------------------------------------ SageMaker container API


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/jsonlines", "application/jsons", "text/csv"],
)
def test_invocations_accept_the_four_content_types(http, content_type):
    body = "1,2,3" if content_type == "text/csv" else json.dumps([ROW])

    response = invoke(http, body, content_type=content_type, attributes="tfs-model-name=scaler")

    assert response.status_code == 200
    assert response.json() == {"predictions": [[10.0, 20.0, 30.0]]}


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "text/plain"),
        ("application/json; charset=utf-8", "application/json; charset=utf-8"),
        ("application/x-npy", "application/x-npy"),
        (None, "Unknown"),
    ],
)
def test_invocations_refuse_other_content_types_with_415(http, content_type, shown):
    response = invoke(http, [ROW], content_type=content_type, attributes="tfs-model-name=scaler")

    assert response.status_code == 415
    assert response.json() == {"error": f"Unsupported Media Type: {shown}"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("tfs-model-name=scaler", {"tfs-model-name": "scaler"}),
        (
            "session=abc,tfs-model-name=scaler, tfs-model-version=2",
            {"tfs-model-name": "scaler", "tfs-model-version": "2"},
        ),
        ("tfs-method=predict ,trace=1", {"tfs-method": "predict "}),
        ("Tfs-Model-Name=scaler,tfs-model-name=a=b", {}),
        ("", {}),
    ],
)
def test_custom_attributes_keep_tfs_pairs_and_values_up_to_the_next_comma(header, expected):
    assert parse_custom_attributes(header) == expected


@pytest.mark.parametrize(
    ("attributes", "factor"),
    [
        ("tfs-model-name=scaler", 10.0),
        ("trace-id=7,tfs-model-name=scaler, tfs-model-version=2", 2.0),
        ("tfs-model-version=0001 , tfs-model-name=scaler", None),
        ("other=x,  tfs-model-version=1,tfs-model-name=scaler", 1.0),
    ],
)
def test_custom_attributes_pick_model_and_version(http, attributes, factor):
    response = invoke(http, {"instances": [ROW]}, attributes=attributes)

    if factor is None:
        # The value runs to the comma, space included: "0001 " is not a version.
        assert response.status_code == 400
        assert "'0001 '" in response.json()["error"]
    else:
        assert response.json() == {"predictions": [[factor * v for v in ROW]]}


def test_invocations_without_model_name_use_the_default_model(http):
    response = invoke(http, {"instances": toy_images(2).tolist()})

    assert response.status_code == 200
    assert np.asarray(response.json()["predictions"]).shape == (2, 28, 28, 1)


def test_custom_attribute_value_keeps_its_trailing_space(http):
    response = invoke(http, [ROW], attributes="tfs-model-name=scaler ,tfs-model-version=2")

    assert response.status_code == 404
    assert "Latest(scaler )" in response.json()["error"]


def test_unknown_version_is_404_naming_it(http):
    response = invoke(http, [ROW], attributes="tfs-model-name=scaler,tfs-model-version=7")

    assert response.status_code == 404
    assert "Specific(scaler, 7)" in response.json()["error"]


def test_unknown_model_is_404_naming_it(http):
    response = invoke(http, [ROW], attributes="tfs-model-name=no_such_model")

    assert response.status_code == 404
    assert "no_such_model" in response.json()["error"]


def test_custom_attributes_over_1024_characters_are_400(http):
    response = invoke(http, [ROW], attributes="tfs-model-name=scaler," + "x" * 1024)

    assert response.status_code == 400
    assert response.json()["error"] == (
        f"{CUSTOM_ATTRIBUTES} must be at most 1024 characters; got 1046 characters"
    )


def test_non_ascii_custom_attribute_is_400_naming_the_character(http):
    # Sent as UTF-8 bytes, as a client would; the server sees them decoded as Latin-1.
    attributes = "tfs-model-name=vaé".encode()

    response = invoke(http, [ROW], attributes=attributes)

    assert response.status_code == 400
    assert response.json()["error"] == (
        f"{CUSTOM_ATTRIBUTES} must be printable ASCII; it contains 'é' (U+00E9) at character 18"
    )


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ("tfs-model-name=a\tb", "'\\t' (U+0009) at character 17"),
        ("tfs-model-name=€", "'€' (U+20AC) at character 16"),
        ("é" + "x" * 2000, "'é' (U+00E9) at character 1"),
    ],
)
def test_custom_attributes_name_a_character_that_is_not_printable_ascii(header, shown):
    with pytest.raises(server.RequestError, match="must be printable ASCII") as error:
        parse_custom_attributes(header)

    assert error.value.status == 400
    assert error.value.message.endswith(f"it contains {shown}")


@pytest.mark.parametrize(
    ("body", "rewritten"),
    [
        ('{"instances": [1]}', '{"instances": [1]}'),
        ('{"signature_name": "s", "inputs" : [1]}', '{"signature_name": "s", "inputs" : [1]}'),
        ("[1, 2]\n[3, 4]\n", '{"instances":[[1, 2],[3, 4]]}'),
        ('{"a": 1}\r\n\r\n{"a": 2}', '{"instances":[{"a": 1},{"a": 2}]}'),
        ("[[1, 2], [3, 4]]", '{"instances":[[1, 2], [3, 4]]}'),
        (" [ [1]]", '{"instances": [ [1]]}'),
        ("[1, 2]", '{"instances":[[1, 2]]}'),
        ("7", '{"instances":[7]}'),
    ],
)
def test_json_bodies_are_rewritten_as_the_image_rewrites_them(body, rewritten):
    assert rewrite_json(body) == rewritten


def test_json_lines_body_is_one_instance_per_line(http):
    body = "[1, 2, 3]\n[4, 5, 6]\n"

    response = invoke(
        http, body, content_type="application/jsonlines", attributes="tfs-model-name=scaler"
    )

    assert response.json() == {"predictions": [[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]}


def test_bare_instance_is_wrapped_in_a_batch_of_one(http):
    response = invoke(http, ROW, attributes="tfs-model-name=scaler")

    assert response.json() == {"predictions": [[10.0, 20.0, 30.0]]}


def test_single_image_sent_as_a_bare_list_is_28_instances(http):
    image = toy_images(1)[0].tolist()  # [28, 28, 1], starts with "[["

    bare = invoke(http, image, attributes="tfs-model-name=encoder_mean")
    batch = invoke(http, [image], attributes="tfs-model-name=encoder_mean")

    assert bare.status_code == 400
    assert "expected shape [-1, 28, 28, 1], got [28, 28, 1]" in bare.json()["error"]
    assert np.asarray(batch.json()["predictions"]).shape == (1, LATENT_DIM)


@pytest.mark.parametrize(
    ("body", "rewritten"),
    [
        ("1,2,3\n4,5,6\n", '{"instances":[[1,2,3],[4,5,6]]}'),
        ("0.5\r\n-1e3", '{"instances":[0.5,-1e3]}'),
        ('"a",b', '{"instances":[["a",b]]}'),
        ("x,y", '{"instances":[["x","y"]]}'),
    ],
)
def test_csv_lines_become_instances(body, rewritten):
    assert rewrite_csv(body) == rewritten


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/jsonlines", "application/jsonlines"),
        ("text/html, application/json", "application/json"),
        (None, "application/json"),
    ],
)
def test_accept_names_the_response_content_type(http, accept, content_type):
    headers = {"Accept": accept} if accept else {}

    response = invoke(http, [ROW], attributes="tfs-model-name=scaler", **headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


# --------------------------------------------------------------------------- TFS REST API


def test_row_format_with_several_outputs_gives_one_object_per_instance(http, toy_root):
    images = toy_images(3)

    response = http.post("/v1/models/anomaly_score:predict", json={"instances": images.tolist()})

    expected = in_process(toy_root, "anomaly_score", images=tf.constant(images))
    predictions = response.json()["predictions"]
    assert [sorted(p) for p in predictions] == [["is_anomaly", "score"]] * 3
    assert [p["is_anomaly"] for p in predictions] == expected["is_anomaly"].tolist()
    np.testing.assert_allclose([p["score"] for p in predictions], expected["score"], rtol=1e-6)


def test_column_format_with_several_outputs_gives_one_array_per_output(http, toy_root):
    images = toy_images(3)

    response = http.post("/v1/models/anomaly_score:predict", json={"inputs": images.tolist()})

    expected = in_process(toy_root, "anomaly_score", images=tf.constant(images))
    outputs = response.json()["outputs"]
    assert outputs["is_anomaly"] == expected["is_anomaly"].tolist()
    np.testing.assert_allclose(outputs["score"], expected["score"], rtol=1e-6)


def test_row_format_accepts_instances_keyed_by_input_name(http):
    response = http.post("/v1/models/scaler:predict", json={"instances": [{"x": ROW}]})

    assert response.json() == {"predictions": [[10.0, 20.0, 30.0]]}


def test_signature_name_picks_another_signature(http, toy_root):
    images = toy_images(2)

    response = http.post(
        "/v1/models/encoder_mean:predict",
        json={"signature_name": "both", "inputs": {"images": images.tolist()}},
    )

    expected = in_process(toy_root, "encoder_mean", images=tf.constant(images))
    outputs = response.json()["outputs"]
    assert sorted(outputs) == ["z_log_var", "z_mean"]
    np.testing.assert_allclose(outputs["z_mean"], expected["z_mean"], rtol=1e-5, atol=1e-6)


def test_tfs_paths_are_also_served_under_the_nginx_prefix(http):
    response = http.post("/tfs/v1/models/scaler/versions/2:predict", json={"inputs": [ROW]})

    assert response.json() == {"outputs": [[2.0, 4.0, 6.0]]}


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"instances": [ROW], "inputs": [ROW]}, "either 'instances'"),
        ({"signature_name": "serving_default"}, "either 'instances'"),
        ({"instances": [ROW], "signature_name": "nope"}, "'nope' not found"),
        ({"instances": []}, "non-empty list"),
        ({"instances": [["a", "b", "c"]]}, "expected float32 values, got str"),
        ({"instances": [[True, False, True]]}, "input 'x': expected float32 values, got a boolean"),
        ({"instances": [[1.0, True, 0.5]]}, "input 'x': expected float32 values, got a boolean"),
        ({"inputs": [[0, 1, False]]}, "input 'x': expected float32 values, got a boolean"),
        ({"instances": [ROW], "signature_name": ["a"]}, "'signature_name' must be a string"),
        ({"instances": [[1, 2, 3], [4, 5]]}, "values do not form a tensor"),
        ({"instances": [[1, 2, 3, 4]]}, "expected shape [-1, 3], got [1, 4]"),
        ({"inputs": [1, 2, 3]}, "expected shape [-1, 3], got [3]"),
        ({"inputs": {"y": [ROW]}}, "keys ['x']"),
        ({"instances": [{"x": ROW}, ROW]}, "mix objects"),
        ([ROW], "must be a JSON object"),
    ],
)
def test_bad_predict_requests_are_400_with_the_reason(http, request_body, message):
    response = http.post("/v1/models/scaler:predict", json=request_body)

    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (tf.TensorSpec([None], tf.int32), [1, True]),
        (tf.TensorSpec([None], tf.string), ["a", False]),
        (tf.TensorSpec([None, 2], tf.float64), [[0.5, 1], [True, 0.0]]),
    ],
)
def test_booleans_are_refused_for_every_dtype_but_bool(spec, value):
    with pytest.raises(server.RequestError) as error:
        _to_tensor(value, spec, "v")

    assert error.value.status == 400
    assert error.value.message == (
        f"input 'v': expected {spec.dtype.name} values, got a boolean (true/false)"
    )


def test_booleans_are_accepted_for_a_bool_input():
    array = _to_tensor([True, False], tf.TensorSpec([None], tf.bool), "flags")

    assert array.tolist() == [True, False]


@pytest.mark.parametrize("path", ["/v1/models/scaler:predict", "/invocations"])
def test_number_too_long_to_parse_is_400_without_python_internals(http, path):
    body = '{"instances": [[' + "7" * 5000 + ", 1, 2]]}"

    response = http.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed JSON: a number has more than 4300 digits, too long to parse"
    }


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"instances": [1, 2,]}', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
)
def test_malformed_json_is_400(http, body):
    response = http.post("/v1/models/scaler:predict", content=body)

    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.parametrize("method", ["classify", "regress"])
def test_classify_and_regress_need_a_signature_of_their_kind(http, method):
    response = http.post(f"/v1/models/scaler:{method}", json={"examples": [{"x": 1}]})

    assert response.status_code == 400
    assert f"tensorflow/serving/{method}" in response.json()["error"]


def test_metadata_lists_signature_names_dtypes_and_shapes(http):
    response = http.get("/v1/models/decoder/versions/1/metadata")

    body = response.json()
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert body["model_spec"] == {"name": "decoder", "signature_name": "", "version": "1"}
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["z"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"]["z"]["tensor_shape"]["dim"]] == [
        "-1",
        str(LATENT_DIM),
    ]
    assert list(signature["outputs"]) == ["reconstructions"]


def test_status_of_one_version(http):
    response = http.get("/v1/models/scaler/versions/2")

    assert [s["version"] for s in response.json()["model_version_status"]] == ["2"]


@pytest.mark.parametrize(
    ("method", "path", "status", "needle"),
    [
        ("GET", "/v1/models/nosuch", 404, "nosuch"),
        ("GET", "/v1/models/scaler/versions/5/metadata", 404, "Specific(scaler, 5)"),
        ("POST", "/v1/models/nosuch:predict", 404, "Latest(nosuch)"),
        ("POST", "/v1/models/scaler/versions/x1:predict", 400, "'x1' is not a number"),
        ("POST", "/v1/models/scaler/versions/\u0661:predict", 400, "is not a number"),
        (
            "POST",
            "/v1/models/scaler/versions/" + "9" * 5000 + ":predict",
            400,
            "is over 9223372036854775807",
        ),
        ("POST", "/v1/models/scaler/versions/1/extra:predict", 400, "Malformed request"),
        ("GET", "/no/such/path", 404, "Not Found"),
        ("GET", "/invocations", 405, "Method Not Allowed"),
        ("POST", "/v1/models/scaler", 405, "Method Not Allowed"),
    ],
)
def test_unknown_models_versions_and_paths_are_json_errors(http, method, path, status, needle):
    response = http.request(method, path, json={"instances": [ROW]})

    assert response.status_code == status
    assert needle in response.json()["error"]


# ----------------------------------------------------------------- limits, NaN, robustness


def test_payload_over_the_limit_is_413(http):
    body = '{"instances": [' + ",".join(["[1.0, 2.0, 3.0]"] * 200_000) + "]}"
    assert len(body) > PAYLOAD_LIMIT

    invocation = invoke(http, body, attributes="tfs-model-name=scaler")
    tfs = http.post("/v1/models/scaler:predict", content=body)

    assert invocation.status_code == 413
    assert str(PAYLOAD_LIMIT) in invocation.json()["error"]
    assert tfs.status_code == 413


def test_payload_at_the_limit_is_served(http):
    prefix, suffix = '{"instances": [[1.0, 2.0, 3.0]]', "}"
    body = prefix + " " * (PAYLOAD_LIMIT - len(prefix) - len(suffix)) + suffix

    response = http.post("/v1/models/scaler/versions/1:predict", content=body)

    assert len(body) == PAYLOAD_LIMIT
    assert response.json() == {"predictions": [ROW]}


def test_nan_and_infinity_pass_through_as_tfs_writes_them(http):
    body = '{"instances": [[NaN, Infinity, -Infinity]]}'

    response = http.post("/v1/models/scaler/versions/2:predict", content=body)

    assert response.status_code == 200
    assert response.text == '{"predictions":[[NaN,Infinity,-Infinity]]}'
    assert math.isnan(response.json()["predictions"][0][0])


def test_one_log_line_per_request_names_model_version_status_and_bytes(http, caplog):
    with caplog.at_level(logging.INFO, logger="artifacts.server"):
        invoke(http, [ROW], attributes="tfs-model-name=scaler,tfs-model-version=2")
        http.post("/v1/models/nosuch:predict", json={"instances": [ROW]})

    lines = [r.getMessage() for r in caplog.records if r.name == "artifacts.server"]
    assert len(lines) == 2
    assert "POST /invocations model=scaler version=2 status=200 bytes_in=17 bytes_out=" in lines[0]
    assert "model=nosuch version=- status=404" in lines[1]
    assert "latency_ms=" in lines[1]


def test_still_answers_correctly_after_a_burst_of_bad_requests(http, caplog):
    bad_requests = [
        ("/invocations", b"{", "application/json"),
        ("/invocations", b"\x00\xff" * 1000, "application/json"),
        ("/invocations", b"[[1, 2, 3]]", "image/png"),
        ("/invocations", b"a,b\n" * 1000, "text/csv"),
        ("/invocations", b"[" * 50_000, "application/json"),
        ("/invocations", b'{"instances": [[1e999, "x"]]}', "application/json"),
        ("/v1/models/scaler:predict", b'{"inputs": {"x": {"b64": "AA=="}}}', None),
        ("/v1/models/scaler:predict", b'{"instances": [[1, 2, 3]]' + b" " * 3_000_000, None),
        ("/v1/models/decoder:predict", b'{"instances": [[1, 2, 3, 4]], "x": ' * 10 + b"}", None),
        ("/v1/models/scaler:predict", b'{"inputs": [[99999999999999999999999, 1, 2]]}', None),
        ("/v1/models/scaler:predict", b'{"inputs": [[' + b"9" * 5000 + b", 1, 2]]}", None),
        ("/v1/models/scaler:predict", b'{"inputs": [[1, 2, true]]}', None),
        ("/v1/models/scaler:predict", b'{"instances": [], "signature_name": {}}', None),
        ("/v1/models/scaler/versions/" + "1" * 5000 + ":predict", b"[]", None),
    ]

    def send(item):
        path, body, content_type = item
        headers = {"Content-Type": content_type} if content_type else {}
        return http.post(path, content=body, headers=headers)

    with caplog.at_level(logging.INFO, logger="artifacts.server"), ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(send, bad_requests * 5))
        bad_attribute = invoke(http, [ROW], attributes=b"tfs-model-name=a\tb")
    good = invoke(http, [ROW], attributes="tfs-model-name=scaler,tfs-model-version=2")

    assert {r.status_code // 100 for r in [*responses, bad_attribute]} == {4}
    assert all("error" in r.json() for r in responses)
    assert server_errors(caplog) == []
    assert good.json() == {"predictions": [[2.0, 4.0, 6.0]]}


def test_client_that_hangs_up_mid_body_is_logged_without_a_traceback(http, caplog):
    host, port = http.base_url.host, http.base_url.port
    request = b"POST /v1/models/scaler:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"

    with caplog.at_level(logging.INFO, logger="artifacts.server"):
        with socket.create_connection((host, port)) as client:
            client.sendall(request + b'{"instances": [[1, 2')
        lines = []
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:
            lines = [m for m in caplog.messages if m.startswith("POST /v1/models/scaler:predict")]
            time.sleep(0.01)

    assert len(lines) == 1
    assert "status=499 bytes_in=20" in lines[0]
    assert server_errors(caplog) == []


def test_concurrent_requests_get_their_own_answers(http):
    def send(factor):
        version = {1: 1, 2: 2, 10: 10}[factor]
        response = http.post(
            f"/v1/models/scaler/versions/{version}:predict", json={"inputs": [ROW] * 50}
        )
        return factor, response.json()["outputs"]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(send, [1, 2, 10] * 8))

    for factor, outputs in results:
        assert outputs == [[factor * v for v in ROW]] * 50
