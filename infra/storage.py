"""The project's S3 bucket: training data, training code and the training job's output.

Layout (prefixes are the contract between the constructs and the execution role)::

    data/train/images.npy, data/train/labels.npy   training channel
    data/test/images.npy,  data/test/labels.npy    test channel
    code/sourcedir.tar.gz                          the script-mode source
    output/<job name>/output/model.tar.gz          written by the training job
"""

from __future__ import annotations

import dataclasses
import logging

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

logger = logging.getLogger(__name__)

DATA_PREFIX = "data/"
CODE_PREFIX = "code/"
OUTPUT_PREFIX = "output/"


@dataclasses.dataclass(frozen=True)
class ArtifactBucketProps:
    """How the bucket is kept and encrypted."""

    #: `cdk destroy` empties and deletes the bucket when True; keeps it (and its objects) when
    #: False. Default: True, so that a test deployment leaves nothing behind.
    destroy_on_removal: bool = True
    #: Customer-managed key for objects; S3-managed keys (SSE-S3) when None. Default: None.
    encryption_key: kms.IKey | None = None
    #: Old job output moves to S3 Intelligent-Tiering after this many days. Default: 30.
    #: Output is never expired: the endpoint reads its model.tar.gz on every scale-out.
    output_tiering_days: int = 30

    def __post_init__(self) -> None:
        if self.output_tiering_days < 0:
            raise ValueError(
                f"output_tiering_days: got {self.output_tiering_days}; use 0 or more days"
            )


class ArtifactBucket(Construct):
    """A private, TLS-only, encrypted bucket for the data, code and model of the stack."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: ArtifactBucketProps, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if props.encryption_key is None:
            encryption = s3.BucketEncryption.S3_MANAGED
        else:
            encryption = s3.BucketEncryption.KMS

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=encryption,
            encryption_key=props.encryption_key,
            bucket_key_enabled=props.encryption_key is not None,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="AbortIncompleteUploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="TierJobOutput",
                    prefix=OUTPUT_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                            transition_after=Duration.days(props.output_tiering_days),
                        )
                    ],
                ),
            ],
            removal_policy=(
                RemovalPolicy.DESTROY if props.destroy_on_removal else RemovalPolicy.RETAIN
            ),
            # Emptying is done by CDK's auto-delete custom resource before the bucket goes.
            auto_delete_objects=props.destroy_on_removal,
        )

    def s3_uri(self, key: str) -> str:
        """`s3://<bucket>/<key>` (a token until deploy time)."""
        return self.bucket.s3_url_for_object(key)
