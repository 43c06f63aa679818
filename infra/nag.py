"""The cdk-nag AwsSolutions findings this stack acknowledges, each with its reason.

The tests apply `AwsSolutionsChecks` and require that no finding is left unacknowledged.
Kept out of the stack modules so that `cdk deploy` does not need cdk-nag installed; each
acknowledgement names the finding, the exact permission it covers (`applies_to`) and why
this stack accepts it.

Typical use (tests)::

    acknowledge_findings(stack)
    Aspects.of(stack).add(AwsSolutionsChecks())
"""

from __future__ import annotations

import logging

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

from infra.stack import VaeAnomalyStack

logger = logging.getLogger(__name__)


def _invoke_versions(function_pattern: str) -> RegexAppliesTo:
    return RegexAppliesTo(regex=f"/^Resource::<{function_pattern}\\.Arn>:\\*$/")


def acknowledge_findings(stack: VaeAnomalyStack) -> None:
    """Attach the acknowledgements to the stack's constructs."""
    NagSuppressions.add_resource_suppressions(
        stack.storage.bucket,
        [
            NagPackSuppression(
                id="AwsSolutions-S1",
                reason="The bucket holds public MNIST-derived channels, the training source and "
                "the model; SageMaker's own CloudTrail events record who started jobs. An "
                "access-log bucket would be a second bucket that `cdk destroy` must empty.",
            )
        ],
    )

    NagSuppressions.add_resource_suppressions(
        stack.execution_role.policy,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Object keys under data/, code/ and output/ are written at deploy time "
                "(channel files, sourcedir.tar.gz, <job name>/output/model.tar.gz); the grant "
                "is limited to those three prefixes of this stack's bucket.",
                applies_to=[
                    RegexAppliesTo(regex="/^Resource::<StorageBucket[0-9A-F]+\\.Arn>/data/\\*$/"),
                    RegexAppliesTo(regex="/^Resource::<StorageBucket[0-9A-F]+\\.Arn>/code/\\*$/"),
                    RegexAppliesTo(regex="/^Resource::<StorageBucket[0-9A-F]+\\.Arn>/output/\\*$/"),
                ],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no "
                "resource-level permissions; PutMetricData is limited by a namespace condition "
                "to /aws/sagemaker/*.",
                applies_to=["Resource::*"],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="SageMaker names the log streams after the training job and the endpoint "
                "instances, and the endpoint's log group after the CloudFormation-generated "
                "endpoint name, none of which exist at synth.",
                applies_to=[
                    RegexAppliesTo(
                        regex="/^Resource::arn:<AWS::Partition>:logs:(<AWS::Region>|[a-z0-9-]+):"
                        "(<AWS::AccountId>|[0-9]{12}):log-group:"
                        "\\/aws\\/sagemaker\\/(TrainingJobs:|Endpoints\\/)\\*$/"
                    )
                ],
            ),
        ],
    )

    job = stack.training_job
    NagSuppressions.add_resource_suppressions(
        job,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Training job names end in a hash of the job's inputs computed at deploy "
                "time; the handlers may only touch jobs with this stack's name prefix.",
                applies_to=[
                    RegexAppliesTo(
                        regex="/^Resource::arn:<AWS::Partition>:sagemaker:(<AWS::Region>|[a-z0-9-]+):"
                        "(<AWS::AccountId>|[0-9]{12}):training-job/[a-z0-9-]+-train-\\*$/"
                    )
                ],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="The CDK Provider framework grants lambda:InvokeFunction on its own "
                "handler functions and their versions (`<arn>:*`); no other function is named.",
                applies_to=[
                    _invoke_versions("TrainingJobOnEventFunction[0-9A-F]+"),
                    _invoke_versions("TrainingJobIsCompleteFunction[0-9A-F]+"),
                    _invoke_versions("TrainingJobProviderframeworkisComplete[0-9A-F]+"),
                    _invoke_versions("TrainingJobProviderframeworkonTimeout[0-9A-F]+"),
                ],
            ),
            NagPackSuppression(
                id="AwsSolutions-SF1",
                reason="The Provider's waiter state machine only retries the is-complete "
                "function once a minute; that function logs every poll and the job's status to "
                "its own log group, which is what an operator reads.",
            ),
            NagPackSuppression(
                id="AwsSolutions-SF2",
                reason="The CDK Provider framework does not expose X-Ray tracing for its waiter "
                "state machine; the wait is a single SageMaker status poll with nothing to trace.",
            ),
        ],
        apply_to_children=True,
    )

    # BucketDeployment's handler is a singleton that CDK adds at the stack's root.
    for child in stack.node.children:
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            NagSuppressions.add_resource_suppressions(
                child,
                [
                    NagPackSuppression(
                        id="AwsSolutions-L1",
                        reason="The runtime of CDK's BucketDeployment handler is fixed by "
                        "aws-cdk-lib; it is upgraded with the pinned aws-cdk-lib version.",
                    ),
                    NagPackSuppression(
                        id="AwsSolutions-IAM4",
                        reason="CDK's BucketDeployment handler role comes with "
                        "AWSLambdaBasicExecutionRole (log writing only); the construct offers "
                        "no way to replace it without a custom role for the copy itself.",
                        applies_to=[
                            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                            "AWSLambdaBasicExecutionRole"
                        ],
                    ),
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason="BucketDeployment's grants: read the CDK asset zips (names are "
                        "content hashes) and sync them into this stack's bucket, deleting stale "
                        "keys under data/ and code/ (prune); with kmsKeyArn set, encrypt them "
                        "with that one key (the KMS action groups name no other key).",
                        applies_to=[
                            "Action::s3:GetObject*",
                            "Action::s3:GetBucket*",
                            "Action::s3:List*",
                            "Action::s3:DeleteObject*",
                            "Action::s3:Abort*",
                            "Action::kms:ReEncrypt*",
                            "Action::kms:GenerateDataKey*",
                            RegexAppliesTo(
                                regex="/^Resource::arn:<AWS::Partition>:s3:::cdk-[a-z0-9]+-assets-"
                                "(<AWS::AccountId>|[0-9]{12})-(<AWS::Region>|[a-z0-9-]+)\\/\\*$/"
                            ),
                            RegexAppliesTo(
                                regex="/^Resource::<StorageBucket[0-9A-F]+\\.Arn>\\/\\*$/"
                            ),
                        ],
                    ),
                ],
                apply_to_children=True,
            )
