"""``qdsbench convert``: Hydra entry point for the zero-shot conversion of a finished run (qdsbench.convert).

The target backend is training's ``attention`` group, so ``attention=monarch attention.block_size=14`` means here what
it means to ``qdsbench train``, and a typo gets the same one-line error. A bare directory is taken as ``run_dir=``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import qdsbench  # noqa: F401  (sets OMP_WAIT_POLICY / WANDB_MODE before torch loads)
from qdsbench.cli.launch import launch
from qdsbench.config import config_dir
from qdsbench.errors import UserError


def _convert(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from qdsbench.convert import convert_and_evaluate
    from qdsbench.runrecord import atomic_write_json

    if cfg.split not in ("test", "val"):
        raise UserError(f"split={cfg.split} is not valid; valid choices: test, val")
    backend = OmegaConf.to_container(cfg.attention, resolve=True)
    layers = cfg.layers if isinstance(cfg.layers, str) else [int(i) for i in cfg.layers]
    max_samples = None if cfg.max_samples is None else int(cfg.max_samples)
    diagnostic = cfg.get("diagnostic_samples")
    result = convert_and_evaluate(
        cfg.run_dir, backend, layers, max_samples, cfg.split, None if diagnostic is None else int(diagnostic)
    )
    out = Path(HydraConfig.get().runtime.output_dir) / "result.json"
    atomic_write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("run_dir", "checkpoint")}, indent=2))
    if math.isfinite(result["accuracy"]):
        print(f"accuracy {result['accuracy']:.4f} (original {result['original_accuracy']:.4f}) -> {out}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="convert")
def hydra_main(cfg: DictConfig) -> None:
    from qdsbench.cli.errors import exit_on_user_error

    exit_on_user_error(lambda: _convert(cfg))


def main() -> None:
    launch("convert", hydra_main, "qdsbench convert", reads_a_run=True)


if __name__ == "__main__":
    main()
