"""The Delta study on a real LM (issue 18, item 3): SmolLM2-135M-Instruct on RULER's text tasks, as an incremental
campaign stage (conf/paper/delta.yaml, stage ``smollm2_delta``).

    .venv/bin/qdsbench-reproduce --paper delta --protocol paper --tables smollm2_delta --hours H

Protocol: every task at every length first with full attention (``full``: exact causal SDPA through the same hook);
the tasks whose full score is at least ``--keep`` (30) at a length are then run with every method at every ratio
N / W: ``sparse`` (sink + window), ``tail_only`` (sparse plus the dense tail), ``recompute`` (exact anchor and tail
rows, paper Eq. 5), ``delta`` (Eqs. 6-7, with the authors' dense tail) and ``delta_notail``; W = N / ratio,
sinks = N / 128, gamma = 64 (the paper's ratios: N / W = 64; also 16). The prompt is prefilled once by the backend;
the answer is greedy-decoded and RULER's reference scored teacher-forced (answer NLL, nats per token) over that
prompt's KV cache with dense attention (``PretrainedCausalLM.answer_with_nll``).

Pieces (campaign/pieces.py): one per (task, length, method, ratio), ``--samples`` samples each, written to
``<out>/smollm2_delta/pieces/`` when complete, so the stage resumes across sessions once they are committed. When
every planned piece exists the stage writes ``smollm2_delta.csv`` (all rows), ``.meta.json`` and, by :func:`render`,
``smollm2_delta.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from qdsbench.campaign.pieces import Pieces, deadline_from_env
from qdsbench.config import REPO_ROOT
from qdsbench.longctx import ruler_text
from qdsbench.studies.ruler_text_eval import token_counter
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text

OUT = REPO_ROOT / "results" / "delta"
NAME = "smollm2_delta"
METHODS = ("sparse", "tail_only", "recompute", "delta", "delta_notail")
GAMMA = 64
# Wall seconds per sample before any piece of that length has been measured (full attention, one thread, RULER's
# budget with the end-of-turn stop), measured 2026-12-03 with one other job on the machine: 1K 3.4-4.8 s
# (results/bench/lm_dtype.md), 2K 10.4 s (the first full piece, answer NLL included), 4K 23-24.6 s (4 prompts of
# niah_single_1 and vt). The pilot's 8-10 s at 1K and 16-18 s at 2K were measured at load 10.
SECONDS_PER_SAMPLE_HINT = {1024: 5.0, 2048: 10.4, 4096: 24.0}


def method_config(method: str, length: int, ratio: int) -> dict[str, Any]:
    """The backend of ``method`` at N / W = ``ratio`` for ``length``-token prompts (W = N / ratio, sinks = N / 128)."""
    window, sinks = max(1, length // ratio), max(1, length // 128)
    if method == "full":
        return {"name": "sdpa"}
    if method == "sparse":
        return {"name": "sink_window", "window": window, "sinks": sinks}
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; valid choices: full, {', '.join(METHODS)}")
    mode = "delta" if method.startswith("delta") else method
    return {
        "name": "delta",
        "window": window,
        "sinks": sinks,
        "gamma": GAMMA,
        "mode": mode,
        "tail": method != "delta_notail",
    }


def piece_name(task: str, length: int, method: str, ratio: int | None) -> str:
    return f"{task}__N{length}__{method}" + ("" if ratio is None else f"_r{ratio}")


def reference_text(outputs: Sequence[str]) -> str:
    """The continuation scored for the answer NLL: RULER's references after the answer prefix, comma-separated."""
    return " " + ", ".join(outputs)


def full_score(rows: list[dict[str, Any]]) -> float:
    metric = ruler_text.spec_for(str(rows[0]["task"])).metric
    predictions = [str(r["prediction"] or "") for r in rows]
    return ruler_text.METRICS[metric](predictions, [json.loads(str(r["references"])) for r in rows])


