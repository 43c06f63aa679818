"""The training source folder runs unchanged in the SageMaker TensorFlow image.

The image has TensorFlow (with Keras) and numpy and nothing of this project: script mode
unpacks `sourcedir.tar.gz` into `/opt/ml/code` and runs `python train.py` there.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from artifacts.pack import pack_directory, unpack_archive
from tests.conftest import TRAINING_DIR

ALLOWED_THIRD_PARTY = {"tensorflow", "keras", "numpy"}


def imported_top_level_names(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_source_folder_imports_only_the_standard_library_tensorflow_and_numpy():
    own_modules = {path.stem for path in TRAINING_DIR.glob("*.py")}

    for path in sorted(TRAINING_DIR.glob("*.py")):
        foreign = imported_top_level_names(path) - sys.stdlib_module_names - own_modules
        assert foreign <= ALLOWED_THIRD_PARTY, f"{path.name} imports {foreign}"


@pytest.mark.slow
def test_packed_source_runs_as_script_mode_runs_it(tmp_path, small_channels):
    code = unpack_archive(
        pack_directory(TRAINING_DIR, tmp_path / "sourcedir.tar.gz"), tmp_path / "opt_ml_code"
    )
    # Nothing of the project is importable: no PYTHONPATH, the working folder is the code.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_CHANNEL_TRAIN=str(small_channels / "train"),
        SM_CHANNEL_TEST=str(small_channels / "test"),
        SM_OUTPUT_DATA_DIR=str(tmp_path / "output"),
    )

    result = subprocess.run(
        [sys.executable, "-s", "train.py", "--epochs", "1", "--latent-dim", "2"],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert sorted(p.name for p in code.iterdir()) == ["model.py", "train.py"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "model" / "anomaly_score" / "1" / "saved_model.pb").is_file()
