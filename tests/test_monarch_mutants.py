"""MonarchAttention holes found by mutation testing, closed against an exact brute-force reference.

The reference knows only the method's definition (Yaras et al., NeurIPS 2025; shared/papers/monarch_attention.md):
A[(m', i), (m, j)] = L_i[m', m] R_m[i, j] on the padded grid, rows of L and R on the simplex, padded keys never
weighted, and L = I to start; then T times an exact R-step and an exact L-step, each the maximiser of the
softmax-variational objective f(A) = <A, scale q k^T> + H(A) over the valid queries and keys. One factor row r
enters f as C + <r, a> + c H(r), so a and c follow from f at the vertices and at the uniform point, and the exact
maximiser is softmax(a / c). Everything runs in mpmath at 100 digits, entry by entry, so a column of L whose sum is far
below float32's smallest normal number (where the implementation must not divide 0 by 0) is still resolved exactly.
"""

import itertools
import math

import mpmath
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qdsbench import attention


def brute_force_monarch(q, k, b, steps, pad, scale):
    """(A (N, N), the smallest column sum of L that an R-step after the first one saw) for q, k (N, d)."""
    mpf = mpmath.mpf
    n = q.shape[0]
    m = math.ceil(n / b)
    extra = m * b - n
    pos = [t + (extra if pad == "pre" else 0) for t in range(n)]  # where each real token sits on the padded grid
    valid = [p in pos for p in range(m * b)]
    s = {
        (p, r): mpf(scale) * mpmath.fsum(mpf(float(x)) * mpf(float(y)) for x, y in zip(q[u], k[w]))
        for (u, p), (w, r) in itertools.product(enumerate(pos), enumerate(pos))
    }
    lf = [[[mpf(int(x == y)) for y in range(m)] for x in range(m)] for _ in range(b)]  # lf[i][m'][m], L = I
    rf = [[[mpf(0)] * b for _ in range(b)] for _ in range(m)]  # rf[m][i][j]

    def objective(entries):  # the terms of f(A) that one factor row touches: (i, m', m, j) -> A[(m', i), (m, j)]
        total = mpf(0)
        for i, x, y, j in entries:
            p, r = x * b + i, y * b + j
            a = lf[i][x][y] * rf[y][i][j]
            if valid[p] and valid[r] and a > 0:
                total += a * s[p, r] - a * mpmath.log(a)
        return total

    def exact_row(row, support, entries):
        def f(values):
            row[:] = values
            return objective(entries)

        size = len(row)
        if len(support) == 1:
            return [mpf(int(j == support[0])) for j in range(size)]
        vertex = [f([mpf(int(j == t)) for j in range(size)]) for t in support]
        uniform = f([mpf(1) / len(support) if j in support else mpf(0) for j in range(size)])
        c = (uniform - mpmath.fsum(vertex) / len(vertex)) / mpmath.log(len(support))
        weights = [mpf(1)] * len(support) if c == 0 else [mpmath.exp((a - max(vertex)) / c) for a in vertex]
        out = [mpf(0)] * size
        for j, w in zip(support, weights):
            out[j] = w / mpmath.fsum(weights)
        return out

    smallest = mpmath.inf
    with mpmath.workdps(100):
        for step in range(steps):
            if step:
                smallest = min(
                    smallest, *(mpmath.fsum(lf[i][x][y] for x in range(m)) for i in range(b) for y in range(m))
                )
            for y, i in itertools.product(range(m), range(b)):
                keys = [j for j in range(b) if valid[y * b + j]]
                rf[y][i][:] = exact_row(rf[y][i], keys, [(i, x, y, j) for x in range(m) for j in range(b)])
            for i, x in itertools.product(range(b), range(m)):
                if valid[x * b + i]:
                    lf[i][x][:] = exact_row(
                        lf[i][x], list(range(m)), [(i, x, y, j) for y in range(m) for j in range(b)]
                    )
        a = np.zeros((n, n))
        for (u, p), (w, r) in itertools.product(enumerate(pos), enumerate(pos)):
            (x, i), (y, j) = divmod(p, b), divmod(r, b)
            a[u, w] = float(lf[i][x][y] * rf[y][i][j])
    return a, float(smallest)