class Study:
    """The planned pieces, given which tasks full attention kept at each length so far."""

    def __init__(self, args: argparse.Namespace, pieces: Pieces):
        self.args, self.pieces = args, pieces

    def kept(self, task: str, length: int) -> bool | None:
        """Whether full attention scores at least --keep on (task, length); None until its full piece exists."""
        name = piece_name(task, length, "full", None)
        return full_score(self.pieces.rows(name)) >= self.args.keep if self.pieces.done(name) else None

    def planned(self) -> list[tuple[str, str, int, str, int | None]]:
        """(piece, task, length, method, ratio) in running order: per length, full on every task, then the methods
        on the kept tasks (tasks not decided yet count as kept, so the total only shrinks)."""
        out = []
        for length in self.args.lengths:
            out.append((f"locality__N{length}", "locality", length, "locality", self.args.ratios[0]))
            out += [(piece_name(t, length, "full", None), t, length, "full", None) for t in self.args.tasks]
            for task in self.args.tasks:
                if self.kept(task, length) is False:
                    continue
                for ratio in self.args.ratios:
                    for method in self.args.methods:
                        out.append((piece_name(task, length, method, ratio), task, length, method, ratio))
        return out

    def seconds_per_sample(self, length: int) -> float:
        measured = [
            float(r["seconds"])
            for name, _, n, method, _ in self.planned()
            if n == length and method != "locality" and self.pieces.done(name)
            for r in self.pieces.rows(name)
        ]
        if measured:
            return statistics.mean(measured)
        nearest = min(SECONDS_PER_SAMPLE_HINT, key=lambda n: abs(n - length))
        return SECONDS_PER_SAMPLE_HINT[nearest] * length / nearest

    def estimate(self, length: int, method: str, per_sample: float | None = None) -> float:
        """Seconds for one piece: --samples prompts, or the locality piece's few prefills (no decoding)."""
        prompts = len(LOCALITY_TASKS) * LOCALITY_SAMPLES if method == "locality" else self.args.samples
        return prompts * (per_sample if per_sample is not None else self.seconds_per_sample(length))

    def seconds_left(self) -> float:
        per_sample = {n: self.seconds_per_sample(n) for n in self.args.lengths}  # read the pieces once a length
        todo = [(n, m) for name, _, n, m, _ in self.planned() if not self.pieces.done(name)]
        return sum(self.estimate(n, m, per_sample[n]) for n, m in todo)


@torch.no_grad()
def run_piece(model, generator, task: str, length: int, method: str, ratio: int | None, args) -> list[dict[str, Any]]:
    config = method_config(method, length, ratio or 1)
    model.set_backend(config)
    rows = []
    for index in range(args.samples):
        sample = generator.sample(task, length, args.seed, index)
        budget = (
            sample.tokens_to_generate
            if args.max_new_tokens is None
            else min(args.max_new_tokens, sample.tokens_to_generate)
        )
        started, cpu = time.perf_counter(), time.process_time()
        prediction, nll = model.answer_with_nll(sample.prompt, reference_text(sample.outputs), budget)
        rows.append(
            {
                "task": task,
                "length": length,
                "method": method,
                "ratio": ratio,
                "window": config.get("window"),
                "sinks": config.get("sinks"),
                "gamma": config.get("gamma"),
                "index": index,
                "prompt_tokens": sample.prompt_tokens,
                "max_new_tokens": budget,
                "score": ruler_text.score(sample.metric, [prediction], [sample.outputs]),
                "answer_nll": round(nll, 4),
                "prediction": ruler_text.postprocess(prediction),
                "references": json.dumps(sample.outputs),
                "seconds": round(time.perf_counter() - started, 2),
                "cpu_seconds": round(time.process_time() - cpu, 2),
            }
        )
    return rows


LOCALITY_TASKS, LOCALITY_SAMPLES = ("niah_single_1", "vt"), 2
LOCALITY_STATS = ("cos_q_t_anchor", "cos_q_t_next", "cos_D_t_D_a", "err_after_correction")


@torch.no_grad()
def locality_piece(model, generator, length: int, ratio: int, args) -> list[dict[str, Any]]:
    """Delta's assumption inside SmolLM2, per layer: on the q, k, v its full-attention prefill computes (after RoPE),
    how well an anchor's dense-minus-sparse difference predicts its block's (studies.delta.correction_stats), for
    RULER prompts of ``length`` tokens at W = N / ratio."""
    from qdsbench.studies.delta import correction_stats

    window, sinks = max(1, length // ratio), max(1, length // 128)
    model.set_backend({"name": "sdpa"})
    seen: dict[int, dict[str, list[float]]] = {}

    def measure(index: int):
        def hook(_module, inputs):
            q, k, v = inputs[:3]
            for key, value in correction_stats(q, k, v, window, sinks, GAMMA).items():
                seen.setdefault(index, {}).setdefault(key, []).append(value)

        return hook

    handles = [b.register_forward_pre_hook(measure(i)) for i, b in enumerate(model.backends())]
    try:
        for task in LOCALITY_TASKS:
            for index in range(LOCALITY_SAMPLES):
                try:
                    prompt = generator.sample(task, length, args.seed, index).prompt
                except ValueError as err:  # e.g. vt's smallest prompt is longer than a short smoke length
                    print(f"locality at N = {length}: {task} left out ({err})", flush=True)
                    break
                model(model.tokenizer(prompt, return_tensors="pt").input_ids.to(model.device))
    finally:
        for handle in handles:
            handle.remove()
    common = {"length": length, "ratio": ratio, "window": window, "sinks": sinks, "gamma": GAMMA}
    return [
        {**common, "layer": layer, "prompts": len(stats["cos_q_t_anchor"])}
        | {key: round(statistics.mean(stats[key]), 4) for key in LOCALITY_STATS}
        for layer, stats in sorted(seen.items())
    ]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=ruler_text.task_names(), choices=ruler_text.task_names())
    p.add_argument("--lengths", nargs="+", type=int, default=[2048, 4096])
    p.add_argument("--ratios", nargs="+", type=int, default=[64, 16], help="N / W")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--keep", type=float, default=30.0, help="run the methods where full attention scores >= this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: RULER's budget per task")
    p.add_argument("--out", type=Path, default=OUT)
    return p


