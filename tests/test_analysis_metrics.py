"""Analysis metrics on hand-built attention matrices with known answers (analysis notes, A1a), the capture hooks on
the ViT and the tagger, and ``qdsbench-analyze`` on a tiny digits run."""

import csv
import math

import pytest
import torch

from qdsbench import attention
from qdsbench.analysis import metrics as m

T = 6
DS = {
    "sinkhorn": {"n_iter": 201},
    "qr": {},
    "qontot": {"n_data_qubits": 3, "n_aux_qubits": 1, "layers": 2, "grad": "scores", "dtype": "complex128"},
}


def pure_sink(t=T):
    return torch.zeros(t, t).index_fill_(1, torch.tensor([0]), 1.0)


def causal_uniform(t=T):
    return torch.tril(torch.ones(t, t, dtype=torch.float64)) / torch.arange(1, t + 1, dtype=torch.float64)[:, None]


def values(t=T, d=4, seed=0):
    return torch.randn(t, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_pure_sink_matrix():
    a = pure_sink().double()
    v = values()
    alpha = m.importance(a)
    assert alpha[0] == 1.0 and alpha[1:].abs().max() == 0
    assert m.sink_rate(a[None]) == 1.0 and m.diagonal_rate(a[None]) == 0.0
    assert m.head_labels(a) == 0 and m.first_token_attention(a) == 1.0
    assert m.dobrushin(a) == 0.0 and m.max_attention(a) == 1.0 and m.row_entropy(a) == 0.0
    assert m.sink_concentration(a) == 1.0 and m.sink_argmax_fraction(a) == 1.0
    assert float(m.signal_kept(a, v)) < 1e-12  # every query gets v_1: no token-specific signal
    expected_gain = float(v[0].norm() * math.sqrt(T) / v.norm())  # the notes' g = ||v_1|| sqrt(T) / ||V||_F
    assert math.isclose(float(m.output_gain(a, v)), expected_gain, rel_tol=1e-12)
    assert float(m.sigma2_contraction(a)) < 1e-12


def test_identity_and_uniform():
    eye, v = torch.eye(T, dtype=torch.float64), values()
    assert m.diagonal_score(eye) == 1.0 and m.head_labels(eye) == 1 and m.dobrushin(eye) == 1.0
    assert math.isclose(float(m.output_gain(eye, v)), 1.0) and math.isclose(float(m.signal_kept(eye, v)), 1.0)
    assert math.isclose(float(m.sigma2_contraction(eye)), 1.0) and math.isclose(float(m.sink_concentration(eye)), 1 / T)
    uniform = torch.full((T, T), 1 / T, dtype=torch.float64)
    assert m.head_labels(uniform, causal=False) == 2 and abs(float(m.row_entropy(uniform)) - math.log(T)) < 1e-9
    assert m.dobrushin(uniform) == 0.0 and float(m.signal_kept(uniform, v)) < 1e-12
    assert float(m.sigma2_contraction(uniform)) < 1e-12 and float(m.column_importance_error(uniform)) < 1e-12


@pytest.mark.parametrize("t", [6, 64])
def test_causal_uniform_importance_is_harmonic_over_t(t):
    a = causal_uniform(t)
    harmonic = sum(1 / s for s in range(1, t + 1))
    assert math.isclose(float(m.importance(a)[0]), harmonic / t, rel_tol=1e-12)
    if t == 64:  # the notes: alpha_1 ~ 0.074 < 0.3, so Sink_1 = 0%
        assert abs(float(m.importance(a)[0]) - 0.074) < 5e-4 and m.sink_rate(a[None]) == 0.0


def official_sink_rate(attn, epsilon):
    """sail-sg/Attention-Sink ``compute_attention_sink`` semantics: per sequence, column k summed over queries and
    divided by T - k, thresholded per (layer, head), averaged; then averaged over sequences."""
    rates = []
    for seq in attn:  # (layers, heads, T, T)
        t = seq.shape[-1]
        score = seq.sum(-2) / (t - torch.arange(t, dtype=seq.dtype))
        rates.append((score > epsilon).double().mean(dim=(0, 1)))
    return torch.stack(rates).mean(0)[0]


def test_sink_rate_thresholds_per_sample_then_averages():
    batch = torch.stack([pure_sink(), torch.eye(T), pure_sink(), torch.eye(T)])
    assert m.sink_rate(batch) == 0.5 and m.diagonal_rate(batch) == 0.5
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, 2, 16, 16, generator=g, dtype=torch.float64) * 2
    logits[..., 0] += torch.rand(5, 3, 2, 1, generator=g, dtype=torch.float64) * 4  # some heads sink, some not
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    attn = torch.softmax(logits.masked_fill(~causal, float("-inf")), -1)
    assert 0 < float(m.sink_rate(attn)) < 1
    assert math.isclose(float(m.sink_rate(attn)), float(official_sink_rate(attn, 0.3)), abs_tol=1e-12)


@pytest.mark.parametrize("name", DS)
def test_doubly_stochastic_gu_score_of_every_column_is_one_over_t(name):
    g = torch.Generator().manual_seed(1)
    q, k = (torch.randn(2, 2, 8, 16, generator=g, dtype=torch.float64) for _ in range(2))
    k[..., 0, :] = q.mean(-2) * 5  # a strong first-key bias: softmax makes key 0 a sink
    a = attention.create(name, **DS[name]).attention_matrix(q, k).double()
    assert float(m.column_importance_error(a).max()) < 1e-6
    assert m.sink_rate(a, causal=False) == 0.0  # alpha_1 = 1/8 < 0.3 for every head
    soft = attention.create("softmax").attention_matrix(q, k)
    assert float(m.importance(soft, causal=False)[..., 0].mean()) > 0.5


