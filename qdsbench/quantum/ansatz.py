"""Layout of the brick-wall ansatz and the 4-parameter two-qubit block shared by the torch simulator and qiskit.

Block on qubits (a, a+1), with parameters (t0, t1, t2, t3), in circuit order: RXX(t0), RYY(t1), RZZ(t2) on (a, a+1),
then RY(t3) on a. Every gate is the identity at zero angles, so the whole circuit is the identity at theta = 0
(QDSFormer's "Simple" ansatz property); the exact gates of the paper's block are not published, this is our choice.
A circuit layer is a brick wall: blocks on (0,1), (2,3), ... then (1,2), (3,4), ...: k - 1 blocks on k qubits.

"parted" realises V = U2 . U1 (U1 = the first ceil(L/2) layers, U2 = the rest) as U1^T on the Bell partner
register and U2 on the data register; (U1^T (x) I)|Phi> = (I (x) U1)|Phi>, so for the same theta it yields the same
DSM as "simple" with a shallower circuit (the reason the paper gives for it).
"""

from __future__ import annotations

from dataclasses import dataclass

ANSATZE = ("simple", "parted")
PARAMS_PER_BLOCK = 4


@dataclass(frozen=True)
class Block:
    layer: int
    first_qubit: int  # the block acts on (first_qubit, first_qubit + 1)
    offset: int  # index of its first parameter in theta


def brick_wall(n_qubits: int, layers: int) -> list[Block]:
    if n_qubits < 2:
        raise ValueError(f"the ansatz needs at least 2 qubits, got {n_qubits}")
    blocks, offset = [], 0
    for layer in range(layers):
        for start in (0, 1):
            for a in range(start, n_qubits - 1, 2):
                blocks.append(Block(layer, a, offset))
                offset += PARAMS_PER_BLOCK
    return blocks


def n_params(n_qubits: int, layers: int) -> int:
    return layers * (n_qubits - 1) * PARAMS_PER_BLOCK


def split_parted(blocks: list[Block], layers: int) -> tuple[list[Block], list[Block]]:
    cut = (layers + 1) // 2
    return [b for b in blocks if b.layer < cut], [b for b in blocks if b.layer >= cut]
