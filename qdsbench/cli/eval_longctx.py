"""``qdsbench eval-longctx``: RULER-synth accuracy of a trained decoder with a sparse or Delta prefill."""

import hydra
from omegaconf import DictConfig

import qdsbench  # noqa: F401  (sets OMP_WAIT_POLICY / WANDB_MODE before torch loads)
from qdsbench.cli.errors import exit_on_user_error
from qdsbench.cli.launch import launch
from qdsbench.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval_longctx")
def hydra_main(cfg: DictConfig) -> None:
    from qdsbench.longctx.run_eval import run_eval

    exit_on_user_error(lambda: run_eval(cfg))


def main() -> None:
    launch("eval_longctx", hydra_main, "qdsbench eval-longctx", reads_a_run=True)


if __name__ == "__main__":
    main()
