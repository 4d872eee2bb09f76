"""``qdsbench-train``: Hydra entry point for training (fit, then test on the best checkpoint)."""

import sys

import hydra
from omegaconf import DictConfig, open_dict

import qdsbench  # noqa: F401  (sets OMP_WAIT_POLICY / WANDB_MODE before torch loads)
from qdsbench.cli.launch import launch
from qdsbench.config import config_dir
from qdsbench.errors import PreflightError


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    from qdsbench.cli.errors import exit_on_user_error
    from qdsbench.train import train

    with open_dict(cfg):
        cfg._command, sweep = job_command(sys.argv[1:])
        if sweep:
            cfg._sweep = sweep
    metrics = exit_on_user_error(lambda: train(cfg))
    monitor = cfg.get("optimized_metric")
    return metrics.get(monitor) if monitor else None


def job_command(argv: list[str]) -> tuple[str, dict | None]:
    """The command that reruns this job alone, and for a multirun job its sweep (command, directory, job number).

    A sweep job's own overrides are Hydra's ``overrides.task``; an Optuna search preset stays in them (it sets the
    backend and metric) with ``hydra.mode=RUN``, so the recorded command trains that one trial, not the search."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return " ".join(["qdsbench-train", *argv]), None
    overrides = list(hydra_cfg.overrides.task)
    if any(o.startswith("hparams_search=") for o in overrides):
        overrides.append("hydra.mode=RUN")
    sweep = {"command": " ".join(["qdsbench-train", *argv]), "dir": hydra_cfg.sweep.dir, "job": hydra_cfg.job.num}
    return " ".join(["qdsbench-train", *overrides]), sweep


def refuse_used_run_dir(argv: list[str]) -> None:
    """Hydra writes ``.hydra/`` into the run directory before the task starts: a directory that already holds a
    run record must be refused here, or its config snapshot is overwritten before train() can say no; one that
    cannot be created (a read-only log root) too, or Hydra fails with a traceback."""
    from pathlib import Path

    for token in argv:
        if token.startswith("hydra.run.dir="):
            run_dir = Path(token.split("=", 1)[1])
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise PreflightError(f"cannot create run directory {run_dir}: {err.strerror or err}") from None
            if (run_dir / "run.json").is_file() and not _resumes(argv, run_dir):
                raise PreflightError(
                    f"run directory {run_dir} already holds a run record; nothing was changed there: "
                    "pick a new hydra.run.dir, or continue that run with resume=" + str(run_dir)
                )


def _resumes(argv: list[str], run_dir) -> bool:
    """Whether argv continues the run in run_dir: ``resume=`` may name it by a relative or an absolute path."""
    from pathlib import Path

    targets = [t.split("=", 1)[1] for t in argv if t.startswith("resume=")]
    return any(t not in ("", "auto", "none") and Path(t).resolve() == run_dir.resolve() for t in targets)


def _refuse_used_run_dir_of_a_single_run(argv: list[str]) -> None:
    if "-m" not in argv and "--multirun" not in argv:
        refuse_used_run_dir(argv)


def main() -> None:
    launch("train", hydra_main, "qdsbench train", checks=[_refuse_used_run_dir_of_a_single_run])


if __name__ == "__main__":
    main()
