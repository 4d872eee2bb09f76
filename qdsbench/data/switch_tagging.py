"""Switch-tagging (analysis notes, experiment X1): per-token labels, some needing communication and some not.

A sequence is [BOS] + (seq_len - 1) tokens from a vocabulary of ``vocab_size`` (BOS is index ``vocab_size``).
Tokens 0 .. 2 n_pairs - 1 form partner pairs (0-1, 2-3, ...), the "context set" C; each content position draws from C
with probability ``context_prob``, else uniformly from the other tokens. Labels per position:

- x_i in C: 1 iff its partner occurs elsewhere in the sequence (``causal``: at an earlier position), which needs
  token communication;
- x_i not in C: a fixed random bit b(x_i) (seeded by ``bit_seed``), which needs none and so rewards a head that
  switches off (sink) or keeps to itself (diagonal);
- BOS: ignored (label -100).

Batches are ``(tokens (B, T), labels (B, T), query_type (B, T))`` with query types 0 = bos, 1 = context, 2 = plain,
which the analysis uses to split its per-query metrics.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from qdsbench.data.inputs import ModelInputs
from qdsbench.data.registry import register

IGNORE = -100
GROUP_NAMES = {0: "bos", 1: "context", 2: "plain"}


def generate(
    n: int, vocab_size: int, seq_len: int, n_pairs: int, context_prob: float, causal: bool, seed: int, bit_seed: int = 0
):
    if 2 * n_pairs >= vocab_size:
        raise ValueError(f"n_pairs={n_pairs} needs vocab_size > {2 * n_pairs}, got {vocab_size}")
    if seq_len < 3 or not 0 < context_prob < 1:
        raise ValueError(f"seq_len={seq_len} must be >= 3 and context_prob={context_prob} in (0, 1)")
    n_context = 2 * n_pairs
    g = torch.Generator().manual_seed(int(seed))
    body = seq_len - 1
    is_context = torch.rand(n, body, generator=g) < context_prob
    context = torch.randint(0, n_context, (n, body), generator=g)
    plain = torch.randint(n_context, vocab_size, (n, body), generator=g)
    content = torch.where(is_context, context, plain)
    bits = torch.randint(0, 2, (vocab_size,), generator=torch.Generator().manual_seed(int(bit_seed)))
    partner = content ^ 1  # 0 <-> 1, 2 <-> 3, ... (only meaningful for context tokens)
    same = partner[:, :, None] == content[:, None, :]  # [b, i, j]: token j is the partner of token i
    if causal:
        same = same & torch.ones(body, body, dtype=torch.bool).tril(-1)
    has_partner = same.any(-1)
    labels = torch.where(is_context, has_partner.long(), bits[content])
    bos = torch.full((n, 1), vocab_size, dtype=torch.long)
    tokens = torch.cat([bos, content], 1)
    labels = torch.cat([torch.full((n, 1), IGNORE), labels], 1)
    qtype = torch.cat([torch.zeros(n, 1, dtype=torch.long), torch.where(is_context, 1, 2)], 1)
    return tokens, labels, qtype


class SwitchTaggingDataModule(pl.LightningDataModule):
    group_names = GROUP_NAMES
    task = "tagging"  # the task its per-token label batches are for

    def __init__(
        self,
        *,
        name: str = "switch_tagging",
        data_dir: str | None = None,
        vocab_size: int = 32,
        seq_len: int = 16,
        n_pairs: int = 4,
        context_prob: float = 0.4,
        causal: bool = False,
        n_train: int = 32000,
        n_val: int = 2000,
        n_test: int = 2000,
        batch_size: int = 64,
        eval_batch_size: int = 500,
        seed: int = 0,
        bit_seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        if min(n_train, n_val, n_test, batch_size, eval_batch_size) < 1:
            raise ValueError("n_train, n_val, n_test, batch_size and eval_batch_size must be >= 1")
        self.name, self.vocab_size, self.seq_len, self.n_pairs = name, vocab_size, seq_len, n_pairs
        self.context_prob, self.causal, self.seed, self.bit_seed = context_prob, causal, seed, bit_seed
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        generate(1, vocab_size, seq_len, n_pairs, context_prob, causal, seed)  # bad options fail at construction
        self.sets: dict[str, TensorDataset] = {}

    def model_inputs(self) -> ModelInputs:
        """vocab_size excludes BOS (index vocab_size); seq_len includes it."""
        return ModelInputs(seq_len=self.seq_len, vocab_size=self.vocab_size)

    def setup(self, stage: str | None = None) -> None:
        for offset, split in enumerate(("train", "val", "test")):
            if split not in self.sets:
                self.sets[split] = TensorDataset(
                    *generate(
                        self.sizes[split],
                        self.vocab_size,
                        self.seq_len,
                        self.n_pairs,
                        self.context_prob,
                        self.causal,
                        self.seed * 1000 + offset,
                        self.bit_seed,
                    )
                )

    def train_dataloader(self):
        self.setup()
        return DataLoader(
            self.sets["train"],
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self):
        self.setup()
        return DataLoader(self.sets["val"], batch_size=self.eval_batch_size, num_workers=self.num_workers)

    def test_dataloader(self):
        self.setup()
        return DataLoader(self.sets["test"], batch_size=self.eval_batch_size, num_workers=self.num_workers)


register("switch_tagging")(SwitchTaggingDataModule)
