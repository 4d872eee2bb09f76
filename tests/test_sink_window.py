"""sink_window: equals the dense masked reference exactly; its cost is linear in N."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qdsbench import attention


@pytest.mark.parametrize("n,window,sinks", [(1, 4, 2), (10, 4, 2), (37, 8, 4), (37, 1, 0), (20, 64, 4), (16, 3, 16)])
def test_equals_dense_masked_reference(n, window, sinks):
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g, dtype=torch.float64) for _ in range(3))
    backend = attention.create("sink_window", window=window, sinks=sinks)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = (j <= i) & ((i - j < window) | (j < sinks))
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    reference = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v
    torch.testing.assert_close(backend(q, k, v), reference)
    torch.testing.assert_close(backend.attention_matrix(q, k) @ v, reference)


def test_cost_is_linear_in_sequence_length():
    backend = attention.create("sink_window", window=16, sinks=4)
    flops = []
    for n in (256, 512, 1024):
        q = torch.randn(1, 1, n, 32)
        with FlopCounterMode(display=False) as counter:
            backend(q, q, q)
        flops.append(counter.get_total_flops())
    assert flops[1] == 2 * flops[0] and flops[2] == 2 * flops[1]


def test_bad_options():
    with pytest.raises(ValueError, match="causal by definition"):
        attention.create("sink_window", causal=False)
    with pytest.raises(ValueError, match="window >= 1"):
        attention.create("sink_window", window=0)


def test_grouped_blocks_equal_one_batch_in_values_and_gradients():
    """Bounding the key copies (chunk_bytes) must not change the result or its gradient."""
    from qdsbench.attention.sink_window import block_sparse_sink_window

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 150, 8, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grads = []
    outs = []
    for chunk_bytes in (1 << 40, 1):  # one group of all blocks; one block per group
        out = block_sparse_sink_window(q, k, v, window=20, sinks=3, scale=0.3, block=32, chunk_bytes=chunk_bytes)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), (q, k, v)))
    torch.testing.assert_close(outs[0], outs[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert all(gr.abs().sum() > 0 for gr in grads[1])
