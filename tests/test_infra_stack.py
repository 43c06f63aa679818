"""The synthesized stack: exact properties, IAM statements, cdk-nag, cfn-lint, determinism.

The template is built once per module from tiny staged files (see `tests.infra_fixtures`);
the real app with real channels is synthesized through the CLI in `test_infra_app.py`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import Aspects
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from infra.endpoint import VARIANT_NAME, supports_volume_kms_key
from infra.images import image_tag, registries, url_suffix
from infra.nag import acknowledge_findings
from infra.settings import MODEL_NAMES, Settings, SettingsError
from infra.stack import INVOKE_OUTPUT_IDS
from tests.infra_fixtures import settings_from_cdk_json, stage_fake_assets, synth_stack

ACCOUNT, REGION = "123456789012", "eu-west-1"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> tuple[Path, Path]:
    return stage_fake_assets(tmp_path_factory.mktemp("assets"))


@pytest.fixture(scope="module")
def settings():
    return settings_from_cdk_json()


@pytest.fixture(scope="module")
def stack(assets, settings):
    """The environment-agnostic stack, checked by cdk-nag's AwsSolutions pack."""
    stack = synth_stack(assets, settings)
    acknowledge_findings(stack)
    Aspects.of(stack).add(AwsSolutionsChecks())
    return stack


@pytest.fixture(scope="module")
def template(stack) -> Template:
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template.to_json()["Resources"]


@pytest.fixture(scope="module")
def env_stack(assets, settings):
    """The same stack with an explicit account and region, a KMS key and autoscaling on."""
    custom = dataclasses.replace(
        settings,
        kms_key_arn=KMS_KEY,
        autoscaling_max_capacity=3,
        removal_policy="retain",
        account=ACCOUNT,
        region=REGION,
    )
    stack = synth_stack(assets, custom, env=cdk.Environment(account=ACCOUNT, region=REGION))
    acknowledge_findings(stack)
    Aspects.of(stack).add(AwsSolutionsChecks())
    return stack


@pytest.fixture(scope="module")
def env_template(env_stack) -> Template:
    return Template.from_stack(env_stack)


def _one(resources: dict, resource_type: str) -> dict:
    found = [r for r in resources.values() if r["Type"] == resource_type]
    assert len(found) == 1, f"{len(found)} resources of type {resource_type}"
    return found[0]


def _logical_id(resources: dict, resource_type: str) -> str:
    return next(k for k, r in resources.items() if r["Type"] == resource_type)


# ------------------------------------------------------------------------------ bucket


def test_bucket_is_private_encrypted_and_tiers_job_output(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": {
                "Rules": [
                    {
                        "Id": "AbortIncompleteUploads",
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                        "Status": "Enabled",
                    },
                    {
                        "Id": "TierJobOutput",
                        "Prefix": "output/",
                        "Transitions": [
                            {"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": 30}
                        ],
                        "Status": "Enabled",
                    },
                ]
            },
        },
    )


def test_bucket_refuses_plain_http(template):
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_destroy_removal_policy_empties_and_deletes_the_bucket(template):
    template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Delete"})
    template.resource_count_is("Custom::S3AutoDeleteObjects", 1)


def test_retain_removal_policy_keeps_the_bucket_and_its_objects(env_template):
    env_template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Retain"})
    env_template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_kms_key_encrypts_the_bucket_when_given(env_template):
    env_template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {
                            "KMSMasterKeyID": KMS_KEY,
                            "SSEAlgorithm": "aws:kms",
                        },
                    }
                ]
            }
        },
    )


# ------------------------------------------------------------------------------ uploads


def test_data_and_code_are_uploaded_under_their_prefixes(resources):
    uploads = {
        r["Properties"]["DestinationBucketKeyPrefix"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "Custom::CDKBucketDeployment"
    }

    assert sorted(uploads) == ["code/", "data/"]
    assert all(len(p["SourceObjectKeys"]) == 1 for p in uploads.values())
    assert all(p["Prune"] is True for p in uploads.values())


# ------------------------------------------------------------------------------ role


def test_execution_role_trusts_only_sagemaker_and_has_no_managed_policy(resources):
    role = next(
        r
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "sagemaker.amazonaws.com"}
    )

    assert "ManagedPolicyArns" not in role["Properties"]
    assert not any(
        "FullAccess" in json.dumps(r["Properties"].get("ManagedPolicyArns", []))
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Role"
    )


def _bucket_arn_join(bucket_id: str, suffix: str) -> dict:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, suffix]]}


