"""Run comparison: the collector, the offline W&B reader, grouping, the HTML dashboard in a real browser."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from qdsbench.report.cli import main as report_main
from qdsbench.report.collect import collect, grouped
from qdsbench.report.wandb_offline import read_wandb_run
from qdsbench.train import train

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def fixture_logs(tmp_path_factory):
    """Real runs: 2 backends x 2 seeds finished (one with W&B offline), a failed one, a running one, a W&B-only one."""
    import os
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import compose_config

    root = tmp_path_factory.mktemp("logs")
    base = ["experiment=digits_vit", "logger=none", "callbacks=minimal", "trainer.enable_progress_bar=false",
            "trainer.max_epochs=2", f"paths.log_dir={root}"]
    for backend in ("softmax", "sdpa"):
        for seed in (0, 1):
            train(compose_config([*base, f"attention={backend}", f"seed={seed}",
                                  f"paths.output_dir={root}/{backend}_{seed}"]))
    with pytest.raises(ValueError):
        train(compose_config([*base, "data.val_size=99999", f"paths.output_dir={root}/failed"]))
    shutil.copytree(root / "softmax_0", root / "running")
    record = json.loads((root / "running" / "run.json").read_text())
    record["status"] = "running"
    (root / "running" / "run.json").write_text(json.dumps(record))
    (root / "running" / "summary.json").unlink()
    old = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "offline"
    try:
        train(compose_config([*base, "logger=wandb", "seed=5", f"paths.output_dir={root}/wandb_run"]))
    finally:
        os.environ["WANDB_MODE"] = old or "disabled"
    shutil.copytree(root / "wandb_run" / "wandb", root / "wandb_only" / "wandb", symlinks=True)
    return root


def test_collector_keeps_every_kind_of_run(fixture_logs):
    runs, history = collect(fixture_logs)
    statuses = runs.set_index(runs["run_dir"].map(lambda p: Path(p).name))["status"].to_dict()
    assert statuses["failed"] == "failed" and statuses["running"] == "running"
    assert statuses["softmax_0"] == "finished" and statuses["wandb_only"] == "unknown (W&B only)"
    assert {"cfg.model.depth", "cfg.attention.name", "metric.test/acc", "dataset", "backend"} <= set(runs.columns)
    assert set(history.columns) == {"run_dir", "step", "epoch", "metric", "value"}
    assert (history["metric"] == "val/acc").sum() >= 2 * 5  # 2 epochs x 5 finished runs (+ the running copy)


def test_wandb_offline_reader_recovers_history_config_and_summary(fixture_logs):
    (path,) = (fixture_logs / "wandb_run").glob("wandb/offline-run-*/run-*.wandb")
    parsed = read_wandb_run(path)
    logged = [row for row in parsed["history"] if "val/acc" in row]
    assert len(logged) == 2
    history = (fixture_logs / "wandb_run" / "metrics.csv").read_text().splitlines()
    ours = [line for line in history if ",val/acc," in line]
    assert [round(r["val/acc"], 6) for r in logged] == [round(float(line.split(",")[3]), 6) for line in ours]
    runs, _ = collect(fixture_logs)
    wandb_only = runs[runs["run_dir"].str.endswith("wandb_only")].iloc[0]
    assert wandb_only["metric.val/acc"] == pytest.approx(logged[-1]["val/acc"])


def test_grouping_mean_std_and_seed_counts(fixture_logs):
    runs, _ = collect(fixture_logs)
    table = grouped(runs, "test/acc")
    softmax = table[table["backend"] == "softmax"].iloc[0]
    values = runs[(runs["backend"] == "softmax") & (runs["status"] == "finished")]["metric.test/acc"]
    assert softmax["n"] == len(values) == 3  # seeds 0, 1 and the W&B run (seed 5)
    assert softmax["mean"] == pytest.approx(values.mean()) and softmax["std"] == pytest.approx(values.std())


def test_html_report_contains_the_runs(fixture_logs, tmp_path):
    report_main(["--logs", str(fixture_logs), "--out", str(tmp_path)])
    html = (tmp_path / "index.html").read_text()
    assert "softmax_0" in html and '"status": "failed"' in html and "Plotly" in html
    assert "https://" not in html.split("<script>", 2)[-1][:2000]  # data and code are inline
    assert (tmp_path / "summary_test_acc.md").read_text().count("digits") == 2


@pytest.mark.browser
def test_dashboard_in_chromium(fixture_logs, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make browser-deps)")
    report_main(["--logs", str(fixture_logs), "--out", str(tmp_path)])
    runs, history = collect(fixture_logs)
    with_curves = history[history["metric"] == "val/acc"]["run_dir"].nunique()
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page(viewport={"width": 1300, "height": 1600})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tmp_path / "index.html").as_uri())
        page.wait_for_function("document.getElementById('curves').data !== undefined")
        n_runs = page.locator("#runs tbody tr").count()
        assert n_runs == len(runs) == 8
        curves = page.evaluate("document.getElementById('curves').data.length")
        assert curves == with_curves == 7  # every run but the failed one has a val/acc history
        bars = page.evaluate("document.getElementById('bars').data[0].x.length")
        assert bars == 2
        page.select_option("#filter-backend", "sdpa")
        assert page.locator("#runs tbody tr").count() == 2
        assert page.evaluate("document.getElementById('curves').data.length") == 2
        page.select_option("#filter-status", "failed")
        assert page.locator("#runs tbody tr").count() == 0
        page.screenshot(path=str(tmp_path / "dashboard.png"))
        browser.close()
    assert not errors, errors
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_dashboard_shows_the_committed_campaign_tables_with_their_verdicts():
    from qdsbench.report.html import _paper_tables

    tables = {(t["paper"], t["name"]): t for t in _paper_tables(REPO_ROOT / "results")}
    ili = tables[("olinear", "ili")]
    verdict_columns = [c for c in ili["columns"] if c.endswith(":verdict")]
    assert verdict_columns == ["test/mse:verdict", "test/mae:verdict"] and "protocol" in ili["columns"]
    assert ili["title"].startswith("ILI (setting S2)")
    assert ("qds", "table1") in tables
