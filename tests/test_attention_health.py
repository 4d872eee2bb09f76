"""The static-normaliser health check and the ViT initialisation factor it points to."""

import math

import pytest
import torch

from qdsbench.attention import create
from qdsbench.attention.health import DegenerateAttentionError, check_static_attention, degenerate, matrix_stats
from qdsbench.builders import build_net_from_overrides

STATIC_QONTOT = ("attention=qontot",)  # the QDS preset's static circuit: q_a = 4, 16 layers, parted, grad none


def _vit(init: str, attention=STATIC_QONTOT):
    """The QDS Table 1 preset's 1-layer ViT with model.init=<init>."""
    return build_net_from_overrides(["experiment=qds/table1", "model.depth=1", f"model.init={init}", *attention])


def test_stats_know_the_identity_the_uniform_and_an_informative_matrix():
    t = 8
    eye = torch.eye(t).expand(4, t, t)
    assert degenerate(matrix_stats(eye)) == "identity" and matrix_stats(eye)["mean_diagonal"] == 1.0
    uniform = torch.full((4, t, t), 1.0 / t)
    stats = matrix_stats(uniform)
    assert degenerate(stats) == "uniform" and stats["row_entropy_over_log_t"] == pytest.approx(1.0)
    near_identity = 0.97 * eye + 0.03 / t  # within 0.05 of I in every entry
    assert degenerate(matrix_stats(near_identity)) == "identity"
    torch.manual_seed(0)
    informative = create("sinkhorn", n_iter=50).normalize(3 * torch.randn(4, t, t))
    assert degenerate(matrix_stats(informative)) is None
    assert matrix_stats(informative)["sample_spread"] > 0.01


def test_static_qontot_with_timm_init_is_stopped_naming_the_factors():
    with pytest.raises(DegenerateAttentionError, match=r"within 0.05 of the identity.*model.init.*attention.inject"):
        check_static_attention(_vit("timm"), torch.rand(16, 1, 28, 28))


def test_static_qontot_with_sinkformer_init_passes_and_is_measured():
    (stats,) = check_static_attention(_vit("sinkformer"), torch.rand(16, 1, 28, 28))
    assert stats["mean_diagonal"] < 0.9 and stats["identity_distance"] > 0.05 and stats["uniform_distance"] > 0.05


def test_trained_backends_are_not_checked():
    assert check_static_attention(_vit("timm", ["attention=softmax"]), torch.rand(4, 1, 28, 28)) == []


def test_sinkformer_init_is_pytorch_default_linear_and_unit_normal_embeddings():
    timm_model, sink_model = _vit("timm", ["attention=softmax"]), _vit("sinkformer", ["attention=softmax"])
    qkv = sink_model.blocks[0].attn.qkv.weight.detach()
    bound = 1 / math.sqrt(qkv.shape[1])  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert qkv.abs().max() <= bound and qkv.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert sink_model.pos_embed.detach().std().item() == pytest.approx(1.0, rel=0.15)
    assert timm_model.pos_embed.std() < 0.05 and timm_model.blocks[0].attn.qkv.weight.std() < 0.03
    with pytest.raises(ValueError, match="unknown model.init 'xavier'; valid choices: timm, sinkformer"):
        _vit("xavier", ["attention=softmax"])


def _small_qontot(**kw):
    return create("qontot", n_data_qubits=2, n_aux_qubits=1, layers=2, grad="none", **kw)


def test_inject_standardized_feeds_the_circuit_per_matrix_standardised_scores():
    torch.manual_seed(1)
    scores = 5 + 3 * torch.randn(3, 4, 4)
    standard = (scores - scores.mean(dim=(-2, -1), keepdim=True)) / scores.std(dim=(-2, -1), keepdim=True)
    ours = _small_qontot(inject="standardized").normalize(scores)
    assert torch.allclose(ours, _small_qontot().normalize(standard), atol=1e-6)
    assert not torch.allclose(ours, _small_qontot().normalize(scores), atol=1e-3)


def test_inject_raw_is_scale_one_and_theta_range_scales_theta():
    q, k, v = torch.randn(3, 2, 1, 4, 16).unbind(0)
    raw, explicit = _small_qontot(inject="raw"), _small_qontot(scale=1.0)
    assert torch.allclose(raw(q, k, v), explicit(q, k, v), atol=1e-6)
    assert not torch.allclose(raw(q, k, v), _small_qontot()(q, k, v), atol=1e-4)  # default: 1/sqrt(d)
    assert torch.allclose(_small_qontot(theta_range=0.25).theta, 0.25 * _small_qontot().theta)
    with pytest.raises(ValueError, match="inject 'logits' is not valid; valid choices: scaled, raw, standardized"):
        _small_qontot(inject="logits")
