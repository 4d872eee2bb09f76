"""Paper tables: the builder's statistics and tolerance logic on fixture records, and the smoke reproduction."""

import json

import pytest
from conftest import REPO_ROOT

from qdsbench.paper.records import load_runs
from qdsbench.paper.reproduce import load_manifest, run
from qdsbench.paper.tables import build_table, load_expected


def fake_run(root, name, *, data="mnist", depth=1, backend="qr", seed=0, acc=0.9, status="finished"):
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        f"data:\n  name: {data}\nmodel:\n  depth: {depth}\nattention:\n  name: {backend}\nseed: {seed}\n")
    (run_dir / "run.json").write_text(json.dumps({"status": status, "seed": seed, "experiment": "qds_table1"}))
    if status == "finished":
        (run_dir / "summary.json").write_text(json.dumps({"final": {"val/acc": acc}, "test": {}}))


def test_mean_std_tolerance_and_failures(tmp_path):
    for seed, acc in enumerate([0.966, 0.968, 0.964]):
        fake_run(tmp_path, f"qr{seed}", seed=seed, acc=acc)
    fake_run(tmp_path, "qr_failed", seed=3, status="failed")
    for seed, acc in enumerate([0.90, 0.80]):
        fake_run(tmp_path, f"sm{seed}", backend="softmax", seed=seed, acc=acc)
    expected = load_expected(REPO_ROOT / "results/qds/expected.csv", "table1")
    table = build_table(load_runs(tmp_path), ["data.name", "model.depth"], "attention.name", "val/acc", expected,
                        missing_data={"fashion_mnist": "not found"})
    rows = {r["attention.name"]: r for r in table}
    qr = rows["qr"]
    assert qr["n_runs"] == 3 and qr["n_failed"] == 1
    assert qr["ours_mean"] == pytest.approx(96.6) and qr["ours_std"] == pytest.approx(0.2)
    assert qr["paper_mean"] == 96.6 and qr["diff"] == pytest.approx(0.0) and qr["within_tolerance"] is True
    softmax = rows["softmax"]
    assert softmax["ours_mean"] == pytest.approx(85.0) and softmax["ours_std"] == pytest.approx(7.07, abs=0.01)
    assert softmax["paper_mean"] == 89.1 and softmax["within_tolerance"] is True  # tolerance 25 (std 12.5)
    assert rows["*"]["note"].startswith("data not present")


def test_expected_csv_covers_the_papers_tables():
    rows = load_expected(REPO_ROOT / "results/qds/expected.csv", "table1")
    assert len(rows) == 40
    a3 = load_expected(REPO_ROOT / "results/qds/expected.csv", "tableA3")
    assert {r["setting"] for r in a3 if r["dataset"] == "mnist" and r["backend"] == "qontot"} == {
        f"depth=1,circuit_layers={n}" for n in (1, 2, 4, 8, 16, 32)}


def test_smoke_reproduction_writes_tables(tmp_path):
    manifest = load_manifest("qds")
    written = run(manifest, ["table1"], "smoke", tmp_path / "logs", tmp_path / "out")
    text = written[0].read_text()
    assert "smoke test" in text and "| digits | 1 | softmax |" in text and "| digits | 1 | sinkhorn |" in text
    assert "(n=2)" in text
    csv_text = written[0].with_suffix(".csv").read_text()
    assert csv_text.splitlines()[0].startswith("data.name,model.depth,attention.name,n_runs")
