"""``qdsbench-train``: Hydra entry point for training (fit, then test on the best checkpoint)."""

import sys

import hydra
from omegaconf import DictConfig, open_dict

import qdsbench  # noqa: F401  (sets OMP_WAIT_POLICY / WANDB_MODE before torch loads)
from qdsbench.cli.errors import exit_on_user_error
from qdsbench.cli.preflight import PreflightError, preflight
from qdsbench.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    from qdsbench.train import train

    with open_dict(cfg):
        cfg._command = " ".join(["qdsbench-train", *sys.argv[1:]])
    metrics = exit_on_user_error(lambda: train(cfg))
    monitor = cfg.get("optimized_metric")
    return metrics.get(monitor) if monitor else None


def main() -> None:
    try:
        preflight(config_dir(), "train", sys.argv[1:])
    except PreflightError as err:
        print(f"qdsbench: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    hydra_main()


if __name__ == "__main__":
    main()
