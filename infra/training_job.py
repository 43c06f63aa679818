"""A SageMaker training job as a CloudFormation custom resource.

The resource runs on the CDK Provider framework with two plain Python Lambda functions from
`infra/handlers/training_job/` (no bundling, no Docker): `on_event` starts the job and
`is_complete` polls it every `query_interval` until it completes. The handler module
explains the naming and update rules.

Timeouts: each handler invocation is short (`HANDLER_TIMEOUT`); the whole wait is capped by
the Provider's `total_timeout`, at most one hour, which is also what CloudFormation allows a
custom resource. The job's own `MaxRuntimeInSeconds` must therefore leave room for the
instance start-up and the model upload (`infra.settings` allows at most 3300 s). A longer
job has to run outside CloudFormation; the README says how.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.settings import Settings

logger = logging.getLogger(__name__)

HANDLER_DIR = Path(__file__).parent / "handlers" / "training_job"
HANDLER_RUNTIME = lambda_.Runtime.PYTHON_3_14
HANDLER_TIMEOUT = Duration.minutes(1)

#: SageMaker writes `model.tar.gz` with the SavedModels at its root; this prefix holds it.
OUTPUT_KEY_PREFIX = "output/"


@dataclasses.dataclass(frozen=True)
class TrainingJobProps:
    """Everything the training job reads; a change to any of it starts a new job."""

    settings: Settings
    #: The role SageMaker assumes (see `infra.execution_role`).
    role: iam.IRole
    #: The TensorFlow training image URI (see `infra.images`).
    image_uri: str
    #: Channel name -> `s3://` prefix URI, e.g. {"train": "s3://b/data/train/"}.
    channels: dict[str, str]
    #: `s3://` URI of the packed source directory (a gzipped tar).
    source_uri: str
    #: `s3://` prefix under which SageMaker writes `<job>/output/model.tar.gz`.
    output_path: str
    #: Digests of the bytes behind `channels` and `source_uri`: the S3 keys never change, so
    #: without these a new data set or new code would not start a new job.
    content_hashes: dict[str, str]
    #: Entry point inside the source archive. Default: "train.py".
    entry_point: str = "train.py"
    #: Size of the job's ML storage volume. Default: 30 GB.
    volume_size_gb: int = 30
    #: Key for the job's volume and output; SageMaker-managed encryption when None.
    encryption_key: kms.IKey | None = None
    #: How often the job's status is read. Default: one minute.
    query_interval: Duration = dataclasses.field(default_factory=lambda: Duration.minutes(1))
    #: How long the deployment waits for the job. Default and maximum: one hour.
    total_timeout: Duration = dataclasses.field(default_factory=lambda: Duration.hours(1))

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("channels: got none; give at least the 'train' channel")
        if self.volume_size_gb < 1:
            raise ValueError(f"volume_size_gb: got {self.volume_size_gb}; use 1 GB or more")
        if not 0 < self.total_timeout.to_seconds() <= 3600:
            raise ValueError(
                f"total_timeout: got {self.total_timeout.to_human_string()}; a custom resource "
                "waits at most one hour (see the README for longer jobs)"
            )


def job_name_prefix(stack_name: str) -> str:
    """A SageMaker-safe, lower-case job name prefix from the stack name (at most 46 chars)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", stack_name.lower()).strip("-") or "stack"
    return cleaned[:40].rstrip("-") + "-train"


class TrainingJob(Construct):
    """Runs the training job on create and on changed inputs; exposes its model data URL."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: TrainingJobProps, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stack = Stack.of(self)
        settings = props.settings
        prefix = job_name_prefix(stack.stack_name)

        # Each handler has its own log group and role: no managed policy, no log wildcard.
        on_event = HandlerFunction(self, "OnEvent", handler="index.on_event").function
        is_complete = HandlerFunction(self, "IsComplete", handler="index.is_complete").function
        jobs_arn = stack.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{prefix}-*"
        )
        on_event.add_to_role_policy(
            # The job name ends in a hash of the inputs, so the resource is the name prefix.
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                ],
                resources=[jobs_arn],
            )
        )
        on_event.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[props.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        is_complete.add_to_role_policy(
            iam.PolicyStatement(actions=["sagemaker:DescribeTrainingJob"], resources=[jobs_arn])
        )

        # The Provider's own functions log to one group through roles made here, so that
        # they carry no managed policy either (the Provider adds the invoke grants).
        provider_logs = logs.LogGroup(
            self,
            "ProviderLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Two roles, not one: the on-event role starts the waiter state machine, which calls
        # the is-complete function, whose role must not depend on that state machine.
        framework_roles = []
        for role_id in ("ProviderOnEventRole", "ProviderIsCompleteRole"):
            role = iam.Role(self, role_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
            provider_logs.grant_write(role)
            framework_roles.append(role)
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=on_event,
            is_complete_handler=is_complete,
            query_interval=props.query_interval,
            total_timeout=props.total_timeout,
            log_group=provider_logs,
            framework_on_event_role=framework_roles[0],
            framework_complete_and_timeout_role=framework_roles[1],
        )

        hyperparameters = {
            **settings.hyperparameters(),
            "sagemaker_program": props.entry_point,
            "sagemaker_submit_directory": props.source_uri,
            "sagemaker_region": stack.region,
            "sagemaker_container_log_level": "20",
        }
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type="Custom::SageMakerTrainingJob",
            properties={
                "JobNamePrefix": prefix,
                "RoleArn": props.role.role_arn,
                "ImageUri": props.image_uri,
                "InstanceType": settings.training_instance_type,
                "InstanceCount": str(settings.training_instance_count),
                "VolumeSizeInGB": str(props.volume_size_gb),
                "VolumeKmsKeyId": props.encryption_key.key_arn if props.encryption_key else "",
                "MaxRuntimeInSeconds": str(settings.training_max_runtime_seconds),
                "OutputPath": props.output_path,
                "Channels": props.channels,
                # JSON-encoded as the SageMaker SDK sends them; the training toolkit decodes
                # each value before it becomes `--name value` on the entry point's command line.
                "HyperParameters": {
                    name: json.dumps(value) for name, value in hyperparameters.items()
                },
                "ContentHashes": props.content_hashes,
            },
        )

    @property
    def job_name(self) -> str:
        """The training job's name (the custom resource's physical id)."""
        return self.resource.get_att_string("TrainingJobName")

    @property
    def model_data_url(self) -> str:
        """`s3://.../model.tar.gz` written by the job."""
        return self.resource.get_att_string("ModelDataUrl")


class HandlerFunction(Construct):
    """One handler of `infra/handlers/training_job/` with its own role and log group."""

    def __init__(self, scope: Construct, construct_id: str, *, handler: str) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        # Streams inside the function's own log group only (`log_group_arn` ends in `:*`).
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=HANDLER_RUNTIME,
            # Caches left by the handler tests must not change the asset (and the template).
            code=lambda_.Code.from_asset(str(HANDLER_DIR), exclude=["__pycache__", "*.pyc"]),
            handler=handler,
            timeout=HANDLER_TIMEOUT,
            memory_size=256,
            role=self.role,
            log_group=self.log_group,
        )
