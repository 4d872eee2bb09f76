"""Batched unitary simulation of the ansatz in torch: V (or the DSM read out of it) for many angle vectors at once.

Qiskit's conventions throughout: qubit q is bit q of the basis index, a two-qubit gate on qargs [a, a+1] has basis
index bit_a + 2 bit_(a+1).

Fast path (``unitary``, ``dsm``): the blocks are fused into few dense gates (``schedule``). In light-cone coordinates
the brick wall is a square lattice, and a 2x2 tile of it is a diamond of 4 blocks on 4 adjacent qubits: one 16x16
gate, as many multiply-adds per entry of V (16) as its four 4x4 gates but a quarter of the passes over V. Tiles cut
by the ends of the qubit chain are merged into a neighbour where that adds no multiply-adds (e.g. 5 blocks in one
16x16 gate, 3 blocks in an 8x8). The paper's circuit (7 qubits, 16 layers) becomes 23 gates, 304 multiply-adds per
entry instead of 64 gates (the previous 16x16 parallel pairs, 512) or 96 4x4 gates (384). Each gate is one batched
complex matmul (bmm) on a view of V (its qubits are adjacent bits: no copies) into a second, reused buffer, a few
unitaries at a time (chunks stay in cache). For the DSM, blocks that cannot change it are skipped: a leading
(trailing) part of the circuit acting only on aux qubits is V -> V A (V -> A V) with A unitary on the aux qubits,
which the aux trace in ``block_sum`` removes (6 of the 96 blocks there).

Gradients (``dsm`` under autograd): adjoint differentiation in ``_CircuitDSM``. The backward walks the gates in
reverse, undoing each one on V (gates are unitary: X_(k-1) = F_k^H X_k) while carrying the gradient G_k = dL/dX_k
back the same way, so memory is V plus per-chunk buffers whatever the depth; dL/dF_k = Tr_rest(G_k X_(k-1)^H), the
contraction over the qubits outside the gate, and autograd takes it from the gates to the angles (the gates'
construction is recomputed there rather than kept). That is 3 passes per gate against the forward's one: an exact
gradient of a unitary circuit needs at least two (F^H M F on a full matrix), so about 3-4x the forward is the floor.

``unitary_reference`` is the previous implementation (16x16 fused parallel pairs, autograd through every gate),
kept as the reference the tests and scripts/bench_qontot.py compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch.utils.checkpoint import checkpoint

from qdsbench.quantum.ansatz import Block, brick_wall


# --- the two-qubit block ---------------------------------------------------------------------------------------
def block_gates(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(..., 4) angles -> (..., 4, 4) matrices RY_a(t3) RZZ(t2) RYY(t1) RXX(t0), in closed form.

    RXX RYY RZZ commute; K = exp(-i/2 (t0 XX + t1 YY + t2 ZZ)) couples only |00>,|11> (A on the diagonal, B off it:
    rotation by (t0 - t1)/2, phase e^{-i t2/2}) and |01>,|10> (C, D: rotation by (t0 + t1)/2, phase e^{+i t2/2});
    RY(t3) on qubit a is cos I + sin J, so the block is a fixed linear map of (cos, sin) x (A, B, C, D).
    ``block_matrices`` builds the same matrix as the product of the four gates."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    t = t.to(real)
    d, u, z = (t[..., 0] - t[..., 1]) / 2, (t[..., 0] + t[..., 1]) / 2, t[..., 2] / 2
    cz, sz, cd, sd, cu, su = torch.cos(z), torch.sin(z), torch.cos(d), torch.sin(d), torch.cos(u), torch.sin(u)
    abcd = torch.stack(
        [
            torch.stack([cz * cd, -sz * sd, cz * cu, sz * su], -1),  # real parts of A, B, C, D
            torch.stack([-sz * cd, -cz * sd, sz * cu, -cz * su], -1),
        ],
        -2,
    )  # (..., 2, 4)
    ry = torch.stack([torch.cos(t[..., 3] / 2), torch.sin(t[..., 3] / 2)], -1)  # (..., 2)
    coeff = (ry[..., None, :, None] * abcd[..., :, None, :]).flatten(-2)  # (..., 2 [re, im], 8)
    flat = coeff @ _block_basis(real, t.device)  # (..., 2, 16)
    return torch.view_as_complex(flat.transpose(-1, -2).contiguous()).unflatten(-1, (4, 4)).to(dtype)


@lru_cache(maxsize=8)
def _block_basis(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(8, 16): row (r, q) is the flattened J^r M_q, M_q the 0/1 pattern of A, B, C, D in K and J = RY's sine part."""
    k = torch.zeros(4, 4, 4, dtype=dtype)
    for q, entries in enumerate([((0, 0), (3, 3)), ((0, 3), (3, 0)), ((1, 1), (2, 2)), ((1, 2), (2, 1))]):
        for i, j in entries:
            k[q, i, j] = 1
    j = torch.tensor([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, -1], [0, 0, 1, 0]], dtype=dtype)
    return torch.cat([k, j @ k]).reshape(8, 16).to(device)


