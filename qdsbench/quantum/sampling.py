"""Finite-shot estimates of the QontOT DSM with qiskit-aer, to study shot noise (and, optionally, gate noise).

The measured circuit is transpiled once per shape and bound to many angle vectors per ``run`` call; Aer runs with
one thread (OpenMP spin-waiting made it ~100x slower on a shared 2-core machine).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from qiskit import transpile
from qiskit.circuit import ParameterVector
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, depolarizing_error

from qdsbench.quantum.ansatz import n_params
from qdsbench.quantum.qiskit_circuits import bell_circuit


def noise_model(depolarizing: float) -> NoiseModel:
    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(depolarizing, 2), ["rxx", "ryy", "rzz", "cx"])
    model.add_all_qubit_quantum_error(depolarizing_error(depolarizing / 10, 1), ["ry", "h"])
    return model


@lru_cache(maxsize=16)
def _compiled(n_qubits: int, layers: int, ansatz: str, depolarizing: float):
    params = ParameterVector("phi", n_params(n_qubits, layers))
    simulator = AerSimulator(
        method="statevector",
        max_parallel_threads=1,
        noise_model=noise_model(depolarizing) if depolarizing > 0 else None,
    )
    circuit = bell_circuit(list(params), n_qubits, layers, ansatz, measure=True)
    return simulator, transpile(circuit, simulator), params


def sample_dsm(
    angles: np.ndarray,
    n_data_qubits: int,
    n_aux_qubits: int,
    layers: int,
    ansatz: str,
    shots: int,
    seed: int = 0,
    depolarizing: float = 0.0,
    batch: int = 64,
) -> np.ndarray:
    """(M, n_params) angles -> (M, n, n) estimates of P_ij = n * sum_{a,b} Prob(A=(i,a), B=(j,b))."""
    k = n_data_qubits + n_aux_qubits
    n, m, dim = 2**n_data_qubits, 2**n_aux_qubits, 2**k
    simulator, compiled, params = _compiled(k, layers, ansatz, float(depolarizing))
    out = np.zeros((len(angles), n, n))
    for start in range(0, len(angles), batch):
        chunk = angles[start : start + batch]
        binds = [{p: chunk[:, i].tolist() for i, p in enumerate(params)}]
        result = simulator.run(compiled, shots=shots, parameter_binds=binds, seed_simulator=seed + start).result()
        for j in range(len(chunk)):
            probs = np.zeros(dim * dim)
            for bits, count in result.get_counts(j).items():
                probs[int(bits.replace(" ", ""), 2)] = count / shots
            joint = probs.reshape(dim, dim)  # [y (register B, high bits), x (register A)]
            out[start + j] = n * joint.reshape(n, m, n, m).sum(axis=(1, 3)).T
    return out
