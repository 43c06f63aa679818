"""Check a model directory or `model.tar.gz` by the TFS container's discovery rules.

Finds what the SageMaker TensorFlow Serving image would find (`artifacts.layout`) and names
each thing that would make it fail or serve something other than intended: no SavedModel, a
version directory that is not numeric, a SavedModel without `serving_default`, the default
model missing, a model name or version found twice, a model the project expects but is absent.

Typical use::

    report = check_artifact("build/model.tar.gz", default_model="vae")
    report.raise_for_problems()

    python -m artifacts.check build/model.tar.gz --default-model vae
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from artifacts.layout import SAVED_MODEL_FILE, Discovery, discover
from artifacts.pack import unpack_archive

logger = logging.getLogger(__name__)

SERVING_SIGNATURE = "serving_default"


class ArtifactError(ValueError):
    """The artifact breaks a discovery rule; the message lists every problem found."""


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What was found and what is wrong with it."""

    source: str
    models: dict[str, list[int]]  # model -> versions found, ascending
    signatures: dict[str, list[str]]  # "model/version" -> signature names
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            listed = "\n  - ".join(self.problems)
            raise ArtifactError(f"{self.source}: {len(self.problems)} problem(s):\n  - {listed}")


def signature_names(saved_model_dir: Path) -> list[str]:
    """The signature names in a SavedModel's `saved_model.pb`, read without loading it."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model_dir / SAVED_MODEL_FILE).read_bytes())
    names: set[str] = set()
    for meta_graph in proto.meta_graphs:
        names.update(meta_graph.signature_def.keys())
    # `__saved_model_init_op` is TensorFlow's own bookkeeping, not a servable signature.
    return sorted(name for name in names if not name.startswith("__"))


def check_directory(
    root: str | Path,
    *,
    default_model: str | None,
    expected_models: Iterable[str] = (),
    source: str | None = None,
) -> CheckReport:
    """Check an unpacked model directory. See `check_artifact`."""
    root = Path(root)
    found: Discovery = discover(root)
    problems: list[str] = []

    def where(path: Path) -> str:
        return path.relative_to(root).as_posix() or "."

    if not found.entries:
        problems.append(
            f"no SavedModel found: expected <model>/<version>/{SAVED_MODEL_FILE}, "
            "such as vae/1/saved_model.pb"
        )
    models = {name: sorted(found_versions) for name, found_versions in found.models().items()}
    for entry in found.entries:
        if not entry.model:
            problems.append(
                f"{where(entry.path)}/{SAVED_MODEL_FILE}: no model-name directory above the "
                "version; put it under <model>/<version>/"
            )
        elif entry.version is None:
            unused = max(models.get(entry.model, [0]), default=0) + 1
            problems.append(
                f"{where(entry.path)}: version directory {entry.version_dir!r} of model "
                f"{entry.model!r} is not numeric; the container ignores it; rename it to an "
                f"unused version number such as {unused}"
            )

    # The same model name under two parents, or the same version under two spellings.
    places: dict[str, set[Path]] = defaultdict(set)
    versions: dict[tuple[str, int], list[str]] = defaultdict(list)
    for entry in found.valid:
        places[entry.model].add(entry.path.parent)
        versions[(entry.model, entry.version)].append(entry.version_dir)
    for model, parents in sorted(places.items()):
        if len(parents) > 1:
            listed = ", ".join(sorted(where(p) for p in parents))
            problems.append(
                f"model name {model!r} is duplicated ({listed}); the container serves only "
                "one of them: rename or remove the others"
            )
    for (model, version), spellings in sorted(versions.items()):
        if len(spellings) > 1:
            problems.append(
                f"model {model!r} has version {version} more than once "
                f"(directories {sorted(spellings)}); leading zeros do not make versions distinct"
            )

    signatures = {}
    for entry in found.valid:
        key = f"{entry.model}/{entry.version}"
        try:
            signatures[key] = signature_names(entry.path)
        except Exception as error:  # a damaged protobuf raises DecodeError and friends
            problems.append(f"{where(entry.path)}: {SAVED_MODEL_FILE} does not parse ({error})")
            continue
        if SERVING_SIGNATURE not in signatures[key]:
            problems.append(
                f"{where(entry.path)}: model {entry.model!r} version {entry.version} has no "
                f"{SERVING_SIGNATURE!r} signature (has {signatures[key]}); export it with "
                "model.export() or keras.export.ExportArchive"
            )

    if default_model is not None and found.entries and default_model not in models:
        problems.append(
            f"default model {default_model!r} is missing (found {sorted(models)}); the container "
            "would never become healthy: set SAGEMAKER_TFS_DEFAULT_MODEL_NAME to one of them"
        )
    missing = [name for name in expected_models if name not in models]
    if missing and found.entries:
        problems.append(f"expected models missing: {missing} (found {sorted(models)})")

    return CheckReport(
        source=source or str(root), models=models, signatures=signatures, problems=problems
    )


def check_artifact(
    path: str | Path, *, default_model: str | None, expected_models: Iterable[str] = ()
) -> CheckReport:
    """Check a model directory or a `model.tar.gz` (unpacked to a temporary folder).

    Args:
        path: the directory, or a tar archive (gzipped or not).
        default_model: the value of `SAGEMAKER_TFS_DEFAULT_MODEL_NAME`; None skips that rule.
        expected_models: names that must be present.

    Returns:
        A report; `report.raise_for_problems()` turns problems into an `ArtifactError`.
    """
    path = Path(path)
    if path.is_dir():
        return check_directory(
            path, default_model=default_model, expected_models=expected_models, source=str(path)
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such artifact (a model directory or model.tar.gz)")
    if not tarfile.is_tarfile(path):
        raise ArtifactError(f"{path}: not a tar archive; pack it with artifacts.pack")
    with tempfile.TemporaryDirectory(prefix="artifact-check-") as scratch:
        unpack_archive(path, scratch)
        return check_directory(
            scratch, default_model=default_model, expected_models=expected_models, source=str(path)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", help="a model directory or model.tar.gz")
    parser.add_argument("--default-model", default="vae", help="SAGEMAKER_TFS_DEFAULT_MODEL_NAME")
    parser.add_argument("--expect", nargs="*", default=(), help="models that must be present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        report = check_artifact(
            args.artifact, default_model=args.default_model, expected_models=args.expect
        )
    except (FileNotFoundError, ArtifactError) as error:
        print(f"PROBLEM: {error}")
        return 1
    for name, versions in report.models.items():
        print(f"{name}: versions {versions}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("OK" if report.ok else f"{len(report.problems)} problem(s)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
