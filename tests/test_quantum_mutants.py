"""Holes found by mutation testing of qdsbench/quantum (results/quality/mutation.md): the simulator, the schedule,
the qiskit circuits and the finite-shot sampler checked against references that share none of their code.

The references: qiskit's Operator / Statevector of a brick wall written out here gate by gate (not
``ansatz.brick_wall``), the DSM read out of V by an explicit loop, unitarity, unit row and column sums and
gradcheck. ``schedule``, ``_classes``, ``_block_basis`` and ``sampling._compiled`` are lru-cached: a schedule built
by an earlier test would hide a mutant in the code that builds it, so every test here starts from empty caches.
"""

import math

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator, Statevector
from quantum_reference import clear_quantum_caches, hand_unitary, loop_dsm

from qdsbench.quantum import ansatz, qiskit_circuits, sampling, simulator


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_quantum_caches()
    yield
    clear_quantum_caches()


def angles_for(k, layers, batch=2, seed=0, scale=math.pi):
    g = torch.Generator().manual_seed(seed)
    n = layers * (k - 1) * 4  # counted here, not with ansatz.n_params
    return (torch.rand(batch, n, generator=g, dtype=torch.float64) * 2 - 1) * scale


SHAPES = [(1, 1, 1), (1, 1, 3), (2, 1, 2), (1, 2, 2), (2, 2, 3), (3, 2, 2), (2, 3, 1), (3, 0, 2), (2, 0, 1)]


def test_layout_helpers_match_the_documented_brick_wall():
    for k, layers in [(2, 1), (3, 2), (4, 3), (7, 16)]:
        blocks = ansatz.brick_wall(k, layers)
        expected = [(layer, a) for layer in range(layers) for s in (0, 1) for a in range(s, k - 1, 2)]
        assert [(b.layer, b.first_qubit) for b in blocks] == expected
        assert [b.offset for b in blocks] == [4 * i for i in range(len(blocks))]
        assert ansatz.n_params(k, layers) == 4 * len(expected)
        first, second = ansatz.split_parted(blocks, layers)
        cut = math.ceil(layers / 2)
        assert first == [b for b in blocks if b.layer < cut] and second == [b for b in blocks if b.layer >= cut]
    with pytest.raises(ValueError):
        ansatz.brick_wall(1, 2)


@pytest.mark.parametrize("k,layers", [(2, 1), (2, 3), (3, 2), (4, 2), (5, 3)])
def test_unitary_equals_qiskit_operator_of_the_hand_built_circuit(k, layers):
    a = angles_for(k, layers)
    ours = simulator.unitary(a, k, layers, torch.complex128).numpy()
    previous = simulator.unitary_reference(a, k, layers, torch.complex128).numpy()
    for b in range(len(a)):
        v = hand_unitary(a[b].numpy(), k, layers)
        assert np.abs(ours[b] - v).max() < 1e-12
        assert np.abs(previous[b] - v).max() < 1e-12
        assert np.abs(Operator(qiskit_circuits.ansatz_circuit(a[b].tolist(), k, layers)).data - v).max() < 1e-12
    eye = np.eye(2**k)
    assert np.abs(np.conj(ours.transpose(0, 2, 1)) @ ours - eye).max() < 1e-12  # unitary


def test_single_blocks_equal_qiskit_gates():
    t = angles_for(2, 1, batch=4, seed=3).view(4, 4)
    for dtype, tol in ((torch.complex128, 1e-13), (torch.complex64, 1e-6)):
        closed, product = simulator.block_gates(t, dtype), simulator.block_matrices(t, dtype)
        assert closed.dtype == product.dtype == dtype
        for b in range(4):
            v = hand_unitary(t[b].numpy(), 2, 1)
            assert np.abs(closed[b].numpy() - v).max() < tol
            assert np.abs(product[b].numpy() - v).max() < tol


