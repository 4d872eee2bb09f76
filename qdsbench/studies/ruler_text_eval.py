"""SmolLM2-135M-Instruct on RULER's text tasks (qdsbench.longctx.ruler_text) with a qdsbench backend in every layer.

    .venv/bin/python -m qdsbench.campaign.stage qdsbench.studies.ruler_text_eval:main \\
        '["--tasks", "niah_single_1", "--lengths", "1024", "--samples", "5", "--backends", "full", \\
          "sink_window:window=128,sinks=4"]'

The Delta protocol on a real model: the backend prefills the prompt (SmolLM2's chat template around RULER's task
text, then RULER's answer prefix), and the answer is greedy-decoded with dense attention over the KV cache
(``decode=dense``), stopping at the end-of-turn token or after ``--max-new-tokens``. ``full`` is exact causal SDPA
through the same hook. Records: ``<name>.csv`` (one row per sample: prompt tokens, prediction, references, its
string-match score, seconds) and ``<name>.meta.json``; :func:`render` builds ``<name>.md`` (per backend, task and
length: RULER's score over the samples, seconds per sample) from those two files alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from qdsbench.config import REPO_ROOT
from qdsbench.longctx import ruler_text
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text

OUT = REPO_ROOT / "results" / "delta"
NAME = "ruler_text"
FULL = {"name": "sdpa"}


def parse_backend(text: str) -> tuple[str, dict[str, Any]]:
    """``full`` or ``name:key=value,key=value`` -> (label, backend config)."""
    if text == "full":
        return text, dict(FULL)
    name, _, options = text.partition(":")
    config: dict[str, Any] = {"name": name}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        config[key] = int(value) if value.lstrip("-").isdigit() else value
    return text, config


def token_counter(tokenizer):
    return lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)


@torch.no_grad()
def evaluate(
    model,
    generator: ruler_text.RulerTextGenerator,
    task: str,
    length: int,
    samples: int,
    seed: int = 0,
    max_new_tokens: int | None = None,
) -> list[dict[str, Any]]:
    """One row per sample for ``model`` (a PretrainedCausalLM whose backend is already set)."""
    rows = []
    for index in range(samples):
        sample = generator.sample(task, length, seed, index)
        budget = sample.tokens_to_generate if max_new_tokens is None else min(max_new_tokens, sample.tokens_to_generate)
        started, cpu = time.perf_counter(), time.process_time()
        prediction = model.complete(sample.prompt, max_new_tokens=budget)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        rows.append(
            {
                "task": task,
                "length": length,
                "index": index,
                "prompt_tokens": sample.prompt_tokens,
                "max_new_tokens": budget,
                "score": ruler_text.score(sample.metric, [prediction], [sample.outputs]),
                "prediction": ruler_text.postprocess(prediction),
                "references": json.dumps(sample.outputs),
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
            }
        )
    return rows


def task_scores(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(backend, task, length) -> RULER's score over the rows' predictions, n, seconds per sample."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r["backend"]), str(r["task"]), str(r["length"])), []).append(r)
    out = {}
    for key, group in groups.items():
        metric = ruler_text.spec_for(key[1]).metric
        predictions = [str(r["prediction"] or "") for r in group]
        references = [json.loads(str(r["references"])) for r in group]
        cpu = [float(r["cpu_seconds"]) for r in group if r.get("cpu_seconds")]
        out[key] = {
            "score": f"{ruler_text.METRICS[metric](predictions, references):.1f}",
            "samples": len(group),
            "prompt_tokens": round(statistics.mean(float(r["prompt_tokens"]) for r in group)),
            "seconds_per_sample": f"{statistics.mean(float(r['seconds']) for r in group):.1f}",
            "cpu_seconds_per_sample": f"{statistics.mean(cpu):.1f}" if cpu else None,
        }
    return out


COLUMNS = [
    "backend",
    "task",
    "length",
    "samples",
    "prompt_tokens",
    "score",
    "seconds_per_sample",
    "cpu_seconds_per_sample",
]
LABELS = {
    "prompt_tokens": "prompt tokens",
    "seconds_per_sample": "s / sample",
    "cpu_seconds_per_sample": "CPU s / sample",
}


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    cells = [{"backend": b, "task": t, "length": n, **v} for (b, t, n), v in task_scores(rows).items()]
    lines = [
        "# RULER text tasks on SmolLM2-135M-Instruct, backend prefill + dense decode",
        "",
        f"Command: `{meta['command']}` (measured {meta['measured']} on {meta['machine']}, torch {meta['torch']}, "
        f"{meta['threads']} thread(s), {meta['minutes']:.1f} min). Prompt: SmolLM2's chat template around RULER's "
        "task text, then RULER's answer prefix; greedy decoding, dense over the KV cache; score: RULER's "
        "string_match_all x 100 over the samples. Haystacks: RULER's noise sentences, or the Lee Background Corpus "
        "(gensim 4.4.0's test data) for RULER's essay. `length` counts prompt + RULER's generation budget. "
        "s / sample: wall seconds of prefill + decode (the machine's load included); CPU s: this process's CPU time "
        "(— where not recorded).",
        "",
        markdown_table(cells, COLUMNS, labels=LABELS),
    ]
    return "\n".join(lines) + "\n"


def render(records: Path, out: Path) -> list[Path]:
    """The manifest's renderer: results roots in, ``<out>/delta/<name>.md`` out for every ``ruler_text*`` record."""
    src = Path(records) / "delta"
    names = sorted(p.name.removesuffix(".meta.json") for p in src.glob(f"{NAME}*.meta.json"))
    return [render_dir(src, Path(out) / "delta", name) for name in names]


def render_dir(src: Path, dst: Path, name: str = NAME) -> Path:
    meta = json.loads((src / f"{name}.meta.json").read_text())
    return write_text(dst / f"{name}.md", markdown(read_csv(src / f"{name}.csv"), meta))


def main(argv: list[str] | None = None) -> None:
    """The ``ruler_text`` stage of conf/paper/delta.yaml."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["niah_single_1"], choices=ruler_text.task_names())
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", nargs="+", default=["full", "sink_window:window=128,sinks=4"])
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: RULER's budget per task")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--name", default=NAME, help="record name: <out>/<name>.csv, .meta.json, .md")
    args = parser.parse_args(argv)
    from qdsbench import models

    started = time.time()
    model = models.create("smollm2_135m", attention=dict(FULL))
    generator = ruler_text.RulerTextGenerator(token_counter(model.tokenizer), ruler_text.SMOLLM2_CHAT)
    rows = []
    for label, config in map(parse_backend, args.backends):
        model.set_backend(config)
        for task in args.tasks:
            for length in args.lengths:
                for row in evaluate(model, generator, task, length, args.samples, args.seed, args.max_new_tokens):
                    rows.append({"backend": label, **row})
                    print(rows[-1], flush=True)
    write_csv(args.out / f"{args.name}.csv", rows, lineterminator="\r\n")
    command = "python -m qdsbench.campaign.stage qdsbench.studies.ruler_text_eval:main " + json.dumps(
        list(argv) if argv is not None else []
    )
    meta = {
        "command": command,
        "measured": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "minutes": round((time.time() - started) / 60, 1),
        "samples": args.samples,
        "seed": args.seed,
    }
    write_text(args.out / f"{args.name}.meta.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {render_dir(args.out, args.out, args.name)}")