def test_oversmoothing_measures():
    same = torch.ones(T, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert m.distance_to_mean(same) < 1e-6 and m.rank_collapse_residual(same) < 1e-6
    assert abs(float(m.mean_token_cosine(same)) - 1.0) < 1e-6
    orthogonal = torch.eye(T)
    assert float(m.mean_token_cosine(orthogonal)) == 0.0 and float(m.distance_to_mean(orthogonal)) > 0.9
    x = values(seed=3)
    uniform = torch.full((T, T), 1 / T, dtype=torch.float64)
    assert math.isclose(float(m.residual_smoothing(x, x)), 1.0)
    assert float(m.residual_smoothing(x, uniform @ x)) < 1e-12  # averaging attention alone collapses the stream


def test_value_drain_ratio_and_proxy():
    v = torch.ones(T, 3)
    v[0] = 0.1
    assert abs(float(m.value_drain_ratio(v)) - 0.1) < 1e-6
    sig = torch.sigmoid(torch.randn(T, T, generator=torch.Generator().manual_seed(0)))
    assert not m.is_row_stochastic(sig) and m.is_row_stochastic(m.proxy_attention(sig))


def test_capture_hooks_on_the_vit_shapes_and_reference_matrices():
    from qdsbench import models
    from qdsbench.analysis.capture import Capture

    torch.manual_seed(0)
    net = models.create(
        "vit",
        attention={"name": "softmax"},
        image_size=8,
        in_chans=1,
        num_classes=10,
        tokenizer="stripes",
        num_stripes=4,
        embed_dim=32,
        depth=3,
        num_heads=2,
    )
    net.eval()
    x = torch.randn(5, 1, 8, 8)
    with Capture(net) as cap:
        net(x[:3])
        net(x[3:])
    assert [r.module for r in cap.layers] == [f"blocks.{i}.attn.backend" for i in range(3)]
    for record in cap.layers:
        a, q, v = record.cat("attention"), record.cat("q"), record.cat("v")
        assert a.shape == (5, 2, 5, 5) and q.shape == v.shape == (5, 2, 5, 16)
        torch.testing.assert_close(a.sum(-1), torch.ones(5, 2, 5))
        states = cap.hidden_states(record.index)
        assert states["block_in"].shape == states["block_out"].shape == states["after_attn"].shape == (5, 5, 32)
    assert all(not b.capture and b.last_attention is None for _, b in cap.backends)  # hooks leave no state behind
    # the residual stream after attention, rebuilt from the hooks, equals the block's own computation
    block = net.blocks[0]
    x0 = cap.hidden_states(0)["block_in"]
    with torch.no_grad():
        torch.testing.assert_close(cap.hidden_states(0)["after_attn"], x0 + block.attn(block.norm1(x0)))
    # fused sdpa: the matrix is recomputed from the captured q, k and equals softmax's
    from qdsbench.models.backend_attention import set_backend

    set_backend(net, {"name": "sdpa"})
    with Capture(net) as fused:
        net(x)
    torch.testing.assert_close(fused.layers[0].cat("attention"), cap.layers[0].cat("attention"))
    set_backend(net, {"name": "performer"})
    with Capture(net) as kernel:
        net(x)
    assert kernel.layers[0].cat("attention") is None and kernel.layers[0].cat("v").shape == (5, 2, 5, 16)


def test_analyze_a_trained_run_writes_metrics_and_figures(make_cfg, tmp_path):
    from qdsbench.analysis.analyze import analyze
    from qdsbench.train import train

    train(make_cfg("trainer.max_epochs=1", "model.num_heads=2", "model.depth=2"))
    out = analyze(tmp_path / "run", max_samples=32)
    assert out.parent == tmp_path / "run" / "analysis"
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["layer"] for r in rows] == ["0", "1"] and {r["samples"] for r in rows} == {"32"}
    for r in rows:
        assert 0 <= float(r["sink_rate"]) <= 1 and float(r["max_attention"]) > 0
        assert 0 < float(r["distance_to_mean"]) <= 1 and float(r["ds_row_marginal_error"]) < 1e-5
        assert float(r["qk_norm"]) > 0 and r["proxy"] == "0"
    heads = list(csv.DictReader(open(out / "metrics_heads.csv")))
    assert [(h["layer"], h["head"]) for h in heads] == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    assert (out / "attention_layer0.png").stat().st_size > 1000 and (out / "metrics_vs_layer.png").is_file()
    again = analyze(tmp_path / "run", max_samples=8, wandb=False)
    assert again != out and (out / "metrics.csv").is_file()  # a second analysis never overwrites the first
    with pytest.raises(ValueError, match="never overwritten"):
        analyze(tmp_path / "run", out_dir=out, max_samples=8, wandb=False)


def test_analyze_cli_takes_run_dir_and_reports_bad_input(make_cfg, tmp_path):
    from conftest import run_cli

    from qdsbench.train import train

    train(make_cfg("trainer.max_epochs=1"))
    result = run_cli("qdsbench-analyze", f"run_dir={tmp_path / 'run'}", "max_samples=16", "wandb=false")
    assert result.returncode == 0, result.stderr
    produced = list((tmp_path / "run" / "analysis").glob("*/metrics.csv"))
    assert len(produced) == 1 and (produced[0].parent / ".hydra" / "config.yaml").is_file()
    from qdsbench.analysis.analyze import analyze

    with pytest.raises(ValueError, match="^split=train is not valid; valid choices: test, val$"):
        analyze(tmp_path / "run", split="train", wandb=False)
