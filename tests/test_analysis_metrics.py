"""Analysis metrics on hand-built attention matrices with known answers."""

import math

import torch

from qdsbench.analysis import metrics as m

T = 6


def pure_sink(t=T):
    return torch.zeros(t, t).index_fill_(1, torch.tensor([0]), 1.0)


def test_pure_sink_matrix():
    a = pure_sink()
    alpha = m.importance(a)
    assert alpha[0] == 1.0 and alpha[1:].abs().max() == 0
    assert m.sink_rate(a[None]) == 1.0 and m.diagonal_rate(a[None]) == 0.0
    assert m.head_labels(a) == 0 and m.first_token_attention(a) == 1.0
    assert m.dobrushin(a) == 0.0 and m.max_attention(a) == 1.0 and m.row_entropy(a) == 0.0


def test_identity_and_uniform():
    eye = torch.eye(T)
    assert m.diagonal_score(eye) == 1.0 and m.head_labels(eye) == 1 and m.dobrushin(eye) == 1.0
    causal_uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    alpha = m.importance(causal_uniform)
    expected = sum(1 / t for t in range(1, T + 1)) / T  # column 0 sees every query with weight 1/t
    assert math.isclose(float(alpha[0]), expected, rel_tol=1e-6)
    uniform = torch.full((T, T), 1 / T)
    assert m.head_labels(uniform, causal=False) == 2 and abs(float(m.row_entropy(uniform)) - math.log(T)) < 1e-6
    assert m.dobrushin(uniform) == 0.0


def test_sink_rate_thresholds_per_sample_then_averages():
    batch = torch.stack([pure_sink(), torch.eye(T), pure_sink(), torch.eye(T)])
    assert m.sink_rate(batch) == 0.5 and m.diagonal_rate(batch) == 0.5


def test_oversmoothing_measures():
    same = torch.ones(T, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert m.distance_to_mean(same) < 1e-6 and m.rank_collapse_residual(same) < 1e-6
    assert abs(float(m.mean_token_cosine(same)) - 1.0) < 1e-6
    orthogonal = torch.eye(T)
    assert float(m.mean_token_cosine(orthogonal)) == 0.0 and float(m.distance_to_mean(orthogonal)) > 0.9


def test_value_drain_ratio():
    v = torch.ones(T, 3)
    v[0] = 0.1
    assert abs(float(m.value_drain_ratio(v)) - 0.1) < 1e-6


def test_analyze_a_trained_run_writes_metrics_and_figures(make_cfg, tmp_path):
    import csv

    from qdsbench.analysis.analyze import analyze
    from qdsbench.train import train

    train(make_cfg("trainer.max_epochs=1", "model.num_heads=2", "model.depth=2"))
    out = analyze(tmp_path / "run", max_samples=32)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["layer"] for r in rows] == ["0", "1"]
    assert all(0 <= float(r["sink_rate"]) <= 1 and float(r["max_attention"]) > 0 for r in rows)
    assert (out / "attention_layer0.png").stat().st_size > 1000 and (out / "metrics_vs_layer.png").is_file()
