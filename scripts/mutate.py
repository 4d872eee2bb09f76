"""Mutation testing (mutmut 3, `make mutate MODULE=...`): one module at a time against its fast test files.

For each chosen module this wipes ./mutants/, runs `mutmut run --max-children 1` with only_mutate and the test
selection narrowed to that module (the rest of the mutmut config is [tool.mutmut] in pyproject.toml), parses
`mutmut results --all true` and `mutmut show` for each surviving mutant, and (re)writes the module's section of
results/quality/mutation.md, keeping the other modules' sections. Not run in CI: each section states its run time.

Score = killed / (killed + survived), where killed counts timeouts (the tests did stop the mutant) and survived
counts "no tests" mutants (no selected test reaches the mutated function, so nothing could fail).

    python scripts/mutate.py orthotrans runrecord   # or: make mutate MODULE=orthotrans
    python scripts/mutate.py                        # every module in MODULES
    python scripts/mutate.py --report-only orthotrans   # re-parse the existing ./mutants/ without rerunning
                                                       # (keeps the section's recorded command and run time)
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "results" / "quality" / "mutation.md"

# module -> (only_mutate globs, relative to the repo root; its fast test files, found by grepping the tests' imports)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "orthotrans": (
        ["qdsbench/orthotrans.py"],
        ["tests/test_mission_olinear.py", "tests/test_forecasting.py"],
    ),
    "olinear": (
        ["qdsbench/models/olinear.py"],
        ["tests/test_mission_olinear.py", "tests/test_olinear_mutants.py", "tests/test_forecasting.py"],
    ),
    "runrecord": (
        ["qdsbench/runrecord.py"],
        # test_faults.py's moved-run test mixes an in-process run (the mutants/ copy) with `qdsbench-eval`
        # subprocesses (the installed package) and fails even unmutated under mutmut, so only its lock test is used
        [
            "tests/test_train.py",
            "tests/test_resume_compat.py",
            "tests/test_mission_runrecord.py",
            "tests/test_runrecord_mutants.py",
            "tests/test_faults.py::test_a_second_process_cannot_take_a_locked_run_directory",
        ],
    ),
    "ruler": (
        ["qdsbench/longctx/ruler.py"],
        [
            "tests/test_ruler.py",
            "tests/test_mission_ruler.py",
            "tests/test_ruler_mutants.py",
            "tests/test_ruler_text.py",
        ],
    ),
    "quantum": (
        ["qdsbench/quantum/*"],
        # the Aer sampling test is left out: Aer (OpenMP) in mutmut's forked children spins until the CPU limit,
        # so sampling.py is not run under mutmut (its test runs in the normal suite)
        [
            "tests/test_qontot_fast.py",
            "tests/test_mission_parted.py",
            "tests/test_quantum_mutants.py",
            "--deselect",
            "tests/test_quantum_mutants.py::test_sampled_dsm_converges_to_the_exact_one_and_noise_flattens_it",
        ],
    ),
    "attention": (
        ["qdsbench/attention/*"],
        [
            "tests/test_attention_contract.py",
            "tests/test_attention_properties.py",
            "tests/test_attention_ds.py",
            "tests/test_attention_health.py",
            "tests/test_registry_contract.py",
            "tests/test_delta_attention.py",
            "tests/test_monarch.py",
            "tests/test_normlin.py",
            "tests/test_qr_fast.py",
            "tests/test_qontot_fast.py",
            "tests/test_sink_window.py",
            "tests/test_mission_masks.py",
            "tests/test_mission_monarch.py",
            "tests/test_mission_routing.py",
        ],
    ),
}

# The verdict on each surviving mutant (equivalent, or the test hole it shows), by mutant id. An id is
# stable while its function's source is unchanged; a stale entry simply stops being shown.
VERDICTS: dict[str, str] = {
    "qdsbench.orthotrans.x_cached_q_matrix__mutmut_5": "equivalent: the length is also in the file name "
    "(q_{length}_...), so dropping it from the hash cannot make two lengths share a cache file",
    "qdsbench.orthotrans.x_cached_q_matrix__mutmut_6": "equivalent: a 21- instead of 20-character digest only "
    "renames the cache file (old caches miss once and are rebuilt identically)",
    "qdsbench.orthotrans.x_q_matrix__mutmut_22": "equivalent in practice: differs only when a lagged variance is "
    "exactly 1e-4 in floating point; both sides of the threshold are tested (mission_olinear)",
    "qdsbench.runrecord.x_config_hash__mutmut_3": "equivalent: resolve=None is falsy like False",
    "qdsbench.runrecord.x_config_hash__mutmut_5": "equivalent: resolve=False is to_container's default",
    "qdsbench.runrecord.x_lock_run_dir__mutmut_25": "cosmetic: the '?' owner of an empty lock file is not pinned",
}
OLINEAR = "qdsbench.models.olinear.x\u01c1"
VERDICTS |= {
    OLINEAR + "NormLin\u01c1__init____mutmut_3": "equivalent: I - N(0,1) noise has the distribution of I + N(0,1) "
    "noise (the normal is symmetric)",
    OLINEAR + "NormLin\u01c1forward__mutmut_8": "equivalent: normalize's default dim=1 is dim=-1 of the 2-D weight",
    OLINEAR + "NormLin\u01c1forward__mutmut_11": "equivalent: dim=+1 is dim=-1 of the 2-D weight",
    OLINEAR + "RevIN\u01c1denorm__mutmut_5": "equivalent in practice: w - eps^2 vs w + eps^2 (eps^2 = 1e-10) differ "
    "only for a RevIN weight within ~1e-10 of 0, below float32 resolution; denorm still inverts norm",
    OLINEAR + "RevIN\u01c1denorm__mutmut_7": "equivalent in practice: eps^3 vs eps^2 (1e-15 vs 1e-10) in the "
    "division guard, below float32 resolution unless the RevIN weight is ~0",
}
for m in ("NormLin\u01c1forward__mutmut_20", "OLinear\u01c1forward__mutmut_21", "OLinear\u01c1forward__mutmut_57"):
    VERDICTS[OLINEAR + m] = "equivalent: upper-case einsum labels name the same contraction"
for m in ("28", "71"):
    VERDICTS[OLINEAR + "OLinear\u01c1forward__mutmut_" + m] = (
        "equivalent: the tensor is always 4-D ([B, N, ., .]), so transpose(-1, +2) is transpose(-1, -2)"
    )
for m in ("33", "73"):
    VERDICTS[OLINEAR + "OLinear\u01c1forward__mutmut_" + m] = (
        "equivalent: the tensor is always 4-D ([B, N, ., .]), so flatten(+2) is flatten(-2)"
    )
RULER = "qdsbench.longctx.ruler.x"
GEN = RULER + "\u01c1RulerGenerator\u01c1"
for i in (6, 7, 10, 11, 13, 14, 16, 17):
    VERDICTS[f"{RULER}_cache_key__mutmut_{i}"] = (
        "equivalent: renaming a hashed JSON key only renames every cache file alike (old caches miss once)"
    )
for i in (3, 5, 18):
    VERDICTS[f"{RULER}_cache_key__mutmut_{i}"] = (
        "equivalent: the dict literal and asdict() have a fixed key order, so unsorted JSON is as deterministic; "
        "only the file names change"
    )
VERDICTS |= {
    RULER + "_cache_key__mutmut_20": "equivalent: an 11- instead of 10-hex-digit digest only renames cache files",
    RULER + "_contains__mutmut_10": "equivalent: the extra windows run past the end, are shorter than the "
    "reference and never equal it",
    RULER + "_contains__mutmut_11": "equivalent: the one extra window is shorter than the reference",
    RULER + "_load_or_generate__mutmut_42": "equivalent: only the temporary file's name, replaced atomically",
    RULER + "_string_match_all__mutmut_4": "equivalent: float('NAN') is nan",
    RULER + "_string_match_part__mutmut_4": "equivalent: float('NAN') is nan",
    GEN + "__init____mutmut_1": "incidental, not pinned: another fixed seed is another, equally valid fixed "
    "filler language (the tests check it is fixed, sparse and shared by generators)",
    GEN + "_cwe__mutmut_37": "equivalent for lengths >= 105: max(0, x) and max(1, x) differ only when the 10 x "
    "num_cw common-word copies do not fit the body, where the common words themselves are truncated",
    GEN + "_fwe__mutmut_12": "incidental, not pinned: 64 vs 65 word types in the Zipf draw (a free choice of "
    "the stand-in); the test checks the Zipf frequencies and the answer by count",
    GEN + "_fwe__mutmut_21": "equivalent: scaling every weight by 2 (exact in floating point) leaves "
    "random.choices' draws unchanged",
    GEN + "_niah__mutmut_62": "equivalent in distribution: a surplus distractor is dropped by fit() (only the "
    "random values of the kept ones shift)",
    GEN + "_niah__mutmut_63": "equivalent in distribution: a fractional count draws one surplus distractor, "
    "dropped by fit()",
    GEN + "_niah__mutmut_64": "equivalent in distribution: the surplus distractors are dropped by fit()",
    GEN + "_niah__mutmut_93": "equivalent: fit() never uses its rng argument",
    GEN + "_vt__mutmut_95": "equivalent: fit() never uses its rng argument",
    GEN + "_vt__mutmut_100": "equivalent for vt as registered: its noise haystack draws nothing from rng",
    GEN + "_vt__mutmut_79": "equivalent: with one chain the interleaving key (i % (hops + 1), i) is the identity",
    GEN + "_word_list__mutmut_11": "equivalent: the padding is cut to [:missing] anyway",
    GEN + "fit__mutmut_22": "equivalent: the padding is cut to [:missing] anyway",
    GEN + "sentences__mutmut_16": "incidental, not pinned: Markov sentences of 9-16 instead of 8-16 words",
    GEN + "sentences__mutmut_17": "incidental, not pinned: Markov sentences of 8-17 instead of 8-16 words",
    GEN + "sentences__mutmut_24": "equivalent: random() returns exactly 0.9 with probability ~2^-53",
}
for m in ("_cwe__mutmut_67", "_fwe__mutmut_71", "_niah__mutmut_123", "_vt__mutmut_131"):
    VERDICTS[GEN + m] = "equivalent: every task's metric is string_match_all, Sample's default"

SIM = "qdsbench.quantum.simulator.x"
_QUANTUM = {
    "equivalent on CPU (the only device the tests use): device=None / no device is the CPU": [
        "__adjoint__mutmut_14",
        "__adjoint__mutmut_26",
        "__block_sum_into__mutmut_10",
        "__borrow__mutmut_7",
        "__borrow__mutmut_10",
        "__forward__mutmut_10",
        "__forward__mutmut_11",
        "__forward__mutmut_23",
        "__forward__mutmut_26",
        "__forward__mutmut_32",
        "__forward__mutmut_37",
        "__forward__mutmut_58",
        "__scratch__mutmut_12",
        "__scratch__mutmut_15",
        "_block_gates__mutmut_81",
        "_block_matrices__mutmut_4",
        "_block_matrices__mutmut_7",
        "_block_matrices__mutmut_22",
        "_block_matrices__mutmut_59",
        "_block_matrices__mutmut_64",
        "_dsm__mutmut_36",
        "_dsm__mutmut_39",
        "_run_circuit__mutmut_14",
        "_run_circuit__mutmut_17",
        "_run_circuit__mutmut_22",
        "_step_gates__mutmut_7",
        "_step_gates__mutmut_9",
        "_step_gates__mutmut_107",
        "_step_gates__mutmut_109",
        "_unitary_reference__mutmut_13",
        "_unitary_reference__mutmut_16",
        "\u01c1_CircuitDSM\u01c1backward__mutmut_13",
        "\u01c1_CircuitDSM\u01c1forward__mutmut_9",
    ],
    "equivalent: another tag for a scratch buffer, still distinct from the other tags": [
        "__adjoint__mutmut_11",
        "__adjoint__mutmut_19",
        "__adjoint__mutmut_20",
        "__adjoint__mutmut_23",
        "__adjoint__mutmut_31",
        "__adjoint__mutmut_32",
        "__block_sum_into__mutmut_7",
        "__block_sum_into__mutmut_15",
        "__block_sum_into__mutmut_16",
        "__forward__mutmut_55",
        "__forward__mutmut_63",
        "__forward__mutmut_64",
        "_run_circuit__mutmut_27",
        "_run_circuit__mutmut_28",
        "_run_circuit__mutmut_29",
        "_run_circuit__mutmut_30",
    ],
    "performance only: buffer reuse / pool size / chunk size changed, the values are the same (tests check values)": [
        "__borrow__mutmut_1",
        "__borrow__mutmut_2",
        "__borrow__mutmut_3",
        "__give_back__mutmut_2",
        "__give_back__mutmut_7",
        "__scratch__mutmut_4",
        "__scratch__mutmut_5",
        "__scratch__mutmut_8",
        "__forward__mutmut_43",
        "_dsm__mutmut_11",
        "_dsm__mutmut_12",
        "_dsm__mutmut_14",
        "_dsm__mutmut_16",
        "_dsm__mutmut_22",
        "\u01c1_CircuitDSM\u01c1backward__mutmut_43",
        "\u01c1_CircuitDSM\u01c1backward__mutmut_45",
        "\u01c1_CircuitDSM\u01c1forward__mutmut_6",
        "_dsm__mutmut_53",
        "__batched__mutmut_36",
        "__block_sum_into__mutmut_17",
    ],
    "equivalent: the tensor is square / has a fixed rank there, so this index or dim names the same axis": [
        "__adjoint__mutmut_3",
        "__adjoint__mutmut_4",
        "__adjoint__mutmut_101",
        "__first_gate__mutmut_3",
        "__first_gate__mutmut_4",
        "_project_doubly_stochastic__mutmut_3",
        "_project_doubly_stochastic__mutmut_4",
    ],
    "equivalent: diagonal(0, 4) is diagonal(0, 4, 1), the same diagonal as (0, 1, 4)": [
        "__adjoint__mutmut_165",
        "__first_gate__mutmut_16",
    ],
    "equivalent: s == 0 is the last iteration and breaks anyway": ["__adjoint__mutmut_113", "__adjoint__mutmut_177"],
    "equivalent: .to(None) / dtype=None / no dtype leaves a tensor whose values are exact and promoted to the "
    "right dtype (small integers, 1j, the real cos/sin)": [
        "__adjoint__mutmut_41",
        "_block_gates__mutmut_84",
        "__pauli_pair__mutmut_5",
        "__pauli_pair__mutmut_7",
        "__pauli_pair__mutmut_15",
        "__pauli_pair__mutmut_17",
        "__pauli_pair__mutmut_26",
        "__pauli_pair__mutmut_28",
        "_block_matrices__mutmut_3",
        "_block_matrices__mutmut_6",
        "_block_matrices__mutmut_17",
        "_block_matrices__mutmut_19",
        "_block_matrices__mutmut_24",
        "\u01c1_CircuitDSM\u01c1backward__mutmut_24",
    ],
    "equivalent in value: computes in float64, then casts to the requested dtype (more precise, not pinned)": [
        "_block_gates__mutmut_3",
        "_block_matrices__mutmut_13",
    ],
    "hole, not killed in this run: float32 angles in complex128 would take cos/sin in float32 in the reference "
    "simulator (only the fast path's mixed precision is tested)": ["_block_matrices__mutmut_11"],
    "dead code: dsm returns the identity before _forward when there are no steps, so this branch never runs": [
        f"__forward__mutmut_{i}" for i in (12, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25)
    ],
    "equivalent: adding -0 instead of +0": ["_dsm__mutmut_43"],
    "equivalent: the two ping-pong buffers swap roles; consecutive steps still use different buffers": [
        "_run_circuit__mutmut_43",
        "_run_circuit__mutmut_44",
        "_run_circuit__mutmut_45",
    ],
    "equivalent: (a + t) and (t - a) are even (t = 2 layer + a mod 2), and -offset vs +offset only shifts the "
    "tile labels by one": ["__tiling__mutmut_14", "__tiling__mutmut_15", "__tiling__mutmut_21", "__tiling__mutmut_22"],
    "performance only: another valid tiling / merge rule / topological order; the schedule is still checked gate by "
    "gate and the paper circuit still gets its documented 23 gates and 304 multiply-adds (other shapes' costs are "
    "not pinned)": [
        "__tiling__mutmut_18",
        "__tiling__mutmut_20",
        "__tiling__mutmut_29",
        "__tiling__mutmut_30",
        "__tiling__mutmut_64",
        "__tiling__mutmut_68",
        "__order__mutmut_14",
        "__window__mutmut_19",
    ],
    "equivalent: None is falsy like False": ["__tiling__mutmut_40", "_aux_only_ends__mutmut_25"],
    "equivalent: a window of width 3 already fits (lo <= k - 3), so widening it to 3 changes nothing": [
        "__window__mutmut_8",
        "__window__mutmut_13",
    ],
    "equivalent: the slice runs past the end of a 4 x blocks angle vector anyway": ["_apply_blocks__mutmut_14"],
    "equivalent: upper-case einsum labels name the same contraction": ["_apply_blocks__mutmut_38"],
    "equivalent: from the back, blocks 0 and 1 can only be droppable when the front pass already dropped them": [
        "_aux_only_ends__mutmut_11"
    ],
    "equivalent on every brick wall with k <= 7, L <= 4 (the brute-force test): stopping the back pass at a "
    "front-dropped block drops nothing less there": ["_aux_only_ends__mutmut_19"],
    "equivalent in value: the reference simulator fuses fewer blocks (each then its own gate); it is a test "
    "reference, its speed is not pinned": [f"_fuse_pairs__mutmut_{i}" for i in (2, 3, 10, 11, 13, 15, 17)],
    "equivalent: the row-excess constant cancels (-r/n + sum(r)/n^2 is unchanged when r shifts by a constant)": [
        "_project_doubly_stochastic__mutmut_6",
        "_project_doubly_stochastic__mutmut_14",
    ],
    "hole, not killed: no tested shape has a step with exactly 2 rows above it (k - first - width == 1)": [
        "__batched__mutmut_37"
    ],
    "hole, not killed: the recomputation for a second backward is skipped, but the buffer borrowed from the pool is "
    "the V just given back, so it still holds V; a test would have to dirty the pool between the two backwards": [
        "\u01c1_CircuitDSM\u01c1backward__mutmut_26",
        "\u01c1_CircuitDSM\u01c1backward__mutmut_34",
    ],
}
for _verdict, _ids in _QUANTUM.items():
    for _m in _ids:
        VERDICTS[SIM + _m] = _verdict

# a line under a module's "mutated:" line, for what its recorded run left out and why
NOTES = {
    "quantum": "not checked: peers.py (589 mutants; benchmark glue for scripts/bench_qontot.py, its PennyLane and "
    "torchquantum peers are not installed here) and sampling.py (115; Aer's OpenMP threads spin in mutmut's forked "
    "children until the CPU limit, ~28 s per mutant: its test, test_sampled_dsm_..., runs in the normal suite only)",
}
KILLED = {"killed", "timeout"}
SURVIVED = {"survived", "no tests"}
UNRUN = {"not checked", "skipped"}  # left out by --only: counted, not listed
HEADER = """# Mutation testing