@pytest.mark.parametrize("q_d,q_a,layers", SHAPES)
def test_dsm_equals_the_loop_read_out_of_the_qiskit_unitary(q_d, q_a, layers):
    k = q_d + q_a
    a = angles_for(k, layers, batch=3, seed=k + layers)
    for chunk_bytes in (simulator.CPU_CHUNK_BYTES, 1):
        p = simulator.dsm(a, q_d, q_a, layers, torch.complex128, chunk_bytes=chunk_bytes)
        assert p.dtype == torch.float64 and p.shape == (3, 2**q_d, 2**q_d)
        for b in range(3):
            ref = loop_dsm(hand_unitary(a[b].numpy(), k, layers), q_d, q_a)
            assert np.abs(p[b].numpy() - ref).max() < 1e-12
            assert (
                np.abs(
                    simulator.block_sum(torch.from_numpy(hand_unitary(a[b].numpy(), k, layers)), q_d, q_a)[0].numpy()
                    - ref
                ).max()
                < 1e-12
            )
        assert (p.sum(-1) - 1).abs().max() < 1e-12 and (p.sum(-2) - 1).abs().max() < 1e-12


def test_complex64_dsm_is_close_to_the_exact_one():
    a = angles_for(5, 3, batch=2, seed=7)
    p = simulator.dsm(a.float(), 2, 3, 3)
    assert p.dtype == torch.float32
    for b in range(2):
        assert np.abs(p[b].double().numpy() - loop_dsm(hand_unitary(a[b].numpy(), 5, 3), 2, 3)).max() < 1e-5


@pytest.mark.parametrize("q_d,q_a,layers", [(1, 1, 2), (2, 1, 2), (1, 2, 3), (2, 2, 2), (1, 3, 2), (2, 0, 2)])
def test_gradcheck_of_the_adjoint_backward(q_d, q_a, layers):
    a = angles_for(q_d + q_a, layers, batch=2, seed=q_d * 7 + q_a).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: simulator.dsm(x, q_d, q_a, layers, torch.complex128), (a,))
    one = lambda x: simulator.dsm(x, q_d, q_a, layers, torch.complex128, chunk_bytes=1)  # noqa: E731
    assert torch.autograd.gradcheck(one, (a,))


def test_gradient_equals_finite_differences_of_the_qiskit_dsm():
    """Central differences of the loop DSM of qiskit's Operator, an independent check of the adjoint's value."""
    q_d, q_a, layers = 2, 2, 2
    a = angles_for(4, layers, batch=1, seed=11)
    w = np.random.default_rng(0).standard_normal((4, 4))
    x = a.clone().requires_grad_()
    (grad,) = torch.autograd.grad(
        (simulator.dsm(x, q_d, q_a, layers, torch.complex128)[0] * torch.from_numpy(w)).sum(), x
    )
    h = 1e-6
    for i in range(a.shape[1]):
        up, down = a[0].numpy().copy(), a[0].numpy().copy()
        up[i] += h
        down[i] -= h
        fd = (
            (loop_dsm(hand_unitary(up, 4, layers), q_d, q_a) - loop_dsm(hand_unitary(down, 4, layers), q_d, q_a)) * w
        ).sum()
        assert abs(grad[0, i].item() - fd / (2 * h)) < 1e-7


def test_no_layers_or_no_data_qubits_give_the_identity_and_keep_a_graph():
    a = torch.zeros(3, 0, dtype=torch.float64, requires_grad=True)
    p = simulator.dsm(a, 3, 1, 0, torch.complex128)
    assert p.dtype == torch.float64 and p.requires_grad
    assert torch.equal(p, torch.eye(8, dtype=torch.float64).expand(3, 8, 8))
    assert simulator.dsm(a.detach(), 3, 1, 0).dtype == torch.float32
    # no data qubit: every block is aux-only, the 1x1 DSM is 1 whatever the angles, with a zero gradient
    x = angles_for(2, 2, batch=2).requires_grad_()
    p = simulator.dsm(x, 0, 2, 2, torch.complex128)
    assert torch.equal(p, torch.ones(2, 1, 1, dtype=torch.float64))
    (grad,) = torch.autograd.grad(p.sum(), x)
    assert torch.equal(grad, torch.zeros_like(x))


