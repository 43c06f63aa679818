"""One real-time SageMaker endpoint that serves every model of the artifact through TFS.

The SageMaker TensorFlow Serving image loads every SavedModel in `model.tar.gz`; a request
picks one with `CustomAttributes="tfs-model-name=<name>"` and gets the default model
(`SAGEMAKER_TFS_DEFAULT_MODEL_NAME`) otherwise. Order of creation: model, then endpoint
configuration (names the model), then endpoint (names the configuration), then the optional
scaling target (names the endpoint's variant).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from aws_cdk import Annotations, Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.settings import Settings

logger = logging.getLogger(__name__)

#: The production variant's name; scaling policies and metrics refer to it, so it never changes.
VARIANT_NAME = "AllTraffic"

# Instance types with local NVMe instance storage reject a volume KMS key (SageMaker encrypts
# that storage itself). Families with a "d" after the generation (m5d, c5d, g4dn, p3dn, p4d)
# and the g5, g6, p5 and trn families, as of 2025-06; an instance type SageMaker adds later
# and is missed here fails at deploy with "KmsKeyId is not supported".
_LOCAL_STORAGE = re.compile(r"^ml\.([a-z]+\d+[a-z]*d[a-z]*|g5|g6[a-z]*|p5[a-z]*|trn\d[a-z]*)\.")


def supports_volume_kms_key(instance_type: str) -> bool:
    """Whether an endpoint of this instance type accepts `KmsKeyId` for its volume."""
    return not _LOCAL_STORAGE.match(instance_type)


@dataclasses.dataclass(frozen=True)
class TfsEndpointProps:
    """The model to serve and how to host it."""

    settings: Settings
    #: The role the model's container runs with (see `infra.execution_role`).
    role: iam.IRole
    #: The TensorFlow Serving inference image URI (see `infra.images`).
    image_uri: str
    #: `s3://.../model.tar.gz` with the SavedModels at its root.
    model_data_url: str
    #: Key for the instances' ML storage volume, used where the instance type allows one.
    #: Default: None (SageMaker-managed encryption).
    encryption_key: kms.IKey | None = None


class TfsEndpoint(Construct):
    """`CfnModel`, `CfnEndpointConfig`, `CfnEndpoint` and optional target-tracking scaling."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: TfsEndpointProps, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = props.settings

        # No names are set: CloudFormation generates them, so that a replacement (a new
        # model after a new training job) never clashes with the resource it replaces.
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=props.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=props.image_uri,
                model_data_url=props.model_data_url,
                environment={"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": settings.default_model_name},
            ),
        )

        kms_key_id = None
        if props.encryption_key is not None:
            if supports_volume_kms_key(settings.inference_instance_type):
                kms_key_id = props.encryption_key.key_arn
            else:
                Annotations.of(self).add_warning_v2(
                    "vae:endpoint-volume-key",
                    f"{settings.inference_instance_type} has local instance storage, which "
                    "SageMaker encrypts itself; the KMS key is not used for its volume.",
                )
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            kms_key_id=kms_key_id,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=self.model.attr_model_name,
                    initial_instance_count=settings.inference_instance_count,
                    instance_type=settings.inference_instance_type,
                    initial_variant_weight=1.0,
                )
            ],
        )

        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )

        self.scalable_target = None
        if settings.autoscaling_max_capacity:
            self.scalable_target = self._autoscaling(settings)

    @property
    def endpoint_name(self) -> str:
        return self.endpoint.attr_endpoint_name

    def _autoscaling(self, settings: Settings) -> autoscaling.ScalableTarget:
        stack = Stack.of(self)
        # SageMaker endpoints scale through their service-linked role, which Application
        # Auto Scaling creates on first use; importing it creates no IAM resource.
        service_linked_role = iam.Role.from_role_arn(
            self,
            "ScalingRole",
            stack.format_arn(
                service="iam",
                region="",
                resource="role",
                resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
            ),
        )
        target = autoscaling.ScalableTarget(
            self,
            "ScalingTarget",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=f"endpoint/{self.endpoint.attr_endpoint_name}/variant/{VARIANT_NAME}",
            min_capacity=settings.autoscaling_min_capacity,
            max_capacity=settings.autoscaling_max_capacity,
            role=service_linked_role,
        )
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=settings.autoscaling_target_invocations,
            predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
        )
        return target
