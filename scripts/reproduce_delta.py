"""The Delta-attention study (issue 6): train the decoder if missing, evaluate the prefill grid, write the tables.

    make reproduce-delta                       # = .venv/bin/python scripts/reproduce_delta.py
    .venv/bin/python scripts/reproduce_delta.py --samples 4 --lengths 256 --out /tmp/d   # smoke
    .venv/bin/python scripts/reproduce_delta.py --stage tables     # the tables from the records in results/delta/

The study itself is qdsbench.studies.delta (flags: --help); conf/paper/delta.yaml names its stages.
"""

from qdsbench.studies.delta import main

if __name__ == "__main__":
    main()
