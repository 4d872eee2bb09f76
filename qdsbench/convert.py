"""Zero-shot conversion: swap the attention of chosen layers of a finished run for another backend and evaluate
without training: accuracy, top-1 agreement with the original and the per-image right/wrong counts of the two (for
a paired interval), per-layer relative output error and row KL against the original, attention FLOPs (analytic and
measured with torch's FlopCounterMode on the attention backends only).

    qdsbench convert run_dir=<run> attention=monarch attention.block_size=14 attention.num_steps=2 layers=all

(the command line is qdsbench/cli/convert.py; this module is the library function it calls)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

import qdsbench  # noqa: F401
from qdsbench import attention
from qdsbench.analysis.capture import Capture
from qdsbench.evaluate import load_task
from qdsbench.models.backend_attention import attention_layers, set_backend
from qdsbench.runrecord import now_iso


def _row_kl(p: torch.Tensor, q: torch.Tensor) -> float:
    p, q = p.clamp_min(1e-12), q.clamp_min(1e-12)
    return float((p * (p.log() - q.log())).sum(-1).mean())


def _uncounted_flops(backend, q: torch.Tensor) -> int:
    """The work FlopCounterMode cannot see (sink_window's kernels: its kept pairs), for a (B, H, N, d) call."""
    if not hasattr(backend, "kept_pair_flops"):
        return 0
    batch, heads, n, d = q.shape
    return batch * heads * backend.kept_pair_flops(n, d)


@torch.no_grad()
def convert_and_evaluate(
    run_dir: str | Path,
    backend: dict[str, Any],
    layers: str | list[int] = "all",
    max_samples: int | None = None,
    split: str = "test",
    diagnostic_samples: int | None = None,
    original_predictions: dict | None = None,
) -> dict[str, Any]:
    """Accuracy and agreement over ``max_samples`` images (None: the whole split); the per-layer relative output
    error and row KL over the first ``diagnostic_samples`` of them (None: all; they are means over many rows and
    cost as much again as the forward). ``original_predictions``: a dict the caller keeps across conversions of the
    same run and split, filled here with the unconverted model's predictions so that a grid runs it once."""
    cfg, task, datamodule, checkpoint = load_task(run_dir)
    task.eval()
    converted = copy.deepcopy(task)
    chosen = set_backend(converted.net, backend, layers)
    datamodule.setup("test" if split == "test" else "fit")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    original_layers, converted_layers = attention_layers(task.net), attention_layers(converted.net)
    correct = {"original": 0, "converted": 0}
    paired = {"both_correct": 0, "original_only": 0, "converted_only": 0, "neither": 0}
    agree = 0
    seen, diagnosed, errors, kls = 0, 0, [[] for _ in original_layers], [[] for _ in original_layers]
    flops_measured, flops_by_batch_size = 0, {}
    cache = {} if original_predictions is None else original_predictions
    for index, (x, y) in enumerate(loader):
        if max_samples is not None and seen >= max_samples:
            break
        if max_samples is not None and seen + len(y) > max_samples:
            x, y = x[: max_samples - seen], y[: max_samples - seen]
        key = (str(run_dir), split, index, len(y))
        if key not in cache:
            cache[key] = task(x).argmax(-1)
        with Capture(converted.net, matrices="none", outputs=True, hidden=False) as cap:
            logits_b = converted(x)
        pred_a, pred_b = cache[key], logits_b.argmax(-1)
        right_a, right_b = pred_a == y, pred_b == y
        correct["original"] += int(right_a.sum())
        correct["converted"] += int(right_b.sum())
        paired["both_correct"] += int((right_a & right_b).sum())
        paired["original_only"] += int((right_a & ~right_b).sum())
        paired["converted_only"] += int((~right_a & right_b).sum())
        paired["neither"] += int((~right_a & ~right_b).sum())
        agree += int((pred_a == pred_b).sum())
        seen += len(y)
        records = {id(backend): record for (_, backend), record in zip(cap.backends, cap.layers)}
        inputs = [records[id(layer.backend)] for layer in converted_layers]
        inputs = [(r.q[-1], r.k[-1], r.v[-1], r.out[-1]) for r in inputs]  # each layer's (q, k, v, out)
        if diagnostic_samples is None or diagnosed < diagnostic_samples:
            take = len(y) if diagnostic_samples is None else min(len(y), diagnostic_samples - diagnosed)
            diagnosed += take
            for i, (q, k, v, out_b) in enumerate((q[:take], k[:take], v[:take], o[:take]) for q, k, v, o in inputs):
                out_a = original_layers[i].backend(q, k, v)  # the original backend on the converted inputs
                errors[i].append(float((out_b - out_a).norm() / out_a.norm().clamp_min(1e-12)))
                p_a = original_layers[i].backend.attention_matrix(q, k)
                p_b = converted_layers[i].backend.attention_matrix(q, k) if p_a is not None else None
                if p_b is not None:  # both backends have a matrix
                    kls[i].append(_row_kl(p_a, p_b))
        if len(y) not in flops_by_batch_size:  # attention FLOPs depend on the shapes only: counted once per size
            with FlopCounterMode(display=False) as counter:
                for layer, (q, k, v, _) in zip(converted_layers, inputs):
                    layer.backend(q, k, v)
            flops_by_batch_size[len(y)] = counter.get_total_flops() + sum(
                _uncounted_flops(layer.backend, q) for layer, (q, _, _, _) in zip(converted_layers, inputs)
            )
        flops_measured += flops_by_batch_size[len(y)]
    q = inputs[0][0]
    batch, heads, n, d = q.shape
    per_head = [layer.backend.flops(n, d) for layer in converted_layers]
    analytic = None if any(f is None for f in per_head) else sum(per_head) * heads * seen
    softmax_total = attention.create("softmax").flops(n, d) * heads * seen * len(converted_layers)
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(checkpoint),
        "backend": backend,
        "layers": chosen,
        "samples": seen,
        "diagnostic_samples": diagnosed,  # the images behind relative_output_error and row_kl
        "accuracy": correct["converted"] / seen,
        "original_accuracy": correct["original"] / seen,
        "top1_agreement": agree / seen,  # same predicted class as the unconverted model, right or wrong
        "paired_counts": paired,  # per image: which of the two models is right (for the paired interval)
        "relative_output_error": [sum(e) / len(e) for e in errors],
        "row_kl": [sum(v) / len(v) if v else None for v in kls],
        "attention_flops_analytic": analytic,
        "attention_flops_measured": flops_measured,
        "softmax_attention_flops": softmax_total,
        "flop_ratio_vs_softmax": None if analytic is None else analytic / softmax_total,
        "sequence_length": n,
        "time": now_iso(),
    }
