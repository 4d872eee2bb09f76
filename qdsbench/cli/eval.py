"""``qdsbench-eval``: evaluate a finished run directory or checkpoint without training."""

import hydra
from omegaconf import DictConfig

import qdsbench  # noqa: F401
from qdsbench.cli.errors import exit_on_user_error
from qdsbench.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def main(cfg: DictConfig) -> None:
    from qdsbench.evaluate import evaluate

    exit_on_user_error(lambda: evaluate(cfg))


if __name__ == "__main__":
    main()
