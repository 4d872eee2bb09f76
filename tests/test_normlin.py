"""NormLin (OLinear's token mixer as an attention backend): the matrix the paper defines, and iTransformer using it."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_config

from qdsbench import attention
from qdsbench.builders import build_net


def test_matrix_is_row_l1_normalised_softplus_of_w_and_ignores_the_scores():
    torch.manual_seed(0)
    backend = attention.create("normlin", num_tokens=4)
    w = backend.weight.detach().double()
    expected = [[math.log1p(math.exp(w[i, j])) for j in range(4)] for i in range(4)]  # softplus by hand
    expected = torch.tensor([[x / sum(row) for x in row] for row in expected], dtype=torch.float64)
    q, k, v = torch.randn(3, 2, 3, 4, 8, dtype=torch.float64).unbind(0)
    p = backend.attention_matrix(q, k)
    torch.testing.assert_close(p, expected.expand(2, 3, 4, 4))
    torch.testing.assert_close(backend(q, k, v), expected @ v)
    torch.testing.assert_close(backend(10 * q, -k, v), backend(q, k, v))  # no dependence on q or k


def test_masked_keys_get_no_weight_and_rows_renormalise():
    backend = attention.create("normlin", num_tokens=5)
    q = torch.randn(2, 1, 5, 4)
    keep = torch.tensor([[True, True, False, True, False], [True] * 5])
    p = backend.attention_matrix(q, q, keep)
    assert p[0, :, :, ~keep[0]].abs().max() == 0
    torch.testing.assert_close(p.sum(-1), torch.ones(2, 1, 5))
    full = backend.attention_matrix(q, q)[0, 0]
    torch.testing.assert_close(p[0, 0][:, keep[0]], full[:, keep[0]] / full[:, keep[0]].sum(-1, keepdim=True))


def test_wrong_token_count_names_the_setting():
    backend = attention.create("normlin", num_tokens=7)
    q = torch.randn(1, 1, 6, 4)
    with pytest.raises(ValueError, match="built for num_tokens=7, got 6 queries"):
        backend(q, q, q)


def test_itransformer_with_normlin_mixes_variates_through_it_in_every_layer():
    cfg = compose_config(
        ["experiment=itransformer/ili", "attention=normlin", "model.depth=2", "model.d_model=32", "model.num_heads=4"]
    )
    net = build_net(cfg).eval()
    backends = [m for m in net.modules() if isinstance(m, attention.AttentionBackend)]
    assert len(backends) == 2 and all(b.name == "normlin" and b.num_tokens == 7 for b in backends)
    x = torch.randn(2, cfg.data.seq_len, 7)
    before = net(x)
    with torch.no_grad():
        for b in backends:
            b.weight.copy_(torch.eye(7) * 100 - 50)  # softplus: 50 on the diagonal, 2e-22 off it: A = I
    after = net(x)
    assert before.shape == after.shape == (2, cfg.data.pred_len, 7)
    x2 = x.clone()
    x2[..., 0] += 5.0  # with A = I, changing variate 0 cannot move the other variates' forecasts
    torch.testing.assert_close(net(x2)[..., 1:], after[..., 1:], atol=1e-5, rtol=1e-5)


def test_without_a_token_count_the_error_says_what_to_set():
    cfg = compose_config(["attention=normlin", "paths.output_dir=/tmp/x"])  # MNIST: no num_variates
    assert cfg.attention.num_tokens is None
    with pytest.raises(ValueError, match="set attention.num_tokens=N"):
        attention.create("normlin", num_tokens=None)
