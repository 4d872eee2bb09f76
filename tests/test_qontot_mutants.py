"""Holes in QontOT attention (qdsbench/attention/qontot.py) found by mutation testing, closed against references
that share none of its code: qiskit's Operator and circuits, NumPy z-scores fed to the plain circuit, vec(S) tiled
by hand, the paper's main setting (q_d = 3, q_a = 4, 16 layers), the row rules the module docstring states
(a row with no mass on its kept keys is uniform over them; gradients stay finite), a circuit that by construction
leaves the top data qubit alone (so P has exact zeros, checked on qiskit's Operator), and the memory the angles
may take (one tile of vec(S) per matrix, measured by torch's profiler).
"""

import math

import numpy as np
import pytest
import torch
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import Operator

from qdsbench import attention
from qdsbench.quantum import ansatz, sampling, simulator


def _small(**options):
    """4 tokens (q_d = 2), one aux qubit, two layers, complex128: the exact reference precision."""
    return attention.create("qontot", n_data_qubits=2, n_aux_qubits=1, layers=2, dtype="complex128", **options)


def _scores(*shape, seed=0, loc=0.0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    return loc + spread * torch.randn(*shape, generator=g, dtype=torch.float64)


class _FakeSampler:
    """Stands in for Aer: records what it is given and returns the anti-identity (a DSM no circuit here gives)."""

    def __init__(self):
        self.calls = []

    def __call__(self, angles, n_data, n_aux, layers, ansatz, shots, seed=0, depolarizing=0.0, batch=64):
        self.calls.append({"angles": angles, "shots": shots, "depolarizing": depolarizing})
        n = 2**n_data
        return np.broadcast_to(np.eye(n)[::-1], (len(angles), n, n)).copy()


# --- defaults --------------------------------------------------------------------------------------------------
def test_the_default_backend_is_the_papers_main_circuit_and_samples_without_gate_noise(monkeypatch):
    """QDSFormer's main setting: 8 x 8 DSMs from q_d = 3 data and q_a = 4 aux qubits (k = 7), 16 layers; shots
    alone add no depolarizing noise."""
    backend = attention.create("qontot")
    assert (backend.n_data_qubits, backend.n_aux_qubits, backend.n_qubits, backend.layers) == (3, 4, 7, 16)
    assert backend.n_params == 16 * (7 - 1) * 4
    fake = _FakeSampler()
    monkeypatch.setattr(sampling, "sample_dsm", fake)
    attention.create("qontot", shots=10).normalize(torch.zeros(1, 1, 8, 8))
    assert fake.calls[0]["depolarizing"] == 0.0


# --- the length check ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_tokens", [1, 2])
def test_the_length_error_suggests_the_smallest_data_register(n_tokens):
    """N = 1 or 2 tokens fit one data qubit (2^1 = 2): the message must say n_data_qubits=1."""
    with pytest.raises(ValueError) as info:
        attention.create("qontot").normalize(torch.zeros(1, 1, n_tokens, n_tokens))
    assert "use n_data_qubits=1 and pad=true" in str(info.value)


# --- angles ----------------------------------------------------------------------------------------------------
def _tiled(theta: torch.Tensor, matrix: np.ndarray) -> np.ndarray:
    n = theta.numel()
    vec = matrix.reshape(-1)
    return theta.double().numpy() * np.tile(vec, math.ceil(n / vec.size))[:n]


def test_angles_of_an_unbatched_matrix_and_of_many_heads_are_theta_times_tiled_vec_s():
    backend = attention.create("qontot", n_data_qubits=2, n_aux_qubits=1, layers=8)  # 64 angles, 16 scores
    single = _scores(4, 4, seed=1)
    np.testing.assert_allclose(backend.angles(single).numpy(), _tiled(backend.theta, single.numpy()), rtol=1e-15)
    many = _scores(1, 32, 4, 4, seed=2)  # more heads than one tile of vec(S) needs
    got = backend.angles(many)
    assert got.shape == (1, 32, backend.n_params)
    for h in range(32):
        np.testing.assert_allclose(got[0, h].numpy(), _tiled(backend.theta, many[0, h].numpy()), rtol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_angles_come_in_the_dtype_of_the_scores_whatever_theta_is_stored_in(dtype):
    backend = _small()  # theta: float32
    assert backend.angles(torch.ones(2, 4, 4, dtype=dtype)).dtype == dtype
    assert _small().double().angles(torch.ones(2, 4, 4, dtype=dtype)).dtype == dtype  # theta: float64


def test_the_angles_of_a_batch_take_memory_for_one_tile_of_vec_s_per_matrix():
    """theta * tile(vec(S)) needs ceil(n_params / N^2) copies of vec(S) per matrix, 6 on the paper circuit (384 angles,
    64 scores); tiling n_params times as many and cropping gives the same angles but allocates ~4096x the memory
    (1.6 GB for 256 heads). Every allocation angles() makes is counted; the output itself is 24 kB."""
    backend = attention.create("qontot")
    scores = _scores(16, 8, 8, seed=15).float()
    with torch.autograd.profiler.profile(profile_memory=True, use_kineto=False) as prof:  # CPU allocations
        got = backend.angles(scores)
    np.testing.assert_allclose(got[3].numpy(), _tiled(backend.theta, scores[3].numpy()), rtol=1e-6)
    allocated = sum(max(event.cpu_memory_usage, 0) for event in prof.function_events)
    assert allocated <= 8 * got.numel() * got.element_size()


# --- the circuit and its qiskit twin ---------------------------------------------------------------------------
def test_circuit_unitary_of_a_batch_is_the_qiskit_operator_of_each_angle_set():
    backend = _small()
    rng = np.random.default_rng(3)
    angles = rng.uniform(-np.pi, np.pi, (2, 3, backend.n_params))
    got = backend.circuit_unitary(torch.from_numpy(angles))
    assert got.shape == (2, 3, 8, 8)
    for index in np.ndindex(2, 3):
        want = Operator(backend.qiskit_circuit(angles[index])).data
        np.testing.assert_allclose(got[index].numpy(), want, rtol=0, atol=1e-12)
    flat = backend.circuit_unitary(torch.from_numpy(angles.reshape(6, -1)))
    np.testing.assert_allclose(flat.numpy(), got.reshape(6, 8, 8).numpy(), rtol=0, atol=1e-14)


def test_qiskit_circuit_takes_tensors_arrays_lists_and_free_parameters():
    backend = _small()
    values = np.random.default_rng(4).uniform(-np.pi, np.pi, backend.n_params)
    want = Operator(backend.qiskit_circuit(values)).data
    for angles in (torch.from_numpy(values), values.tolist(), tuple(values.tolist())):
        np.testing.assert_allclose(Operator(backend.qiskit_circuit(angles)).data, want, rtol=0, atol=1e-12)
    free = ParameterVector("t", backend.n_params)  # no .tolist(): a sequence of qiskit Parameters
    circuit = backend.qiskit_circuit(free)
    assert circuit.num_parameters == backend.n_params
    bound = circuit.assign_parameters(dict(zip(free, values.tolist(), strict=True)))
    np.testing.assert_allclose(Operator(bound).data, want, rtol=0, atol=1e-12)
    bell = backend.qiskit_circuit(free, bell=True)
    assert bell.num_parameters == backend.n_params and bell.num_qubits == 2 * backend.n_qubits


def test_the_parted_backends_bell_circuit_is_the_shallow_split_one():
    """Parted (the paper's default): U1^T on register A beside U2 on register B, so a shallower circuit than
    simple, whose blocks all act on register B."""
    values = np.random.default_rng(5).uniform(-1, 1, _small().n_params)
    parted = _small(ansatz="parted").qiskit_circuit(values, bell=True)
    simple = _small(ansatz="simple").qiskit_circuit(values, bell=True)
    k = _small().n_qubits

    def blocks_on_a(circuit):
        return sum(
            1
            for inst in circuit.data
            if inst.operation.name not in ("h", "cx") and all(circuit.find_bit(q).index < k for q in inst.qubits)
        )

    assert parted.depth() < simple.depth()
    assert blocks_on_a(parted) > 0 and blocks_on_a(simple) == 0


# --- chunks ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_chunk_bytes,expected", [(4 * 2**20, simulator.CPU_CHUNK_BYTES), (1000, 1000)])
def test_on_cpu_max_chunk_bytes_reaches_the_simulator_capped_at_the_cpu_chunk(monkeypatch, max_chunk_bytes, expected):
    """The documented cap: max_chunk_bytes limits the unitaries simulated at once, on CPU to at most
    simulator.CPU_CHUNK_BYTES (1 MB); the DSM itself does not depend on the chunking."""
    real, seen = simulator.dsm, []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("chunk_bytes"))
        return real(*args, **kwargs)

    backend = _small(max_chunk_bytes=max_chunk_bytes)
    angles = backend.angles(_scores(3, 4, 4, seed=6))
    want = real(angles, 2, 1, 2, torch.complex128, chunk_bytes=1)  # one matrix at a time
    monkeypatch.setattr(simulator, "dsm", spy)
    got = backend.dsm_from_angles(angles)
    assert seen == [expected]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


# --- shots -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("grad", ["none", "scores", "full"])
@pytest.mark.parametrize("shots", [1, 5])
def test_any_positive_shots_estimate_p_with_the_sampler_from_the_scores_angles(monkeypatch, grad, shots):
    fake = _FakeSampler()
    monkeypatch.setattr(sampling, "sample_dsm", fake)
    backend = _small(shots=shots, grad=grad)
    scores = _scores(2, 1, 4, 4, seed=7)
    p = backend.normalize(scores)
    torch.testing.assert_close(p, torch.eye(4, dtype=torch.float64).flip(-1).expand(2, 1, 4, 4))
    assert not p.requires_grad  # an estimate from counts has no gradient
    (call,) = fake.calls
    assert call["shots"] == shots
    want = np.stack([_tiled(backend.theta.detach(), scores[b, 0].numpy()) for b in range(2)])
    np.testing.assert_allclose(call["angles"], want, rtol=1e-15)


# --- inject=standardized ---------------------------------------------------------------------------------------
def _standardized_reference(scores: torch.Tensor, keep: torch.Tensor | None, circuit) -> np.ndarray:
    """Per matrix: z = (s - mean) / std over the kept scores (ddof 1; masked scores 0), the plain circuit's DSM of
    z, the masked entries set to 0 and every row renormalised over its kept keys (a row keeping none: 0)."""
    s = scores.numpy()
    k = np.ones(s.shape, dtype=bool) if keep is None else keep.numpy()
    out = np.zeros_like(s)
    for index in np.ndindex(s.shape[:-2]):
        kept = s[index][k[index]]
        z = np.where(k[index], (s[index] - kept.mean()) / kept.std(ddof=1), 0.0)
        p = circuit.normalize(torch.from_numpy(z)[None, None])[0, 0].numpy()
        if keep is None:
            out[index] = p
            continue
        p = np.where(k[index], p, 0.0)
        total = p.sum(1, keepdims=True)
        out[index] = np.where(total > 0, p / np.where(total > 0, total, 1), 0.0)
    return out


def _two_kept_in_row_zero():
    keep = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    keep[..., 0, :2] = True  # two kept scores, both in row 0: the unbiased std divides by 2 - 1
    return keep


@pytest.mark.parametrize(
    "case",
    [
        {"n_data_qubits": 1, "scores": _scores(2, 2, 2, 2, seed=8, loc=2, spread=3), "keep": None},  # 2 tokens
        {"n_data_qubits": 2, "scores": _scores(2, 1, 4, 4, seed=9, loc=1, spread=0.05), "keep": None},  # std < 1
        {
            "n_data_qubits": 2,
            "scores": _scores(2, 1, 4, 4, seed=10, loc=1, spread=0.05),
            "keep": torch.tensor([True, True, True, False]).expand(2, 1, 4, 4),
        },
        {"n_data_qubits": 2, "scores": _scores(1, 1, 4, 4, seed=11, spread=2), "keep": _two_kept_in_row_zero()},
    ],
    ids=["two-tokens", "small-spread", "small-spread-masked", "two-kept-scores"],
)
def test_standardized_inject_is_the_plain_circuit_on_the_z_scores(case):
    q_d = case["n_data_qubits"]
    options = {"n_data_qubits": q_d, "n_aux_qubits": 1, "layers": 2, "dtype": "complex128"}
    circuit = attention.create("qontot", **options)
    got = attention.create("qontot", inject="standardized", **options).normalize(case["scores"], case["keep"])
    want = _standardized_reference(case["scores"], case["keep"], circuit)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("grad", ["scores", "full"])
def test_a_single_standardized_token_has_weight_one_and_a_finite_gradient(grad):
    backend = attention.create(
        "qontot", n_data_qubits=1, n_aux_qubits=1, layers=2, pad=True, inject="standardized", grad=grad
    )
    scores = torch.full((2, 1, 1, 1), 5.0, dtype=torch.float64, requires_grad=True)
    p = backend.normalize(scores)
    assert torch.equal(p, torch.ones_like(p))
    p.sum().backward()
    assert torch.isfinite(scores.grad).all()
    if grad == "full":
        assert torch.isfinite(backend.theta.grad).all()


# --- rows with no mass on their kept keys ----------------------------------------------------------------------
def test_a_row_whose_kept_keys_got_no_mass_is_exactly_uniform_over_them_with_finite_gradients():
    """theta = 0: the circuit is the identity, so P = I; masking key 0 of query 0 leaves that row no mass on its
    three kept keys: it becomes exactly 1/3 on each (in float64), and backward stays finite."""
    backend = _small(grad="full")
    with torch.no_grad():
        backend.theta.zero_()
    keep = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    keep[..., 0, 0] = False
    scores = _scores(1, 1, 4, 4, seed=12).requires_grad_()
    p = backend.normalize(scores, keep)
    want = torch.eye(4, dtype=torch.float64)
    want[0] = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64) / 3
    torch.testing.assert_close(p[0, 0], want, rtol=1e-15, atol=0)
    weights = _scores(1, 1, 4, 4, seed=13)
    (p * weights).sum().backward()
    assert torch.isfinite(backend.theta.grad).all() and torch.isfinite(scores.grad).all()