def test_angle_and_simulation_precisions_can_differ():
    """float32 angles simulated in complex128 (and float64 ones in complex64) give the DSM of the same angles."""
    a = angles_for(4, 2, batch=2, seed=8).float()
    ref = np.stack([loop_dsm(hand_unitary(row.double().numpy(), 4, 2), 2, 2) for row in a])
    p128 = simulator.dsm(a, 2, 2, 2, torch.complex128)
    assert p128.dtype == torch.float64 and np.abs(p128.numpy() - ref).max() < 1e-12
    p64 = simulator.dsm(a.double(), 2, 2, 2, torch.complex64)
    assert p64.dtype == torch.float32 and np.abs(p64.double().numpy() - ref).max() < 1e-5
    v = simulator.unitary(a, 4, 2, torch.complex128)
    assert v.dtype == torch.complex128
    assert np.abs(v[0].numpy() - hand_unitary(a[0].double().numpy(), 4, 2)).max() < 1e-12


@pytest.mark.parametrize(
    "k,layers,n_aux", [(2, 2, 1), (3, 2, 0), (3, 3, 2), (4, 3, 1), (5, 4, 3), (6, 2, 0), (7, 16, 4)]
)
def test_schedule_built_from_scratch_covers_each_kept_block_once_in_dependency_order(k, layers, n_aux):
    blocks = ansatz.brick_wall(k, layers)
    sched = simulator.schedule(k, layers, n_aux)
    assert sched.n_qubits == k and sched.n_blocks == len(blocks)
    order = [i for st in sched.steps for i, _ in st.blocks]
    assert len(order) == len(set(order))
    dropped = set(range(len(blocks))) - set(order)
    for i in dropped:  # a dropped block acts on aux qubits only, and nothing kept precedes (or follows) it there
        a = blocks[i].first_qubit
        assert a + 1 < n_aux
    pos = {i: n for n, i in enumerate(order)}
    for st in sched.steps:
        assert 2 <= st.width <= simulator.MAX_WIDTH and 0 <= st.first_qubit and st.first_qubit + st.width <= k
        assert st.width >= min(3, k)  # 4x4 gates are widened to 8x8 when there are 3 qubits
        local = [p for _, p in st.blocks]
        assert all(blocks[i].first_qubit - st.first_qubit == p for i, p in st.blocks)
        assert all(0 <= p <= st.width - 2 for p in local)
        assert min(local) == 0 or st.first_qubit + st.width == k  # the window starts at its lowest block
        assert [i for i, _ in st.blocks] == sorted(i for i, _ in st.blocks)  # circuit order inside a step
    for x in order:
        for y in order:
            if x < y and {blocks[x].first_qubit, blocks[x].first_qubit + 1} & {
                blocks[y].first_qubit,
                blocks[y].first_qubit + 1,
            }:
                assert pos[x] < pos[y]
    assert sched.widths == tuple(sorted({st.width for st in sched.steps}))
    count: dict = {}
    for st, (w, i) in zip(sched.steps, sched.slots):
        assert w == st.width and i == count.get(w, 0)
        count[w] = i + 1


def test_the_paper_circuit_schedule_has_the_documented_cost():
    """Module docstring: 7 qubits, 16 layers, 4 aux -> 6 of the 96 blocks dropped, 23 gates, 304 multiply-adds."""
    blocks = ansatz.brick_wall(7, 16)
    assert len(simulator.aux_only_ends(blocks, 7, 4)) == 6
    sched = simulator.schedule(7, 16, 4)
    assert len(sched.steps) == 23 and sum(2**st.width for st in sched.steps) == 304
    assert sum(len(st.blocks) for st in sched.steps) == 90
    full = simulator.schedule(7, 16)
    assert sum(len(st.blocks) for st in full.steps) == 96 and sum(2**st.width for st in full.steps) <= 4 * 96


