"""A paper as a manifest: its tables, the runs or stages behind each, and named protocols.

``conf/paper/<paper>.yaml`` expands into :class:`Unit` objects, one per training run (experiment x grid point x
seed) or package stage. A unit's ``uid`` depends only on what it computes (experiment, overrides, seed), so two
tables that need the same run share it, and its committed record is found again on any machine.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from qdsbench.config import config_dir
from qdsbench.errors import UserError

RUN, STAGE = "run", "stage"


@dataclass(frozen=True)
class Unit:
    """One thing a campaign must do: a training run, or a stage (a package function that writes files)."""

    paper: str
    protocol: str
    kind: str
    name: str  # experiment (runs) or stage name
    overrides: tuple[str, ...] = ()  # Hydra overrides after the experiment (runs)
    seed: int | None = None
    point: tuple[tuple[str, str], ...] = ()  # the grid values that make this unit (for its readable id)
    tables: tuple[str, ...] = field(default=(), compare=False)
    label: str | None = field(default=None, compare=False)  # its run group's name in the table column, if set

    @property
    def group(self) -> str:
        """Everything but the seed: units of a group are the seeds of one table cell."""
        canonical = "\n".join([self.kind, self.name, *sorted(self.overrides)])
        return hashlib.sha256(canonical.encode()).hexdigest()[:8]

    @property
    def uid(self) -> str:
        slug = "__".join([self.name.replace("/", "-"), *(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in self.point)])
        seed = f"__seed{self.seed}" if self.seed is not None else ""
        return "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{slug}{seed}-{self.group}")

    def train_args(self, defaults: tuple[str, ...] = ()) -> list[str]:
        """Overrides for qdsbench-train; ``defaults`` come before the unit's own, so the manifest wins."""
        return [f"experiment={self.name}", *defaults, *self.overrides, f"seed={self.seed}"]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if OmegaConf.is_list(v) or isinstance(v, list):
        return "[" + ",".join(_value(x) for x in v) + "]"
    return str(v)


def manifest_path(paper: str) -> Path:
    return Path(config_dir()) / "paper" / f"{paper}.yaml"


def papers() -> list[str]:
    return sorted(p.stem for p in (Path(config_dir()) / "paper").glob("*.yaml"))


def load_manifest(paper: str) -> DictConfig:
    path = manifest_path(paper)
    if not path.is_file():
        raise UserError(f"unknown paper '{paper}'; valid choices: {', '.join(papers())}")
    return OmegaConf.load(path)


def check_protocol(manifest: DictConfig, protocol: str) -> DictConfig:
    if protocol not in manifest.protocols:
        raise UserError(
            f"unknown protocol '{protocol}' for paper {manifest.paper}; valid choices: {', '.join(manifest.protocols)}"
        )
    return manifest.protocols[protocol]


def _grid_points(grid: dict[str, Any], restrict: dict[str, Any]) -> list[tuple[tuple[str, str], ...]]:
    keys, values = [], []
    for key, vals in grid.items():
        vals = list(vals) if isinstance(vals, list) else [vals]
        if key in restrict:
            allowed = {_value(x) for x in (restrict[key] if isinstance(restrict[key], list) else [restrict[key]])}
            vals = [v for v in vals if _value(v) in allowed]
        keys.append(key)
        values.append([_value(v) for v in vals])
    return [tuple(zip(keys, combo)) for combo in itertools.product(*values)]


def table_units(manifest: DictConfig, table: str, protocol: str) -> list[Unit]:
    """The units one table needs under one protocol, in manifest order."""
    spec, proto = manifest.tables[table], check_protocol(manifest, protocol)
    restrict = _plain(proto.get("restrict"))
    per_experiment = _plain(proto.get("per_experiment"))
    if "stage" in spec:
        return [Unit(manifest.paper, protocol, STAGE, spec.stage, tables=(table,))]
    units = []
    for group in spec.runs:
        grid, when = _plain(group.get("grid")), _plain(group.get("when"))
        for point in _grid_points(grid, restrict):
            extra = [o for cond, overrides in when.items() if _matches(cond, point) for o in overrides]
            own = [*(f"{k}={v}" for k, v in point), *extra, *per_experiment.get(group.experiment, [])]
            # The readable id names every value the manifest sets (sorted), so the same run reached from two
            # tables (e.g. Table 1's static QontOT cell and Table A3's L=16 cell) is one unit.
            named = tuple(sorted(tuple(o.split("=", 1)) for o in own if "=" in o))
            for seed in planned_seeds(manifest, table, protocol):
                units.append(
                    Unit(
                        manifest.paper,
                        protocol,
                        RUN,
                        group.experiment,
                        (*own, *proto.get("overrides", [])),
                        int(seed),
                        named,
                        (table,),
                        group.get("label"),
                    )
                )
    return units


def planned_seeds(manifest: DictConfig, table: str, protocol: str) -> list[int]:
    """A table may plan fewer seeds than its protocol (e.g. an ablation at 3 seeds); never more."""
    seeds = [int(s) for s in manifest.protocols[protocol].seeds]
    own = manifest.tables[table].get("seeds")
    return [s for s in seeds if s in {int(x) for x in own}] if own else seeds


def _plain(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node) if node is not None else {}


def _matches(condition: str, point: tuple[tuple[str, str], ...]) -> bool:
    """``when`` keys are ``k=v`` or ``k=v,k2=v2``: every pair must hold at this grid point."""
    values = dict(point)
    return all(values.get(k) == v for k, v in (part.split("=", 1) for part in condition.split(",")))


def campaign_units(manifest: DictConfig, protocol: str, tables: list[str] | None = None) -> list[Unit]:
    """Every distinct unit of the campaign; a unit needed by several tables appears once and names them all."""
    merged: dict[str, Unit] = {}
    for table in tables or protocol_tables(manifest, protocol):
        for unit in table_units(manifest, table, protocol):
            if unit.uid in merged:
                old = merged[unit.uid]
                merged[unit.uid] = Unit(**{**old.__dict__, "tables": (*old.tables, table)})
            else:
                merged[unit.uid] = unit
    return list(merged.values())


def protocol_tables(manifest: DictConfig, protocol: str) -> list[str]:
    """The tables a protocol makes: a table may name the protocols it belongs to (e.g. a short study's own)."""
    own = manifest.protocols[protocol].get("tables")
    if own:
        return list(own)
    return [t for t, spec in manifest.tables.items() if protocol in (spec.get("protocols") or manifest.protocols)]


def check_tables(manifest: DictConfig, names: list[str]) -> list[str]:
    for name in names:
        if name not in manifest.tables:
            raise UserError(
                f"unknown table '{name}' for paper {manifest.paper}; valid choices: {', '.join(manifest.tables)}"
            )
    return names
