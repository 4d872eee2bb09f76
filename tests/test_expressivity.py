"""Expressivity metrics on matrices whose answers are known, and the study that tabulates them."""

import csv
import json
import math

import torch

from qdsbench.paper import expressivity as ex
from qdsbench.studies import expressivity as study


def test_projection_of_a_ds_matrix_is_itself():
    perm = torch.eye(5)[[2, 0, 4, 1, 3]].double()
    mixed = 0.3 * perm + 0.7 * torch.full((5, 5), 0.2, dtype=torch.float64)
    for p in (torch.eye(5, dtype=torch.float64), perm, mixed):
        assert ex.birkhoff_distance(p) < 1e-9


def test_projection_lands_in_the_polytope_and_is_nearest():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 6, generator=g, dtype=torch.float64)
    y = ex.birkhoff_projection(x)
    assert (y >= 0).all()
    torch.testing.assert_close(y.sum(0), torch.ones(6, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(y.sum(1), torch.ones(6, dtype=torch.float64), atol=1e-8, rtol=0)
    dist = (x - y).norm()
    for _ in range(200):  # no random DS matrix (mixture of permutations) is closer
        weights = torch.rand(4, generator=g, dtype=torch.float64)
        weights /= weights.sum()
        perms = [torch.eye(6, dtype=torch.float64)[torch.randperm(6, generator=g)] for _ in range(4)]
        other = sum(w * p for w, p in zip(weights, perms))
        assert (x - other).norm() >= dist - 1e-9


def test_row_stochastic_matrix_distance_is_positive():
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    # nearest DS matrix is [[.5,.5],[.5,.5]]: distance sqrt(4 * 0.25) = 1
    assert abs(float(ex.birkhoff_distance(p)) - 1.0) < 1e-8


def test_entropy_of_uniform_and_identity():
    assert abs(float(ex.row_entropy(torch.full((4, 4), 0.25))) - math.log(4)) < 1e-12
    assert float(ex.row_entropy(torch.eye(4))) == 0.0


def test_unique_count_and_family():
    family = ex.hypersphere_family()
    assert family.shape == (625, 4, 4)
    torch.testing.assert_close(family.norm(dim=1), torch.ones(625, 4, dtype=torch.float64))
    assert ex.count_unique(family) == 625
    assert ex.count_unique(torch.stack([torch.eye(3)] * 5)) == 1


def test_study_runs_small(tmp_path):
    study.main(["--matrices", "4", "--range-samples", "2", "--out", str(tmp_path)])
    with open(tmp_path / "expressivity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 * 3 + 5 + 20 and list(rows[0]) == study.FIELDS
    assert (tmp_path / "expressivity.md").read_text().count("\n| ") == len(rows) + 1
    assert (tmp_path / "figures" / "cell_range_layers_qubits.png").stat().st_size > 1000
    meta = json.loads((tmp_path / "expressivity.meta.json").read_text())
    assert (meta["matrices"], meta["range_samples"]) == (4, 2)
    assert "--matrices 4 --range-samples 2`" in (tmp_path / "expressivity.md").read_text()
