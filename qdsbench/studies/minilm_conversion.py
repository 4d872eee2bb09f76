"""Zero-shot conversion of a pretrained sentence encoder (all-MiniLM-L6-v2) to MonarchAttention and the baselines.

    .venv/bin/python -m qdsbench.campaign.stage qdsbench.studies.minilm_conversion:main \\
        '["--lengths", "128", "256", "--passages", "300"]'

MonarchAttention's RoBERTa experiment asks whether a pretrained text encoder survives the swap without training;
here the encoder is MiniLM (6 layers, 12 heads of 32) and the measure is what a sentence encoder is used for: the
cosine between each passage's converted and original embedding, and whether nearest-neighbour retrieval over the
passages still finds the same neighbours (top-1 agreement, top-5 overlap, and self-retrieval: the converted
embedding of a passage retrieving its own original embedding). Passages are consecutive windows of exactly N
tokens ([CLS] + N - 2 + [SEP], no padding, so every backend runs mask-free) of the Lee Background Corpus
(qdsbench.text_sources). Every layer is converted.

The grid: monarch at b in {8, 16, 32} x T in {1, 2, 3} (pad post, the paper's text setting); then, for each FLOP
ratio of monarch at b = 16 (T = 1, 2, 3), the performer (fixed features), nystrom and sink_window (1 sink) settings
whose attention FLOPs, measured with FlopCounterMode on one (12 heads, N, 32) call, are nearest on a log scale;
cosformer and linear have no size knob and appear once. FLOP ratios are against softmax's 4 N^2 d per head, as in
qdsbench.convert; sink_window's are 4 d per visible (query, key) pair, since torch's counter does not see its SDPA
calls. Records: ``minilm_conversion.csv`` + ``.meta.json``; :func:`render` makes the markdown table from
them alone.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from qdsbench import attention as attention_backends
from qdsbench.config import REPO_ROOT
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text
from qdsbench.text_sources import PROSE_SOURCE, prose_documents

OUT = REPO_ROOT / "results" / "monarch"
NAME = "minilm_conversion"
HEADS, HEAD_DIM = 12, 32
MONARCH_BLOCKS, MONARCH_STEPS, MATCH_BLOCK = (8, 16, 32), (1, 2, 3), 16
KNOBS = {  # the size option of each tunable baseline and the values searched for a FLOP match
    "performer": ("num_features", (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)),
    "nystrom": ("num_landmarks", (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)),
    "sink_window": ("window", (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)),
}
FIXED = {"performer": {"redraw": False}, "sink_window": {"sinks": 1}}
if "impl" in inspect.signature(attention_backends.BACKENDS.get("sink_window")).parameters:
    FIXED["sink_window"]["impl"] = "blocks"  # the eager kernel (flex needs torch.compile, which the counter breaks)


# ---------------------------------------------------------------------------------------------------------------
# Passages and metrics
# ---------------------------------------------------------------------------------------------------------------


def passages(tokenizer, length: int, count: int, documents: tuple[str, ...] | None = None) -> torch.Tensor:
    """(count, length) token ids: consecutive windows of the corpus' word pieces, each [CLS] ... [SEP]."""
    stream: list[int] = []
    for doc in documents if documents is not None else prose_documents():
        stream += tokenizer(doc, add_special_tokens=False).input_ids
    body = length - 2
    available = len(stream) // body
    if available < count:
        raise ValueError(f"the corpus gives {available} passages of {length} tokens, fewer than the {count} asked for")
    rows = [[tokenizer.cls_token_id, *stream[i * body : (i + 1) * body], tokenizer.sep_token_id] for i in range(count)]
    return torch.tensor(rows)


