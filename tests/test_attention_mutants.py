"""Holes found by mutation testing of qdsbench/attention (results/quality/mutation.md), each closed against a
reference that shares none of the implementation's code: NumPy loops over single matrices, brute-force pair
enumeration, the formulas as the docstrings state them.
"""

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from attention_reference import normsoftmax_reference, sinkhorn_reference, softmax_over_allowed

from qdsbench import attention
from qdsbench.attention.delta import MODES, dense_rows, pair_counts, split_points
from qdsbench.attention.diagnostics import attention_diagnostics
from qdsbench.attention.health import degenerate, matrix_stats
from qdsbench.attention.qr import fixed_noise


def _matrices(*shape, seed=0, zeros=True) -> torch.Tensor:
    """Positive matrices that are neither row- nor column-stochastic, some entries exactly 0 (0 log 0 = 0)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(*shape, generator=g, dtype=torch.float64) ** 2
    if zeros:
        p = p.masked_fill(torch.rand(*shape, generator=g) < 0.2, 0.0)
    return p


def _diagnostics_numpy(p: np.ndarray) -> dict[str, float]:
    """One matrix at a time, every quantity from its definition."""
    rows = {k: [] for k in ("row", "col", "ent", "uni", "eye", "rank")}
    for m in p.reshape(-1, *p.shape[-2:]):
        nq, nk = m.shape
        rows["row"].append(max(abs(m[i].sum() - 1) for i in range(nq)))
        rows["col"].append(max(abs(m[:, j].sum() - nq / nk) for j in range(nk)))
        rows["ent"].append(np.mean([-sum(x * math.log(x) for x in m[i] if x > 0) for i in range(nq)]))
        rows["uni"].append(math.sqrt(sum((x - 1 / nk) ** 2 for x in m.ravel())))
        eye = np.eye(nq, nk)
        rows["eye"].append(math.sqrt(((m - eye) ** 2).sum()))
        s = np.linalg.svd(m, compute_uv=False)
        w = s / s.sum()
        rows["rank"].append(math.exp(-sum(x * math.log(x) for x in w if x > 0)))
    return {
        "row_marginal_error": np.mean(rows["row"]),
        "col_marginal_error": np.mean(rows["col"]),
        "row_entropy": np.mean(rows["ent"]),
        "dist_uniform": np.mean(rows["uni"]),
        "dist_identity": np.mean(rows["eye"]),
        "effective_rank": np.mean(rows["rank"]),
    }


@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (4, 6, 3), (7, 7)])
def test_diagnostics_equal_their_definitions_matrix_by_matrix(shape):
    p = _matrices(*shape, seed=len(shape))
    got, want = attention_diagnostics(p), _diagnostics_numpy(p.numpy())
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key


def test_diagnostics_of_float32_input_are_computed_in_float64():
    p = _matrices(3, 6, 6, seed=5, zeros=False).float()
    want = _diagnostics_numpy(p.double().numpy())
    got = attention_diagnostics(p)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-10), key


def _stats_numpy(p: np.ndarray) -> dict[str, float]:
    p = p.reshape(-1, *p.shape[-2:])
    t = p.shape[-1]
    ent = [
        np.mean([-sum(x * math.log(x) for x in row if x > 0) for row in m]) / math.log(t)
        for m in p  # the mean over rows of each matrix, then over matrices
    ]
    return {
        "mean_diagonal": float(np.mean([np.trace(m) / t for m in p])),
        "row_entropy_over_log_t": float(np.mean(ent)),
        "identity_distance": float(np.mean([np.abs(m - np.eye(t)).max() for m in p])),
        "uniform_distance": float(np.mean([np.abs(m - 1 / t).max() for m in p])),
        "sample_spread": float(np.std(p, axis=0, ddof=1).mean()) if len(p) > 1 else 0.0,
    }


@pytest.mark.parametrize("shape", [(3, 2, 6, 6), (5, 4, 4), (1, 5, 5)])
def test_health_statistics_equal_their_definitions(shape):
    g = torch.Generator().manual_seed(sum(shape))
    p = torch.softmax(3 * torch.randn(*shape, generator=g, dtype=torch.float64), -1)
    p[..., 0, :] = torch.nn.functional.one_hot(torch.tensor(1), shape[-1]).to(p)  # a row with exact zeros
    got, want = matrix_stats(p), _stats_numpy(p.numpy())
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-10, abs=1e-14), key


def test_degenerate_thresholds_are_inclusive_and_identity_is_named_first():
    base = {"identity_distance": 0.3, "uniform_distance": 0.3}
    assert degenerate(base) is None
    assert degenerate({**base, "identity_distance": 0.05}) == "identity"  # exactly at the threshold counts
    assert degenerate({**base, "identity_distance": 0.0501}) is None
    assert degenerate({**base, "uniform_distance": 0.05}) == "uniform"
    assert degenerate({**base, "uniform_distance": 0.0501}) is None
    assert degenerate({"identity_distance": 0.01, "uniform_distance": 0.01}) == "identity"
    assert degenerate({**base, "uniform_distance": 0.2}, within=0.25) == "uniform"


def _pairs_brute_force(n, window, sinks, gamma, tail_min, tail, mode):
    sparse = sum(1 for i in range(n) for j in range(i + 1) if i - j < window or j < sinks)
    cut = min(n, n % gamma + max(tail_min, gamma)) if tail else 0  # split_points' docstring rule
    s_p = n - cut
    anchors = list(range(0, s_p, gamma))
    anchor_pairs = sum(a + 1 for a in anchors) if mode in ("recompute", "delta") else 0
    tail_pairs = sum(i + 1 for i in range(s_p, n)) if mode != "sparse" else 0
    return {
        "full": sum(i + 1 for i in range(n)),
        "sparse": sparse,
        "anchors": anchor_pairs,
        "tail": tail_pairs,
        "total": sparse + anchor_pairs + tail_pairs,
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "n,window,sinks,gamma,tail_min,tail",
    [(50, 7, 3, 4, 9, True), (61, 8, 0, 5, 0, True), (40, 40, 2, 3, 6, False), (9, 16, 4, 4, 128, True)],
)
def test_pair_counts_equal_brute_force_enumeration(mode, n, window, sinks, gamma, tail_min, tail):
    assert pair_counts(n, window, sinks, gamma, tail_min, tail, mode) == _pairs_brute_force(
        n, window, sinks, gamma, tail_min, tail, mode
    )


def test_pair_counts_default_mode_and_tail_are_delta_with_its_tail():
    assert pair_counts(300, 16, 4, 8) == _pairs_brute_force(300, 16, 4, 8, 128, True, "delta")


def test_split_points_keep_the_last_block_dense():
    assert split_points(100, 16, 20, True)[0] == 100 - (100 % 16 + 20)  # 76
    s_p, anchors = split_points(100, 16, 20, True)
    assert anchors.tolist() == [0, 16, 32, 48, 64]
    assert split_points(100, 16, 20, False)[0] == 100  # no tail: every query is corrected
    assert split_points(10, 16, 20, True)[0] == 0  # the tail cannot be longer than the sequence


def _sigmoid_reference(scores, mask=None, bias=None):
    """P_ij = sigmoid(s_ij + b), b = -log N with N the keys some query may attend; masked entries 0."""
    p = np.zeros_like(scores)
    for index in np.ndindex(scores.shape[:-2]):
        s = scores[index]
        m = np.ones_like(s, dtype=bool) if mask is None else np.broadcast_to(mask, scores.shape)[index]
        kept = max(1, int(m.any(axis=0).sum()))
        b = bias if bias is not None else -math.log(kept if mask is not None else s.shape[-1])
        p[index] = np.where(m, 1 / (1 + np.exp(-(s + b))), 0.0)
    return p


def test_sigmoid_normalize_matches_its_definition_with_and_without_masks():
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(2, 2, 6, 6, generator=g, dtype=torch.float64)
    backend = attention.create("sigmoid")
    np.testing.assert_allclose(backend.normalize(scores).numpy(), _sigmoid_reference(scores.numpy()), rtol=1e-12)
    padding = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])[:, None, None, :]  # batch 0 pads 2 keys
    np.testing.assert_allclose(
        backend.normalize(scores, padding).numpy(), _sigmoid_reference(scores.numpy(), padding.numpy()), rtol=1e-12
    )
    causal = torch.ones(6, 6, dtype=torch.bool).tril()[None, None]  # causal keeps N = 6: the last row sees all
    np.testing.assert_allclose(
        backend.normalize(scores, causal).numpy(), _sigmoid_reference(scores.numpy(), causal.numpy()), rtol=1e-12
    )
    fixed = attention.create("sigmoid", bias=-0.5)
    np.testing.assert_allclose(
        fixed.normalize(scores, padding).numpy(),
        _sigmoid_reference(scores.numpy(), padding.numpy(), bias=-0.5),
        rtol=1e-12,
    )


def _qkv(n=12, d=4, seed=0, heads=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, heads, n, d, generator=g, dtype=torch.float64) for _ in range(3)]


def _row_normalised(weights: np.ndarray, v: np.ndarray) -> np.ndarray:
    """out_i = sum_j w_ij v_j / sum_j w_ij, for (..., N, N) weights written out as a matrix."""
    return weights @ v / weights.sum(-1, keepdims=True)


def test_cosformer_is_relu_features_reweighted_by_cos_of_the_position_gap():
    """cos(a_i) cos(a_j) + sin(a_i) sin(a_j) = cos(a_i - a_j), a_i = (pi / 2) i / N: the paper's re-weighting."""
    q, k, v = _qkv(n=10, seed=1)
    q, k = q + 1, k + 1  # some negative entries for the ReLU to cut, but no all-zero feature row
    n = q.shape[-2]
    i = np.arange(n)
    gap = np.cos((np.pi / 2) * (i[:, None] - i[None, :]) / n)
    weights = np.maximum(q.numpy(), 0) @ np.maximum(k.numpy(), 0).swapaxes(-1, -2) * gap
    assert (weights.sum(-1) > 1e-3).all()
    got = attention.create("cosformer")(q, k, v).numpy()
    np.testing.assert_allclose(got, _row_normalised(weights, v.numpy()), rtol=1e-10)