def test_execution_role_policy_statements_are_exact(resources):
    bucket = _logical_id(resources, "AWS::S3::Bucket")
    policy = next(r for k, r in resources.items() if k.startswith("ExecutionRolePolicy"))[
        "Properties"
    ]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in policy}

    assert sorted(by_sid) == [
        "EcrLogin",
        "ListOwnPrefixes",
        "PullTensorFlowImages",
        "PutTrainingMetrics",
        "ReadDataCodeAndModel",
        "WriteJobOutput",
        "WriteLogs",
    ]
    assert by_sid["ReadDataCodeAndModel"]["Action"] == "s3:GetObject"
    assert by_sid["ReadDataCodeAndModel"]["Resource"] == [
        _bucket_arn_join(bucket, "/data/*"),
        _bucket_arn_join(bucket, "/code/*"),
        _bucket_arn_join(bucket, "/output/*"),
    ]
    assert by_sid["ListOwnPrefixes"] == {
        "Sid": "ListOwnPrefixes",
        "Action": "s3:ListBucket",
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [bucket, "Arn"]},
        "Condition": {"StringLike": {"s3:prefix": ["data/*", "code/*", "output/*"]}},
    }
    assert by_sid["WriteJobOutput"]["Action"] == ["s3:PutObject", "s3:AbortMultipartUpload"]
    assert by_sid["WriteJobOutput"]["Resource"] == _bucket_arn_join(bucket, "/output/*")
    # The two "*" resources are the APIs without resource-level permissions.
    assert by_sid["EcrLogin"]["Action"] == "ecr:GetAuthorizationToken"
    assert by_sid["PutTrainingMetrics"]["Condition"] == {
        "StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}
    }
    star = sorted(s["Sid"] for s in policy if s["Resource"] == "*")
    assert star == ["EcrLogin", "PutTrainingMetrics"]


def test_execution_role_pulls_only_the_tensorflow_repositories(env_template):
    statement = next(
        s
        for r in env_template.find_resources("AWS::IAM::Policy").values()
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "PullTensorFlowImages"
    )
    account = registries("training", "2.19")[REGION]

    assert statement["Resource"] == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    f":ecr:{REGION}:{account}:repository/tensorflow-training",
                ],
            ]
        },
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    f":ecr:{REGION}:{account}:repository/tensorflow-inference",
                ],
            ]
        },
    ]


def test_execution_role_may_use_the_given_kms_key(env_template):
    statements = [
        s
        for r in env_template.find_resources("AWS::IAM::Policy").values()
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "UseEncryptionKey"
    ]

    assert statements == [
        {
            "Sid": "UseEncryptionKey",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant"],
            "Effect": "Allow",
            "Resource": KMS_KEY,
        }
    ]


def test_no_policy_grants_a_wildcard_action_or_unexplained_star(resources):
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            # BucketDeployment's own grants use CDK's action groups (s3:GetObject* ...);
            # they are acknowledged in infra/nag.py. Nothing anywhere gets "s3:*" or "*".
            assert not any(a in ("*", "s3:*", "ecr:*", "sagemaker:*") for a in actions), logical_id
            if statement["Resource"] == "*":
                assert actions in (["ecr:GetAuthorizationToken"], ["cloudwatch:PutMetricData"]), (
                    logical_id
                )


# ------------------------------------------------------------------------------ training


def test_training_job_runs_script_mode_with_the_local_hyperparameters(resources, settings):
    job = _one(resources, "Custom::SageMakerTrainingJob")["Properties"]
    sent = {
        name: json.loads(value)
        for name, value in job["HyperParameters"].items()
        if isinstance(value, str)
    }

    # The same hyperparameters the local main job passes to training/train.py.
    assert {k: v for k, v in sent.items() if not k.startswith("sagemaker_")} == (
        settings.hyperparameters()
    )
    assert sent["sagemaker_program"] == "train.py"
    bucket = _logical_id(resources, "AWS::S3::Bucket")
    assert job["HyperParameters"]["sagemaker_submit_directory"] == {
        "Fn::Join": ["", ['"s3://', {"Ref": bucket}, '/code/sourcedir.tar.gz"']]
    }


