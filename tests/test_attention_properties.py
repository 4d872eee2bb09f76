"""Property-based tests (hypothesis) of the attention contract over its shape / mask / dtype / magnitude space.

Each registered backend has an explicit strategy of the inputs it supports (sequence lengths, causal flag, options,
masks), read from its code and docstring (``SPECS``), never discovered by catching exceptions. Inputs are seeded
``torch.randn`` tensors, built in float64 and cast, so a float32 case carries the same numbers as its float64 twin;
hypothesis draws the shapes, dtype, options, seed, magnitude and a few degenerate structures (equal keys, zero
queries). Properties: shapes, dtype and finiteness (also for scores scaled up to 30x), masks (masked keys get zero
weight and do not influence the output), row-stochastic / doubly stochastic matrices, permutation equivariance, and
torch's ``F.scaled_dot_product_attention`` (float64) as an independent reference where a backend must equal it.
Bugs found here and fixed keep their minimal failing inputs as regression tests at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qdsbench import attention
from qdsbench.attention.delta import MODES as DELTA_MODES
from qdsbench.attention.qontot import INJECTIONS

N_MAX = 24
DTYPES = (torch.float32, torch.float64)


def fast(max_examples: int):
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- per-backend input spaces ------------------------------------------------------------------------------------
# A config strategy draws (N, causal, options) for one backend; ``stable`` restricts it where a known bug lives.

Config = Callable[..., tuple[int, bool, dict]]


def _row_wise(draw, stable=False, causal=None):  # softmax, sdpa: any N, causal or not, any scale
    causal = draw(st.booleans()) if causal is None else causal
    return draw(st.integers(1, N_MAX)), causal, {"scale": draw(st.none() | st.sampled_from([0.3, 2.0]))}


def _sigmoid(draw, stable=False, causal=None):
    causal = draw(st.booleans()) if causal is None else causal
    return draw(st.integers(1, N_MAX)), causal, {"bias": draw(st.none() | st.sampled_from([-3.0, 0.0]))}


def _normsoftmax(draw, stable=False, causal=None):
    causal = draw(st.booleans()) if causal is None else causal
    n = draw(st.integers(1, N_MAX))  # N = 1 without a mask: test_bug_normsoftmax_single_key_without_mask
    return n, causal, {"max_temperature": draw(st.none() | st.sampled_from([0.5, 8.0]))}


def _sinkhorn(draw, stable=False, causal=None):
    return (
        draw(st.integers(1, N_MAX)),
        False,
        {"n_iter": draw(st.integers(1, 30)), "eps": draw(st.sampled_from([0.5, 1.0, 2.0]))},
    )


def _qr(draw, stable=False, causal=None):
    return (
        draw(st.integers(1, N_MAX)),
        False,
        {"noise": draw(st.sampled_from([0.0, 1e-7])), "dtype": draw(st.sampled_from(["float32", "float64"]))},
    )


def _qontot(draw, stable=False, causal=None, pad=None):
    nq = draw(st.integers(1, 3))
    size = 2**nq
    pad = draw(st.booleans()) if pad is None else pad
    inject = draw(st.sampled_from(INJECTIONS))
    n = draw(st.integers(1, size)) if pad else size  # N = 1: test_bug_qontot_standardized_single_token
    # the brick-wall ansatz needs n_data_qubits + n_aux_qubits >= 2 (checked at the first call, not by create)
    options = {
        "n_data_qubits": nq,
        "n_aux_qubits": draw(st.integers(max(0, 2 - nq), 2)),
        "layers": draw(st.integers(1, 2)),
        "ansatz": draw(st.sampled_from(["simple", "parted"])),
        "pad": pad,
        "inject": inject,
        "dtype": draw(st.sampled_from(["complex64", "complex128"])),
        "vec_order": draw(st.sampled_from(["row", "col"])),
        "theta_seed": draw(st.integers(0, 3)),
        "theta_range": draw(st.sampled_from([0.5, 1.0, 3.0])),
    }
    return n, False, options


def _monarch(draw, stable=False, causal=None):
    n = draw(st.integers(1, N_MAX))
    steps = draw(st.integers(1, 3))  # large scores with num_steps >= 2: test_bug_monarch_steps_nan_for_large_scores
    return (
        n,
        False,
        {
            "block_size": draw(st.none() | st.integers(1, n)),
            "num_steps": steps,
            "pad": draw(st.sampled_from(["pre", "post"])),
        },
    )


def _sink_window(draw, stable=False, causal=None):
    n = draw(st.integers(1, N_MAX))
    return n, True, {"window": draw(st.integers(1, n + 4)), "sinks": draw(st.integers(0, 5))}


def _delta(draw, stable=False, causal=None):
    return (
        draw(st.integers(1, N_MAX)),
        True,
        {
            "window": draw(st.integers(1, 10)),
            "sinks": draw(st.integers(0, 4)),
            "gamma": draw(st.integers(1, 8)),
            "tail_min": draw(st.integers(0, 10)),
            "tail": draw(st.booleans()),
            "mode": draw(st.sampled_from(DELTA_MODES)),
        },
    )


def _plain(draw, stable=False, causal=None):  # linear, cosformer: no options, non-causal
    return draw(st.integers(1, N_MAX)), False, {}


def _performer(draw, stable=False, causal=None):  # redraw=False: a fixed omega, so the test is deterministic
    return (
        draw(st.integers(1, N_MAX)),
        False,
        {"num_features": draw(st.integers(1, 32)), "redraw": False, "seed": draw(st.integers(0, 3))},
    )


def _normlin(draw, stable=False, causal=None):  # a learned N x N mixer: built for one token count
    n = draw(st.integers(1, N_MAX))
    causal = draw(st.booleans()) if causal is None else causal
    return n, causal, {"num_tokens": n, "dropout": 0.0}


def _nystrom(draw, stable=False, causal=None):
    return (
        draw(st.integers(1, N_MAX)),
        False,
        {"num_landmarks": draw(st.integers(1, 10)), "pinv_iterations": draw(st.integers(1, 8))},
    )


@dataclasses.dataclass(frozen=True)
class Spec:
    config: Config
    mask: str = "none"  # "none": mask must be None; "key": (B, N) key padding only; "any": any boolean mask
    matrix: bool = True  # exposes attention_matrix(q, k, mask)
    rows: str = "convex"  # "convex": rows are probability vectors; "constant": out(v = c) = c; "free": neither
    pads_queries: bool = False  # a key-padding mask also zeroes the padded queries' rows (self-attention)
    tokens_equivariant: bool = False  # non-causal, no positional structure, no global token order
    cross: bool = False  # supports Nq != Nk


SPECS = {
    "softmax": Spec(_row_wise, mask="any", tokens_equivariant=True, cross=True),
    "sdpa": Spec(_row_wise, mask="any", matrix=False, tokens_equivariant=True, cross=True),
    "sigmoid": Spec(_sigmoid, mask="any", rows="free", tokens_equivariant=True, cross=True),
    "normsoftmax_std": Spec(_normsoftmax, mask="any", tokens_equivariant=True, cross=True),
    "normsoftmax_var": Spec(_normsoftmax, mask="any", tokens_equivariant=True, cross=True),
    "sinkhorn": Spec(_sinkhorn, mask="key", pads_queries=True, tokens_equivariant=True, cross=True),
    "qr": Spec(_qr, mask="key", pads_queries=True),  # Gram-Schmidt follows the key order: not token-equivariant
    "qontot": Spec(_qontot, mask="any"),  # angles = theta * vec(S): position-dependent
    "monarch": Spec(_monarch),
    "sink_window": Spec(_sink_window),
    "delta": Spec(_delta, matrix=False, rows="constant"),  # sparse + anchor correction: not a convex combination
    "linear": Spec(_plain, matrix=False, tokens_equivariant=True, cross=True),
    "performer": Spec(_performer, matrix=False, tokens_equivariant=True, cross=True),
    "cosformer": Spec(_plain, matrix=False, rows="free"),  # ReLU features: a query with none positive gets 0
    "nystrom": Spec(_nystrom, matrix=False, rows="free"),  # 6-step pseudo-inverse: approximately stochastic
    "normlin": Spec(_normlin, mask="any"),  # ignores q and k: A = RowL1Norm(Softplus(W))
}


def names(predicate=lambda spec: True) -> list[str]:
    registered = set(attention.available())
    return [name for name, spec in SPECS.items() if name in registered and predicate(spec)]


def test_every_registered_backend_has_a_spec():
    missing = set(attention.available()) - set(SPECS)
    assert not missing, f"backends without an input space in SPECS (add one): {sorted(missing)}"


# --- cases -------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    name: str
    n: int
    causal: bool
    options: dict
    b: int
    h: int
    d: int
    dv: int
    dtype: torch.dtype
    seed: int
    magnitude: float = 1.0
    structure: str = "randn"
    nq: int | None = None  # queries (cross-attention); default n

    def backend(self):
        with torch.random.fork_rng():  # normlin draws its W from the global generator: seed it per case
            torch.manual_seed(self.seed)
            return attention.create(self.name, causal=self.causal, **self.options)

    def qkv(self):
        g = torch.Generator().manual_seed(self.seed)
        nq = self.n if self.nq is None else self.nq
        q = torch.randn(self.b, self.h, nq, self.d, generator=g, dtype=torch.float64) * self.magnitude
        k = torch.randn(self.b, self.h, self.n, self.d, generator=g, dtype=torch.float64)
        v = torch.randn(self.b, self.h, self.n, self.dv, generator=g, dtype=torch.float64)
        if self.structure == "equal_keys":
            k = k[..., :1, :].expand_as(k).clone()
        elif self.structure == "zero_queries":
            q = torch.zeros_like(q)
        return q.to(self.dtype), k.to(self.dtype), v.to(self.dtype)

    def tol(self) -> float:
        low = self.dtype == torch.float32 or self.options.get("dtype") in ("float32", "complex64")
        return 2e-5 if low else 1e-9


STRUCTURES = ("randn", "equal_keys", "zero_queries")


@st.composite
def cases(
    draw,
    name,
    config=None,
    stable=False,
    magnitude=None,
    structures=STRUCTURES,
    dtypes=DTYPES,
    cross=False,
    causal=None,
):
    """One input case of backend ``name``; ``causal=False`` asks a causal-capable backend's strategy for non-causal."""
    n, causal, options = (config or SPECS[name].config)(draw, stable=stable, causal=causal)
    nq = None
    if cross:
        nq = draw(st.integers(1, N_MAX))
        causal = causal and nq <= n  # a causal query needs at least one key at or before it
    return Case(
        name,
        n,
        causal,
        options,
        b=draw(st.integers(1, 2)),
        h=draw(st.integers(1, 3)),
        d=draw(st.integers(1, 16)),
        dv=draw(st.integers(1, 16)),
        dtype=draw(st.sampled_from(dtypes)),
        seed=draw(st.integers(0, 2**20)),
        magnitude=draw(magnitude if magnitude is not None else st.sampled_from([0.5, 1.0, 2.0])),
        structure=draw(st.sampled_from(structures)),
        nq=nq,
    )


