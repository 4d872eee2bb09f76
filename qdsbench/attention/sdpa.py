"""torch's fused scaled_dot_product_attention: the fast path, with no explicit matrix."""

import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import register


@register("sdpa")
class SDPAAttention(AttentionBackend):
    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        if mask is None and self.causal and q.shape[-2] == k.shape[-2]:  # fused causal kernel, no mask tensor
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale_for(q))
        mask = self.full_mask(mask, q, k)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale_for(q))
