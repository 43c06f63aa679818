"""The role SageMaker assumes to run the training job and to host the model.

Least privilege, statement by statement: read the data and code prefixes and the model,
write the output prefix, pull the TensorFlow images, write logs and training metrics. No
managed policy is attached. Each wildcard that remains is one an AWS API requires; the
comment above it says which.
"""

from __future__ import annotations

import dataclasses
import logging

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.images import image_accounts, repository
from infra.settings import Settings
from infra.storage import CODE_PREFIX, DATA_PREFIX, OUTPUT_PREFIX

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExecutionRoleProps:
    """What the role may reach."""

    #: The bucket of `infra.storage.ArtifactBucket`; only its three prefixes are granted.
    bucket: s3.IBucket
    #: The settings; they pick the TensorFlow version whose image repositories are granted.
    settings: Settings
    #: The key of the bucket and volumes, when one is used. Default: None (no KMS grants).
    encryption_key: kms.IKey | None = None


class ExecutionRole(Construct):
    """An IAM role for `sagemaker.amazonaws.com` with exactly what the job and model need."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: ExecutionRoleProps, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        bucket = props.bucket
        partition, region, account = Aws.PARTITION, Stack.of(self).region, Stack.of(self).account
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker execution role of the VAE training job and endpoint",
        )
        # One named policy rather than the role's default one: the training job and the model
        # depend on it explicitly, because SageMaker checks the role's access on create.
        self.policy = iam.Policy(self, "Policy", roles=[self.role])

        # The job reads its channels and source; the model reads the job's model.tar.gz.
        # Object ARNs under a prefix need the trailing wildcard: keys are not known at synth.
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="ReadDataCodeAndModel",
                actions=["s3:GetObject"],
                resources=[
                    bucket.arn_for_objects(f"{DATA_PREFIX}*"),
                    bucket.arn_for_objects(f"{CODE_PREFIX}*"),
                    bucket.arn_for_objects(f"{OUTPUT_PREFIX}*"),
                ],
            )
        )
        # Channels of type S3Prefix are listed before they are downloaded; the condition keeps
        # the listing to the three prefixes.
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="ListOwnPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [f"{DATA_PREFIX}*", f"{CODE_PREFIX}*", f"{OUTPUT_PREFIX}*"]
                    }
                },
            )
        )
        # The job uploads model.tar.gz under a prefix named after the job (unknown at synth).
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="WriteJobOutput",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{OUTPUT_PREFIX}*")],
            )
        )

        # Pulling the AWS Deep Learning Container images, named by account and repository.
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="PullTensorFlowImages",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[
                    f"arn:{partition}:ecr:{region}:{image_accounts(self, props.settings, scope)}"
                    f":repository/{repository(scope)}"
                    for scope in ("training", "inference")
                ],
            )
        )
        # ecr:GetAuthorizationToken has no resource-level permissions: "*" is the only form.
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]
            )
        )

        # Log streams are named after the job or endpoint instance, which are unknown at synth.
        log_groups = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker"
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="WriteLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                resources=[
                    f"{log_groups}/TrainingJobs:*",
                    f"{log_groups}/Endpoints/*",
                ],
            )
        )
        # cloudwatch:PutMetricData has no resource-level permissions; the namespace condition
        # limits it to SageMaker's own namespaces.
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="PutTrainingMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )

        if props.encryption_key is not None:
            self.policy.add_statements(
                iam.PolicyStatement(
                    sid="UseEncryptionKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant"],
                    resources=[props.encryption_key.key_arn],
                )
            )