@st.composite
def key_padding(draw, case: Case) -> torch.Tensor:
    """(B, N) True where a key is kept: any subset masked, at least one kept per batch; key 0 kept when causal."""
    rows = []
    for _ in range(case.b):
        keep = draw(st.lists(st.booleans(), min_size=case.n, max_size=case.n))
        if not any(keep) or case.causal:
            keep[0 if case.causal else draw(st.integers(0, case.n - 1))] = True
        rows.append(keep)
    return torch.tensor(rows, dtype=torch.bool)


def general_mask(case: Case, seed: int, heads: bool) -> torch.Tensor:
    """(B, H or 1, N, N) random boolean mask with at least one allowed key per row (the diagonal when causal)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(case.b, case.h if heads else 1, case.n, case.n, generator=g) < 0.5
    pick = torch.arange(case.n) if case.causal else torch.randint(0, case.n, (case.n,), generator=g)
    mask[..., torch.arange(case.n), pick] = True
    return mask


def allowed(case: Case, mask: torch.Tensor | None, nq: int | None = None) -> torch.Tensor:
    """The (B|1, H|1, Nq, N) boolean pattern the contract defines: user mask and causal mask combined."""
    nq = case.n if nq is None else nq
    out = torch.ones(1, 1, nq, case.n, dtype=torch.bool)
    if mask is not None:
        out = out & (mask[:, None, None, :] if mask.dim() == 2 else mask)
    if case.causal:
        out = out & torch.ones(nq, case.n, dtype=torch.bool).tril(case.n - nq)
    return out


def reference(q, k, v, case: Case, mask=None, scale=None) -> torch.Tensor:
    """torch's fused attention in float64: an implementation independent of the backends."""
    attn = allowed(case, mask, q.shape[-2])
    return F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=attn, scale=scale)


