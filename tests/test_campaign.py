"""Campaigns: manifest expansion, table statistics from records, the runner's budget and resume, and the committed
tables being exactly what the committed records make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from qdsbench.campaign import tables
from qdsbench.campaign.manifest import RUN, Unit, campaign_units, load_manifest, papers, planned_seeds, table_units
from qdsbench.campaign.records import load_records, write_record
from qdsbench.campaign.runner import Campaign
from qdsbench.errors import UserError


def test_every_paper_has_a_manifest_with_paper_and_smoke_protocols():
    assert set(papers()) >= {"qds", "olinear", "delta", "monarch", "analysis"}
    for paper in papers():
        manifest = load_manifest(paper)
        assert manifest.paper == paper and {"paper", "smoke"} <= set(manifest.protocols), paper


def test_manifest_expansion_grid_when_and_seeds():
    manifest = load_manifest("olinear")
    units = table_units(manifest, "ili", "paper")
    assert len(units) == 4 * 4 * 5  # models (iTransformer twice: softmax, NormLin) x horizons x seeds
    by_key = {(u.name, dict(u.point)["data.pred_len"], u.seed): u for u in units}
    assert "trainer.max_epochs=30" in by_key[("olinear/ili", "60", 2023)].overrides  # the script's tau=60 epochs
    assert "trainer.max_epochs=30" not in by_key[("olinear/ili", "48", 2023)].overrides
    seeds = by_key[("olinear/ili", "24", 2023)], by_key[("olinear/ili", "24", 2024)]
    assert seeds[0].group == seeds[1].group and seeds[0].uid != seeds[1].uid  # one cell, two runs


def test_a_run_needed_by_two_tables_is_one_unit():
    manifest = load_manifest("qds")
    table1 = {u.uid for u in table_units(manifest, "table1", "paper")}
    a3 = table_units(manifest, "tableA3", "paper")
    shared = [u for u in a3 if u.uid in table1]
    assert [dict(u.point)["attention.layers"] for u in shared] == ["16"] * 3  # Table 1's static QontOT cell
    assert planned_seeds(manifest, "tableA3", "paper") == [0, 1, 2]
    merged = {u.uid: u for u in campaign_units(manifest, "paper", ["table1", "tableA3"])}
    assert merged[shared[0].uid].tables == ("table1", "tableA3")


def test_unknown_paper_protocol_and_table_name_the_choices():
    with pytest.raises(UserError, match="unknown paper 'qdz'; valid choices: .*qds"):
        load_manifest("qdz")
    with pytest.raises(UserError, match="unknown protocol 'papr'.*valid choices: paper"):
        Campaign("qds", "papr")


def _record(unit: Unit, mse: float) -> dict:
    return {
        "uid": unit.uid,
        "paper": unit.paper,
        "protocol": unit.protocol,
        "experiment": unit.name,
        "seed": unit.seed,
        "status": "finished",
        "metrics": {"test": {"test/mse": mse, "test/mae": mse / 2}, "final": {}},
    }


def _labels(units):
    return {
        u.group: {
            "data.name": "ili",
            "data.pred_len": int(dict(u.point)["data.pred_len"]),
            "model.name": u.name.split("/")[0],
        }
        for u in units
    }


def test_a_run_group_label_names_its_own_column():
    """iTransformer with NormLin shares model.name with plain iTransformer: the group's label keeps them apart."""
    manifest = load_manifest("olinear")
    units = table_units(manifest, "ili", "paper")
    labelled = [u for u in units if u.label]
    assert labelled and all("attention=normlin" in u.overrides and u.name == "itransformer/ili" for u in labelled)
    labels = {
        u.group: {
            "data.name": "ili",
            "data.pred_len": int(dict(u.point)["data.pred_len"]),
            "model.name": u.name.split("/")[0],
        }
        for u in units
    }
    rows = tables.build_rows(manifest, "ili", "paper", {}, labels, [])
    per_horizon = [r for r in rows if r["data.pred_len"] == 24]
    assert sorted(r["model.name"] for r in per_horizon) == [
        "dlinear",
        "itransformer",
        "itransformer + normlin",
        "olinear",
    ]


