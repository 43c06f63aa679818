"""Packing and checking the artifact: one failing and one passing case for each rule."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile
from pathlib import Path

import pytest
import tensorflow as tf

from artifacts.check import ArtifactError, check_artifact
from artifacts.check import main as check_main
from artifacts.layout import discover
from artifacts.pack import pack_directory, unpack_archive


class _Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def double(self, x):
        return {"y": 2.0 * x}


@pytest.fixture(scope="module")
def tiny_savedmodels(tmp_path_factory) -> dict[str, Path]:
    """Two small SavedModels: one with `serving_default`, one with only another signature."""
    base = tmp_path_factory.mktemp("tiny")
    module = _Doubler()
    tf.saved_model.save(module, str(base / "good"), signatures={"serving_default": module.double})
    tf.saved_model.save(module, str(base / "other"), signatures={"other": module.double})
    return {"good": base / "good", "other": base / "other"}


@pytest.fixture
def make_tree(tmp_path, tiny_savedmodels):
    """Build a model tree from `{relative version dir: "good" | "other"}`."""

    def build(layout: dict[str, str]) -> Path:
        root = tmp_path / "tree"
        for relative, kind in layout.items():
            shutil.copytree(tiny_savedmodels[kind], root / relative)
        return root

    return build


def problems_of(root: Path, default_model: str | None = "vae") -> list[str]:
    return check_artifact(root, default_model=default_model).problems


# ------------------------------------------------------------------------- the rules


def test_passes_a_well_formed_tree(make_tree):
    root = make_tree({"vae/1": "good", "decoder/1": "good", "decoder/2": "good"})

    report = check_artifact(root, default_model="vae", expected_models=["vae", "decoder"])

    assert report.ok, report.problems
    assert report.models == {"decoder": [1, 2], "vae": [1]}


def test_fails_when_no_savedmodel_is_found(tmp_path):
    (tmp_path / "vae" / "1").mkdir(parents=True)

    assert problems_of(tmp_path) == [
        "no SavedModel found: expected <model>/<version>/saved_model.pb, such as "
        "vae/1/saved_model.pb"
    ]


def test_fails_on_a_non_numeric_version_directory(make_tree):
    root = make_tree({"vae/1": "good", "decoder/v1": "good"})

    problems = problems_of(root)

    assert len(problems) == 1
    assert "decoder/v1: version directory 'v1' of model 'decoder' is not numeric" in problems[0]


def test_leading_zeros_and_extra_leading_directories_are_allowed(make_tree):
    root = make_tree({"multi/vae/0001": "good", "multi/decoder/0000": "good"})

    report = check_artifact(root, default_model="vae")

    assert report.ok, report.problems
    assert report.models == {"decoder": [0], "vae": [1]}


def test_fails_on_a_model_without_serving_default(make_tree):
    root = make_tree({"vae/1": "good", "decoder/1": "other"})

    problems = problems_of(root)

    assert len(problems) == 1
    assert (
        "model 'decoder' version 1 has no 'serving_default' signature (has ['other'])"
        in (problems[0])
    )


def test_fails_when_the_default_model_is_missing(make_tree):
    root = make_tree({"decoder/1": "good"})

    assert problems_of(root) == [
        "default model 'vae' is missing (found ['decoder']); the container would never become "
        "healthy: set SAGEMAKER_TFS_DEFAULT_MODEL_NAME to one of them"
    ]
    assert problems_of(root, default_model="decoder") == []


def test_fails_on_a_duplicated_model_name(make_tree):
    root = make_tree({"a/vae/1": "good", "b/vae/2": "good"})

    problems = problems_of(root)

    assert len(problems) == 1
    assert "model name 'vae' is duplicated (a/vae, b/vae)" in problems[0]


def test_fails_on_one_version_under_two_spellings(make_tree):
    root = make_tree({"vae/1": "good", "vae/01": "good"})

    problems = problems_of(root)

    assert len(problems) == 1
    assert "model 'vae' has version 1 more than once (directories ['01', '1'])" in problems[0]


def test_fails_on_a_savedmodel_without_a_model_directory(make_tree):
    root = make_tree({"1": "good", "vae/1": "good"})

    problems = problems_of(root)

    assert problems == [
        "1/saved_model.pb: no model-name directory above the version; put it under "
        "<model>/<version>/"
    ]


def test_names_expected_models_that_are_missing(make_tree):
    root = make_tree({"vae/1": "good"})

    report = check_artifact(root, default_model="vae", expected_models=["vae", "decoder"])

    assert report.problems == ["expected models missing: ['decoder'] (found ['vae'])"]
    with pytest.raises(ArtifactError, match="1 problem"):
        report.raise_for_problems()


def test_checks_a_tarball_by_the_same_rules(make_tree, tmp_path):
    good = pack_directory(make_tree({"vae/1": "good"}), tmp_path / "good.tar.gz")
    shutil.rmtree(tmp_path / "tree")
    bad = pack_directory(make_tree({"vae/latest": "good"}), tmp_path / "bad.tar.gz")

    assert check_artifact(good, default_model="vae").ok
    assert "not numeric" in " ".join(check_artifact(bad, default_model="vae").problems)


def test_refuses_a_file_that_is_not_a_tar_archive(tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(gzip.compress(b"not a tar"))

    with pytest.raises(ArtifactError, match="not a tar archive"):
        check_artifact(path, default_model="vae")


# ------------------------------------------------------------------------- packing


def test_packs_the_layout_at_the_archive_root(make_tree, tmp_path):
    root = make_tree({"vae/1": "good"})

    archive = pack_directory(root, tmp_path / "model.tar.gz")

    with tarfile.open(archive) as tar:
        names = tar.getnames()
        members = tar.getmembers()
    assert "vae/1/saved_model.pb" in names
    assert all(not name.startswith(("/", "./")) for name in names)
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}


def test_packing_is_reproducible_across_copies_and_timestamps(make_tree, tmp_path):
    root = make_tree({"vae/1": "good", "decoder/1": "good"})
    first = pack_directory(root, tmp_path / "first.tar.gz")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # new inodes and modification times
    for path in copy.rglob("*"):
        path.touch()

    second = pack_directory(copy, tmp_path / "second.tar.gz")

    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second)]
    assert digest[0] == digest[1]


def test_unpacked_archive_is_discovered_like_the_source(make_tree, tmp_path):
    root = make_tree({"vae/1": "good", "decoder/3": "good"})
    archive = pack_directory(root, tmp_path / "model.tar.gz")

    unpacked = unpack_archive(archive, tmp_path / "out")

    assert {k: list(v) for k, v in discover(unpacked).models().items()} == {
        "decoder": [3],
        "vae": [1],
    }


def test_unpack_refuses_a_member_that_escapes(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = tmp_path / "payload"
        data.write_text("x")
        tar.add(data, arcname="../outside.txt")

    with pytest.raises(tarfile.OutsideDestinationError):
        unpack_archive(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


def test_command_line_names_a_missing_artifact_without_a_traceback(tmp_path, capsys):
    status = check_main([str(tmp_path / "nowhere.tar.gz")])

    assert status == 1
    assert capsys.readouterr().out == (
        f"PROBLEM: {tmp_path / 'nowhere.tar.gz'}: no such artifact (a model directory or "
        "model.tar.gz)\n"
    )


def test_suggests_an_unused_version_number_for_a_non_numeric_directory(make_tree):
    root = make_tree({"vae/1": "good", "vae/2": "good", "vae/latest": "good"})

    (problem,) = problems_of(root)

    assert problem.endswith("rename it to an unused version number such as 3")