def close(a, b, tol, what=""):
    torch.testing.assert_close(a.double(), b.double(), atol=tol * 10, rtol=tol * 10, msg=lambda m: f"{what}: {m}")


# --- shapes, dtype, finiteness -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names())
@fast(20)
@given(data=st.data())
def test_output_shape_dtype_and_finite(name, data):
    case = data.draw(cases(name))
    q, k, v = case.qkv()
    backend = case.backend()
    out = backend(q, k, v)
    assert out.shape == v.shape and out.dtype == v.dtype
    assert torch.isfinite(out).all()
    if SPECS[name].matrix:
        p = backend.attention_matrix(q, k)
        assert p.shape == (case.b, case.h, case.n, case.n) and p.dtype == q.dtype and torch.isfinite(p).all()
        close(out, p.double() @ v.double(), case.tol(), "out == P v")
        if name == "sigmoid":  # not normalised, but every weight is a sigmoid
            assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("name", names())
@fast(15)
@given(data=st.data())
def test_large_scores_stay_finite_and_stochastic(name, data):
    """q scaled by 3..30 (scores up to ~30x their usual size): no NaN/inf, and row-stochastic rows stay so."""
    case = data.draw(cases(name, stable=True, magnitude=st.floats(3.0, 30.0), structures=("randn",)))
    q, k, v = case.qkv()
    backend = case.backend()
    out = backend(q, k, v)
    assert out.shape == v.shape and out.dtype == v.dtype and torch.isfinite(out).all()
    if SPECS[name].matrix:
        p = backend.attention_matrix(q, k)
        assert torch.isfinite(p).all()
        if SPECS[name].rows == "convex" and (name != "sinkhorn" or case.options["n_iter"] % 2 == 1):
            assert (p >= 0).all()
            close(p.sum(-1), torch.ones(p.shape[:-1]), case.tol(), "row sums")