def test_aux_only_ends_are_exactly_the_blocks_that_cannot_change_the_dsm():
    """Brute force: a block is droppable from the front iff it acts on aux qubits only and every block before it
    on one of its qubits is droppable too (and likewise from the back); compared on many shapes."""
    for k in range(2, 8):
        for n_aux in range(0, k + 1):
            for layers in range(1, 5):
                blocks = ansatz.brick_wall(k, layers)
                expected = set()
                for idx in (list(range(len(blocks))), list(range(len(blocks) - 1, -1, -1))):
                    seen = []
                    for i in idx:
                        if i in expected:
                            seen.append(i)
                            continue
                        q = {blocks[i].first_qubit, blocks[i].first_qubit + 1}
                        touching = [j for j in seen if q & {blocks[j].first_qubit, blocks[j].first_qubit + 1}]
                        if max(q) < n_aux and all(j in expected for j in touching):
                            expected.add(i)
                        seen.append(i)
                assert simulator.aux_only_ends(blocks, k, n_aux) == expected, (k, n_aux, layers)


def _embed(g: np.ndarray, p: int, width: int) -> np.ndarray:
    return np.kron(np.kron(np.eye(2 ** (width - p - 2)), g), np.eye(2**p))


@pytest.mark.parametrize("k,layers,n_aux", [(3, 2, 0), (4, 3, 1), (5, 3, 2), (7, 4, 4)])
def test_fused_gates_equal_qiskit_products_of_their_blocks(k, layers, n_aux):
    sched = simulator.schedule(k, layers, n_aux)
    a = angles_for(k, layers, batch=2, seed=5)
    gates = simulator.step_gates(a, sched, torch.complex128)
    assert [g.shape[0] for g in gates] == [sum(st.width == w for st in sched.steps) for w in sched.widths]
    for s, st in enumerate(sched.steps):
        for b in range(2):
            want = np.eye(2**st.width)
            for i, p in st.blocks:
                want = _embed(hand_unitary(a[b, 4 * i : 4 * i + 4].numpy(), 2, 1), p, st.width) @ want
            assert np.abs(simulator._gate(gates, sched, s)[b].numpy() - want).max() < 1e-12


def test_embedded_equals_kron_with_identities():
    g = torch.randn(3, 4, 4, dtype=torch.complex128)
    for width in (2, 3, 4):
        for p in range(width - 1):
            out = simulator._embedded(g, p, width)
            for b in range(3):
                assert np.abs(out[b].numpy() - _embed(g[b].numpy(), p, width)).max() == 0


def test_projection_gives_unit_sums_keeps_dsms_and_is_orthogonal():
    g = torch.Generator().manual_seed(1)
    for n in (2, 4, 8):
        p = torch.rand(5, n, n, dtype=torch.float64, generator=g) / n + 0.5 / n
        q = simulator.project_doubly_stochastic(p)
        assert q.dtype == p.dtype and (q >= 0).all()
        assert (q.sum(-1) - 1).abs().max() < 1e-14 and (q.sum(-2) - 1).abs().max() < 1e-14
        # orthogonal projection onto the affine set: P - Q is orthogonal to every direction inside it (D with
        # zero row and column sums), e.g. D = e_ab - e_ac - e_db + e_dc
        d = torch.zeros(n, n, dtype=torch.float64)
        d[0, 0], d[0, 1], d[1, 0], d[1, 1] = 1, -1, -1, 1
        assert ((p - q) * d).sum((-1, -2)).abs().max() < 1e-14
        torch.testing.assert_close(simulator.project_doubly_stochastic(q), q, rtol=0, atol=1e-15)
    p32 = simulator.project_doubly_stochastic(torch.full((2, 4, 4), 0.3))
    assert p32.dtype == torch.float32 and torch.allclose(p32, torch.full((2, 4, 4), 0.25))
    clamped = simulator.project_doubly_stochastic(torch.tensor([[[2.0, 0.0], [0.0, 0.0]]], dtype=torch.float64))
    assert (clamped >= 0).all() and clamped.min() == 0


