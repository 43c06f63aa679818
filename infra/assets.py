"""The files the stack uploads: the prepared data channels and the packed training source.

Both are written into `build/` before the stack is built, deterministically and offline, so
two synths of the same checkout give the same template.

Typical use (in `app.py`)::

    data_dir, code_dir = stage_assets(settings, project_dir / "build")
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from artifacts.pack import pack_directory
from infra.settings import Settings

logger = logging.getLogger(__name__)

#: The archive name SageMaker script mode expects behind `sagemaker_submit_directory`.
SOURCE_ARCHIVE = "sourcedir.tar.gz"
#: The files each channel directory must hold (see `pipeline.channels`).
CHANNEL_FILES = {"train": ("images.npy", "labels.npy"), "test": ("images.npy", "labels.npy")}


def stage_assets(settings: Settings, build_dir: Path, source_dir: Path) -> tuple[Path, Path]:
    """Write the data channels and `sourcedir.tar.gz` under `build_dir`.

    Returns:
        The data directory (with `train/` and `test/`) and the code directory (holding only
        `sourcedir.tar.gz`).
    """
    # Imported here: the channels need numpy and the MNIST files, which the stack's unit
    # tests (they pass their own small directories) do not.
    from pipeline.channels import prepare_channels

    data_dir = prepare_channels(settings, out_dir=build_dir / "data")
    code_dir = build_dir / "code"
    pack_directory(source_dir, code_dir / SOURCE_ARCHIVE)
    return Path(data_dir), code_dir


def check_staged(data_dir: Path, code_dir: Path) -> None:
    """Raise `FileNotFoundError` naming the first missing file of the staged assets."""
    for channel, names in CHANNEL_FILES.items():
        for name in names:
            path = data_dir / channel / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} is missing; run `make synth` (it prepares the data channels)"
                )
    if sorted(p.name for p in code_dir.iterdir()) != [SOURCE_ARCHIVE]:
        raise FileNotFoundError(f"{code_dir} must hold exactly {SOURCE_ARCHIVE}")


def directory_digest(directory: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
