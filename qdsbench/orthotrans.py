"""OrthoTrans (OLinear): the fixed orthogonal matrices Q from the training rows' lagged autocorrelation.

Exactly as the authors' notebook computes them: per variate, the covariance of the L lagged copies of the series
(np.cov, ddof=1), skipped when any variance < 1e-4, divided column-wise by its diagonal (``C / diag(C)``, a quirk:
not the symmetric Pearson normalisation), averaged over variates in float32, ``eigh`` (which reads the lower
triangle), rows = eigenvectors by descending eigenvalue. Results are cached on disk by content hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

Q_ROWS = ("paper_ratio", "train_split")


def q_matrix(values: np.ndarray, length: int) -> np.ndarray:
    """values: rows x variates (the chosen training rows); returns the length x length float32 Q."""
    values = np.asarray(values)
    n = len(values)
    if n < length + 1:
        raise ValueError(f"OrthoTrans needs more than length={length} rows, got {n}")
    mats = []
    for j in range(values.shape[1]):
        lagged = np.array([values[i : n - length + i + 1, j] for i in range(length)])
        cov = np.cov(lagged)
        if np.any(np.diag(cov) < 1e-4):
            continue
        mats.append(cov / np.diag(cov))
    if not mats:
        raise ValueError("OrthoTrans: every variate is near-constant over the chosen rows")
    sigma = np.mean(np.stack(mats).astype(np.float32), axis=0)
    _, vectors = np.linalg.eigh(sigma)
    return np.ascontiguousarray(np.flip(vectors.T, axis=0)).astype(np.float32)


def q_rows_for(values: np.ndarray, rule: str, paper_ratio: float, train_end: int) -> np.ndarray:
    if rule == "paper_ratio":
        return values[: int(len(values) * paper_ratio)]
    if rule == "train_split":
        return values[:train_end]
    raise ValueError(f"unknown q_rows '{rule}'; valid choices: {', '.join(Q_ROWS)}")


def cached_q_matrix(values: np.ndarray, length: int, cache_dir: str | Path) -> np.ndarray:
    """q_matrix, stored under cache_dir/<sha256 of the rows and length>.npy (the `prepare` step)."""
    digest = hashlib.sha256(np.ascontiguousarray(values).tobytes() + str(length).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"q_{length}_{digest}.npy"
    if path.is_file():
        return np.load(path)
    q = q_matrix(values, length)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, q)
    tmp.replace(path)
    return q
