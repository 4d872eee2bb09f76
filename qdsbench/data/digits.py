"""scikit-learn's bundled 8x8 handwritten digits: real, embedded in the wheel, tiny; the data of the test suite."""

from __future__ import annotations

import functools

import torch
from torch.utils.data import Dataset, TensorDataset

from qdsbench.data.registry import register
from qdsbench.data.vision import ImageClassificationDataModule

TEST_FRACTION = 0.2  # sklearn ships no split: the last 20% (after a fixed shuffle) is the test set


class DigitsDataModule(ImageClassificationDataModule):
    def build(self, train: bool) -> Dataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = (images - 0.3) / 0.4
        labels = torch.as_tensor(bunch.target, dtype=torch.long)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))
        n_test = int(len(labels) * TEST_FRACTION)
        index = order[n_test:] if train else order[:n_test]
        return TensorDataset(images[index], labels[index])


register("digits")(functools.partial(DigitsDataModule, name="digits"))
