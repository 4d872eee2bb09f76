"""Sinkhorn attention against plain alternating row / column scaling of exp(S / eps) in float64, one matrix at a
time in NumPy (masked entries exactly 0, columns scaled to valid queries / valid keys), for the masks the log-domain
code has to count right: masks that differ per query, key and head, a single valid query or key, key padding in
cross-attention, and full (B, 1, N, N) masks; the backend's defaults against conf/attention/sinkhorn.yaml; and, without
a mask, a NaN score staying visible (zero rows are for fully masked queries only).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from attention_reference import sinkhorn_reference
from omegaconf import OmegaConf

from qdsbench import attention
from qdsbench.attention.sinkhorn import sinkhorn_log

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "attention" / "sinkhorn.yaml"


def _scores(*shape, seed=0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _irregular_mask() -> torch.Tensor:
    """(2, 2, 5, 6): per batch and head a different pattern, every row and column keeping at least one entry, so
    the number of queries seen by a key (and keys seen by a query) differs from the block's valid counts."""
    keep = torch.rand(2, 2, 5, 6, generator=torch.Generator().manual_seed(1)) < 0.6
    keep[..., 0, :] = False
    keep[..., 0, 0] = True  # query 0 sees key 0 only
    keep[..., :, 5] = False
    keep[..., 4, 5] = True  # key 5 is seen by query 4 only
    keep[1, 1] = torch.ones(5, 6, dtype=torch.bool).tril(1).triu()  # one head: the diagonal and the one above it
    assert keep.any(-1).all() and keep.any(-2).all()
    return keep


def _single(kind: str) -> torch.Tensor:
    """(2, 1, 5, 4) masks: batch 0 full, batch 1 a single valid query (row 2) or a single valid key (column 1)."""
    keep = torch.ones(2, 1, 5, 4, dtype=torch.bool)
    if kind == "one_query":
        keep[1, :, [0, 1, 3, 4], :] = False
    else:
        keep[1, ..., [0, 2, 3]] = False
    return keep


@pytest.mark.parametrize("n_iter", [2, 3, 4, 5])
def test_sinkhorn_with_an_irregular_mask_counts_valid_queries_and_keys_per_matrix(n_iter):
    scores = _scores(2, 2, 5, 6, seed=n_iter)
    keep = _irregular_mask()
    got = sinkhorn_log(scores, n_iter, 0.7, keep)
    np.testing.assert_allclose(
        got.numpy(), sinkhorn_reference(scores.numpy(), n_iter, 0.7, keep.numpy()), rtol=1e-9, atol=1e-14
    )


@pytest.mark.parametrize("kind", ["one_query", "one_key"])
@pytest.mark.parametrize("n_iter", [2, 4])
def test_sinkhorn_column_target_with_a_single_valid_query_or_key(kind, n_iter):
    """Even n_iter ends on a column step: columns sum to valid queries / valid keys, also when one of them is 1."""
    scores = _scores(2, 1, 5, 4, seed=10 + n_iter)
    keep = _single(kind)
    got = sinkhorn_log(scores, n_iter, 1.0, keep)
    np.testing.assert_allclose(
        got.numpy(), sinkhorn_reference(scores.numpy(), n_iter, 1.0, keep.numpy()), rtol=1e-9, atol=1e-14
    )
    column_sums = got[1, 0].sum(0)
    if kind == "one_query":  # one valid query over 4 keys: each column sums to 1 / 4
        torch.testing.assert_close(column_sums, torch.full((4,), 0.25, dtype=got.dtype))
    else:  # 5 valid queries on one key: that column sums to 5, the others are empty
        torch.testing.assert_close(column_sums, torch.tensor([0.0, 5.0, 0.0, 0.0], dtype=got.dtype))


@pytest.mark.parametrize("n_iter", [2, 3])
def test_sinkhorn_key_padding_in_cross_attention_pads_only_the_keys(n_iter):
    """With fewer queries than keys a (B, 1, 1, Nk) key-padding mask cannot pad the queries: every query is valid."""
    scores = _scores(2, 2, 3, 5, seed=20 + n_iter)
    padding = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
    got = attention.create("sinkhorn", n_iter=n_iter).normalize(scores, padding)
    np.testing.assert_allclose(got.numpy(), sinkhorn_reference(scores.numpy(), n_iter, 1.0, padding.numpy()), rtol=1e-9)
    assert (got.sum(-1) > 0.5).all()  # no query row was dropped as padding