@pytest.mark.parametrize("name", names(lambda s: s.cross))
@fast(15)
@given(data=st.data())
def test_cross_attention_shapes(name, data):
    """Nq != Nk and dv != d: out is (B, H, Nq, dv); softmax-like backends equal the reference there too."""
    case = data.draw(cases(name, cross=True))
    q, k, v = case.qkv()
    out = case.backend()(q, k, v)
    assert out.shape == (case.b, case.h, q.shape[-2], case.dv) and out.dtype == v.dtype
    assert torch.isfinite(out).all()
    if name in ("softmax", "sdpa"):
        close(out, reference(q, k, v, case, scale=case.options["scale"]), case.tol(), "vs F.sdpa")
    if name == "sinkhorn" and case.options["n_iter"] % 2 == 1:  # unit rows exactly, for any Nq, Nk
        close(case.backend().attention_matrix(q, k).sum(-1), torch.ones(out.shape[:-1]), case.tol(), "rows")


# --- masks -------------------------------------------------------------------------------------------------------

MASKED = names(lambda s: s.mask != "none")


# qontot with pad=true and a mask (or with zero scores) could leave a query an all-zero row:
# test_bug_qontot_zero_row_after_masking.
MASK_CONFIGS: dict[str, Config] = {}
MASK_STRUCTURES: dict[str, tuple[str, ...]] = {}