def test_cells_mean_sample_std_filling_and_verdict():
    manifest = load_manifest("olinear")
    units = [u for u in table_units(manifest, "ili", "paper") if u.name == "olinear/ili"]
    values = {24: [1.0, 2.0, 3.0, 4.0, 5.0], 36: [2.0, 2.0], 48: [1.0, 1.2, 1.4, 1.6, 1.8], 60: [2.0] * 5}
    records = {}
    for u in units:
        horizon, index = int(dict(u.point)["data.pred_len"]), u.seed - 2023
        if index < len(values[horizon]):
            records[u.uid] = _record(u, values[horizon][index])
    expected = tables.load_expected(REPO_ROOT / "results/olinear/expected.csv", "ili")
    rows = tables.build_rows(
        manifest, "ili", "paper", records, _labels(table_units(manifest, "ili", "paper")), expected
    )
    cell = {r["data.pred_len"]: r["test/mse"] for r in rows if r["model.name"] == "olinear"}
    assert cell[24]["mean"] == pytest.approx(3.0) and cell[24]["std"] == pytest.approx(1.5811, abs=1e-4)
    assert cell[24]["n"] == 5 and cell[24]["verdict"] == "no paper value"
    assert cell[36]["n"] == 2 and cell[36]["planned"] == 5
    # The average row averages each seed over the horizons; only seeds present at every horizon count (2023, 2024).
    avg = cell["avg"]
    per_seed = [(1 + 2 + 1.0 + 2) / 4, (2 + 2 + 1.2 + 2) / 4]
    assert avg["n"] == 2 and avg["mean"] == pytest.approx(sum(per_seed) / 2, abs=1e-4)
    assert avg["paper"] == 1.764 and avg["verdict"] == "filling"  # no verdict before all five seeds are in
    markdown, csv_body = tables.render(manifest, "ili", "paper", rows, ["header"])
    assert "| ili | 36 | olinear | paper | 2.0 ± 0.0 (n=2/5) |" in markdown
    assert "| ili | 24 | olinear | paper | 3.0 ± 1.5811 (n=5) |" in markdown
    assert csv_body.splitlines()[0].startswith("data.name,data.pred_len,model.name,protocol,test/mse:n,")


def test_verdict_uses_the_seed_spread_and_one_seed_has_no_spread():
    paper = {"expected": "1.0", "tolerance": "0.1"}
    assert tables.verdict(1.25, 0.1, 5, 5, paper) == "outside"
    assert tables.verdict(1.25, 0.15, 5, 5, paper) == "within"  # |diff| <= 2 std
    assert tables.verdict(1.05, None, 4, 5, paper) == "filling"
    assert tables.seed_stats({7: 2.0}) == (2.0, None, 1)


def test_records_are_never_overwritten(tmp_path):
    unit = Unit("olinear", "paper", RUN, "dlinear/ili", ("data.pred_len=24",), 2023, (("data.pred_len", "24"),))
    first = write_record(tmp_path, _record(unit, 1.0))
    assert first is not None and write_record(tmp_path, _record(unit, 9.0)) is None
    assert json.loads(first.read_text())["metrics"]["test"]["test/mse"] == 1.0
    (first.parent / "broken.json").write_text("{not json")
    assert list(load_records(tmp_path, "olinear", "paper")) == [unit.uid]


