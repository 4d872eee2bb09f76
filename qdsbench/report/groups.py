"""Which runs are alike: debug and smoke runs (hidden by default), config groups, differing overrides, run names.

A group is the set of runs whose configs agree on everything that changes the computation: every ``cfg.`` key but
seeds and bookkeeping (paths, loggers, callbacks, tags, threads, resume, ...). A group's label is its experiment and
the overrides that differ between the runs of that experiment; a run's name is its group label and its seed.
Statistics count DISTINCT seeds: runs that repeat a seed are averaged first, so a rerun neither counts twice nor
weighs twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pandas as pd
import yaml

# config keys (and override keys) that say where or how a run is recorded, not what it computes
BOOKKEEPING = (
    "paths",
    "hydra",
    "logger",
    "callbacks",
    "resume",
    "ckpt_path",
    "tags",
    "extras",
    "task_name",
    "num_threads",
    "seed",
    "test",
    "check_attention",
    "trainer.enable_progress_bar",
    "optimized_metric",
)
# override keys shown in their own column (experiment) or not at all
OVERRIDE_SKIP = (*BOOKKEEPING, "experiment")
HIDDEN_TAGS = {"debug": "debug", "smoke": "smoke"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def bookkeeping(key: str, skip: tuple[str, ...] = BOOKKEEPING) -> bool:
    return key.startswith("_") or any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in skip)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def short_value(value: str) -> str:
    """0.0019672461882015557 -> 0.001967: labels stay readable; the full value is in the overrides column."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if "." not in str(value) and "e" not in str(value).lower() else f"{number:.4g}"


def parse_overrides(overrides: list[str] | None) -> dict[str, str] | None:
    """``['+model.depth=2', 'attention=sdpa', 'seed=0']`` -> ``{'model.depth': '2', 'attention': 'sdpa'}``."""
    if overrides is None or (isinstance(overrides, float) and math.isnan(overrides)):
        return None
    parsed = {}
    for override in overrides:
        key, _, value = str(override).lstrip("+~").partition("=")
        if not bookkeeping(key, OVERRIDE_SKIP):
            parsed[key] = value
    return parsed


def run_kind(row: pd.Series, overrides: dict[str, str] | None) -> str:
    """'debug' or 'smoke' for runs that check wiring (hidden by default), '' for real runs."""
    if (overrides and "debug" in overrides) or row.get("cfg.task_name") == "debug":
        return "debug"
    tags = row.get("cfg.tags")
    tags = tags if isinstance(tags, (list, tuple)) else []
    for tag in tags:
        if str(tag) in HIDDEN_TAGS:
            return HIDDEN_TAGS[str(tag)]
    return "smoke" if "smoke" in str(row.get("experiment") or "") else ""


def config_key(row: pd.Series) -> str:
    config = {
        k: v
        for k, v in row.items()
        if k.startswith("cfg.") and not bookkeeping(k[4:]) and not (not isinstance(v, (list, dict)) and _missing(v))
    }
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _integral(value: Any) -> Any:
    """2.0 -> 2: pandas makes a column float when one run lacks it; 2 and 2.0 are one setting here."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _norm(value: Any, spelled: bool) -> str:
    """A comparable form: the override string ``2`` and the config value 2 are the same setting."""
    if spelled:
        try:
            value = yaml.load(value, Loader=_LOADER)
        except yaml.YAMLError:
            pass
    return json.dumps(_integral(value), sort_keys=True, default=str)


def _shown(value: Any) -> str:
    value = _integral(value)
    return json.dumps(value, default=str) if isinstance(value, (list, dict, bool)) else str(value)


def settings(row: pd.Series, spelled: dict[str, str] | None, keys: list[str]) -> dict[str, tuple[str, str]]:
    """{key: (shown, comparable)}: each key as this run overrode it, else as its config has it (the default)."""
    out = {}
    for key in keys:
        if spelled and key in spelled:
            out[key] = (spelled[key], _norm(spelled[key], True))
        elif f"cfg.{key}" in row and (isinstance(row[f"cfg.{key}"], (list, dict)) or not _missing(row[f"cfg.{key}"])):
            out[key] = (_shown(row[f"cfg.{key}"]), _norm(row[f"cfg.{key}"], False))
    return out


def differing(runs_settings: list[dict[str, tuple[str, str]]]) -> list[str]:
    """Keys whose setting (absent: a config group left at its default) is not the same in every run."""
    keys = sorted({k for s in runs_settings for k in s})
    return [k for k in keys if len({s[k][1] if k in s else None for s in runs_settings}) > 1]


def _label(experiment: Any, overrides: list[dict[str, str]], keys: list[str], fallback: str) -> str:
    """Experiment and the differing settings that most of the group's runs override (one may rely on a default)."""
    if not overrides:  # no run of the group says its overrides (started from Python, W&B only)
        return fallback
    spelled = [json.dumps({k: o[k] for k in keys if k in o}, sort_keys=True) for o in overrides]
    common = json.loads(max(spelled, key=spelled.count))
    return " ".join(
        [
            str(experiment) if not _missing(experiment) else "run",
            *(f"{k}={short_value(common[k])}" for k in keys if k in common),
        ]
    )


