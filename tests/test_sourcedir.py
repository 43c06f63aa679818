"""The training source folder runs unchanged in the SageMaker TensorFlow image.

The image has TensorFlow (with Keras) and numpy and nothing of this project: script mode
unpacks `sourcedir.tar.gz` into `/opt/ml/code` and runs `python train.py` there.
"""

from __future__ import annotations

import ast
import sys

import pytest

from artifacts.pack import pack_directory, unpack_archive
from tests.conftest import TRAINING_DIR, run_entry_point

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
    result = run_entry_point(
        ["--epochs", "1", "--latent-dim", "2"],
        model_dir=tmp_path / "model",
        train=small_channels / "train",
        test=small_channels / "test",
        output=tmp_path / "output",
        code_dir=code,
    )

    assert sorted(p.name for p in code.iterdir()) == ["model.py", "train.py"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "model" / "anomaly_score" / "1" / "saved_model.pb").is_file()
