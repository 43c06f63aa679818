"""The main job of `make local`, end to end on a small real MNIST subset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from artifacts.check import check_artifact
from infra.settings import MODEL_NAMES, Settings
from pipeline.mnist import DEFAULT_SOURCE, SPLIT_FILES
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run_main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    build = tmp_path_factory.mktemp("build")
    result = run_main(
        "-c", "epochs=2", "-c", "latentDim=4", "--limit-per-digit", "120", "--build-dir", str(build)
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"build": build, "stdout": result.stdout, "log": result.stderr}


def test_writes_a_checked_artifact_with_every_model(job):
    report = check_artifact(
        job["build"] / "model.tar.gz", default_model="vae", expected_models=MODEL_NAMES
    )

    assert report.ok, report.problems
    assert report.models == {name: [1] for name in MODEL_NAMES}


def test_runs_the_entry_point_as_script_mode_with_cdk_json_hyperparameters(job):
    opt_ml = job["build"] / "opt_ml"
    hyperparameters = json.loads((opt_ml / "input/config/hyperparameters.json").read_text())

    expected = Settings.from_cdk_json(
        ROOT / "cdk.json", {"epochs": "2", "latentDim": "4"}
    ).hyperparameters()
    assert hyperparameters == expected
    assert (opt_ml / "input/data/train/images.npy").is_file()
    assert "--epochs 2" in job["log"] and "--latent-dim 4" in job["log"]


def test_scores_through_the_local_endpoint(job):
    # One access-log line per request of the server, for each model the analysis calls.
    for model in ("anomaly_score", "vae", "encoder_mean", "decoder"):
        assert f"model={model} version=1 status=200" in job["log"]


def test_report_has_metrics_for_both_paths_and_the_figures(job):
    report = job["build"] / "report"
    metrics = json.loads((report / "metrics.json").read_text())

    assert metrics["default_path"] == "deterministic"
    assert metrics["served_flags_match_threshold"] is True
    for path in ("deterministic", "vae"):
        result = metrics["paths"][path]
        (tn, fp), (fn, tp) = result["at_threshold"]["confusion_matrix"]
        assert tn + fp == result["images"]["normal"] == 240
        assert fn + tp == result["images"]["anomalous"] == 120
        assert 0.0 <= result["continuous"]["roc_auc"] <= 1.0
    # The threshold the analysis learns equals the one training stored beside the models.
    assert metrics["paths"]["deterministic"]["threshold"] == pytest.approx(
        metrics["served_threshold"], rel=1e-5
    )
    for figure in ("reconstructions", "latent_pca", "error_histogram", "roc_curve"):
        assert (report / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"report: {report}" in job["stdout"]


def test_refuses_a_bad_context_value_before_any_work(tmp_path):
    result = run_main("-c", "anomalyDigit=4", "--build-dir", str(tmp_path))

    assert result.returncode == 2
    assert "context key 'anomalyDigit': got 4" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_limit_below_one(tmp_path):
    result = run_main("--limit-per-digit", "0", "--build-dir", str(tmp_path))

    assert result.returncode == 2
    assert "--limit-per-digit: got 0, must be 1 or more" in result.stderr


def test_stops_on_a_bad_data_file_with_one_line_and_no_training(tmp_path):
    source = tmp_path / "mnist"
    source.mkdir()
    for name in SPLIT_FILES.values():
        shutil.copyfile(DEFAULT_SOURCE / name, source / name)
    labels = source / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-10])

    checked = run_main("--data-source", str(source), "--build-dir", str(tmp_path / "a"))
    unchecked = run_main(
        "--data-source", str(source), "--no-verify-md5", "--build-dir", str(tmp_path / "b")
    )

    assert checked.returncode == 1
    assert "train-labels-idx1-ubyte: MD5" in checked.stderr
    assert "--no-verify-md5" in checked.stderr
    assert unchecked.returncode == 1
    assert "train-labels-idx1-ubyte: truncated: header says shape (60000,)" in unchecked.stderr
    for result in (checked, unchecked):
        assert "Traceback" not in result.stderr
        assert "epoch" not in result.stderr