@pytest.mark.parametrize("k,layers", [(2, 1), (3, 2), (3, 3)])
def test_bell_circuits_hold_v_over_sqrt_dim(k, layers):
    """Amplitude of |A=x, B=y> is V[y, x] / sqrt(2^k) for both ansatze (qubits 0..k-1 are A, the low bits)."""
    a = angles_for(k, layers, batch=1, seed=2)[0].numpy()
    v = hand_unitary(a, k, layers)
    dim = 2**k
    for name in ("simple", "parted"):
        state = Statevector(qiskit_circuits.bell_circuit(a, k, layers, name)).data.reshape(dim, dim)  # [y, x]
        phase = state[0, 0] / (v[0, 0] / math.sqrt(dim)) if abs(v[0, 0]) > 1e-6 else 1
        assert abs(abs(phase) - 1) < 1e-10
        assert np.abs(state - phase * v / math.sqrt(dim)).max() < 1e-12
    measured = qiskit_circuits.bell_circuit(a, k, layers, "simple", measure=True)
    assert measured.num_clbits == 2 * k and measured.count_ops()["measure"] == 2 * k
    assert qiskit_circuits.bell_circuit(a, k, layers, "simple").num_clbits == 0


def test_transposed_blocks_are_the_transpose():
    k, layers = 3, 2
    a = angles_for(k, layers, batch=1, seed=4)[0].numpy()
    qc = QuantumCircuit(k)
    qiskit_circuits.append_blocks(qc, ansatz.brick_wall(k, layers), a, list(range(k)), transpose=True)
    assert np.abs(Operator(qc).data - hand_unitary(a, k, layers).T).max() < 1e-12
    shifted = QuantumCircuit(k + 2)  # on other qubits: V on qubits 2..k+1
    qiskit_circuits.append_blocks(shifted, ansatz.brick_wall(k, layers), a, list(range(2, k + 2)))
    assert np.abs(Operator(shifted).data - np.kron(hand_unitary(a, k, layers), np.eye(4))).max() < 1e-12


def test_sampled_dsm_converges_to_the_exact_one_and_noise_flattens_it():
    q_d, q_a, layers, shots = 1, 1, 2, 4000
    a = angles_for(2, layers, batch=3, seed=9).numpy()
    exact = np.stack([loop_dsm(hand_unitary(row, 2, layers), q_d, q_a) for row in a])
    for ansatz_name in ("simple", "parted"):
        est = sampling.sample_dsm(a, q_d, q_a, layers, ansatz_name, shots=shots, seed=1, batch=2)
        assert est.shape == (3, 2, 2)
        assert np.abs(est.sum((-1, -2)) - 2).max() < 1e-12  # n sum of probabilities
        assert np.abs(est - exact).max() < 5 * math.sqrt(2 / shots)  # n * sqrt(p(1-p)/shots) <= 2 * 0.5/sqrt(shots)
    again = sampling.sample_dsm(a, q_d, q_a, layers, "simple", shots=shots, seed=1, batch=2)
    assert np.array_equal(again, sampling.sample_dsm(a, q_d, q_a, layers, "simple", shots=shots, seed=1, batch=2))
    assert not np.array_equal(again, sampling.sample_dsm(a, q_d, q_a, layers, "simple", shots=shots, seed=2, batch=2))
    # the second chunk of angles gets its own seed (seed + start): equal rows give different estimates
    same = np.repeat(a[:1], 2, axis=0)
    est = sampling.sample_dsm(same, q_d, q_a, layers, "simple", shots=shots, seed=1, batch=1)
    assert not np.array_equal(est[0], est[1])
    far = np.abs(exact - 1 / 2).max(axis=(-1, -2)).argmax()
    noisy = sampling.sample_dsm(a[far : far + 1], q_d, q_a, layers, "simple", shots=shots, seed=1, depolarizing=0.5)
    assert np.abs(noisy[0] - 1 / 2).max() < np.abs(exact[far] - 1 / 2).max() - 0.05


def test_noise_model_covers_every_gate_of_the_circuit():
    model = sampling.noise_model(0.1)
    assert {"rxx", "ryy", "rzz", "cx", "ry", "h"} <= set(model.noise_instructions)