def main(argv: list[str] | None = None) -> None:
    """The ``smollm2_delta`` stage: run the pieces that fit before the runner's deadline; finish when all exist."""
    args = parser().parse_args(argv)
    from qdsbench import models

    root = args.out / NAME
    pieces = Pieces(root / "pieces", root / "progress.json", deadline_from_env())
    study = Study(args, pieces)
    model = generator = None
    while todo := [p for p in study.planned() if not pieces.done(p[0])]:
        name, task, length, method, ratio = todo[0]
        estimate = study.estimate(length, method)
        if not pieces.fits(estimate):
            print(f"{name}: about {estimate / 60:.0f} min, past the deadline: stopping here", flush=True)
            break
        if model is None:
            model = models.create("smollm2_135m", attention={"name": "sdpa"})
            generator = ruler_text.RulerTextGenerator(token_counter(model.tokenizer), ruler_text.SMOLLM2_CHAT)
        if method == "locality":
            pieces.write(name, locality_piece(model, generator, length, ratio, args))
            print(f"{name}: measured", flush=True)
        else:
            rows = run_piece(model, generator, task, length, method, ratio, args)
            pieces.write(name, rows)
            print(f"{name}: score {statistics.mean(float(r['score']) for r in rows):.1f} over {len(rows)}", flush=True)
        pieces.report([p[0] for p in study.planned()], study.seconds_left())
    planned = study.planned()
    pieces.report([p[0] for p in planned], study.seconds_left())
    if any(not pieces.done(p[0]) for p in planned):
        return
    rows = [r for name, _, _, method, _ in planned if method != "locality" for r in pieces.rows(name)]
    write_csv(args.out / f"{NAME}.csv", rows, lineterminator="\r\n")
    locality = [r for name, _, _, method, _ in planned if method == "locality" for r in pieces.rows(name)]
    write_csv(args.out / f"{NAME}_locality.csv", locality, lineterminator="\r\n")
    meta = {
        "command": "python -m qdsbench.campaign.stage qdsbench.studies.smollm2_delta:main "
        + json.dumps(list(argv) if argv is not None else []),
        "measured": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "hours": round(sum(float(r["seconds"]) for r in rows) / 3600, 2),
        "samples": args.samples,
        "seed": args.seed,
        "keep": args.keep,
        "lengths": args.lengths,
        "ratios": args.ratios,
        "tasks": args.tasks,
    }
    write_text(args.out / f"{NAME}.meta.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {render_dir(args.out, args.out)}")


# --- tables ------------------------------------------------------------------------------------------------------


