"""Deterministic train/validation splits and in-memory tensor caching shared by the image datamodules."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset, TensorDataset, random_split


def split_train_val(dataset: Dataset, val_size: int | float, seed: int) -> tuple[Dataset, Dataset]:
    n = len(dataset)
    n_val = int(round(val_size * n)) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 < n_val < n:
        raise ValueError(f"val_size={val_size} gives {n_val} validation samples out of {n}; need 0 < n_val < {n}")
    generator = torch.Generator().manual_seed(seed)
    train, val = random_split(dataset, [n - n_val, n_val], generator=generator)
    return train, val


def limit(dataset: Dataset, max_samples: int | None, seed: int) -> Dataset:
    """A seeded random subset, for quick runs (``data.max_train_samples`` etc.)."""
    if max_samples is None or max_samples >= len(dataset):
        return dataset
    generator = torch.Generator().manual_seed(seed)
    return Subset(dataset, torch.randperm(len(dataset), generator=generator)[:max_samples].tolist())


def to_tensor_dataset(dataset: Dataset) -> TensorDataset:
    """Materialise a transformed dataset once; per-item PIL transforms then cost nothing on later epochs."""
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return TensorDataset(torch.stack(xs), torch.as_tensor(ys, dtype=torch.long))
