"""Word co-occurrence (Yang et al., NeurIPS 2024, Def. 2.1): is the sequence holding both target words mu1 and mu2?

Tokens are indices into a one-hot vocabulary of ``vocab_size`` orthonormal embeddings: 0 = mu1, 1 = mu2 (targets),
2 = mu3 (the common token, once in every sequence), 3.. = irrelevant words R. Each sequence of ``seq_len`` tokens has
mu3 at a uniform position and then is one of four types with exact counts (Assumption 2.3(i)):

| type | label | targets |
|---|---|---|
| 0 ``I1_both`` | +1 | mu1 and mu2 |
| 1 ``I2_mu1`` | -1 | mu1 only |
| 2 ``I3_mu2`` | -1 | mu2 only |
| 3 ``I4_neither`` | -1 | neither |

at distinct positions; the other positions are uniform over R (with ``distinct_random_tokens`` the training set's
irrelevant words are all distinct, Assumption 2.3(ii), which needs vocab_size >= 3 + number of random slots).
Batches are ``(tokens (n, L) long, y (n,) float in {+1, -1}, type (n,) long)``. Training is full batch: one epoch is
``steps_per_epoch`` repetitions of the whole training set, so plain SGD on it is gradient descent.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from qdsbench.data.inputs import ModelInputs
from qdsbench.data.registry import register

MU1, MU2, MU3 = 0, 1, 2
FIRST_RANDOM = 3
TYPE_NAMES = {0: "I1_both", 1: "I2_mu1", 2: "I3_mu2", 3: "I4_neither"}
TARGETS = {0: (MU1, MU2), 1: (MU1,), 2: (MU2,), 3: ()}


def random_slots(counts, seq_len: int) -> int:
    return sum(c * (seq_len - 1 - len(TARGETS[t])) for t, c in enumerate(counts))


def generate(counts, vocab_size: int, seq_len: int, seed: int, distinct: bool = False):
    """``counts`` = samples of types I1..I4; returns (tokens, y, types) ordered by type."""
    if len(counts) != 4 or any(int(c) < 0 for c in counts):
        raise ValueError(f"counts={list(counts)} must be 4 non-negative sample counts for I1, I2, I3, I4")
    if seq_len < 3:
        raise ValueError(f"seq_len={seq_len} must be >= 3 (mu1, mu2 and mu3 in one sequence)")
    n_random = vocab_size - FIRST_RANDOM
    if n_random < 1:
        raise ValueError(f"vocab_size={vocab_size} must be >= 4 (mu1, mu2, mu3 and at least one irrelevant word)")
    slots = random_slots(counts, seq_len)
    if distinct and slots > n_random:
        raise ValueError(
            f"distinct_random_tokens needs vocab_size >= {FIRST_RANDOM + slots} for {slots} random slots, "
            f"got vocab_size={vocab_size}"
        )
    g = torch.Generator().manual_seed(int(seed))
    pool = (torch.randperm(n_random, generator=g)[:slots] + FIRST_RANDOM).tolist() if distinct else None
    tokens, labels, types = [], [], []
    for kind, count in enumerate(counts):
        for _ in range(int(count)):
            order = torch.randperm(seq_len, generator=g).tolist()  # order[0] holds mu3, then the targets
            row = [-1] * seq_len
            row[order[0]] = MU3
            for position, target in zip(order[1:], TARGETS[kind]):
                row[position] = target
            for position in range(seq_len):
                if row[position] < 0:
                    row[position] = (
                        pool.pop()
                        if pool is not None
                        else FIRST_RANDOM + int(torch.randint(n_random, (1,), generator=g))
                    )
            tokens.append(row)
            labels.append(1.0 if kind == 0 else -1.0)
            types.append(kind)
    return torch.tensor(tokens, dtype=torch.long), torch.tensor(labels), torch.tensor(types, dtype=torch.long)


class _Repeat(Dataset):
    """The whole set as one batch, ``times`` times: full-batch gradient descent with a Lightning loop."""

    def __init__(self, tensors, times: int):
        self.tensors, self.times = tensors, times

    def __len__(self) -> int:
        return self.times

    def __getitem__(self, index):
        return self.tensors


class CooccurrenceDataModule(pl.LightningDataModule):
    group_names = TYPE_NAMES
    task = "cooccurrence"  # the task its (tokens, +-1 label, type) batches are for

    def __init__(
        self,
        *,
        name: str = "cooccurrence",
        data_dir: str | None = None,
        vocab_size: int = 64,
        seq_len: int = 5,
        n_train_counts: list[int] = (30, 10, 10, 10),
        n_val_counts: list[int] = (150, 50, 50, 50),
        n_test_counts: list[int] = (300, 100, 100, 100),
        distinct_random_tokens: bool = False,
        seed: int = 0,
        steps_per_epoch: int = 1000,
        num_workers: int = 0,
    ):
        super().__init__()
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={steps_per_epoch} must be >= 1")
        self.name, self.vocab_size, self.seq_len = name, vocab_size, seq_len
        self.counts = {"train": list(n_train_counts), "val": list(n_val_counts), "test": list(n_test_counts)}
        self.distinct, self.seed, self.steps_per_epoch = distinct_random_tokens, seed, steps_per_epoch
        self.num_workers = num_workers
        self.sets: dict[str, tuple] = {}
        generate(self.counts["train"], vocab_size, seq_len, seed, self.distinct)  # bad sizes fail at construction

    def model_inputs(self) -> ModelInputs:
        return ModelInputs(seq_len=self.seq_len, vocab_size=self.vocab_size)

    def setup(self, stage: str | None = None) -> None:
        for offset, split in enumerate(("train", "val", "test")):
            if split not in self.sets:
                distinct = self.distinct and split == "train"
                self.sets[split] = generate(
                    self.counts[split], self.vocab_size, self.seq_len, self.seed * 1000 + offset, distinct
                )

    def full(self, split: str) -> tuple:
        self.setup()
        return self.sets[split]

    def train_dataloader(self):
        return DataLoader(
            _Repeat(self.full("train"), self.steps_per_epoch),
            batch_size=None,
            shuffle=False,
            num_workers=self.num_workers,
        )

    def _eval(self, split: str):
        return DataLoader(_Repeat(self.full(split), 1), batch_size=None, num_workers=self.num_workers)

    def val_dataloader(self):
        return self._eval("val")

    def test_dataloader(self):
        return self._eval("test")


register("cooccurrence")(CooccurrenceDataModule)
