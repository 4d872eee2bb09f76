"""Hyperparameter studies: the trials of an Optuna sweep (``qdsbench-train ... hparams_search=<preset>``).

Every trial is an ordinary run in ``<sweep dir>/<n>/`` whose run.json names its sweep (dir, job); the sweep's search
space and direction are in each trial's ``.hydra/hydra.yaml`` (``hydra.sweeper``) and optuna's answer is in
``<sweep dir>/optimization_results.yaml`` (name, best_params, best_value). A study here: its trials (params, the
optimized metric), the best trial, and fANOVA parameter importances from an in-memory optuna study rebuilt from the
finished trials (skipped, with the reason, when optuna is missing, fewer than 3 trials finished, or it fails).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

MIN_TRIALS_FOR_IMPORTANCE = 3
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_LOADER) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _sweeper(trial_dirs: list[str]) -> dict:
    for trial_dir in trial_dirs:
        hydra = _yaml(Path(trial_dir) / ".hydra" / "hydra.yaml")
        if isinstance(hydra, dict):
            return (hydra.get("hydra") or {}).get("sweeper") or {}
    return {}


def _param(row: pd.Series, key: str) -> Any:
    value = row.get(f"cfg.{key}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        overrides = row.get("override_map") or {}
        value = yaml.load(overrides[key], Loader=_LOADER) if key in overrides else None
    return _plain(value)


def _distribution(key: str, spec: Any, observed: list[Any]):
    """The optuna distribution a hydra-optuna-sweeper spec (``tag(log, interval(a, b))``, ``choice(...)``) means."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    try:
        sweep = OverridesParser.create().parse_override(f"{key}={spec}").value()
    except Exception:  # noqa: BLE001 - a spec this grammar does not know: the values the trials took
        sweep = None
    if isinstance(sweep, IntervalSweep):
        if "int" in sweep.tags:
            return IntDistribution(int(sweep.start), int(sweep.end), log="log" in sweep.tags)
        return FloatDistribution(float(sweep.start), float(sweep.end), log="log" in sweep.tags)
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution([_plain(v) for v in sweep.list])
    if isinstance(sweep, RangeSweep):
        return CategoricalDistribution([_plain(v) for v in sweep])
    return CategoricalDistribution(sorted({v for v in observed}, key=str))


def importance(trials: list[dict], space: dict[str, Any], direction: str) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances of the searched parameters for the optimized metric, or None and why not."""
    finished = [t for t in trials if t["value"] is not None and all(t["params"].get(k) is not None for k in space)]
    if len(finished) < MIN_TRIALS_FOR_IMPORTANCE or not space:
        return None, f"parameter importance needs {MIN_TRIALS_FOR_IMPORTANCE} finished trials ({len(finished)} here)"
    try:
        import optuna
        from optuna.distributions import CategoricalDistribution
    except ImportError:
        return None, "parameter importance needs optuna (pip install 'qdsbench[search]')"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    observed = {k: [t["params"][k] for t in finished] for k in space}
    fitted = {k: _distribution(k, spec, observed[k]) for k, spec in space.items()}
    fallback = {k: CategoricalDistribution(sorted(set(observed[k]), key=str)) for k in space}
    try:
        study = optuna.create_study(direction="minimize" if str(direction).startswith("min") else "maximize")
        for t in finished:
            params = {k: t["params"][k] for k in space}
            try:
                trial = optuna.trial.create_trial(params=params, distributions=fitted, value=t["value"])
            except ValueError:  # a value outside the declared space (the preset changed): use what was tried
                trial = optuna.trial.create_trial(params=params, distributions=fallback, value=t["value"])
            study.add_trial(trial)
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=0)
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as err:  # noqa: BLE001 - importance is an extra: the study shows without it
        return None, f"parameter importance failed: {type(err).__name__}: {err}"
    return {k: float(v) for k, v in scores.items()}, "fANOVA (optuna, 16 trees) over the finished trials"


def _best(trials: list[dict], results: Any, direction: str) -> dict | None:
    finished = [t for t in trials if t["value"] is not None]
    pick = max if not str(direction).startswith("min") else min
    best_trial = pick(finished, key=lambda t: t["value"]) if finished else None
    if isinstance(results, dict) and "best_value" in results:
        params = {str(k): _plain(v) for k, v in (results.get("best_params") or {}).items()}
        value = _plain(results.get("best_value"))
        match = [t for t in finished if t["value"] == value] or ([best_trial] if best_trial else [])
        return {
            "params": params,
            "value": value,
            "job": match[0]["job"] if match else None,
            "name": match[0]["name"] if match else None,
            "source": "optimization_results.yaml",
        }
    if best_trial is None:
        return None
    return {
        "params": best_trial["params"],
        "value": best_trial["value"],
        "job": best_trial["job"],
        "name": best_trial["name"],
        "source": "best finished trial (no optimization_results.yaml yet)",
    }


def studies(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per Optuna sweep directory among the runs (plain ``-m`` multiruns are not studies)."""
    if runs.empty or "sweep_dir" not in runs:
        return []
    out = []
    for sweep_dir, frame in runs[runs["sweep_dir"].notna()].groupby("sweep_dir", sort=True):
        results = _yaml(Path(str(sweep_dir)) / "optimization_results.yaml")
        sweeper = _sweeper(list(frame["run_dir"]))
        if results is None and "optuna" not in str(sweeper.get("_target_", "")):
            continue
        space = sweeper.get("params") or (results or {}).get("best_params") or {}
        direction = sweeper.get("direction") or "maximize"
        direction = direction[0] if isinstance(direction, list) else direction
        metric = next((m for m in frame.get("cfg.optimized_metric", []) if isinstance(m, str)), None)
        trials = []
        for _, row in frame.sort_values("sweep_job").iterrows():
            value = row.get(f"metric.{metric}") if metric else None
            trials.append(
                {
                    "job": _plain(row["sweep_job"]),
                    "name": row["name"],
                    "run_dir": row["run_dir"],
                    "status": row["status"],
                    "value": _plain(value) if row["status"] == "finished" else None,
                    "params": {k: _param(row, k) for k in space},
                }
            )
        scores, note = importance(trials, space, direction)
        out.append(
            {
                "id": f"study-{len(out)}",
                "name": sweeper.get("study_name") or Path(str(sweep_dir)).name,
                "dir": str(sweep_dir),
                "direction": direction,
                "metric": metric,
                "space": {k: str(v) for k, v in space.items()},
                "trials": trials,
                "best": _best(trials, results, direction),
                "importance": scores,
                "importance_note": note,
            }
        )
    return out