def _pauli_pair(name: str, dtype: torch.dtype) -> torch.Tensor:
    paulis = {
        "x": torch.tensor([[0, 1], [1, 0]], dtype=dtype),
        "y": torch.tensor([[0, -1j], [1j, 0]], dtype=dtype),
        "z": torch.tensor([[1, 0], [0, -1]], dtype=dtype),
    }
    p = paulis[name]
    return torch.kron(p, p)


def block_matrices(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(..., 4) angles -> (..., 4, 4) matrices RY_a(t3) RZZ(t2) RYY(t1) RXX(t0), as the product of the gates."""
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


# --- the schedule of fused gates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    first_qubit: int  # the gate acts on qubits first_qubit .. first_qubit + width - 1
    width: int
    blocks: tuple[tuple[int, int], ...]  # (index in brick_wall order, its first qubit - first_qubit), in circuit order


@dataclass(frozen=True)
class Schedule:
    n_qubits: int
    steps: tuple[Step, ...]
    n_blocks: int  # of the whole circuit (the angle vector covers all of them)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(sorted({st.width for st in self.steps}))

    @property
    def slots(self) -> tuple[tuple[int, int], ...]:
        """Per step (its width, its index among the steps of that width): gates come as one tensor per width."""
        seen: dict[int, int] = {}
        out = []
        for st in self.steps:
            out.append((st.width, seen.get(st.width, 0)))
            seen[st.width] = out[-1][1] + 1
        return tuple(out)


MAX_WIDTH = 4  # widest fused gate (16x16): a 2x2 tile of the brick wall holds 4 blocks in 4 qubits
PASS_COST = 8  # a pass over V costs about as much as 8 multiply-adds per entry (memory traffic), for choosing tilings


def aux_only_ends(blocks: list[Block], n_qubits: int, n_aux: int) -> set[int]:
    """Indices of the blocks in the maximal leading, then trailing, part of the circuit acting only on qubits below
    ``n_aux``: V = A_end V' A_start with A_* unitaries on aux qubits, so they drop out of the aux-traced DSM."""
    dropped: set[int] = set()
    for order in (range(len(blocks)), range(len(blocks) - 1, -1, -1)):
        clean = [q < n_aux for q in range(n_qubits)]  # no kept gate on q yet (from this end)
        for i in order:
            if i in dropped:
                continue
            a = blocks[i].first_qubit
            if clean[a] and clean[a + 1]:
                dropped.add(i)
            else:
                clean[a] = clean[a + 1] = False
    return dropped


def _window(blocks: list[Block], group, n_qubits: int) -> tuple[int, int]:
    """(first qubit, width) of the gate of a group: its qubits, widened to 3 when k >= 3 (4x4 matmuls are slow)."""
    lo = min(blocks[i].first_qubit for i in group)
    width = max(blocks[i].first_qubit for i in group) + 2 - lo
    if width < min(3, n_qubits):
        width = min(3, n_qubits)
        lo = min(lo, n_qubits - width)
    return lo, width


def _order(groups: list[list[int]], preds: list[list[int]]) -> list[int] | None:
    """A topological order of the groups under the blocks' dependencies, or None if they depend on each other."""
    owner = {i: g for g, members in enumerate(groups) for i in members}
    deps = [{owner[p] for i in members for p in preds[i]} - {g} for g, members in enumerate(groups)]
    order, done = [], set()
    while len(order) < len(groups):
        ready = [g for g in range(len(groups)) if g not in done and deps[g] <= done]
        if not ready:
            return None
        ready.sort(key=lambda g: min(groups[g]))
        order.append(ready[0])
        done.add(ready[0])
    return order


def _tiling(blocks: list[Block], kept: list[int], n_qubits: int, offset: tuple[int, int], preds) -> list[list[int]]:
    """2x2 tiles of the brick wall in light-cone coordinates, then greedy merges that lower the cost.

    Block (a, sublayer t = 2 layer + a mod 2) sits at u = (a + t) / 2, v = (t - a) / 2; it depends on the blocks at
    (u - 1, v) and (u, v - 1) (its predecessors on qubits a + 1 and a). A 2x2 tile in (u, v) is a diamond: one
    block, the two beside it one step later, the one above them: 4 blocks on 4 qubits, one 16x16 gate (as many
    multiply-adds as the four 4x4 gates, a quarter of the passes). Tiles cut by the chain's ends are smaller and
    are merged into a neighbour when that costs no extra multiply-adds."""
    tiles: dict = {}
    for i in kept:
        a, t = blocks[i].first_qubit, 2 * blocks[i].layer + blocks[i].first_qubit % 2
        tiles.setdefault((((a + t) // 2 + offset[0]) // 2, ((t - a) // 2 + offset[1]) // 2), []).append(i)
    groups = [sorted(g) for g in tiles.values()]

    def cost(group):
        return 2 ** _window(blocks, group, n_qubits)[1]

    merged = True
    while merged:
        merged = False
        order = _order(groups, preds)
        owner = {i: g for g, members in enumerate(groups) for i in members}
        for g in order:
            for h in sorted({owner[p] for i in groups[g] for p in preds[i]} - {g}):
                union = sorted(groups[g] + groups[h])
                if _window(blocks, union, n_qubits)[1] > MAX_WIDTH or cost(union) > cost(groups[g]) + cost(groups[h]):
                    continue
                trial = [m for j, m in enumerate(groups) if j not in (g, h)] + [union]
                if _order(trial, preds) is not None:
                    groups, merged = trial, True
                    break
            if merged:
                break
    return [groups[g] for g in _order(groups, preds)]


@lru_cache(maxsize=64)
def schedule(n_qubits: int, layers: int, n_aux: int = 0) -> Schedule:
    """The fused gates of the circuit, in an order its dependencies allow; ``n_aux`` > 0 also drops the aux-only
    ends (for the DSM only). Of the four ways to lay the 2x2 tiles, the cheapest (multiply-adds + passes)."""
    blocks = brick_wall(n_qubits, layers)
    dropped = aux_only_ends(blocks, n_qubits, n_aux) if n_aux > 0 else set()
    kept = [i for i in range(len(blocks)) if i not in dropped]
    last: dict[int, int] = {}
    preds: list[list[int]] = []
    for i, b in enumerate(blocks):
        preds.append(
            [last[q] for q in (b.first_qubit, b.first_qubit + 1) if last.get(q) is not None and last[q] not in dropped]
            if i not in dropped
            else []
        )
        if i not in dropped:
            last[b.first_qubit] = last[b.first_qubit + 1] = i
    best = None
    for offset in ((0, 0), (0, 1), (1, 0), (1, 1)):
        groups = _tiling(blocks, kept, n_qubits, offset, preds)
        total = sum(2 ** _window(blocks, g, n_qubits)[1] + PASS_COST for g in groups)
        if best is None or total < best[0]:
            best = (total, groups)
    steps = []
    for group in best[1] if kept else []:
        lo, width = _window(blocks, group, n_qubits)
        steps.append(Step(lo, width, tuple((i, blocks[i].first_qubit - lo) for i in group)))
    return Schedule(n_qubits, tuple(steps), len(blocks))


@lru_cache(maxsize=64)
def _classes(sched: Schedule) -> tuple[list, tuple[int, ...]]:
    """Steps of the same width and block positions, built together: [(width, positions, step ids)], and the block
    ids of all classes' steps in that order (class by class, step by step, in circuit order within a step)."""
    classes: dict = {}
    for s, st in enumerate(sched.steps):
        classes.setdefault((st.width, tuple(p for _, p in st.blocks)), []).append(s)
    order = tuple(i for ids in classes.values() for s in ids for i, _ in sched.steps[s].blocks)
    return [(w, pos, ids) for (w, pos), ids in classes.items()], order


def _embedded(g: torch.Tensor, position: int, width: int) -> torch.Tensor:
    """(..., 4, 4) block on local qubits (p, p + 1) -> (..., 2^w, 2^w) I (x) g (x) I, written into zeros (its
    backward is a strided read, unlike a broadcast product with identities)."""
    high, low, size = 2 ** (width - position - 2), 2**position, 2**width
    out = g.new_zeros(*g.shape[:-2], size, size)
    view = out.view(*g.shape[:-2], high, 4, low, high, 4, low)
    n = g.dim() - 2
    view.diagonal(0, n, n + 3).diagonal(0, n + 1, n + 3).copy_(g[..., None, None])  # (..., 4, 4, high, low)
    return out


def step_gates(angles: torch.Tensor, sched: Schedule, dtype: torch.dtype) -> list[torch.Tensor]:
    """(batch, n_params) angles -> per width in ``sched.widths`` a (steps of that width, batch, 2^w, 2^w) tensor of
    fused gates, differentiable (autograd) in the angles. A step's gate is its first block embedded in the window,
    then each further block applied as a 4x4 matmul on a view (block at local qubits p, p + 1)."""
    batch = angles.shape[0]
    classes, order = _classes(sched)
    index = torch.tensor([4 * i + j for i in order for j in range(4)], device=angles.device)
    g = block_gates(angles[:, index].view(batch, len(order), 4), dtype)  # (batch, blocks in class order, 4, 4)
    parts: dict[int, list] = {w: [] for w in sched.widths}
    slot_of: dict[int, list] = {w: [] for w in sched.widths}
    slots, offset = sched.slots, 0
    for width, positions, ids in classes:
        size, count = 2**width, len(ids) * len(positions)
        chosen = g[:, offset : offset + count].view(batch, len(ids), len(positions), 4, 4).transpose(0, 1)
        offset += count
        x = _embedded(chosen[:, :, 0], positions[0], width)  # (steps, batch, 2^w, 2^w)
        for j, p in enumerate(positions[1:], 1):
            high, low = 2 ** (width - p - 2), 2**p
            x = (chosen[:, :, j, None] @ x.reshape(len(ids), batch, high, 4, low * size)).reshape(x.shape)
        parts[width].append(x)
        slot_of[width] += [slots[s][1] for s in ids]
    out = []
    for w in sched.widths:
        gates = torch.cat(parts[w])
        if slot_of[w] != list(range(len(slot_of[w]))):
            gates = gates[torch.argsort(torch.tensor(slot_of[w], device=gates.device))]
        out.append(gates)
    return out


# --- buffers --------------------------------------------------------------------------------------------------
# Fresh multi-megabyte allocations page-fault on first touch, and on the machines measured here that cost more than
# the matmuls (up to ~10 ms per 2 MB): the ping-pong buffers are reused between calls (``_scratch``), and the
# unitaries kept from a forward for its backward come from, and go back to, a small pool (``_borrow``/``_give_back``).
_SCRATCH: dict = {}
_POOL: dict = {}
POOL_MAX_BUFFERS = 8


def _scratch(tag: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    numel = math.prod(shape)
    key = (tag, dtype, device)
    buf = _SCRATCH.get(key)
    if buf is None or buf.numel() < numel:
        buf = _SCRATCH[key] = torch.empty(numel, dtype=dtype, device=device)
    return buf[:numel].view(shape)


def _borrow(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    free = _POOL.get((shape, dtype, device))
    return free.pop() if free else torch.empty(shape, dtype=dtype, device=device)


def _give_back(t: torch.Tensor) -> None:
    free = _POOL.setdefault((tuple(t.shape), t.dtype, t.device), [])
    if len(free) < POOL_MAX_BUFFERS:
        free.append(t)


def release_buffers() -> None:
    """Drop the reused buffers (they are otherwise kept for the life of the process)."""
    _SCRATCH.clear()
    _POOL.clear()


# --- applying the gates ----------------------------------------------------------------------------------------
def _views(sched: Schedule, cols: int):
    """Per step (rows above the gate, columns times rows below it): V (batch, 2^k, cols) viewed as
    (batch, above, 2^w, below) puts the gate's qubits on dim 2 with no copy."""
    k = sched.n_qubits
    return [(2 ** (k - st.first_qubit - st.width), 2**st.first_qubit * cols) for st in sched.steps]


def _first_gate(gate: torch.Tensor, above: int, below_rows: int, out: torch.Tensor) -> None:
    """out = the first gate applied to the identity (I_above (x) F (x) I_below), written directly."""
    batch, size = gate.shape[0], gate.shape[-1]
    out.zero_()
    diag = out.view(batch, above, size, below_rows, above, size, below_rows).diagonal(0, 1, 4).diagonal(0, 2, 4)
    diag.copy_(gate[:, :, :, None, None])


def _batched(gates: list[torch.Tensor], sched: Schedule, views) -> list[torch.Tensor]:
    """Per step its gate repeated over the rows above it, (*batch * above, 2^w, 2^w), for bmm (``gates`` per width
    (steps, *batch, 2^w, 2^w)): one copy per (width, above) for all those steps, not one per step."""
    out: list = [None] * len(sched.steps)
    slots = sched.slots
    for w, tensor in zip(sched.widths, gates):
        size = 2**w
        flat = tensor.reshape(tensor.shape[0], -1, size, size)
        for above in {views[s][0] for s in range(len(slots)) if slots[s][0] == w}:
            ids = [s for s in range(len(slots)) if slots[s][0] == w and views[s][0] == above]
            sel = flat[[slots[s][1] for s in ids]]
            if above > 1:
                sel = (
                    sel[:, :, None]
                    .expand(len(ids), flat.shape[1], above, size, size)
                    .reshape(len(ids), flat.shape[1] * above, size, size)
                )
            for j, s in enumerate(ids):
                out[s] = sel[j]
    return out


def _gate(gates: list[torch.Tensor], sched: Schedule, s: int) -> torch.Tensor:
    w, i = sched.slots[s]
    return gates[sched.widths.index(w)][i]


def run_circuit(gates: list[torch.Tensor], sched: Schedule, out: torch.Tensor | None = None) -> torch.Tensor:
    """Fused gates (``step_gates``, at least one step) -> (batch, 2^k, 2^k) V = F_S ... F_1, written into ``out``."""
    dim, steps = 2**sched.n_qubits, len(sched.steps)
    batch, dtype, device = gates[0].shape[1], gates[0].dtype, gates[0].device
    shape = (batch, dim, dim)
    if out is None:
        out = torch.empty(shape, dtype=dtype, device=device)
    spare = [_scratch(tag, shape, dtype, device) for tag in ("run0", "run1")]
    views = _views(sched, dim)
    dest = [out if s == steps - 1 else spare[(steps - 1 - s) % 2] for s in range(steps)]
    above, below = views[0]
    _first_gate(_gate(gates, sched, 0), above, below // dim, dest[0])
    batched = _batched(gates, sched, views)
    for s in range(1, steps):
        above, below = views[s]
        size = 2 ** sched.steps[s].width
        torch.bmm(
            batched[s], dest[s - 1].view(batch * above, size, below), out=dest[s].view(batch * above, size, below)
        )
    return out


def _adjoint(
    gates: list[torch.Tensor],
    v: torch.Tensor,
    grad_p: torch.Tensor,
    sched: Schedule,
    q_d: int,
    q_a: int,
    grads: list[torch.Tensor],
) -> None:
    """dL/dF (into ``grads``) for every step from V and dL/dP. dL/dV = 2 V * dL/d|V|^2 (torch's convention
    dL/dRe + i dL/dIm), with dL/d|V_{(j,b),(i,a)}|^2 = dL/dP_ij / m. The gates are then undone one by one on the
    stack [conj(X), G] (one bmm for both: conj(X) is undone by F^T, G by F^H), contracting G_k with X_(k-1) over
    the qubits outside each gate (keeping conj(X) makes that a plain G @ conj(X)^T, no conjugate-transpose copy)."""
    batch, dim = v.shape[0], v.shape[-1]
    n, m = 2**q_d, 2**q_a
    pair = _scratch("adj0", (2, batch, dim, dim), v.dtype, v.device)
    spare = _scratch("adj1", (2, batch, dim, dim), v.dtype, v.device)
    torch.conj_physical(v, out=pair[0])
    weight = (grad_p.transpose(-1, -2).to(v.real.dtype) * (2 / m))[:, :, None, :, None]
    torch.mul(v.view(batch, n, m, n, m), weight, out=pair[1].view(batch, n, m, n, m))
    views = _views(sched, dim)
    undo = _batched([torch.stack([g.transpose(-1, -2), g.mH], 1) for g in gates], sched, views)
    for s in range(len(sched.steps) - 1, -1, -1):
        above, below = views[s]
        size = 2 ** sched.steps[s].width
        w, i = sched.slots[s]
        out = grads[sched.widths.index(w)][i]
        g_k = pair[1].view(batch * above, size, below)
        if s == 0:  # X_0 = I: dL/dF_1 = Tr_rest(G_1)
            trace = pair[1].view(batch, above, size, below // dim, above, size, below // dim)
            out.copy_(trace.diagonal(0, 1, 4).diagonal(0, 2, 4).sum((-1, -2)))
            break
        x_conj = pair[0].view(batch * above, size, below)
        contraction = torch.bmm(g_k, x_conj.transpose(1, 2)).view(batch, above, size, size).sum(1)
        torch.matmul(contraction, _gate(gates, sched, s), out=out)  # Tr_rest(G_k X_k^H) F_k: X_(k-1)^H = X_k^H F_k
        torch.bmm(undo[s], pair.view(2 * batch * above, size, below), out=spare.view(2 * batch * above, size, below))
        pair, spare = spare, pair


def block_sum(v: torch.Tensor, n_data_qubits: int, n_aux_qubits: int) -> torch.Tensor:
    """P_ij = (1/m) sum_{a,b} |V_{(j,b),(i,a)}|^2, data index = high bits: exactly doubly stochastic for any V."""
    n, m = 2**n_data_qubits, 2**n_aux_qubits
    w = (v.real.square() + v.imag.square()).reshape(-1, n, m, n, m)  # [batch, j, b, i, a]
    return w.sum(dim=(2, 4)).transpose(-1, -2) / m


def project_doubly_stochastic(p: torch.Tensor) -> torch.Tensor:
    """The nearest (Frobenius) matrix with unit row and column sums, P - r/n - c/n + sum(r)/n^2 (r, c the row and
    column excesses), in float64, entries clamped at 0, back in P's dtype.

    A complex64 simulation's P sums to 1 only to a few 1e-6 (rounding through the paper's 23 gates and the read-out);
    this one linear step (no Sinkhorn loop) puts the sums back at float32 rounding and never moves P away from the
    exact (doubly stochastic, nonnegative) P: the step and the clamp are projections onto convex sets holding it."""
    q = p.double()
    n = q.shape[-1]
    rows, cols = q.sum(-1, keepdim=True) - 1, q.sum(-2, keepdim=True) - 1
    q = q - rows / n - cols / n + rows.sum(-2, keepdim=True) / n**2
    return q.clamp_min(0).to(p.dtype)


def _block_sum_into(v: torch.Tensor, q_d: int, q_a: int, out: torch.Tensor) -> None:
    """``block_sum`` without autograd, through a reused buffer."""
    n, m = 2**q_d, 2**q_a
    w = _scratch("abs2", (*v.shape, 2), v.real.dtype, v.device)
    torch.square(torch.view_as_real(v), out=w)  # (a strided v.real * v.real is several times slower)
    torch.sum(w.view(-1, n, m, n, 2 * m), dim=(2, 4), out=out.transpose(-1, -2))
    out.div_(m)


def _forward(gates, sched, q_d, q_a, chunk, dtype, batch, keep=None) -> torch.Tensor:
    dim, n = 2**sched.n_qubits, 2**q_d
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    device = gates[0].device  # a circuit without steps (V = I) never gets here: dsm returns the identity
    p = torch.empty(batch, n, n, dtype=real, device=device)
    for start in range(0, batch, chunk):
        end = min(start + chunk, batch)
        out = keep[start:end] if keep is not None else _scratch("v", (end - start, dim, dim), dtype, device)
        run_circuit([g[:, start:end] for g in gates], sched, out)
        _block_sum_into(out, q_d, q_a, p[start:end])
    return p


class _CircuitDSM(torch.autograd.Function):
    """Fused gates -> DSMs, with the adjoint backward (memory: V per matrix, plus per-chunk buffers)."""

    @staticmethod
    def forward(ctx, sched, q_d, q_a, chunk, *gates):
        batch, dim = gates[0].shape[1], 2**sched.n_qubits
        v = _borrow((batch, dim, dim), gates[0].dtype, gates[0].device)
        ctx.sched, ctx.sizes, ctx.v = sched, (q_d, q_a, chunk), v
        ctx.save_for_backward(*gates)
        return _forward(gates, sched, q_d, q_a, chunk, gates[0].dtype, batch, keep=v)

    @staticmethod
    def backward(ctx, grad_p):
        gates = ctx.saved_tensors
        sched, (q_d, q_a, chunk) = ctx.sched, ctx.sizes
        batch, dim = gates[0].shape[1], 2**sched.n_qubits
        v, ctx.v = ctx.v, None
        if v is None:  # a second backward through the same graph (retain_graph): V went back to the pool
            v = _borrow((batch, dim, dim), gates[0].dtype, gates[0].device)
            _forward(gates, sched, q_d, q_a, chunk, gates[0].dtype, batch, keep=v)
        grads = [torch.empty_like(g) for g in gates]
        for start in range(0, batch, chunk):
            end = min(start + chunk, batch)
            _adjoint(
                [g[:, start:end] for g in gates],
                v[start:end],
                grad_p[start:end],
                sched,
                q_d,
                q_a,
                [g[:, start:end] for g in grads],
            )
        _give_back(v)
        return (None, None, None, None, *grads)


CPU_CHUNK_BYTES = 2**20  # 8 unitaries at k = 7 in complex64: the fastest chunk measured on CPU (2, 4, 16, 32 slower)


def dsm(
    angles: torch.Tensor,
    n_data_qubits: int,
    n_aux_qubits: int,
    layers: int,
    dtype: torch.dtype = torch.complex64,
    chunk_bytes: int = CPU_CHUNK_BYTES,
) -> torch.Tensor:
    """(batch, n_params) -> (batch, 2^q_d, 2^q_d) DSMs, simulated ``chunk_bytes`` of unitaries at a time;
    differentiable in the angles (adjoint) when they require grad."""
    sched = schedule(n_data_qubits + n_aux_qubits, layers, n_aux_qubits)
    per_matrix = 4**sched.n_qubits * torch.empty((), dtype=dtype).element_size()
    chunk = max(1, chunk_bytes // per_matrix)
    batch = angles.shape[0]
    if batch == 0 or not sched.steps:
        n = 2**n_data_qubits
        p = torch.eye(n, dtype=torch.float64 if dtype == torch.complex128 else torch.float32, device=angles.device)
        return p.expand(batch, n, n).clone() + 0 * angles.sum()  # (keeps a graph to the angles)
    if not (torch.is_grad_enabled() and angles.requires_grad):
        with torch.no_grad():
            return _forward(step_gates(angles, sched, dtype), sched, n_data_qubits, n_aux_qubits, chunk, dtype, batch)
    # the gates' construction is recomputed in the backward (small ops) rather than kept: the graph then holds the
    # gates themselves, not their intermediates
    gates = checkpoint(step_gates, angles, sched, dtype, use_reentrant=False)
    return _CircuitDSM.apply(sched, n_data_qubits, n_aux_qubits, chunk, *gates)


def unitary(angles: torch.Tensor, n_qubits: int, layers: int, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """(batch, n_params) -> (batch, 2^k, 2^k) unitaries of the brick-wall circuit (no gradient)."""
    sched = schedule(n_qubits, layers)
    with torch.no_grad():
        return run_circuit(step_gates(angles, sched, dtype), sched)


# --- the previous implementation, kept as the reference --------------------------------------------------------
def fuse_pairs(blocks: list[Block]) -> list[list[Block]]:
    """Group each brick-wall sublayer's blocks two by two into 16x16 gates on 4 adjacent qubits."""
    groups: list[list[Block]] = []
    for block in blocks:
        last = groups[-1] if groups else None
        if last and len(last) == 1 and last[0].layer == block.layer and block.first_qubit == last[0].first_qubit + 2:
            last.append(block)
        else:
            groups.append([block])
    return groups


def apply_blocks(v: torch.Tensor, blocks: list[Block], angles: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Left-multiply V (batch, 2^k, cols) by the blocks in order; angles (batch, n_params)."""
    batch, dim, cols = v.shape
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


def unitary_reference(
    angles: torch.Tensor, n_qubits: int, layers: int, dtype: torch.dtype = torch.complex64
) -> torch.Tensor:
    """The previous simulator: autograd through every gate (memory: one unitary per gate)."""
    dim = 2**n_qubits
    v = torch.eye(dim, dtype=dtype, device=angles.device).expand(angles.shape[0], dim, dim)
    return apply_blocks(v, brick_wall(n_qubits, layers), angles, n_qubits)
