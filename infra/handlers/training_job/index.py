"""Custom resource handlers that run one SageMaker training job per set of inputs.

Used by `infra.training_job.TrainingJob` through the CDK Provider framework: `on_event`
starts or stops a job and returns at once; `is_complete` is called every query interval
until the job has finished. Only boto3 and the standard library are used, both of which the
Lambda Python runtime provides.

The resource's properties (strings, as CloudFormation delivers them):

- `JobNamePrefix`: from the stack name; the job name is `<prefix>-<hash of the properties>`.
- `RoleArn`, `ImageUri`, `InstanceType`, `InstanceCount`, `VolumeSizeInGB`,
  `MaxRuntimeInSeconds`, `OutputPath`, `VolumeKmsKeyId` (may be empty).
- `Channels`: channel name -> S3 prefix URI.
- `HyperParameters`: name -> JSON-encoded value, as the SageMaker SDK sends them.
- `ContentHashes`: digests of the data and code; they change the job name (and so start a
  new job) when the bytes behind the fixed S3 keys change.

Update rules: the job name is a hash of every property except the service token, so an
update that changes an input returns a new physical id (a new job, and CloudFormation then
deletes the old resource, which only stops the old job if it still runs); an update that
changes nothing the job depends on keeps the physical id and starts nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

#: SageMaker's limit on training job names.
MAX_JOB_NAME_LENGTH = 63
HASH_LENGTH = 16

RUNNING = frozenset({"InProgress", "Stopping"})
THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})

# Standard retries absorb short bursts of throttling inside one invocation.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})


def sagemaker_client() -> Any:
    """The SageMaker client; a function so that tests can replace it."""
    return boto3.client("sagemaker", config=_CLIENT_CONFIG)


# ------------------------------------------------------------------------------ naming


def job_name(properties: dict[str, Any]) -> str:
    """`<prefix>-<hash>`: unique per stack and per set of inputs, at most 63 characters."""
    inputs = {key: value for key, value in properties.items() if key != "ServiceToken"}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    prefix = properties["JobNamePrefix"][: MAX_JOB_NAME_LENGTH - HASH_LENGTH - 1].rstrip("-")
    return f"{prefix}-{digest[:HASH_LENGTH]}"


def create_request(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The `CreateTrainingJob` request for the resource's properties."""
    resource_config: dict[str, Any] = {
        "InstanceType": properties["InstanceType"],
        "InstanceCount": int(properties["InstanceCount"]),
        "VolumeSizeInGB": int(properties["VolumeSizeInGB"]),
    }
    output_config: dict[str, Any] = {"S3OutputPath": properties["OutputPath"]}
    kms_key = properties.get("VolumeKmsKeyId", "")
    if kms_key:
        resource_config["VolumeKmsKeyId"] = kms_key
        output_config["KmsKeyId"] = kms_key

    return {
        "TrainingJobName": name,
        "RoleArn": properties["RoleArn"],
        "AlgorithmSpecification": {
            "TrainingImage": properties["ImageUri"],
            "TrainingInputMode": "File",
        },
        "HyperParameters": dict(properties["HyperParameters"]),
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in sorted(properties["Channels"].items())
        ],
        "OutputDataConfig": output_config,
        "ResourceConfig": resource_config,
        "StoppingCondition": {"MaxRuntimeInSeconds": int(properties["MaxRuntimeInSeconds"])},
    }


# ------------------------------------------------------------------------------ handlers


def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Start, keep or stop the training job; the Provider calls `is_complete` afterwards."""
    request_type = event["RequestType"]
    logger.info("%s request for %s", request_type, event.get("PhysicalResourceId", "a new job"))
    client = sagemaker_client()

    if request_type == "Delete":
        _stop_if_running(client, event["PhysicalResourceId"])
        return {"PhysicalResourceId": event["PhysicalResourceId"]}

    name = job_name(event["ResourceProperties"])
    if request_type == "Update" and name == event["PhysicalResourceId"]:
        logger.info("inputs unchanged; keeping training job %s", name)
        return {"PhysicalResourceId": name}

    _start(client, name, event["ResourceProperties"])
    return {"PhysicalResourceId": name}


def is_complete(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Poll `DescribeTrainingJob`; fail with the job's `FailureReason` when it did not finish."""
    name = event["PhysicalResourceId"]
    client = sagemaker_client()
    try:
        job = client.describe_training_job(TrainingJobName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] in THROTTLING_CODES:
            # A throttled poll is not a failed job: ask again at the next interval.
            logger.warning("describing %s was throttled; polling again later", name)
            return {"IsComplete": False}
        if event["RequestType"] == "Delete" and _is_not_found(error):
            return {"IsComplete": True}
        raise

    status = job["TrainingJobStatus"]
    logger.info("training job %s: %s (%s)", name, status, job.get("SecondaryStatus"))
    if event["RequestType"] == "Delete":
        return {"IsComplete": status not in RUNNING}
    if status in RUNNING:
        return {"IsComplete": False}
    if status != "Completed":
        reason = job.get("FailureReason", "no reason given")
        raise RuntimeError(f"training job {name} ended {status}: {reason}")
    return {
        "IsComplete": True,
        "Data": {
            "TrainingJobName": name,
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
        },
    }


# ------------------------------------------------------------------------------ helpers


def _start(client: Any, name: str, properties: dict[str, Any]) -> None:
    try:
        client.create_training_job(**create_request(name, properties))
    except ClientError as error:
        # A retried create (or a job left by an earlier attempt) finds its own job: adopt it
        # rather than fail, since the name already stands for exactly these inputs.
        if error.response["Error"]["Code"] != "ResourceInUse":
            raise
        logger.info("training job %s already exists; waiting for it", name)
        return
    logger.info("started training job %s", name)


def _stop_if_running(client: Any, name: str) -> None:
    try:
        status = client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    except ClientError as error:
        if _is_not_found(error):
            # The create failed before a job existed; the physical id is not a job name.
            logger.info("no training job %s; nothing to stop", name)
            return
        raise
    if status == "InProgress":
        client.stop_training_job(TrainingJobName=name)
        logger.info("stopping training job %s", name)
    else:
        # Finished jobs cannot be deleted in SageMaker; their record and output stay.
        logger.info("training job %s is %s; nothing to stop", name, status)


def _is_not_found(error: ClientError) -> bool:
    code = error.response["Error"]["Code"]
    message = error.response["Error"].get("Message", "")
    # SageMaker says "Requested resource not found."; some emulators "Could not find ...".
    lowered = message.lower()
    return code in ("ResourceNotFound", "ValidationException") and (
        "not found" in lowered or "could not find" in lowered
    )
