"""QDSFormer's expressivity analysis (§3 / App. C) on our operators:

    .venv/bin/python scripts/qds_expressivity.py     # results/qds/expressivity.md|csv, results/qds/figures/*.png

The study itself is qdsbench.studies.expressivity (flags: --help); its measures are qdsbench.paper.expressivity.
"""

from qdsbench.studies.expressivity import main

if __name__ == "__main__":
    main()
