"""The whole deployment in one stack: bucket, data and code, role, training job, endpoint.

Order of deployment (CloudFormation follows the references and the explicit dependency):
the bucket, then the data and code uploads and the execution role, then the training job
(which must wait for both uploads), then the model, endpoint configuration and endpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from aws_cdk import Aws, CfnOutput, Fn, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from infra.assets import SOURCE_ARCHIVE, check_staged, directory_digest
from infra.endpoint import TfsEndpoint, TfsEndpointProps
from infra.execution_role import ExecutionRole, ExecutionRoleProps
from infra.images import image_uri
from infra.settings import MODEL_NAMES, Settings
from infra.storage import (
    CODE_PREFIX,
    DATA_PREFIX,
    OUTPUT_PREFIX,
    ArtifactBucket,
    ArtifactBucketProps,
)
from infra.training_job import TrainingJob, TrainingJobProps

logger = logging.getLogger(__name__)

#: Output id of each model's ready-made invoke command (ids are part of the contract).
INVOKE_OUTPUT_IDS = {
    "vae": "InvokeVae",
    "encoder_mean": "InvokeEncoderMean",
    "encoder_lgvar": "InvokeEncoderLgvar",
    "encoder_sampler": "InvokeEncoderSampler",
    "decoder": "InvokeDecoder",
    "anomaly_score": "InvokeAnomalyScore",
}


@dataclasses.dataclass(frozen=True)
class VaeAnomalyStackProps:
    """The settings and the staged files (see `infra.assets.stage_assets`)."""

    settings: Settings
    #: Directory with `train/` and `test/` channel files, uploaded under `data/`.
    data_dir: Path
    #: Directory holding only `sourcedir.tar.gz`, uploaded under `code/`.
    code_dir: Path

    def __post_init__(self) -> None:
        check_staged(self.data_dir, self.code_dir)
        if set(INVOKE_OUTPUT_IDS) != set(MODEL_NAMES):
            raise ValueError(f"INVOKE_OUTPUT_IDS must name exactly the models {MODEL_NAMES}")


class VaeAnomalyStack(Stack):
    """`cdk deploy` brings up everything from the data to a serving endpoint."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: VaeAnomalyStackProps, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = props.settings

        self.encryption_key = None
        if settings.kms_key_arn:
            self.encryption_key = kms.Key.from_key_arn(self, "EncryptionKey", settings.kms_key_arn)

        self.storage = ArtifactBucket(
            self,
            "Storage",
            props=ArtifactBucketProps(
                destroy_on_removal=settings.removal_policy == "destroy",
                encryption_key=self.encryption_key,
            ),
        )
        bucket = self.storage.bucket

        # The channel files and the source archive are copied as they are (same bytes as
        # the local run); `prune` removes files a new version no longer has.
        self.data_upload = s3_deployment.BucketDeployment(
            self,
            "DataUpload",
            destination_bucket=bucket,
            destination_key_prefix=DATA_PREFIX,
            sources=[s3_deployment.Source.asset(str(props.data_dir))],
            memory_limit=512,
        )
        self.code_upload = s3_deployment.BucketDeployment(
            self,
            "CodeUpload",
            destination_bucket=bucket,
            destination_key_prefix=CODE_PREFIX,
            sources=[s3_deployment.Source.asset(str(props.code_dir))],
            memory_limit=512,
        )

        self.execution_role = ExecutionRole(
            self,
            "ExecutionRole",
            props=ExecutionRoleProps(
                bucket=bucket, settings=settings, encryption_key=self.encryption_key
            ),
        )
        role = self.execution_role.role

        self.training_job = TrainingJob(
            self,
            "TrainingJob",
            props=TrainingJobProps(
                settings=settings,
                role=role,
                image_uri=image_uri(
                    self,
                    settings,
                    scope="training",
                    instance_type=settings.training_instance_type,
                ),
                channels={
                    "train": self.storage.s3_uri(f"{DATA_PREFIX}train/"),
                    "test": self.storage.s3_uri(f"{DATA_PREFIX}test/"),
                },
                source_uri=self.storage.s3_uri(f"{CODE_PREFIX}{SOURCE_ARCHIVE}"),
                output_path=self.storage.s3_uri(OUTPUT_PREFIX),
                content_hashes={
                    "data": directory_digest(props.data_dir),
                    "code": directory_digest(props.code_dir),
                },
                encryption_key=self.encryption_key,
            ),
        )
        # The job reads the uploads and runs as the role: it starts only when both the files
        # and the role's policy exist.
        self.training_job.resource.node.add_dependency(
            self.data_upload, self.code_upload, self.execution_role.policy
        )

        self.endpoint = TfsEndpoint(
            self,
            "Endpoint",
            props=TfsEndpointProps(
                settings=settings,
                role=role,
                image_uri=image_uri(
                    self,
                    settings,
                    scope="inference",
                    instance_type=settings.inference_instance_type,
                ),
                model_data_url=self.training_job.model_data_url,
                encryption_key=self.encryption_key,
            ),
        )
        # The model's container reads model.tar.gz with the role's policy.
        self.endpoint.model.node.add_dependency(self.execution_role.policy)

        self._outputs(settings)

    def _outputs(self, settings: Settings) -> None:
        CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "TrainingJobName", value=self.training_job.job_name)
        CfnOutput(self, "ModelDataUrl", value=self.training_job.model_data_url)
        CfnOutput(self, "EndpointName", value=self.endpoint.endpoint_name)

        latent_batch = json.dumps({"instances": [[0.0] * settings.latent_dim]})
        for model in MODEL_NAMES:
            if model == "decoder":
                body = f"--cli-binary-format raw-in-base64-out --body '{latent_batch}'"
            else:
                # A batch of 28x28x1 images is too long for a command line: README, "Calling
                # the models", writes one to images.json.
                body = "--body fileb://images.json"
            CfnOutput(
                self,
                INVOKE_OUTPUT_IDS[model],
                description=f"Calls the {model} model (prints the JSON response)",
                value=Fn.join(
                    "",
                    [
                        "aws sagemaker-runtime invoke-endpoint --region ",
                        Aws.REGION,
                        " --endpoint-name ",
                        self.endpoint.endpoint_name,
                        " --content-type application/json --accept application/json"
                        f" --custom-attributes tfs-model-name={model} {body} /dev/stdout",
                    ],
                ),
            )