def cells(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, float]]:
    """(task, length, method label) -> RULER's score over the samples, mean answer NLL, n."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        label = str(r["method"]) + (f" N/W={r['ratio']}" if r.get("ratio") else "")
        groups.setdefault((str(r["task"]), int(r["length"]), label), []).append(r)
    return {
        key: {
            "score": full_score(group),
            "nll": statistics.mean(float(r["answer_nll"]) for r in group),
            "n": len(group),
        }
        for key, group in groups.items()
    }


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    table = cells(rows)
    present = {label for _, _, label in table}
    labels = [x for x in ["full"] + [f"{m} N/W={r}" for r in meta["ratios"] for m in METHODS] if x in present]
    lines = [
        "# Delta on SmolLM2-135M-Instruct: RULER's text tasks, sparse prefill + dense decode",
        "",
        f"Command: `{meta['command']}` (measured {meta['measured']} on {meta['machine']}, torch {meta['torch']}, "
        f"{meta['threads']} thread(s), {meta['hours']} h of prefill + decode in all). {meta['samples']} samples per "
        f"task, length and method (seed {meta['seed']}); W = N / ratio, sinks = N / 128, gamma = {GAMMA}. Score: "
        "RULER's string match x 100; NLL: the reference answer's mean NLL per token (nats), teacher-forced after the "
        f"backend's prefill. Methods run on the tasks where full attention scored >= {meta['keep']:g}.",
        "",
    ]
    for length in meta["lengths"]:
        kept = [
            t
            for t in meta["tasks"]
            if (t, length, "full") in table and table[(t, length, "full")]["score"] >= meta["keep"]
        ]
        dropped = [t for t in meta["tasks"] if t not in kept and (t, length, "full") in table]
        out = []
        for label in labels:
            scored = [table[(t, length, label)] for t in kept if (t, length, label) in table]
            if not scored:
                continue
            full = [table[(t, length, "full")]["score"] for t in kept if (t, length, label) in table]
            mean = statistics.mean(c["score"] for c in scored)
            out.append(
                {
                    "method": label,
                    "tasks": len(scored),
                    "mean score": f"{mean:.1f}",
                    "% of full": f"{100 * mean / statistics.mean(full):.1f}" if statistics.mean(full) else "—",
                    "answer NLL": f"{statistics.mean(c['nll'] for c in scored):.3f}",
                }
            )
        lines += [f"## N = {length}", ""]
        lines += [
            f"Kept: {', '.join(kept) or 'none'}. Dropped (full < {meta['keep']:g}): "
            + (", ".join(f"{t} ({table[(t, length, 'full')]['score']:.0f})" for t in dropped) or "none")
            + ".",
            "",
        ]
        lines += [markdown_table(out, ["method", "tasks", "mean score", "% of full", "answer NLL"]), ""]
        means = {row["method"]: float(row["mean score"]) for row in out}
        for ratio in meta["ratios"]:
            delta = means.get(f"delta N/W={ratio}")
            others = [(m, means.get(f"{m} N/W={ratio}")) for m in ("sparse", "tail_only", "recompute")]
            if delta is not None and all(v is not None for _, v in others):
                versus = ", ".join(f"{m} {v:.1f} ({delta - v:+.1f})" for m, v in others)
                lines += [f"At N/W = {ratio}: delta {delta:.1f} vs {versus} (mean score over the kept tasks).", ""]
        per_task = [
            {
                "task": t,
                **{
                    label: f"{table[(t, length, label)]['score']:.0f}"
                    for label in labels
                    if (t, length, label) in table
                },
            }
            for t in kept
        ]
        lines += ["Per task (score):", "", markdown_table(per_task, ["task", *labels]), ""]
    return "\n".join(lines)


def locality_markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "## Delta's locality assumption inside SmolLM2, per layer",
        "",
        f"On the q, k, v of full-attention prefills ({LOCALITY_SAMPLES} prompts each of "
        f"{', '.join(LOCALITY_TASKS)}), with W = N / {rows[0]['ratio']}: cos_q_t_anchor = cosine of a query to its "
        "anchor's, cos_D_t_D_a = cosine of their dense-minus-sparse differences, err_after_correction = "
        "sum ||D_t - D_a||^2 / sum ||D_t||^2 (below 1: the correction removes error; studies/delta.correction_stats).",
        "",
    ]
    for length in sorted({int(r["length"]) for r in rows}):
        at = [r for r in rows if int(r["length"]) == length]
        cos = [float(r["cos_q_t_anchor"]) for r in at]
        err = [float(r["err_after_correction"]) for r in at]
        lines += [
            f"N = {length} (W = {at[0]['window']}): cos_q_t_anchor {min(cos):.2f}-{max(cos):.2f} over the "
            f"{len(at)} layers, err_after_correction {min(err):.2f}-{max(err):.2f}.",
            "",
            markdown_table(at, ["layer", *LOCALITY_STATS]),
            "",
        ]
    return lines


def render(records: Path, out: Path) -> list[Path]:
    """The manifest's renderer: ``<records>/delta/smollm2_delta.csv`` and ``.meta.json`` -> ``<out>/delta/...md``."""
    return [render_dir(Path(records) / "delta", Path(out) / "delta")]


def render_dir(src: Path, dst: Path) -> Path:
    meta = json.loads((src / f"{NAME}.meta.json").read_text())
    locality = read_csv(src / f"{NAME}_locality.csv") if (src / f"{NAME}_locality.csv").is_file() else []
    text = markdown(read_csv(src / f"{NAME}.csv"), meta) + "\n".join(locality_markdown(locality))
    return write_text(dst / f"{NAME}.md", text.rstrip("\n") + "\n")
