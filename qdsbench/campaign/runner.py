"""The campaign runner: plan, run within a time budget (resuming interrupted runs), harvest records, build tables.

Work directories live under ``<work>/<paper>/<protocol>/<uid>/`` (not committed); each attempt of a run is
``qdsbench-train ... resume=auto`` there, so an interrupted run continues from its last checkpoint in the next
session or on another machine that has the work directory. Finished runs become committed records
(:mod:`qdsbench.campaign.records`), and tables are built from records only.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from qdsbench.campaign import figures, pieces, tables
from qdsbench.campaign import records as rec
from qdsbench.campaign.budget import BUDGET_MARGIN, fits_in_budget
from qdsbench.campaign.manifest import (
    RUN,
    STAGE,
    Unit,
    campaign_units,
    check_protocol,
    load_manifest,
    planned_seeds,
    protocol_tables,
    table_units,
)
from qdsbench.campaign.stage import resolve
from qdsbench.config import REPO_ROOT, compose
from qdsbench.errors import UserError
from qdsbench.runrecord import METRICS_FILE, RUN_FILE

LABEL_KEYS = (
    "data.name",
    "model.name",
    "attention.name",
    "model.depth",
    "attention.layers",
    "attention.ansatz",
    "data.pred_len",
    "data.seq_len",
    "trainer.max_epochs",
)
START_OVERHEAD_S = 30.0  # process start, data loading and the final test, on top of the epochs
LOG_TAIL_BYTES = 1 << 16  # of a unit's campaign.log, read for the error that ended its last attempt


@dataclass
class Status:
    state: str  # done | partial | todo | no data
    epochs_done: int = 0
    estimate_s: float | None = None  # seconds still needed (None: nothing measured or hinted yet)


class Campaign:
    def __init__(
        self,
        paper: str,
        protocol: str,
        results: Path = REPO_ROOT / "results",
        work: Path = REPO_ROOT / "logs" / "campaign",
        tables_: list[str] | None = None,
        restrict: dict[str, list[str]] | None = None,
        check_data: bool = True,
    ):
        self.manifest = load_manifest(paper)
        self.protocol = protocol
        check_protocol(self.manifest, protocol)
        self.paper, self.results, self.work = paper, Path(results), Path(work)
        self.table_names = tables_ or protocol_tables(self.manifest, protocol)
        self.units = [
            u
            for u in campaign_units(self.manifest, protocol, self.table_names)
            if all(dict(u.point).get(k, v[0]) in v for k, v in (restrict or {}).items())
        ]
        self.check_data = check_data
        # Per-process caches: composed configs and their label values per unit group, data checks per dataset.
        self._labels: dict[str, dict[str, Any]] = {}
        self._configs: dict[str, Any] = {}
        self._data_problems: dict[str, str | None] = {}

    # --- what each unit is and where it stands -------------------------------------------------------------
    @cached_property
    def records(self) -> dict[str, dict[str, Any]]:
        return rec.load_records(self.results, self.paper, self.protocol)

    def data_problem(self, unit: Unit) -> str | None:
        """Why this unit's dataset cannot be loaded here (None when it can); checked once per dataset."""
        if unit.kind == STAGE:
            return None
        self.labels(unit)
        cfg = self._configs[unit.group]
        key = f"{cfg.data.name}:{OmegaConf.select(cfg, 'data.data_dir')}"
        if key not in self._data_problems:
            from qdsbench.builders import build_datamodule
            from qdsbench.errors import DatasetCorruptError, DatasetMissingError

            try:
                build_datamodule(cfg).prepare_data()
                self._data_problems[key] = None
            except (DatasetMissingError, DatasetCorruptError) as err:
                self._data_problems[key] = str(err).splitlines()[0]
        return self._data_problems[key]

    def labels(self, unit: Unit) -> dict[str, Any]:
        """The config values a table groups by, from composing the unit's config (data-independent)."""
        if unit.group not in self._labels:
            if unit.kind == STAGE:
                self._labels[unit.group] = {}
            else:
                cfg = compose("train", [*unit.train_args(), "paths.output_dir=unused"])
                self._configs[unit.group] = cfg
                spec_keys = {
                    k for t in unit.tables for k in (*self.manifest.tables[t].rows, self.manifest.tables[t].column)
                }
                self._labels[unit.group] = {k: OmegaConf.select(cfg, k) for k in (*LABEL_KEYS, *spec_keys)}
        return self._labels[unit.group]

    def _for_protocol(self, value: Any) -> Any:
        """A stage's ``args`` or ``cost_s``: one value for every protocol, or a mapping protocol -> value."""
        return value.get(self.protocol) if OmegaConf.is_dict(value) else value

    def unit_dir(self, unit: Unit) -> Path:
        return self.work / self.paper / self.protocol / unit.uid

    def status(self, unit: Unit) -> Status:
        if unit.uid in self.records:
            return Status("done")
        if unit.kind == STAGE:
            stage = self.manifest.stages[unit.name]
            if self.stage_outputs_exist(unit.name):
                return Status("done")  # committed outputs of an earlier run of this stage
            progress = pieces.read_progress(self.stage_output(stage.progress)) if stage.get("progress") else None
            if progress and progress.get("done"):  # an incremental stage with finished pieces (pieces.py)
                return Status("partial", int(progress["done"]), progress.get("seconds_left"))
            return Status("todo", estimate_s=float(self._for_protocol(stage.get("cost_s")) or 0) or None)
        if self.check_data and self.data_problem(unit):
            return Status("no data")
        epochs = _epochs_logged(self.unit_dir(unit))
        max_epochs = int(self.labels(unit).get("trainer.max_epochs") or 1)
        estimate = self._estimate(unit, max_epochs)
        if estimate is not None and epochs:
            estimate = START_OVERHEAD_S + (estimate - START_OVERHEAD_S) * max(0.0, 1 - epochs / max_epochs)
        return Status("partial" if epochs else "todo", epochs, estimate)

    def _estimate(self, unit: Unit, max_epochs: int) -> float | None:
        """Measured first (other seeds of the cell, then the experiment's seconds per epoch), then the hint."""
        same_cell = [
            r["fit_seconds"] for r in self.records.values() if r.get("fit_seconds") and _group_of(r) == unit.group
        ]
        if same_cell:
            return START_OVERHEAD_S + sum(same_cell) / len(same_cell)
        per_epoch = [
            r["seconds_per_epoch"]
            for r in self.records.values()
            if r.get("seconds_per_epoch") and r["experiment"] == unit.name and _same_backend(r, self.labels(unit))
        ]
        if per_epoch:
            return START_OVERHEAD_S + max_epochs * sorted(per_epoch)[len(per_epoch) // 2]
        hint = _cost_hint(self.manifest, unit)
        return None if hint is None else START_OVERHEAD_S + max_epochs * hint

    # --- plan ----------------------------------------------------------------------------------------------
    def plan(self) -> list[str]:
        """One line per unit, one per table (a unit that two tables share counts in both), then the total."""
        lines, totals = [], {"done": 0, "partial": 0, "todo": 0, "no data": 0}
        left, unknown = 0.0, 0
        per_table = {t: {"done": 0, "left": 0, "no data": 0, "seconds": 0.0} for t in self.table_names}
        for unit in self.units:
            st = self.status(unit)
            totals[st.state] += 1
            for table in (t for t in unit.tables if t in per_table):
                row, to_do = per_table[table], st.state in ("partial", "todo")
                row["left" if to_do else st.state] += 1
                row["seconds"] += (st.estimate_s or 0.0) if to_do else 0.0
            if st.state in ("partial", "todo"):
                if st.estimate_s is None:
                    unknown += 1
                else:
                    left += st.estimate_s
            cost = "—" if st.state in ("done", "no data") else _hours(st.estimate_s)
            done_what = "pieces done" if unit.kind == STAGE else "epochs logged"
            extra = f" ({done_what} {st.epochs_done})" if st.state == "partial" else ""
            if st.state in ("partial", "todo") and (error := self.last_error(unit)):
                extra += f" (last attempt: {error})"
            lines.append(f"{st.state:7s} {cost:>8s}  {unit.uid}{extra}")
        problems = sorted({p for u in self.units if (p := self.data_problem(u))}) if self.check_data else []
        lines += [f"no data: {p}" for p in problems]
        lines += [
            f"table {t}: done {row['done']}, left {row['left']}, no data here {row['no data']}; "
            f"about {row['seconds'] / 3600:.1f} h of one core left"
            for t, row in per_table.items()
        ]
        lines.append(
            f"total: {len(self.units)} units; done {totals['done']}, partial {totals['partial']}, "
            f"todo {totals['todo']}, no data here {totals['no data']}; "
            f"about {left / 3600:.1f} h of one core left"
            + (f" plus {unknown} units with no estimate yet" if unknown else "")
        )
        return lines

    def last_error(self, unit: Unit) -> str | None:
        """The one-line error that ended the unit's last attempt here (a bad setting or a failed health check is
        retried by every session until fixed, so the plan names it), or None."""
        log = self.unit_dir(unit) / "campaign.log"
        if not log.is_file():
            return None
        with log.open("rb") as f:  # an error ends its attempt: the tail is enough, however long training logged
            f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            tail = f.read().decode(errors="replace")
        attempts = tail.split("\n$ ")
        errors = [line for line in attempts[-1].splitlines() if line.startswith("qdsbench: error: ")]
        return errors[-1].removeprefix("qdsbench: error: ") if errors else None

    def commands(self) -> list[str]:
        """One shell line per unit not done: what a cluster array job (or a second machine) runs."""
        out = []
        for unit in self.units:
            if unit.kind == RUN and self.status(unit).state in ("partial", "todo"):
                out.append(shlex.join(["qdsbench-train", *self._run_args(unit)]))
        return out

    def _run_args(self, unit: Unit) -> list[str]:
        unit_dir = self.unit_dir(unit)
        attempt = 1 + sum(1 for _ in unit_dir.glob("attempt-*")) if unit_dir.is_dir() else 1
        defaults = ("logger=csv", "trainer.enable_progress_bar=false", f"tags=[campaign,{self.paper},{self.protocol}]")
        return [
            *unit.train_args(defaults),
            f"paths.log_dir={unit_dir}",
            "task_name=run",
            "resume=auto",
            "num_threads=1",
            f"hydra.run.dir={unit_dir}/attempt-{attempt:03d}",
        ]

    # --- run -----------------------------------------------------------------------------------------------
    def run(self, hours: float, jobs: int = 1, say: Callable[[str], None] = print) -> int:
        """Run what is not done for at most ``hours``; returns the process exit status (0, or 130/143)."""
        deadline = time.time() + hours * 3600
        lock = _take_lock(self.work / self.paper / self.protocol / ".runner.lock")
        stop: dict[str, int] = {}

        def on_signal(signum, _frame):
            stop["signal"] = signum

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        running: dict[str, tuple[Unit, subprocess.Popen]] = {}
        try:
            queue = sorted(
                (u for u in self.units if self.status(u).state in ("partial", "todo")),
                key=lambda u: self.status(u).state != "partial",
            )
            while (queue or running) and "signal" not in stop:
                for uid, (unit, proc) in list(running.items()):
                    if proc.poll() is not None:
                        del running[uid]
                        self._finished(unit, proc.returncode, say)
                left = deadline - time.time()
                while queue and len(running) < jobs and left > 0:
                    unit = queue.pop(0)
                    estimate = self.status(unit).estimate_s
                    if not self.incremental(unit) and not fits_in_budget(estimate, left):
                        say(
                            f"skip    {unit.uid}: needs about {_hours(estimate)} ({_hours(BUDGET_MARGIN * estimate)} "
                            f"with the {BUDGET_MARGIN}x margin for a slower machine), {_hours(left)} left in the budget"
                        )
                        continue
                    say(f"start   {unit.uid} (estimate {_hours(estimate) if estimate else 'none yet'})")
                    running[unit.uid] = (unit, self._launch(unit, deadline))
                if left <= 0:
                    if running:
                        say("budget spent: stopping the running jobs (they resume from their last checkpoint)")
                    break
                if not queue and not running:
                    break
                time.sleep(1.0)
        finally:
            for _unit, proc in running.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for unit, proc in running.values():
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self._finished(unit, proc.returncode, say)
            for s, handler in old.items():
                signal.signal(s, handler)
            lock.close()
        self.build_tables(say)
        if "signal" in stop:
            return 128 + stop["signal"]
        return 0

    def _launch(self, unit: Unit, deadline: float) -> subprocess.Popen:
        unit_dir = self.unit_dir(unit)
        unit_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
            "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        }
        if unit.kind == STAGE:
            stage = self.manifest.stages[unit.name]
            args = self._for_protocol(stage.get("args")) or []
            argv = [sys.executable, "-m", "qdsbench.campaign.stage", stage.function, json.dumps([str(a) for a in args])]
            if self.incremental(unit):  # it starts only the pieces that end before the runner's budget does
                env[pieces.DEADLINE_ENV] = str(deadline)
        else:
            argv = [sys.executable, "-m", "qdsbench.cli.train", *self._run_args(unit)]
        log = open(unit_dir / "campaign.log", "a")
        log.write(f"\n$ {shlex.join(argv)}\n")
        log.flush()
        return subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _finished(self, unit: Unit, returncode: int | None, say: Callable[[str], None]) -> None:
        if unit.kind == STAGE:
            if returncode == 0 and not self.stage_outputs_exist(unit.name):
                stage = self.manifest.stages[unit.name]
                if self.incremental(unit):
                    progress = pieces.read_progress(self.stage_output(stage.progress)) or {}
                    done, total = progress.get("done", 0), progress.get("total", "?")
                    say(f"stopped {unit.uid} at the budget: {done} of {total} pieces done")
                else:
                    missing = ", ".join(self.missing_outputs(unit.name))
                    say(f"failed  {unit.uid} (exit 0, but its outputs are missing: {missing})")
                return
            if returncode == 0:
                record = {
                    "uid": unit.uid,
                    "paper": self.paper,
                    "protocol": self.protocol,
                    "kind": STAGE,
                    "stage": unit.name,
                    "function": self.manifest.stages[unit.name].function,
                }
                rec.write_record(self.results, record)
                self.records[unit.uid] = record
            say(f"{'done   ' if returncode == 0 else 'failed '} {unit.uid} (exit {returncode})")
            return
        path = self.harvest_one(unit)
        state = "done   " if path else ("stopped" if returncode in (-15, 143, 130, -2) else "failed ")
        say(f"{state} {unit.uid} (exit {returncode}){' -> ' + str(path) if path else ''}")

    def harvest_one(self, unit: Unit) -> Path | None:
        run_dir = rec.finished_run(self.unit_dir(unit))
        if run_dir is None or unit.uid in self.records:
            return None
        record = rec.build_record(unit, run_dir)
        path = rec.write_record(self.results, record)
        self.records[unit.uid] = record
        return path

    def harvest(self) -> list[Path]:
        """Records for every finished run in the work directories (e.g. after a cluster array job)."""
        return [p for u in self.units if u.kind == RUN and (p := self.harvest_one(u))]

    # --- tables --------------------------------------------------------------------------------------------
    def build_tables(self, say: Callable[[str], None] = print, out: Path | None = None) -> list[Path]:
        """Every table of the campaign from committed records, into ``out`` (default: where the records are).

        Training-run tables come from the run records; a stage's tables from its own records (CSV rows and a meta
        JSON), through the function its manifest entry names as ``render``."""
        written = []
        for stage in self._stages_with_tables():
            if self.status(Unit(self.paper, self.protocol, STAGE, stage)).state != "done":
                say(f"stage {stage} has not run under protocol {self.protocol}: its tables wait for it")
                continue
            root = self.stage_root()
            render = self.manifest.stages[stage].get("render")
            if not render:
                raise UserError(
                    f"stage '{stage}' of conf/paper/{self.paper}.yaml names no render function "
                    "(render: package.module:function), so its tables cannot be rebuilt"
                )
            for path in resolve(render)(root, out or root):
                written.append(Path(path))
                say(f"wrote {path}")
        for table in self.table_names:
            spec = self.manifest.tables[table]
            if "stage" in spec:
                continue
            units = table_units(self.manifest, table, self.protocol)
            labels = {u.group: self.labels(u) for u in units}
            expected = tables.load_expected(REPO_ROOT / self.manifest.expected, table)
            rows = tables.build_rows(self.manifest, table, self.protocol, self.records, labels, expected)
            markdown, csv_text = tables.render(self.manifest, table, self.protocol, rows, self._header(table, units))
            path = tables.write(
                tables.table_stem(out or self.results, self.paper, self.protocol, table), markdown, csv_text
            )
            written.append(path)
            say(f"wrote {path}")
            if spec.get("figure"):  # the same rows as a figure over the averaged key (e.g. MSE vs horizon)
                png = figures.plot_over(rows, spec, spec.title, figures.figure_path(path, spec.average_over))
                if png:
                    written.append(png)
                    say(f"wrote {png}")
        return written

    def missing_outputs(self, stage: str) -> list[str]:
        return [p for p in self.manifest.stages[stage].get("outputs") or [] if not self.stage_output(p).exists()]

    def stage_outputs_exist(self, stage: str) -> bool:
        return bool(self.manifest.stages[stage].get("outputs")) and not self.missing_outputs(stage)

    def incremental(self, unit: Unit) -> bool:
        """A stage that writes its work as pieces and honours the runner's deadline (pieces.py)."""
        return unit.kind == STAGE and bool(self.manifest.stages[unit.name].get("progress"))

    def stage_root(self) -> Path:
        """The results root that a protocol's stages write into (``stage_results``, e.g. logs/smoke)."""
        own = self.manifest.protocols[self.protocol].get("stage_results")
        return REPO_ROOT / own if own else self.results

    def stage_output(self, path: str) -> Path:
        """A stage's ``outputs:`` entry (written as under results/) where this protocol's stage writes it."""
        parts = Path(path).parts
        return self.stage_root().joinpath(*parts[1:]) if parts[0] == "results" else REPO_ROOT / path

    def _stages_with_tables(self) -> list[str]:
        stages = [self.manifest.tables[t].stage for t in self.table_names if "stage" in self.manifest.tables[t]]
        return list(dict.fromkeys(stages))

    def _header(self, table: str, units: list[Unit]) -> list[str]:
        proto = self.manifest.protocols[self.protocol]
        done = sum(1 for u in units if u.uid in self.records)
        return [
            f"Protocol **{self.protocol}**: {proto.label}",
            f"Seeds planned: {', '.join(map(str, planned_seeds(self.manifest, table, self.protocol)))}. "
            "n counts distinct seeds with a finished run; "
            f"`n=k/N` marks a cell still filling, and a verdict is given only when all N seeds are in.",
            "Verdict `within`: |ours − paper| ≤ max(tolerance, 2 × our seed std); `outside` otherwise. "
            f"Paper values and tolerances: `{self.manifest.expected}` (its `source` column says where each is from).",
            f"Runs: `qdsbench-reproduce --paper {self.paper} --protocol {self.protocol} --hours H`; this table is "
            f"rebuilt from the committed records in `results/{self.paper}/runs/{self.protocol}/` by "
            f"`qdsbench-reproduce --paper {self.paper} --protocol {self.protocol} --tables-only`. "
            f"Records: {done} of {len(units)} planned runs.",
        ]


def _group_of(record: dict[str, Any]) -> str:
    return record["uid"].rsplit("-", 1)[-1]


# What sets a run's seconds per epoch: the operator, the model's size, the dataset (its epoch length) and, for a
# forecaster, its window (OLinear's output layers grow with the horizon: 96 -> 720 is 4.5x the epoch time).
COST_KEYS = (
    "attention.name",
    "model.name",
    "model.depth",
    "attention.layers",
    "data.name",
    "data.seq_len",
    "data.pred_len",
)


def _same_backend(record: dict[str, Any], labels: dict[str, Any]) -> bool:
    cfg = record.get("config", {})
    return all(cfg.get(k) == labels.get(k) for k in COST_KEYS if labels.get(k) is not None)


def _cost_hint(manifest, unit: Unit) -> float | None:
    """``cost:`` maps 'experiment [override ...]' to seconds per epoch on one core; the most specific match wins."""
    best, best_len = None, -1
    for key, seconds in (manifest.get("cost") or {}).items():
        name, *needed = key.split()
        if name == unit.name and all(n in unit.overrides for n in needed) and len(needed) > best_len:
            best, best_len = float(seconds), len(needed)
    return best


def _epochs_logged(unit_dir: Path) -> int:
    """Epochs with a validation metric in the unit's unfinished run (0 when nothing was logged)."""
    epochs = set()
    for path in unit_dir.rglob(METRICS_FILE) if unit_dir.is_dir() else []:
        if not (path.parent / RUN_FILE).is_file() or not (path.parent / "checkpoints" / "last.ckpt").is_file():
            continue
        with open(path, newline="") as fh:
            epochs |= {int(r["epoch"]) for r in csv.DictReader(fh) if r.get("epoch") and r["metric"].startswith("val/")}
    return len(epochs)


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _take_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(
            f"another qdsbench-reproduce is running this campaign (lock {path}); wait for it or stop it first"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
