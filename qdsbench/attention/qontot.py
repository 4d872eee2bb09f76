"""QontOT attention (QDSFormer): a parametrised quantum circuit maps the score matrix to a doubly stochastic one.

Angles are theta * vec(S) (vec tiled to theta's length); the circuit V on k = q_d + q_a qubits is simulated as a
unitary in torch and read out as P_ij = (1/2^q_a) sum_{a,b} |V_{(j,b),(i,a)}|^2, the aux-marginal of the Bell
circuit's measurement rescaled by n = 2^q_d (checked against qiskit Statevector in the tests), which is exactly
doubly stochastic for any V. ``grad``: none (static circuit, no gradient into Q/K; the probable paper setting),
scores (gradient into S), full (also into theta, a trainable parameter); gradients use adjoint differentiation
through the circuit (``simulator.dsm``: memory of one unitary per matrix, not one per gate). ``shots`` > 0
estimates P with Aer. ``max_chunk_bytes`` caps the unitaries simulated at once; on CPU the simulator uses at most
``simulator.CPU_CHUNK_BYTES`` (1 MB: smaller chunks stay in cache and were faster, see results/bench/qontot.md).
``dtype``: complex64 (default; about half the time of complex128, P within ~2e-6 of it, and its row and column
sums, off by a few 1e-6, are projected back to 1: ``simulator.project_doubly_stochastic``) or complex128 (the
reference the qiskit tests compare exactly, left as simulated).

Masks and padding (N < 2^q_d with ``pad``): masked scores enter the angles as 0, exactly like the padded ones, so
a masked key changes nothing; inject=standardized then takes its mean and (unbiased) std over the kept scores only,
and a single score has std 1 (no scaling). The crop to the N tokens and the masked entries set to 0 break double
stochasticity, so each row is renormalised over its kept keys (row-stochastic); a row whose kept keys all got
weight 0 (the circuit put its mass on masked or padded keys; 0 meaning below the simulation's rounding: 1e-6 per
key in complex64, 1e-12 in complex128) becomes uniform over its kept keys, the limit of renormalising P + eps as
eps -> 0; a row that keeps no key stays 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from qdsbench.attention.base import MatrixAttention
from qdsbench.attention.registry import register
from qdsbench.quantum import ansatz as ansatz_layout
from qdsbench.quantum import simulator

GRAD_MODES = ("none", "scores", "full")
VEC_ORDERS = ("row", "col")
COMPLEX_DTYPES = {"complex64": torch.complex64, "complex128": torch.complex128}
INJECTIONS = ("scaled", "raw", "standardized")


@register("qontot")
class QontOTAttention(MatrixAttention):
    supports_causal = False

    def __init__(
        self,
        scale: float | None = None,
        causal: bool = False,
        n_data_qubits: int = 3,
        n_aux_qubits: int | None = 4,
        layers: int = 16,
        ansatz: str = "parted",
        grad: str = "none",
        theta_seed: int = 0,
        vec_order: str = "row",
        pad: bool = False,
        dtype: str = "complex64",
        shots: int = 0,
        depolarizing: float = 0.0,
        max_chunk_bytes: int = 4 * 2**20,
        inject: str = "scaled",
        theta_range: float = 1.0,
    ):
        if inject not in INJECTIONS:
            raise ValueError(f"qontot inject '{inject}' is not valid; valid choices: {', '.join(INJECTIONS)}")
        if inject == "raw" and scale is not None:
            raise ValueError(f"qontot inject=raw uses M = QK^T (scale 1); it cannot be combined with scale={scale}")
        # scaled: M = QK^T / sqrt(d) (scale as given); raw: M = QK^T; standardized: (QK^T - mean) / std per matrix.
        super().__init__(scale=1.0 if inject == "raw" else scale, causal=causal)
        if not theta_range > 0:
            raise ValueError(f"qontot theta_range={theta_range} must be > 0 (theta ~ U(-theta_range, theta_range))")
        self.inject, self.theta_range = inject, theta_range
        for label, value, choices in (
            ("ansatz", ansatz, ansatz_layout.ANSATZE),
            ("grad", grad, GRAD_MODES),
            ("vec_order", vec_order, VEC_ORDERS),
            ("dtype", dtype, COMPLEX_DTYPES),
        ):
            if value not in choices:
                raise ValueError(f"qontot {label} '{value}' is not valid; valid choices: {', '.join(choices)}")
        if n_data_qubits < 1 or layers < 1:
            raise ValueError(f"qontot needs n_data_qubits >= 1 and layers >= 1, got {n_data_qubits}, {layers}")
        self.n_data_qubits = n_data_qubits
        self.n_aux_qubits = n_data_qubits + 1 if n_aux_qubits is None else n_aux_qubits
        if self.n_aux_qubits < 0:
            raise ValueError(f"qontot n_aux_qubits={n_aux_qubits} must be >= 0")
        self.n_qubits = self.n_data_qubits + self.n_aux_qubits
        self.layers, self.ansatz, self.grad, self.vec_order, self.pad = layers, ansatz, grad, vec_order, pad
        self.complex_dtype = COMPLEX_DTYPES[dtype]
        self.shots, self.depolarizing, self.max_chunk_bytes = shots, depolarizing, max_chunk_bytes
        self.theta_seed = theta_seed
        g = torch.Generator().manual_seed(theta_seed)
        theta = (torch.rand(self.n_params, generator=g, dtype=torch.float64) * 2 - 1) * theta_range
        if grad == "full":
            self.theta = nn.Parameter(theta.float())
        else:
            self.register_buffer("theta", theta.float())

    @property
    def n_params(self) -> int:
        return ansatz_layout.n_params(self.n_qubits, self.layers)

    @property
    def size(self) -> int:
        return 2**self.n_data_qubits

    # --- the circuit -----------------------------------------------------------------------------------------
    def angles(self, scores: torch.Tensor) -> torch.Tensor:
        """(..., n, n) scores -> (..., n_params) circuit angles theta * tile(vec(S))."""
        flat = scores.flatten(-2) if self.vec_order == "row" else scores.transpose(-1, -2).flatten(-2)
        reps = math.ceil(self.n_params / flat.shape[-1])
        tiled = flat.repeat(*([1] * (flat.dim() - 1)), reps)[..., : self.n_params]
        return self.theta.to(flat.dtype) * tiled

    def circuit_unitary(self, angles: torch.Tensor) -> torch.Tensor:
        """(..., n_params) -> (..., 2^k, 2^k) complex unitaries, qiskit qubit order (no gradient; for gradients
        through V use ``simulator.unitary_reference``)."""
        shape = angles.shape[:-1]
        v = simulator.unitary(angles.reshape(-1, self.n_params), self.n_qubits, self.layers, self.complex_dtype)
        return v.reshape(*shape, 2**self.n_qubits, 2**self.n_qubits)

    def qiskit_circuit(self, angles, bell: bool = False):
        """The same circuit in qiskit (k qubits whose Operator is V, or the 2k-qubit Bell circuit)."""
        from qdsbench.quantum import qiskit_circuits

        values = angles.tolist() if hasattr(angles, "tolist") else list(angles)  # numbers or qiskit Parameters
        if bell:
            return qiskit_circuits.bell_circuit(values, self.n_qubits, self.layers, self.ansatz)
        return qiskit_circuits.ansatz_circuit(values, self.n_qubits, self.layers)

    def dsm_from_angles(self, angles: torch.Tensor) -> torch.Tensor:
        """(M, n_params) -> (M, n, n); differentiable in the angles (adjoint) when they require grad."""
        chunk = self.max_chunk_bytes
        if angles.device.type == "cpu":
            chunk = min(chunk, simulator.CPU_CHUNK_BYTES)
        p = simulator.dsm(
            angles, self.n_data_qubits, self.n_aux_qubits, self.layers, self.complex_dtype, chunk_bytes=chunk
        )
        # complex64 sums to 1 only to a few 1e-6 (rounding); complex128, the reference, is left as simulated
        return simulator.project_doubly_stochastic(p) if self.complex_dtype == torch.complex64 else p

    def sampled_dsm(self, angles: torch.Tensor) -> torch.Tensor:
        from qdsbench.quantum.sampling import sample_dsm

        estimate = sample_dsm(
            angles.detach().double().cpu().numpy(),
            self.n_data_qubits,
            self.n_aux_qubits,
            self.layers,
            self.ansatz,
            self.shots,
            seed=self.theta_seed,
            depolarizing=self.depolarizing,
        )
        return torch.as_tensor(np.asarray(estimate), dtype=angles.dtype, device=angles.device)

    # --- the normaliser --------------------------------------------------------------------------------------
    def _padded(self, scores: torch.Tensor) -> torch.Tensor:
        n_tokens, n = scores.shape[-1], self.size
        if scores.shape[-2] != n_tokens:
            raise ValueError(f"qontot needs square score matrices, got {tuple(scores.shape[-2:])}")
        if n_tokens == n:
            return scores
        if n_tokens > n or not self.pad:
            raise ValueError(
                f"qontot: sequence length N={n_tokens} does not match 2^n_data_qubits={n}; "
                f"use n_data_qubits={max(1, math.ceil(math.log2(n_tokens)))} and pad=true when N is not a power of two"
            )
        return nn.functional.pad(scores, (0, n - n_tokens, 0, n - n_tokens))

    def normalize(self, scores, mask=None):
        n_tokens = scores.shape[-1]
        out_dtype = scores.dtype
        keep = None if mask is None else mask.expand_as(scores)
        if self.inject == "standardized":  # per matrix, over its N x N scores (before any padding)
            if keep is None:
                mean = scores.mean(dim=(-2, -1), keepdim=True)
                # one score: no spread to divide by (torch's unbiased std is NaN): std 1, no scaling
                std = scores.std(dim=(-2, -1), keepdim=True) if n_tokens > 1 else torch.ones_like(mean)
            else:  # over the kept scores only (unbiased; std 1 when a matrix keeps a single score)
                weight = keep.to(scores.dtype)
                count = weight.sum(dim=(-2, -1), keepdim=True)
                mean = (scores * weight).sum(dim=(-2, -1), keepdim=True) / count.clamp_min(1)
                var = (((scores - mean) * weight) ** 2).sum(dim=(-2, -1), keepdim=True) / (count - 1).clamp_min(1)
                std = torch.where(count > 1, var, 1.0).sqrt()
            scores = (scores - mean) / std.clamp_min(1e-6)
        if keep is not None:  # masked scores must not reach the angles: they enter as 0, like padding
            scores = scores.masked_fill(~keep, 0.0)
        padded = self._padded(scores)
        batch_shape = padded.shape[:-2]
        real = torch.float64 if self.complex_dtype == torch.complex128 else torch.float32
        flat = padded.reshape(-1, self.size, self.size).to(real)
        if self.grad == "none" or self.shots > 0:
            with torch.no_grad():
                angles = self.angles(flat)
                p = self.sampled_dsm(angles) if self.shots > 0 else self.dsm_from_angles(angles)
        else:
            p = self.dsm_from_angles(self.angles(flat))
        p = p.reshape(*batch_shape, self.size, self.size)
        if n_tokens != self.size or mask is not None:
            # Padding or masking breaks double stochasticity of the crop: keep it row-stochastic (documented).
            p = p[..., :n_tokens, :n_tokens]
            if keep is not None:
                p = p.masked_fill(~keep, 0.0)
            total = p.sum(-1, keepdim=True)
            # a row left with no mass on its kept keys: uniform over them (the limit of P + eps before
            # renormalising); a row that keeps no key stays zero. "No mass" is below the simulation's rounding:
            # complex64 moves P's exact zeros by ~1e-8, which renormalising would turn into arbitrary weights
            has_mass = total > self.size * (1e-6 if self.complex_dtype == torch.complex64 else 1e-12)
            p = p / torch.where(has_mass, total, 1.0)
            kept = torch.ones_like(p) if keep is None else keep.to(p.dtype)
            uniform = kept / kept.sum(-1, keepdim=True).clamp_min(1)
            p = torch.where(has_mass, p, uniform)
        return p.to(out_dtype)