def test_linear_attention_is_elu_plus_one_features():
    q, k, v = _qkv(seed=2)

    def elu1(x):
        return np.where(x > 0, x + 1, np.exp(x))

    weights = elu1(q.numpy()) @ elu1(k.numpy()).swapaxes(-1, -2)
    np.testing.assert_allclose(attention.create("linear")(q, k, v).numpy(), _row_normalised(weights, v.numpy()))


def test_performer_is_positive_random_features_of_prescaled_queries_and_keys():
    q, k, v = _qkv(n=9, d=4, seed=3)
    r, seed = 16, 7
    omega = torch.randn(r, 4, generator=torch.Generator().manual_seed(seed)).double().numpy()
    pre = 4**-0.25  # d^-1/4 on each side

    def phi(x):
        x = x * pre
        return np.exp(x @ omega.T - (x**2).sum(-1, keepdims=True) / 2) / math.sqrt(r)

    weights = phi(q.numpy()) @ phi(k.numpy()).swapaxes(-1, -2)
    backend = attention.create("performer", num_features=r, redraw=False, seed=seed)
    np.testing.assert_allclose(backend(q, k, v).numpy(), _row_normalised(weights, v.numpy()), rtol=1e-6)
    assert torch.equal(backend(q, k, v), backend(q, k, v))  # redraw=False: the same features every call
    other = attention.create("performer", num_features=r, redraw=False, seed=seed + 1)
    assert not torch.allclose(other(q, k, v), backend(q, k, v))
    redrawn = attention.create("performer", num_features=r, redraw=True, seed=seed)
    assert not torch.allclose(redrawn(q, k, v), redrawn(q, k, v))  # the authors' redraw on every call


def test_performer_approaches_softmax_with_many_features():
    q, k, v = (0.5 * t for t in _qkv(n=8, d=4, seed=4))
    want = torch.softmax(q @ k.mT / 2, -1) @ v
    torch.manual_seed(0)
    got = attention.create("performer", num_features=20000)(q, k, v)
    assert (got - want).abs().max() < 0.05  # unbiased estimator of exp(q.k / sqrt(d)); error ~ 1 / sqrt(r)