def _unique(names: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    out = []
    for name in names:
        counts[name] = counts.get(name, 0) + 1
        out.append(name if counts[name] == 1 else f"{name} #{counts[name]}")
    return out


def annotate(runs: pd.DataFrame) -> pd.DataFrame:
    """Add kind, hidden, group, group_label, name (unique) and settings (the run's value of every key its experiment's
    runs override: as overridden, else from its config) to each run; the frame keeps its order."""
    if runs.empty:
        return runs
    runs = runs.copy()
    if "overrides" not in runs:
        runs["overrides"] = None
    parsed = [parse_overrides(o) for o in runs["overrides"]]
    runs["override_map"] = parsed
    runs["kind"] = [run_kind(row, o) for (_, row), o in zip(runs.iterrows(), parsed)]
    runs["hidden"] = runs["kind"] != ""
    runs["group"] = [
        config_key(row) + (f"-{kind}" if kind else "") for (_, row), kind in zip(runs.iterrows(), runs["kind"])
    ]
    experiments = [None if _missing(e) else str(e) for e in runs.get("experiment", [None] * len(runs))]
    hidden = list(runs["hidden"])
    effective: list[dict[str, tuple[str, str]]] = [{} for _ in parsed]
    keys = {}  # settings that differ between an experiment's runs: real runs among themselves, hidden among all
    for experiment in set(experiments):
        same = [i for i, e in enumerate(experiments) if e == experiment]
        universe = sorted({k for i in same for k in parsed[i] or {}})
        for i in same:
            effective[i] = settings(runs.iloc[i], parsed[i], universe)
        known = [i for i in same if parsed[i] is not None]
        keys[experiment, False] = differing([effective[i] for i in known if not hidden[i]])
        keys[experiment, True] = differing([effective[i] for i in known])
    runs["settings"] = [{k: v[0] for k, v in e.items()} for e in effective]
    labels = {}
    for group, frame in runs.groupby("group", sort=False):
        first = frame.iloc[0]
        fallback = (
            f"{str(first['run_dir']).rstrip('/').rsplit('/', 1)[-1]} (W&B only)"
            if str(first["status"]).endswith("(W&B only)")
            else " ".join(
                str(first.get(k)) for k in ("experiment", "dataset", "model", "backend") if not _missing(first.get(k))
            )
        )
        rows = [runs.index.get_loc(i) for i in frame.index]
        experiment = experiments[rows[0]]
        labels[group] = _label(
            experiment, [parsed[i] for i in rows if parsed[i] is not None], keys[experiment, hidden[rows[0]]], fallback
        )
    by_label: dict[str, list[str]] = {}
    for group, label in labels.items():
        by_label.setdefault(label, []).append(group)
    for label, groups in by_label.items():
        if len(groups) > 1:  # same overrides, different configs (a changed default): the group id tells them apart
            for group in groups:
                labels[group] = f"{label} [{group[:6]}]"
    runs["group_label"] = runs["group"].map(labels)
    order = runs.sort_values("start_time", kind="stable").index if "start_time" in runs else runs.index
    seeds = runs["seed"].to_dict() if "seed" in runs else dict.fromkeys(runs.index)
    statuses = runs["status"].astype(str).to_dict()
    names = {
        i: runs.at[i, "group_label"]
        + ("" if _missing(seeds[i]) else f" seed {seed_str(seeds[i])}")
        + ("" if statuses[i] in ("finished", "unknown (W&B only)") else f" ({statuses[i]})")
        for i in order
    }
    runs["name"] = pd.Series(dict(zip(order, _unique([names[i] for i in order]))))
    return runs


def seed_str(seed: Any) -> str:
    """0.0 (a seed column that pandas made float because a W&B-only run has none) -> '0'."""
    return str(int(seed)) if isinstance(seed, float) and seed.is_integer() else str(seed)


def seed_key(seed: Any, run_dir: str) -> str:
    return f"run:{run_dir}" if _missing(seed) else seed_str(seed)


def grouped(runs: pd.DataFrame, metric: str, include_hidden: bool = False) -> pd.DataFrame:
    """Per config group over finished runs: mean and sample std over distinct seeds (a repeated seed averaged first),
    n = distinct seeds, runs = runs pooled; hidden (debug, smoke) runs only when asked."""
    column = f"metric.{metric}"
    columns = ["group", "label", "experiment", "dataset", "model", "backend", "mean", "std", "n", "runs", "seeds"]
    if column not in runs or runs.empty:
        return pd.DataFrame(columns=columns)
    if "hidden" not in runs:  # a frame that did not come from collect()
        runs = annotate(runs)
    done = runs[(runs["status"] == "finished") & runs[column].notna() & (include_hidden | ~runs["hidden"])]
    rows = []
    for group, frame in done.groupby("group", sort=False):
        keys = [seed_key(s, d) for s, d in zip(frame["seed"], frame["run_dir"])]
        per_seed = frame[column].groupby(keys).mean()
        first = frame.iloc[0]
        seeds = sorted(
            (k for k in per_seed.index if not k.startswith("run:")),
            key=lambda k: (0, int(k), k) if k.lstrip("-").isdigit() else (1, 0, k),
        )
        rows.append(
            {
                "group": group,
                "label": first["group_label"],
                "experiment": first.get("experiment"),
                "dataset": first.get("dataset"),
                "model": first.get("model"),
                "backend": first.get("backend"),
                "mean": per_seed.mean(),
                "std": per_seed.std(),
                "n": len(per_seed),
                "runs": len(frame),
                "seeds": ",".join(seeds),
            }
        )
    return pd.DataFrame(rows, columns=columns).sort_values("label", kind="stable").reset_index(drop=True)
