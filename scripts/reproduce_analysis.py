"""The attention-analysis study (issue 8): calibration, co-occurrence dynamics, switch-tagging, ViT, depth.

    make reproduce-analysis          # = .venv/bin/python scripts/reproduce_analysis.py
    .venv/bin/python scripts/reproduce_analysis.py --parts calibration,depth --budget smoke --out /tmp/x

The study itself is qdsbench.studies.analysis (parts and flags: --help); conf/paper/analysis.yaml names one stage
per part.
"""

from qdsbench.studies.analysis import main

if __name__ == "__main__":
    main()
