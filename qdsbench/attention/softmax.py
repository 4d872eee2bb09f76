"""Row-wise softmax attention with an explicit matrix: the reference every other backend is compared to."""

import torch

from qdsbench.attention.base import MatrixAttention, dense_attention_flops, masked_fill_scores
from qdsbench.attention.registry import register


@register("softmax")
class SoftmaxAttention(MatrixAttention):
    def normalize(self, scores, mask=None):
        probs = torch.softmax(masked_fill_scores(scores, mask), dim=-1)
        # A query whose keys are all masked gets a zero row instead of NaNs.
        return probs if mask is None else torch.nan_to_num(probs, nan=0.0)

    def flops(self, n, d):
        return dense_attention_flops(n, d)
