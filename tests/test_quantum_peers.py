"""The QontOT benchmark's peers (qdsbench/quantum/peers.py) time only circuits that reproduce our P, so each peer is
checked here against our complex128 DSM, and the guard itself against a P that is not the circuit's. The joint-to-P
map is checked against the definition P_ij = n sum_{a,b} Prob(A=(i,a), B=(j,b)) written out as loops.

At the paper's qubit counts (q_d=3, q_a=4) and at q_d=2, q_a=3 -- where 2**q differs from 2*q, P is not symmetric
and the two registers differ in width -- every peer's P is checked against our complex128 DSM, and every 'fwd+bwd'
pass against the gradient of L = sum(W * P) from our simulator's adjoint: what each timed call computed is caught at
``_timed_value`` (the jacobians it returned, or the .grad it left on its angles). Clocks are checked with a fake
``time``; ``references``' bookkeeping (notes, printing, the 1e-6 guard) with fake peers.

PennyLane and torchquantum-ng live in .venv-bench (`make bench-qontot` builds it): their tests skip elsewhere, and
`make mutate MODULE=quantum` runs with that venv.
"""

import inspect
import itertools
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from qdsbench import attention
from qdsbench.quantum import peers
from qdsbench.quantum.ansatz import brick_wall

Q_D, Q_A, LAYERS = 1, 1, 2  # 2 + 2 qubits in the Bell circuit: every peer runs in well under a second


