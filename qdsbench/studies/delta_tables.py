"""The Delta study's tables, rendered only from its records (issue 15), so a clone rebuilds them byte for byte.

Records under ``<results>/delta/``: the grid rows ``grid_N<length>[_notail].csv`` with ``grid.meta.json``, the rows
``query_locality.csv`` and ``locality.csv`` with their ``.meta.json``. A meta record holds what a header quotes
(argv, date, machine and torch version of the measurement, samples, decoder run dir) and the settings the text
names, so rendering reads no clock, platform or model and measures nothing. :func:`render_locality` is the
``grid`` stage's renderer, :func:`render_tables` the ``tables`` stage's (conf/paper/delta.yaml);
:mod:`qdsbench.studies.delta` measures, writes the records, then calls the same functions.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from qdsbench.attention.delta import pair_counts
from qdsbench.tables import markdown_table, read_csv, write_csv, write_text

STUDY = "delta"  # the records and tables live in <results root>/delta/
COMMAND = "make reproduce-delta"
MODES = ("tail_only", "recompute", "delta")
GRID_META, QUERY_LOCALITY, LOCALITY = "grid.meta.json", "query_locality", "locality"
PAPER_NOTE = """Paper (Llama 3.1 8B, RULER, StreamingLLM W = 2K, gamma = 64; notes 1.5): recovery of full accuracy
sparse -> sparse + Delta is 94 -> 99.8 % at N/W = 2, 65 -> 98.9 % at 4, 42 -> 97.4 % at 8, 35 -> 94.7 % at 16,
22 -> 88.2 % at 32 and 38 -> 88.0 % at 64; recompute sits between sparse and Delta (Table 4: 79.99 vs 83.06 average,
52.67 vs 64.40 at 131K). Expected ordering at large N/W: full >= sparse + Delta > sparse + recompute >= sparse."""


def header(title: str, meta: dict) -> str:
    """Title plus the measurement's own command line and setting, as its meta record holds them."""
    return (
        f"# {title}\n\nCommand: `{COMMAND}` (`.venv/bin/python scripts/reproduce_delta.py "
        f"{' '.join(meta['argv'])}`)  \nMeasured {meta['measured']} on {meta['machine']} CPU, "
        f"torch {meta['torch']}, {meta['samples']} samples per task and length (RULER: 500), decoder "
        f"`{meta['run_dir']}`.\n\n"
    )


def md_table(rows: list[dict], cols: list[str], digits: int = 1) -> str:
    """The study's tables: one decimal unless told, a missing cell as '-', a newline after the last row."""
    return markdown_table(rows, cols, digits=digits, none="-") + "\n"


def read_meta(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the tables quote it, and `--stage eval` writes it with its rows "
            "(rows measured before meta records existed: remove them to measure again)"
        )
    return json.loads(path.read_text())


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def kind_of(row: dict) -> str:
    if row["method"] == "full":
        return "full"
    if row["backend"] == "sink_window":
        return "matched" if row.get("matched_to") not in (None, "") else "sparse"
    return row["mode"] + ("_notail" if str(row.get("tail")) == "False" else "")


def sweep_window(n: int, windows: list[int]) -> int:
    """The window of the single-window studies (gamma sweep, tail_min = 128, query locality): W = 32 when it fits."""
    return 32 if 32 < n else windows[0]


def read_grid(src: Path) -> list[dict]:
    """Every row of the grid records in ``src``, the integer settings as ints (empty cells are None)."""
    rows = [r for path in sorted(src.glob("grid_N*.csv")) for r in read_csv(path)]
    for r in rows:
        for key in ("length", "window", "sinks", "gamma", "tail_min"):
            if r.get(key) is not None:
                r[key] = int(float(r[key]))
    return rows