def test_iterative_pinv_is_the_nystromformer_iteration_and_converges_to_the_inverse():
    g = torch.Generator().manual_seed(5)
    x = torch.softmax(2 * torch.randn(3, 6, 6, generator=g, dtype=torch.float64), -1)
    xn = x.numpy()

    def newton_schulz(m, iterations):
        eye = np.eye(m.shape[-1])
        z = m.T / (np.abs(m).sum(0).max() * np.abs(m).sum(1).max())  # Z0 = X^T / (||X||_1 ||X||_inf)
        for _ in range(iterations):
            xz = m @ z
            z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
        return z

    from qdsbench.attention.kernelized import iterative_pinv

    want = np.stack([newton_schulz(m, 6) for m in xn])
    np.testing.assert_allclose(iterative_pinv(x).numpy(), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(iterative_pinv(x, 3).numpy(), np.stack([newton_schulz(m, 3) for m in xn]), rtol=1e-9)
    converged = iterative_pinv(x, 40).numpy()
    np.testing.assert_allclose(converged, np.linalg.pinv(xn), atol=1e-8)


def test_nystrom_with_every_token_a_landmark_is_exact_softmax_attention():
    """With m = N landmarks the Nystrom factors are softmax(QK^T) pinv(softmax(QK^T)) softmax(QK^T) = softmax(QK^T)
    (for an invertible kernel), so the output is exact attention; with fewer, landmarks are segment means."""
    q, k, v = _qkv(n=8, d=4, seed=6)
    exact = torch.softmax(q @ k.mT / 2, -1) @ v
    got = attention.create("nystrom", num_landmarks=8, pinv_iterations=60)(q, k, v)
    torch.testing.assert_close(got, exact, rtol=1e-6, atol=1e-8)
    # 4 landmarks of 8 tokens: means of tokens (0, 1), (2, 3), ...; kernels as the Nystromformer paper writes them
    qn, kn, vn = (t.numpy() for t in (q, k, v))
    ql, kl = (t.reshape(*t.shape[:2], 4, 2, 4).mean(-2) for t in (qn, kn))

    def softmax(s):
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    k1, k2, k3 = (softmax(a @ b.swapaxes(-1, -2) / 2) for a, b in ((qn, kl), (ql, kl), (ql, kn)))
    want = k1 @ np.linalg.pinv(k2) @ (k3 @ vn)
    got = attention.create("nystrom", num_landmarks=4, pinv_iterations=60)(q, k, v).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert attention.create("nystrom", num_landmarks=1)(q, k, v).shape == v.shape  # one landmark is valid
    with pytest.raises(ValueError, match=r"num_landmarks=0 must be >= 1"):
        attention.create("nystrom", num_landmarks=0)
    with pytest.raises(ValueError, match=r"num_features=0 must be >= 1"):
        attention.create("performer", num_features=0)
    assert attention.create("performer", num_features=1)(q, k, v).shape == v.shape


ATTENTION_CONF = Path(__file__).resolve().parents[1] / "conf" / "attention"


@pytest.mark.parametrize("path", sorted(ATTENTION_CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_code_defaults_equal_the_config_group(path):
    """`create(name)` in a study or test must build what `attention=<name>` builds in a run: every option the YAML
    sets to a plain value is also the constructor's default (a default edited in one place only diverges)."""
    from omegaconf import OmegaConf

    from qdsbench.attention.registry import BACKENDS

    config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if "defaults" in config:
        pytest.skip(f"{path.name} is a variant of {config['defaults'][0]}.yaml (checked there): overrides on purpose")
    parameters = inspect.signature(BACKENDS.get(config.pop("name")).__init__).parameters
    checked = 0
    for key, value in config.items():
        if isinstance(value, str) and "${" in value:
            continue  # interpolated from the run's data or model: no code default to compare
        if key in parameters and parameters[key].default is not inspect.Parameter.empty:
            default = parameters[key].default
            assert default == value, f"{path.name}: {key}={value!r}, code default {default!r}"
            checked += 1
    assert checked or not config, f"{path.name}: no option compared"


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_attention_matrix_is_the_softmax_its_fused_kernel_applies(causal):
    q, k, v = _qkv(n=7, d=4, seed=8)
    backend = attention.create("sdpa", causal=causal)
    padding = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    for mask in (None, padding):
        allowed = np.ones((2, 2, 7, 7), dtype=bool)
        if mask is not None:
            allowed &= mask.numpy()[:, None, None, :]
        if causal:
            allowed &= np.tril(np.ones((7, 7), dtype=bool))
        scores = (q @ k.mT).numpy() / 2  # 1 / sqrt(d)
        p = backend.attention_matrix(q, k, mask)
        np.testing.assert_allclose(p.numpy(), softmax_over_allowed(scores, allowed), rtol=1e-10, atol=1e-15)
        torch.testing.assert_close(p @ v, backend(q, k, v, mask))
    scaled = attention.create("sdpa", scale=0.3)
    want = softmax_over_allowed((q @ k.mT).numpy() * 0.3, np.ones((2, 2, 7, 7), dtype=bool))
    np.testing.assert_allclose(scaled.attention_matrix(q, k).numpy(), want, rtol=1e-10)


def test_sdpa_causal_prefill_continues_the_cache_when_queries_are_fewer_than_keys():
    q, k, v = _qkv(n=6, d=4, seed=9)
    backend = attention.create("sdpa", causal=True)
    q_last = q[..., -2:, :]  # the last two queries of a prefill see every key up to their own position
    allowed = np.tril(np.ones((6, 6), dtype=bool))[-2:]
    want = softmax_over_allowed((q_last @ k.mT).numpy() / 2, np.broadcast_to(allowed, (2, 2, 2, 6)))
    np.testing.assert_allclose(backend.attention_matrix(q_last, k).numpy(), want, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(backend(q_last, k, v), torch.from_numpy(want) @ v)


@pytest.mark.parametrize("window,sinks", [(3, 2), (1, 0), (5, 0), (2, 9)])
def test_sink_window_matrix_and_output_equal_the_pattern_written_out(window, sinks):
    """Query i sees key j iff j <= i and (i - j < window or j < sinks); padded keys are dropped; no key: zero row."""
    n = 9
    q, k, v = _qkv(n=n, d=4, seed=10)
    backend = attention.create("sink_window", window=window, sinks=sinks, impl="blocks")
    pattern = np.array([[j <= i and (i - j < window or j < sinks) for j in range(n)] for i in range(n)])
    assert np.array_equal(backend.dense_mask(n).numpy(), pattern)
    padding = torch.ones(2, n, dtype=torch.bool)
    padding[1, :4] = False  # batch 1: the first 4 keys are padding, so query 0..3 of it see nothing
    for mask in (None, padding):
        allowed = np.broadcast_to(pattern, (2, 2, n, n)).copy()
        if mask is not None:
            allowed &= mask.numpy()[:, None, None, :]
        want = softmax_over_allowed((q @ k.mT).numpy() / 2, allowed)
        np.testing.assert_allclose(backend.attention_matrix(q, k, mask).numpy(), want, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(backend(q, k, v, mask).numpy(), want @ v.numpy(), rtol=1e-9, atol=1e-12)


def test_qontot_sampled_dsm_passes_its_own_settings_to_the_sampler(monkeypatch):
    """The wiring to qiskit-aer (whose sampler is tested against the exact DSM in test_quantum_mutants)."""
    from qdsbench.quantum import sampling

    seen = {}

    def fake_sample_dsm(angles, n_data, n_aux, layers, ansatz, shots, seed=0, depolarizing=0.0, batch=64):
        seen.update(angles=angles, args=(n_data, n_aux, layers, ansatz, shots), seed=seed, noise=depolarizing)
        return np.full((len(angles), 2**n_data, 2**n_data), 0.25)

    monkeypatch.setattr(sampling, "sample_dsm", fake_sample_dsm)
    backend = attention.create(
        "qontot",
        n_data_qubits=2,
        n_aux_qubits=1,
        layers=3,
        ansatz="simple",
        shots=77,
        theta_seed=5,
        depolarizing=0.01,
    )
    angles = torch.rand(4, backend.n_params, dtype=torch.float32, requires_grad=True)
    p = backend.sampled_dsm(angles)
    assert seen["args"] == (2, 1, 3, "simple", 77) and seen["seed"] == 5 and seen["noise"] == 0.01
    assert seen["angles"].dtype == np.float64 and np.allclose(seen["angles"], angles.detach().numpy())
    assert p.shape == (4, 4, 4) and p.dtype == torch.float32 and torch.all(p == 0.25)


def test_every_backend_module_registers_under_its_own_name():
    """_import_backends imports each module of the package (so a new file is found without a list), and register
    stamps the name the registry knows onto the class."""
    import pkgutil

    import qdsbench.attention as package
    from qdsbench.attention.registry import BACKENDS

    modules = {m.name for m in pkgutil.iter_modules(package.__path__)} - {"base", "registry"}
    defining = {BACKENDS.get(name).__module__.rsplit(".", 1)[-1] for name in attention.available()}
    helpers = {"diagnostics", "flex", "health"}  # modules with no backend of their own
    assert defining == modules - helpers
    for name in attention.available():
        assert BACKENDS.get(name).registered_name == name
        assert attention.create(name, **_minimal_options(name)).name == name


def _minimal_options(name: str) -> dict:
    return {"normlin": {"num_tokens": 4}}.get(name, {})


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_qr_fast_and_reference_agree_where_the_noise_scale_shows(noise):
    """At the default noise (1e-7) the noise's scale moves P by ~1e-7, below most tolerances; at 0.03 a wrong scale
    (whole-matrix RMS instead of the valid block's, N instead of N_valid) moves P by ~1e-2 in one path only."""
    g = torch.Generator().manual_seed(11)
    scores = 3 * torch.randn(2, 2, 6, 6, generator=g, dtype=torch.float64)
    backend = attention.create("qr", noise=noise)
    padding = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])[:, None, None, :]
    for mask in (None, padding):
        torch.testing.assert_close(
            backend.normalize(scores, mask), backend.reference_normalize(scores, mask), rtol=0, atol=1e-12
        )
    # the noise is relative to the valid block: scaling the padded scores changes nothing
    padded_big = scores.clone()
    padded_big[1, ..., 4:] *= 1000
    padded_big[1, ..., 4:, :] *= 1000
    for fn in (backend.normalize, backend.reference_normalize):
        torch.testing.assert_close(fn(padded_big, padding)[1], fn(scores, padding)[1], rtol=0, atol=1e-12)
    if noise:  # and relative to the scores' own scale: P of 5 S equals P of S (QR is scale invariant)
        for fn in (backend.normalize, backend.reference_normalize):
            torch.testing.assert_close(fn(5 * scores), fn(scores), rtol=0, atol=1e-12)
            assert (fn(scores) - attention.create("qr", noise=0.0).normalize(scores)).abs().max() > 1e-4


def test_qr_fixed_noise_is_a_seeded_standard_normal_per_size():
    a = fixed_noise(64, torch.float64, torch.device("cpu"))
    assert torch.equal(a, fixed_noise(64, torch.float64, torch.device("cpu")))  # deterministic
    assert not torch.allclose(fixed_noise(63, torch.float64, torch.device("cpu"))[:8, :8], a[:8, :8])  # per size
    assert abs(a.mean().item()) < 0.05 and abs(a.std().item() - 1) < 0.05  # N(0, 1) entries
    assert fixed_noise(8, torch.float32, torch.device("cpu")).dtype == torch.float32
    torch.testing.assert_close(
        fixed_noise(8, torch.float32, torch.device("cpu")).double(),
        fixed_noise(8, torch.float64, torch.device("cpu")),
        rtol=0,
        atol=1e-6,
    )  # drawn in float64, then cast


def test_delta_dense_rows_are_exact_causal_attention_of_the_chosen_queries():
    q, k, v = _qkv(n=9, d=4, seed=12)
    positions = torch.tensor([0, 3, 8, 5])
    got = dense_rows(q[..., positions, :], k, v, positions, scale=0.5)
    allowed = np.array([[j <= p for j in range(9)] for p in positions.tolist()])
    want = softmax_over_allowed((q[..., positions, :] @ k.mT).numpy() * 0.5, np.broadcast_to(allowed, (2, 2, 4, 9)))
    np.testing.assert_allclose(got.numpy(), want @ v.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"window": 0}, "window >= 1"),
        ({"sinks": -1}, "sinks >= 0"),
        ({"gamma": 0}, "gamma >= 1"),
        ({"tail_min": -1}, "tail_min >= 0"),
        ({"mode": "dense"}, "valid choices: sparse, recompute, delta, tail_only"),
        ({"causal": False}, "causal=true"),
    ],
)
def test_delta_refuses_bad_settings_naming_them(options, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        attention.create("delta", **options)


def test_delta_accepts_the_smallest_valid_settings_and_keeps_them():
    backend = attention.create("delta", window=1, sinks=0, gamma=1, tail_min=0, tail=False, mode="recompute")
    assert (backend.window, backend.sinks, backend.gamma, backend.tail_min, backend.tail, backend.mode) == (
        1,
        0,
        1,
        0,
        False,
        "recompute",
    )
    q, k, v = _qkv(n=5, d=4, seed=13)
    # gamma = 1: every query is an anchor, recomputed exactly: full causal attention
    want = softmax_over_allowed((q @ k.mT).numpy() / 2, np.broadcast_to(np.tril(np.ones((5, 5), bool)), (2, 2, 5, 5)))
    np.testing.assert_allclose(backend(q, k, v).numpy(), want @ v.numpy(), rtol=1e-10, atol=1e-12)


def test_normlin_is_built_from_its_token_count_and_refuses_none_or_zero():
    with pytest.raises(ValueError, match=r"needs num_tokens.*attention.num_tokens=N"):
        attention.create("normlin", num_tokens=None)
    with pytest.raises(ValueError, match=r"num_tokens must be >= 1, got 0"):
        attention.create("normlin", num_tokens=0)
    assert attention.create("normlin", num_tokens=1).weight.shape == (1, 1)
    torch.manual_seed(0)
    w = attention.create("normlin", num_tokens=300, dropout=0.25).weight.detach()
    off = w[~torch.eye(300, dtype=torch.bool)]
    assert abs(w.diagonal().mean().item() - 1) < 0.2 and abs(off.mean().item()) < 0.02  # I + N(0, 1)
    assert abs(off.std().item() - 1) < 0.02
    dropout = attention.create("normlin", num_tokens=3, dropout=0.25).dropout
    assert isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.25


def test_flex_serves_only_the_cases_verified_against_the_dense_reference():
    from qdsbench.attention.flex import flex_supports

    def qkv_of(dtype, grad=False):
        return [torch.zeros(1, 1, 4, 2, dtype=dtype, requires_grad=grad) for _ in range(3)]

    assert flex_supports(*qkv_of(torch.float32))
    assert flex_supports(*qkv_of(torch.bfloat16)) and flex_supports(*qkv_of(torch.float16))
    assert not flex_supports(*qkv_of(torch.float64))
    assert not flex_supports(*qkv_of(torch.float32), key_mask=torch.ones(1, 4, dtype=torch.bool))
    assert not flex_supports(*qkv_of(torch.float32, grad=True))  # training goes to the block kernel
    with torch.no_grad():
        assert flex_supports(*qkv_of(torch.float32, grad=True))  # inference on a trainable model's tensors
    q, k, v = qkv_of(torch.float32)
    for i, t in enumerate((q, k, v)):  # any one input that needs a gradient is enough
        args = [q, k, v]
        args[i] = t.clone().requires_grad_()
        assert not flex_supports(*args)


def _x(*shape):
    return torch.zeros(*shape)


# Every refusal of the attention package: one line naming the bad value and what is valid (the project's standard).
REFUSALS = [
    (lambda: attention.from_config({}), ["needs a 'name'", "valid choices:", "softmax", "qontot"]),
    (lambda: attention.create("qr", causal=True), ["'qr' does not support causal=True", "causal backends:", "softmax"]),
    (
        lambda: attention.create("softmax")(_x(2, 8, 4), _x(1, 2, 8, 4), _x(1, 2, 8, 4)),
        ["'softmax'", "q must have shape (B, H, N, d), got (2, 8, 4)"],
    ),
    (
        lambda: attention.create("softmax")(_x(1, 2, 8, 4), _x(1, 2, 8), _x(1, 2, 8, 4)),
        ["k must have shape", "got (1, 2, 8)"],
    ),
    (
        lambda: attention.create("softmax")(_x(1, 2, 8, 4), _x(1, 2, 8, 4), _x(1, 2, 8)),
        ["v must have shape", "got (1, 2, 8)"],
    ),
    (
        lambda: attention.create("softmax")(_x(1, 2, 8, 4), _x(1, 3, 8, 4), _x(1, 3, 8, 4)),
        ["incompatible shapes q=(1, 2, 8, 4) k=(1, 3, 8, 4) v=(1, 3, 8, 4)", "expected q (B,H,Nq,d)"],
    ),
    (
        lambda: attention.create("softmax")(_x(1, 2, 8, 4), _x(1, 2, 8, 4), _x(1, 2, 7, 4)),
        ["incompatible shapes", "v=(1, 2, 7, 4)"],
    ),
    (
        lambda: attention.create("softmax")(_x(1, 2, 8, 4), _x(1, 2, 8, 3), _x(1, 2, 8, 4)),
        ["incompatible shapes", "k=(1, 2, 8, 3)"],
    ),
    (
        lambda: attention.create("softmax")(
            _x(1, 2, 8, 4), _x(1, 2, 8, 4), _x(1, 2, 8, 4), torch.ones(1, 7, dtype=torch.bool)
        ),
        ["a 2-D mask must be (B, N)=(1, 8), got (1, 7)"],
    ),
    (
        lambda: attention.create("softmax")(
            _x(1, 2, 8, 4), _x(1, 2, 8, 4), _x(1, 2, 8, 4), torch.ones(1, 8, 8, dtype=torch.bool)
        ),
        ["mask must be (B, N) or broadcastable to (B, H, N, N), got (1, 8, 8)"],
    ),
    (
        lambda: attention.create("delta")(
            _x(1, 1, 8, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4), torch.ones(1, 8, dtype=torch.bool)
        ),
        ["delta supports no extra mask; use mask=None"],
    ),
    (
        lambda: attention.create("delta")(_x(1, 1, 4, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4)),
        ["as many queries as keys, got 4 and 8", "decode with dense attention"],
    ),
    (
        lambda: attention.create("performer")(
            _x(1, 1, 8, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4), torch.ones(1, 8, dtype=torch.bool)
        ),
        ["'performer' supports no mask; use mask=None"],
    ),
    (
        lambda: attention.create("monarch", pad="middle"),
        ["monarch pad 'middle' is not valid; valid choices: pre, post"],
    ),
    (
        lambda: attention.create("monarch", num_steps=0),
        ["monarch needs num_steps >= 1 and block_size >= 1, got 0, None"],
    ),
    (lambda: attention.create("monarch", block_size=0), ["got 1, 0"]),
    (
        lambda: attention.create("monarch", block_size=9)(_x(1, 1, 8, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4)),
        ["block_size=9 is larger than the sequence length N=8", "1 <= block_size <= 8"],
    ),
    (
        lambda: attention.create("monarch")(
            _x(1, 1, 8, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4), torch.ones(1, 8, dtype=torch.bool)
        ),
        ["monarch attention supports no attention mask (padding is internal); use mask=None"],
    ),
    (
        lambda: attention.create("monarch")(_x(1, 1, 4, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4)),
        ["monarch attention needs self-attention (Nq == Nk)"],
    ),
    (
        lambda: attention.create("normlin", num_tokens=4)(_x(1, 1, 5, 4), _x(1, 1, 5, 4), _x(1, 1, 5, 4)),
        ["built for num_tokens=4, got 5 queries and 5 keys"],
    ),
    (
        lambda: attention.create("qontot", inject="centred"),
        ["qontot inject 'centred' is not valid; valid choices: scaled, raw, standardized"],
    ),
    (
        lambda: attention.create("qontot", inject="raw", scale=0.5),
        ["inject=raw uses M = QK^T (scale 1); it cannot be combined with scale=0.5"],
    ),
    (lambda: attention.create("qontot", theta_range=0.0), ["qontot theta_range=0.0 must be > 0"]),
    (
        lambda: attention.create("qontot", ansatz="ring"),
        ["qontot ansatz 'ring' is not valid; valid choices: simple, parted"],
    ),
    (
        lambda: attention.create("qontot", grad="some"),
        ["qontot grad 'some' is not valid; valid choices: none, scores, full"],
    ),
    (
        lambda: attention.create("qontot", vec_order="diag"),
        ["qontot vec_order 'diag' is not valid; valid choices: row, col"],
    ),
    (
        lambda: attention.create("qontot", dtype="float16"),
        ["qontot dtype 'float16' is not valid; valid choices: complex64, complex128"],
    ),
    (lambda: attention.create("qontot", n_data_qubits=0), ["n_data_qubits >= 1 and layers >= 1, got 0, 16"]),
    (lambda: attention.create("qontot", layers=0), ["got 3, 0"]),
    (lambda: attention.create("qontot", n_aux_qubits=-1), ["qontot n_aux_qubits=-1 must be >= 0"]),
    (lambda: attention.create("qontot").normalize(_x(1, 1, 8, 7)), ["qontot needs square score matrices, got (8, 7)"]),
    (
        lambda: attention.create("qontot").normalize(_x(1, 1, 5, 5)),
        ["N=5 does not match 2^n_data_qubits=8", "use n_data_qubits=3 and pad=true"],
    ),
    (
        lambda: attention.create("qontot", n_data_qubits=2).normalize(_x(1, 1, 3, 3)),
        ["use n_data_qubits=2 and pad=true"],
    ),
    (
        lambda: attention.create("qontot").normalize(_x(1, 1, 16, 16)),
        ["N=16 does not match 2^n_data_qubits=8", "use n_data_qubits=4"],
    ),
    (
        lambda: attention.create("qr", dtype="float16"),
        ["qr dtype 'float16' is not valid; valid choices: float32, float64"],
    ),
    (lambda: attention.create("qr", noise=-1e-3), ["qr noise=-0.001 must be >= 0"]),
    (
        lambda: attention.create("qr").normalize(_x(1, 1, 8, 7)),
        ["qr attention needs square score matrices, got (8, 7)"],
    ),
    (lambda: attention.create("sink_window", causal=False), ["sink_window is causal by definition; use causal=true"]),
    (
        lambda: attention.create("sink_window", window=0),
        ["sink_window needs window >= 1 and sinks >= 0, got window=0, sinks=4"],
    ),
    (lambda: attention.create("sink_window", sinks=-1), ["got window=64, sinks=-1"]),
    (
        lambda: attention.create("sink_window", impl="triton"),
        ["unknown sink_window impl 'triton'; valid choices: flex, blocks"],
    ),
    (
        lambda: attention.create("sink_window")(
            _x(1, 1, 8, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4), torch.ones(1, 1, 8, 8, dtype=torch.bool)
        ),
        ["supports only a (B, N)=(1, 8) key-padding mask, got (1, 1, 8, 8)"],
    ),
    (
        lambda: attention.create("sink_window")(_x(1, 1, 4, 4), _x(1, 1, 8, 4), _x(1, 1, 8, 4)),
        ["as many queries as keys (a prefill), got 4 and 8"],
    ),
    (lambda: attention.create("sinkhorn", n_iter=0), ["sinkhorn n_iter=0 must be >= 1"]),
    (lambda: attention.create("sinkhorn", eps=0.0), ["sinkhorn eps=0.0 must be > 0"]),
]


@pytest.mark.parametrize("index", range(len(REFUSALS)))
def test_every_refusal_is_one_line_naming_the_bad_value(index):
    call, fragments = REFUSALS[index]
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_the_smallest_valid_settings_are_accepted():
    attention.create("qontot", theta_range=1e-3, n_data_qubits=1, layers=1, n_aux_qubits=0)
    attention.create("qr", noise=0.0)
    attention.create("monarch", num_steps=1, block_size=1)
    attention.create("sinkhorn", n_iter=1, eps=1e-3)
    attention.create("sink_window", window=1, sinks=0)


@pytest.mark.parametrize("n_iter", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("shape,eps", [((2, 2, 5, 5), 1.0), ((2, 6, 4), 0.5), ((3, 4, 7), 2.0)])
def test_sinkhorn_equals_plain_alternating_scaling(n_iter, shape, eps):
    from qdsbench.attention.sinkhorn import sinkhorn_log

    g = torch.Generator().manual_seed(n_iter)
    scores = torch.randn(*shape, generator=g, dtype=torch.float64)
    got = sinkhorn_log(scores, n_iter, eps)
    np.testing.assert_allclose(got.numpy(), sinkhorn_reference(scores.numpy(), n_iter, eps), rtol=1e-10, atol=1e-14)


def _log_domain_sinkhorn(scores, n_iter, eps):
    from qdsbench.attention.sinkhorn import sinkhorn_log

    return sinkhorn_log(scores, n_iter, eps, exp_domain=False)


@pytest.mark.parametrize("n_iter", [2, 3, 4, 5])
def test_sinkhorns_exp_domain_gradient_passes_gradcheck_and_equals_the_log_domains(n_iter):
    from qdsbench.attention.sinkhorn import sinkhorn_log

    g = torch.Generator().manual_seed(40 + n_iter)
    scores = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)  # n_q / n_k = 5 / 4
    torch.autograd.gradcheck(lambda s: sinkhorn_log(s, n_iter, 0.7), (scores,))
    weight = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    (fast,) = torch.autograd.grad((sinkhorn_log(scores, n_iter, 0.7) * weight).sum(), scores)
    (slow,) = torch.autograd.grad((_log_domain_sinkhorn(scores, n_iter, 0.7) * weight).sum(), scores)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)


