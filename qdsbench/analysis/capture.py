"""Capture attention matrices, queries/keys/values, outputs and hidden states from any qdsbench model with hooks.

The one capture mechanism: analysis, the Delta study, the long-context evaluation and the diagnostics callback all
use it. Every ``AttentionBackend`` module in the model (wherever it sits) gets forward hooks that keep its (q, k, v)
inputs and, if asked, its output. Attention matrices (``matrices``): ``all`` switches ``capture`` on, so a backend
that builds its matrix leaves it in ``last_attention``, and any other gets its own ``attention_matrix`` recomputed
from the captured q, k (kernelised backends have none and are reported without one); ``formed`` keeps only the
matrices backends form in their forward anyway (``forms_matrix``: no extra N x N work, for training-time
diagnostics); ``none`` builds no N x N matrix at all (long contexts). Hidden states come from ``model.blocks``
(timm-style blocks): block input, block output and, for blocks with ``attn`` and ``ls1``, the residual stream right
after the attention sublayer (``x + ls1(attn(norm1(x)))`` at eval time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from qdsbench.attention.base import AttentionBackend

MATRICES = ("all", "formed", "none")


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
    out: list[torch.Tensor] = field(default_factory=list)

    def cat(self, name: str) -> torch.Tensor | None:
        parts = getattr(self, name)
        return torch.cat(parts) if parts else None


def _first(output):
    """A block's hidden state: blocks that also return a KV cache (the decoder's) give (x, cache)."""
    return output[0] if isinstance(output, tuple) else output


class Capture:
    """``with Capture(model) as cap: model(x)`` (any number of forwards); then ``cap.layers`` and ``cap.hidden``.

    ``inputs`` keeps each backend's q, k, v, ``outputs`` its output, ``hidden`` the block states; ``matrices`` is
    one of ``MATRICES`` (see the module docstring)."""

    def __init__(
        self, model: nn.Module, matrices: str = "all", inputs: bool = True, outputs: bool = False, hidden: bool = True
    ):
        if matrices not in MATRICES:
            raise ValueError(f"unknown matrices='{matrices}'; valid choices: {', '.join(MATRICES)}")
        self.model, self.matrices, self.inputs, self.outputs = model, matrices, inputs, outputs
        self.backends = [(name, m) for name, m in model.named_modules() if isinstance(m, AttentionBackend)]
        self.layers = [LayerRecord(i, name, b.name, bool(b.causal)) for i, (name, b) in enumerate(self.backends)]
        blocks = getattr(model, "blocks", None)
        if blocks is None and hasattr(model, "net"):
            blocks = getattr(model.net, "blocks", None)
        self.blocks = list(blocks) if blocks is not None and hidden else []
        self.hidden = {
            "block_in": [[] for _ in self.blocks],
            "block_out": [[] for _ in self.blocks],
            "after_attn": [[] for _ in self.blocks],
        }
        self._handles: list = []
        self._saved_capture: list[bool] = []
        self._pending: list[tuple | None] = [None] * len(self.backends)

    def _keeps_matrix(self, backend: AttentionBackend) -> bool:
        return self.matrices == "all" or (self.matrices == "formed" and backend.forms_matrix)

    def __enter__(self) -> Capture:
        for index, (_, backend) in enumerate(self.backends):
            self._saved_capture.append(backend.capture)
            backend.capture = self._keeps_matrix(backend) or backend.capture
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
            if self.inputs:
                record.q.append(q)
                record.k.append(k)
                record.v.append(v)
            if self.outputs:
                record.out.append(output.detach())
            if not self._keeps_matrix(module):
                return
            a = module.last_attention
            if a is None and self.matrices == "all":
                with torch.no_grad():
                    a = module.attention_matrix(q, k, mask)
            if a is not None:
                record.attention.append(a.detach().to(v.dtype))

        return hook

    def _block_hook(self, index: int):
        def hook(module, args, output):
            self.hidden["block_in"][index].append(args[0].detach())
            self.hidden["block_out"][index].append(_first(output).detach())

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
