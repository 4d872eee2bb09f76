"""Run a paper manifest's grids as Hydra multiruns, then build its tables from the run records.

Each (table, dataset) is one ``qdsbench-train -m`` sweep; datasets whose files are absent are not launched but
reported as "data not present" rows. Tables are rebuilt from whatever runs exist, so a partial or interrupted
reproduction still yields tables (with n_runs telling how many seeds each cell has).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from qdsbench.cli._config import REPO_ROOT, config_dir
from qdsbench.paper.records import load_runs
from qdsbench.paper.tables import add_average_rows, build_table, load_expected, write_table

BUDGETS = ("paper", "cpu", "smoke")


def load_manifest(paper: str) -> DictConfig:
    path = Path(config_dir()) / "paper" / f"{paper}.yaml"
    if not path.is_file():
        papers = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SystemExit(f"qdsbench-reproduce: error: unknown paper '{paper}'; valid choices: {', '.join(papers)}")
    return OmegaConf.load(path)


def _value(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def data_problem(experiment: str, overrides: list[str]) -> str | None:
    """Why the dataset of this configuration cannot be loaded, or None when it can."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from qdsbench.builders import build_datamodule
    from qdsbench.data.errors import DatasetCorruptError, DatasetMissingError

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", *overrides, "paths.output_dir=unused"])
    GlobalHydra.instance().clear()
    try:
        build_datamodule(cfg).prepare_data()
    except (DatasetMissingError, DatasetCorruptError) as err:
        return str(err)
    return None


def sweep_commands(manifest: DictConfig, table: str, budget: str, log_dir: Path) -> tuple[list[list[str]], dict]:
    spec, plan = manifest.tables[table], manifest.budgets[budget]
    grid = OmegaConf.to_container(spec.grid.get(budget) or spec.grid.paper)
    datasets = grid.pop("data", [None])
    sweeps = [f"{k}={','.join(_value(x) for x in v)}" if isinstance(v, list) else f"{k}={_value(v)}"
              for k, v in grid.items()]
    seeds = "seed=" + ",".join(str(s) for s in plan.seeds)
    experiments = list(spec.experiments) if "experiments" in spec else [spec.experiment]
    per_experiment = plan.get("per_experiment") or {}
    commands, missing = [], {}
    for experiment in experiments:
        for dataset in datasets:
            overrides = [*plan.overrides, *per_experiment.get(experiment, []),
                         *([f"data={dataset}"] if dataset else [])]
            problem = data_problem(experiment, overrides) if budget != "smoke" else None
            if problem:
                missing[str(dataset)] = problem
                continue
            commands.append(["qdsbench-train", "-m", f"experiment={experiment}", *overrides, *sweeps, seeds,
                             f"paths.log_dir={log_dir}", f"task_name={manifest.paper}_{table}"])
    return commands, missing


def run(manifest: DictConfig, tables: list[str], budget: str, log_root: Path, out_dir: Path,
        tables_only: bool = False) -> list[Path]:
    log_dir = log_root / manifest.paper / budget
    written = []
    for table in tables:
        spec = manifest.tables[table]
        commands, missing = sweep_commands(manifest, table, budget, log_dir)
        started = time.time()
        if not tables_only:
            for command in commands:
                print("+", shlex.join(command), flush=True)
                exe = Path(sys.executable).parent / command[0]
                subprocess.run([str(exe) if exe.exists() else command[0], *command[1:]], cwd=REPO_ROOT)
        elapsed = time.time() - started
        runs = [r for r in load_runs(log_dir / f"{manifest.paper}_{table}")]
        expected = load_expected(REPO_ROOT / manifest.expected, table)
        metrics = list(spec.metric) if OmegaConf.is_list(spec.metric) else [spec.metric]
        scale = float(spec.get("scale", 100.0))
        result = build_table(runs, list(spec.rows), spec.column, metrics if len(metrics) > 1 else metrics[0],
                             expected, missing, scale=scale)
        if spec.get("average_over"):
            result = add_average_rows(result, list(spec.rows), spec.column, spec.average_over, metrics, expected,
                                      scale)
        header = [
            f"Budget: **{manifest.budgets[budget].label}**.",
            f"Made by: `qdsbench-reproduce --paper {manifest.paper} --budget {budget} --tables {table}` "
            f"(runs under `{log_dir}`), i.e. " + "; ".join(f"`{shlex.join(c)}`" for c in commands),
            f"Metric: {', '.join(f'`{m}`' for m in metrics)}{' in %' if scale == 100 else ''}, mean ± sample std "
            f"over seeds; paper values and per-row tolerances from `{manifest.expected}`.",
            f"Runs found: {len(runs)}; sweep wall time this invocation: {elapsed / 60:.1f} min "
            f"({'tables rebuilt from existing runs' if tables_only else 'runs launched'}).",
        ]
        stem = out_dir / manifest.paper / table
        write_table(result, [*spec.rows, spec.column], spec.title, header, stem,
                    metrics if len(metrics) > 1 else None)
        written.append(stem.with_suffix(".md"))
        print(f"wrote {stem.with_suffix('.md')}", flush=True)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="qdsbench-reproduce", description=__doc__)
    parser.add_argument("--paper", default="qds")
    parser.add_argument("--budget", default="cpu", choices=BUDGETS)
    parser.add_argument("--tables", default="all", help="comma-separated table names from the manifest, or all")
    parser.add_argument("--log-dir", default="logs/reproduce", type=Path)
    parser.add_argument("--out", default="results", type=Path)
    parser.add_argument("--tables-only", action="store_true", help="rebuild tables from existing runs")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.paper)
    names = list(manifest.tables) if args.tables == "all" else args.tables.split(",")
    unknown = [n for n in names if n not in manifest.tables]
    if unknown:
        raise SystemExit(f"qdsbench-reproduce: error: unknown table '{unknown[0]}'; valid choices: "
                         f"{', '.join(manifest.tables)}")
    run(manifest, names, args.budget, args.log_dir, args.out, args.tables_only)


if __name__ == "__main__":
    main()
