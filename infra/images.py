"""SageMaker TensorFlow image URIs, resolved offline from the SageMaker SDK's image tables.

The SDK's `image_uri_config/tensorflow.json` lists, per TensorFlow version, the ECR account
that hosts the images in each region. A stack with a concrete region gets a plain string; an
environment-agnostic stack gets a `CfnMapping` of region -> account, looked up at deploy
time, so the template works in every region the table knows and nothing is fetched at synth.

Typical use::

    image_uri(stack, settings, scope="inference", instance_type="ml.m5.large")
"""

from __future__ import annotations

import functools
import json
import logging
import re

from aws_cdk import Aws, CfnMapping, Fn, Stack, Token
from constructs import Construct

from infra.settings import Settings, SettingsError, sagemaker_config_dir

logger = logging.getLogger(__name__)

#: Instance families with a GPU; their images carry the `gpu` tag.
_GPU_FAMILY = re.compile(r"^ml\.(p\d|g\d)")


@functools.cache
def registries(scope: str, version: str) -> dict[str, str]:
    """Region -> ECR account of the `scope` ("training" or "inference") images of `version`."""
    config = json.loads((sagemaker_config_dir() / "tensorflow.json").read_text())[scope]
    full = config.get("version_aliases", {}).get(version, version)
    return dict(sorted(config["versions"][full]["registries"].items()))


def repository(scope: str) -> str:
    """The ECR repository of the SageMaker TensorFlow images of `scope`."""
    return f"tensorflow-{scope}"


def image_tag(settings: Settings, scope: str, instance_type: str) -> str:
    """The tag the SageMaker SDK's `image_uris.retrieve` gives: `2.19-cpu-py312`, `2.19-gpu`."""
    processor = "gpu" if _GPU_FAMILY.match(instance_type) else "cpu"
    tag = f"{settings.tensorflow_version}-{processor}"
    if scope == "training":
        tag += f"-{settings.training_python_version}"
    return tag


def url_suffix(region: str) -> str:
    """The domain of AWS endpoints in `region`'s partition."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def image_uri(
    scope_construct: Construct, settings: Settings, *, scope: str, instance_type: str
) -> str:
    """The image URI for the stack of `scope_construct`: a string, or tokens when agnostic.

    Raises:
        SettingsError: the stack's region has no SageMaker TensorFlow images of that version.
    """
    stack = Stack.of(scope_construct)
    table = registries(scope, settings.tensorflow_version)
    path = f"/{repository(scope)}:{image_tag(settings, scope, instance_type)}"

    if not Token.is_unresolved(stack.region):
        account = _account_in(stack.region, table, settings, scope)
        return f"{account}.dkr.ecr.{stack.region}.{url_suffix(stack.region)}{path}"

    mapping = _mapping(stack, scope, settings.tensorflow_version, table)
    account = mapping.find_in_map(Aws.REGION, "account")
    return Fn.join("", [account, ".dkr.ecr.", Aws.REGION, ".", Aws.URL_SUFFIX, path])


def image_accounts(scope_construct: Construct, settings: Settings, scope: str) -> str:
    """The ECR account of the images in the stack's region (for IAM resource ARNs)."""
    stack = Stack.of(scope_construct)
    table = registries(scope, settings.tensorflow_version)
    if not Token.is_unresolved(stack.region):
        return _account_in(stack.region, table, settings, scope)
    return _mapping(stack, scope, settings.tensorflow_version, table).find_in_map(
        Aws.REGION, "account"
    )


def _account_in(region: str, table: dict[str, str], settings: Settings, scope: str) -> str:
    if region not in table:
        raise SettingsError(
            f"context key 'region': got {region!r}; allowed: a region with SageMaker "
            f"TensorFlow {settings.tensorflow_version} {scope} images: {', '.join(table)}"
        )
    return table[region]


def _mapping(stack: Stack, scope: str, version: str, table: dict[str, str]) -> CfnMapping:
    # One mapping per scope and version, shared by every construct of the stack. The id is a
    # fixed name per scope: the version is in the values, not in the logical id.
    mapping_id = {"training": "TrainingImageAccounts", "inference": "InferenceImageAccounts"}[scope]
    existing = stack.node.try_find_child(mapping_id)
    if existing is not None:
        return existing
    return CfnMapping(
        stack,
        mapping_id,
        mapping={region: {"account": account} for region, account in table.items()},
    )
