"""The CUDA paths equal the CPU ones: every attention backend, the QontOT simulator (forward and adjoint gradient),
FlexAttention's sink + window, and a training run on the GPU.

Marked ``gpu`` and skipped without a CUDA device; on a lent GPU machine: ``make test-gpu``. ``QDSBENCH_TEST_DEVICE=cpu``
runs the same comparisons with the CPU as the "device" (a dry run of the test code itself on a machine without one).
"""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch
from conftest import compose_config
from omegaconf import OmegaConf

from qdsbench import attention
from qdsbench.attention.flex import flex_sink_window as FLEX_SINK_WINDOW

DEVICE = os.environ.get("QDSBENCH_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device"),
]
# Options that make a backend deterministic or fit the test's shapes (the rest is conf/attention/<name>.yaml).
OPTIONS = {"performer": {"redraw": False}, "normlin": {"num_tokens": 16}, "monarch": {"block_size": 4}}
TOKENS = {"qontot": 8, "qontot_cpu": 4}  # 2^n_data_qubits; every other backend gets 16


def backend_config(name: str) -> dict:
    cfg = compose_config([f"attention={name}", "paths.output_dir=/tmp/x"])
    config = {k: v for k, v in OmegaConf.to_container(cfg.attention, resolve=True).items() if v is not None}
    return {**config, **OPTIONS.get(name, {})}


@pytest.mark.parametrize("name", sorted({n for n in attention.available()}))
def test_every_backend_on_the_device_equals_its_cpu_output_and_gradient(name):
    config = backend_config(name)
    config.pop("name")
    torch.manual_seed(0)
    cpu = attention.create(name, **config)
    device = copy.deepcopy(cpu).to(DEVICE)
    n = TOKENS.get(name, 16)
    q, k, v = (torch.randn(2, 2, n, 8, requires_grad=True) for _ in range(3))
    out = cpu(q, k, v)
    out.square().sum().backward()
    qd, kd, vd = (t.detach().to(DEVICE).requires_grad_() for t in (q, k, v))
    out_d = device(qd, kd, vd)
    assert out_d.device.type == torch.device(DEVICE).type
    assert torch.allclose(out_d.cpu(), out, atol=2e-4, rtol=2e-4), (out_d.cpu() - out).abs().max()
    if config.get("grad", "scores") == "none":
        return  # a static circuit passes no gradient to the scores
    out_d.square().sum().backward()
    for on_device, reference in ((qd, q), (kd, k), (vd, v)):
        if reference.grad is not None:
            assert torch.allclose(on_device.grad.cpu(), reference.grad, atol=1e-3, rtol=1e-3)


def test_qontot_simulator_on_the_device_equals_cpu_in_complex128_with_its_adjoint_gradient():
    torch.manual_seed(0)
    angles = torch.randn(5, 2**3, 2**3, dtype=torch.float64)  # the scores a QontOT layer feeds its circuit
    backend = attention.create("qontot", n_aux_qubits=4, layers=16, grad="scores", dtype="complex128")
    p_cpu = backend.normalize(angles.clone().requires_grad_())
    dev = copy.deepcopy(backend).to(DEVICE)
    scores = angles.clone().to(DEVICE).requires_grad_()
    p_dev = dev.normalize(scores)
    assert torch.allclose(p_dev.cpu(), p_cpu, atol=1e-10)
    assert torch.allclose(p_dev.sum(-1).cpu(), torch.ones(5, 8, dtype=torch.float64), atol=1e-10)
    weights = torch.randn(5, 8, 8, dtype=torch.float64)
    cpu_scores = angles.clone().requires_grad_()
    (backend.normalize(cpu_scores) * weights).sum().backward()
    (p_dev * weights.to(DEVICE)).sum().backward()
    assert torch.allclose(scores.grad.cpu(), cpu_scores.grad, atol=1e-9)


def test_sink_window_on_the_device_equals_the_dense_reference():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 300, 16) for _ in range(3))
    backend = attention.create("sink_window", window=32, sinks=4, causal=True).to(DEVICE)
    out = backend(q.to(DEVICE), k.to(DEVICE), v.to(DEVICE)).cpu()
    i, j = torch.arange(300)[:, None], torch.arange(300)[None, :]
    allowed = (j <= i) & ((i - j < 32) | (j < 4))
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert torch.allclose(out, reference, atol=1e-4)


def test_flex_sink_window_prefill_on_the_device_equals_the_dense_reference(monkeypatch):
    """From FLEX_MIN_N tokens a gradient-free float32 prefill runs FlexAttention (compiled on CUDA): the call is
    spied on, so the test fails if the block kernel answered instead."""
    from qdsbench.attention import flex, sink_window

    calls = []
    monkeypatch.setattr(flex, "flex_sink_window", lambda *a: calls.append(1) or FLEX_SINK_WINDOW(*a))
    n, window, sinks = sink_window.FLEX_MIN_N, 128, 4
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 16) for _ in range(3))
    backend = attention.create("sink_window", window=window, sinks=sinks, causal=True).to(DEVICE)
    with torch.no_grad():
        out = backend(q.to(DEVICE), k.to(DEVICE), v.to(DEVICE)).cpu()
    assert calls == [1]
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = (j <= i) & ((i - j < window) | (j < sinks))
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert torch.allclose(out, reference, atol=1e-4)


def test_a_training_run_on_the_device_records_it_and_learns(make_cfg, tmp_path):
    from qdsbench.train import train

    accelerator = "gpu" if DEVICE == "cuda" else "cpu"
    metrics = train(make_cfg("trainer.max_epochs=2", f"trainer.accelerator={accelerator}", "trainer.devices=1"))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["device"]["cuda"] is (DEVICE == "cuda") and record["status"] == "finished"
    if DEVICE == "cuda":  # the record names the GPU it ran on
        assert record["device"]["gpu"] == torch.cuda.get_device_name(0)
    assert metrics["test/acc"] > 0.3  # 10 classes: chance is 0.1
