"""``qdsbench eval``: evaluate a finished run directory or checkpoint without training."""

import hydra
from omegaconf import DictConfig

import qdsbench  # noqa: F401  (sets OMP_WAIT_POLICY / WANDB_MODE before torch loads)
from qdsbench.cli.errors import exit_on_user_error
from qdsbench.cli.launch import launch
from qdsbench.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    from qdsbench.evaluate import evaluate

    exit_on_user_error(lambda: evaluate(cfg))


def main() -> None:
    launch("eval", hydra_main, "qdsbench eval", reads_a_run=True)


if __name__ == "__main__":
    main()
