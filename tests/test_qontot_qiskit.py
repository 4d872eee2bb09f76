"""The torch QontOT simulator against qiskit: unitaries, the Bell-circuit read-out, and Aer shot noise."""

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Operator, Statevector

from qdsbench import attention
from qdsbench.quantum import simulator
from qdsbench.quantum.sampling import sample_dsm


def backend(q_d, q_a, layers, ansatz="simple", **kw):
    return attention.create(
        "qontot", n_data_qubits=q_d, n_aux_qubits=q_a, layers=layers, ansatz=ansatz, dtype="complex128", **kw
    )


@pytest.mark.parametrize(
    "q_d,q_a,layers,ansatz",
    [(1, 1, 1, "simple"), (2, 1, 3, "parted"), (2, 3, 2, "simple"), (3, 2, 2, "parted"), (3, 4, 1, "simple")],
)
def test_circuit_unitary_equals_qiskit_operator(q_d, q_a, layers, ansatz):
    b = backend(q_d, q_a, layers, ansatz)
    rng = np.random.default_rng(q_d * 10 + q_a + layers)
    angles = rng.uniform(-np.pi, np.pi, b.n_params)
    ours = b.circuit_unitary(torch.tensor(angles)).numpy()
    reference = Operator(b.qiskit_circuit(angles)).data
    assert np.abs(ours - reference).max() < 1e-10
    assert np.abs(ours.conj().T @ ours - np.eye(2**b.n_qubits)).max() < 1e-10


def bell_dsm(b, angles) -> np.ndarray:
    """P from the probabilities of qiskit's 2k-qubit Bell circuit (the hardware read-out)."""
    probs = Statevector(b.qiskit_circuit(np.asarray(angles), bell=True)).probabilities()
    n, m, dim = 2**b.n_data_qubits, 2**b.n_aux_qubits, 2**b.n_qubits
    joint = probs.reshape(dim, dim)  # [register B (y), register A (x)]: qiskit is little-endian
    return n * joint.reshape(n, m, n, m).sum(axis=(1, 3)).T


@pytest.mark.parametrize(
    "q_d,q_a,layers,ansatz", [(2, 2, 2, "simple"), (2, 2, 2, "parted"), (1, 3, 2, "simple"), (2, 3, 3, "parted")]
)
def test_bell_circuit_marginal_equals_normalize(q_d, q_a, layers, ansatz):
    """Also where the simulator skips the aux-only ends of the circuit (q_a >= 2)."""
    b = backend(q_d, q_a, layers, ansatz)
    n = 2**q_d
    s = torch.randn(1, 1, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    angles = b.angles(s.reshape(1, n, n))[0]
    assert np.abs(bell_dsm(b, angles.numpy()) - b.normalize(s)[0, 0].numpy()).max() < 1e-10


def test_adjoint_gradient_equals_the_parameter_shift_rule_on_qiskit():
    """Every angle drives one exp(-i t/2 P) gate with P^2 = I: dL/dt = (L(t + pi/2) - L(t - pi/2)) / 2 exactly."""
    b = backend(1, 2, 1)
    rng = np.random.default_rng(5)
    angles, weight = rng.uniform(-np.pi, np.pi, b.n_params), rng.standard_normal((2, 2))
    shifted = []
    for i in range(b.n_params):
        plus, minus = angles.copy(), angles.copy()
        plus[i] += np.pi / 2
        minus[i] -= np.pi / 2
        shifted.append(((bell_dsm(b, plus) - bell_dsm(b, minus)) * weight).sum() / 2)
    a = torch.tensor(angles[None], requires_grad=True)
    (simulator.dsm(a, 1, 2, 1, torch.complex128) * torch.tensor(weight)).sum().backward()
    assert np.abs(a.grad[0].numpy() - np.array(shifted)).max() < 1e-10


def test_parted_and_simple_give_the_same_dsm_for_the_same_theta():
    """The same DSM by construction, (U1^T (x) I)|Phi> = (I (x) U1)|Phi>: the torch path builds V itself and never
    reads the ansatz, so comparing two torch backends would compare a computation with itself. Each is compared with
    qiskit's Bell circuit of its own ansatz instead; where the two differ (depth, which register runs which blocks,
    the circuit Aer samples) is tested in test_mission_parted.py."""
    s = torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for ansatz in ("parted", "simple"):
        b = backend(3, 1, 3, ansatz)
        angles = b.angles(s.reshape(1, 8, 8))[0]
        assert np.abs(bell_dsm(b, angles.numpy()) - b.normalize(s)[0, 0].numpy()).max() < 1e-10


def test_vec_order_changes_the_angles():
    s = torch.arange(16.0).reshape(1, 4, 4)
    row, col = backend(2, 1, 1, vec_order="row"), backend(2, 1, 1, vec_order="col")
    torch.testing.assert_close(row.angles(s)[0], row.theta * torch.cat([s.flatten(), s.flatten()])[: row.n_params])
    torch.testing.assert_close(col.angles(s)[0], col.theta * torch.cat([s[0].T.flatten()] * 2)[: col.n_params])


def test_aer_sampling_error_shrinks_like_one_over_sqrt_shots():
    b = backend(2, 1, 2)
    s = torch.randn(4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    angles = b.angles(s)
    exact = b.dsm_from_angles(angles).numpy()
    errors = {}
    for shots in (200, 20000):
        estimate = sample_dsm(angles.numpy(), 2, 1, 2, "simple", shots, seed=7)
        errors[shots] = np.sqrt(((estimate - exact) ** 2).mean())
    ratio = errors[200] / errors[20000]
    assert 5 < ratio < 20  # sqrt(100) = 10
    # finite-shot estimates are still exactly doubly stochastic in expectation and nonnegative
    assert (estimate >= 0).all()


def test_shots_option_in_the_backend_and_noise_moves_p_towards_uniform():
    b = backend(1, 1, 2, shots=4000)
    s = torch.randn(1, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = backend(1, 1, 2).normalize(s)
    assert (b.normalize(s) - exact).abs().max() < 0.1
    angles = b.angles(s.reshape(1, 2, 2)).numpy()
    clean = sample_dsm(angles, 1, 1, 2, "simple", 20000, seed=3)
    noisy = sample_dsm(angles, 1, 1, 2, "simple", 20000, seed=3, depolarizing=0.2)
    assert np.abs(noisy - 0.5).mean() < np.abs(clean - 0.5).mean()
