"""``qdsbench-analyze``: Hydra entry point for the attention analysis of a finished run (qdsbench.analysis.analyze).

A bare directory argument is accepted as ``run_dir=<dir>``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

import qdsbench  # noqa: F401  (sets OMP_WAIT_POLICY / WANDB_MODE before torch loads)
from qdsbench.config import config_dir


def _analyze(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from qdsbench.analysis.analyze import analyze

    overrides = OmegaConf.to_container(cfg.overrides) if cfg.get("overrides") else None
    out = analyze(
        cfg.run_dir,
        HydraConfig.get().runtime.output_dir,
        cfg.split,
        int(cfg.max_samples),
        float(cfg.epsilon),
        cfg.get("ckpt_path"),
        bool(cfg.wandb),
        cfg.get("seed"),
        overrides,
    )
    print(f"analysis written to {out}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="analyze")
def hydra_main(cfg: DictConfig) -> None:
    from qdsbench.cli.errors import exit_on_user_error

    exit_on_user_error(lambda: _analyze(cfg))


def main() -> None:
    from qdsbench.cli.launch import launch

    launch("analyze", hydra_main, "qdsbench analyze", reads_a_run=True)


if __name__ == "__main__":
    main()
