"""torch's fused scaled_dot_product_attention: the fast path, with no explicit matrix."""

import torch.nn.functional as F

from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import register


@register("sdpa")
class SDPAAttention(AttentionBackend):
    def forward(self, q, k, v, mask=None):
        self.check_inputs(q, k, v)
        mask = self.full_mask(mask, q, k)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale_for(q))