def test_sinkhorn_recomputes_in_the_log_domain_when_a_column_underflows():
    """A key every query scores ~100 below its best: exp(-100) sums below the float32 floor in the exp domain;
    the log domain still balances that column, and so must the result."""
    from qdsbench.attention.sinkhorn import sinkhorn_log

    g = torch.Generator().manual_seed(50)
    scores = torch.randn(3, 6, 6, generator=g)
    scores[..., 2] -= 100.0
    got = sinkhorn_log(scores, 4, 1.0)  # ends on a column step: every column sums to 1
    torch.testing.assert_close(got.sum(-2), torch.ones(3, 6), rtol=0, atol=1e-5)
    torch.testing.assert_close(got, _log_domain_sinkhorn(scores, 4, 1.0))
    want = sinkhorn_reference(scores.double().numpy(), 4, 1.0)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("n_iter", [1, 2, 3, 6])
def test_sinkhorn_with_a_mask_scales_only_the_valid_block(n_iter):
    from qdsbench.attention.sinkhorn import sinkhorn_log

    g = torch.Generator().manual_seed(20 + n_iter)
    scores = torch.randn(2, 1, 6, 5, generator=g, dtype=torch.float64)
    allowed = torch.ones(2, 1, 6, 5, dtype=torch.bool)
    allowed[0, ..., 3:] = False  # batch 0: 3 valid keys, every query valid (target col sum 6 / 3)
    allowed[1, ..., 4:, :] = False  # batch 1: 4 valid queries, every key (target 4 / 5); rows 4, 5 stay 0
    got = sinkhorn_log(scores, n_iter, 1.0, allowed)
    want = sinkhorn_reference(scores.numpy(), n_iter, 1.0, allowed.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-14)
    # the backend treats a key-padding mask of square self-attention as padding the queries too
    square = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64)
    padding = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
    pair = padding & padding.transpose(-1, -2)
    backend = attention.create("sinkhorn", n_iter=n_iter)
    np.testing.assert_allclose(
        backend.normalize(square, padding).numpy(),
        sinkhorn_reference(square.numpy(), n_iter, 1.0, pair.numpy()),
        rtol=1e-10,
        atol=1e-14,
    )