def _backend_and_exact_p(m=3, q_d=Q_D, q_a=Q_A, layers=LAYERS):
    backend = attention.create("qontot", n_data_qubits=q_d, n_aux_qubits=q_a, layers=layers, dtype="complex128")
    scores = torch.randn(m, 2**q_d, 2**q_d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    angles = backend.angles(scores)
    return backend, angles, backend.dsm_from_angles(angles)


def test_p_from_joint_is_the_block_sum_of_the_joint_distribution_transposed():
    n, m = 2, 3
    joint = np.random.default_rng(0).random((2, n * m, n * m))  # [batch, y = (j, b), x = (i, a)], any weights
    want = np.zeros((2, n, n))
    for s, i, j, a, b in itertools.product(range(2), range(n), range(n), range(m), range(m)):
        want[s, i, j] += n * joint[s, j * m + b, i * m + a]
    np.testing.assert_allclose(peers._p_from_joint(joint, n, m), want, rtol=1e-12)


def test_gates_follow_the_brick_wall_on_register_b_in_circuit_order():
    k, layers = 3, 2
    angles = np.arange(100.0)
    got = list(peers._gates(angles, k, layers))
    want = []
    for block in brick_wall(k, layers):
        a = k + block.first_qubit
        want += [("xx", block.offset, (a, a + 1)), ("yy", block.offset + 1, (a, a + 1))]
        want += [("zz", block.offset + 2, (a, a + 1)), ("ry", block.offset + 3, (a,))]
    assert got == want


@pytest.mark.parametrize("q_d,q_a", [(1, 1), (2, 1)])
def test_qiskit_operator_and_aer_reproduce_our_p(q_d, q_a):
    backend, angles, p = _backend_and_exact_p(q_d=q_d, q_a=q_a)
    rows = list(peers._qiskit_rows(backend, angles.numpy()))
    assert [label.split(" ")[0] for label, _, _ in rows] == ["qiskit", "qiskit-aer"]
    for label, times, p_peer in rows:
        torch.testing.assert_close(p_peer, p, rtol=0, atol=1e-10, msg=label)
        assert set(times) == {"fwd"} and all(t >= 0 for t in times["fwd"])


def test_references_time_only_the_peers_that_reproduce_p_and_name_the_others():
    backend, angles, p = _backend_and_exact_p()
    found = peers.references(backend, angles, p)
    labels = [label for label, _ in found]
    assert any(label.startswith("qiskit quantum_info.Operator") for label in labels)
    assert any(label.startswith("qiskit-aer") for label in labels)
    assert all("reproduces our P" in note or "skipped, not installed" in note for note in peers.NOTES)
    wrong = p.clone()
    wrong[0] = wrong[0].flip(-1)  # still doubly stochastic, but not this circuit's P
    assert peers.references(backend, angles, wrong) == []
    not_same = [note for note in peers.NOTES if "not the same circuit" in note]
    assert len(not_same) == len(found)
    assert all("max |P - ours|" in note for note in not_same)


def test_references_note_a_peer_that_is_not_installed(monkeypatch):
    backend, angles, p = _backend_and_exact_p()

    def missing(*args):
        raise ImportError("No module named 'pennylane'")

    monkeypatch.setattr(peers, "_pennylane_rows", missing)
    peers.references(backend, angles, p)
    assert any(note.startswith("- pennylane: skipped, not installed here") for note in peers.NOTES)


@pytest.mark.parametrize("backward", [False, True])
def test_the_old_simulator_computes_our_p_over_every_chunk_once(monkeypatch, backward):
    """It is timed, not used, so what it computed is captured at its block_sum: every matrix once, in order."""
    backend, angles, p = _backend_and_exact_p(m=5)
    captured, block_sum = [], peers.simulator.block_sum

    def capture(v, q_d, q_a):
        out = block_sum(v, q_d, q_a)
        captured.append((out.detach(), out.requires_grad))
        return out

    monkeypatch.setattr(peers.simulator, "block_sum", capture)
    peers.old_simulator(angles.float(), Q_D, Q_A, LAYERS, torch.randn(5, 2, 2), backward=backward, chunk=2)
    assert [len(c) for c, _ in captured] == [2, 2, 1]
    assert all(needs_grad == backward for _, needs_grad in captured)
    torch.testing.assert_close(torch.cat([c for c, _ in captured]).double(), p, rtol=0, atol=1e-5)


def test_pennylane_peers_reproduce_our_p():
    pytest.importorskip("pennylane")
    backend, angles, p = _backend_and_exact_p()
    weight = np.random.default_rng(0).standard_normal((len(angles), backend.size, backend.size))
    rows = list(peers._pennylane_rows(backend, angles.numpy(), weight))
    assert len(rows) == 2
    for label, times, p_peer in rows:
        torch.testing.assert_close(p_peer.double(), p, rtol=0, atol=1e-8, msg=label)
        assert set(times) == {"fwd", "fwd+bwd"}


def test_torchquantum_peer_reproduces_our_p_in_complex64():
    pytest.importorskip("torchquantum")
    backend, angles, p = _backend_and_exact_p()
    weight = np.random.default_rng(0).standard_normal((len(angles), backend.size, backend.size))
    ((label, times, p_peer),) = peers._torchquantum_rows(backend, angles.numpy(), weight)
    torch.testing.assert_close(p_peer.double(), p, rtol=0, atol=1e-5, msg=label)
    assert set(times) == {"fwd", "fwd+bwd"}


# --- every peer at sizes where qubit numbering, wire order and the register split matter ---------------------------

PEER_MODULES = {"qiskit": "qiskit_aer", "pennylane": "pennylane", "torchquantum": "torchquantum"}
# the table rows of results/bench/qontot.md: library (as its project spells it) and device, then in parentheses what
# the row claims about how it was run
PUBLISHED = {
    "qiskit quantum_info.Operator": ("per matrix",),
    "qiskit-aer unitary": ("parameter_binds batch", "1 thread"),
    "PennyLane default.qubit": ("torch", "backprop", "broadcast"),
    "PennyLane lightning.qubit": ("adjoint", "per matrix"),
    "torchquantum-ng": ("torch", "backprop", "batch", "complex64"),
}


class _Run:
    """One peer source run with spies: its rows, what each row's last timed call computed, the simulators it built."""

    def __init__(self, name, q_d, q_a, layers):
        pytest.importorskip(PEER_MODULES[name])
        self.name = name
        self.backend, self.angles, self.p = _backend_and_exact_p(m=3, q_d=q_d, q_a=q_a, layers=layers)
        self.weight = np.random.default_rng(5).standard_normal((3, self.backend.size, self.backend.size))
        self.k, self.rows, self.devices, self.aer = q_d + q_a, [], [], []
        calls, timed_value = [], peers._timed_value

        def spy(fn):
            seconds, value = timed_value(fn)
            calls.append((fn, value))
            return seconds, value

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(peers, "_timed_value", spy)
            if name == "qiskit":
                import qiskit_aer

                mp.setattr(qiskit_aer, "AerSimulator", self._recorder(qiskit_aer.AerSimulator, self.aer))
                source = peers._qiskit_rows(self.backend, self.angles.numpy())
            elif name == "pennylane":
                import pennylane as qml

                mp.setattr(qml, "device", self._recorder(qml.device, self.devices))
                source = peers._pennylane_rows(self.backend, self.angles.numpy(), self.weight)
            else:
                source = peers._torchquantum_rows(self.backend, self.angles.numpy(), self.weight)
            for label, times, p_peer in source:  # the row's fwd+bwd, when it has one, is the call just before it
                self.rows.append((label, times, p_peer, calls[-1]))

    @staticmethod
    def _recorder(make, made):
        def record(*args, **kwargs):
            made.append(make(*args, **kwargs))
            return made[-1]

        return record

    def our_gradient(self):
        """dL/dangles for L = sum(W * P), P from our complex128 simulator (adjoint backward)."""
        a = self.angles.clone().requires_grad_()
        (self.backend.dsm_from_angles(a) * torch.from_numpy(self.weight)).sum().backward()
        return a.grad


SIZES = [(3, 4, 2), (2, 3, 3)]  # (q_d, q_a, layers): 14 and 10 qubits in the Bell circuit, ~1 s for all peers


ALL = [(name, *size) for size in SIZES for name in PEER_MODULES]


@pytest.fixture
def peer_run(request):
    """A fresh run per test, no cache: mutmut runs only the tests its stats saw calling a function, so a cached run
    would leave every test but the first unmapped (and a module-level cache leaks into its forked children)."""
    return _Run(*request.param)


@pytest.mark.parametrize("peer_run", ALL, indirect=True, ids=str)
def test_every_peer_reproduces_our_p_where_qubit_order_and_register_split_matter(peer_run):
    atol = 1e-5 if peer_run.name == "torchquantum" else 1e-10  # torchquantum simulates in complex64
    for label, _, p_peer, _ in peer_run.rows:
        torch.testing.assert_close(p_peer.double(), peer_run.p, rtol=0, atol=atol, msg=label)


@pytest.mark.parametrize("peer_run", ALL, indirect=True, ids=str)
def test_every_fwd_bwd_pass_computes_the_gradient_of_sum_w_p(peer_run):
    """A 'fwd+bwd' time must include the backward: the gradient the timed call computed (PennyLane lightning's
    jacobians are its return value; torch backprop leaves .grad on the angles the call closes over) is dL/dangles."""
    want = peer_run.our_gradient()
    with_backward = [row for row in peer_run.rows if "fwd+bwd" in row[1]]
    assert len(with_backward) == (0 if peer_run.name == "qiskit" else len(peer_run.rows))
    for label, _, p_peer, (fn, value) in with_backward:
        if value is not None:
            got = torch.as_tensor(np.stack(value))
        else:
            got = inspect.getclosurevars(fn).nonlocals["a"].grad
        tol = 1e-4 if p_peer.dtype == torch.float32 else 1e-9
        torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol, msg=label)


