"""One typed source of settings for the CDK stack and the local main job.

Both read the same `cdk.json` context, so the hyperparameters a deployed training job receives
are exactly the ones `make local` trains with. Every value is validated here, once, and a bad
one raises `SettingsError` naming the context key, the value received and what is allowed.

Typical use::

    settings = Settings.from_mapping(app.node.get_all_context())  # in the CDK app
    settings = Settings.from_cdk_json("cdk.json")                 # in the local job
    settings.hyperparameters()  # {"epochs": "10", "batch-size": "50", ...}
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The SavedModels the training job exports, in the order the README lists them.
MODEL_NAMES = (
    "vae",
    "encoder_mean",
    "encoder_lgvar",
    "encoder_sampler",
    "decoder",
    "anomaly_score",
)

REMOVAL_POLICIES = ("destroy", "retain")

#: The largest seed numpy's generators (and so Keras') accept.
MAX_SEED = 2**32 - 1


class SettingsError(ValueError):
    """A context value that cannot be used; the message names the key, value and fix."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of the deployment and the local job, with its default.

    The context key of each field is its camelCase name (`batch_size` -> `batchSize`).
    """

    # Training hyperparameters (the reference analysis uses these defaults).
    epochs: int = 10
    batch_size: int = 50
    learning_rate: float = 1e-4
    latent_dim: int = 16
    normal_digits: tuple[int, ...] = (1, 4)
    anomaly_digit: int = 5
    seed: int = 42
    # Percentile of the normal training images' reconstruction error used as threshold.
    threshold_percentile: float = 99.0
    # Version directory the SavedModels are written to (`<model>/<version>/`).
    model_version: int = 1

    # Serving.
    default_model_name: str = "vae"
    tensorflow_version: str = "2.19"
    training_python_version: str = "py312"

    # Instances.
    training_instance_type: str = "ml.m5.xlarge"
    training_instance_count: int = 1
    # SageMaker stops the job after this; the custom resource gives up before one hour.
    training_max_runtime_seconds: int = 3000
    inference_instance_type: str = "ml.m5.large"
    inference_instance_count: int = 1

    # Autoscaling of the endpoint variant: off when max capacity is 0.
    autoscaling_min_capacity: int = 1
    autoscaling_max_capacity: int = 0
    autoscaling_target_invocations: int = 1000

    # Deployment: the stack's name, and its account and region (both empty: a stack that
    # deploys to whatever account and region the AWS CLI is configured for).
    stack_name: str = "VaeAnomalyDetection"
    account: str = ""
    region: str = ""

    # Storage: "destroy" empties and deletes the bucket on `cdk destroy`, "retain" keeps it.
    removal_policy: str = "destroy"
    # A customer-managed KMS key for the bucket and endpoint volume; S3-managed when empty.
    kms_key_arn: str = ""

    def __post_init__(self) -> None:
        _validate(self)

    # ----------------------------------------------------------------------------- loading

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> Settings:
        """Build settings from a context getter such as `node.try_get_context`.

        Values given on the command line (`cdk synth -c epochs=5`) arrive as strings and are
        converted to the field's type; a value that does not convert is a `SettingsError`.
        """
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = context_key(field.name)
            raw = get(key)
            if raw is None:
                continue
            values[field.name] = _convert(key, raw, field.default)
        return cls(**values)

    @classmethod
    def from_mapping(cls, context: Mapping[str, Any]) -> Settings:
        """Build settings from the whole context, refusing keys this project does not know.

        A mistyped key (`-c epoch=3`) would otherwise be ignored and the default used. Keys
        that hold a colon or start with `@` belong to the CDK (feature flags, `aws:cdk:...`,
        cached lookups) and pass.
        """
        known = {context_key(field.name) for field in dataclasses.fields(cls)}
        for key in context:
            if key in known or ":" in key or key.startswith("@"):
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(
                f"unknown context key {key!r}{hint}; known keys: {', '.join(sorted(known))}"
            )
        return cls.from_context(context.get)

    @classmethod
    def from_cdk_json(
        cls, path: str | Path = "cdk.json", overrides: Mapping[str, Any] = ()
    ) -> Settings:
        """Read the `context` of a `cdk.json` file, with optional overrides by context key."""
        context = dict(json.loads(Path(path).read_text()).get("context", {}))
        context.update(dict(overrides))
        return cls.from_mapping(context)

    # ----------------------------------------------------------------------------- views

    def hyperparameters(self) -> dict[str, str]:
        """The training job's hyperparameters: flag names of `training/train.py`, as strings.

        SageMaker script mode turns each pair into `--name value` on the entry point's
        command line; the local job passes the same pairs the same way.
        """
        return {
            "epochs": str(self.epochs),
            "batch-size": str(self.batch_size),
            "learning-rate": repr(self.learning_rate),
            "latent-dim": str(self.latent_dim),
            "normal-digits": ",".join(str(d) for d in self.normal_digits),
            "anomaly-digit": str(self.anomaly_digit),
            "seed": str(self.seed),
            "threshold-percentile": repr(self.threshold_percentile),
            "model-version": str(self.model_version),
        }

    def as_context(self) -> dict[str, Any]:
        """The settings as a `cdk.json` context mapping (camelCase keys, JSON values)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[context_key(field.name)] = list(value) if isinstance(value, tuple) else value
        return out


