"""Zero-shot conversion grid of a trained run (MonarchAttention and the efficient baselines):

    .venv/bin/python scripts/monarch_grid.py logs/monarch/vit_converged --experiment monarch/vit_converged [--train]

writes results/monarch/conversion.md and .csv (every test image unless --max-samples caps them). The study itself is
qdsbench.studies.monarch (flags: --help); conf/paper/monarch.yaml names its stages.
"""

from qdsbench.studies.monarch import main

if __name__ == "__main__":
    main()