@pytest.mark.parametrize("peer_run", ALL, indirect=True, ids=str)
def test_every_pass_is_timed_as_a_cpu_and_wall_pair(peer_run):
    for label, times, _, _ in peer_run.rows:
        want = {"fwd"} if peer_run.name == "qiskit" else {"fwd", "fwd+bwd"}
        assert set(times) == want, label
        for pass_, t in times.items():
            assert isinstance(t, tuple) and len(t) == 2 and all(isinstance(s, float) and s >= 0 for s in t), pass_


@pytest.mark.parametrize("peer_run", ALL, indirect=True, ids=str)
def test_the_row_labels_name_library_device_and_how_it_ran(peer_run):
    """The labels are the method column of results/bench/qontot.md: 'library device (how it ran)'."""
    for label, _, _, _ in peer_run.rows:
        name, _, how = label.partition(" (")
        assert name in PUBLISHED and how.endswith(")"), label
        assert [part.strip() for part in how[:-1].split(",")] == list(PUBLISHED[name]), label
    if peer_run.name == "torchquantum":
        assert peer_run.rows[0][2].dtype == torch.float32  # |complex64 amplitude|^2, as its label says


def test_the_row_labels_are_the_methods_of_the_published_table():
    table = Path(__file__).resolve().parents[1] / "results" / "bench" / "qontot.md"
    if not table.is_file():
        pytest.skip("results/bench/qontot.md is not in this copy of the repository")
    methods = [line.split(" | ")[0][2:] for line in table.read_text().splitlines() if line.startswith("| ")]
    published = [m for m in methods if m.partition(" (")[0] in PUBLISHED]
    assert len(published) == len(PUBLISHED)
    for method in published:
        name, _, how = method.partition(" (")
        assert [part.strip() for part in how[:-1].split(",")] == list(PUBLISHED[name]), method


@pytest.mark.parametrize("peer_run", [("pennylane", *size) for size in SIZES], indirect=True, ids=str)
def test_pennylane_devices_hold_the_bell_circuit_and_no_idle_wires(peer_run):
    """An idle wire doubles the state a peer simulates, and so its time; a device without fixed wires takes the
    circuit's 2k."""
    assert len(peer_run.devices) == 2
    for dev in peer_run.devices:
        assert dev.wires is None or len(dev.wires) == 2 * peer_run.k, dev