def _qkv(n, d, seed, dtype=torch.float64, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, 1, n, d, generator=g) for _ in range(3))
    return (q * spread).to(dtype), (k * spread).to(dtype), v.to(dtype)


def _reference(q, k, b, steps, pad, scale):
    return brute_force_monarch(q[0, 0].double().numpy(), k[0, 0].double().numpy(), b, steps, pad, scale)


@pytest.mark.parametrize("n,block,steps,pad,scale", [(9, 2, 2, "post", 0.37), (7, 3, 1, "pre", 1.3)])
def test_a_configured_scale_is_the_scale_of_the_maximised_objective(n, block, steps, pad, scale):
    q, k, v = _qkv(n, 4, seed=n)  # d = 4: the default scale would be 0.5
    backend = attention.create("monarch", scale=scale, block_size=block, num_steps=steps, pad=pad)
    want, _ = _reference(q, k, block, steps, pad, scale)
    np.testing.assert_allclose(backend.attention_matrix(q, k)[0, 0].numpy(), want, atol=1e-10)
    np.testing.assert_allclose(backend(q, k, v)[0, 0].numpy(), want @ v[0, 0].numpy(), atol=1e-10)


@pytest.mark.parametrize(
    "n,block,steps,pad,spread,seed",
    [(10, 4, 2, "pre", 8.0, 2), (7, 3, 2, "post", 10.0, 2), (8, 3, 3, "pre", 10.0, 0)],
)
def test_float32_with_underflowing_columns_of_l_still_equals_the_exact_maximisation(n, block, steps, pad, spread, seed):
    """Scores of a few hundred: after the first L-step some column of L sums to far less than float32's smallest
    normal number, yet the next R-step must still use that column's weighted mean of the queries."""
    q, k, v = _qkv(n, 3, seed, dtype=torch.float32, spread=spread)
    want, smallest = _reference(q, k, block, steps, pad, 3**-0.5)
    assert smallest < torch.finfo(torch.float32).tiny  # the case really is in the underflow regime
    backend = attention.create("monarch", block_size=block, num_steps=steps, pad=pad)
    np.testing.assert_allclose(backend.attention_matrix(q, k)[0, 0].double().numpy(), want, atol=1e-5)
    np.testing.assert_allclose(backend(q, k, v)[0, 0].double().numpy(), want @ v[0, 0].double().numpy(), atol=1e-5)


@pytest.mark.parametrize("dtype,atol", [(torch.bfloat16, 3e-2), (torch.float16, 3e-3)])
@pytest.mark.parametrize("steps", [1, 2])
def test_half_precision_input_gives_output_of_its_dtype_close_to_the_exact_result(dtype, atol, steps):
    q, k, v = _qkv(7, 4, seed=11, dtype=dtype)
    backend = attention.create("monarch", block_size=3, num_steps=steps, pad="pre")
    out, a = backend(q, k, v), backend.attention_matrix(q, k)
    assert out.dtype == dtype and a.dtype == dtype
    want, _ = _reference(q, k, 3, steps, "pre", 0.5)
    np.testing.assert_allclose(a[0, 0].double().numpy(), want, atol=atol)
    np.testing.assert_allclose(out[0, 0].double().numpy(), want @ v[0, 0].double().numpy(), atol=atol)


@pytest.mark.parametrize("n,block,steps", [(50, 7, 2), (9, 2, 3), (10, 4, 1)])
def test_flops_are_what_the_flop_counter_measures_when_block_and_block_count_differ(n, block, steps):
    q, k, v = _qkv(n, 8, seed=5, dtype=torch.float32)
    backend = attention.create("monarch", block_size=block, num_steps=steps)
    with FlopCounterMode(display=False) as counter:
        backend(q, k, v)
    assert backend.flops(n, 8) == counter.get_total_flops()  # one batch element, one head


@pytest.mark.parametrize("n", range(1, 41))
def test_the_default_block_is_a_valid_block_size_nearest_sqrt_n(n):
    b, m, extra = attention.create("monarch").geometry(n)
    assert 1 <= b <= n and abs(b - math.sqrt(n)) <= 0.5  # the valid range of block_size; b ~ sqrt(N) (paper)
    assert m == math.ceil(n / b) and extra == m * b - n and 0 <= extra < b