@pytest.mark.parametrize("grad", ["scores", "full"])
def test_a_sequence_with_one_valid_token_standardized_puts_weight_one_on_it_with_finite_gradients(grad):
    """Query and key padding leaving one valid token keep a single score per matrix: std 1 (no spread, the unbiased
    variance of one score is 0 / 0), that row is 1 on its key, every padded row keeps no key and is 0, whatever the
    scores; so the gradient is 0, and finite (sqrt of a zero variance has an infinite slope)."""
    backend = attention.create(
        "qontot", n_data_qubits=2, n_aux_qubits=1, layers=2, dtype="complex128", inject="standardized", grad=grad
    )
    valid = torch.tensor([[True, False, False, False], [True, True, True, False]])[:, None, None, :]
    keep = valid & valid.transpose(-1, -2)  # batch 0: one valid token, one kept score; batch 1: three tokens
    scores = _scores(2, 1, 4, 4, seed=16).requires_grad_()
    p = backend.normalize(scores, keep)
    want = torch.zeros(4, 4, dtype=torch.float64)
    want[0, 0] = 1.0
    torch.testing.assert_close(p[0, 0], want, rtol=0, atol=1e-15)
    (p * _scores(2, 1, 4, 4, seed=17)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0].abs().max() < 1e-12
    if grad == "full":
        assert torch.isfinite(backend.theta.grad).all()


