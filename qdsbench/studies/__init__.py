"""Paper stages that are not training runs: each module is one study with ``main(argv)``, the same CLI as its thin
entry point in ``scripts/``, and the function a campaign manifest (``conf/paper/<paper>.yaml``, ``stages:``) names.

- :mod:`qdsbench.studies.delta`: the Delta-attention prefill grid on the RULER-synth decoder (conf/paper/delta.yaml)
- :mod:`qdsbench.studies.monarch`: the zero-shot MonarchAttention conversion grid (conf/paper/monarch.yaml)
- :mod:`qdsbench.studies.analysis`: the attention-analysis measurements, one part per stage (conf/paper/analysis.yaml)
- :mod:`qdsbench.studies.expressivity`: QDSFormer's expressivity analysis (a stage of conf/paper/qds.yaml)

Tables and CSVs go through :mod:`qdsbench.tables` (atomic writes).
"""
