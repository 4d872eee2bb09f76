"""QontOT's "parted" vs "simple" ansatz: where they differ, and why the torch path cannot tell them apart.

The paper (QDSFormer App. D.2): Parted is the Simple ansatz split as V = U2 U1; U2 acts normally, U1 is transposed and
placed around the initial Bell state, which "roughly halves depth in simulation". Since (U1^T (x) I)|Phi> =
(I (x) U1)|Phi> for the Bell state |Phi>, the circuit's output state, hence the DSM, is the same for every theta.
So the torch simulator, which builds V itself, never reads ``ansatz`` and cannot differ; the option is kept because
it chooses the circuit that is actually run (qiskit / Aer with ``shots`` > 0), and that circuit is what differs:
its depth and the register each block acts on. Everything here is checked on qiskit circuits, not on our simulator.
"""

import math

import numpy as np
import pytest
from qiskit.quantum_info import Statevector

from qdsbench.quantum.ansatz import brick_wall, n_params
from qdsbench.quantum.qiskit_circuits import bell_circuit
from qdsbench.quantum.sampling import _compiled

SIZES = [(3, 2), (3, 3), (4, 4), (4, 5)]  # (qubits per register k, circuit layers L)


@pytest.mark.parametrize("k,layers", SIZES)
def test_parted_and_simple_prepare_the_same_state_for_every_theta(k, layers):
    rng = np.random.default_rng(k * 10 + layers)
    for _ in range(3):
        angles = rng.uniform(-np.pi, np.pi, n_params(k, layers))
        simple = Statevector(bell_circuit(angles, k, layers, "simple"))
        parted = Statevector(bell_circuit(angles, k, layers, "parted"))
        assert simple.equiv(parted)  # equal up to a global phase: the same measurement statistics, the same DSM
        assert np.abs(simple.probabilities() - parted.probabilities()).max() < 1e-12


@pytest.mark.parametrize("k,layers", SIZES)
def test_parted_halves_the_depth_and_splits_the_blocks_between_the_registers(k, layers):
    angles = np.random.default_rng(0).uniform(-1, 1, n_params(k, layers))
    simple, parted = bell_circuit(angles, k, layers, "simple"), bell_circuit(angles, k, layers, "parted")
    first_half = math.ceil(layers / 2)
    # the depth of a simple circuit with only the first ceil(L/2) layers: U1^T on A runs beside U2 on B
    assert parted.depth() == bell_circuit(angles, k, first_half, "simple").depth() < simple.depth()
    assert parted.size() == simple.size()  # the same gates, no SWAPs or extra gates

    def gates_on(circuit, register):
        return sum(
            1
            for inst in circuit.data
            if inst.operation.name not in ("h", "cx")
            and all(circuit.find_bit(q).index in register for q in inst.qubits)
        )

    blocks = brick_wall(k, layers)
    on_a = 4 * sum(1 for b in blocks if b.layer < first_half)
    register_a, register_b = range(k), range(k, 2 * k)
    assert (gates_on(simple, register_a), gates_on(simple, register_b)) == (0, 4 * len(blocks))
    assert (gates_on(parted, register_a), gates_on(parted, register_b)) == (on_a, 4 * len(blocks) - on_a)


def test_the_sampling_path_runs_the_chosen_circuit():
    _, simple, _ = _compiled(4, 4, "simple", 0.0)
    _, parted, _ = _compiled(4, 4, "parted", 0.0)
    assert parted.depth() < simple.depth()