`make mutate MODULE=<name>` (scripts/mutate.py, mutmut 3.8.1, one worker) mutates one module and runs its fast test
files; each section below was written by the command it names. Score = killed / (killed + survived), timeouts
counted as killed and "no tests" mutants as survived. Goal (issue #20): >= 85% per module, each surviving mutant
killed by a new test or explained as equivalent. Not run in CI: see each section's run time.
"""


def mutmut(module: str, *args: str) -> subprocess.CompletedProcess:
    """`mutmut ARGS` in a fresh interpreter with the config narrowed to MODULE (see _inner)."""
    cmd = [sys.executable, __file__, "--inner", module, *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def _inner(module: str, args: list[str]) -> None:
    """mutmut reads [tool.mutmut] from pyproject.toml only; override the per-module fields before its CLI loads."""
    import mutmut.configuration as mc

    paths, tests = MODULES[module]
    mc._config = dataclasses.replace(
        mc._load_config(), only_mutate=paths, pytest_add_cli_args_test_selection=list(tests)
    )
    from mutmut.__main__ import cli

    cli(args, prog_name="mutmut")


def one_line_diff(diff: str) -> str:
    minus = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    plus = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return f"`{' / '.join(minus) or '(nothing)'}` -> `{' / '.join(plus) or '(nothing)'}`"


RERENDERED = " (verdicts re-rendered by `--report-only`)"


def recorded_run(module: str) -> str | None:
    """The module's current "- command: ..." line (command, run time, date), to keep when only re-rendering."""
    text = REPORT.read_text() if REPORT.is_file() else ""
    found = re.search(rf"<!-- mutate:{module} -->.*?^(- command: [^\n]*)$", text, re.S | re.M)
    return found.group(1) if found else None


def section(module: str, statuses: dict[str, str], diffs: dict[str, str], command: str, seconds: float | None) -> str:
    paths, tests = MODULES[module]
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    killed = sum(n for s, n in counts.items() if s in KILLED)
    survived = sum(n for s, n in counts.items() if s in SURVIVED)
    score = f"{100 * killed / (killed + survived):.1f}%" if killed + survived else "n/a"
    took = f"{seconds / 60:.1f} min" if seconds is not None else "not rerun (report only)"
    run_line = f"- command: `{command}`, run time {took}, {date.today().isoformat()}"
    if seconds is None and (recorded := recorded_run(module)):  # keep the run's own command, time and date
        head, sep, day = recorded.rpartition(", ")
        run_line = recorded if RERENDERED in head or not sep else f"{head}{RERENDERED}, {day}"
    lines = [
        f"<!-- mutate:{module} -->",
        f"## {module}",
        "",
        run_line,
        f"- mutated: {', '.join(paths)}; tests: {', '.join(tests)}",
        *([f"- note: {NOTES[module]}"] if module in NOTES else []),
        f"- score: **{score}** ({killed} killed of {killed + survived}; "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + ")",
        "",
    ]
    rest = sorted((k for k, s in statuses.items() if s not in KILLED | UNRUN), key=lambda k: (statuses[k], k))
    if rest:
        lines += ["| mutant | status | change | verdict |", "|---|---|---|---|"]
        for k in rest:
            verdict = VERDICTS.get(k, "equivalent? not yet judged" if statuses[k] in SURVIVED else "")
            change = diffs.get(k, "").replace("|", "\\|")
            lines.append(f"| `{k}` | {statuses[k]} | {change} | {verdict} |")
    else:
        lines.append("Every mutant killed.")
    lines.append(f"<!-- /mutate:{module} -->")
    return "\n".join(lines) + "\n"


def write_section(module: str, text: str) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    old = REPORT.read_text() if REPORT.is_file() else HEADER
    pattern = re.compile(rf"<!-- mutate:{module} -->.*?<!-- /mutate:{module} -->\n", re.S)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    REPORT.write_text(new)


def run_module(module: str, report_only: bool, only: list[str]) -> None:
    command = f"make mutate MODULE={module}" + (f" ARGS='--only {' '.join(only)}'" if only else "")
    seconds = None
    if not report_only:
        shutil.rmtree(REPO / "mutants", ignore_errors=True)  # per-module config: never reuse another run's cache
        start = time.monotonic()
        proc = mutmut(module, "run", "--max-children", "1", *only)
        seconds = time.monotonic() - start
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        if proc.returncode != 0:
            sys.exit(f"mutmut run failed for {module} (exit {proc.returncode})")
    out = mutmut(module, "results", "--all", "true")
    statuses = dict(re.findall(r"^\s+(\S+): (.+?)\s*$", out.stdout, re.M))
    if not statuses:
        sys.exit(f"no mutmut results for {module}:\n{out.stdout}\n{out.stderr}")
    diffs = {k: one_line_diff(mutmut(module, "show", k).stdout) for k, s in statuses.items() if s not in KILLED | UNRUN}
    write_section(module, section(module, statuses, diffs, command, seconds))
    print(f"{module}: wrote its section of {REPORT.relative_to(REPO)}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        _inner(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--report-only", action="store_true", help="re-parse ./mutants/ of the last run")
    parser.add_argument("--only", nargs="+", default=[], help="mutant-name globs: run only these (others: not checked)")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; valid: {', '.join(MODULES)}")
    for module in args.modules or list(MODULES):
        run_module(module, args.report_only, args.only)


if __name__ == "__main__":
    main()