@pytest.mark.parametrize("n_iter", [2, 3])
def test_sinkhorn_full_mask_is_used_as_given_not_symmetrised(n_iter):
    """Only a key-padding mask (one row) of square self-attention is paired with its transpose; a (B, 1, N, N) mask
    that says which key each query may see is applied as it is."""
    scores = _scores(2, 2, 5, 5, seed=30 + n_iter)
    keep = _irregular_mask()[:, :1, :, :5].clone()
    keep[..., 1:, 0] = True  # every row keeps an entry
    assert not torch.equal(keep, keep.transpose(-1, -2))
    got = attention.create("sinkhorn", n_iter=n_iter).normalize(scores, keep)
    np.testing.assert_allclose(
        got.numpy(), sinkhorn_reference(scores.numpy(), n_iter, 1.0, keep.numpy()), rtol=1e-9, atol=1e-14
    )


def _qkv(n=6, d=4, seed=40):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 2, n, d, generator=g, dtype=torch.float64) for _ in range(3)]


def test_sinkhorn_configured_scale_multiplies_the_scores():
    """scale s on q k^T equals the default 1 / sqrt(d) = 1/2 on (2 s q) k^T."""
    q, k, v = _qkv()
    torch.testing.assert_close(
        attention.create("sinkhorn", scale=0.9)(q, k, v), attention.create("sinkhorn")(q * 1.8, k, v)
    )
    scores = (q @ k.mT).numpy() * 0.9
    want = sinkhorn_reference(scores, 3) @ v.numpy()
    np.testing.assert_allclose(attention.create("sinkhorn", scale=0.9)(q, k, v).numpy(), want, rtol=1e-9)


def test_sinkhorn_built_without_options_is_the_config_group():
    options = {key: value for key, value in OmegaConf.to_container(OmegaConf.load(CONFIG)).items() if key != "name"}
    q, k, v = _qkv(seed=41)
    default, configured = attention.create("sinkhorn"), attention.create("sinkhorn", **options)
    torch.testing.assert_close(default(q, k, v), configured(q, k, v), rtol=0, atol=0)
    want = sinkhorn_reference((q @ k.mT).numpy() / 2, options["n_iter"], options["eps"]) @ v.numpy()
    np.testing.assert_allclose(default(q, k, v).numpy(), want, rtol=1e-9)


@pytest.mark.parametrize("n_iter", [1, 3])
def test_without_a_mask_a_nan_score_stays_visible_instead_of_becoming_a_zero_row(n_iter):
    """Odd n_iter ends on a softmax, whose NaN rows are zeroed only for masked queries: without a mask a diverged
    score must show as NaN in its row, not hide as a zero row, while the other head stays finite."""
    scores = _scores(1, 2, 4, 5, seed=50 + n_iter)
    scores[0, 1, 2, 3] = float("nan")
    p = attention.create("sinkhorn", n_iter=n_iter).normalize(scores)
    assert torch.isnan(p[0, 1, 2]).all()
    assert torch.isfinite(p[0, 0]).all()


@pytest.mark.parametrize("n_iter", [1, 2, 3, 4])
def test_sinkhorn_gradients_with_padding_and_fully_masked_lines_pass_gradcheck(n_iter):
    """Key padding in self-attention masks whole query rows and key columns: logsumexp's backward on such an
    all -inf line is 0 * exp(-inf + inf) = NaN, and the next step spread it into the kept entries' gradients."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 1, 4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    padding = torch.tensor([[True, True, True, True], [True, True, True, False]])
    backend = attention.create("sinkhorn", n_iter=n_iter)
    torch.autograd.gradcheck(lambda q, k, v: backend(q, k, v, padding), (q, k, v))
    scores = torch.randn(1, 1, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(1, 1, 4, 5, dtype=torch.bool)
    mask[..., 1, :] = False  # query 1 sees nothing
    mask[..., :, 3] = False  # and no query sees key 3
    torch.autograd.gradcheck(lambda s: backend.normalize(s, mask), (scores,))