@torch.no_grad()
def embed(encoder, ids: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """L2-normalised embeddings of unpadded passages (no mask: every backend accepts it)."""
    return torch.cat([encoder(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)])


def neighbours(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """(P, k) indices of each passage's k most cosine-similar other passages."""
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(-math.inf)
    return similarity.topk(k, dim=-1).indices


def agreement(original: torch.Tensor, converted: torch.Tensor) -> dict[str, float]:
    """Cosine per passage, and how far retrieval under the converted embeddings agrees with the original's."""
    cosine = (original * converted).sum(-1)
    top1 = (neighbours(original, 1) == neighbours(converted, 1)).float().mean()
    a, b = neighbours(original, 5), neighbours(converted, 5)
    overlap = (a[:, :, None] == b[:, None, :]).any(-1).float().sum(-1).mean() / 5
    self_top1 = ((converted @ original.T).argmax(-1) == torch.arange(len(original))).float().mean()
    return {
        "cos_mean": float(cosine.mean()),
        "cos_min": float(cosine.min()),
        "top1_agreement": float(top1),
        "top5_overlap": float(overlap),
        "self_retrieval_top1": float(self_top1),
    }


# ---------------------------------------------------------------------------------------------------------------
# FLOPs and the grid
# ---------------------------------------------------------------------------------------------------------------


def attention_flops(config: dict[str, Any], n: int) -> tuple[int, int | None]:
    """(measured, analytic or None) attention FLOPs of one call on (1, HEADS, n, HEAD_DIM)."""
    options = {k: v for k, v in config.items() if k != "name"}
    backend = attention_backends.create(config["name"], **options)
    q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM, generator=torch.Generator().manual_seed(i)) for i in range(3))
    analytic = backend.flops(n, HEAD_DIM)  # the backend's own formula, None where it has none
    analytic = None if analytic is None else analytic * HEADS
    if hasattr(backend, "kept_pair_flops"):  # torch's counter sees none of its kernels: 4 d per kept pair
        return HEADS * backend.kept_pair_flops(n, HEAD_DIM), analytic
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        backend(q, k, v)
    return counter.get_total_flops(), analytic


def softmax_flops(n: int) -> int:
    return 4 * n * n * HEAD_DIM * HEADS


def monarch_config(block: int, steps: int) -> dict[str, Any]:
    return {"name": "monarch", "block_size": block, "num_steps": steps, "pad": "post"}


def matched(name: str, target: int, n: int) -> dict[str, Any]:
    """The setting of a tunable baseline whose measured FLOPs are nearest ``target`` on a log scale."""
    option, values = KNOBS[name]
    candidates = [{"name": name, option: v, **FIXED.get(name, {})} for v in values if v <= n]
    return min(candidates, key=lambda c: abs(math.log(max(attention_flops(c, n)[0], 1) / target)))


def grid(n: int) -> list[tuple[dict[str, Any], str]]:
    """(backend config, what it is matched to) for length ``n``, in table order."""
    points: list[tuple[dict[str, Any], str]] = [({"name": "softmax"}, "exact (pipeline check)")]
    points += [(monarch_config(b, t), "") for b in MONARCH_BLOCKS if b <= n for t in MONARCH_STEPS]
    seen = set()
    for steps in MONARCH_STEPS:
        target = attention_flops(monarch_config(MATCH_BLOCK, steps), n)[0]
        for name in KNOBS:
            config = matched(name, target, n)
            key = json.dumps(config, sort_keys=True)
            if key not in seen:
                seen.add(key)
                points.append((config, f"monarch b={MATCH_BLOCK} T={steps}"))
    points += [({"name": "cosformer"}, ""), ({"name": "linear"}, "")]
    return points


def options_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("name", "pad", "redraw", "impl"))


# ---------------------------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------------------------


def measure(lengths: list[int], count: int, say=print, done=None) -> list[dict[str, Any]]:
    """Every grid point at every length; ``done(rows)`` is called after each length (records survive a stop)."""
    from qdsbench import models

    rows = []
    for n in lengths:
        encoder = models.create("minilm_l6", attention={"name": "softmax"}, max_length=n)
        encoder.use_native_attention("sdpa")  # the original: transformers' own attention
        ids = passages(encoder.tokenizer, n, count)
        started = time.perf_counter()
        original = embed(encoder, ids)
        original_seconds = time.perf_counter() - started
        for config, match in grid(n):
            encoder.set_backend(config)
            started = time.perf_counter()
            converted = embed(encoder, ids)
            seconds = time.perf_counter() - started
            measured, analytic = attention_flops(config, n)
            rows.append(
                {
                    "length": n,
                    "passages": count,
                    "backend": config["name"],
                    "options": options_text(config),
                    "matched_to": match,
                    "flops_ratio_vs_softmax": round(measured / softmax_flops(n), 3),
                    "analytic_matches_measured": None if analytic is None else analytic == measured,
                    **{k: round(v, 4) for k, v in agreement(original, converted).items()},
                    "seconds": round(seconds, 1),
                    "original_seconds": round(original_seconds, 1),
                }
            )
            say(rows[-1])
        if done is not None:
            done(rows)
    return rows


