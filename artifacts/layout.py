"""How models are found in an artifact: the discovery rules of the SageMaker TFS image.

A SavedModel is any `saved_model.pb` whose parent directory is a version (a name of digits
only; leading zeros do not count) and whose grandparent directory names the model. Extra
leading directories are allowed. This module finds them; `artifacts.check` judges the result
and `artifacts.server` loads it, so the checker and the local endpoint agree by construction.

Typical use::

    found = discover("build/model")
    found.models()            # {"vae": {1: Path(".../vae/1")}, ...}
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import defaultdict
from pathlib import Path

logger = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
#: The JSON the training job writes beside the SavedModels (threshold, settings, checksums).
METADATA_FILE = "metadata.json"


def parse_version(name: str) -> int | None:
    """The version a directory name stands for, or None when it is not a version.

    Only ASCII digits count (`str.isdigit` would accept superscripts); `0001` is version 1.
    """
    if name and all("0" <= ch <= "9" for ch in name):
        return int(name)
    return None


@dataclasses.dataclass(frozen=True)
class SavedModelEntry:
    """One `saved_model.pb` found in the tree, relative to the tree's root."""

    model: str  # "" when no directory stands above the version directory
    version_dir: str
    version: int | None  # None: the parent directory is not a version
    path: Path  # the directory holding saved_model.pb


@dataclasses.dataclass(frozen=True)
class Discovery:
    """Every `saved_model.pb` under a root, valid or not, in a stable order."""

    root: Path
    entries: tuple[SavedModelEntry, ...]

    @property
    def valid(self) -> tuple[SavedModelEntry, ...]:
        """The entries the container loads: a model name above a numeric version."""
        return tuple(e for e in self.entries if e.model and e.version is not None)

    def models(self) -> dict[str, dict[int, Path]]:
        """Model name -> version -> directory, for the entries that follow the rules.

        When a name or version appears twice (`a/vae/1` and `b/vae/1`, or `vae/1` and
        `vae/01`), the first in sorted path order wins; `artifacts.check` reports the clash.
        """
        out: dict[str, dict[int, Path]] = defaultdict(dict)
        for entry in self.valid:
            out[entry.model].setdefault(entry.version, entry.path)
        return {name: dict(sorted(versions.items())) for name, versions in sorted(out.items())}


def discover(root: str | os.PathLike[str]) -> Discovery:
    """Walk `root` and list every SavedModel file in it by the container's rules."""
    root = Path(root)
    entries = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        if SAVED_MODEL_FILE not in files:
            continue
        path = Path(directory)
        # A file at the root, or one level down, has no model-name directory above it.
        depth = len(path.relative_to(root).parts)
        entries.append(
            SavedModelEntry(
                model=path.parent.name if depth >= 2 else "",
                version_dir=path.name if depth >= 1 else "",
                version=parse_version(path.name) if depth >= 1 else None,
                path=path,
            )
        )
    entries.sort(key=lambda e: str(e.path.relative_to(root)))
    return Discovery(root=root, entries=tuple(entries))