@pytest.mark.parametrize("name", MASKED)
@fast(20)
@given(data=st.data())
def test_key_padding_gives_masked_keys_zero_weight(name, data):
    case = data.draw(cases(name, config=MASK_CONFIGS.get(name), structures=MASK_STRUCTURES.get(name, STRUCTURES)))
    mask = data.draw(key_padding(case))
    q, k, v = case.qkv()
    backend = case.backend()
    out = backend(q, k, v, mask=mask)
    assert out.shape == v.shape and torch.isfinite(out).all()
    if not SPECS[name].matrix:
        return
    p = backend.attention_matrix(q, k, mask)
    assert torch.isfinite(p).all()
    pattern = allowed(case, mask).expand_as(p)
    assert (p[~pattern] == 0).all(), "a masked key has weight"
    if SPECS[name].rows != "convex" or (name == "sinkhorn" and case.options["n_iter"] % 2 == 0):
        return
    valid_query = torch.ones_like(mask) if not SPECS[name].pads_queries else mask
    rows = p.sum(-1)
    assert (p >= 0).all()
    close(
        rows[valid_query[:, None, :].expand_as(rows)],
        torch.ones(()).expand(int(valid_query.sum()) * case.h),
        case.tol(),
        "valid rows sum to 1",
    )
    if SPECS[name].pads_queries:  # documented: padded queries get zero rows
        assert (rows[~valid_query[:, None, :].expand_as(rows)] == 0).all()


# qr noise > 0 (test_bug_qr_noise_scale_sees_masked_keys) and qontot's angles
# (test_bug_qontot_masked_keys_change_the_output) used to see the masked keys
@pytest.mark.parametrize("tensor, scale, seed_offset", [("v", 100, 1), ("k", 3, 2)])
@pytest.mark.parametrize("name", MASKED)
@fast(15)
@given(data=st.data())
def test_masked_keys_do_not_change_the_output(name, tensor, scale, seed_offset, data):
    """A padded key must not influence anything: neither through its value nor through its key (its own weight is
    zero, and the other keys' weights must not see it either)."""
    case = data.draw(cases(name))
    mask = data.draw(key_padding(case))
    q, k, v = case.qkv()
    backend = case.backend()
    original = {"k": k, "v": v}[tensor]
    noise = (
        torch.randn(
            original.shape, generator=torch.Generator().manual_seed(case.seed + seed_offset), dtype=original.dtype
        )
        * scale
    )
    changed = {"k": k, "v": v, tensor: torch.where(mask[:, None, :, None], original, noise)}
    close(
        backend(q, changed["k"], changed["v"], mask=mask),
        backend(q, k, v, mask=mask),
        case.tol(),
        f"{tensor} at masked keys",
    )


@pytest.mark.parametrize("name", names(lambda s: s.mask == "any"))
@fast(15)
@given(data=st.data())
def test_general_masks_block_exactly_the_masked_pairs(name, data):
    """A random (B, H|1, N, N) mask: zero weight where masked; perturbing key j moves only queries allowed to see j."""
    case = data.draw(cases(name, config=MASK_CONFIGS.get(name), structures=("randn",)))
    mask = general_mask(case, case.seed + 3, heads=data.draw(st.booleans()))
    q, k, v = case.qkv()
    backend = case.backend()
    out = backend(q, k, v, mask=mask)
    assert torch.isfinite(out).all()
    pattern = allowed(case, mask).expand(case.b, case.h, case.n, case.n)
    if SPECS[name].matrix:
        p = backend.attention_matrix(q, k, mask)
        assert (p[~pattern] == 0).all()
        if SPECS[name].rows == "convex":
            close(p.sum(-1), torch.ones(p.shape[:-1]), case.tol(), "rows")
    if name in ("softmax", "sdpa"):
        close(out, reference(q, k, v, case, mask, case.options["scale"]), case.tol(), "vs F.sdpa")
    if name == "qontot":  # global in S (see the xfail above): only the v half of the property holds
        return
    j = data.draw(st.integers(0, case.n - 1))
    k2, v2 = k.clone(), v.clone()
    k2[..., j, :] += 1.0
    v2[..., j, :] += 10.0
    moved = backend(q, k2, v2, mask=mask)
    blind = ~pattern[..., j]  # (B, H, N): queries that may not attend key j
    close(moved[blind], out[blind], case.tol(), "queries blind to key j")