def test_training_job_properties_are_exact(resources, settings):
    job = _one(resources, "Custom::SageMakerTrainingJob")
    properties = job["Properties"]
    bucket = _logical_id(resources, "AWS::S3::Bucket")

    def s3(key: str) -> dict:
        return {"Fn::Join": ["", ["s3://", {"Ref": bucket}, key]]}

    assert properties["JobNamePrefix"] == "vaeanomalydetection-train"
    assert properties["InstanceType"] == settings.training_instance_type == "ml.m5.xlarge"
    assert properties["InstanceCount"] == "1"
    assert properties["VolumeSizeInGB"] == "30"
    assert properties["VolumeKmsKeyId"] == ""
    assert properties["MaxRuntimeInSeconds"] == "3000"
    assert properties["OutputPath"] == s3("/output/")
    assert properties["Channels"] == {"train": s3("/data/train/"), "test": s3("/data/test/")}
    assert sorted(properties["ContentHashes"]) == ["code", "data"]
    assert properties["ImageUri"] == {
        "Fn::Join": [
            "",
            [
                {"Fn::FindInMap": ["TrainingImageAccounts", {"Ref": "AWS::Region"}, "account"]},
                ".dkr.ecr.",
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                "/tensorflow-training:2.19-cpu-py312",
            ],
        ]
    }
    # The job starts only once the data, the code and the role's policy are in place.
    assert {d[:-8] for d in job["DependsOn"]} >= {
        "DataUploadCustomResource512MiB",
        "CodeUploadCustomResource512MiB",
        "ExecutionRolePolicy",
    }


def test_training_job_handlers_are_python_functions_with_timeouts(template):
    template.resource_properties_count_is(
        "AWS::Lambda::Function",
        {"Runtime": "python3.14", "Timeout": 60, "Handler": Match.string_like_regexp("^index\\.")},
        2,
    )


def test_waiter_polls_every_minute_for_at_most_an_hour(resources):
    machine = _one(resources, "AWS::StepFunctions::StateMachine")
    definition = "".join(
        part
        for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        if isinstance(part, str)
    )

    assert '"IntervalSeconds":60,"MaxAttempts":60,"BackoffRate":1' in definition


def test_handler_may_touch_only_this_stacks_training_jobs(env_template):
    statements = [
        s
        for r in env_template.find_resources("AWS::IAM::Policy").values()
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if "sagemaker:CreateTrainingJob" in s["Action"]
    ]

    assert statements == [
        {
            "Action": [
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
            ],
            "Effect": "Allow",
            "Resource": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        f":sagemaker:{REGION}:{ACCOUNT}:training-job/vaeanomalydetection-train-*",
                    ],
                ]
            },
        }
    ]


# ------------------------------------------------------------------------------ endpoint


def test_model_serves_the_training_output_with_the_default_model(resources, settings):
    model = _one(resources, "AWS::SageMaker::Model")["Properties"]
    job = _logical_id(resources, "Custom::SageMakerTrainingJob")

    assert model["PrimaryContainer"]["ModelDataUrl"] == {"Fn::GetAtt": [job, "ModelDataUrl"]}
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_TFS_DEFAULT_MODEL_NAME": settings.default_model_name
    }
    assert model["PrimaryContainer"]["Image"]["Fn::Join"][1][-1] == (
        "/tensorflow-inference:2.19-cpu"
    )
    assert "ModelName" not in model


def test_endpoint_config_has_a_stable_variant_from_context(template, resources):
    model = _logical_id(resources, "AWS::SageMaker::Model")
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                {
                    "VariantName": VARIANT_NAME,
                    "ModelName": {"Fn::GetAtt": [model, "ModelName"]},
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 1,
                }
            ],
            "KmsKeyId": Match.absent(),
        },
    )
    config = _logical_id(resources, "AWS::SageMaker::EndpointConfig")
    template.has_resource_properties(
        "AWS::SageMaker::Endpoint",
        {"EndpointConfigName": {"Fn::GetAtt": [config, "EndpointConfigName"]}},
    )


def test_endpoint_volume_uses_the_kms_key_where_allowed(env_template):
    env_template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"KmsKeyId": KMS_KEY})


@pytest.mark.parametrize(
    ("instance_type", "allowed"),
    [
        ("ml.m5.large", True),
        ("ml.c5.xlarge", True),
        ("ml.m5d.large", False),
        ("ml.g4dn.xlarge", False),
        ("ml.g5.xlarge", False),
        ("ml.p4d.24xlarge", False),
    ],
)
def test_volume_key_is_skipped_for_instances_with_local_storage(instance_type, allowed):
    assert supports_volume_kms_key(instance_type) is allowed


def test_autoscaling_is_off_by_default(template):
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)


def test_autoscaling_tracks_invocations_per_instance(env_template):
    env_template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": 1,
            "MaxCapacity": 3,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ServiceNamespace": "sagemaker",
            "RoleARN": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        f":iam::{ACCOUNT}:role/aws-service-role/"
                        "sagemaker.application-autoscaling.amazonaws.com/"
                        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                    ],
                ]
            },
        },
    )
    env_template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "TargetValue": 1000,
            },
        },
    )


