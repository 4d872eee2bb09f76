"""The Eureka compositional task (Hoffmann et al., ICML 2024) as used by QDSFormer.

A 56x56 image holds a 2x2 grid: MNIST digits at upper-left and lower-right, FashionMNIST items at upper-right and
lower-left. The label is the upper-right item's class if the two digits are equal, else the lower-left item's
class. Samples are composed deterministically from the index and ``seed``; ``p_equal`` (the share of equal-digit
pairs) is not given by the sources: 0.5 is our choice. ``source: fake`` composes torchvision FakeData instead of
the real datasets, with the same shapes, for tests.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.data import Dataset
from torchvision import datasets

from qdsbench.data.registry import register
from qdsbench.data.vision import SPECS, ImageClassificationDataModule, TorchvisionDataModule
from qdsbench.errors import DatasetMissingError

SOURCES = ("torchvision", "fake")


class _Pool:
    """Images (N, 28, 28) uint8 and labels of one source, indexed by class for equal-digit sampling."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels
        self.by_class = [torch.nonzero(labels == c).flatten() for c in range(10)]


def _fake_pool(size: int, seed: int) -> _Pool:
    g = torch.Generator().manual_seed(seed)
    return _Pool(torch.randint(0, 256, (size, 28, 28), generator=g, dtype=torch.uint8), torch.arange(size) % 10)


class CompositeDataset(Dataset):
    def __init__(self, digits: _Pool, items: _Pool, size: int, seed: int, p_equal: float, in_chans: int):
        self.digits, self.items, self.size, self.seed = digits, items, size, seed
        self.p_equal, self.in_chans = p_equal, in_chans

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        g = torch.Generator().manual_seed(self.seed * 10_000_019 + index)
        first = int(torch.randint(len(self.digits.labels), (1,), generator=g))
        digit = int(self.digits.labels[first])
        if torch.rand(1, generator=g) < self.p_equal:
            pool = self.digits.by_class[digit]
        else:
            others = [c for c in range(10) if c != digit and len(self.digits.by_class[c])]
            pool = self.digits.by_class[others[int(torch.randint(len(others), (1,), generator=g))]]
        second = int(pool[int(torch.randint(len(pool), (1,), generator=g))])
        upper_right, lower_left = torch.randint(len(self.items.labels), (2,), generator=g).tolist()
        canvas = torch.zeros(56, 56, dtype=torch.uint8)
        canvas[:28, :28] = self.digits.images[first]
        canvas[28:, 28:] = self.digits.images[second]
        canvas[:28, 28:] = self.items.images[upper_right]
        canvas[28:, :28] = self.items.images[lower_left]
        equal = int(self.digits.labels[second]) == digit
        label = int(self.items.labels[upper_right if equal else lower_left])
        image = (canvas.float() / 255.0 - 0.5) / 0.5
        return image.unsqueeze(0).expand(self.in_chans, 56, 56).clone(), label


class EurekaDataModule(ImageClassificationDataModule):
    def __init__(
        self,
        *,
        source: str = "torchvision",
        train_size: int = 60000,
        test_size: int = 10000,
        p_equal: float = 0.5,
        compose_seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if source not in SOURCES:
            raise ValueError(f"unknown eureka source '{source}'; valid choices: {', '.join(SOURCES)}")
        self.source, self.train_size, self.test_size = source, train_size, test_size
        self.p_equal, self.compose_seed = p_equal, compose_seed

    def _pools(self, train: bool) -> tuple[_Pool, _Pool]:
        if self.source == "fake":
            return _fake_pool(500, 1 + train), _fake_pool(500, 3 + train)
        pools = []
        for name, cls in (("mnist", datasets.MNIST), ("fashion_mnist", datasets.FashionMNIST)):
            checker = TorchvisionDataModule(name=name, data_dir=self.data_dir)
            try:
                checker.build(train)
            except DatasetMissingError as err:
                raise DatasetMissingError("eureka", err.expected, f"it needs {name}: {err.how_to_get}") from None
            ds = cls(self.data_dir, train=train)
            pools.append(_Pool(ds.data, ds.targets))
        return pools[0], pools[1]

    def prepare_data(self) -> None:
        self._pools(train=True)

    def build(self, train: bool) -> Dataset:
        digits, items = self._pools(train)
        size = self.train_size if train else self.test_size
        return CompositeDataset(
            digits, items, size, self.compose_seed + (0 if train else 1), self.p_equal, self.in_chans or 3
        )


register("eureka")(functools.partial(EurekaDataModule, name="eureka"))
assert "fashion_mnist" in SPECS
