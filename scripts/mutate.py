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
    python scripts/mutate.py --retest attention         # after adding tests or editing code: rerun only the
                                                       # survivors and the changed functions of the recorded run

A full run records every mutant's status and each function's source hash in results/quality/mutants/<module>.json;
``--retest`` starts from it, so a new test is checked in minutes instead of the module's full run time.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import importlib.util
import json
import os
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
        # subprocesses (the installed package) and fails even unmutated under mutmut, so only its lock test is used;
        # test_train.py's training runs (minutes per mutant of RunRecord.start) are left to the unit tests' reach
        [
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
        # peers.py's PennyLane and torchquantum-ng rows need .venv-bench (see PEER_VENV_MODULES)
        [
            "tests/test_qontot_fast.py",
            "tests/test_mission_parted.py",
            "tests/test_quantum_mutants.py",
            "tests/test_quantum_peers.py",
            "tests/test_quantum_sampling_mutants.py",
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
            "tests/test_attention_mutants.py",
            "tests/test_base_sdpa_mutants.py",
            "tests/test_delta_mutants.py",
            "tests/test_diagnostics_mutants.py",
            "tests/test_kernelized_mutants.py",
            "tests/test_monarch_mutants.py",
            "tests/test_normalizers_mutants.py",
            "tests/test_qontot_mutants.py",
            "tests/test_qr_mutants.py",
            "tests/test_sink_window_mutants.py",
            "tests/test_sinkhorn_mutants.py",
            "tests/test_backend_knowledge.py",
            "tests/test_qontot_qiskit.py",
        ],
    ),
}

VERDICTS_FILE = REPO / "scripts" / "mutation_verdicts.yaml"


def load_verdicts(path: Path = VERDICTS_FILE) -> tuple[dict[str, str], dict[str, str]]:
    """(verdict by mutant id, note by module) from the verdicts file: data, judged by hand, kept beside the tool."""
    import yaml

    data = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    verdicts = {mutant: entry["why"] for entry in data.get("verdict", []) for mutant in entry["mutants"]}
    return verdicts, data.get("notes", {})


VERDICTS, NOTES = load_verdicts()
KILLED = {"killed", "timeout"}
SURVIVED = {"survived", "no tests"}
UNRUN = {"not checked", "skipped"}  # left out by --only: counted, not listed
HEADER = """# Mutation testing

`make mutate MODULE=<name>` (scripts/mutate.py, mutmut 3.8.1, one worker) mutates one module and runs its fast test
files; each section below was written by the command it names. Score = killed / (killed + survived), timeouts
counted as killed and "no tests" mutants as survived. Goal (issue #20): >= 85% per module, each surviving mutant
killed by a new test or explained as equivalent. Not run in CI: see each section's run time.
"""


# mutmut forks a child per mutant after running the tests once: qiskit's transpiler passes run on a Rust (rayon)
# thread pool, which deadlocks in a forked child; QISKIT_IN_PARALLEL=TRUE makes them serial (measured: the Aer tests
# hung in futex_wait until mutmut's timeout without it, ~4.5 s per mutant with it)
MUTMUT_ENV = {"QISKIT_IN_PARALLEL": "TRUE", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
# modules whose tests need the benchmark venv's peers (PennyLane, torchquantum-ng): `make mutate` runs them with it
PEER_VENV_MODULES = {"quantum": ("pennylane", "torchquantum")}


def mutmut(module: str, *args: str) -> subprocess.CompletedProcess:
    """`mutmut ARGS` in a fresh interpreter with the config narrowed to MODULE (see _inner)."""
    cmd = [sys.executable, __file__, "--inner", module, *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, **MUTMUT_ENV})


def require_peers(module: str) -> None:
    """Without the peers their tests skip and every mutant of their code would survive as untested."""
    missing = [name for name in PEER_VENV_MODULES.get(module, ()) if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"mutate {module}: {', '.join(missing)} not importable by {sys.executable}; "
            f"run `make mutate MODULE={module}` (it uses .venv-bench, built by `make .venv-bench/.stamp`)"
        )


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


def mutant_diffs(wanted: set[str]) -> dict[str, str]:
    """One-line diffs of the wanted mutants, read from ./mutants/ in this process: mutmut writes each mutant as a
    function ``<name>__mutmut_<i>`` beside the original ``<name>__mutmut_orig`` (``mutmut show`` per mutant costs a
    process start each, minutes for a large module)."""
    diffs = {}
    for path in (REPO / "mutants").rglob("*.py"):
        rel = path.relative_to(REPO / "mutants").with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        source = path.read_text()
        lines = source.splitlines()
        functions = {  # by line numbers: ast.get_source_segment rescans the whole file per call
            node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name
        }
        for name, code in functions.items():
            key = f"{module}.{name}"
            original = functions.get(function_of(name) + "__mutmut_orig")
            if key in wanted and original is not None:
                before = original.replace(function_of(name) + "__mutmut_orig", "f", 1).splitlines()
                diff = difflib.unified_diff(before, code.replace(name, "f", 1).splitlines(), lineterm="", n=0)
                diffs[key] = one_line_diff("\n".join(diff))
    return diffs


