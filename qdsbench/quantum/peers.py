"""Other simulators of the QontOT DSM, for scripts/bench_qontot.py: the previous torch simulator, qiskit (Operator,
Aer unitary) and, when installed, PennyLane (default.qubit, torch backprop; lightning.qubit, adjoint) and
torchquantum. Each peer first reproduces our P on the same angles (to 1e-6) or is reported as not the same circuit.

PennyLane and torchquantum run the 2k-qubit Bell circuit (``qiskit_circuits.bell_circuit``: V on register B) and
read P off its probabilities, the way the circuit would run on hardware; qiskit's Operator and Aer give V itself.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from qdsbench.quantum import simulator
from qdsbench.quantum.ansatz import brick_wall

NOTES: list[str] = []  # what the last ``references`` call skipped or found, for the report


def old_simulator(angles, q_d: int, q_a: int, layers: int, weight, backward: bool, chunk: int = 32) -> None:
    """The previous simulator as it ran: chunks of 32 unitaries (its default 4 MB), autograd through every gate."""
    for start in range(0, angles.shape[0], chunk):
        a = angles[start : start + chunk].detach().requires_grad_(backward)
        with torch.set_grad_enabled(backward):
            p = simulator.block_sum(simulator.unitary_reference(a, q_d + q_a, layers), q_d, q_a)
            if backward:
                (p * weight[start : start + chunk]).sum().backward()


def _timed_value(fn):
    """((CPU s, wall s), fn())."""
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return (time.process_time() - cpu, time.perf_counter() - wall), value


def _clock(fn) -> tuple[float, float]:
    return _timed_value(fn)[0]


def _p_from_joint(joint: np.ndarray, n: int, m: int) -> np.ndarray:
    """joint[..., y (register B), x (register A)] -> P_ij = n sum_{a,b} Prob(A=(i,a), B=(j,b))."""
    return n * joint.reshape(*joint.shape[:-2], n, m, n, m).sum(axis=(-3, -1)).swapaxes(-1, -2)


def _gates(angles_row, k: int, layers: int):
    """(name, angle, qubits) in circuit order on register B = qubits k..2k-1 (qiskit numbering)."""
    for block in brick_wall(k, layers):
        a = k + block.first_qubit
        t = [angles_row[block.offset + i] for i in range(4)]
        yield from (("xx", t[0], (a, a + 1)), ("yy", t[1], (a, a + 1)), ("zz", t[2], (a, a + 1)), ("ry", t[3], (a,)))


def _qiskit_rows(backend, angles: np.ndarray):
    from qiskit import transpile
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import Operator
    from qiskit_aer import AerSimulator

    q_d, q_a = backend.n_data_qubits, backend.n_aux_qubits

    def operator():
        return np.stack([Operator(backend.qiskit_circuit(a)).data for a in angles])

    params = ParameterVector("phi", backend.n_params)
    circuit = backend.qiskit_circuit(list(params))
    circuit.save_unitary()
    aer_sim = AerSimulator(method="unitary", max_parallel_threads=1)
    compiled = transpile(circuit, aer_sim)

    def aer():
        result = aer_sim.run(compiled, parameter_binds=[{p: angles[:, i].tolist() for i, p in enumerate(params)}])
        return np.stack([np.asarray(result.result().get_unitary(j)) for j in range(len(angles))])

    for label, fn in (
        ("qiskit quantum_info.Operator (per matrix)", operator),
        ("qiskit-aer unitary (parameter_binds batch, 1 thread)", aer),
    ):
        seconds, v = _timed_value(fn)
        yield label, {"fwd": seconds}, simulator.block_sum(torch.from_numpy(v), q_d, q_a)


def _pennylane_rows(backend, angles: np.ndarray, weight: np.ndarray):
    import pennylane as qml

    k, q_d, q_a = backend.n_qubits, backend.n_data_qubits, backend.n_aux_qubits
    wires = list(range(2 * k - 1, -1, -1))  # PennyLane: first wire most significant; qiskit: qubit q = bit q
    ops = {"xx": qml.IsingXX, "yy": qml.IsingYY, "zz": qml.IsingZZ, "ry": qml.RY}

    def bell(row):
        for q in range(k):
            qml.Hadamard(q)
            qml.CNOT([q, k + q])
        for name, angle, qubits in _gates(row, k, backend.layers):
            ops[name](angle, wires=list(qubits))

    def joint(probs):
        return probs.reshape(*probs.shape[:-1], 2**k, 2**k)  # [y (B: wires 2k-1..k), x (A: wires k-1..0)]

    dev = qml.device("default.qubit", wires=2 * k)
    probs_node = qml.QNode(
        lambda row: (bell(row), qml.probs(wires=wires))[1], dev, interface="torch", diff_method="backprop"
    )
    a = torch.tensor(angles, requires_grad=True)
    w = torch.tensor(weight)

    def default_fb():
        p = 2**q_d * joint(probs_node(a.T)).reshape(len(angles), 2**q_d, 2**q_a, 2**q_d, 2**q_a).sum((2, 4))
        (p.transpose(-1, -2) * w).sum().backward()

    fwd, probs = _timed_value(lambda: probs_node(torch.tensor(angles).T).detach().numpy())
    yield (
        "PennyLane default.qubit (torch, backprop, broadcast)",
        {"fwd": fwd, "fwd+bwd": _clock(default_fb)},
        torch.from_numpy(_p_from_joint(joint(probs), 2**q_d, 2**q_a)),
    )

    light = qml.device("lightning.qubit", wires=2 * k)
    # L = sum_ij W_ij P_ij = <H> with H diagonal on the data qubits of A and B: n W[i, j] on |A_data=i, B_data=j>
    data_wires = list(range(2 * k - 1, 2 * k - 1 - q_d, -1)) + list(range(k - 1, k - 1 - q_d, -1))
    lp = qml.QNode(lambda row: (bell(row), qml.probs(wires=wires))[1], light, diff_method=None)

    def loss_node(w):
        h = qml.Hermitian(np.diag((2**q_d * w).T.reshape(-1)), wires=data_wires)
        return qml.QNode(lambda row: (bell(row), qml.expval(h))[1], light, diff_method="adjoint")

    nodes = [loss_node(w) for w in weight]
    fwd, probs = _timed_value(lambda: np.stack([lp(r) for r in angles]))
    fb = _clock(lambda: [qml.jacobian(f)(qml.numpy.array(r, requires_grad=True)) for f, r in zip(nodes, angles)])
    yield (
        "PennyLane lightning.qubit (adjoint, per matrix)",
        {"fwd": fwd, "fwd+bwd": fb},
        torch.from_numpy(_p_from_joint(joint(probs), 2**q_d, 2**q_a)),
    )


def _torchquantum_rows(backend, angles: np.ndarray, weight: np.ndarray):
    import torchquantum as tq
    import torchquantum.functional as tqf

    k, q_d, q_a = backend.n_qubits, backend.n_data_qubits, backend.n_aux_qubits
    fns = {"xx": tqf.rxx, "yy": tqf.ryy, "zz": tqf.rzz, "ry": tqf.ry}
    a = torch.tensor(angles, dtype=torch.float32, requires_grad=True)  # torchquantum simulates in complex64

    def run(t):
        dev = tq.QuantumDevice(n_wires=2 * k, bsz=len(angles))
        for q in range(k):  # tq wire w is the (w+1)-th most significant bit: use wire 2k-1-q for qiskit qubit q
            tqf.hadamard(dev, wires=2 * k - 1 - q)
            tqf.cnot(dev, wires=[2 * k - 1 - q, k - 1 - q])
        for name, angle, qubits in _gates(t.T, k, backend.layers):
            fns[name](dev, wires=[2 * k - 1 - q for q in qubits], params=angle[:, None])
        probs = dev.get_states_1d().abs().square().reshape(len(angles), 2**k, 2**k)  # [y (B), x (A)]
        return 2**q_d * probs.reshape(len(angles), 2**q_d, 2**q_a, 2**q_d, 2**q_a).sum((2, 4)).transpose(-1, -2)

    fwd, p = _timed_value(lambda: run(a.detach()))
    fb = _clock(lambda: (run(a) * torch.tensor(weight, dtype=torch.float32)).sum().backward())
    yield "torchquantum-ng (torch, backprop, batch, complex64)", {"fwd": fwd, "fwd+bwd": fb}, p


def references(backend, angles: torch.Tensor, p_ours: torch.Tensor):
    """(label, fn -> {pass: (cpu s, wall s)} for all ``angles``) for every reference that reproduces ``p_ours``."""
    NOTES.clear()
    a = angles.detach().double().numpy()
    weight = np.random.default_rng(0).standard_normal((len(a), backend.size, backend.size))
    sources = [
        ("qiskit", lambda: _qiskit_rows(backend, a)),
        ("pennylane", lambda: _pennylane_rows(backend, a, weight)),
        ("torchquantum", lambda: _torchquantum_rows(backend, a, weight)),
    ]
    found = []
    for name, make in sources:
        try:
            rows = list(make())
        except ImportError as err:
            NOTES.append(f"- {name}: skipped, not installed here ({err})")
            print(NOTES[-1], flush=True)
            continue
        for label, times, p in rows:
            error = float((p.double() - p_ours.double()).abs().max())
            if error > 1e-6:
                NOTES.append(f"- {label}: not the same circuit (max |P - ours| = {error:.2e}); not timed")
            else:
                NOTES.append(f"- {label}: reproduces our P to {error:.1e} on {len(a)} matrices")
                found.append((label, times))
            print(NOTES[-1], flush=True)
    return found
