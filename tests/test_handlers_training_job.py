"""The training-job custom resource handlers, against moto and against botocore's Stubber.

moto plays SageMaker for the happy path (its jobs complete at once); the Stubber gives the
exact responses moto cannot: a failed or stopped job, throttling, and a job still running
when the stack is deleted.
"""

from __future__ import annotations

import copy
import importlib.util

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from infra.training_job import HANDLER_DIR

REGION = "eu-west-1"


def _load_handler():
    spec = importlib.util.spec_from_file_location("training_job_handler", HANDLER_DIR / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


handler = _load_handler()

PROPERTIES = {
    "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:framework-onEvent",
    "JobNamePrefix": "vaeanomalydetection-train",
    "RoleArn": "arn:aws:iam::123456789012:role/ExecutionRole",
    "ImageUri": "763104351884.dkr.ecr.eu-west-1.amazonaws.com/tensorflow-training:2.19-cpu-py312",
    "InstanceType": "ml.m5.xlarge",
    "InstanceCount": "1",
    "VolumeSizeInGB": "30",
    "VolumeKmsKeyId": "",
    "MaxRuntimeInSeconds": "3000",
    "OutputPath": "s3://bucket/output/",
    "Channels": {"train": "s3://bucket/data/train/", "test": "s3://bucket/data/test/"},
    "HyperParameters": {"epochs": '"10"', "sagemaker_program": '"train.py"'},
    "ContentHashes": {"data": "d1", "code": "c1"},
}
JOB_NAME = handler.job_name(PROPERTIES)


def _event(request_type: str, properties=PROPERTIES, physical_id: str | None = None) -> dict:
    event = {"RequestType": request_type, "ResourceProperties": copy.deepcopy(properties)}
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    return event


def _describe(status: str, **extra) -> dict:
    return {
        "TrainingJobName": JOB_NAME,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{JOB_NAME}",
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ModelArtifacts": {
            "S3ModelArtifacts": f"s3://bucket/output/{JOB_NAME}/output/model.tar.gz"
        },
        "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {},
        "CreationTime": "2025-01-01T00:00:00Z",
        **extra,
    }


@pytest.fixture
def stubbed(monkeypatch):
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        monkeypatch.setattr(handler, "sagemaker_client", lambda: client)
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def moto_sagemaker(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION)


# ------------------------------------------------------------------------------ naming


def test_job_name_is_prefix_and_hash_within_sagemaker_limits():
    assert JOB_NAME.startswith("vaeanomalydetection-train-")
    assert len(JOB_NAME) == len("vaeanomalydetection-train-") + handler.HASH_LENGTH
    long = {**PROPERTIES, "JobNamePrefix": "a" * 80}
    assert len(handler.job_name(long)) == handler.MAX_JOB_NAME_LENGTH


def test_job_name_ignores_the_service_token_but_not_the_inputs():
    moved = {**PROPERTIES, "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:new"}
    assert handler.job_name(moved) == JOB_NAME
    for key, value in (
        ("HyperParameters", {**PROPERTIES["HyperParameters"], "epochs": '"11"'}),
        ("ContentHashes", {"data": "d2", "code": "c1"}),
        ("ContentHashes", {"data": "d1", "code": "c2"}),
        ("InstanceType", "ml.c5.xlarge"),
    ):
        assert handler.job_name({**PROPERTIES, key: value}) != JOB_NAME, key


def test_create_request_casts_numbers_and_lists_channels():
    request = handler.create_request(JOB_NAME, PROPERTIES)

    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3000}
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["test", "train"]
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://bucket/output/"}


def test_create_request_encrypts_volume_and_output_with_a_given_key():
    key = "arn:aws:kms:eu-west-1:123456789012:key/abc"
    request = handler.create_request(JOB_NAME, {**PROPERTIES, "VolumeKmsKeyId": key})

    assert request["ResourceConfig"]["VolumeKmsKeyId"] == key
    assert request["OutputDataConfig"]["KmsKeyId"] == key


# ------------------------------------------------------------------------------ moto


def test_create_starts_a_job_that_polls_to_complete(moto_sagemaker):
    created = handler.on_event(_event("Create"))

    assert created == {"PhysicalResourceId": JOB_NAME}
    job = moto_sagemaker.describe_training_job(TrainingJobName=JOB_NAME)
    assert job["HyperParameters"] == PROPERTIES["HyperParameters"]
    assert job["RoleArn"] == PROPERTIES["RoleArn"]

    result = handler.is_complete(_event("Create", physical_id=JOB_NAME))
    assert result == {
        "IsComplete": True,
        "Data": {
            "TrainingJobName": JOB_NAME,
            "ModelDataUrl": f"s3://bucket/output/{JOB_NAME}/output/model.tar.gz",
        },
    }


