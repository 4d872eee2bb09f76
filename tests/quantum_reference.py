"""The QontOT circuit written out gate by gate for qiskit, and the DSM read out of its unitary by an explicit loop,
shared by the quantum test files: they share no code with qdsbench/quantum (not ``ansatz.brick_wall``), so a test
against them is a test of the documented circuit, not of the implementation copied twice."""

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator

from qdsbench.quantum import sampling, simulator


def clear_quantum_caches() -> None:
    """The schedule, block classes, block basis and compiled Aer circuit are lru-cached: one built by an earlier test
    would hide a mutant in the code that builds it."""
    for cached in (simulator.schedule, simulator._classes, simulator._block_basis, sampling._compiled):
        cached.cache_clear()
    simulator.release_buffers()


def hand_circuit(angles, k: int, layers: int) -> QuantumCircuit:
    """The ansatz as its docstring defines it: per layer blocks on (0,1), (2,3), ... then (1,2), (3,4), ...; each
    block RXX(t0) RYY(t1) RZZ(t2) on (a, a+1) then RY(t3) on a, parameters consumed four at a time in that order."""
    qc, it = QuantumCircuit(k), iter(angles)
    for _ in range(layers):
        for start in (0, 1):
            for a in range(start, k - 1, 2):
                t0, t1, t2, t3 = (float(next(it)) for _ in range(4))
                qc.rxx(t0, a, a + 1)
                qc.ryy(t1, a, a + 1)
                qc.rzz(t2, a, a + 1)
                qc.ry(t3, a)
    assert next(it, None) is None, "angle vector longer than the circuit"
    return qc


def hand_unitary(angles, k: int, layers: int) -> np.ndarray:
    return Operator(hand_circuit(angles, k, layers)).data


def loop_dsm(v: np.ndarray, q_d: int, q_a: int) -> np.ndarray:
    """P_ij = (1/m) sum_{a,b} |V[(j,b), (i,a)]|^2, the data index in the high bits (index = data * m + aux)."""
    n, m = 2**q_d, 2**q_a
    p = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            p[i, j] = sum(abs(v[j * m + b, i * m + a]) ** 2 for a in range(m) for b in range(m)) / m
    return p
