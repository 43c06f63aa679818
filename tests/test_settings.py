"""The one source of settings: cdk.json context read, converted and checked."""

from __future__ import annotations

import pytest

from infra.settings import Settings, SettingsError
from tests.conftest import ROOT


def test_cdk_json_defaults_are_the_reference_hyperparameters():
    settings = Settings.from_cdk_json(ROOT / "cdk.json")

    assert settings.hyperparameters() == {
        "epochs": "10",
        "batch-size": "50",
        "learning-rate": "0.0001",
        "latent-dim": "16",
        "normal-digits": "1,4",
        "anomaly-digit": "5",
        "seed": "42",
        "threshold-percentile": "99.0",
        "model-version": "1",
    }


def test_command_line_strings_are_converted_to_each_type():
    settings = Settings.from_cdk_json(
        ROOT / "cdk.json",
        {"epochs": "3", "learningRate": "0.001", "normalDigits": "0, 7", "anomalyDigit": "9"},
    )

    assert (settings.epochs, settings.learning_rate) == (3, 0.001)
    assert (settings.normal_digits, settings.anomaly_digit) == ((0, 7), 9)


def test_fails_on_a_mistyped_key_and_suggests_the_known_one():
    with pytest.raises(
        SettingsError, match=r"unknown context key 'epoch' \(did you mean 'epochs'\?\); known keys"
    ):
        Settings.from_cdk_json(ROOT / "cdk.json", {"epoch": "3"})


def test_cdk_own_context_keys_pass():
    context = {
        "@aws-cdk/core:failSynthOnValidationErrors": True,
        "aws:cdk:enable-path-metadata": True,
        "availability-zones:account=123456789012:region=eu-west-1": ["eu-west-1a"],
        "epochs": 4,
    }

    assert Settings.from_mapping(context).epochs == 4


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seed", "-5", r"'seed': got -5; allowed: an integer from 0 to 4294967295"),
        ("seed", str(2**32), r"'seed': got 4294967296; allowed: an integer from 0 to"),
        ("epochs", "abc", r"'epochs': 'abc' is not an integer"),
        ("epochs", "1.5", r"'epochs': '1.5' is not an integer"),
        ("learningRate", "0", r"'learningRate': got 0.0; allowed: a number between 0 and 1"),
        ("normalDigits", "1,1", r"'normalDigits': got \[1, 1\]; allowed: each digit once"),
        ("thresholdPercentile", "100", r"'thresholdPercentile': got 100.0; allowed"),
        ("removalPolicy", "keep", r"'removalPolicy': got 'keep'; allowed: destroy or retain"),
        ("kmsKeyArn", "my-key", r"'kmsKeyArn': got 'my-key'; allowed: empty, or a KMS key ARN"),
        ("trainingMaxRuntimeSeconds", "7200", r"allowed: 60 to 3300 seconds"),
        ("autoscalingMaxCapacity", "1", None),
        ("trainingPythonVersion", "py310", r"'trainingPythonVersion': got 'py310'; allowed: py312"),
    ],
)
def test_fails_on_a_value_that_is_not_allowed(key, value, message):
    overrides = {key: value}
    if message is None:
        # Max below min: min is 1 by default, so max 1 is fine but 0 < min is "off".
        overrides["autoscalingMinCapacity"] = "2"
        message = r"'autoscalingMaxCapacity': got 1; allowed: 0 \(off\) or an integer >= "
    with pytest.raises(SettingsError, match=message):
        Settings.from_cdk_json(ROOT / "cdk.json", overrides)