@pytest.mark.parametrize(
    "paper, protocol",
    [
        ("qds", "paper"),
        ("qds", "init_study"),
        ("olinear", "paper"),
        ("delta", "paper"),
        ("monarch", "paper"),
        ("analysis", "paper"),
    ],
)
def test_committed_tables_are_exactly_what_the_committed_records_make(paper, protocol, tmp_path):
    """--tables-only: training-run tables from run records, stage tables from their stages' records, byte for byte."""
    campaign = Campaign(paper, protocol, check_data=False)
    campaign.build_tables(say=lambda _: None, out=tmp_path)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert written
    for path in written:
        committed = REPO_ROOT / "results" / path.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} is not committed; run qdsbench-reproduce --tables-only"
        assert path.read_bytes() == committed.read_bytes(), f"{committed} differs from its records"
    stages = {campaign.manifest.tables[t].stage for t in campaign.table_names if "stage" in campaign.manifest.tables[t]}
    done = {s for s in stages if campaign.stage_outputs_exist(s)}  # a stage still running has no tables yet
    for stage in done:  # every markdown output of a finished stage is rebuilt, none is only copied
        for output in campaign.manifest.stages[stage].outputs:
            if output.endswith(".md") and not output.endswith("README.md"):
                rebuilt = tmp_path / Path(output).relative_to("results")
                assert rebuilt.is_file(), f"{output} of stage {stage} was not rebuilt from records"


def test_a_stage_table_is_rebuilt_from_its_records_not_copied(tmp_path):
    """The monarch renderer reads the CSV record: a changed count there shows in the rebuilt table, with the
    intervals recomputed from it; a legacy row without the paired counts shows no interval."""
    from qdsbench.intervals import wilson
    from qdsbench.studies import monarch
    from qdsbench.tables import write_csv

    src = tmp_path / "records" / "monarch"
    row = {
        "backend": "monarch",
        "options": "block_size=14, num_steps=2",
        "layers": "all",
        "samples": 1000,
        "accuracy": 0.9,
        "original_accuracy": 0.97,
        "top1_agreement": 0.91,
        "both_correct": 890,
        "original_only": 80,
        "converted_only": 10,
        "neither": 20,
        "mean_rel_output_error": 0.2,
        "mean_row_kl": 0.1,
        "flops_measured": 1,
        "flops_ratio_vs_softmax": 0.352,
        "analytic_matches_measured": True,
    }
    legacy = {
        **row,
        "options": "block_size=7, num_steps=1",
        "top1_agreement": None,
        **dict.fromkeys(monarch.PAIRED, None),
    }
    write_csv(src / "conversion.csv", [row, legacy])
    meta = {
        "run_dir": "r",
        "command": "grid r",
        "samples": 1000,
        "original_accuracy": 0.97,
        "original_correct": 970,
        "minutes": 1.0,
    }
    (src / "conversion.meta.json").write_text(json.dumps(meta))
    monarch.render(tmp_path / "records", tmp_path / "out")
    text = (tmp_path / "out" / "monarch" / "conversion.md").read_text()
    ci = wilson(900, 1000)
    assert f"| {ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}] | -0.0700 [" in text
    assert "| block_size=7, num_steps=1 | all | 0.9 | — | — |" in text
    assert "Command: `grid r`" in text
    write_csv(src / "conversion.csv", [{**row, "both_correct": 800, "converted_only": 100}, legacy])
    monarch.render(tmp_path / "records", tmp_path / "out")
    assert "| 0.9000 [" in (tmp_path / "out" / "monarch" / "conversion.md").read_text()  # still the 0.9 record
    assert "| +0.0200 [" in (tmp_path / "out" / "monarch" / "conversion.md").read_text()  # 900 vs 880 right


def test_stage_tables_wait_for_their_stage_and_need_a_renderer(tmp_path):
    campaign = Campaign("monarch", "paper", results=tmp_path, check_data=False)  # no records, no outputs there
    said = []
    assert campaign.build_tables(say=said.append, out=tmp_path / "out") == []
    assert said == [f"stage {s} has not run under protocol paper: its tables wait for it" for s in ("grid", "minilm")]
    campaign = Campaign("monarch", "paper", check_data=False)  # the committed results: minilm's stage has run
    del campaign.manifest.stages.minilm["render"]
    with pytest.raises(UserError, match="stage 'minilm' of conf/paper/monarch.yaml names no render function"):
        campaign.build_tables(say=lambda _: None, out=tmp_path / "out")