# ------------------------------------------------------------------------------ outputs


def test_outputs_name_bucket_job_model_and_endpoint(template, resources):
    outputs = template.to_json()["Outputs"]
    bucket = _logical_id(resources, "AWS::S3::Bucket")
    job = _logical_id(resources, "Custom::SageMakerTrainingJob")
    endpoint = _logical_id(resources, "AWS::SageMaker::Endpoint")

    assert outputs["BucketName"] == {"Value": {"Ref": bucket}}
    assert outputs["TrainingJobName"] == {"Value": {"Fn::GetAtt": [job, "TrainingJobName"]}}
    assert outputs["ModelDataUrl"] == {"Value": {"Fn::GetAtt": [job, "ModelDataUrl"]}}
    assert outputs["EndpointName"] == {"Value": {"Fn::GetAtt": [endpoint, "EndpointName"]}}


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_each_model_has_a_ready_invoke_command(template, resources, model, settings):
    output = template.to_json()["Outputs"][INVOKE_OUTPUT_IDS[model]]
    endpoint = _logical_id(resources, "AWS::SageMaker::Endpoint")
    parts = output["Value"]["Fn::Join"][1]

    assert parts[:4] == [
        "aws sagemaker-runtime invoke-endpoint --region ",
        {"Ref": "AWS::Region"},
        " --endpoint-name ",
        {"Fn::GetAtt": [endpoint, "EndpointName"]},
    ]
    assert f"--custom-attributes tfs-model-name={model} " in parts[4]
    assert parts[4].endswith(" /dev/stdout")
    if model == "decoder":
        body = parts[4].split("--body '")[1].split("'")[0]
        assert json.loads(body) == {"instances": [[0.0] * settings.latent_dim]}
    else:
        assert "--body fileb://images.json" in parts[4]


# ------------------------------------------------------------------------------ images


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"])
def test_image_uris_match_the_sagemaker_sdk(region, settings):
    from sagemaker import image_uris

    for scope, instance_type in (("training", "ml.m5.xlarge"), ("inference", "ml.g5.xlarge")):
        ours = (
            f"{registries(scope, '2.19')[region]}.dkr.ecr.{region}.{url_suffix(region)}"
            f"/tensorflow-{scope}:{image_tag(settings, scope, instance_type)}"
        )
        sdk = image_uris.retrieve(
            "tensorflow",
            region=region,
            version=settings.tensorflow_version,
            image_scope=scope,
            instance_type=instance_type,
            py_version=settings.training_python_version if scope == "training" else None,
        )
        assert ours == sdk


def test_explicit_region_gets_a_plain_image_uri(env_template):
    model = next(iter(env_template.find_resources("AWS::SageMaker::Model").values()))
    account = registries("inference", "2.19")[REGION]

    assert model["Properties"]["PrimaryContainer"]["Image"] == (
        f"{account}.dkr.ecr.{REGION}.amazonaws.com/tensorflow-inference:2.19-cpu"
    )
    assert "Mappings" not in env_template.to_json()


def test_agnostic_stack_maps_every_region_of_the_sdk_table(template):
    mappings = template.to_json()["Mappings"]

    assert mappings["InferenceImageAccounts"] == {
        region: {"account": account} for region, account in registries("inference", "2.19").items()
    }


# ------------------------------------------------------------------------------ checks


@pytest.mark.parametrize("which", ["stack", "env_stack"])
def test_cdk_nag_leaves_no_unacknowledged_finding(request, which):
    stack = request.getfixturevalue(which)
    Template.from_stack(stack)  # runs the aspects
    annotations = Annotations.from_stack(stack)
    findings = [
        f"{m.id}: {m.entry.data}"
        for find in (annotations.find_error, annotations.find_warning)
        for m in find("*", Match.string_like_regexp("AwsSolutions-.*"))
    ]

    assert findings == []


# W3005 (a DependsOn already implied by a GetAtt): CDK itself makes every Lambda function
# depend on its role and the waiter state machine on its role while referencing them.
CFN_LINT_IGNORED = ("W3005",)


@pytest.mark.parametrize("which", ["template", "env_template"])
def test_cfn_lint_finds_no_error_or_warning(request, which, tmp_path):
    from cfnlint.api import ManualArgs, lint_file

    template_file = tmp_path / "template.json"
    template_file.write_text(json.dumps(request.getfixturevalue(which).to_json()))
    matches = lint_file(template_file, config=ManualArgs(ignore_checks=list(CFN_LINT_IGNORED)))

    assert [f"{m.rule.id} {m.message}" for m in matches] == []