# --- stochastic matrices -----------------------------------------------------------------------------------------


def _sinkhorn_odd(draw, stable=False, causal=None):
    n, causal, options = _sinkhorn(draw)
    return n, causal, {**options, "n_iter": 2 * (options["n_iter"] // 2) + 1}


ROW_CONFIGS = {"sinkhorn": _sinkhorn_odd}


@pytest.mark.parametrize("name", names(lambda s: s.rows != "free"))
@fast(20)
@given(data=st.data())
def test_rows_are_probability_vectors(name, data):
    """Row-stochastic backends: P >= 0, rows sum to 1, so P v is a per-channel convex combination of v's rows and a
    constant v comes back unchanged (this also covers backends without an explicit matrix)."""
    magnitude = st.sampled_from([0.25, 0.5, 1.0]) if name == "performer" else None  # features underflow beyond
    case = data.draw(cases(name, config=ROW_CONFIGS.get(name), magnitude=magnitude))
    q, k, v = case.qkv()
    backend = case.backend()
    c = torch.randn(case.b, case.h, 1, case.dv, generator=torch.Generator().manual_seed(case.seed), dtype=v.dtype)
    close(backend(q, k, c.expand_as(v)), c.expand_as(v), case.tol(), "constant v")
    if SPECS[name].rows != "convex":
        return
    out = backend(q, k, v).double()
    slack = case.tol() * 10 * v.abs().amax()
    assert (out >= v.double().amin(-2, keepdim=True) - slack).all() and (
        out <= v.double().amax(-2, keepdim=True) + slack
    ).all(), "output outside the convex hull of the values"
    if SPECS[name].matrix:
        p = backend.attention_matrix(q, k)
        assert (p >= 0).all()
        close(p.sum(-1), torch.ones(p.shape[:-1]), case.tol(), "row sums")


def _sinkhorn_converged(draw, stable=False, causal=None):
    n, _, options = _sinkhorn(draw)
    return n, False, {"n_iter": draw(st.sampled_from([51, 100, 201])), "eps": draw(st.sampled_from([1.0, 2.0]))}


DS_CONFIGS = {
    "sinkhorn": _sinkhorn_converged,
    "qr": _qr,  # qontot: DS only unpadded, N = 2^n_data_qubits
    "qontot": lambda draw, stable=False, causal=None: _qontot(draw, pad=False),
}


def ds_tol(case: Case) -> float:
    if case.name == "sinkhorn":  # the marginal not fixed by the last step converges geometrically in n_iter
        return max(case.tol() * 10, {51: 1e-4, 100: 1e-6, 201: 1e-8}[case.options["n_iter"]])
    return case.tol() * 10


@pytest.mark.parametrize("name", list(DS_CONFIGS))
@fast(20)
@given(data=st.data())
def test_doubly_stochastic(name, data):
    """Rows and columns sum to 1 (sinkhorn: within a tolerance set by n_iter); with key padding, the valid block."""
    case = data.draw(cases(name, config=DS_CONFIGS[name], magnitude=st.sampled_from([0.5, 1.0])))
    mask = data.draw(st.none() | key_padding(case)) if SPECS[name].mask == "key" else None
    q, k, _ = case.qkv()
    p = case.backend().attention_matrix(q, k, mask).double()
    assert (p >= 0).all() and torch.isfinite(p).all()
    valid = torch.ones(case.b, case.n, dtype=torch.bool) if mask is None else mask
    tol = ds_tol(case)
    for dim in (-1, -2):
        sums = p.sum(dim)  # (B, H, N): padded rows / columns are zero, valid ones sum to 1
        target = valid[:, None, :].expand_as(sums).double()
        assert (sums - target).abs().max() <= tol, f"marginal over dim {dim}: {(sums - target).abs().max():.2e}"


# --- permutation equivariance ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names(lambda s: s.tokens_equivariant))
@fast(15)
@given(data=st.data())
def test_permuting_tokens_permutes_the_output(name, data):
    """Non-causal backends without positional structure: out(q[π], k[π], v[π], mask[π]) = out(q, k, v, mask)[π]."""
    case = data.draw(cases(name, structures=("randn",), causal=False))
    perm = torch.tensor(data.draw(st.permutations(range(case.n))))
    mask = data.draw(st.none() | key_padding(case)) if SPECS[name].mask != "none" else None
    q, k, v = case.qkv()
    backend = case.backend()
    out = backend(q, k, v, mask=mask)
    permuted = backend(q[..., perm, :], k[..., perm, :], v[..., perm, :], mask=None if mask is None else mask[:, perm])
    close(permuted, out[..., perm, :], case.tol(), "permuted tokens")


def _qr_full_rank(draw, stable=False, causal=None):  # noise=0: the fixed noise matrix does not move with the queries
    return draw(st.integers(1, 8)), False, {"noise": 0.0, "dtype": "float64"}


@pytest.mark.parametrize("name", [*names(lambda s: s.tokens_equivariant), "qr"])
@fast(15)
@given(data=st.data())
def test_permuting_queries_permutes_the_rows(name, data):
    """Keys fixed, queries permuted: rows follow (QR too: P S = (P Q) R; needs S of full rank, N <= d)."""
    config = _qr_full_rank if name == "qr" else None
    case = data.draw(
        cases(
            name,
            config=config,
            structures=("randn",),
            causal=False,
            dtypes=(torch.float64,) if name == "qr" else DTYPES,
        )
    )
    if name == "qr":
        case.d = max(case.d, case.n)
    perm = torch.tensor(data.draw(st.permutations(range(case.n))))
    q, k, v = case.qkv()
    backend = case.backend()
    tol = 1e-7 if name == "qr" else case.tol()  # QR's sensitivity grows with the condition number of S
    close(backend(q[..., perm, :], k, v), backend(q, k, v)[..., perm, :], tol, "permuted queries")


# --- references --------------------------------------------------------------------------------------------------


def _exact_softmax_configs(name):
    """Configurations of a backend that are exactly softmax attention (+ causal, + a window mask)."""

    def draw_config(draw, stable=False, causal=None):
        n = draw(st.integers(1, N_MAX))
        if name == "sinkhorn":
            return n, False, {"n_iter": 1, "eps": 1.0}  # one row step is a softmax
        if name == "monarch":  # one block of N, or N blocks of 1
            return (
                n,
                False,
                {
                    "block_size": draw(st.sampled_from([1, n])),
                    "num_steps": draw(st.integers(1, 3)),
                    "pad": draw(st.sampled_from(["pre", "post"])),
                },
            )
        if name == "delta":  # the window covers the sequence: every mode is full causal attention
            return (
                n,
                True,
                {
                    "window": draw(st.integers(n, n + 4)),
                    "sinks": draw(st.integers(0, 4)),
                    "gamma": draw(st.integers(1, 8)),
                    "tail_min": draw(st.integers(0, 10)),
                    "tail": draw(st.booleans()),
                    "mode": draw(st.sampled_from(DELTA_MODES)),
                },
            )
        if name == "sink_window":  # any window: compared with the dense mask of its definition below
            return _sink_window(draw)
        return _row_wise(draw)

    return draw_config


def sink_window_pattern(n: int, window: int, sinks: int) -> torch.Tensor:
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & ((i - j < window) | (j < sinks))


@pytest.mark.parametrize("name", ["softmax", "sdpa", "sinkhorn", "monarch", "sink_window", "delta"])
@fast(20)
@given(data=st.data())
def test_equals_torch_sdpa_reference(name, data):
    """Where a backend is softmax attention by definition, it equals F.scaled_dot_product_attention in float64."""
    case = data.draw(cases(name, config=_exact_softmax_configs(name)))
    q, k, v = case.qkv()
    out = case.backend()(q, k, v)
    scale = case.options.get("scale")
    if name == "sink_window":
        expected = F.scaled_dot_product_attention(
            q.double(),
            k.double(),
            v.double(),
            scale=scale,
            attn_mask=(sink_window_pattern(case.n, case.options["window"], case.options["sinks"])),
        )
    else:
        expected = reference(q, k, v, case, scale=scale)
    close(out, expected, case.tol(), "vs F.sdpa")


# --- fixed bugs: their minimal failing inputs, kept as regression tests --------------------------------------------


@pytest.mark.parametrize("name", ["normsoftmax_std", "normsoftmax_var"])
def test_bug_normsoftmax_single_key_without_mask(name):
    q = k = v = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    out = attention.create(name)(q, k, v)
    torch.testing.assert_close(out, v)  # one key: its weight is 1 (got NaN)


@pytest.mark.parametrize("dtype,x", [(torch.float32, 10.0), (torch.float64, 20.0)])
def test_bug_monarch_steps_nan_for_large_scores(dtype, x):
    q = torch.tensor([[x], [x]], dtype=dtype)[None, None]
    k = torch.tensor([[x], [-x]], dtype=dtype)[None, None]
    v = torch.tensor([[1.0], [2.0]], dtype=dtype)[None, None]
    expected = attention.create("softmax")(q, k, v)  # [[1], [1]]
    torch.testing.assert_close(attention.create("monarch", block_size=1, num_steps=2)(q, k, v), expected)


def test_bug_qontot_standardized_single_token():
    q = k = v = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    backend = attention.create("qontot", n_data_qubits=1, n_aux_qubits=1, layers=1, pad=True, inject="standardized")
    torch.testing.assert_close(backend(q, k, v), v)


def test_bug_qontot_masked_keys_change_the_output():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 4, 2, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[True, True, False, False]])
    backend = attention.create("qontot", n_data_qubits=2, n_aux_qubits=1, layers=1, dtype="complex128")
    k2 = k.clone()
    k2[..., 2:, :] = 0.0  # change only the masked keys
    torch.testing.assert_close(backend(q, k2, v, mask=mask), backend(q, k, v, mask=mask))


