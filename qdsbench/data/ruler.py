"""RULER-synth as a Lightning data module: an on-the-fly training curriculum and cached evaluation sets.

Training batches are generated per step from ``(seed, step)`` (deterministic, nothing to store): a curriculum of
stages ``{length, steps, batch_size}`` with tasks drawn uniformly from ``tasks``; one batch has one length. Validation
and test sets are fixed samples per (task, length), cached as jsonl under ``cache_dir`` (see ``longctx/ruler.py``).
A batch is a dict: ``tokens`` (B, N + answer) = prompt + gold answer, PAD-filled; ``answer_mask`` (B, N + answer - 1)
marks the target positions that are answer tokens; ``prompt_len`` N; ``task`` names.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from qdsbench.data.inputs import ModelInputs
from qdsbench.data.registry import register
from qdsbench.longctx.ruler import Formats, RulerGenerator, Sample, load_or_generate, spec_for
from qdsbench.longctx.vocab import Vocab


def collate(samples: list[Sample], pad: int = 0) -> dict[str, Any]:
    lengths = {len(s.prompt) for s in samples}
    if len(lengths) != 1:
        raise ValueError(f"a RULER batch needs one prompt length, got {sorted(lengths)}")
    n = lengths.pop()
    total = n + max(len(s.answer) for s in samples)
    tokens = torch.full((len(samples), total), pad, dtype=torch.long)
    answer_mask = torch.zeros(len(samples), total - 1, dtype=torch.bool)
    for row, s in enumerate(samples):
        seq = s.prompt + s.answer
        tokens[row, : len(seq)] = torch.tensor(seq)
        answer_mask[row, n - 1 : n - 1 + len(s.answer)] = True  # target t+1 predicted at position t
    return {"tokens": tokens, "answer_mask": answer_mask, "prompt_len": n, "task": [s.task for s in samples]}


class CurriculumBatches(IterableDataset):
    def __init__(self, generator: RulerGenerator, tasks: list[str], curriculum: list[dict], seed: int):
        self.generator, self.tasks, self.curriculum, self.seed = generator, tasks, curriculum, seed

    def __len__(self) -> int:
        return sum(int(stage["steps"]) for stage in self.curriculum)

    def __iter__(self):
        step = 0
        for stage in self.curriculum:
            for _ in range(int(stage["steps"])):
                rng = random.Random(f"train:{self.seed}:{step}")
                samples = [
                    self.generator.sample(rng.choice(self.tasks), int(stage["length"]), self.seed, rng.randrange(2**62))
                    for _ in range(int(stage["batch_size"]))
                ]
                step += 1
                yield collate(samples, self.generator.vocab.pad)


class RulerDataModule(pl.LightningDataModule):
    task = "language_model"  # the task its token/answer-mask batches are for

    def __init__(
        self,
        *,
        name: str = "ruler",
        data_dir: str | None = None,
        tasks: list[str] | None = None,
        curriculum: list[dict] | None = None,
        eval_lengths: list[int] | None = None,
        val_samples: int = 8,
        test_samples: int = 50,
        eval_batch_size: int = 8,
        seed: int = 0,
        cache_dir: str | None = None,
        n_words: int = 256,
        n_filler: int = 64,
        number_len: int = 7,
        uuid_len: int = 8,
        key_words: int = 2,
        var_len: int = 3,
        num_workers: int = 0,
    ):
        super().__init__()
        self.name = name
        self.tasks = list(tasks or ["niah_single_1"])
        for task in self.tasks:
            spec_for(task)  # an unknown task fails here, with the valid choices
        self.curriculum = [dict(s) for s in (curriculum or [{"length": 256, "steps": 100, "batch_size": 8}])]
        for stage in self.curriculum:
            if set(stage) != {"length", "steps", "batch_size"} or min(stage.values()) < 1:
                raise ValueError(f"curriculum stage {stage} needs positive length, steps and batch_size")
        self.eval_lengths = list(eval_lengths or [self.curriculum[-1]["length"]])
        self.val_samples, self.test_samples, self.eval_batch_size = val_samples, test_samples, eval_batch_size
        self.seed, self.cache_dir = seed, cache_dir
        self.generator = RulerGenerator(Vocab(n_words, n_filler), Formats(number_len, uuid_len, key_words, var_len))
        self.vocab_size = self.generator.vocab.size

    def model_inputs(self) -> ModelInputs:
        return ModelInputs(vocab_size=self.vocab_size)

    def train_dataloader(self):
        return DataLoader(CurriculumBatches(self.generator, self.tasks, self.curriculum, self.seed), batch_size=None)

    def eval_samples(self, task: str, length: int, split: str) -> list[Sample]:
        count = self.val_samples if split == "val" else self.test_samples
        seed = self.seed * 1000 + {"val": 1, "test": 2}[split]
        return load_or_generate(self.generator, task, length, seed, count, self.cache_dir)

    def _eval_loader(self, split: str):
        batches = []
        for length in self.eval_lengths:
            for task in self.tasks:
                samples = self.eval_samples(task, length, split)
                for i in range(0, len(samples), self.eval_batch_size):
                    batches.append(collate(samples[i : i + self.eval_batch_size], self.generator.vocab.pad))
        return DataLoader(batches, batch_size=None)

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return self._eval_loader("test")


register("ruler")(RulerDataModule)