def test_create_adopts_its_own_job_when_retried(moto_sagemaker):
    handler.on_event(_event("Create"))

    assert handler.on_event(_event("Create")) == {"PhysicalResourceId": JOB_NAME}


def test_delete_of_a_completed_job_stops_nothing(moto_sagemaker):
    handler.on_event(_event("Create"))

    assert handler.on_event(_event("Delete", physical_id=JOB_NAME)) == {
        "PhysicalResourceId": JOB_NAME
    }
    assert handler.is_complete(_event("Delete", physical_id=JOB_NAME)) == {"IsComplete": True}


def test_delete_after_a_failed_create_finds_no_job(moto_sagemaker):
    physical_id = "the-request-id-of-a-failed-create"

    assert handler.on_event(_event("Delete", physical_id=physical_id)) == {
        "PhysicalResourceId": physical_id
    }
    assert handler.is_complete(_event("Delete", physical_id=physical_id)) == {"IsComplete": True}


def test_update_with_changed_hyperparameters_starts_a_new_job(moto_sagemaker):
    handler.on_event(_event("Create"))
    changed = {**PROPERTIES, "HyperParameters": {**PROPERTIES["HyperParameters"], "epochs": '"20"'}}

    result = handler.on_event(_event("Update", changed, physical_id=JOB_NAME))

    assert result["PhysicalResourceId"] != JOB_NAME
    job = moto_sagemaker.describe_training_job(TrainingJobName=result["PhysicalResourceId"])
    assert job["HyperParameters"]["epochs"] == '"20"'


# ------------------------------------------------------------------------------ Stubber


def test_update_with_nothing_changed_starts_no_job(stubbed):
    moved = {**PROPERTIES, "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:new"}

    # No response is queued: any SageMaker call would fail the test.
    assert handler.on_event(_event("Update", moved, physical_id=JOB_NAME)) == {
        "PhysicalResourceId": JOB_NAME
    }


def test_update_with_new_data_creates_a_job_under_a_new_name(stubbed):
    changed = {**PROPERTIES, "ContentHashes": {"data": "d2", "code": "c1"}}
    new_name = handler.job_name(changed)
    stubbed.add_response(
        "create_training_job",
        {"TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{new_name}"},
        handler.create_request(new_name, changed),
    )

    assert handler.on_event(_event("Update", changed, physical_id=JOB_NAME)) == {
        "PhysicalResourceId": new_name
    }


def test_poll_of_a_running_job_is_not_complete(stubbed):
    stubbed.add_response("describe_training_job", _describe("InProgress"))

    assert handler.is_complete(_event("Create", physical_id=JOB_NAME)) == {"IsComplete": False}


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_job_that_did_not_complete_fails_the_deployment_with_its_reason(stubbed, status):
    reason = "AlgorithmError: ExecuteUserScriptError: train.py exited with 1"
    stubbed.add_response("describe_training_job", _describe(status, FailureReason=reason))

    with pytest.raises(RuntimeError, match=f"{JOB_NAME} ended {status}: AlgorithmError"):
        handler.is_complete(_event("Create", physical_id=JOB_NAME))


def test_throttled_poll_asks_again_instead_of_failing(stubbed):
    stubbed.add_client_error(
        "describe_training_job", service_error_code="ThrottlingException", http_status_code=400
    )

    assert handler.is_complete(_event("Create", physical_id=JOB_NAME)) == {"IsComplete": False}


def test_throttled_create_fails_with_the_aws_error(stubbed):
    stubbed.add_client_error(
        "create_training_job",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
    )

    with pytest.raises(ClientError, match="ThrottlingException"):
        handler.on_event(_event("Create"))


def test_delete_while_running_stops_the_job_and_waits_until_it_stopped(stubbed):
    stubbed.add_response("describe_training_job", _describe("InProgress"))
    stubbed.add_response("stop_training_job", {}, {"TrainingJobName": JOB_NAME})
    stubbed.add_response("describe_training_job", _describe("Stopping"))
    stubbed.add_response("describe_training_job", _describe("Stopped"))

    handler.on_event(_event("Delete", physical_id=JOB_NAME))

    assert handler.is_complete(_event("Delete", physical_id=JOB_NAME)) == {"IsComplete": False}
    assert handler.is_complete(_event("Delete", physical_id=JOB_NAME)) == {"IsComplete": True}