def test_bug_qr_noise_scale_sees_masked_keys():
    q = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4, 1)
    k = torch.tensor([1.0, -1.0, 2.0, 0.5]).view(1, 1, 4, 1)
    v = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4, 1)
    mask = torch.tensor([[False, True, True, True]])
    k2 = k.clone()
    k2[..., 0, :] = 100.0  # only the masked key changes
    backend = attention.create("qr", dtype="float32")
    torch.testing.assert_close(backend(q, k2, v, mask=mask), backend(q, k, v, mask=mask))


@pytest.mark.parametrize("pad,q_value", [(True, 1.0), (False, 0.0)])
def test_bug_qontot_zero_row_after_masking(pad, q_value):
    # pad: N=2 padded to 4 with one layer and no aux qubit: the cropped P is exactly I for any input.
    # no pad: zero scores give zero angles and P = I exactly.
    q = torch.full((1, 1, 2, 1), q_value, dtype=torch.float64)
    k = torch.ones(1, 1, 2, 1, dtype=torch.float64)
    mask = torch.tensor([[False, True]])
    backend = attention.create(
        "qontot", n_data_qubits=2 if pad else 1, n_aux_qubits=0 if pad else 1, layers=1, pad=pad, dtype="complex128"
    )
    p = backend.attention_matrix(q, k, mask)
    torch.testing.assert_close(p.sum(-1), torch.ones(1, 1, 2, dtype=torch.float64))  # got [0, 1]