@pytest.mark.parametrize("statistic", ["var", "std"])
def test_normsoftmax_equals_its_definition_with_masks_caps_and_single_keys(statistic):
    name = f"normsoftmax_{statistic}"
    g = torch.Generator().manual_seed(30)
    q, k = (torch.randn(2, 2, 6, 9, generator=g, dtype=torch.float64) for _ in range(2))
    backend = attention.create(name)  # scale 1: S = q k^T unscaled; cap sqrt(d) = 3
    scores = (q @ k.mT).numpy()
    np.testing.assert_allclose(
        backend.attention_matrix(q, k).numpy(), normsoftmax_reference(scores, statistic, 3.0), rtol=1e-10
    )
    padding = torch.tensor([[True] * 6, [True] + [False] * 5])  # batch 1: a single valid key
    allowed = padding.numpy()[:, None, None, :]
    np.testing.assert_allclose(
        backend.attention_matrix(q, k, padding).numpy(),
        normsoftmax_reference(scores, statistic, 3.0, allowed=allowed),
        rtol=1e-10,
        atol=1e-15,
    )
    capped = attention.create(name, max_temperature=0.7)
    np.testing.assert_allclose(
        capped.attention_matrix(q, k).numpy(), normsoftmax_reference(scores, statistic, 0.7), rtol=1e-10
    )
    alone = torch.randn(1, 1, 3, 1, generator=g, dtype=torch.float64)  # one key, no mask: its weight is 1
    assert torch.equal(backend.normalize(alone), torch.ones_like(alone))
    # normalize on its own (no head dim seen yet) caps at sqrt(N keys)
    fresh = attention.create(name)
    raw = torch.from_numpy(scores)
    np.testing.assert_allclose(fresh.normalize(raw).numpy(), normsoftmax_reference(scores, statistic, 6**0.5))


