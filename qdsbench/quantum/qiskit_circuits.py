"""The same ansatz built with qiskit: the reference the torch simulator is tested against, and Aer's input."""

from __future__ import annotations

from collections.abc import Sequence

from qiskit import QuantumCircuit

from qdsbench.quantum.ansatz import Block, brick_wall, split_parted


def append_blocks(
    qc: QuantumCircuit, blocks: list[Block], angles: Sequence, qubits: Sequence[int], transpose: bool = False
) -> None:
    """Blocks in circuit order; ``transpose`` appends the transposed circuit (reverse order, each gate
    transposed: RXX/RYY/RZZ are symmetric, RY(t)^T = RY(-t))."""
    for block in reversed(blocks) if transpose else blocks:
        t = [angles[block.offset + i] for i in range(4)]
        a, b = qubits[block.first_qubit], qubits[block.first_qubit + 1]
        gates = [("rxx", t[0], (a, b)), ("ryy", t[1], (a, b)), ("rzz", t[2], (a, b)), ("ry", t[3], (a,))]
        for name, angle, qargs in reversed(gates) if transpose else gates:
            if name == "ry":
                qc.ry(-angle if transpose else angle, *qargs)
            else:
                getattr(qc, name)(angle, *qargs)


def ansatz_circuit(angles: Sequence, n_qubits: int, layers: int) -> QuantumCircuit:
    """The k-qubit circuit whose Operator is V (the same matrix for simple and parted)."""
    qc = QuantumCircuit(n_qubits)
    append_blocks(qc, brick_wall(n_qubits, layers), angles, list(range(n_qubits)))
    return qc


def bell_circuit(angles: Sequence, n_qubits: int, layers: int, ansatz: str, measure: bool = False) -> QuantumCircuit:
    """The 2k-qubit QontOT circuit: Bell pairs between register A (qubits 0..k-1) and B (k..2k-1), then
    simple: V on B; parted: U1^T on A and U2 on B. Amplitude of |A=x, B=y> is V[y, x] / sqrt(2^k)."""
    k = n_qubits
    qc = QuantumCircuit(2 * k, 2 * k if measure else 0)
    for q in range(k):
        qc.h(q)
        qc.cx(q, k + q)
    blocks = brick_wall(k, layers)
    register_a, register_b = list(range(k)), list(range(k, 2 * k))
    if ansatz == "parted":
        first, second = split_parted(blocks, layers)
        append_blocks(qc, first, angles, register_a, transpose=True)
        append_blocks(qc, second, angles, register_b)
    else:
        append_blocks(qc, blocks, angles, register_b)
    if measure:
        qc.measure(range(2 * k), range(2 * k))
    return qc
