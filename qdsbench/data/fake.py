"""torchvision FakeData in any image shape: exercises CIFAR- or MedMNIST-shaped models offline (learns nothing)."""

from __future__ import annotations

import functools

import torch
from torch.utils.data import Dataset

from qdsbench.data.registry import register
from qdsbench.data.vision import ImageClassificationDataModule


class FakeImageDataModule(ImageClassificationDataModule):
    """torchvision's FakeData in a real dataset's shape, for tests of CIFAR/MedMNIST-shaped models offline."""

    def __init__(self, *, image_size: int = 32, in_chans: int = 3, num_classes: int = 10, size: int = 256, **kw):
        super().__init__(image_size=image_size, in_chans=in_chans, num_classes=num_classes, **kw)
        self.size = size

    def build(self, train: bool) -> Dataset:
        from torchvision.datasets import FakeData
        from torchvision.transforms import v2

        return FakeData(
            size=self.size if train else max(self.size // 4, 1),
            image_size=(self.in_chans, self.image_size, self.image_size),
            num_classes=self.num_classes,
            transform=v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]),
            random_offset=0 if train else 10_000,
        )


register("fake")(functools.partial(FakeImageDataModule, name="fake"))