def _sides(change: str) -> tuple[str, str]:
    """(old, new) source of a one_line_diff: "`old` -> `new`"."""
    old, _, new = change.strip("`").partition("` -> `")
    return old, new


def _device_dropped(old: str, new: str) -> bool:
    """new is old with one ``device=<expr>`` argument set to None or removed."""
    for found in re.finditer(r"device=([\w.]+)", old):
        start, end = found.span()
        for replacement in ("device=None", ""):
            if old[:start] + replacement + old[end:] == new:
                return True
        if old[:start].rstrip(", ") + old[end:] == new:
            return True
    return False


def _einsum_or_float_case(old: str, new: str) -> bool:
    """Only letter case changed, inside einsum subscripts or float("-inf") / float("nan")."""
    if old == new or old.lower() != new.lower():
        return False
    changed = [m.group(0) for m in re.finditer(r'einsum\("[^"]*"|float\("[^"]*"\)', new)]
    return bool(changed) and re.sub(r'einsum\("[^"]*"|float\("[^"]*"\)', "", old) == re.sub(
        r'einsum\("[^"]*"|float\("[^"]*"\)', "", new
    )


def _axis_sign_on_4d(old: str, new: str) -> bool:
    """One ``-2`` became ``+2`` (a dim or shape index)."""
    return any(old[:i] + "+2" + old[i + 2 :] == new for i in range(len(old)) if old.startswith("-2", i))


# Classes of mutant that are equivalent by construction, judged once here instead of per id (an id's own verdict in
# mutation_verdicts.yaml wins). Each rule is a predicate on the (old, new) source of the changed line.
RULES = [
    (
        _device_dropped,
        "equivalent on the CPU: device=None (or no device) is the CPU, where the tests run; the CUDA paths are "
        "tested behind the gpu marker (tests/test_gpu.py)",
    ),
    (_einsum_or_float_case, "equivalent: upper-case einsum labels name the same contraction; float() ignores case"),
    (
        _axis_sign_on_4d,
        "equivalent under the backend contract: its tensors are 4-D ((B, H, N, d), (B, H, N, N)), where dim +2 is "
        "dim -2",
    ),
]


def rule_verdict(change: str) -> str | None:
    old, new = _sides(change)
    return next((why for rule, why in RULES if rule(old, new)), None)


RERENDERED = " (verdicts re-rendered by `--report-only`)"


def recorded_run(module: str) -> str | None:
    """The module's current "- command: ..." line (command, run time, date), to keep when only re-rendering."""
    text = REPORT.read_text() if REPORT.is_file() else ""
    found = re.search(rf"<!-- mutate:{module} -->.*?^(- command: [^\n]*)$", text, re.S | re.M)
    return found.group(1) if found else None


def section(
    module: str,
    statuses: dict[str, str],
    diffs: dict[str, str],
    command: str,
    seconds: float | None,
    run_line: str | None = None,
) -> str:
    paths, tests = MODULES[module]
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    killed = sum(n for s, n in counts.items() if s in KILLED)
    survived = sum(n for s, n in counts.items() if s in SURVIVED)
    score = f"{100 * killed / (killed + survived):.1f}%" if killed + survived else "n/a"
    took = f"{seconds / 60:.1f} min" if seconds is not None else "not rerun (report only)"
    given, run_line = run_line, run_line or f"- command: `{command}`, run time {took}, {date.today().isoformat()}"
    if given is None and seconds is None and (recorded := recorded_run(module)):  # keep the run's command and time
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
            judged = VERDICTS.get(k) or rule_verdict(diffs.get(k, ""))
            verdict = judged or ("not yet judged" if statuses[k] in SURVIVED else "")
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


STATE = REPO / "results" / "quality" / "mutants"  # per module: every mutant's status and each function's hash


def function_of(mutant: str) -> str:
    return mutant.rsplit("__mutmut_", 1)[0]


def function_hashes() -> dict[str, str]:
    """mutmut's hash of each mutated function's source (from ./mutants/**/*.meta), by mutant-id prefix."""
    hashes = {}
    for meta in (REPO / "mutants").rglob("*.py.meta"):
        module = meta.relative_to(REPO / "mutants").with_suffix("").with_suffix("").as_posix().replace("/", ".")
        module = module.removesuffix(".__init__")  # a package's mutants are named after the package
        for name, digest in json.loads(meta.read_text()).get("hash_by_function_name", {}).items():
            hashes[f"{module}.{name}"] = digest
    return hashes


def read_statuses(module: str) -> dict[str, str]:
    out = mutmut(module, "results", "--all", "true")
    statuses = dict(re.findall(r"^\s+(\S+): (.+?)\s*$", out.stdout, re.M))
    if not statuses:
        sys.exit(f"no mutmut results for {module}:\n{out.stdout}\n{out.stderr}")
    return statuses


def run_mutmut(module: str, *names: str) -> float:
    start = time.monotonic()
    proc = mutmut(module, "run", "--max-children", "1", *names)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    if proc.returncode != 0:
        sys.exit(f"mutmut run failed for {module} (exit {proc.returncode})")
    return time.monotonic() - start


