"""The training-order sampler: a permutation that depends only on (seed, epoch), sharded across DDP ranks.

Lightning calls ``set_epoch`` before every epoch, so a run resumed from a checkpoint sees exactly the batches the
uninterrupted run would have seen (a sampler driven by one stateful generator would restart its sequence). Under
DDP each rank takes every world_size-th index of the same order, so 2 processes x batch b see the same global
batches as 1 process x batch 2b; the trainer configs set ``use_distributed_sampler: false`` to keep it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSeededSampler(Sampler[int]):
    def __init__(self, num_samples: int, seed: int, shuffle: bool = True):
        self.num_samples, self.seed, self.shuffle, self.epoch = num_samples, seed, shuffle, 0
        self.rank, self.world_size = _rank_and_world()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        if self.world_size > 1:  # pad by wrapping so every rank has the same number of samples
            order += order[: len(self) * self.world_size - len(order)]
            order = order[self.rank :: self.world_size]
        return iter(order)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.world_size)