def test_the_plan_sums_each_table_and_counts_a_shared_run_in_both(tmp_path):
    """Table A3's L = 16 runs are Table 1's depth-1 static QontOT runs: one unit, listed under both tables."""
    campaign = Campaign(
        "qds", "paper", results=tmp_path, work=tmp_path, tables_=["table1", "tableA3"], check_data=False
    )
    shared = [u for u in campaign.units if set(u.tables) == {"table1", "tableA3"}]
    assert shared
    campaign.records = {shared[0].uid: {"uid": shared[0].uid}}
    lines = {line.split(":")[0]: line for line in campaign.plan() if line.startswith("table ")}
    for table in ("table1", "tableA3"):
        mine = [u for u in campaign.units if table in u.tables]
        states = [campaign.status(u) for u in mine]
        hours = sum(st.estimate_s for st in states if st.state != "done") / 3600
        assert lines[f"table {table}"] == (
            f"table {table}: done 1, left {len(mine) - 1}, no data here 0; about {hours:.1f} h of one core left"
        )


def test_the_plan_names_the_error_that_ended_a_units_last_attempt(tmp_path):
    campaign = Campaign("qds", "paper", results=tmp_path, work=tmp_path, tables_=["tableA3"], check_data=False)
    unit = campaign.units[0]
    log = campaign.unit_dir(unit) / "campaign.log"
    log.parent.mkdir(parents=True)
    failed = "\n$ python -m qdsbench.cli.train a\nstarting\nqdsbench: error: P is within 0.05 of the identity\n"
    log.write_text(failed)
    line = next(x for x in campaign.plan() if unit.uid in x)
    assert line.endswith(f"{unit.uid} (last attempt: P is within 0.05 of the identity)")
    log.write_text(failed + "\n$ python -m qdsbench.cli.train b\nEpoch 0: val/acc 0.5\n")  # stopped, no error
    assert next(x for x in campaign.plan() if unit.uid in x).endswith(unit.uid)


