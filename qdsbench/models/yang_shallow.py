"""Yang et al.'s (NeurIPS 2024) shallow transformer for word co-occurrence, eq. (1), with switchable readout/attention.

F(X) = readout_l sum_j a_j w_j^T W_V X p_l,  p_l = normalise(X^T W_K^T W_Q x_l * scale)

- one head, no residual, no LayerNorm, no positional encoding; one-hot tokens, so W_Q x = column x of W_Q;
- W_Q, W_K, W_V in R^{m x d}, the linear MLP W in R^{m1 x m} and the output weights a in {+1, -1}^{m1}, drawn
  uniformly and fixed (a buffer); W, W_V, W_K, W_Q are trained;
- ``readout``: ``sum`` over the L query positions (the paper), ``mean``, ``first`` (the query at position 0) or
  ``cls`` (an extra token, index ``vocab_size``, prepended; its query is read out);
- the normaliser is any qdsbench attention backend (the ``attention`` group: softmax is the paper; sinkhorn, qr,
  qontot, sigmoid, ...); ``scale: null`` gives the paper's 1/sqrt(m);
- ``init``: ``torch_default`` (nn.Linear's U(+-1/sqrt(fan_in)), one reading of the paper's "Kaiming"),
  ``kaiming_normal`` (std sqrt(2/fan_in)) or ``theory`` (sigma0 = 1/sqrt(L m) for W_Q/W_K/W_V, sigma1 = 1/sqrt(m1)).

The linear MLP function G(mu) = a^T W W_V mu, the score correlations mu_k^T W_K^T W_Q mu_q and the value
correlations mu_i^T W_V^T W_V mu_j are methods, so the task can log them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from qdsbench import attention as attention_backends
from qdsbench.models.registry import register

READOUTS = ("sum", "mean", "first", "cls")
INITS = ("torch_default", "kaiming_normal", "theory")


class YangShallow(nn.Module):
    def __init__(
        self,
        attention: dict[str, Any],
        vocab_size: int,
        seq_len: int,
        m: int = 128,
        m1: int = 256,
        readout: str = "sum",
        init: str = "torch_default",
    ):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"unknown readout '{readout}'; valid choices: {', '.join(READOUTS)}")
        if init not in INITS:
            raise ValueError(f"unknown init '{init}'; valid choices: {', '.join(INITS)}")
        if min(vocab_size, seq_len, m, m1) < 1:
            raise ValueError(f"vocab_size, seq_len, m, m1 must be >= 1, got {vocab_size}, {seq_len}, {m}, {m1}")
        self.vocab_size, self.seq_len, self.m, self.m1, self.readout = vocab_size, seq_len, m, m1, readout
        d = vocab_size + (1 if readout == "cls" else 0)
        self.W_Q, self.W_K, self.W_V = (nn.Parameter(torch.empty(m, d)) for _ in range(3))
        self.W = nn.Parameter(torch.empty(m1, m))
        self.register_buffer("a", torch.randint(0, 2, (m1,)).float() * 2 - 1)
        self._init(init)
        self.backend = attention_backends.from_config(attention)

    def _init(self, init: str) -> None:
        for w in (self.W_Q, self.W_K, self.W_V, self.W):
            fan_in = w.shape[1]
            if init == "torch_default":
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # = nn.Linear's default, U(+-1/sqrt(fan_in))
            elif init == "kaiming_normal":
                nn.init.normal_(w, std=math.sqrt(2.0 / fan_in))
        if init == "theory":
            for w in (self.W_Q, self.W_K, self.W_V):
                nn.init.normal_(w, std=1.0 / math.sqrt(self.seq_len * self.m))
            nn.init.normal_(self.W, std=1.0 / math.sqrt(self.m1))

    def tokens_with_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.readout != "cls":
            return tokens
        cls = torch.full_like(tokens[:, :1], self.vocab_size)
        return torch.cat([cls, tokens], dim=1)

    def qkv(self, tokens: torch.Tensor):
        tokens = self.tokens_with_cls(tokens)
        return tuple(w.T[tokens][:, None] for w in (self.W_Q, self.W_K, self.W_V))  # (n, 1, L, m) each

    def per_query(self, tokens: torch.Tensor) -> torch.Tensor:
        """f_l = a^T W W_V X p_l for every query position l: (n, L)."""
        q, k, v = self.qkv(tokens)
        out = self.backend(q, k, v)[:, 0]
        return out @ (self.a @ self.W)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        f = self.per_query(tokens)
        if self.readout == "sum":
            return f.sum(-1)
        if self.readout == "mean":
            return f.mean(-1)
        return f[:, 0]

    @torch.no_grad()
    def attention_matrix(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """(n, L, L) attention of the backend (None for backends without an explicit matrix)."""
        q, k, _ = self.qkv(tokens)
        p = self.backend.attention_matrix(q, k)
        return None if p is None else p[:, 0]

    def linear_mlp(self) -> torch.Tensor:
        """G(mu) = a^T W W_V mu for every token: (d,)."""
        return self.a @ self.W @ self.W_V

    def score_matrix(self) -> torch.Tensor:
        """S[key, query] = mu_key^T W_K^T W_Q mu_query (unscaled): (d, d)."""
        return self.W_K.T @ self.W_Q

    def value_matrix(self) -> torch.Tensor:
        return self.W_V.T @ self.W_V


@register("yang_shallow")
def create_yang_shallow(
    *,
    attention: dict[str, Any],
    vocab_size: int,
    seq_len: int,
    m: int = 128,
    m1: int = 256,
    readout: str = "sum",
    init: str = "torch_default",
) -> YangShallow:
    return YangShallow(attention, vocab_size, seq_len, m, m1, readout, init)
