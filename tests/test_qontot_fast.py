"""The fast QontOT simulator: fused schedule, adjoint gradients, chunks and reused buffers, against the previous
simulator (``unitary_reference``, autograd through every gate) in complex128."""

import math

import pytest
import torch

from qdsbench import attention
from qdsbench.quantum import simulator
from qdsbench.quantum.ansatz import brick_wall, n_params

SIZES = [(1, 1, 2), (2, 1, 3), (1, 2, 2), (3, 2, 2), (2, 3, 2), (3, 4, 3), (4, 4, 2), (3, 1, 1)]  # (q_d, q_a, L)


def random_angles(k, layers, batch=3, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(batch, n_params(k, layers), generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    return a.requires_grad_(requires_grad)


def reference_dsm(a, q_d, q_a, layers):
    return simulator.block_sum(simulator.unitary_reference(a, q_d + q_a, layers, torch.complex128), q_d, q_a)


def test_block_gates_closed_form_equals_the_gate_product():
    t = torch.randn(5, 7, 4, dtype=torch.float64) * 3
    closed, product = simulator.block_gates(t, torch.complex128), simulator.block_matrices(t, torch.complex128)
    torch.testing.assert_close(closed, product, rtol=0, atol=1e-14)


@pytest.mark.parametrize("k,layers,n_aux", [(2, 3, 1), (3, 2, 0), (4, 3, 1), (5, 4, 3), (7, 16, 4), (8, 3, 2)])
def test_schedule_covers_the_kept_blocks_once_in_an_order_their_dependencies_allow(k, layers, n_aux):
    blocks = brick_wall(k, layers)
    sched = simulator.schedule(k, layers, n_aux)
    dropped = simulator.aux_only_ends(blocks, k, n_aux) if n_aux else set()
    order = [i for step in sched.steps for i, _ in step.blocks]
    assert sorted(order) == [i for i in range(len(blocks)) if i not in dropped]
    position = {i: n for n, i in enumerate(order)}
    for step in sched.steps:
        assert 2 <= step.width <= simulator.MAX_WIDTH and step.first_qubit + step.width <= k
        for i, local in step.blocks:
            assert blocks[i].first_qubit == step.first_qubit + local and 0 <= local <= step.width - 2
    for later in order:  # every earlier kept block sharing a qubit comes first
        for earlier in order:
            shared = {blocks[earlier].first_qubit, blocks[earlier].first_qubit + 1} & {
                blocks[later].first_qubit,
                blocks[later].first_qubit + 1,
            }
            if earlier < later and shared:
                assert position[earlier] < position[later]


def test_the_paper_circuit_needs_fewer_passes_and_no_more_multiply_adds():
    sched = simulator.schedule(7, 16, 4)
    assert len(sched.steps) <= 24  # 96 blocks: the previous simulator made 64 passes, slanted pairs 44
    assert sum(4**step.width for step in sched.steps) / 128 <= 96 * 4 * 128 / 128  # <= 4 MACs per block and entry


@pytest.mark.parametrize("q_d,q_a,layers", SIZES)
def test_unitary_and_dsm_equal_the_reference(q_d, q_a, layers):
    k = q_d + q_a
    a = random_angles(k, layers)
    reference = simulator.unitary_reference(a, k, layers, torch.complex128)
    torch.testing.assert_close(simulator.unitary(a, k, layers, torch.complex128), reference, rtol=0, atol=1e-12)
    p = simulator.dsm(a, q_d, q_a, layers, torch.complex128)  # aux-only ends skipped
    torch.testing.assert_close(p, simulator.block_sum(reference, q_d, q_a), rtol=0, atol=1e-12)
    assert (p.sum(-1) - 1).abs().max() < 1e-12 and (p.sum(-2) - 1).abs().max() < 1e-12


@pytest.mark.parametrize("q_d,q_a,layers", SIZES)
def test_adjoint_gradient_equals_autograd_through_the_plain_simulation(q_d, q_a, layers):
    a = random_angles(q_d + q_a, layers, requires_grad=True)
    w = torch.randn(3, 2**q_d, 2**q_d, dtype=torch.float64)
    (ours,) = torch.autograd.grad((simulator.dsm(a, q_d, q_a, layers, torch.complex128) * w).sum(), a)
    (reference,) = torch.autograd.grad((reference_dsm(a, q_d, q_a, layers) * w).sum(), a)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("q_d,q_a,layers", [(1, 1, 2), (2, 1, 2), (1, 2, 1), (2, 2, 2)])
def test_gradcheck_adjoint_in_the_angles(q_d, q_a, layers):
    a = random_angles(q_d + q_a, layers, batch=2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: simulator.dsm(x, q_d, q_a, layers, torch.complex128), (a,))


def test_gradcheck_adjoint_in_the_complex_gates():
    sched = simulator.schedule(4, 2, 2)
    gates = [g.requires_grad_() for g in simulator.step_gates(random_angles(4, 2, batch=2), sched, torch.complex128)]
    assert torch.autograd.gradcheck(lambda *g: simulator._CircuitDSM.apply(sched, 2, 2, 1, *g), tuple(gates))


def test_chunks_reused_buffers_and_a_second_backward_do_not_change_results():
    a = random_angles(6, 2, batch=5, requires_grad=True)
    w = torch.randn(5, 8, 8, dtype=torch.float64)
    whole = simulator.dsm(a, 3, 3, 2, torch.complex128, chunk_bytes=2**30)
    (g_whole,) = torch.autograd.grad((whole * w).sum(), a)
    for _ in range(2):  # one matrix per chunk; the second time from reused buffers
        single = simulator.dsm(a, 3, 3, 2, torch.complex128, chunk_bytes=1)
        torch.testing.assert_close(single, whole, rtol=0, atol=1e-14)
        loss = (single * w).sum()
        (g1,) = torch.autograd.grad(loss, a, retain_graph=True)
        (g2,) = torch.autograd.grad(loss, a)  # V went back to the pool after the first: recomputed
        torch.testing.assert_close(g1, g_whole, rtol=0, atol=1e-13)
        torch.testing.assert_close(g2, g_whole, rtol=0, atol=1e-13)
    simulator.release_buffers()
    torch.testing.assert_close(simulator.dsm(a.detach(), 3, 3, 2, torch.complex128), whole.detach())


def test_the_graph_keeps_no_unitary_per_gate():
    """Autograd saves only the small gate tensors; the one V per matrix is the adjoint Function's own."""
    a = random_angles(7, 16, batch=4).float().requires_grad_()
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        p = simulator.dsm(a, 3, 4, 16)
    one_unitary_each = 4 * 128 * 128 * 8
    assert sum(saved) < one_unitary_each  # the previous simulator saved ~64 per matrix
    p.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


def test_complex64_agrees_with_complex128_on_the_paper_circuit():
    a = random_angles(7, 16, batch=4) * 0.3
    p64 = simulator.dsm(a.float(), 3, 4, 16, torch.complex64)
    p128 = simulator.dsm(a, 3, 4, 16, torch.complex128)
    assert p64.dtype == torch.float32 and (p64.double() - p128).abs().max() < 1e-5


def test_no_grad_path_and_empty_batch():
    a = random_angles(4, 2, batch=2)
    assert not simulator.dsm(a, 2, 2, 2, torch.complex128).requires_grad
    assert simulator.dsm(a[:0], 2, 2, 2, torch.complex128).shape == (0, 4, 4)
    assert simulator.dsm(a[:0].requires_grad_(), 2, 2, 2, torch.complex128).shape == (0, 4, 4)


def test_backend_gradients_into_scores_and_theta_equal_the_reference():
    backend = attention.create(
        "qontot", n_data_qubits=2, n_aux_qubits=2, layers=2, grad="full", dtype="complex128"
    ).double()
    s = torch.randn(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    ours = torch.autograd.grad((backend.normalize(s) * w).sum(), (s, backend.theta))
    flat_angles = backend.angles(s.reshape(3, 4, 4))
    reference = torch.autograd.grad(
        (reference_dsm(flat_angles, 2, 2, 2).reshape(3, 1, 4, 4) * w).sum(), (s, backend.theta)
    )
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-10)


def _dense_step_gate(blocks, angles, step, width):
    """A fused gate as the plain product of its blocks, each embedded with torch.kron (qiskit order: local qubit p
    is bit p, so I_high (x) g (x) I_low)."""
    gate = torch.eye(2**width, dtype=torch.complex128)
    for i, p in step.blocks:
        g = simulator.block_matrices(angles[4 * i : 4 * i + 4], torch.complex128)
        high, low = torch.eye(2 ** (width - p - 2)), torch.eye(2**p)
        gate = torch.kron(torch.kron(high.to(g.dtype), g), low.to(g.dtype)) @ gate
    return gate


@pytest.mark.parametrize("k,layers,n_aux", [(7, 16, 4), (5, 3, 0), (4, 2, 1)])
def test_fused_gates_equal_the_product_of_their_embedded_blocks(k, layers, n_aux):
    sched = simulator.schedule(k, layers, n_aux)
    a = random_angles(k, layers, batch=2)
    gates = simulator.step_gates(a, sched, torch.complex128)
    blocks = brick_wall(k, layers)
    for s, step in enumerate(sched.steps):
        for b in range(2):
            ours = simulator._gate(gates, sched, s)[b]
            torch.testing.assert_close(ours, _dense_step_gate(blocks, a[b], step, step.width), rtol=0, atol=1e-13)


def test_projection_is_the_nearest_matrix_with_unit_sums():
    """Against the least-squares solution of the row and column constraints (numpy pseudo-inverse)."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, 8, 8, dtype=torch.float64, generator=g) / 8 + 1e-2  # entries far from 0: no clamping
    ours = simulator.project_doubly_stochastic(p)
    n = 8
    constraints = np.zeros((2 * n, n * n))
    for i in range(n):
        constraints[i, i * n : (i + 1) * n] = 1  # row i
        constraints[n + i, i::n] = 1  # column i
    for b in range(3):
        flat = p[b].numpy().ravel()
        lam = np.linalg.pinv(constraints @ constraints.T) @ (np.ones(2 * n) - constraints @ flat)
        reference = (flat + constraints.T @ lam).reshape(n, n)
        assert np.abs(ours[b].numpy() - reference).max() < 1e-14
    exact = simulator.dsm(random_angles(5, 2, batch=2), 2, 3, 2, torch.complex128)
    torch.testing.assert_close(simulator.project_doubly_stochastic(exact), exact, rtol=0, atol=1e-15)


def test_complex64_backend_is_doubly_stochastic_and_within_1e5_of_complex128_on_the_paper_circuit():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(16, 1, 8, 8, dtype=torch.float64, generator=g) * 2  # angles up to ~theta * 6
    fast, exact = (
        attention.create("qontot", n_aux_qubits=4, layers=16, dtype=dtype) for dtype in ("complex64", "complex128")
    )
    p64, p128 = fast.normalize(s.float()).double(), exact.double().normalize(s)
    assert p64.dtype == torch.float64 and (p64 - p128).abs().max() < 1e-5
    assert (p64 >= 0).all()
    assert (p64.sum(-1) - 1).abs().max() < 1e-6 and (p64.sum(-2) - 1).abs().max() < 1e-6


def test_complex64_gradient_through_the_projection_equals_the_complex128_one():
    s = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    w = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    grads = []
    for dtype, real in (("complex64", torch.float32), ("complex128", torch.float64)):
        backend = attention.create("qontot", n_data_qubits=2, n_aux_qubits=2, layers=2, grad="scores", dtype=dtype)
        x = s.to(real).requires_grad_()
        (grad,) = torch.autograd.grad((backend.to(real).normalize(x) * w.to(real)).sum(), x)
        grads.append(grad.double())
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-5)
