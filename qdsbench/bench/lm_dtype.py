"""SmolLM2-135M on RULER text prompts in float32 and bfloat16, side by side: the cost of the Delta campaign's samples.

    .venv/bin/python scripts/bench_lm_dtype.py --tasks niah_single_1 vt --lengths 1024 2048 --samples 4

Why: the SmolLM2 Delta study (conf/paper/delta.yaml, stage smollm2_delta) is about 62 h of one core in float32.
This CPU has AVX512-BF16, so bfloat16 matmuls may be much faster; whether the campaign may switch depends on how
often the answers change. Each sample's prompt is completed greedily (full attention, the study's own path:
``PretrainedCausalLM.complete``) by both models in turn, so they see the same machine load. Reported per task and
length: seconds per sample of each, the speedup, RULER's score of each, and the share of identical answers.
Nothing here decides the campaign's dtype: it records what a switch would cost and change.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from qdsbench.config import REPO_ROOT
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text

OUT = REPO_ROOT / "results" / "bench"
DTYPES = ("float32", "bfloat16")
FULL = {"name": "sdpa"}


def measure(tasks: list[str], lengths: list[int], samples: int, max_new_tokens: int | None) -> list[dict]:
    from qdsbench import models
    from qdsbench.longctx import ruler_text
    from qdsbench.studies.ruler_text_eval import token_counter

    lms = {dtype: models.create("smollm2_135m", attention=dict(FULL), dtype=dtype) for dtype in DTYPES}
    generator = ruler_text.RulerTextGenerator(token_counter(lms["float32"].tokenizer), ruler_text.SMOLLM2_CHAT)
    rows = []
    for task in tasks:
        for length in lengths:
            for index in range(samples):
                sample = generator.sample(task, length, 0, index)
                budget = sample.tokens_to_generate
                budget = budget if max_new_tokens is None else min(budget, max_new_tokens)
                row = {"task": task, "length": length, "index": index, "prompt_tokens": sample.prompt_tokens}
                order = DTYPES if index % 2 == 0 else DTYPES[::-1]  # alternate who runs first (warm caches)
                for dtype in order:
                    lm = lms[dtype]
                    started = time.perf_counter()
                    prediction = lm.complete(sample.prompt, max_new_tokens=budget)
                    row[f"{dtype}_seconds"] = round(time.perf_counter() - started, 2)
                    row[f"{dtype}_score"] = ruler_text.score(sample.metric, [prediction], [sample.outputs])
                    row[f"{dtype}_prediction"] = ruler_text.postprocess(prediction)
                row["same_answer"] = row["float32_prediction"] == row["bfloat16_prediction"]
                rows.append(row)
                print(row, flush=True)
    return rows


def _same(row: dict) -> bool:
    """``same_answer`` as measured (a bool) or as read back from the CSV record (its text)."""
    value = row["same_answer"]
    return value if isinstance(value, bool) else str(value) == "True"


def summary_rows(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], int(r["length"])), []).append(r)
    out = []
    for (task, length), group in groups.items():
        f32 = statistics.median(float(r["float32_seconds"]) for r in group)
        bf16 = statistics.median(float(r["bfloat16_seconds"]) for r in group)
        out.append(
            {
                "task": task,
                "length": length,
                "n": len(group),
                "float32 s": round(f32, 2),
                "bfloat16 s": round(bf16, 2),
                "speedup": round(f32 / bf16, 2),
                "float32 score": round(statistics.mean(float(r["float32_score"]) for r in group), 1),
                "bfloat16 score": round(statistics.mean(float(r["bfloat16_score"]) for r in group), 1),
                "same answer": f"{sum(_same(r) for r in group)}/{len(group)}",
            }
        )
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    table = summary_rows(rows)
    same = sum(_same(r) for r in rows)
    f32 = sum(float(r["float32_seconds"]) for r in rows)
    bf16 = sum(float(r["bfloat16_seconds"]) for r in rows)
    lines = [
        "# SmolLM2-135M on RULER text prompts: float32 vs bfloat16 (full attention, greedy answers)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Measured {meta['measured']} on {meta['machine']} ({meta['cpu_flags']}), {meta['threads']} torch thread, "
        f"torch {meta['torch']}; {meta['minutes']} min in all. Each prompt is completed by both models in turn "
        "(median seconds per sample; RULER's string-match score, 0-100).",
        "",
        markdown_table(table, list(table[0]), digits=2),
        "",
        f"- bfloat16 took {bf16 / f32:.2f}x float32's time over all {len(rows)} samples ({f32 / bf16:.2f}x faster); "
        f"the answers were identical on {same} of {len(rows)}.",
        "- Not a decision: the SmolLM2 Delta campaign stays in float32 unless its owners accept the changed answers.",
    ]
    return "\n".join(lines) + "\n"


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "flags unknown"
    return ", ".join(f for f in ("avx512_bf16", "amx_bf16", "avx512f", "avx2") if f in flags) or "no AVX-512"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["niah_single_1", "niah_multikey_2", "vt", "fwe"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 2048])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: RULER's budget per task")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    started = time.time()
    rows = measure(args.tasks, args.lengths, args.samples, args.max_new_tokens)
    meta = {
        "command": " ".join(["python scripts/bench_lm_dtype.py", *(argv if argv is not None else sys.argv[1:])]),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.machine(),
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "minutes": round((time.time() - started) / 60, 1),
    }
    write_csv(args.out / "lm_dtype.csv", rows)
    write_text(args.out / "lm_dtype.meta.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {render(args.out)}")


def render(out: Path = OUT) -> Path:
    """lm_dtype.md from its records lm_dtype.csv and lm_dtype.meta.json alone."""
    meta = json.loads((out / "lm_dtype.meta.json").read_text())
    return write_text(out / "lm_dtype.md", markdown(read_csv(out / "lm_dtype.csv"), meta))