def context_key(field_name: str) -> str:
    """`batch_size` -> `batchSize`."""
    head, *rest = field_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# --------------------------------------------------------------------------------- parsing


def _convert(key: str, raw: Any, default: Any) -> Any:
    """Convert one context value to the type of the field's default."""
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            return {"true": True, "false": False}[str(raw).strip().lower()]
        if isinstance(default, int):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if isinstance(default, float):
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if isinstance(default, tuple):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(int(str(item).strip()) for item in items if str(item).strip() != "")
        return str(raw)
    except (ValueError, TypeError, KeyError):
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(
            type(default), "a comma-separated list of integers"
        )
        raise SettingsError(f"context key {key!r}: {raw!r} is not {kind}") from None


# ------------------------------------------------------------------------------ validation


def _fail(key: str, value: Any, allowed: str) -> None:
    raise SettingsError(f"context key {key!r}: got {value!r}; allowed: {allowed}")


def _validate(s: Settings) -> None:
    for name, low in (
        ("epochs", 1),
        ("batch_size", 1),
        ("latent_dim", 1),
        ("training_instance_count", 1),
        ("inference_instance_count", 1),
        ("autoscaling_min_capacity", 1),
        ("autoscaling_target_invocations", 1),
        ("training_max_runtime_seconds", 60),
        ("model_version", 0),
    ):
        value = getattr(s, name)
        if value < low:
            _fail(context_key(name), value, f"an integer >= {low}")
    if not 0 <= s.seed <= MAX_SEED:
        _fail("seed", s.seed, f"an integer from 0 to {MAX_SEED}")
    if not 0 < s.learning_rate < 1:
        _fail("learningRate", s.learning_rate, "a number between 0 and 1, exclusive")
    if not 0 < s.threshold_percentile < 100:
        _fail(
            "thresholdPercentile", s.threshold_percentile, "a number between 0 and 100, exclusive"
        )
    if s.training_max_runtime_seconds > 3300:
        # The custom resource that waits for the job cannot run past one hour (README).
        _fail("trainingMaxRuntimeSeconds", s.training_max_runtime_seconds, "60 to 3300 seconds")

    if not s.normal_digits:
        _fail("normalDigits", list(s.normal_digits), "one or more digits 0-9")
    for digit in s.normal_digits:
        if not 0 <= digit <= 9:
            _fail("normalDigits", list(s.normal_digits), "digits 0-9")
    if len(set(s.normal_digits)) != len(s.normal_digits):
        _fail("normalDigits", list(s.normal_digits), "each digit once")
    if not 0 <= s.anomaly_digit <= 9:
        _fail("anomalyDigit", s.anomaly_digit, "a digit 0-9")
    if s.anomaly_digit in s.normal_digits:
        _fail(
            "anomalyDigit",
            s.anomaly_digit,
            f"a digit 0-9 not among normalDigits {list(s.normal_digits)}",
        )

    if s.default_model_name not in MODEL_NAMES:
        _fail(
            "defaultModelName",
            s.default_model_name,
            f"one of the artifact's models {list(MODEL_NAMES)}",
        )
    if s.removal_policy not in REMOVAL_POLICIES:
        _fail("removalPolicy", s.removal_policy, " or ".join(REMOVAL_POLICIES))
    if s.kms_key_arn and not re.fullmatch(
        r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", s.kms_key_arn
    ):
        _fail(
            "kmsKeyArn",
            s.kms_key_arn,
            "empty, or a KMS key ARN arn:aws:kms:<region>:<account>:key/<id>",
        )

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", s.stack_name):
        _fail(
            "stackName",
            s.stack_name,
            "1 to 128 letters, digits and hyphens, starting with a letter",
        )
    if s.account and not re.fullmatch(r"\d{12}", s.account):
        _fail("account", s.account, "empty (environment-agnostic) or a 12-digit account id")
    if s.region and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", s.region):
        _fail("region", s.region, "empty (environment-agnostic) or a region such as us-east-1")

    if s.autoscaling_max_capacity and s.autoscaling_max_capacity < s.autoscaling_min_capacity:
        _fail(
            "autoscalingMaxCapacity",
            s.autoscaling_max_capacity,
            f"0 (off) or an integer >= autoscalingMinCapacity ({s.autoscaling_min_capacity})",
        )

    versions = supported_tensorflow_versions()
    if s.tensorflow_version not in versions:
        _fail(
            "tensorflowVersion",
            s.tensorflow_version,
            "a TensorFlow version with SageMaker training and inference images that runs "
            f"Keras 3 (2.16 or later): {', '.join(versions)}",
        )
    python_versions = versions[s.tensorflow_version]
    if s.training_python_version not in python_versions:
        _fail("trainingPythonVersion", s.training_python_version, ", ".join(python_versions))

    types = instance_types()
    if s.training_instance_type not in types["training"]:
        _fail(
            "trainingInstanceType",
            s.training_instance_type,
            "a SageMaker training instance type such as ml.m5.xlarge",
        )
    if s.inference_instance_type not in types["inference"]:
        _fail(
            "inferenceInstanceType",
            s.inference_instance_type,
            "a SageMaker endpoint instance type such as ml.m5.large",
        )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# --------------------------------------------------------------------------- offline tables


