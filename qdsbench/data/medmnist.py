"""MedMNIST v2 (28x28 2-D subsets) from the official ``<flag>.npz`` files under ``<data_dir>/medmnist/``.

The npz holds predefined train/val/test splits (uint8 images, integer labels); labels are flattened because copies
differ in shape ((N,) vs (N, 1)). Known md5 sums are checked; a different file fails with one line.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from qdsbench.data.registry import register
from qdsbench.data.splits import limit
from qdsbench.data.vision import ImageClassificationDataModule
from qdsbench.errors import DatasetCorruptError, DatasetMissingError

# The QDSFormer paper's Table 2 uses these 7 2-D subsets; their shapes are in conf/data/<flag>.yaml.
SUBSETS = ("octmnist", "pneumoniamnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist", "breastmnist")
# Accepted md5 sums: the official Zenodo file (from medmnist/info.py) and the re-saved copy documented in
# shared/data/README.md (same splits and class counts, labels stored as (N,)).
KNOWN_MD5 = {"breastmnist": {"750601b1f35ba3300ea97c75c52ff8f6", "098de56cd2d92ef2f7170e6153c02849"}}
SOURCE = "the MedMNIST v2 record on Zenodo (https://zenodo.org/records/10519652) or `pip install medmnist`"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class MedMNISTDataModule(ImageClassificationDataModule):
    """Uses the official validation split (``val_size`` is ignored)."""

    def __init__(self, *, verify_md5: bool = True, **kwargs):
        super().__init__(**kwargs)
        if self.name not in SUBSETS:
            raise ValueError(f"unknown MedMNIST subset '{self.name}'; valid choices: {', '.join(SUBSETS)}")
        self.verify_md5 = verify_md5

    @property
    def path(self) -> Path:
        return Path(self.data_dir) / "medmnist" / f"{self.name}.npz"

    def load(self) -> dict[str, np.ndarray]:
        if not self.path.is_file():
            raise DatasetMissingError(self.name, str(self.path), f"download {self.name}.npz from {SOURCE}")
        if self.verify_md5 and self.name in KNOWN_MD5 and md5(self.path) not in KNOWN_MD5[self.name]:
            raise DatasetCorruptError(
                f"dataset '{self.name}': {self.path} has md5 {md5(self.path)}, expected one of "
                f"{', '.join(sorted(KNOWN_MD5[self.name]))}; download it again from {SOURCE}"
            )
        with np.load(self.path) as npz:
            return {key: npz[key] for key in npz.files}

    def prepare_data(self) -> None:
        self.load()

    def _split(self, arrays: dict[str, np.ndarray], split: str) -> TensorDataset:
        images = torch.as_tensor(arrays[f"{split}_images"], dtype=torch.float32) / 255.0
        images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
        images = (images - 0.5) / 0.5
        labels = torch.as_tensor(arrays[f"{split}_labels"].reshape(-1), dtype=torch.long)
        return TensorDataset(images, labels)

    def setup(self, stage: str | None = None) -> None:
        arrays = self.load()
        self.train_set = limit(self._split(arrays, "train"), self.max_train_samples, self.split_seed)
        self.val_set = limit(self._split(arrays, "val"), self.max_eval_samples, self.split_seed)
        self.test_set = limit(self._split(arrays, "test"), self.max_eval_samples, self.split_seed)

    def build(self, train: bool) -> Dataset:
        return self._split(self.load(), "train" if train else "test")


for _flag in SUBSETS:
    register(_flag)(functools.partial(MedMNISTDataModule, name=_flag))