def summarise_grid(rows: list[dict], gamma: int, tail_min: int, sinks: int) -> list[dict]:
    """Mean over tasks per (N, W, method kind), at the main gamma / tail_min."""
    cells: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        kind = kind_of(r)
        if kind.removesuffix("_notail") in MODES and (int(r["gamma"]) != gamma or int(r["tail_min"]) != tail_min):
            continue
        if int(r.get("sinks") or sinks) != sinks:
            continue
        w = int(r["matched_to"]) if kind == "matched" else (int(r["window"]) if kind != "full" else None)
        cells[(int(r["length"]), w, kind)]["score"].append(float(r["score"]))
        cells[(int(r["length"]), w, kind)]["nll"].append(float(r["answer_nll"]))
    table = []
    lengths = sorted({k[0] for k in cells})
    for n in lengths:
        full = mean(cells[(n, None, "full")]["score"])
        full_nll = mean(cells[(n, None, "full")]["nll"])
        for w in sorted({k[1] for k in cells if k[0] == n and k[1] is not None}):
            row = {"N": n, "W": w, "N/W": n // w, "full": full}
            for kind in ("sparse", "tail_only", "recompute", "delta", "matched", "recompute_notail", "delta_notail"):
                row[kind] = mean(cells[(n, w, kind)]["score"])
                row[f"nll_{kind}"] = mean(cells[(n, w, kind)]["nll"])
            row["nll_full"] = full_nll
            row["recovery_sparse_%"] = 100 * row["sparse"] / full if full else None
            row["recovery_delta_%"] = 100 * row["delta"] / full if full else None
            row["gain_delta"] = row["delta"] - row["sparse"]
            gap = row["nll_sparse"] - full_nll
            row["nll_gap_closed_%"] = 100 * (row["nll_sparse"] - row["nll_delta"]) / gap if abs(gap) > 1e-9 else None
            row["W_matched"] = w + n // (2 * gamma)
            table.append(row)
    return table


def grid_summary(src: Path) -> tuple[dict, list[dict], list[dict]]:
    """(meta, grid rows, per-(N, W) summary) of the grid records in ``src``; the figure is drawn from the summary."""
    meta = read_meta(src / GRID_META)
    rows = read_grid(src)
    if not rows:
        raise FileNotFoundError(f"no grid_N*.csv in {src}: run `--stage eval` first")
    return meta, rows, summarise_grid(rows, meta["gamma"], meta["tail_min"], meta["sinks"])


def write_grid_tables(src: Path, dst: Path) -> list[Path]:
    """accuracy.md|csv, nll.md, tasks.md, intrinsic.md, gamma.md, notail.md and run.json from the grid records in
    ``src`` (a study directory such as results/delta) into ``dst``."""
    meta, rows, table = grid_summary(src)
    sinks, gamma, tail_min = meta["sinks"], meta["gamma"], meta["tail_min"]
    lengths = sorted({r["length"] for r in rows})
    windows = sorted({r["window"] for r in rows if kind_of(r) not in ("full", "matched")})
    n_tasks = len({r["task"] for r in rows})
    checkpoint = rows[0].get("checkpoint") or meta["run_dir"]
    written = [write_csv(dst / "accuracy.csv", table, lineterminator="\r\n")]
    text = header("Delta attention on RULER-synth: accuracy vs N/W", meta)
    text += (
        f"Checkpoint `{checkpoint}`. Mean RULER-synth score (string_match_all x 100) over the "
        f"{n_tasks} tasks; sinks = {sinks}, gamma = {gamma}, dense tail = N mod gamma + "
        f"max({tail_min}, gamma). `matched` = sink_window with the budget-matched window "
        f"W + N/(2 gamma).\n\n"
    )
    text += md_table(
        table,
        [
            "N",
            "W",
            "N/W",
            "full",
            "sparse",
            "tail_only",
            "recompute",
            "delta",
            "matched",
            "recovery_sparse_%",
            "recovery_delta_%",
            "gain_delta",
        ],
    )
    text += "\n" + PAPER_NOTE + "\n\n![accuracy vs N/W](accuracy_vs_ratio.png)\n"
    written.append(write_text(dst / "accuracy.md", text))

    text = header("Answer-token NLL (LongPPL analogue)", meta)
    text += (
        "Mean NLL per answer token under teacher forcing after the method's prefill (decode dense). "
        "`gap closed` = (sparse - delta) / (sparse - full); the paper closes 50-75 % of the LongPPL gap.\n\n"
    )
    text += md_table(
        table,
        [
            "N",
            "W",
            "N/W",
            "nll_full",
            "nll_sparse",
            "nll_tail_only",
            "nll_recompute",
            "nll_delta",
            "nll_matched",
            "nll_gap_closed_%",
        ],
        3,
    )
    written.append(write_text(dst / "nll.md", text))

    n_max = max(lengths)
    small_windows = windows[:2]
    by_task = defaultdict(dict)
    for r in rows:
        if r["length"] != n_max or kind_of(r) == "matched":
            continue
        if r["method"] != "full" and r["window"] not in small_windows:
            continue
        if kind_of(r).endswith("_notail"):
            continue
        if kind_of(r) in MODES and (r["gamma"] != gamma or r["tail_min"] != tail_min):
            continue
        by_task[r["task"]][r["method"]] = float(r["score"])
    cols = ["task"] + sorted({m for t in by_task.values() for m in t}, key=lambda m: (m != "full", m))
    text = header(f"Per-task scores at N = {n_max}", meta)
    text += md_table([{"task": t, **s} for t, s in by_task.items()], cols)
    written.append(write_text(dst / "tasks.md", text))

    layer_keys = sorted({k for r in rows for k in r if k.startswith("cos_L")}, key=lambda k: int(k[5:]))
    intrinsic = []
    for w in small_windows:
        for kind in ("sparse", "tail_only", "recompute", "delta", "recompute_notail", "delta_notail"):
            sel = [
                r
                for r in rows
                if r["length"] == n_max
                and kind_of(r) == kind
                and r["window"] == w
                and (kind == "sparse" or (r["gamma"] == gamma and r["tail_min"] == tail_min))
            ]
            if sel:
                row = {"W": w, "method": kind}
                for k in layer_keys:
                    row[k] = mean([float(r[k]) for r in sel])
                    row["spearman_L" + k[5:]] = mean([float(r["spearman_L" + k[5:]]) for r in sel])
                intrinsic.append(row)
    text = header(f"Per-layer agreement with full attention at N = {n_max} (paper Figs. 3, 9)", meta)
    text += (
        "Last 32 prompt queries, mean over tasks and samples: `cos_L*` = cosine similarity of the attention "
        "outputs to the full run's; `spearman_L*` = Spearman correlation of dense attention rows from the "
        "method's own q, k with the full run's rows (layer 0 is 1 by construction: its q, k come from the "
        "embeddings).\n\n"
    )
    text += md_table(intrinsic, ["W", "method"] + [c for k in layer_keys for c in (k, "spearman_L" + k[5:])], 3)
    written.append(write_text(dst / "intrinsic.md", text))

    cells = defaultdict(list)
    for r in rows:
        if kind_of(r) in ("recompute", "delta"):
            cells[(r["length"], r["window"], r["gamma"], r["tail_min"], r["mode"])].append(float(r["score"]))
    sweep_keys = sorted({k[:4] for k in cells})
    n_sweep = max((k[0] for k in sweep_keys if len({kk[2] for kk in sweep_keys if kk[0] == k[0]}) > 1), default=n_max)
    w_sweep = sweep_window(n_sweep, windows)
    gamma_rows = []
    for n, w, g, tmin in sweep_keys:
        if n != n_sweep or w != w_sweep:
            continue
        pairs = pair_counts(n, w, sinks, g, tmin)  # exact integer counts of the attention's own accounting
        gamma_rows.append(
            {
                "gamma": g,
                "tail_min": tmin,
                "recompute": mean(cells[(n, w, g, tmin, "recompute")]),
                "delta": mean(cells[(n, w, g, tmin, "delta")]),
                "pairs_vs_full_%": 100 * pairs["total"] / pairs["full"],
                "anchor_pairs_vs_full_%": 100 * pairs["anchors"] / pairs["full"],
            }
        )
    text = header(f"Gamma sweep and dense-tail ablation at N = {n_sweep}, W = {w_sweep}", meta)
    text += (
        "Mean score over tasks. `pairs_vs_full` = query-key pairs computed (sparse + anchors + tail) over causal "
        "full attention; anchors alone cost about 1/gamma of it.\n\n"
    )
    text += md_table(
        gamma_rows, ["gamma", "tail_min", "recompute", "delta", "pairs_vs_full_%", "anchor_pairs_vs_full_%"]
    )
    written.append(write_text(dst / "gamma.md", text))
    if any(r["delta_notail"] is not None for r in table):
        text = header("Delta without the dense tail (the paper's description, tail=false)", meta)
        text += (
            "Mean score over tasks and answer NLL. `*_notail`: every query after the sparse prefill is corrected "
            "from its anchor (delta) or only the anchors are exact (recompute); no query is computed densely "
            "except the anchors, so the first answer token comes from a corrected row. Columns with the tail "
            f"(tail = N mod gamma + max({tail_min}, gamma) dense rows) repeat `accuracy.md`.\n\n"
        )
        text += md_table(
            table,
            ["N", "W", "N/W", "full", "sparse", "recompute_notail", "delta_notail", "tail_only", "recompute", "delta"],
        )
        text += "\n" + md_table(
            table,
            [
                "N",
                "W",
                "nll_full",
                "nll_sparse",
                "nll_recompute_notail",
                "nll_delta_notail",
                "nll_tail_only",
                "nll_delta",
            ],
            3,
        )
        written.append(write_text(dst / "notail.md", text))
    written.append(
        write_text(
            dst / "run.json",
            json.dumps({"command": COMMAND, "argv": meta["argv"], "checkpoint": checkpoint}, indent=2) + "\n",
        )
    )
    return written


def read_rows(path: Path) -> list[dict]:
    """A measured-rows record: the ``queries`` label as text, every other cell as a float."""
    return [{k: v if k == "queries" else float(v) for k, v in r.items()} for r in read_csv(path)]


def write_locality_tables(src: Path, dst: Path) -> list[Path]:
    """query_locality.md and locality.md from their row and meta records in ``src`` into ``dst`` (each if recorded:
    the decoder's query locality is measured once, the model-free check on every eval)."""
    written = []
    if (src / f"{QUERY_LOCALITY}.csv").is_file():
        meta = read_meta(src / f"{QUERY_LOCALITY}.meta.json")
        text = header(
            f"Delta's locality assumption inside the decoder (N = {meta['length']}, W = {meta['window']}, "
            f"gamma = {meta['gamma']})",
            meta,
        )
        text += (
            f"Checkpoint `{meta['checkpoint']}`; {meta['prompts_per_task']} test prompts per task, q, k, v of the "
            f"full-attention run, all heads. D = dense - sparse output (sinks = {meta['sinks']}); Delta replaces "
            "D_t by its anchor's D_a. `err_after_correction` = sum ||D_t - D_a||^2 / sum ||D_t||^2 over "
            "non-anchor queries beyond the first window: below 1 the correction moves a row towards full "
            "attention, above 1 away from it. Synthetic rows: random keys and values, queries i.i.d. or AR(1) "
            "(as in `locality.md`), same N, W, gamma.\n\n"
        )
        text += md_table(
            read_rows(src / f"{QUERY_LOCALITY}.csv"),
            ["queries", "err_after_correction", "cos_D_t_D_a", "cos_q_t_next", "cos_q_t_anchor"],
            3,
        )
        written.append(write_text(dst / f"{QUERY_LOCALITY}.md", text))
    if (src / f"{LOCALITY}.csv").is_file():
        meta = read_meta(src / f"{LOCALITY}.meta.json")
        text = header("Delta locality sanity check (notes 1.7): no model", meta)
        text += (
            f"Random keys/values, N = {meta['length']}, d = {meta['dim']}, {meta['sinks']} sinks, "
            f"W = {meta['window']}, gamma = {meta['gamma']}; mean cosine similarity of each method's output to "
            "full causal attention. The notes' numpy check gave 0.44/0.48/0.45 (i.i.d.), 0.39/0.43/0.54 "
            "(rho 0.9), 0.54/0.57/0.75 (rho 0.99).\n\n"
        )
        text += md_table(read_rows(src / f"{LOCALITY}.csv"), ["queries", "sparse", "recompute", "delta"], 3)
        written.append(write_text(dst / f"{LOCALITY}.md", text))
    return written


def render_locality(records: Path, out: Path) -> list[Path]:
    """The ``grid`` stage's tables (query_locality.md, locality.md) from ``records/delta`` into ``out/delta``."""
    return write_locality_tables(Path(records) / STUDY, Path(out) / STUDY)


def render_tables(records: Path, out: Path) -> list[Path]:
    """The ``tables`` stage's tables (accuracy.md|csv ... run.json) from ``records/delta`` into ``out/delta``."""
    return write_grid_tables(Path(records) / STUDY, Path(out) / STUDY)


def render(records: Path, out: Path) -> list[Path]:
    """Every table of the study from ``records/delta`` into ``out/delta`` (both stages' renderers)."""
    return render_locality(records, out) + render_tables(records, out)
