"""Zero-shot conversion: swap the attention of chosen layers of a finished run for another backend and evaluate
without training: accuracy, per-layer relative output error and row KL against the original, attention FLOPs
(analytic and measured with torch's FlopCounterMode on the attention backends only).

    qdsbench-convert <run_dir> --backend monarch --set block_size=14 --set num_steps=2 --layers all
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

import qdsbench  # noqa: F401
from qdsbench.attention.monarch import monarch_flops
from qdsbench.evaluate import load_task
from qdsbench.models.backend_attention import attention_layers, set_backend
from qdsbench.runrecord import atomic_write_json, now_iso


def analytic_flops(backend: torch.nn.Module, n: int, d: int) -> int | None:
    """Attention bmm FLOPs per head, or None where no formula is registered."""
    name = getattr(backend, "registered_name", "")
    if name in ("softmax", "sdpa", "sinkhorn", "qr", "normsoftmax_std", "normsoftmax_var"):
        return 4 * n * n * d
    if name == "monarch":
        b, _, _ = backend.geometry(n)
        return monarch_flops(n, d, b, backend.num_steps)
    return None  # kernel and sparse baselines: measured FLOPs only


class _Recorder:
    """Forward hooks capturing each attention backend's inputs and output."""

    def __init__(self, layers):
        self.inputs: list[tuple] = [None] * len(layers)
        self.outputs: list[torch.Tensor] = [None] * len(layers)
        self.handles = [
            layer.backend.register_forward_hook(self._hook(i), with_kwargs=True) for i, layer in enumerate(layers)
        ]

    def _hook(self, index):
        def hook(module, args, kwargs, output):
            self.inputs[index] = tuple(a.detach() for a in args[:3])
            self.outputs[index] = output.detach()

        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


def _row_kl(p: torch.Tensor, q: torch.Tensor) -> float:
    p, q = p.clamp_min(1e-12), q.clamp_min(1e-12)
    return float((p * (p.log() - q.log())).sum(-1).mean())


@torch.no_grad()
def convert_and_evaluate(
    run_dir: str | Path,
    backend: dict[str, Any],
    layers: str | list[int] = "all",
    max_samples: int | None = None,
    split: str = "test",
) -> dict[str, Any]:
    cfg, task, datamodule, checkpoint = load_task(run_dir)
    task.eval()
    converted = copy.deepcopy(task)
    chosen = set_backend(converted.net, backend, layers)
    datamodule.setup("test" if split == "test" else "fit")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    original_layers, converted_layers = attention_layers(task.net), attention_layers(converted.net)
    correct = {"original": 0, "converted": 0}
    seen, errors, kls = 0, [[] for _ in original_layers], [[] for _ in original_layers]
    flops_measured = 0
    for x, y in loader:
        if max_samples is not None and seen >= max_samples:
            break
        if max_samples is not None and seen + len(y) > max_samples:
            x, y = x[: max_samples - seen], y[: max_samples - seen]
        rec_a, rec_b = _Recorder(original_layers), _Recorder(converted_layers)
        logits_a, logits_b = task(x), converted(x)
        rec_a.remove()
        rec_b.remove()
        correct["original"] += int((logits_a.argmax(-1) == y).sum())
        correct["converted"] += int((logits_b.argmax(-1) == y).sum())
        seen += len(y)
        for i in range(len(original_layers)):
            out_a = original_layers[i].backend(*rec_b.inputs[i])  # the original backend on the converted inputs
            out_b = rec_b.outputs[i]
            errors[i].append(float((out_b - out_a).norm() / out_a.norm().clamp_min(1e-12)))
            if hasattr(converted_layers[i].backend, "attention_matrix") and hasattr(
                original_layers[i].backend, "attention_matrix"
            ):
                q, k, _ = rec_b.inputs[i]
                kls[i].append(
                    _row_kl(
                        original_layers[i].backend.attention_matrix(q, k),
                        converted_layers[i].backend.attention_matrix(q, k),
                    )
                )
        with FlopCounterMode(display=False) as counter:
            for i, layer in enumerate(converted_layers):
                layer.backend(*rec_b.inputs[i])
        flops_measured += counter.get_total_flops()
    q, _, _ = rec_b.inputs[0]
    batch, heads, n, d = q.shape
    per_head = [analytic_flops(layer.backend, n, d) for layer in converted_layers]
    analytic = None if any(f is None for f in per_head) else sum(per_head) * heads * seen
    softmax_total = 4 * n * n * d * heads * seen * len(converted_layers)
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(checkpoint),
        "backend": backend,
        "layers": chosen,
        "samples": seen,
        "accuracy": correct["converted"] / seen,
        "original_accuracy": correct["original"] / seen,
        "relative_output_error": [sum(e) / len(e) for e in errors],
        "row_kl": [sum(v) / len(v) if v else None for v in kls],
        "attention_flops_analytic": analytic,
        "attention_flops_measured": flops_measured,
        "softmax_attention_flops": softmax_total,
        "flop_ratio_vs_softmax": None if analytic is None else analytic / softmax_total,
        "sequence_length": n,
        "time": now_iso(),
    }


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="qdsbench-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="backend option")
    parser.add_argument("--layers", default="all", help="all | first_half | second_half | comma-separated indices")
    parser.add_argument("--max-samples", type=int, default=None)
    args = parser.parse_args(argv)
    options = dict(item.split("=", 1) for item in args.set)
    backend = {"name": args.backend, **{k: _parse_value(v) for k, v in options.items()}}
    layers = args.layers if not args.layers[0].isdigit() else [int(i) for i in args.layers.split(",")]
    try:
        result = convert_and_evaluate(args.run_dir, backend, layers, args.max_samples)
    except ValueError as err:
        raise SystemExit(f"qdsbench-convert: error: {err}") from None
    out = args.run_dir / "convert"
    out.mkdir(exist_ok=True)
    atomic_write_json(out / f"{result['time'].replace(':', '-')}_{args.backend}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("run_dir", "checkpoint")}, indent=2))
    if math.isfinite(result["accuracy"]):
        print(f"accuracy {result['accuracy']:.4f} (original {result['original_accuracy']:.4f})")


if __name__ == "__main__":
    main()
