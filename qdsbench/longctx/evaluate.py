"""Zero-shot long-context evaluation of a trained decoder, with the Delta paper's protocol.

For each (task, length) batch: prefill the prompt with the method's backend in every layer (full = causal SDPA),
then greedy-decode the answer with dense attention over the KV cache, and score it with RULER's metric. Alongside:
the answer-token NLL under teacher forcing (the paper's "LongPPL" analogue), and per layer, for the last ``last_k``
prompt queries, the cosine similarity of the attention outputs to the full-attention run and the Spearman rank
correlation of dense attention rows built from the method's own q, k against the full run's (paper Figs. 3, 9).
Spearman uses the keys every one of the last ``last_k`` queries sees (0 .. N - last_k), so no masked ties enter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from qdsbench.analysis.capture import Capture
from qdsbench.longctx.ruler import METRICS, Sample
from qdsbench.models.backend_attention import set_backend
from qdsbench.models.decoder import DecoderLM

FULL = {"name": "sdpa"}
META_KEYS = ("matched_to",)  # bookkeeping carried in a method dict, not backend options


@dataclass
class BatchResult:
    task: str
    length: int
    scores: list[float]
    answer_nll: float
    answer_tokens: int
    cosine: list[float] = field(default_factory=list)  # per layer
    spearman: list[float] = field(default_factory=list)  # per layer
    prefill_seconds: float = 0.0
    predictions: list[list[int]] = field(default_factory=list)


def rank(x: torch.Tensor) -> torch.Tensor:
    return x.argsort(-1).argsort(-1).float()


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of matching rows (last dim), via Pearson on ranks (ties have probability ~0 here)."""
    ra, rb = rank(a), rank(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1)).clamp_min(1e-12)


def method_label(method: dict[str, Any]) -> str:
    name = method["name"]
    if name in ("sdpa", "softmax"):
        return "full"
    if name == "sink_window":
        matched = f"_matched{method['matched_to']}" if method.get("matched_to") is not None else ""
        return f"sparse_W{method['window']}_S{method['sinks']}{matched}"
    no_tail = "_notail" if method.get("tail") is False else ""
    return f"{method.get('mode', 'delta')}_W{method['window']}_S{method['sinks']}_g{method['gamma']}{no_tail}"