def test_the_last_attempts_error_is_found_past_a_log_longer_than_the_tail_read(tmp_path):
    """Only the log's tail is read; an attempt whose start lies before it is still the last one, and its error the
    one named (an earlier attempt's error is not)."""
    from qdsbench.campaign.runner import LOG_TAIL_BYTES

    campaign = Campaign("qds", "paper", results=tmp_path, work=tmp_path, tables_=["tableA3"], check_data=False)
    unit = campaign.units[0]
    log = campaign.unit_dir(unit) / "campaign.log"
    log.parent.mkdir(parents=True)
    epochs = "".join(f"Epoch {i}: val/acc 0.5\n" for i in range(2 * LOG_TAIL_BYTES // 20))
    old = "\n$ python -m qdsbench.cli.train a\nqdsbench: error: an old mistake\n"
    log.write_text(old + "\n$ python -m qdsbench.cli.train b\n" + epochs + "qdsbench: error: data.seq_len=0 is bad\n")
    assert log.stat().st_size > LOG_TAIL_BYTES
    assert campaign.last_error(unit) == "data.seq_len=0 is bad"
    log.write_text(old + "\n$ python -m qdsbench.cli.train b\n" + epochs)
    assert campaign.last_error(unit) is None


def test_plan_for_every_paper_exits_zero():
    for paper in papers():
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "qdsbench.campaign.cli",
                "--paper",
                paper,
                "--plan",
                "--tables",
                _first_table(paper),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO_ROOT,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1].startswith("total: "), out.stdout


def _first_table(paper: str) -> str:
    return next(iter(load_manifest(paper).tables))


def test_bad_cli_input_is_one_line_naming_the_choices():
    out = subprocess.run(
        [sys.executable, "-m", "qdsbench.campaign.cli", "--paper", "olinear", "--tables", "ettx", "--plan"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "qdsbench-reproduce: error: unknown table 'ettx' for paper olinear; valid choices: "
        "ili, ili_s1, etth1, etth2, exchange_rate, predictions"
    )


def _dlinear_unit(epochs: int = 3) -> Unit:
    overrides = ("data.pred_len=24", f"trainer.max_epochs={epochs}", "logger=none", "callbacks.early_stopping=null")
    return Unit("olinear", "smoke", RUN, "dlinear/ili", overrides, 2023, (("data.pred_len", "24"),), ("ili",))


@pytest.fixture
def small_campaign(tmp_path, forecasting_data_dir):
    campaign = Campaign("olinear", "smoke", results=tmp_path / "results", work=tmp_path / "work", tables_=["ili"])
    campaign.units = [_dlinear_unit()]
    return campaign


@pytest.fixture
def forecasting_data_dir():
    data = os.environ.get("QDSBENCH_DATA")
    if not data or not (Path(data) / "ILI").is_dir():
        pytest.skip("ILI data not present (set QDSBENCH_DATA to ../shared/data)")
    return data


def test_a_run_starts_only_when_its_estimate_with_the_margin_fits():
    from qdsbench.campaign.budget import BUDGET_MARGIN, fits_in_budget

    assert BUDGET_MARGIN > 1
    hour = 3600.0
    assert fits_in_budget(hour, BUDGET_MARGIN * hour)
    assert not fits_in_budget(hour, BUDGET_MARGIN * hour - 1)  # fits without the margin, not with it
    assert not fits_in_budget(hour, 0.5 * hour)
    assert fits_in_budget(None, 1.0)  # nothing measured or hinted: the first run measures the cell


def test_budget_too_small_starts_nothing(small_campaign):
    said = []
    assert small_campaign.run(hours=0.002, say=said.append) == 0  # 7 s: less than one run's estimate
    assert any(line.startswith("skip") for line in said)
    assert not small_campaign.records


def test_interrupted_run_resumes_from_its_checkpoint(small_campaign):
    unit = small_campaign.units[0]
    args = small_campaign._run_args(unit)
    # A first attempt killed mid-epoch 2 (after epoch 1's checkpoint): ILI train windows / batch 32 = 20 steps.
    fault = ["+callbacks.fault._target_=qdsbench.callbacks.FaultInjection", "+callbacks.fault.kill_at_step=30"]
    subprocess.run(
        [sys.executable, "-m", "qdsbench.cli.train", *args, *fault], cwd=REPO_ROOT, capture_output=True, timeout=300
    )
    assert small_campaign.status(unit).state == "partial"
    said = []
    assert small_campaign.run(hours=0.5, say=said.append) == 0
    record = small_campaign.records[unit.uid]
    assert record["resumed"] == 1 and record["epochs"] == 3, said
    # its cost counts both attempts (the estimate of the next run uses it), the last attempt alone is less
    assert record["fit_seconds"] > record["fit_seconds_last_attempt"] > 0
    assert record["seconds_per_epoch"] == round(record["fit_seconds"] / 3, 2)
    assert (small_campaign.results / "olinear" / "smoke" / "ili.md").is_file()


def test_a_table_figure_draws_the_tables_own_means_and_spreads(tmp_path):
    """figure: true draws, per column value and horizon, exactly the mean and seed std the table's CSV holds; a table
    with no measured cell draws nothing."""
    from qdsbench.campaign import figures
    from qdsbench.tables import read_csv

    campaign = Campaign("olinear", "paper", check_data=False)
    spec = campaign.manifest.tables["ili"]
    units = table_units(campaign.manifest, "ili", "paper")
    labels = {u.group: campaign.labels(u) for u in units}
    rows = tables.build_rows(campaign.manifest, "ili", "paper", campaign.records, labels, [])
    drawn = {
        (label, int(x)): (cell["mean"], cell["std"], cell["n"])
        for label, points in figures.series(rows, spec, "test/mse").items()
        for x, cell in points
        if cell["mean"] is not None
    }
    table = {
        (r["model.name"], int(r["data.pred_len"])): (float(r["test/mse:mean"]), float(r["test/mse:std"]), 5)
        for r in read_csv(REPO_ROOT / "results" / "olinear" / "ili.csv")
        if r["data.pred_len"] != "avg" and r["test/mse:mean"] is not None and r["model.name"] != "itransformer"
    }
    assert table and all(drawn[key] == value for key, value in table.items())
    assert [x for x, _ in figures.series(rows, spec, "test/mse")["olinear"]] == [24, 36, 48, 60]  # ordered by horizon
    empty = [
        {**r, "test/mse": {**r["test/mse"], "mean": None}, "test/mae": {**r["test/mae"], "mean": None}} for r in rows
    ]
    assert figures.plot_over(empty, spec, "t", tmp_path / "x.png") is None and not (tmp_path / "x.png").exists()
    assert figures.plot_over(rows, spec, "t", tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_is_estimated_from_runs_of_its_own_dataset_not_of_another(tmp_path):
    """Seconds per epoch depend on the dataset's size: 22 min of MNIST epochs are no estimate for BreastMNIST (546
    images), which falls back to the manifest's hint until a BreastMNIST run is measured."""
    campaign = Campaign("qds", "paper", results=tmp_path, work=tmp_path, tables_=["table2"], check_data=False)
    (breast,) = [
        u for u in campaign.units if u.uid.startswith("qds-table1__attention-softmax__data-breastmnist__depth-2__seed0")
    ]
    labels = campaign.labels(breast)
    mnist = {**labels, "data.name": "mnist"}
    campaign.records = {"x-1": {"uid": "x-1", "experiment": "qds/table1", "seconds_per_epoch": 26.0, "config": mnist}}
    epochs = int(labels["trainer.max_epochs"])
    assert campaign.status(breast).estimate_s == pytest.approx(30.0 + epochs * 1.0)  # the hint: 1 s an epoch
    campaign.records["y-1"] = {"uid": "y-1", "experiment": "qds/table1", "seconds_per_epoch": 0.4, "config": labels}
    assert campaign.status(breast).estimate_s == pytest.approx(30.0 + epochs * 0.4)  # measured on its own data


def test_a_forecast_is_estimated_from_runs_of_its_own_horizon(tmp_path):
    """OLinear's output layers grow with the horizon (an ETTh1 epoch took 33 s at 96 and about 4x that at 720): a
    measured 96-step run is no estimate for 720, which keeps the manifest's 720 hint until a 720 run is measured."""
    campaign = Campaign("olinear", "paper", results=tmp_path, work=tmp_path, tables_=["etth1"], check_data=False)
    by_horizon = {
        int(campaign.labels(u)["data.pred_len"]): u
        for u in campaign.units
        if u.name == "olinear/etth1" and u.seed == 2023
    }
    short, long = by_horizon[96], by_horizon[720]
    epochs = int(campaign.labels(long)["trainer.max_epochs"])
    hint = float(campaign.manifest.cost["olinear/etth1 data.pred_len=720"])
    campaign.records = {
        "x-1": {
            "uid": "x-1",
            "experiment": "olinear/etth1",
            "seconds_per_epoch": 33.0,
            "config": campaign.labels(short),
        }
    }
    assert campaign.status(long).estimate_s == pytest.approx(30.0 + epochs * hint)
    assert campaign.status(by_horizon[192]).estimate_s == pytest.approx(
        30.0 + epochs * float(campaign.manifest.cost["olinear/etth1 data.pred_len=192"])
    )
    assert campaign.status(short).estimate_s == pytest.approx(30.0 + epochs * 33.0)  # its own horizon: measured
    campaign.records["y-1"] = {
        "uid": "y-1",
        "experiment": "olinear/etth1",
        "seconds_per_epoch": 140.0,
        "config": campaign.labels(long),
    }
    assert campaign.status(long).estimate_s == pytest.approx(30.0 + epochs * 140.0)


def test_until_is_the_budget_to_a_clock_time():
    from datetime import datetime

    from qdsbench.campaign.cli import hours_until, parse

    now = datetime(2026, 12, 2, 5, 30)
    assert hours_until("06:45", now) == pytest.approx(1.25)
    assert hours_until("05:00", now) == pytest.approx(23.5)  # already past today: tomorrow's
    assert hours_until("2026-12-02T08:00", now) == pytest.approx(2.5)
    with pytest.raises(ValueError, match=r"--until 2026-12-01T08:00 is already past \(now 2026-12-02T05:30\)"):
        hours_until("2026-12-01T08:00", now)
    with pytest.raises(ValueError, match=r"--until 'noon' is not HH:MM or YYYY-MM-DDTHH:MM"):
        hours_until("noon", now)
    assert 0 < parse(["--paper", "qds", "--until", "23:59"]).hours <= 24
    with pytest.raises(SystemExit):
        parse(["--paper", "qds", "--until", "6h"])


def test_an_until_clock_time_already_past_today_says_it_means_tomorrow(capsys, monkeypatch):
    from datetime import datetime

    from qdsbench.campaign import cli

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 2, 5, 30)

    monkeypatch.setattr(cli, "datetime", Clock)
    assert cli.parse(["--paper", "qds", "--until", "05:00"]).hours == pytest.approx(23.5)
    assert "--until 05:00: running until tomorrow 2026-12-03 05:00 (23.50 h)" in capsys.readouterr().err
    assert cli.parse(["--paper", "qds", "--until", "06:00"]).hours == pytest.approx(0.5)
    assert "--until 06:00: running until today 2026-12-02 06:00 (0.50 h)" in capsys.readouterr().err


def test_the_smoke_protocol_keeps_its_records_and_tables_out_of_results(tmp_path, monkeypatch):
    """A protocol with its own results root (smoke: logs/smoke) writes there by default, never into results/."""
    from qdsbench.campaign.cli import main

    monkeypatch.setenv("QDSBENCH_CONF", str(REPO_ROOT / "conf"))
    monkeypatch.setattr("qdsbench.config.REPO_ROOT", tmp_path)  # the CLI's default roots, nothing else
    main(["--paper", "qds", "--protocol", "smoke", "--tables", "table1", "--tables-only"])
    tables = tmp_path / "logs" / "smoke" / "qds" / "smoke"
    assert sorted(p.name for p in tables.glob("table1.*")) == ["table1.csv", "table1.md"]
    assert not (tmp_path / "results").exists()


def test_a_stage_cost_may_differ_per_protocol(tmp_path):
    """A smoke stage that costs seconds must not be skipped for the paper protocol's hours (and vice versa)."""
    from omegaconf import OmegaConf

    estimates = {}
    for protocol in ("paper", "smoke"):
        campaign = Campaign("monarch", protocol, results=tmp_path, check_data=False)
        campaign.manifest.protocols[protocol].stage_results = str(tmp_path)  # no outputs there: both stages todo
        campaign.manifest.stages.grid.cost_s = OmegaConf.create({"paper": 5000, "smoke": 70})
        campaign.manifest.stages.minilm.cost_s = 900  # one value for every protocol
        estimates[protocol] = [
            campaign.status(Unit("monarch", protocol, "stage", s)).estimate_s for s in ("grid", "minilm")
        ]
    assert estimates == {"paper": [5000, 900], "smoke": [70, 900]}


@pytest.mark.parametrize("paper", ["qds", "olinear", "delta", "monarch", "analysis"])
def test_a_smoke_protocol_estimates_every_stage_in_minutes(paper, tmp_path):
    """``--protocol smoke --hours 0.2`` must start every stage: a stage whose estimate is the paper protocol's hours
    is skipped by the budget (the monarch and delta smoke grids were)."""
    campaign = Campaign(paper, "smoke", results=tmp_path, check_data=False)
    campaign.manifest.protocols.smoke.stage_results = str(tmp_path)  # no outputs there: every stage is todo
    stages = [u for u in campaign.units if u.kind == "stage"]
    estimates = {u.name: campaign.status(u).estimate_s for u in stages}
    assert all(e is not None and e <= 600 for e in estimates.values()), estimates
