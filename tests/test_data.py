"""Datamodules read the real files, fail clearly when they are missing, and MNIST converts losslessly."""

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from qdsbench import data
from qdsbench.data import mnist_offline


def test_registry_lists_datasets():
    assert {"mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "fake"} <= set(data.available())


@pytest.mark.parametrize(
    "name,folder",
    [
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
    ],
)
def test_missing_dataset_names_path_and_source(tmp_path, name, folder):
    module = data.create(name, data_dir=str(tmp_path))
    with pytest.raises(data.DatasetMissingError) as info:
        module.setup("fit")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / folder) in message and ("http" in message or "prepare" in message)


def test_digits_split_sizes_and_shapes():
    module = data.create("digits", data_dir="unused", val_size=200, batch_size=32)
    module.setup("fit")
    module.setup("test")
    assert len(module.train_set) + len(module.val_set) + len(module.test_set) == 1797
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and y.dtype == torch.long


def test_fake_data_has_requested_shape():
    module = data.create(
        "fake", data_dir="unused", image_size=32, in_chans=3, num_classes=100, size=64, val_size=16, batch_size=8
    )
    module.setup("fit")
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and int(y.max()) < 100


def test_idx_files_round_trip_through_torchvision(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 12).astype(np.uint8),
        "test_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 5).astype(np.uint8),
    }
    raw = mnist_offline.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for filename, key in mnist_offline.RAW_FILES.items():
        mnist_offline.write_idx(raw / filename, arrays[key])
    train = MNIST(str(tmp_path), train=True)
    test = MNIST(str(tmp_path), train=False)
    assert np.array_equal(train.data.numpy(), arrays["train_images"])
    assert np.array_equal(train.targets.numpy(), arrays["train_labels"])
    assert np.array_equal(test.data.numpy(), arrays["test_images"])


def test_prepared_mnist_matches_official_counts(tmp_path):
    """Runs only where `qdsbench-prepare mnist` has been run (data/ or QDSBENCH_DATA)."""
    import os

    candidates = [os.environ.get("QDSBENCH_DATA"), "data"]
    root = next((c for c in candidates if c and mnist_offline.is_prepared(c)), None)
    if root is None:
        pytest.skip("MNIST not prepared here (run `qdsbench-prepare mnist`)")
    train = MNIST(root, train=True)
    test = MNIST(root, train=False)
    assert np.bincount(train.targets.numpy()).tolist() == mnist_offline.OFFICIAL_TRAIN_COUNTS
    assert np.bincount(test.targets.numpy()).tolist() == mnist_offline.OFFICIAL_TEST_COUNTS
    assert train.targets[:5].tolist() == [5, 0, 4, 1, 9]
    assert abs(train.data.float().div(255).mean().item() - 0.1307) < 1e-3


def test_models_read_no_data():
    """Data flows one way: a model module imports nothing of qdsbench.data but the ModelInputs it is given."""
    import ast
    from pathlib import Path

    import qdsbench.models

    for path in Path(qdsbench.models.__file__).parent.glob("*.py"):
        for stmt in ast.walk(ast.parse(path.read_text())):
            names = [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else []
            names += [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else []
            for name in names:
                assert name == "qdsbench.data.inputs" or not name.startswith(("qdsbench.data", "pandas")), path.name


def test_augmentation_takes_the_shape_from_the_config(tmp_path):
    with pytest.raises(ValueError, match="augment=true needs image_size and in_chans"):
        data.create("cifar10", data_dir=str(tmp_path), augment=True)
    module = data.create("cifar10", data_dir=str(tmp_path), augment=True, image_size=32, in_chans=3, num_classes=10)
    crops = [s for s in module.transform(train=True).transforms if type(s).__name__ == "RandomCrop"]
    assert [c.size for c in crops] == [(32, 32)]
    assert module.model_inputs().provided() == {"image_size", "in_chans", "num_classes"}