COLUMNS = [
    "length",
    "backend",
    "options",
    "matched_to",
    "flops_ratio_vs_softmax",
    "cos_mean",
    "cos_min",
    "top1_agreement",
    "top5_overlap",
    "self_retrieval_top1",
]
LABELS = {
    "length": "N",
    "matched_to": "FLOPs matched to",
    "flops_ratio_vs_softmax": "FLOPs vs softmax",
    "cos_mean": "cos (mean)",
    "cos_min": "cos (min)",
    "top1_agreement": "top-1 NN agreement",
    "top5_overlap": "top-5 NN overlap",
    "self_retrieval_top1": "self-retrieval@1",
}


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table: every value as the CSV record holds it (an empty cell as an em dash)."""
    cells = [{c: (r.get(c) or None) for c in COLUMNS} for r in rows]
    lines = [
        "# Zero-shot conversion of all-MiniLM-L6-v2 (every layer) to MonarchAttention and efficient baselines",
        "",
        f"Command: `{meta['command']}` (measured {meta['measured']} on {meta['machine']}, torch {meta['torch']}, "
        f"{meta['minutes']:.1f} min, {meta['threads']} thread). Corpus: {meta['corpus']}; {meta['passages']} "
        f"passages of exactly N tokens at N = {', '.join(map(str, meta['lengths']))} (consecutive windows, no "
        "padding). cos: cosine between a passage's converted and original "
        "embedding (mean-pooled, L2-normalised). Retrieval among the passages: top-1 NN agreement = the nearest "
        "other passage is the same under both; top-5 NN overlap = shared fraction of the 5 nearest; "
        "self-retrieval@1 = the converted embedding's nearest original embedding is its own passage's. FLOPs: "
        "attention FLOPs of one layer's call (FlopCounterMode; sink_window: 4 d per visible query-key pair) / "
        "softmax's 4 N^2 d per head; baselines take the setting on their grid nearest in FLOPs to the monarch point "
        "named (sink_window is causal, so even window = N is not the bidirectional original).",
        "",
        markdown_table(cells, COLUMNS, labels=LABELS, cell=lambda v: "—" if v is None else str(v)),
    ]
    return "\n".join(lines) + "\n"


def render(records: Path, out: Path) -> list[Path]:
    """The manifest's renderer: results roots in, ``<out>/monarch/minilm_conversion.md`` out."""
    return [render_dir(Path(records) / "monarch", Path(out) / "monarch")]


def render_dir(src: Path, dst: Path) -> Path:
    meta = json.loads((src / f"{NAME}.meta.json").read_text())
    return write_text(dst / f"{NAME}.md", markdown(read_csv(src / f"{NAME}.csv"), meta))


def main(argv: list[str] | None = None) -> None:
    """The ``minilm`` stage of conf/paper/monarch.yaml."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    started = time.time()
    command = "python -m qdsbench.campaign.stage qdsbench.studies.minilm_conversion:main " + json.dumps(
        list(argv) if argv is not None else []
    )

    def write(rows: list[dict[str, Any]]) -> None:
        write_csv(args.out / f"{NAME}.csv", rows, lineterminator="\r\n")
        meta = {
            "command": command,
            "measured": time.strftime("%Y-%m-%d"),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "minutes": round((time.time() - started) / 60, 1),
            "passages": args.passages,
            "lengths": sorted({int(r["length"]) for r in rows}),
            "corpus": PROSE_SOURCE,
        }
        write_text(args.out / f"{NAME}.meta.json", json.dumps(meta, indent=2) + "\n")
        print(f"wrote {render_dir(args.out, args.out)}", flush=True)

    measure(args.lengths, args.passages, say=lambda row: print(row, flush=True), done=write)