class Evaluator:
    """Runs methods on one trained decoder; the full-attention run of each batch is cached as the reference."""

    def __init__(self, model: DecoderLM, eos: int, last_k: int = 32):
        self.model, self.eos, self.last_k = model.eval(), eos, last_k
        self.reference: dict[tuple[str, int, int], dict[str, list[torch.Tensor]]] = {}

    def _set_method(self, method: dict[str, Any]) -> None:
        options = {k: v for k, v in method.items() if k not in META_KEYS}
        set_backend(self.model, options, causal=True)

    def _captured(self, cap: Capture, n: int) -> dict[str, list[torch.Tensor]]:
        """Per layer, from one prefill's capture: the last queries' outputs and their dense rows over the keys."""
        k_last, visible = min(self.last_k, n), n - min(self.last_k, n) + 1
        outs, rows = [], []
        for record in cap.layers:
            q, k = record.q[-1][..., n - k_last : n, :], record.k[-1][..., :visible, :]
            rows.append(torch.softmax((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5, -1))
            outs.append(record.out[-1][..., n - k_last : n, :].transpose(1, 2).flatten(2))  # (B, K, H d)
        return {"out": outs, "rows": rows}

    @torch.no_grad()
    def run_batch(
        self,
        samples: list[Sample],
        method: dict[str, Any],
        key: tuple,
        max_new_tokens: int | None = None,
        decode: bool = True,
    ) -> BatchResult:
        n = len(samples[0].prompt)
        prompt = torch.tensor([s.prompt for s in samples])
        answers = [s.answer for s in samples]
        width = max(map(len, answers))
        gold = torch.tensor([a + [self.eos] * (width - len(a)) for a in answers])
        gold_mask = torch.tensor([[1] * len(a) + [0] * (width - len(a)) for a in answers], dtype=torch.bool)

        self._set_method(method)
        with Capture(self.model, matrices="none", outputs=True, hidden=False) as cap:  # q, k, v, out: no N x N
            started = time.perf_counter()
            logits, cache = self.model(prompt, return_cache=True)
            prefill_seconds = time.perf_counter() - started
        captured = self._captured(cap, n)
        if method_label(method) == "full":
            self.reference[key] = captured
        ref = self.reference.get(key)

        # teacher-forced answer NLL: the last prompt position predicts answer[0]; the rest through the dense cache
        rest = self.model(gold[:, :-1], past=cache) if width > 1 else logits[:, :0]
        answer_logits = torch.cat([logits[:, -1:], rest], 1)
        nll = F.cross_entropy(answer_logits.flatten(0, 1), gold.flatten(), reduction="none").view_as(gold)
        answer_nll = float(nll[gold_mask].sum())

        predictions: list[list[int]] = [[] for _ in samples]
        if decode:
            budget = max_new_tokens or width + 4
            token = logits[:, -1].argmax(-1, keepdim=True)
            done = torch.zeros(len(samples), dtype=torch.bool)
            for _ in range(budget):
                for row in range(len(samples)):
                    if not done[row]:
                        predictions[row].append(int(token[row]))
                done |= token[:, 0] == self.eos
                if bool(done.all()):
                    break
                step_logits, cache = self.model(token, past=cache, return_cache=True)
                token = step_logits[:, -1].argmax(-1, keepdim=True)
        metric = METRICS[samples[0].metric]
        scores = [metric([[t for t in p if t != self.eos]], [s.references]) for p, s in zip(predictions, samples)]

        cosine, spearman = [], []
        if ref is not None:
            for layer, (out, rows) in enumerate(zip(captured["out"], captured["rows"])):
                cosine.append(float(F.cosine_similarity(out, ref["out"][layer], dim=-1).mean()))
                spearman.append(float(spearman_rows(rows, ref["rows"][layer]).mean()))
        return BatchResult(
            samples[0].task, n, scores, answer_nll, int(gold_mask.sum()), cosine, spearman, prefill_seconds, predictions
        )


def summarise(results: list[BatchResult]) -> dict[str, Any]:
    """Mean score (x100 scale), answer NLL per token, per-layer means, over the batches of one (task, length)."""
    scores = [s for r in results for s in r.scores]
    tokens = sum(r.answer_tokens for r in results)
    layers = len(results[0].cosine) if results and results[0].cosine else 0
    out = {
        "task": results[0].task,
        "length": results[0].length,
        "samples": len(scores),
        "score": sum(scores) / len(scores),
        "answer_nll": sum(r.answer_nll for r in results) / max(tokens, 1),
        "prefill_seconds": sum(r.prefill_seconds for r in results),
    }
    for layer in range(layers):
        out[f"cos_L{layer}"] = sum(r.cosine[layer] for r in results) / len(results)
        out[f"spearman_L{layer}"] = sum(r.spearman[layer] for r in results) / len(results)
    return out


def evaluate_methods(
    evaluator: Evaluator,
    datamodule,
    methods: list[dict[str, Any]],
    lengths: list[int],
    tasks: list[str] | None = None,
    batch_size: int = 8,
    split: str = "test",
    log=print,
) -> list[dict[str, Any]]:
    """One row per (method, task, length); the full-attention reference always runs first on every batch."""
    tasks = list(tasks or datamodule.tasks)
    methods = [FULL] + [m for m in methods if method_label(m) != "full"]
    rows = []
    for length in lengths:
        for task in tasks:
            samples = datamodule.eval_samples(task, length, split)
            batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
            for method in methods:
                started = time.perf_counter()
                results = [evaluator.run_batch(batch, method, (task, length, b)) for b, batch in enumerate(batches)]
                row = {
                    "method": method_label(method),
                    **{k: v for k, v in method.items() if k != "name"},
                    "backend": method["name"],
                    **summarise(results),
                }
                rows.append(row)
                log(
                    f"N={length:5d} {task:16s} {row['method']:28s} score {row['score']:6.1f}  "
                    f"nll {row['answer_nll']:.3f}  ({time.perf_counter() - started:.1f}s)"
                )
    return rows
