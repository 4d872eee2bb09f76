"""OLinear's defining property, against the paper's formulas rather than the module's own code: the first stage
is the OrthoTrans projection x Q^T (per variate and embedding channel), the output stage maps back with Q_out, and
swapping Q changes the forecast. No data files needed (random orthogonal Q)."""

import numpy as np
import pytest
import torch

from qdsbench.models.olinear import OLinear
from qdsbench.orthotrans import q_matrix, q_rows_for


def orthogonal(n: int, seed: int) -> np.ndarray:
    """A random orthogonal matrix that is neither symmetric nor a permutation (so Q, Q^T and I all differ)."""
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0].astype(np.float32)


def small_olinear(t=12, tau=6, n=3, d=4, seed=0):
    torch.manual_seed(seed)
    net = OLinear(
        orthogonal(t, seed),
        orthogonal(tau, seed + 1),
        n,
        t,
        tau,
        embed_size=d,
        d_model=16,
        d_ff=16,
        e_layers=1,
        dropout=0.0,
    ).eval()
    with torch.no_grad():  # non-trivial RevIN affine and offsets, so that each one must be in the right place
        for p in (net.revin.weight, net.revin.bias, net.delta1, net.delta2):
            p.add_(0.3 * torch.randn_like(p))
    return net


def captured_stages(net, x):
    seen = {}
    hooks = [
        net.proj_in.register_forward_pre_hook(lambda m, args: seen.__setitem__("proj_in", args[0])),
        net.proj_out.register_forward_hook(lambda m, args, out: seen.__setitem__("proj_out", out)),
        net.fc.register_forward_pre_hook(lambda m, args: seen.__setitem__("fc", args[0])),
    ]
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    return y, seen


def test_first_stage_is_x_q_transpose_and_the_output_stage_maps_back_with_q_out():
    t, tau, n, d, b = 12, 6, 3, 4, 2
    net = small_olinear(t, tau, n, d)
    x = torch.randn(b, t, n)
    _, seen = captured_stages(net, x)
    arr = {name: p.detach().double().numpy() for name, p in [*net.named_parameters(), *net.named_buffers()]}

    # independent float64 transcription: RevIN (population std + eps), dimension extension x * phi, then x Q^T
    xs = x.double().numpy()
    xn = (xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 1e-5)
    xn = xn * arr["revin.weight"] + arr["revin.bias"]
    phi = arr["phi"][0]  # (d,)
    q_in = arr["q_in"]
    first = np.einsum("btn,e,vt->bnev", xn, phi, q_in)  # (x Q^T)_v = sum_t x_t Q[v, t]
    first = first + arr["delta1"][0]  # (N, 1, T) broadcast over the embedding channel
    np.testing.assert_allclose(seen["proj_in"].double().numpy(), first.reshape(b, n, d * t), rtol=1e-4, atol=1e-5)

    # output stage: h (B, N, d, tau) -> h Q_out (+ delta2), flattened time-major for the MLP
    h = seen["proj_out"].double().numpy().reshape(b, n, d, tau)
    back = np.einsum("bnet,tv->bnev", h, arr["q_out"]) + arr["delta2"][0]
    np.testing.assert_allclose(
        seen["fc"].double().numpy(), back.transpose(0, 1, 3, 2).reshape(b, n, tau * d), rtol=1e-4, atol=1e-5
    )


def test_the_forecast_depends_on_q_in_and_q_out():
    net = small_olinear()
    x = torch.randn(2, 12, 3)
    with torch.no_grad():
        forecast = net(x)
        for name, size in (("q_in", 12), ("q_out", 6)):
            original = getattr(net, name).clone()
            for replacement in (torch.eye(size), original.T.contiguous(), torch.from_numpy(orthogonal(size, 9))):
                getattr(net, name).copy_(replacement)
                assert not torch.allclose(net(x), forecast, atol=1e-4), name
            getattr(net, name).copy_(original)
        assert torch.equal(net(x), forecast)


def test_q_matrix_skips_near_constant_variates_and_names_what_it_cannot_use():
    """OrthoTrans' guards (results/quality/mutation.md): a variate whose lagged variance is < 1e-4 is skipped, not
    averaged in, wherever it sits; it needs at least length + 1 rows; each refusal says why in its own words."""
    x = np.random.default_rng(0).normal(size=(40, 2))
    flat = np.full(40, 3.0)
    tiny = 3.0 + 1e-3 * np.random.default_rng(1).normal(size=40)  # variance ~1e-6: below the threshold
    small = 0.05 * np.random.default_rng(2).normal(size=40)  # variance ~2.5e-3: above it, so it counts
    q = q_matrix(x, 6)
    assert np.array_equal(q_matrix(np.column_stack([flat, x[:, 0], tiny, x[:, 1]]), 6), q)
    assert not np.allclose(q_matrix(np.column_stack([x, small]), 6), q, atol=1e-3)
    with pytest.raises(ValueError, match="^OrthoTrans: every variate is near-constant over the chosen rows$"):
        q_matrix(np.column_stack([flat, tiny]), 6)

    assert q_matrix(x[:13], 12).shape == (12, 12)  # length + 1 rows: the fewest it accepts
    for n in (12, 11):
        with pytest.raises(ValueError, match=f"^OrthoTrans needs more than length=12 rows, got {n}$"):
            q_matrix(x[:n], 12)
    with pytest.raises(ValueError, match="^unknown q_rows 'all'; valid choices: paper_ratio, train_split$"):
        q_rows_for(x, "all", 0.6, 20)
