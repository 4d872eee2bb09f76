"""Capture attention matrices, queries/keys/values and hidden states from any qdsbench model with hooks.

Every ``AttentionBackend`` module in the model (wherever it sits) gets a forward pre-hook that keeps its (q, k, v)
inputs and has ``capture`` switched on, so backends that form a matrix leave it in ``last_attention``. Backends
without one get it recomputed from the captured q, k when possible: ``attention_matrix`` (Monarch, sink_window) or,
for the fused ``sdpa`` path, the explicit softmax it computes. Kernelised backends (performer, linear, cosformer,
nystrom) have no matrix and are reported without one. Hidden states come from ``model.blocks`` (timm-style blocks):
block input, block output and, for blocks with ``attn`` and ``ls1``, the residual stream right after the attention
sublayer (``x + ls1(attn(norm1(x)))`` at eval time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from qdsbench.attention.base import AttentionBackend, masked_fill_scores


@dataclass
class LayerRecord:
    index: int
    module: str
    backend: str
    causal: bool
    q: list[torch.Tensor] = field(default_factory=list)
    k: list[torch.Tensor] = field(default_factory=list)
    v: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] = field(default_factory=list)

    def cat(self, name: str) -> torch.Tensor | None:
        parts = getattr(self, name)
        return torch.cat(parts) if parts else None


def _reference_matrix(backend: AttentionBackend, q, k, mask) -> torch.Tensor | None:
    if hasattr(backend, "attention_matrix"):
        return backend.attention_matrix(q, k, mask)
    if getattr(backend, "registered_name", None) == "sdpa":
        scores = torch.matmul(q, k.transpose(-2, -1)) * backend.scale_for(q)
        return torch.softmax(masked_fill_scores(scores, backend.full_mask(mask, q, k)), dim=-1)
    return None


class Capture:
    """``with Capture(model) as cap: model(x)`` (any number of forwards); then ``cap.layers`` and ``cap.hidden``."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.backends = [(name, m) for name, m in model.named_modules() if isinstance(m, AttentionBackend)]
        self.layers = [LayerRecord(i, name, b.name, bool(b.causal)) for i, (name, b) in enumerate(self.backends)]
        blocks = getattr(model, "blocks", None)
        if blocks is None and hasattr(model, "net"):
            blocks = getattr(model.net, "blocks", None)
        self.blocks = list(blocks) if blocks is not None else []
        self.hidden = {
            "block_in": [[] for _ in self.blocks],
            "block_out": [[] for _ in self.blocks],
            "after_attn": [[] for _ in self.blocks],
        }
        self._handles: list = []
        self._saved_capture: list[bool] = []
        self._pending: list[tuple | None] = [None] * len(self.backends)

    def __enter__(self) -> Capture:
        for index, (_, backend) in enumerate(self.backends):
            self._saved_capture.append(backend.capture)
            backend.capture = True
            self._handles.append(backend.register_forward_pre_hook(self._pre_hook(index), with_kwargs=True))
            self._handles.append(backend.register_forward_hook(self._post_hook(index)))
        for index, block in enumerate(self.blocks):
            self._handles.append(block.register_forward_hook(self._block_hook(index)))
            if hasattr(block, "attn") and hasattr(block, "ls1"):
                self._handles.append(block.attn.register_forward_hook(self._attn_hook(index)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        for (_, backend), saved in zip(self.backends, self._saved_capture):
            backend.capture, backend.last_attention = saved, None
        self._handles.clear()

    def _pre_hook(self, index: int):
        def hook(module, args, kwargs):
            q, k, v = (list(args) + [kwargs.get(n) for n in ("q", "k", "v")][len(args) :])[:3]
            mask = args[3] if len(args) > 3 else kwargs.get("mask")
            module.last_attention = None
            self._pending[index] = (q.detach(), k.detach(), v.detach(), mask)

        return hook

    def _post_hook(self, index: int):
        def hook(module, args, output):
            q, k, v, mask = self._pending[index]
            record = self.layers[index]
            record.q.append(q)
            record.k.append(k)
            record.v.append(v)
            a = module.last_attention
            if a is None:
                with torch.no_grad():
                    a = _reference_matrix(module, q, k, mask)
            if a is not None:
                record.attention.append(a.detach().to(v.dtype))

        return hook

    def _block_hook(self, index: int):
        def hook(module, args, output):
            self.hidden["block_in"][index].append(args[0].detach())
            self.hidden["block_out"][index].append(output.detach())

        return hook

    def _attn_hook(self, index: int):
        def hook(module, args, output):  # the attention sublayer's output; the residual is added in hidden_states
            self.hidden["after_attn"][index].append(output.detach())

        return hook

    def hidden_states(self, index: int) -> dict[str, torch.Tensor | None]:
        """Block input, output and the residual stream after the attention sublayer for block ``index``."""
        out = {key: (torch.cat(parts[index]) if parts[index] else None) for key, parts in self.hidden.items()}
        if out["after_attn"] is not None and out["block_in"] is not None:
            block = self.blocks[index]
            with torch.no_grad():
                out["after_attn"] = out["block_in"] + block.ls1(out["after_attn"])
        return out
