"""Pack a directory into a gzipped tar, reproducibly: the same files give the same bytes.

Used for `model.tar.gz` (the SavedModels at the archive root, as the TFS container expects)
and for the training job's `sourcedir.tar.gz`. Entries are sorted, owners and timestamps
zeroed, modes normalised and the gzip header carries no name or time.

Typical use::

    pack_directory("build/model", "build/model.tar.gz")
    unpack_archive("build/model.tar.gz", "/tmp/model")
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

#: Names never packed: caches and editor litter that change between machines.
EXCLUDED_NAMES = frozenset({"__pycache__", ".DS_Store", ".ipynb_checkpoints", ".pytest_cache"})


def _default_exclude(relative: Path) -> bool:
    return any(part in EXCLUDED_NAMES for part in relative.parts) or relative.suffix == ".pyc"


def pack_directory(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    exclude: Callable[[Path], bool] = _default_exclude,
) -> Path:
    """Write every file under `source` into the gzipped tar `destination`.

    Paths in the archive are relative to `source` (no leading `./`), so `source/vae/1/...`
    becomes `vae/1/...` at the archive root.

    Returns:
        The destination path.

    Raises:
        FileNotFoundError: `source` is not a directory.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_dir():
        raise FileNotFoundError(f"cannot pack {source}: not a directory")

    paths = sorted(
        (p for p in source.rglob("*") if not exclude(p.relative_to(source))),
        key=lambda p: p.relative_to(source).as_posix(),
    )

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            if path.is_symlink():
                raise ValueError(f"cannot pack {path}: symbolic links are not packed")
            info = tar.gettarinfo(str(path), arcname=path.relative_to(source).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.pax_headers = {}
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, handle)

    destination.parent.mkdir(parents=True, exist_ok=True)
    with (
        destination.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(buffer.getvalue())
    logger.info("packed %d entries from %s into %s", len(paths), source, destination)
    return destination


def unpack_archive(archive: str | os.PathLike[str], destination: str | os.PathLike[str]) -> Path:
    """Extract a tar (gzipped or not) into `destination`, refusing unsafe members.

    Uses tarfile's `data` filter: absolute paths, `..`, links out of the tree and device
    files are refused, as a careful container would.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:*") as tar:
        tar.extractall(destination, filter="data")
    return destination
