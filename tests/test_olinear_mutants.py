"""OLinear end to end against an independent float64 NumPy transcription of its architecture (results/olinear/README.md:
RevIN, x * phi, x Q_in^T + delta1, Linear, e_layers x [NormLin CSL + 1x1-conv FFN, post-LN], LayerNorm, Linear,
h Q_out + delta2, MLP, RevIN denorm), plus the construction contract: NormLin's mixing is row-stochastic and starts
as identity plus i.i.d. standard normal noise, Q may come as float64, each Q shape is checked on its own, and the
class defaults are the registered factory's. Written to kill the mutants listed in results/quality/mutation.md."""

import inspect

import numpy as np
import pytest
import torch
from scipy.special import erf

from qdsbench.models.olinear import NormLin, OLinear, create_olinear

EPS = 1e-5  # RevIN's and LayerNorm's eps


def orthogonal(n: int, seed: int) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0]


def build(t=12, tau=6, n=3, d=4, e_layers=2, seed=0, dtype=np.float32):
    torch.manual_seed(seed)
    net = OLinear(
        orthogonal(t, seed).astype(dtype),
        orthogonal(tau, seed + 1).astype(dtype),
        n,
        t,
        tau,
        embed_size=d,
        d_model=16,
        d_ff=24,
        e_layers=e_layers,
        dropout=0.0,
    ).eval()
    with torch.no_grad():  # every affine/offset/norm parameter non-trivial, so each must sit in the right place
        for name, p in net.named_parameters():
            if name.startswith("revin.") or name.startswith("delta") or "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return net


def gelu(a):
    return 0.5 * a * (1 + erf(a / np.sqrt(2)))


def layer_norm(a, weight, bias):
    mu = a.mean(-1, keepdims=True)
    return (a - mu) / np.sqrt(a.var(-1, keepdims=True) + EPS) * weight + bias


def reference_forecast(net, x: np.ndarray) -> np.ndarray:
    """OLinear's forward pass written out in float64 NumPy from the architecture, reading only the parameters."""
    p = {k: v.detach().double().numpy() for k, v in [*net.named_parameters(), *net.named_buffers()]}
    b, t, n = x.shape
    d, tau = net.embed_size, net.pred_len

    mean = x.mean(1, keepdims=True)
    std = np.sqrt(x.var(1, keepdims=True) + EPS)  # population variance + eps
    xn = (x - mean) / std * p["revin.weight"] + p["revin.bias"]

    # dimension extension and OrthoTrans: z[b, n, e, v] = sum_t xn[b, t, n] phi[e] Q_in[v, t] + delta1[n, v]
    z = np.einsum("btn,e,vt->bnev", xn, p["phi"][0], p["q_in"])
    z = z + p["delta1"].reshape(n, 1, t)  # one learnable offset per variate and time step
    h = z.reshape(b, n, d * t) @ p["proj_in.weight"].T + p["proj_in.bias"]

    for i in range(len(net.layers)):
        w = {k[len(f"layers.{i}.") :]: v for k, v in p.items() if k.startswith(f"layers.{i}.")}
        value = h @ w["value.weight"].T + w["value.bias"]
        soft = np.log1p(np.exp(w["normlin.weight"]))
        mix = soft / soft.sum(1, keepdims=True)  # each variate token: a convex combination of all of them
        mixed = np.einsum("nm,bmf->bnf", mix, value)
        h = layer_norm(h + mixed @ w["out.weight"].T + w["out.bias"], w["norm1.weight"], w["norm1.bias"])
        ffn = gelu(h @ w["conv1.weight"][:, :, 0].T + w["conv1.bias"]) @ w["conv2.weight"][:, :, 0].T
        h = layer_norm(h + ffn + w["conv2.bias"], w["norm2.weight"], w["norm2.bias"])

    h = layer_norm(h, p["norm.weight"], p["norm.bias"]) @ p["proj_out.weight"].T + p["proj_out.bias"]
    h = np.einsum("bnet,tv->bnev", h.reshape(b, n, d, tau), p["q_out"]) + p["delta2"].reshape(n, 1, tau)
    flat = h.transpose(0, 1, 3, 2).reshape(b, n, tau * d)  # time-major, as the official code flattens
    y = gelu(flat @ p["fc.0.weight"].T + p["fc.0.bias"]) @ p["fc.2.weight"].T + p["fc.2.bias"]
    y = y.transpose(0, 2, 1)  # [B, tau, N]
    return (y - p["revin.bias"]) / (p["revin.weight"] + EPS**2) * std + mean


@pytest.mark.parametrize("e_layers", [1, 2])
def test_the_forecast_is_the_architecture_written_out_in_float64(e_layers):
    net = build(e_layers=e_layers).double()
    x = np.random.default_rng(1).normal(loc=2.0, scale=3.0, size=(2, 12, 3))  # a non-zero mean and scale for RevIN
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 6, 3)
    np.testing.assert_allclose(got, reference_forecast(net, x), rtol=1e-9, atol=1e-9)


def test_normlin_mixes_with_a_row_stochastic_matrix():
    """Every row of the mixing matrix is a softplus-weighted average: identical tokens pass through unchanged."""
    torch.manual_seed(0)
    layer = NormLin(5, dropout=0.0).double()
    same = torch.randn(2, 1, 7, dtype=torch.float64).expand(2, 5, 7)
    one_hot = torch.eye(5, dtype=torch.float64)[None]  # token m = e_m, so the output is the mixing matrix itself
    with torch.no_grad():
        torch.testing.assert_close(layer(same), same, rtol=1e-12, atol=1e-12)
        mix = layer(one_hot)[0]
    soft = np.log1p(np.exp(layer.weight.detach().numpy()))
    np.testing.assert_allclose(mix.numpy(), soft / soft.sum(1, keepdims=True), rtol=1e-12)


def test_normlin_starts_as_identity_plus_iid_standard_normal_noise():
    torch.manual_seed(0)
    noise = (NormLin(64, dropout=0.0).weight.detach() - torch.eye(64)).double().numpy()
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1) < 0.1
    assert np.linalg.matrix_rank(noise) == 64  # independent entries, not one row repeated


def test_a_float64_q_gives_the_float32_model():
    x = torch.randn(2, 12, 3)
    net32, net64 = build(dtype=np.float32), build(dtype=np.float64)
    assert net64.q_in.dtype == net64.q_out.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(net64(x), net32(x))


def test_each_q_shape_is_checked_on_its_own():
    good_in, good_out = orthogonal(12, 0), orthogonal(6, 1)
    for q_in, q_out in ((orthogonal(11, 0), good_out), (good_in, orthogonal(7, 1))):
        with pytest.raises(ValueError, match=r"^Q shapes .* do not match seq_len=12, pred_len=6$"):
            OLinear(q_in, q_out, 3, 12, 6)


def test_the_class_defaults_are_the_registered_factorys():
    """Building OLinear directly gives the model `models.create("olinear")` builds (the paper's configuration)."""
    cls = inspect.signature(OLinear).parameters
    factory = inspect.signature(create_olinear).parameters
    shared = ["embed_size", "d_model", "d_ff", "e_layers", "dropout"]
    assert {k: cls[k].default for k in shared} == {k: factory[k].default for k in shared}
    net = OLinear(orthogonal(12, 0), orthogonal(6, 1), 3, 12, 6)
    built = (len(net.layers), net.embed_size, net.proj_in.out_features, net.fc[0].out_features, net.dropout.p)
    assert built == tuple(factory[k].default for k in ("e_layers", "embed_size", "d_model", "d_ff", "dropout"))