def recorded_state(module: str) -> dict | None:
    """The saved picture of the module's last full or merged run (statuses, function hashes, run line): what a
    --retest starts from, and what --report-only re-renders (after a --retest, ./mutants/ knows only the rerun)."""
    path = STATE / f"{module}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def retest(module: str) -> tuple[dict[str, str], str]:
    """Rerun only what new tests or edits can change: the mutants that survived the recorded run and every mutant
    of a function whose source changed since; every other verdict is the recorded one (a killed mutant of an
    unchanged function stays killed while tests are only added). Returns the merged statuses and the run line."""
    recorded = recorded_state(module)
    if recorded is None:
        sys.exit(
            f"no recorded run of {module} to retest ({STATE.relative_to(REPO)}/{module}.json): "
            f"run `make mutate MODULE={module}`"
        )
    old, old_hashes = recorded["statuses"], recorded["hashes"]
    shutil.rmtree(REPO / "mutants", ignore_errors=True)
    start = time.monotonic()
    # generate the current mutants (and mutmut's test stats) by running one mutant of the recorded run
    probe = next((k for k, s in sorted(old.items()) if s in KILLED), next(iter(old)))
    mutmut(module, "run", "--max-children", "1", probe)  # may match nothing if its function changed: still generates
    hashes = function_hashes()
    if not hashes:
        sys.exit(f"mutmut generated no mutants for {module}")
    changed = {f for f, h in hashes.items() if old_hashes.get(f) != h}
    current = read_statuses(module)
    rerun = to_rerun(old, changed, current)
    if rerun:
        run_mutmut(module, *rerun)
    seconds = time.monotonic() - start
    merged = merge_verdicts(old, read_statuses(module), current, rerun)
    line = (
        f"- command: `make mutate MODULE={module} ARGS=--retest`: {len(rerun)} mutants rerun in "
        f"{seconds / 60:.1f} min ({len(changed)} changed functions and the survivors of the recorded run); the other "
        f"{len(merged) - len(rerun)} verdicts from the recorded full run and the retests since "
        f"({base_run(recorded)}), {date.today().isoformat()}"
    )
    return merged, line


def to_rerun(old: dict[str, str], changed: set[str], current: dict[str, str]) -> list[str]:
    """The mutants a retest must run: every current mutant of a changed function, and every one the recorded run
    left alive or unrun (a new mutant of an unchanged function cannot exist: mutmut numbers them per function)."""
    return sorted(k for k in current if function_of(k) in changed or old.get(k) in SURVIVED | UNRUN)


def merge_verdicts(old: dict[str, str], fresh: dict[str, str], current: dict[str, str], rerun: list[str]):
    """One verdict per current mutant: the rerun ones from this run, the others as recorded (a mutant the record
    never saw takes this run's status). Mutants of deleted code, absent from ``current``, are dropped."""
    return {k: fresh[k] if k in rerun else old.get(k, fresh[k]) for k in current}


def base_run(recorded: dict) -> str:
    """The full run a chain of retests started from (not the last retest's line, which would nest each time)."""
    return recorded.get("base", recorded["run"])


def save_state(module: str, statuses: dict[str, str], run: str, base: str | None = None) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    functions = {function_of(k) for k in statuses}
    hashes = {f: h for f, h in function_hashes().items() if f in functions}
    record = {"run": run, "base": base or run, "tests": MODULES[module][1], "hashes": hashes}
    record["statuses"] = dict(sorted(statuses.items()))
    (STATE / f"{module}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def run_module(module: str, report_only: bool, only: list[str], again: bool = False) -> None:
    command = f"make mutate MODULE={module}" + (f" ARGS='--only {' '.join(only)}'" if only else "")
    seconds, run_line = None, None
    if not report_only:
        require_peers(module)
    if again:
        statuses, run_line = retest(module)
    else:
        if not report_only:
            shutil.rmtree(REPO / "mutants", ignore_errors=True)  # per-module config: never reuse another run's cache
            seconds = run_mutmut(module, *only)
        recorded = recorded_state(module) if report_only and not only else None
        statuses = recorded["statuses"] if recorded else read_statuses(module)
    diffs = mutant_diffs({k for k, s in statuses.items() if s not in KILLED | UNRUN})
    text = section(module, statuses, diffs, command, seconds, run_line)
    write_section(module, text)
    if not only and not report_only:  # a full (or merged) picture: the state a later --retest starts from
        previous = recorded_state(module) if again else None
        run = (recorded_run(module) or "").removeprefix("- command: ")
        save_state(module, statuses, run, base_run(previous) if previous else None)
    print(f"{module}: wrote its section of {REPORT.relative_to(REPO)}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        _inner(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--report-only", action="store_true", help="re-parse ./mutants/ of the last run")
    parser.add_argument(
        "--retest", action="store_true", help="rerun only survivors and changed functions of the recorded run"
    )
    parser.add_argument("--only", nargs="+", default=[], help="mutant-name globs: run only these (others: not checked)")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; valid: {', '.join(MODULES)}")
    for module in args.modules or list(MODULES):
        run_module(module, args.report_only, args.only, args.retest)


if __name__ == "__main__":
    main()
