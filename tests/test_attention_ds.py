"""Doubly stochastic normalisers: marginals, Sinkhorn convergence, exactness, gradients, masks, errors."""

import pytest
import torch

from qdsbench import attention
from qdsbench.attention.diagnostics import attention_diagnostics

DS_BACKENDS = {
    "qr": {},
    "qontot": {"n_data_qubits": 3, "n_aux_qubits": 2, "layers": 2, "dtype": "complex128"},
}


def scores(b=3, h=2, n=8, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, h, n, n, generator=g, dtype=torch.float64) * scale


def qk(b=2, h=2, n=8, d=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, dtype=torch.float64) for _ in range(3)]


def test_all_backends_are_registered():
    assert {"softmax", "sdpa", "normsoftmax_std", "normsoftmax_var", "sinkhorn", "qr", "qontot"} <= set(
        attention.available()
    )


@pytest.mark.parametrize("name", DS_BACKENDS)
def test_exactly_doubly_stochastic(name):
    p = attention.create(name, **DS_BACKENDS[name]).normalize(scores(scale=3.0))
    assert (p >= 0).all()
    assert (p.sum(-1) - 1).abs().max() < 1e-6
    assert (p.sum(-2) - 1).abs().max() < 1e-6


def test_qontot_complex64_is_doubly_stochastic_to_float32_precision():
    p = attention.create("qontot", layers=16, n_aux_qubits=4).normalize(scores().float())
    assert (p.sum(-1) - 1).abs().max() < 1e-5 and (p.sum(-2) - 1).abs().max() < 1e-5


def test_sinkhorn_one_iteration_is_softmax_exactly():
    q, k, v = qk()
    a = attention.create("sinkhorn", n_iter=1)
    b = attention.create("softmax")
    assert torch.equal(a.attention_matrix(q, k), b.attention_matrix(q, k))
    assert torch.equal(a(q, k, v), b(q, k, v))


def test_sinkhorn_column_error_falls_with_iterations_and_rows_stay_exact():
    s = scores(scale=2.0)
    errors = []
    for n_iter in (1, 3, 5, 21, 101):
        p = attention.create("sinkhorn", n_iter=n_iter).normalize(s)
        assert (p.sum(-1) - 1).abs().max() < 1e-12  # odd n_iter: exactly row-stochastic
        errors.append(float((p.sum(-2) - 1).abs().max()))
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 1e-6


def test_sinkhorn_matches_the_explicit_uv_iteration():
    """The compact form equals Sinkformer's u/v updates (uniform marginals, times n)."""
    s = scores(b=1, h=1, n=6)[0, 0]
    n = s.shape[0]
    u, v = torch.zeros(n, 1, dtype=s.dtype), torch.zeros(1, n, dtype=s.dtype)
    for i in range(5):
        if i % 2 == 0:
            u = torch.log(torch.tensor(1.0 / n)) - torch.logsumexp(s + u + v, dim=1, keepdim=True) + u
        else:
            v = torch.log(torch.tensor(1.0 / n)) - torch.logsumexp(s + u + v, dim=0, keepdim=True) + v
    reference = torch.exp(s + u + v) * n
    torch.testing.assert_close(attention.create("sinkhorn", n_iter=5).normalize(s[None, None])[0, 0], reference)


def test_qr_is_scale_and_sign_invariant_and_matches_definition():
    s = scores()
    backend = attention.create("qr", noise=0.0)
    p = backend.normalize(s)
    torch.testing.assert_close(backend.normalize(3.7 * s), p)
    u, _ = torch.linalg.qr(s)
    torch.testing.assert_close(p, u.square())


def test_normsoftmax_definition():
    q, k, _ = qk()
    raw = q @ k.transpose(-1, -2)
    for name, stat in (("normsoftmax_var", raw.var(-1, keepdim=True)), ("normsoftmax_std", raw.std(-1, keepdim=True))):
        expected = torch.softmax(raw / torch.clamp(stat, max=16**0.5), dim=-1)
        torch.testing.assert_close(attention.create(name).attention_matrix(q, k), expected)


@pytest.mark.parametrize(
    "name,options",
    [
        ("sinkhorn", {"n_iter": 3}),
        ("qr", {}),
        ("qontot", {"n_aux_qubits": 1, "layers": 1, "grad": "scores", "dtype": "complex128"}),
    ],
)
def test_gradcheck_scores(name, options):
    backend = attention.create(name, **options)
    n = 8
    s = scores(b=1, h=1, n=n, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: backend.normalize(x), (s,), eps=1e-6, atol=1e-5)