@pytest.mark.parametrize("peer_run", [("qiskit", *SIZES[0])], indirect=True, ids=str)
def test_aer_runs_on_the_one_thread_its_label_names(peer_run):
    (sim,) = peer_run.aer
    assert sim.options.max_parallel_threads == 1


# --- the clocks ----------------------------------------------------------------------------------------------------


class _FakeTime:
    """process_time / perf_counter that move only when the timed function says so."""

    def __init__(self):
        self.cpu, self.wall = 10.0, 100.0

    def process_time(self):
        return self.cpu

    def perf_counter(self):
        return self.wall

    def work(self, cpu, wall):
        self.cpu += cpu
        self.wall += wall
        return "value"


def test_timed_value_returns_cpu_then_wall_seconds_spent_inside_the_call(monkeypatch):
    clock = _FakeTime()
    monkeypatch.setattr(peers, "time", clock)
    assert peers._timed_value(lambda: clock.work(3.0, 7.0)) == ((3.0, 7.0), "value")
    assert peers._clock(lambda: clock.work(0.5, 2.0)) == (0.5, 2.0)


# --- references' bookkeeping, with fake peers ----------------------------------------------------------------------


def _fake_sources(monkeypatch, p_ours, missing=(), offsets=None):
    """Replace the three peer sources: ``missing`` raise ImportError, the others yield one row at P + offset."""
    offsets = offsets or {}

    def source(name):
        def rows(backend, angles, weight=None):
            if name in missing:
                raise ImportError(f"No module named '{name}'")
            yield f"fake {name}", {"fwd": (1.0, 2.0)}, p_ours + offsets.get(name, 0.0)

        return rows

    for name in PEER_MODULES:
        monkeypatch.setattr(peers, f"_{name}_rows", source(name))


@pytest.mark.parametrize("missing", ["qiskit", "pennylane", "torchquantum"])
def test_references_name_a_missing_peer_go_on_to_the_next_and_print_each_note(monkeypatch, capsys, missing):
    backend = types.SimpleNamespace(size=2)
    p_ours = torch.rand(3, 2, 2, dtype=torch.float64)
    peers.NOTES.append("- a note from an earlier call")
    _fake_sources(monkeypatch, p_ours, missing={missing})
    found = peers.references(backend, torch.zeros(3, 4), p_ours)
    assert [label for label, _ in found] == [f"fake {name}" for name in PEER_MODULES if name != missing]
    index = list(PEER_MODULES).index(missing)
    assert peers.NOTES[index].startswith(f"- {missing}: skipped, not installed here (No module named")
    assert all("reproduces our P" in note for i, note in enumerate(peers.NOTES) if i != index)
    assert len(peers.NOTES) == 3
    assert capsys.readouterr().out.splitlines() == peers.NOTES


def test_references_time_a_peer_within_1e_6_of_our_p_and_not_one_beyond(monkeypatch, capsys):
    """'Reproduces our P to 1e-6': an error of exactly 1e-6 passes, the next representable error above does not."""
    p_ours = torch.zeros(2, 2, 2, dtype=torch.float64)
    above = float(np.nextafter(1e-6, 1.0))
    _fake_sources(monkeypatch, p_ours, offsets={"qiskit": 1e-6, "pennylane": above, "torchquantum": -1e-6})
    found = peers.references(types.SimpleNamespace(size=2), torch.zeros(2, 4), p_ours)
    assert [label for label, _ in found] == ["fake qiskit", "fake torchquantum"]
    assert peers.NOTES[1].startswith("- fake pennylane: not the same circuit (max |P - ours| = 1.00e-06)")
    assert capsys.readouterr().out.splitlines() == peers.NOTES


# --- the previous simulator, as the benchmark calls it -------------------------------------------------------------


def test_the_old_simulator_runs_in_chunks_of_32_and_backpropagates_sum_w_p(monkeypatch):
    """Its docstring's 32 unitaries per chunk; its backward is of L = sum(W * P): dL/dP = W, caught at block_sum."""
    backend, angles, _ = _backend_and_exact_p(m=40)
    weight = torch.randn(40, 2, 2, generator=torch.Generator().manual_seed(3))
    sizes, grads, block_sum = [], [], peers.simulator.block_sum

    def capture(v, q_d, q_a):
        out = block_sum(v, q_d, q_a)
        sizes.append(len(out))
        out.register_hook(grads.append)
        return out

    monkeypatch.setattr(peers.simulator, "block_sum", capture)
    peers.old_simulator(angles.float(), Q_D, Q_A, LAYERS, weight, backward=True)
    assert sizes == [32, 8]
    torch.testing.assert_close(torch.cat(grads), weight, rtol=0, atol=0)