@pytest.mark.parametrize("name", ["softmax", "normsoftmax_var", "sdpa"])
def test_a_query_whose_keys_are_all_masked_gets_a_zero_row(name):
    q, k, v = _qkv(n=4, d=4, seed=31)
    mask = torch.ones(2, 2, 4, 4, dtype=torch.bool)
    mask[0, 0, 1] = False  # query 1 of (batch 0, head 0) sees nothing
    p = attention.create(name).attention_matrix(q, k, mask)
    assert torch.equal(p[0, 0, 1], torch.zeros(4, dtype=p.dtype))
    others = torch.ones(2, 2, 4, dtype=torch.bool)
    others[0, 0, 1] = False
    torch.testing.assert_close(p.sum(-1)[others], torch.ones(15, dtype=p.dtype))


def test_sdpa_matrix_times_v_is_its_output_even_for_fully_masked_queries():
    q, k, v = _qkv(n=4, d=4, seed=32)
    mask = torch.ones(2, 2, 4, 4, dtype=torch.bool)
    mask[1, 1, 2] = False
    backend = attention.create("sdpa")
    torch.testing.assert_close(backend.attention_matrix(q, k, mask) @ v, backend(q, k, v, mask))


def _qontot_small(**options):
    return attention.create("qontot", n_data_qubits=2, n_aux_qubits=1, layers=2, dtype="complex128", **options)


