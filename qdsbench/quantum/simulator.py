"""Batched unitary simulation of the ansatz in torch: V for many angle vectors at once.

Each block is fused into one 4x4 matrix per sample and applied to the rows of V as a batched matmul on a view
(qubits a, a+1 are adjacent bits, so the view needs no copy). Qiskit's conventions throughout: qubit q is bit q of
the basis index, a two-qubit gate on qargs [a, a+1] has basis index bit_a + 2 bit_(a+1).
"""

from __future__ import annotations

import torch

from qdsbench.quantum.ansatz import Block, brick_wall


def _pauli_pair(name: str, dtype: torch.dtype) -> torch.Tensor:
    paulis = {
        "x": torch.tensor([[0, 1], [1, 0]], dtype=dtype),
        "y": torch.tensor([[0, -1j], [1j, 0]], dtype=dtype),
        "z": torch.tensor([[1, 0], [0, -1]], dtype=dtype),
    }
    p = paulis[name]
    return torch.kron(p, p)


def block_matrices(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(..., 4) angles -> (..., 4, 4) matrices RY_a(t3) RZZ(t2) RYY(t1) RXX(t0)."""
    eye = torch.eye(4, dtype=dtype, device=t.device)
    half = t.to(torch.float64 if dtype == torch.complex128 else torch.float32) / 2
    cos, sin = torch.cos(half).to(dtype), torch.sin(half).to(dtype)

    def rot(k: int, name: str) -> torch.Tensor:  # exp(-i t/2 P(x)P) = cos I - i sin P(x)P
        pp = _pauli_pair(name, dtype).to(t.device)
        return cos[..., k, None, None] * eye - 1j * sin[..., k, None, None] * pp

    c3, s3 = cos[..., 3], sin[..., 3]
    ry = torch.stack([torch.stack([c3, -s3], -1), torch.stack([s3, c3], -1)], -2)  # (..., 2, 2)
    ry_first = torch.zeros(*t.shape[:-1], 4, 4, dtype=dtype, device=t.device)
    ry_first[..., :2, :2] = ry  # basis index bit_a + 2 bit_b: I_b (x) RY_a is block diagonal
    ry_first[..., 2:, 2:] = ry
    return ry_first @ rot(2, "z") @ rot(1, "y") @ rot(0, "x")


def fuse_pairs(blocks: list[Block]) -> list[list[Block]]:
    """Group each brick-wall sublayer's blocks two by two: they act on disjoint adjacent qubit pairs, so a group
    is one 16x16 gate (their Kronecker product) on 4 adjacent qubits. Measured here: 16x16 gates make the batched
    matmuls efficient enough to beat four-by-four gates by ~1.4x despite twice the multiply-adds."""
    groups: list[list[Block]] = []
    for block in blocks:
        last = groups[-1] if groups else None
        if (last and len(last) == 1 and last[0].layer == block.layer
                and block.first_qubit == last[0].first_qubit + 2):
            last.append(block)
        else:
            groups.append([block])
    return groups


def apply_blocks(v: torch.Tensor, blocks: list[Block], angles: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Left-multiply V (batch, 2^k, cols) by the blocks in order; angles (batch, n_params)."""
    batch, dim, cols = v.shape
    # All 4x4 block gates in one vectorised call (block i owns angles[4i : 4i + 4]): far fewer kernel launches.
    all_gates = block_matrices(angles[:, : 4 * len(blocks)].reshape(batch, len(blocks), 4), v.dtype)
    index = {block.offset: i for i, block in enumerate(blocks)}
    for group in fuse_pairs(blocks):
        gate = None
        for block in group:  # a later block acts on higher (more significant) qubits
            g = all_gates[:, index[block.offset]]
            gate = g if gate is None else torch.einsum("bij,bkl->bikjl", g, gate).reshape(batch, 16, 16)
        width = 2 * len(group)
        high = 2 ** (n_qubits - group[0].first_qubit - width)
        low = 2 ** group[0].first_qubit
        view = v.reshape(batch, high, 2**width, low * cols)
        v = torch.matmul(gate[:, None], view).reshape(batch, dim, cols)
    return v


def unitary(angles: torch.Tensor, n_qubits: int, layers: int, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """(batch, n_params) -> (batch, 2^k, 2^k) unitaries of the brick-wall circuit."""
    dim = 2**n_qubits
    v = torch.eye(dim, dtype=dtype, device=angles.device).expand(angles.shape[0], dim, dim)
    return apply_blocks(v, brick_wall(n_qubits, layers), angles, n_qubits)


def block_sum(v: torch.Tensor, n_data_qubits: int, n_aux_qubits: int) -> torch.Tensor:
    """P_ij = (1/m) sum_{a,b} |V_{(j,b),(i,a)}|^2, data index = high bits: exactly doubly stochastic for any V."""
    n, m = 2**n_data_qubits, 2**n_aux_qubits
    w = (v.real.square() + v.imag.square()).reshape(-1, n, m, n, m)  # [batch, j, b, i, a]
    return w.sum(dim=(2, 4)).transpose(-1, -2) / m
