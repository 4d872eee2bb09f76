"""Holes found by mutation testing of qdsbench/quantum's finite-shot sampler (``sampling.sample_dsm``, its noise
model), ``simulator.run_circuit``'s buffers and ``ansatz.brick_wall``'s refusal, each closed against a reference that
shares none of their code.

The references: the exact DSM P_ij = (1/m) sum_{a,b} |V[(j,b), (i,a)]|^2 from qiskit's Operator of a brick wall
written out here gate by gate (the infinite-shot limit), with the binomial standard deviation
n sqrt(q (1 - q) / shots) of each entry (q = P_ij / n, a cell probability) as the tolerance; the depolarizing channel's
Pauli weights (identity 1 - lambda (4^n - 1) / 4^n, every other Pauli lambda / 4^n) read through NoiseModel.to_dict;
the angle vectors and seeds Aer is actually given (a spy on AerSimulator.run); BLAS's rule that a product is not
written over its own operand (a spy on torch.bmm); the refusal naming the bad value. ``sampling._compiled`` and
``simulator.schedule`` are lru-cached, so every test starts from empty caches.
"""

import math
import re

import numpy as np
import pytest
import torch
from qiskit_aer import AerSimulator
from quantum_reference import clear_quantum_caches, hand_unitary, loop_dsm

from qdsbench.quantum import ansatz, sampling, simulator


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_quantum_caches()
    yield
    clear_quantum_caches()


def exact_dsm(angles, q_d: int, q_a: int, layers: int) -> np.ndarray:
    return loop_dsm(hand_unitary(angles, q_d + q_a, layers), q_d, q_a)


def random_angles(rows: int, k: int, layers: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-math.pi, math.pi, size=(rows, 4 * layers * (k - 1)))


def assert_within_shot_noise(estimate: np.ndarray, exact: np.ndarray, shots: int) -> None:
    n = exact.shape[-1]
    q = exact / n  # each entry is n times a cell probability of the 2k-bit outcome
    sigma = n * np.sqrt(q * (1 - q) / shots)
    assert np.all(np.abs(estimate - exact) <= 5 * sigma + 1e-9), np.abs(estimate - exact) / (sigma + 1e-300)


@pytest.fixture
def aer_runs(monkeypatch):
    """Every AerSimulator.run call as (circuit, angle rows bound, seed), in call order; the run itself is kept."""
    runs = []
    original = AerSimulator.run

    def spy(self, circuits, **kwargs):
        (binds,) = kwargs["parameter_binds"]
        params = sorted(binds, key=lambda p: p.index)
        rows = np.array([binds[p] for p in params]).T
        runs.append((circuits, rows, kwargs["seed_simulator"]))
        return original(self, circuits, **kwargs)

    monkeypatch.setattr(AerSimulator, "run", spy)
    return runs


@pytest.mark.parametrize("bad", [1, 0, -3])
def test_brick_wall_refusal_names_the_qubit_count(bad):
    """A brick wall of two-qubit blocks needs two qubits; the refusal says how many it was given."""
    with pytest.raises(ValueError) as info:
        ansatz.brick_wall(bad, 2)
    message = str(info.value)
    assert "qubit" in message and re.search(rf"(?<![\d-]){bad}(?!\d)", message), message


@pytest.mark.parametrize("q_d,q_a,layers", [(3, 0, 1), (1, 2, 2), (2, 0, 2)])
def test_estimate_matches_the_exact_dsm_when_register_sizes_are_not_two_qubits(q_d, q_a, layers):
    """n = 2^q_d, m = 2^q_a and dim = 2^k coincide with 2 q_d, 2 q_a, 2 k only at 1 or 2 qubits: k = 3 and an empty
    aux register (m = 1) are where the outcome indexing has to use the powers."""
    shots, k = 2000, q_d + q_a
    a = random_angles(2, k, layers, seed=11)
    est = sampling.sample_dsm(a, q_d, q_a, layers, "simple", shots=shots, seed=5)
    n = 2**q_d
    assert est.shape == (2, n, n)
    for row in range(2):
        assert abs(est[row].sum() - n) < 1e-12  # n times a sum of probabilities, whatever the counts
        assert_within_shot_noise(est[row], exact_dsm(a[row], q_d, q_a, layers), shots)


def test_every_angle_vector_is_simulated_once_in_runs_of_at_most_batch(aer_runs):
    """Five angle vectors in batches of two (not a multiple): three runs, each row bound exactly once and in order,
    and every row of the result is that row's estimate (none left at zero)."""
    q_d, q_a, layers, shots = 1, 1, 2, 2000
    a = random_angles(5, 2, layers, seed=3)
    est = sampling.sample_dsm(a, q_d, q_a, layers, "simple", shots=shots, seed=2, batch=2)
    assert [len(rows) for _, rows, _ in aer_runs] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([rows for _, rows, _ in aer_runs]), a)
    for row in range(5):
        assert abs(est[row].sum() - 2) < 1e-12
        assert_within_shot_noise(est[row], exact_dsm(a[row], q_d, q_a, layers), shots)