def test_qontot_standardizes_each_matrix_over_its_kept_scores_then_masks_and_renormalises_rows():
    g = torch.Generator().manual_seed(33)
    scores = 2 + 3 * torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)
    keep = torch.ones(2, 2, 4, 4, dtype=torch.bool)
    keep[1, :, :, 3] = False  # batch 1: key 3 is padding
    keep[0, 1, 2, :] = False  # (0, 1): query 2 keeps no key
    circuit = _qontot_small()  # the same circuit, scores injected as given
    want = np.zeros((2, 2, 4, 4))
    z_all = np.zeros((2, 2, 4, 4))
    for index in np.ndindex(2, 2):
        s, k = scores[index].numpy(), keep[index].numpy()
        z = np.where(k, (s - s[k].mean()) / s[k].std(ddof=1), 0.0)
        z_all[index] = z
        p = circuit.normalize(torch.from_numpy(z)[None, None])[0, 0].numpy()  # the full DSM of the zeroed scores
        p = np.where(k, p, 0.0)
        total = p.sum(1, keepdims=True)
        want[index] = np.where(total > 0, p / np.where(total > 0, total, 1), 0.0)
    got = _qontot_small(inject="standardized").normalize(scores, keep)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    assert torch.equal(got[0, 1, 2], torch.zeros(4, dtype=got.dtype))
    # without a mask: the DSM of the per-matrix standardised scores, still doubly stochastic
    plain = _qontot_small(inject="standardized").normalize(scores)
    s = scores.numpy()
    z = (s - s.mean(axis=(-2, -1), keepdims=True)) / s.std(axis=(-2, -1), ddof=1, keepdims=True)
    np.testing.assert_allclose(plain.numpy(), circuit.normalize(torch.from_numpy(z)).numpy(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(plain.sum(-1), torch.ones(2, 2, 4, dtype=plain.dtype))
    torch.testing.assert_close(plain.sum(-2), torch.ones(2, 2, 4, dtype=plain.dtype))


def test_qontot_padding_crops_the_dsm_and_renormalises_its_rows():
    g = torch.Generator().manual_seed(34)
    scores = torch.randn(3, 3, generator=g, dtype=torch.float64)  # N = 3 tokens in a 4-token circuit
    padded_circuit = _qontot_small(pad=True)
    full = _qontot_small().normalize(torch.nn.functional.pad(scores, (0, 1, 0, 1))[None, None])[0, 0].numpy()
    crop = full[:3, :3]
    np.testing.assert_allclose(
        padded_circuit.normalize(scores[None, None])[0, 0].numpy(), crop / crop.sum(1, keepdims=True), rtol=1e-10
    )
    single = attention.create("qontot", n_data_qubits=1, n_aux_qubits=1, layers=2, pad=True, inject="standardized")
    one = single.normalize(torch.full((1, 1, 1, 1), 5.0))  # one score: nothing to standardise by; P = [[1]]
    assert torch.allclose(one, torch.ones_like(one))


def test_qontot_angles_tile_vec_of_the_scores_in_the_configured_order():
    row, col = _qontot_small(), _qontot_small(vec_order="col")
    assert torch.equal(row.theta, col.theta)  # the same theta, drawn in float64 from theta_seed
    s = torch.arange(16, dtype=torch.float64).reshape(1, 4, 4)
    n = row.n_params
    tiles = math.ceil(n / 16)
    vec_row = np.tile(s.numpy().reshape(-1), tiles)[:n]
    vec_col = np.tile(s.numpy()[0].T.reshape(-1), tiles)[:n]
    np.testing.assert_allclose(row.angles(s)[0].numpy(), row.theta.double().numpy() * vec_row)
    np.testing.assert_allclose(col.angles(s)[0].numpy(), col.theta.double().numpy() * vec_col)
    assert row.angles(s).dtype == torch.float64
    g = torch.Generator().manual_seed(0)
    want = ((torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * 0.5).float()
    assert torch.equal(_qontot_small(theta_range=0.5).theta, want)  # U(-theta_range, theta_range) from theta_seed
    auto = attention.create("qontot", n_data_qubits=2, n_aux_qubits=None, layers=1)
    assert auto.n_aux_qubits == 3 and auto.n_qubits == 5  # null: q_d + 1, the paper's lower bound log2 T + 1


@pytest.mark.parametrize("mode", MODES)
def test_delta_uses_the_configured_scale_everywhere(mode):
    """A non-default scale must reach the sparse kernel and the exact rows (the default 1/sqrt(d) hides a
    dropped scale, since SDPA's own default is the same)."""
    q, k, v = _qkv(n=40, d=4, seed=35)
    scaled = attention.create("delta", scale=0.9, window=8, sinks=2, gamma=4, tail_min=8, mode=mode)
    unscaled_inputs = attention.create("delta", window=8, sinks=2, gamma=4, tail_min=8, mode=mode)
    # scale s on q k^T equals the default scale 1/2 on (2 s q) k^T
    torch.testing.assert_close(scaled(q, k, v), unscaled_inputs(q * 1.8, k, v))


def test_delta_with_a_single_exact_row_still_corrects():
    """No tail and gamma = N: the one anchor (query 0) is recomputed exactly; every other query keeps its sparse
    output (recompute does not spread a correction)."""
    q, k, v = _qkv(n=12, d=4, seed=36)
    backend = attention.create("delta", window=3, sinks=1, gamma=12, tail_min=0, tail=False, mode="recompute")
    sparse = attention.create("delta", window=3, sinks=1, mode="sparse")(q, k, v)
    out = backend(q, k, v)
    exact0 = torch.softmax(q[..., :1, :] @ k[..., :1, :].mT / 2, -1) @ v[..., :1, :]  # query 0 sees key 0 only
    torch.testing.assert_close(out[..., :1, :], exact0)
    torch.testing.assert_close(out[..., 1:, :], sparse[..., 1:, :])


@pytest.mark.parametrize("chunk_bytes,block", [(1, None), (1 << 30, None), (4096, 3)])
def test_block_kernel_is_exact_for_any_grouping_and_block(chunk_bytes, block):
    from qdsbench.attention.sink_window import block_sparse_sink_window

    n, window, sinks = 23, 5, 2
    q, k, v = _qkv(n=n, d=4, seed=37)
    padding = torch.ones(2, n, dtype=torch.bool)
    padding[0, 3:9] = False
    pattern = np.array([[j <= i and (i - j < window or j < sinks) for j in range(n)] for i in range(n)])
    for mask in (None, padding):
        allowed = np.broadcast_to(pattern, (2, 2, n, n)).copy()
        if mask is not None:
            allowed &= mask.numpy()[:, None, None, :]
        want = softmax_over_allowed((q @ k.mT).numpy() * 0.7, allowed) @ v.numpy()
        got = block_sparse_sink_window(q, k, v, window, sinks, 0.7, block=block, chunk_bytes=chunk_bytes, key_mask=mask)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
