"""What qdsbench knows about a backend it asks the backend: a new backend is its module and its conf/attention yaml.

A throwaway backend registered here (and nowhere else) gets convert's analytic FLOPs, the analysis capture and the
causal refusal without any list being edited; the FLOP formulas of the real backends are checked against torch's
FlopCounterMode, which counts the matmuls a forward actually runs.
"""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from qdsbench import attention, convert, models
from qdsbench.analysis.capture import Capture
from qdsbench.attention.base import AttentionBackend
from qdsbench.attention.registry import BACKENDS, register
from qdsbench.models.backend_attention import set_backend

TOY = "toy_uniform_test_only"


@pytest.fixture
def toy():
    """A backend whose every query attends every key equally (P = 1/N), registered for this test only."""

    @register(TOY)
    class UniformAttention(AttentionBackend):
        supports_causal = False

        def attention_matrix(self, q, k, mask=None):
            return torch.full((*q.shape[:-1], k.shape[-2]), 1.0 / k.shape[-2], dtype=q.dtype, device=q.device)

        def forward(self, q, k, v, mask=None):
            self.check_inputs(q, k, v)
            return self.attention_matrix(q, k) @ v

        def flops(self, n, d):
            return 2 * n * n * d  # P v only: no scores

    yield UniformAttention
    BACKENDS._factories.pop(TOY, None)


def tiny_vit(num_heads=2, depth=2):
    torch.manual_seed(0)
    net = models.create(
        "vit",
        attention={"name": "softmax"},
        image_size=8,
        in_chans=1,
        num_classes=3,
        tokenizer="patch",
        patch_size=4,
        embed_dim=16,
        depth=depth,
        num_heads=num_heads,
    )
    return net.eval()


class _Task(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def test_convert_reports_a_new_backends_flops_and_row_kl(toy, monkeypatch):
    images = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    batches = [(images[:4], torch.zeros(4, dtype=torch.long)), (images[4:], torch.ones(2, dtype=torch.long))]
    datamodule = SimpleNamespace(setup=lambda stage: None, test_dataloader=lambda: batches)
    monkeypatch.setattr(convert, "load_task", lambda run_dir: (None, _Task(tiny_vit()), datamodule, "ckpt"))

    result = convert.convert_and_evaluate("unused", {"name": TOY}, "all")

    n, d, heads, layers, samples = 5, 8, 2, 2, 6  # 4 patches + CLS, head size 16 / 2
    assert result["attention_flops_analytic"] == 2 * n * n * d * heads * layers * samples
    assert result["attention_flops_analytic"] == result["attention_flops_measured"]  # torch's own count
    assert result["flop_ratio_vs_softmax"] == pytest.approx(0.5)  # P v without q k^T
    assert all(kl is not None and kl >= 0 for kl in result["row_kl"])  # both backends have a matrix


def test_capture_records_a_new_backends_matrix_and_skips_it_on_request(toy):
    net = tiny_vit()
    set_backend(net, {"name": TOY})
    x = torch.randn(3, 1, 8, 8)
    with Capture(net, outputs=True) as cap, torch.no_grad():
        net(x)
    for record in cap.layers:
        assert record.backend == TOY
        p, v = record.cat("attention"), record.cat("v")
        torch.testing.assert_close(p, torch.full((3, 2, 5, 5), 0.2))
        torch.testing.assert_close(record.cat("out"), v.mean(-2, keepdim=True).expand_as(v))  # out = P v
    for matrices in ("none", "formed"):  # it forms no matrix in its forward, so "formed" builds none either
        with Capture(net, matrices=matrices, hidden=False) as lean, torch.no_grad():
            net(x)
        assert all(r.cat("attention") is None and r.cat("q").shape == (3, 2, 5, 8) for r in lean.layers)


def test_formed_keeps_the_matrices_forwards_build_and_builds_no_other():
    net, x = tiny_vit(), torch.randn(3, 1, 8, 8)
    with Capture(net) as full, torch.no_grad():
        net(x)
    with Capture(net, matrices="formed", inputs=False, hidden=False) as formed, torch.no_grad():
        net(x)
    for a, b in zip(full.layers, formed.layers):  # softmax forms P: the diagnostics get the very matrix
        assert torch.equal(a.cat("attention"), b.cat("attention")) and b.cat("q") is None
    set_backend(net, {"name": "monarch", "block_size": 2})  # builds P only when asked: "formed" does not ask
    with Capture(net, matrices="formed") as lean, torch.no_grad():
        net(x)
    assert all(r.cat("attention") is None for r in lean.layers)
    assert all(not b.capture for _, b in lean.backends)


def test_a_backend_that_cannot_be_causal_is_refused_naming_those_that_can(toy):
    assert toy.not_supported_reasons(causal=False) == []
    (reason,) = toy.not_supported_reasons(causal=True)
    listed = reason.split("causal backends: ")[1].split(" (")[0].split(", ")
    assert f"'{TOY}'" in reason.split(";")[0] and "\n" not in reason
    assert {"softmax", "sdpa"} <= set(listed) and TOY not in listed
    with pytest.raises(ValueError, match=f"'{TOY}' does not support causal=True; causal backends: .*softmax"):
        attention.create(TOY, causal=True)
    with pytest.raises(ValueError, match=f"'{TOY}' does not support causal=True"):  # a causal model asks too
        models.create("decoder_lm", attention={"name": TOY}, vocab_size=10, embed_dim=16, depth=1, num_heads=2)
    assert attention.create(TOY)(*torch.randn(3, 1, 1, 4, 2)).shape == (1, 1, 4, 2)  # non-causal is fine


@pytest.mark.parametrize("name", attention.available())
def test_analytic_flops_equal_the_matmuls_a_forward_runs(name):
    try:
        backend = attention.create(name)
    except (TypeError, ValueError):
        pytest.skip(f"{name} needs options to build (its own tests cover it)")
    n, d = 16, 8
    analytic = backend.flops(n, d)
    if analytic is None:
        pytest.skip(f"{name}: no analytic formula (measured FLOPs only)")
    q, k, v = torch.randn(3, 1, 1, n, d, generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        backend(q, k, v)
    measured = counter.get_total_flops()
    if measured == 0:  # a fused kernel the counter cannot see into (sdpa on the CPU): count its explicit form
        with FlopCounterMode(display=False) as counter:
            backend.attention_matrix(q, k) @ v
        measured = counter.get_total_flops()
    assert analytic == measured


def test_refusal_lists_exactly_the_backends_that_build_causally():
    can = []
    for name in attention.available():
        try:
            attention.create(name, causal=True)
            can.append(name)
        except (TypeError, ValueError) as err:
            if "does not support causal" not in str(err):
                can.append(name)  # refused for another reason (a required option): causality itself is fine
    (reason,) = attention.BACKENDS.get("sinkhorn").not_supported_reasons(causal=True)
    assert reason.split("causal backends: ")[1].split(" (")[0].split(", ") == can
