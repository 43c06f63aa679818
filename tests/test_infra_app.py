"""The real app through the pinned CDK CLI: `npx --no-install cdk synth`, as CI runs it.

Two subprocesses in all (each takes seconds): one synth that must succeed, with the real
data channels and source archive, and one with a bad context value that must fail with a
message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.infra_fixtures import PROJECT_DIR

pytestmark = pytest.mark.slow

CDK_ENV = {
    **os.environ,
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    # No credentials here: stop the CLI and SDK from probing the instance metadata service.
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _cdk_synth(output_dir: Path, *context: str) -> subprocess.CompletedProcess:
    if shutil.which("npx") is None or not (PROJECT_DIR / "node_modules" / "aws-cdk").is_dir():
        pytest.skip("the pinned CDK CLI is not installed; run `make setup`")
    args = ["npx", "--no-install", "cdk", "synth", "--no-notices", "--quiet"]
    args += ["--output", str(output_dir)]
    for item in context:
        args += ["--context", item]
    return subprocess.run(
        args, cwd=PROJECT_DIR, env=CDK_ENV, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> dict:
    output_dir = tmp_path_factory.mktemp("cdk.out")
    result = _cdk_synth(output_dir)
    assert result.returncode == 0, result.stderr
    return json.loads((output_dir / "VaeAnomalyDetection.template.json").read_text())


def test_cdk_synth_of_the_app_trains_with_the_local_hyperparameters(synthesized):
    job = next(
        r["Properties"]
        for r in synthesized["Resources"].values()
        if r["Type"] == "Custom::SageMakerTrainingJob"
    )
    sent = {
        name: json.loads(value)
        for name, value in job["HyperParameters"].items()
        if not name.startswith("sagemaker_")
    }

    # What `make local` (pipeline.main) passes to training/train.py.
    assert sent == Settings.from_cdk_json(PROJECT_DIR / "cdk.json").hyperparameters()


def test_cdk_synth_uploads_the_real_channels_and_source(synthesized):
    uploads = [
        r["Properties"]["DestinationBucketKeyPrefix"]
        for r in synthesized["Resources"].values()
        if r["Type"] == "Custom::CDKBucketDeployment"
    ]

    assert sorted(uploads) == ["code/", "data/"]
    assert (PROJECT_DIR / "build" / "code" / "sourcedir.tar.gz").is_file()
    assert (PROJECT_DIR / "build" / "data" / "train" / "images.npy").is_file()


def test_cdk_synth_fails_on_an_unknown_instance_type(tmp_path):
    result = _cdk_synth(tmp_path, "trainingInstanceType=ml.bogus.large")

    assert result.returncode != 0
    assert (
        "context key 'trainingInstanceType': got 'ml.bogus.large'; "
        "allowed: a SageMaker training instance type such as ml.m5.xlarge"
    ) in result.stderr
