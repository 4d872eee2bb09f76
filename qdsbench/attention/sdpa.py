"""torch's fused scaled_dot_product_attention: the fast path, with no explicit matrix in its forward."""

import torch
import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend, dense_attention_flops, masked_fill_scores
from qdsbench.attention.registry import register


@register("sdpa")
class SDPAAttention(AttentionBackend):
    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        if mask is None and self.causal and q.shape[-2] == k.shape[-2]:  # fused causal kernel, no mask tensor
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale_for(q))
        mask = self.full_mask(mask, q, k)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale_for(q))

    def flops(self, n, d):
        return dense_attention_flops(n, d)

    def attention_matrix(self, q, k, mask=None):
        """The softmax matrix the fused kernel applies, built explicitly (analysis only: O(N^2) memory); a query
        whose keys are all masked gets a zero row, as the fused kernel's output does."""
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale_for(q)
        full = self.full_mask(mask, q, k)
        probs = torch.softmax(masked_fill_scores(scores, full), dim=-1)
        return probs if full is None else torch.nan_to_num(probs, nan=0.0)