def test_gradcheck_qontot_full_mode_reaches_theta():
    backend = attention.create(
        "qontot", n_data_qubits=2, n_aux_qubits=1, layers=1, grad="full", dtype="complex128"
    ).double()
    s = scores(b=1, h=1, n=4, seed=4)
    theta = backend.theta.detach().clone().requires_grad_()
    assert isinstance(backend.theta, torch.nn.Parameter)
    p = backend.normalize(s)
    p.square().sum().backward()
    assert backend.theta.grad is not None and backend.theta.grad.abs().sum() > 0
    flat_scores = s.reshape(1, -1).repeat(1, backend.n_params // s.numel() + 1)[:, : backend.n_params]
    assert torch.autograd.gradcheck(lambda t: backend.dsm_from_angles(t * flat_scores), (theta,), eps=1e-6, atol=1e-5)


def test_qontot_grad_none_blocks_gradients_and_scores_mode_passes_them():
    q, k, v = (t.float().requires_grad_() for t in qk(n=8))
    static = attention.create("qontot", n_aux_qubits=1, layers=1)
    static(q, k, v).sum().backward()
    assert q.grad is None and v.grad is not None
    q.grad = None
    # .square(): out.sum() has zero gradient for any doubly stochastic P (columns sum to 1), whatever the scores
    attention.create("qontot", n_aux_qubits=1, layers=1, grad="scores")(q, k, v).square().sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def test_qontot_theta_zero_gives_identity():
    backend = attention.create("qontot", n_aux_qubits=4, layers=3, dtype="complex128")
    backend.theta.zero_()
    torch.testing.assert_close(backend.normalize(scores()), torch.eye(8, dtype=torch.float64).expand(3, 2, 8, 8))


def test_qontot_theta_seed_is_reproducible_and_matters():
    a = attention.create("qontot", layers=2, n_aux_qubits=1, theta_seed=1)
    b = attention.create("qontot", layers=2, n_aux_qubits=1, theta_seed=1)
    c = attention.create("qontot", layers=2, n_aux_qubits=1, theta_seed=2)
    assert torch.equal(a.theta, b.theta) and not torch.equal(a.theta, c.theta)
    assert a.n_params == 2 * (3 + 1 - 1) * 4


def test_masks_normalise_the_valid_block_without_nans():
    q, k, v = qk(n=8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, 5:] = False
    for name, options in (("sinkhorn", {"n_iter": 41}), ("qr", {})):
        p = attention.create(name, **options).attention_matrix(q, k, mask=mask)
        assert torch.isfinite(p).all()
        valid = p[0, :, :5, :5]
        assert (valid.sum(-1) - 1).abs().max() < 1e-6 and (valid.sum(-2) - 1).abs().max() < 1e-5
        assert p[0, :, :, 5:].abs().max() == 0
        out = attention.create(name, **options)(q, k, v, mask=mask)
        assert torch.isfinite(out).all()


def test_qontot_padding_and_its_error():
    q, k, v = qk(n=7)
    with pytest.raises(ValueError) as info:
        attention.create("qontot", n_aux_qubits=1, layers=1)(q, k, v)
    assert "N=7" in str(info.value) and "pad=true" in str(info.value) and "\n" not in str(info.value)
    p = attention.create("qontot", n_aux_qubits=1, layers=1, pad=True).attention_matrix(q, k)
    assert p.shape[-1] == 7 and (p.sum(-1) - 1).abs().max() < 1e-6


@pytest.mark.parametrize(
    "name,options,fragment",
    [
        ("sinkhorn", {"n_iter": 0}, "n_iter=0"),
        ("qr", {"dtype": "float16"}, "valid choices: float32, float64"),
        ("qontot", {"ansatz": "trotter"}, "valid choices: simple, parted"),
        ("qontot", {"grad": "all"}, "valid choices: none, scores, full"),
        ("qontot", {"vec_order": "diag"}, "valid choices: row, col"),
        ("sinkhorn", {"causal": True}, "does not support causal"),
        ("qontot", {"layer": 3}, "valid options:"),
    ],
)
def test_bad_options_are_one_line(name, options, fragment):
    with pytest.raises(ValueError) as info:
        attention.create(name, **options)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_diagnostics_on_known_matrices():
    eye = attention_diagnostics(torch.eye(4)[None])
    assert eye["row_marginal_error"] == 0 and eye["col_marginal_error"] == 0
    assert eye["dist_identity"] == 0 and abs(eye["effective_rank"] - 4) < 1e-9 and eye["row_entropy"] == 0
    uniform = attention_diagnostics(torch.full((1, 4, 4), 0.25))
    assert uniform["dist_uniform"] < 1e-12 and abs(uniform["effective_rank"] - 1) < 1e-6
    row_only = attention_diagnostics(torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]))
    assert row_only["col_marginal_error"] == 1.0


@pytest.mark.parametrize("attention_option", ["sinkhorn", "qr", "normsoftmax_var", "qontot"])
def test_every_backend_trains_the_vit(make_cfg, attention_option):
    from qdsbench.train import train

    extra = [
        "model.num_stripes=7",
        "model.tokenizer=stripes",
        "data=fake",
        "data.image_size=28",
        "data.in_chans=1",
        "data.size=64",
        "data.val_size=16",
        "data.batch_size=16",
    ]
    if attention_option == "qontot":
        extra += ["attention.layers=2", "attention.n_aux_qubits=1", "model.init=sinkformer"]  # static: see health
    metrics = train(
        make_cfg(f"attention={attention_option}", "trainer.max_epochs=1", *extra, run_name=attention_option)
    )
    assert 0 <= metrics["test/acc"] <= 1