def test_a_call_split_at_its_chunk_boundaries_reproduces_the_full_call():
    """Chunk seeds are seed + the chunk's first row, so the rows from a chunk boundary c on are reproduced by a
    call on angles[c:] with seed + c: a long sampling job can be split or resumed without changing a number."""
    q_d, q_a, layers, shots, seed = 1, 1, 2, 200, 4
    a = random_angles(5, 2, layers, seed=8)
    full = sampling.sample_dsm(a, q_d, q_a, layers, "simple", shots=shots, seed=seed, batch=2)
    parts = [
        sampling.sample_dsm(a[c : c + 2], q_d, q_a, layers, "simple", shots=shots, seed=seed + c) for c in (0, 2, 4)
    ]
    np.testing.assert_array_equal(full, np.concatenate(parts))
    # and the chunks do not share a stream: the second chunk is not the first one's seed again
    again = sampling.sample_dsm(a[2:4], q_d, q_a, layers, "simple", shots=shots, seed=seed)
    assert not np.array_equal(full[2:4], again)


def test_parted_sampling_runs_the_shallow_circuit_on_both_registers(aer_runs):
    """'parted' is U1^T on register A and U2 on register B (same state, half the depth, which is what matters once
    gates are noisy); 'simple' is all of V on register B. Read off the circuit Aer is given."""
    k, layers = 3, 4
    a = random_angles(1, k, layers, seed=1)
    for name in ("simple", "parted"):
        sampling.sample_dsm(a, 2, 1, layers, name, shots=10, seed=0, depolarizing=0.1)
    (simple, _, _), (parted, _, _) = aer_runs

    def registers(circuit):
        touched = set()
        for inst in circuit.data:
            if inst.operation.name in ("rxx", "ryy", "rzz"):
                touched |= {"A" if circuit.find_bit(q).index < k else "B" for q in inst.qubits}
        return touched

    assert registers(simple) == {"B"} and registers(parted) == {"A", "B"}
    assert parted.depth() < simple.depth()


@pytest.mark.parametrize("p", [0.3, 0.05])
def test_noise_model_is_depolarizing_p_on_two_qubit_gates_and_p_over_ten_on_one_qubit_gates(p):
    """Each gate of the circuit carries exactly one depolarizing error: lambda = p on rxx/ryy/rzz/cx, p / 10 on ry/h.
    A depolarizing channel on n qubits is the Pauli mixture with weight 1 - lambda (4^n - 1) / 4^n on the identity
    and lambda / 4^n on each of the other 4^n - 1 Paulis."""
    expected = {g: (2, p) for g in ("rxx", "ryy", "rzz", "cx")} | {g: (1, p / 10) for g in ("ry", "h")}
    seen = {}
    for error in sampling.noise_model(p).to_dict()["errors"]:
        assert error["type"] == "qerror"
        probs = np.asarray(error["probabilities"], dtype=float)
        identity = [
            all(op["name"] == "id" or (op["name"] == "pauli" and set(op["params"][0]) == {"I"}) for op in term)
            for term in error["instructions"]
        ]
        qubits = {q for term in error["instructions"] for op in term for q in op["qubits"]}
        for gate in error["operations"]:
            assert gate not in seen, f"{gate} carries two errors"
            seen[gate] = (len(qubits), probs, identity)
    assert set(seen) == set(expected)
    for gate, (n, lam) in expected.items():
        n_seen, probs, identity = seen[gate]
        assert n_seen == n and len(probs) == 4**n and sum(identity) == 1, gate
        want = np.where(identity, 1 - lam * (4**n - 1) / 4**n, lam / 4**n)
        np.testing.assert_allclose(probs, want, rtol=0, atol=1e-12, err_msg=gate)


def test_run_circuit_never_writes_a_product_over_its_own_operand(monkeypatch):
    """Each fused gate is one bmm from one buffer into another: bmm (BLAS) over an aliased operand is undefined
    (torch.bmm(a, b, out=b) on a 2x4x4 by 2x4x1 product is wrong on the CPU), even where a schedule's sizes happen
    to come out right. k = 5 is the smallest schedule with three or more fused gates, so both spare buffers and the
    output take turns. The result is also checked against qiskit's Operator."""
    k, layers = 5, 4
    assert len(simulator.schedule(k, layers).steps) >= 3
    original, calls = torch.bmm, []

    def span(t):
        extent = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride())) + 1
        return t.data_ptr(), t.data_ptr() + extent * t.element_size()

    def spy(a, b, *, out=None):
        if out is not None:
            lo, hi = span(out)
            for operand in (a, b):
                o_lo, o_hi = span(operand)
                assert hi <= o_lo or o_hi <= lo, "bmm writes over its own operand"
        calls.append(out is not None)
        return original(a, b, out=out)

    monkeypatch.setattr(torch, "bmm", spy)
    a = torch.as_tensor(random_angles(2, k, layers, seed=6))
    v = simulator.unitary(a, k, layers, torch.complex128).numpy()
    p = simulator.dsm(a, 3, 2, layers, torch.complex128).numpy()
    assert sum(calls) >= len(simulator.schedule(k, layers).steps) - 1  # the spy saw run_circuit's products
    for row in range(2):
        np.testing.assert_allclose(v[row], hand_unitary(a[row].numpy(), k, layers), rtol=0, atol=1e-12)
        np.testing.assert_allclose(p[row], exact_dsm(a[row].numpy(), 3, 2, layers), rtol=0, atol=1e-12)
