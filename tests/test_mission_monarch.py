"""MonarchAttention against a brute-force alternating maximisation of its variational objective.

The objective (Yaras et al.): f(A) = <A, S> + H(A) over the valid rows (queries) and columns (keys), with
A[(m', i), (m, j)] = L_i[m', m] R_m[i, j], rows of L and R on the simplex, S = scale * q k^T, padded keys never
weighted. MonarchAttention starts from L = I and alternates an exact R-step and an exact L-step T times.

The reference below never looks at the implementation's formulas: it only evaluates f on dense matrices. With the
other factor fixed, f restricted to one row r of a factor is C + sum_j r_j a_j + c H(r) (linear plus c times an
entropy), so its coefficients follow from f at the vertices (a_j - a_0 = f(e_j) - f(e_0)) and at the uniform point
(c), and the exact maximiser is softmax(a / c). A row whose c is 0 does not enter f (an R row of a padded query
position while L = I); the reference takes the uniform row there (the tie-break the method's L = I start implies).
Sizes include padding (pre and post) and block sizes b != sqrt(N).
"""

import itertools
import math

import numpy as np
import pytest
import torch

from qdsbench import attention


def objective(a: np.ndarray, s: np.ndarray, valid: np.ndarray) -> float:
    a, s = a[np.ix_(valid, valid)], s[np.ix_(valid, valid)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)
    return float((a * s).sum() - ent.sum())


def dense(l_fac: np.ndarray, r_fac: np.ndarray) -> np.ndarray:
    """l_fac[i, m', m], r_fac[m, i, j] -> A[(m', i), (m, j)] on the padded grid (token index = block * b + i)."""
    b, m = l_fac.shape[0], l_fac.shape[1]
    a = np.zeros((m * b, m * b))
    for i, mp, mm, j in itertools.product(range(b), range(m), range(m), range(b)):
        a[mp * b + i, mm * b + j] = l_fac[i, mp, mm] * r_fac[mm, i, j]
    return a


def exact_row(f, support: list[int], size: int) -> np.ndarray:
    """argmax over rows on the simplex of ``support`` of f(row) = C + <row, a> + c H(row), from f alone."""
    rows = np.eye(size)
    if len(support) == 1:
        return rows[support[0]]
    at_vertex = np.array([f(rows[j]) for j in support])
    uniform = np.zeros(size)
    uniform[support] = 1 / len(support)
    c = (f(uniform) - at_vertex.mean()) / math.log(len(support))
    out = np.zeros(size)
    if abs(c) < 1e-12:
        out[support] = 1 / len(support)
        return out
    z = (at_vertex - at_vertex.max()) / c
    out[support] = np.exp(z) / np.exp(z).sum()
    return out


def brute_force_monarch(q: np.ndarray, k: np.ndarray, b: int, steps: int, pad: str) -> np.ndarray:
    """A (N, N) from alternating exact maximisation, every step found by evaluating the dense objective."""
    n, scale = q.shape[0], q.shape[1] ** -0.5
    m = math.ceil(n / b)
    extra = m * b - n
    tokens = np.arange(n) + (extra if pad == "pre" else 0)  # where each real token sits on the padded grid
    valid = np.zeros(m * b, dtype=bool)
    valid[tokens] = True
    s = np.zeros((m * b, m * b))
    s[np.ix_(tokens, tokens)] = scale * q @ k.T
    l_fac = np.stack([np.eye(m)] * b)  # L = I
    r_fac = np.zeros((m, b, b))
    for _ in range(steps):
        for mm, i in itertools.product(range(m), range(b)):  # R-step: each row R_m[i, :] over the valid keys
            support = [j for j in range(b) if valid[mm * b + j]]

            def f_r(row, mm=mm, i=i):
                trial = r_fac.copy()
                trial[mm, i] = row
                return objective(dense(l_fac, trial), s, valid)

            r_fac[mm, i] = exact_row(f_r, support, b)
        for i, mp in itertools.product(range(b), range(m)):  # L-step: each row L_i[m', :] of a valid query
            if not valid[mp * b + i]:
                continue

            def f_l(row, i=i, mp=mp):
                trial = l_fac.copy()
                trial[i, mp] = row
                return objective(dense(trial, r_fac), s, valid)

            l_fac[i, mp] = exact_row(f_l, list(range(m)), m)
    return dense(l_fac, r_fac)[np.ix_(tokens, tokens)]


@pytest.mark.parametrize(
    "n,block,steps,pad",
    [(7, 3, 1, "pre"), (10, 4, 2, "post"), (11, 3, 2, "pre"), (9, 2, 3, "post"), (12, 5, 1, "post")],
)
def test_monarch_equals_brute_force_alternating_maximisation(n, block, steps, pad):
    g = torch.Generator().manual_seed(n * 10 + steps)
    q, k, v = (torch.randn(1, 1, n, 6, generator=g, dtype=torch.float64) * 1.5 for _ in range(3))
    backend = attention.create("monarch", block_size=block, num_steps=steps, pad=pad)
    reference = brute_force_monarch(q[0, 0].numpy(), k[0, 0].numpy(), block, steps, pad)
    np.testing.assert_allclose(backend.attention_matrix(q, k)[0, 0].numpy(), reference, atol=1e-9)
    np.testing.assert_allclose(backend(q, k, v)[0, 0].numpy(), reference @ v[0, 0].numpy(), atol=1e-9)


def test_each_step_is_a_maximiser_no_perturbation_improves_it():
    """The same property seen locally: at T = 1 (L-step last), moving any valid query's L row off the computed factor
    along the simplex, R fixed, lowers f (the L-step is the exact maximiser of a strictly concave function of it)."""
    n, b = 10, 3
    g = torch.Generator().manual_seed(3)
    q, k = (torch.randn(1, 1, n, 6, generator=g, dtype=torch.float64) for _ in range(2))
    backend = attention.create("monarch", block_size=b, num_steps=1, pad="pre")
    r, l_mat, (_, m, extra) = backend._factors(q, k)
    r_fac = r[0, 0].numpy()  # (M, b, b)
    l_fac = l_mat[0, 0].numpy()  # (b, M', M)
    tokens = np.arange(n) + extra
    valid = np.zeros(m * b, dtype=bool)
    valid[tokens] = True
    s = np.zeros((m * b, m * b))
    s[np.ix_(tokens, tokens)] = q[0, 0].numpy() @ k[0, 0].numpy().T / math.sqrt(6)
    base = objective(dense(l_fac, r_fac), s, valid)
    rng = np.random.default_rng(0)
    for i, mp in itertools.product(range(b), range(m)):
        if not valid[mp * b + i]:
            continue
        for _ in range(3):
            trial = l_fac.copy()
            trial[i, mp] = 0.9 * trial[i, mp] + 0.1 * rng.dirichlet(np.ones(m))
            assert objective(dense(trial, r_fac), s, valid) < base
