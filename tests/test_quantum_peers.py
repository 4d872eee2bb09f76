"""The QontOT benchmark's peers (qdsbench/quantum/peers.py) time only circuits that reproduce our P, so each peer is
checked here against our complex128 DSM, and the guard itself against a P that is not the circuit's. The joint-to-P
map is checked against the definition P_ij = n sum_{a,b} Prob(A=(i,a), B=(j,b)) written out as loops.

PennyLane and torchquantum-ng live in .venv-bench (`make bench-qontot` builds it): their tests skip elsewhere, and
`make mutate MODULE=quantum` runs with that venv.
"""

import itertools

import numpy as np
import pytest
import torch

from qdsbench import attention
from qdsbench.quantum import peers
from qdsbench.quantum.ansatz import brick_wall

Q_D, Q_A, LAYERS = 1, 1, 2  # 2 + 2 qubits in the Bell circuit: every peer runs in well under a second


def _backend_and_exact_p(m=3, q_d=Q_D, q_a=Q_A, layers=LAYERS):
    backend = attention.create("qontot", n_data_qubits=q_d, n_aux_qubits=q_a, layers=layers, dtype="complex128")
    scores = torch.randn(m, 2**q_d, 2**q_d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    angles = backend.angles(scores)
    return backend, angles, backend.dsm_from_angles(angles)


def test_p_from_joint_is_the_block_sum_of_the_joint_distribution_transposed():
    n, m = 2, 3
    joint = np.random.default_rng(0).random((2, n * m, n * m))  # [batch, y = (j, b), x = (i, a)], any weights
    want = np.zeros((2, n, n))
    for s, i, j, a, b in itertools.product(range(2), range(n), range(n), range(m), range(m)):
        want[s, i, j] += n * joint[s, j * m + b, i * m + a]
    np.testing.assert_allclose(peers._p_from_joint(joint, n, m), want, rtol=1e-12)


def test_gates_follow_the_brick_wall_on_register_b_in_circuit_order():
    k, layers = 3, 2
    angles = np.arange(100.0)
    got = list(peers._gates(angles, k, layers))
    want = []
    for block in brick_wall(k, layers):
        a = k + block.first_qubit
        want += [("xx", block.offset, (a, a + 1)), ("yy", block.offset + 1, (a, a + 1))]
        want += [("zz", block.offset + 2, (a, a + 1)), ("ry", block.offset + 3, (a,))]
    assert got == want


@pytest.mark.parametrize("q_d,q_a", [(1, 1), (2, 1)])
def test_qiskit_operator_and_aer_reproduce_our_p(q_d, q_a):
    backend, angles, p = _backend_and_exact_p(q_d=q_d, q_a=q_a)
    rows = list(peers._qiskit_rows(backend, angles.numpy()))
    assert [label.split(" ")[0] for label, _, _ in rows] == ["qiskit", "qiskit-aer"]
    for label, times, p_peer in rows:
        torch.testing.assert_close(p_peer, p, rtol=0, atol=1e-10, msg=label)
        assert set(times) == {"fwd"} and all(t >= 0 for t in times["fwd"])


def test_references_time_only_the_peers_that_reproduce_p_and_name_the_others():
    backend, angles, p = _backend_and_exact_p()
    found = peers.references(backend, angles, p)
    labels = [label for label, _ in found]
    assert any(label.startswith("qiskit quantum_info.Operator") for label in labels)
    assert any(label.startswith("qiskit-aer") for label in labels)
    assert all("reproduces our P" in note or "skipped, not installed" in note for note in peers.NOTES)
    wrong = p.clone()
    wrong[0] = wrong[0].flip(-1)  # still doubly stochastic, but not this circuit's P
    assert peers.references(backend, angles, wrong) == []
    not_same = [note for note in peers.NOTES if "not the same circuit" in note]
    assert len(not_same) == len(found)
    assert all("max |P - ours|" in note for note in not_same)


def test_references_note_a_peer_that_is_not_installed(monkeypatch):
    backend, angles, p = _backend_and_exact_p()

    def missing(*args):
        raise ImportError("No module named 'pennylane'")

    monkeypatch.setattr(peers, "_pennylane_rows", missing)
    peers.references(backend, angles, p)
    assert any(note.startswith("- pennylane: skipped, not installed here") for note in peers.NOTES)


@pytest.mark.parametrize("backward", [False, True])
def test_the_old_simulator_computes_our_p_over_every_chunk_once(monkeypatch, backward):
    """It is timed, not used, so what it computed is captured at its block_sum: every matrix once, in order."""
    backend, angles, p = _backend_and_exact_p(m=5)
    captured, block_sum = [], peers.simulator.block_sum

    def capture(v, q_d, q_a):
        out = block_sum(v, q_d, q_a)
        captured.append((out.detach(), out.requires_grad))
        return out

    monkeypatch.setattr(peers.simulator, "block_sum", capture)
    peers.old_simulator(angles.float(), Q_D, Q_A, LAYERS, torch.randn(5, 2, 2), backward=backward, chunk=2)
    assert [len(c) for c, _ in captured] == [2, 2, 1]
    assert all(needs_grad == backward for _, needs_grad in captured)
    torch.testing.assert_close(torch.cat([c for c, _ in captured]).double(), p, rtol=0, atol=1e-5)


def test_pennylane_peers_reproduce_our_p():
    pytest.importorskip("pennylane")
    backend, angles, p = _backend_and_exact_p()
    weight = np.random.default_rng(0).standard_normal((len(angles), backend.size, backend.size))
    rows = list(peers._pennylane_rows(backend, angles.numpy(), weight))
    assert len(rows) == 2
    for label, times, p_peer in rows:
        torch.testing.assert_close(p_peer.double(), p, rtol=0, atol=1e-8, msg=label)
        assert set(times) == {"fwd", "fwd+bwd"}


def test_torchquantum_peer_reproduces_our_p_in_complex64():
    pytest.importorskip("torchquantum")
    backend, angles, p = _backend_and_exact_p()
    weight = np.random.default_rng(0).standard_normal((len(angles), backend.size, backend.size))
    ((label, times, p_peer),) = peers._torchquantum_rows(backend, angles.numpy(), weight)
    torch.testing.assert_close(p_peer.double(), p, rtol=0, atol=1e-5, msg=label)
    assert set(times) == {"fwd", "fwd+bwd"}
