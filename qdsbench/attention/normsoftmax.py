"""NormSoftmax (Softmax_sigma / Softmax_sigma^2): softmax of S / min(sqrt(d_head), row statistic of S).

As in the eurekaMoments reference: S = q k^T unscaled (so ``scale`` defaults to 1), the row variance or standard
deviation is torch's default (unbiased) over each query's valid keys, and the temperature is capped at sqrt(d).
A row with a single (valid) key has spread 0, so its temperature is the floor ``eps`` and its one weight is 1.
"""

from __future__ import annotations

import torch

from qdsbench.attention.base import MatrixAttention, dense_attention_flops, masked_fill_scores
from qdsbench.attention.registry import register


def _sqrt_with_zero_gradient_at_zero(var: torch.Tensor) -> torch.Tensor:
    """sqrt(var), but a zero-spread row (one valid key, as query 0 of a causal mask has, or equal scores) gets a zero
    gradient instead of sqrt's 0 * inf = NaN; its temperature is the floor eps either way."""
    positive = var > 0
    return torch.where(positive, torch.where(positive, var, torch.ones_like(var)).sqrt(), torch.zeros_like(var))


class _NormSoftmax(MatrixAttention):
    statistic = "std"

    def __init__(
        self, scale: float | None = 1.0, causal: bool = False, max_temperature: float | None = None, eps: float = 1e-6
    ):
        super().__init__(scale=scale, causal=causal)
        self.max_temperature, self.eps = max_temperature, eps
        self._head_dim: int | None = None

    def attention_matrix(self, q, k, mask=None):
        self._head_dim = q.shape[-1]
        return super().attention_matrix(q, k, mask)

    def normalize(self, scores, mask=None):
        cap = self.max_temperature or (self._head_dim or scores.shape[-1]) ** 0.5
        if mask is None:
            # one key: the masked path's divisor max(count - 1, 1) gives spread 0 (not torch's NaN); as there, only
            # the floor eps is left and the single key gets weight 1
            correction = 1 if scores.shape[-1] > 1 else 0
            var = scores.var(dim=-1, keepdim=True, correction=correction)
        else:
            valid = mask.expand_as(scores).to(scores.dtype)
            count = valid.sum(-1, keepdim=True)
            mean = (scores * valid).sum(-1, keepdim=True) / count.clamp_min(1)
            var = (((scores - mean) * valid) ** 2).sum(-1, keepdim=True) / (count - 1).clamp_min(1)
        spread = var if self.statistic == "var" else _sqrt_with_zero_gradient_at_zero(var)
        temperature = torch.clamp(spread, min=self.eps, max=cap)
        # shift by the row's largest valid score first: softmax is unchanged, but a zero-spread row (equal scores,
        # one key) divided by eps would overflow float16 to inf and give NaN; shifted, its entries are 0, so uniform
        top = masked_fill_scores(scores, mask).amax(dim=-1, keepdim=True).detach()
        probs = torch.softmax(masked_fill_scores((scores - top) / temperature, mask), dim=-1)
        return probs if mask is None else torch.nan_to_num(probs, nan=0.0)

    def flops(self, n, d):
        return dense_attention_flops(n, d)


@register("normsoftmax_std")
class NormSoftmaxStd(_NormSoftmax):
    statistic = "std"


@register("normsoftmax_var")
class NormSoftmaxVar(_NormSoftmax):
    statistic = "var"