def _leaves_the_top_data_qubit_alone(backend):
    """theta = 0 on every block touching the top data qubit (qubit k - 1: data index = high bits), so V = W (x) I
    there and P is block diagonal: exactly 0 between tokens {0, 1} and {2, 3}."""
    with torch.no_grad():
        for block in ansatz.brick_wall(backend.n_qubits, backend.layers):
            if block.first_qubit + 1 == backend.n_qubits - 1:
                backend.theta[block.offset : block.offset + ansatz.PARAMS_PER_BLOCK] = 0


def _qiskit_dsm(backend, angles: np.ndarray) -> np.ndarray:
    """P_ij = (1/m) sum_{a,b} |V_{(j,b),(i,a)}|^2 from qiskit's Operator, data index = high bits."""
    n, m = backend.size, 2**backend.n_aux_qubits
    v = Operator(backend.qiskit_circuit(angles)).data
    return (np.abs(v) ** 2).reshape(n, m, n, m).sum(axis=(1, 3)).T / m


@pytest.mark.parametrize("dtype,atol", [("complex128", 1e-12), ("complex64", 1e-5)])
def test_rows_whose_kept_keys_got_exactly_no_mass_are_uniform_and_pass_no_gradient(dtype, atol):
    """Where the circuit puts exactly no mass on a row's kept keys (P block diagonal, checked on qiskit's Operator),
    the row is exactly uniform over them and constant in the scores; the other rows are qiskit's. complex64's
    rounding (and its projection onto unit sums) moves those exact zeros by ~1e-8, which renormalising the crop
    blew up into arbitrary weights ([0, 0, 0, 1] for [0, 0, .5, .5]) and gradients up to 0.2."""
    backend = attention.create("qontot", n_data_qubits=2, n_aux_qubits=1, layers=3, dtype=dtype, grad="scores")
    _leaves_the_top_data_qubit_alone(backend)
    keep = torch.ones(8, 1, 4, 4, dtype=torch.bool)
    keep[..., 0, :2] = False  # query 0 keeps keys 2, 3, outside its block
    keep[..., 2, 2:] = False  # query 2 keeps keys 0, 1
    scores = _scores(8, 1, 4, 4, seed=18).requires_grad_()
    p = backend.normalize(scores, keep)
    for b in range(8):
        reference = _qiskit_dsm(
            backend, _tiled(backend.theta, scores[b, 0].detach().masked_fill(~keep[b, 0], 0).numpy())
        )
        assert (reference[0, 2:] == 0).all() and (reference[2, :2] == 0).all()
        torch.testing.assert_close(p[b, 0, 0], torch.tensor([0, 0, 0.5, 0.5], dtype=torch.float64), rtol=0, atol=0)
        torch.testing.assert_close(p[b, 0, 2], torch.tensor([0.5, 0.5, 0, 0], dtype=torch.float64), rtol=0, atol=0)
        np.testing.assert_allclose(p[b, 0, [1, 3]].detach().numpy(), reference[[1, 3]], rtol=0, atol=atol)
    (p[..., [0, 2], :] * _scores(8, 1, 2, 4, seed=19)).sum().backward()
    assert scores.grad.abs().max() < 1e-12


# --- precision -------------------------------------------------------------------------------------------------
def test_half_precision_scores_reach_a_complex128_circuit_at_full_precision():
    """dtype=complex128 simulates from float64 angles whatever the scores' dtype: the float16 result is the exact
    DSM of the (float16) scores rounded once to float16, |error| <= 2^-12 for entries <= 1."""
    backend = attention.create("qontot", n_data_qubits=2, n_aux_qubits=1, layers=16, dtype="complex128")
    scores = (4 * _scores(4, 1, 4, 4, seed=14)).half()
    got = backend.normalize(scores)
    assert got.dtype == torch.float16
    exact = backend.normalize(scores.double())
    assert (got.double() - exact).abs().max() <= 2**-12