@functools.cache
def instance_types() -> dict[str, frozenset[str]]:
    """SageMaker instance types from botocore's bundled API model (no AWS call)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return {
        "training": frozenset(model.shape_for("TrainingInstanceType").enum),
        "inference": frozenset(model.shape_for("ProductionVariantInstanceType").enum),
    }


@functools.cache
def tensorflow_versions() -> dict[str, dict[str, tuple[str, ...]]]:
    """TensorFlow versions with SageMaker images, per scope, from the SageMaker SDK's tables.

    Reads the SDK's bundled `image_uri_config/tensorflow.json` without importing the SDK
    (its import is slow and prints a deprecation notice). Returns, for "training" and
    "inference", a mapping of full version ("2.19") to the Python versions of its images.
    """
    config = json.loads((sagemaker_config_dir() / "tensorflow.json").read_text())
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for scope in ("training", "inference"):
        versions = config[scope]["versions"]
        table = {
            version: tuple(entry.get("py_versions", ())) for version, entry in versions.items()
        }
        # Short versions ("2.19") are aliases of full ones ("2.19.0") in the SDK's tables.
        for alias, full in config[scope].get("version_aliases", {}).items():
            if full in table:
                table.setdefault(alias, table[full])
        out[scope] = table
    return out


def supported_tensorflow_versions() -> dict[str, tuple[str, ...]]:
    """Short TensorFlow versions this project can use -> Python versions of the training image.

    A version qualifies when SageMaker has both a training and an inference image for it and
    it ships Keras 3 (TensorFlow 2.16 and later), which the training script is written for.
    """
    tables = tensorflow_versions()
    return {
        version: tables["training"][version]
        for version in sorted(tables["training"], key=_version_key)
        if version.count(".") == 1
        and _version_key(version) >= (2, 16)
        and version in tables["inference"]
    }


def sagemaker_config_dir() -> Path:
    """The SageMaker SDK's folder of image URI tables."""
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise SettingsError(
            "the SageMaker SDK is not installed; run `make local` or `make test` to set up"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "image_uri_config"
