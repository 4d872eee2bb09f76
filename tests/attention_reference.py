"""NumPy write-ups of the attention normalisers, one matrix or row at a time, shared by the test files that check
the backends against them: they share no code with qdsbench/attention, so a test against them is a test of the
formula, not of the implementation copied twice."""

import math

import numpy as np


def softmax_over_allowed(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Row by row: softmax over the allowed keys, 0 elsewhere; a row with no allowed key is all 0."""
    out = np.zeros_like(scores)
    for index in np.ndindex(scores.shape[:-1]):
        keep = allowed[index]
        if keep.any():
            e = np.exp(scores[index][keep] - scores[index][keep].max())
            out[index][keep] = e / e.sum()
    return out


def sinkhorn_reference(scores, n_iter, eps=1.0, allowed=None):
    """Alternate row and column scaling of K = exp(S / eps) on the allowed block, n_iter scalings in all, rows to
    1 and columns to (valid queries / valid keys), in plain float64 division; not-allowed entries and rows 0."""
    out = np.zeros_like(scores)
    for index in np.ndindex(scores.shape[:-2]):
        s = scores[index]
        keep = np.ones(s.shape, dtype=bool) if allowed is None else np.broadcast_to(allowed, scores.shape)[index]
        rows, cols = keep.any(1), keep.any(0)
        k = np.where(keep, np.exp((s - s[keep].max()) / eps), 0.0)
        col_target = rows.sum() / max(cols.sum(), 1)
        for step in range(n_iter):
            if step % 2 == 0:
                k[rows] /= k[rows].sum(1, keepdims=True)
            else:
                k[:, cols] *= col_target / k[:, cols].sum(0, keepdims=True)
        out[index] = k
    return out


def normsoftmax_reference(scores, statistic, cap, eps=1e-6, allowed=None):
    out = np.zeros_like(scores)
    for index in np.ndindex(scores.shape[:-1]):
        row = scores[index]
        keep = np.ones(row.shape, dtype=bool) if allowed is None else np.broadcast_to(allowed, scores.shape)[index]
        if not keep.any():
            continue
        values = row[keep]
        var = values.var(ddof=1) if len(values) > 1 else 0.0
        spread = var if statistic == "var" else math.sqrt(var)
        t = min(max(spread, eps), cap)
        e = np.exp(values / t - (values / t).max())
        out[index][keep] = e / e.sum()
    return out