# ------------------------------------------------------------------------------ determinism


def test_two_synths_give_identical_templates(assets, settings):
    first = Template.from_stack(synth_stack(assets, settings)).to_json()
    second = Template.from_stack(synth_stack(assets, settings)).to_json()

    assert first == second


def test_two_synths_with_account_and_region_give_identical_templates(assets, settings):
    env = cdk.Environment(account=ACCOUNT, region=REGION)
    first = Template.from_stack(synth_stack(assets, settings, env=env)).to_json()
    second = Template.from_stack(synth_stack(assets, settings, env=env)).to_json()

    assert first == second


def test_new_data_changes_the_training_job_but_nothing_else(tmp_path, settings, resources):
    changed = Template.from_stack(
        synth_stack(stage_fake_assets(tmp_path, marker=b"v2"), settings)
    ).to_json()["Resources"]
    job_id = _logical_id(resources, "Custom::SageMakerTrainingJob")

    assert (
        changed[job_id]["Properties"]["ContentHashes"]["data"]
        != (resources[job_id]["Properties"]["ContentHashes"]["data"])
    )
    assert (
        changed[job_id]["Properties"]["ContentHashes"]["code"]
        == (resources[job_id]["Properties"]["ContentHashes"]["code"])
    )


# ------------------------------------------------------------------------------ validation


def test_fails_when_the_region_has_no_tensorflow_images(assets, settings):
    with pytest.raises(SettingsError, match=r"'region': got 'xx-nowhere-1'; allowed: .*us-east-1"):
        synth_stack(assets, settings, env=cdk.Environment(account=ACCOUNT, region="xx-nowhere-1"))


def test_fails_when_a_channel_file_is_missing(tmp_path, settings):
    data_dir, code_dir = stage_fake_assets(tmp_path)
    (data_dir / "test" / "labels.npy").unlink()

    with pytest.raises(FileNotFoundError, match=r"test/labels\.npy is missing"):
        synth_stack((data_dir, code_dir), settings)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("inferenceInstanceType", "ml.nope.large", r"'inferenceInstanceType': got 'ml.nope.large'"),
        ("trainingInstanceCount", 0, r"'trainingInstanceCount': got 0; allowed: an integer >= 1"),
        ("inferenceInstanceCount", 0, r"'inferenceInstanceCount': got 0; allowed: an integer >= 1"),
        ("normalDigits", [1, 12], r"'normalDigits': got \[1, 12\]; allowed: digits 0-9"),
        ("anomalyDigit", 4, r"'anomalyDigit': got 4; allowed: a digit 0-9 not among normalDigits"),
        ("tensorflowVersion", "2.3", r"'tensorflowVersion': got '2.3'; allowed: .*2\.19"),
        ("defaultModelName", "encoder", r"'defaultModelName': got 'encoder'; allowed: one of"),
        ("stackName", "1stack", r"'stackName': got '1stack'; allowed: 1 to 128 letters"),
        ("account", "12345", r"'account': got '12345'; allowed: empty .* 12-digit"),
        ("region", "Europe", r"'region': got 'Europe'; allowed: empty .* us-east-1"),
    ],
)
def test_fails_at_synth_when_a_context_value_is_not_allowed(key, value, message):
    context = {**settings_from_cdk_json().as_context(), key: value}

    with pytest.raises(SettingsError, match=message):
        Settings.from_context(context.get)


def test_warns_at_synth_when_the_endpoint_instance_cannot_use_the_kms_key(assets, settings):
    custom = dataclasses.replace(
        settings, kms_key_arn=KMS_KEY, inference_instance_type="ml.g5.xlarge"
    )
    stack = synth_stack(assets, custom)
    template = Template.from_stack(stack)

    template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"KmsKeyId": Match.absent()})
    Annotations.from_stack(stack).has_warning(
        "/VaeAnomalyDetection/Endpoint",
        Match.string_like_regexp("ml.g5.xlarge has local instance storage"),
    )


def test_training_job_waits_at_most_one_hour():
    from aws_cdk import Duration

    from infra.training_job import TrainingJobProps

    with pytest.raises(ValueError, match=r"total_timeout: got 2 hours; .* at most one hour"):
        TrainingJobProps(
            settings=settings_from_cdk_json(),
            role=None,
            image_uri="image",
            channels={"train": "s3://b/data/train/"},
            source_uri="s3://b/code/sourcedir.tar.gz",
            output_path="s3://b/output/",
            content_hashes={},
            total_timeout=Duration.hours(2),
        )
