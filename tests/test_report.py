"""Run comparison: the collector, the offline W&B reader, config groups, studies, the HTML dashboard in a browser."""

import base64
import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from qdsbench.report.cli import main as report_main
from qdsbench.report.collect import collect, grouped
from qdsbench.report.wandb_offline import read_wandb_run
from qdsbench.train import train

CHROMIUM = Path("/usr/bin/chromium")
SWEEP = "multiruns/2026-01-01_00-00-00"
TRIALS = [  # (lr, depth, val/acc or None for a failed trial)
    (3e-4, 1, 0.40),
    (1e-3, 2, 0.55),
    (2e-3, 4, 0.50),
    (5e-4, 1, None),
]
SPACE = {"task.optimizer.lr": "tag(log, interval(1e-4, 3e-3))", "model.depth": "choice(1, 2, 4)"}


def _png() -> bytes:
    """A valid 4x4 grey PNG (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([40 * i] * 4) for i in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _record_overrides(run_dir: Path, overrides: list[str]) -> None:
    """What the CLI writes and train() started from Python does not: .hydra/overrides.yaml and the command."""
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    record = json.loads((run_dir / "run.json").read_text())
    record["command"] = "qdsbench-train " + " ".join(overrides)
    (run_dir / "run.json").write_text(json.dumps(record))


def _fabricate(
    src: Path, dst: Path, overrides: list[str], config: dict | None = None, metrics: dict | None = None, **record
) -> Path:
    """A run directory made from a trained one: other overrides, config values, summary metrics, run.json fields."""
    from omegaconf import OmegaConf

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints", "wandb", "analysis"))
    cfg = OmegaConf.load(dst / ".hydra" / "config.yaml")
    for key, value in (config or {}).items():
        OmegaConf.update(cfg, key, value, force_add=True)
    OmegaConf.save(cfg, dst / ".hydra" / "config.yaml")
    _record_overrides(dst, overrides)
    payload = {**json.loads((dst / "run.json").read_text()), "run_dir": str(dst), **record}
    (dst / "run.json").write_text(json.dumps(payload))
    if payload.get("status") != "finished":
        (dst / "summary.json").unlink()
    elif metrics is not None:
        summary = json.loads((dst / "summary.json").read_text())
        summary["test"] = {k: v for k, v in metrics.items() if k.startswith("test/")}
        summary["final"].update({k: v for k, v in metrics.items() if not k.startswith("test/")})
        (dst / "summary.json").write_text(json.dumps(summary))
    return dst


def _sweep(root: Path, src: Path) -> Path:
    """An Optuna study as `hparams_search=...` leaves it: trials <sweep>/<n>/ and optimization_results.yaml."""
    sweep_dir = root / SWEEP
    command = "qdsbench-train experiment=digits_vit hparams_search=qds_vit_sinkhorn hydra.sweeper.n_trials=4"
    for job, (lr, depth, value) in enumerate(TRIALS):
        trial = _fabricate(
            src,
            sweep_dir / str(job),
            [
                f"task.optimizer.lr={lr}",
                f"model.depth={depth}",
                "experiment=digits_vit",
                "hparams_search=qds_vit_sinkhorn",
                "logger=none",
                f"paths.log_dir={root}",
            ],
            config={"task.optimizer.lr": lr, "model.depth": depth, "attention.name": "sinkhorn", "test": False},
            metrics={"val/acc": value},
            status="finished" if value is not None else "failed",
            sweep={"command": command, "dir": str(sweep_dir), "job": job},
            seed=0,
        )
        sweeper = {
            "_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper",
            "direction": "maximize",
            "study_name": "qds_vit_sinkhorn",
            "params": SPACE,
        }
        (trial / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": sweeper}}))
    best = {"name": "optuna", "best_params": {"task.optimizer.lr": 1e-3, "model.depth": 2}, "best_value": 0.55}
    (sweep_dir / "optimization_results.yaml").write_text(yaml.safe_dump(best))
    return sweep_dir


def _analysis_with_wandb_copy(run_dir: Path, wandb_file: Path) -> None:
    """qdsbench-analyze's output: a figure, and W&B's copy of it in the analysis directory's own offline run."""
    analysis = run_dir / "analysis" / "2026-01-01_00-00-00"
    media = analysis / "wandb" / "offline-run-20260101_000000-analysis" / "files" / "media" / "images"
    media.mkdir(parents=True)
    (analysis / "attention_layer0.png").write_bytes(_png())
    (media / "attention_layer0_0_abc.png").write_bytes(_png())
    shutil.copy(wandb_file, media.parents[2] / "run-analysis.wandb")


@pytest.fixture(scope="module")
def fixture_logs(tmp_path_factory):
    """Trained: 2 backends x 2 seeds, a failed run, a W&B run (seed 5); made from them: a running copy, a W&B-only
    copy, a debug=fdr run, a rerun of seed 1, an Optuna study of 4 trials (one failed), an analysis with W&B media."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import compose_config

    root = tmp_path_factory.mktemp("logs")
    base = [
        "experiment=digits_vit",
        "logger=none",
        "callbacks=minimal",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=2",
        f"paths.log_dir={root}",
    ]

    def run(name: str, *overrides: str) -> None:
        overrides = [*base, *overrides, f"paths.output_dir={root}/{name}"]
        try:
            train(compose_config(overrides))
        finally:
            _record_overrides(root / name, overrides)

    for backend in ("softmax", "sdpa"):
        for seed in (0, 1):
            run(f"{backend}_{seed}", f"attention={backend}", f"seed={seed}")
    with pytest.raises(ValueError):
        run("failed", "data.val_size=99999")
    shutil.copytree(root / "softmax_0", root / "running")
    record = json.loads((root / "running" / "run.json").read_text())
    record["status"] = "running"
    (root / "running" / "run.json").write_text(json.dumps(record))
    (root / "running" / "summary.json").unlink()
    old = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "offline"
    try:
        run("wandb_run", "logger=wandb", "seed=5")
    finally:
        os.environ["WANDB_MODE"] = old or "disabled"
    shutil.copytree(root / "wandb_run" / "wandb", root / "wandb_only" / "wandb", symlinks=True)
    softmax = yaml.safe_load((root / "softmax_0" / ".hydra" / "overrides.yaml").read_text())
    _fabricate(
        root / "softmax_0",
        root / "debug_fdr",
        [*softmax, "debug=fdr"],
        config={"task_name": "debug", "trainer.fast_dev_run": True},
        metrics={"test/acc": 0.01},
    )
    rerun = yaml.safe_load((root / "softmax_1" / ".hydra" / "overrides.yaml").read_text())
    first = json.loads((root / "softmax_1" / "summary.json").read_text())["test"]["test/acc"]
    _fabricate(root / "softmax_1", root / "softmax_1_rerun", rerun, metrics={"test/acc": first + 0.1})
    _sweep(root, root / "softmax_0")
    (wandb_file,) = (root / "wandb_run").glob("wandb/offline-run-*/run-*.wandb")
    _analysis_with_wandb_copy(root / "softmax_0", wandb_file)
    return root


@pytest.fixture(scope="module")
def report(fixture_logs, tmp_path_factory):
    """The report of the fixture logs, built once (with the committed campaign tables)."""
    out = tmp_path_factory.mktemp("report")
    report_main(["--logs", str(fixture_logs), "--results", str(REPO_ROOT / "results"), "--out", str(out)])
    html = (out / "index.html").read_text()
    data = json.loads(html.split("const DATA = ", 1)[1].split(";\nDATA.runs.forEach", 1)[0].replace("<\\/", "</"))
    return out, html, data


def _name(run_dir) -> str:
    return Path(str(run_dir)).name


def test_collector_keeps_every_kind_of_run(fixture_logs):
    runs, history = collect(fixture_logs)
    statuses = runs.set_index(runs["run_dir"].map(_name))["status"].to_dict()
    assert statuses["failed"] == "failed" and statuses["running"] == "running"
    assert statuses["softmax_0"] == "finished" and statuses["wandb_only"] == "unknown (W&B only)"
    assert len(runs) == 14 and not runs["run_dir"].str.contains("analysis").any()  # W&B media of an analysis: no run
    assert {
        "cfg.model.depth",
        "cfg.attention.name",
        "metric.test/acc",
        "dataset",
        "backend",
        "task",
        "experiment",
        "config_hash",
        "command",
        "name",
        "group",
        "kind",
    } <= set(runs.columns)
    assert not [c for c in runs.columns if c.startswith(("metric._", "cfg._"))]  # W&B's _runtime, _step, _wandb
    assert set(history.columns) == {"run_dir", "step", "epoch", "metric", "value"}
    assert not history["metric"].str.startswith("_").any()
    assert (history["metric"] == "val/acc").sum() >= 2 * 5  # 2 epochs x 5 finished runs (+ the copies)
    assert runs["name"].is_unique and runs.set_index(runs["run_dir"].map(_name))["task"]["sdpa_0"] == "classification"


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


def test_debug_runs_are_hidden_and_groups_count_distinct_seeds(fixture_logs):
    runs, _ = collect(fixture_logs)
    by_dir = runs.set_index(runs["run_dir"].map(_name))
    assert by_dir.loc["debug_fdr", "kind"] == "debug" and bool(by_dir.loc["debug_fdr", "hidden"])
    assert not by_dir.drop("debug_fdr")["hidden"].any()
    table = grouped(runs, "test/acc")
    assert "debug=fdr" not in " ".join(table["label"])  # excluded by default
    softmax = table[table["backend"] == "softmax"].iloc[0]
    per_seed = [
        by_dir.loc["softmax_0", "metric.test/acc"],
        (by_dir.loc["softmax_1", "metric.test/acc"] + by_dir.loc["softmax_1_rerun", "metric.test/acc"]) / 2,
        by_dir.loc["wandb_run", "metric.test/acc"],
    ]
    assert softmax["n"] == 3 and softmax["runs"] == 4 and softmax["seeds"] == "0,1,5"  # seed 1 ran twice
    assert softmax["mean"] == pytest.approx(sum(per_seed) / 3)
    assert softmax["std"] == pytest.approx(float(__import__("numpy").std(per_seed, ddof=1)))
    shown = grouped(runs, "test/acc", include_hidden=True)
    debug = shown[shown["label"].str.contains("debug=fdr")].iloc[0]
    assert debug["n"] == 1 and debug["runs"] == 1 and debug["mean"] == pytest.approx(0.01)
    assert sorted(shown[shown["backend"] == "softmax"]["n"]) == [1, 3]  # the debug group stays apart


def test_groups_and_runs_are_named_by_the_overrides_that_differ(fixture_logs):
    runs, _ = collect(fixture_logs)
    assert sorted(grouped(runs, "test/acc")["label"]) == ["digits_vit attention=sdpa", "digits_vit attention=softmax"]
    names = runs.set_index(runs["run_dir"].map(_name))["name"]
    assert names["sdpa_1"] == "digits_vit attention=sdpa seed 1"
    assert names["softmax_1_rerun"] == "digits_vit attention=softmax seed 1 #2"
    assert names["debug_fdr"] == "digits_vit attention=softmax debug=fdr seed 0"
    assert names["1"] == "digits_vit hparams_search=qds_vit_sinkhorn model.depth=2 task.optimizer.lr=0.001 seed 0"
    assert names["failed"] == "digits_vit data.val_size=99999 seed 0 (failed)" and "W&B only" in names["wandb_only"]
    assert names["running"] == "digits_vit attention=softmax seed 0 (running)"


def test_html_report_is_self_contained_with_each_figure_once(report):
    out, html, data = report
    assert "Plotly" in html and "https://" not in html.split("<script>", 2)[-1][:2000]  # data and code are inline
    assert "_runtime" not in json.dumps(data) and not [m for m in data["metrics"] if m.startswith("_")]
    by_dir = {_name(r["run_dir"]): r for r in data["runs"]}
    assert by_dir["failed"]["status"] == "failed" and by_dir["debug_fdr"]["hidden"]
    assert by_dir["sdpa_0"]["overrides"]["attention"] == "sdpa" and by_dir["sdpa_0"]["tags"] == ["digits", "vit"]
    assert by_dir["sdpa_0"]["config"]["attention.name"] == "sdpa"  # the keys a two-run config diff can show
    ids = [chunk.split('"', 1)[0] for chunk in html.split(' id="')[1:]]
    assert len(ids) == len(set(ids)) and {"fig-groups", "fig-curves", "fig-compare"} <= set(ids)
    assert [i["name"] for i in data["images"]] == ["analysis/2026-01-01_00-00-00/attention_layer0.png"]  # not twice
    table = (out / "summary_test_acc.md").read_text()
    assert "| digits_vit attention=softmax | digits | vit | softmax |" in table and "debug" not in table
    assert table.count("\n") == 4  # header, rule, softmax, sdpa


def test_study_section_shows_the_best_trial_and_importances(report):
    _, _, data = report
    (study,) = data["studies"]
    assert study["name"] == "qds_vit_sinkhorn" and study["metric"] == "val/acc" and study["direction"] == "maximize"
    assert study["best"]["value"] == 0.55 and study["best"]["job"] == 1
    assert study["best"]["params"] == {"task.optimizer.lr": 1e-3, "model.depth": 2}
    assert [t["value"] for t in study["trials"]] == [v for *_, v in TRIALS]
    assert [t["params"]["model.depth"] for t in study["trials"]] == [d for _, d, _ in TRIALS]
    assert set(study["importance"]) == set(SPACE), study["importance_note"]


@pytest.mark.browser
def test_dashboard_in_chromium(report, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (make browser-deps)")
    out, _, data = report
    visible = [r for r in data["runs"] if not r["hidden"]]
    with_curves = [r for r in visible if "val/acc" in data["curves"].get(r["run_dir"], {})]
    index = {_name(r["run_dir"]): i for i, r in enumerate(data["runs"])}
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page(viewport={"width": 1300, "height": 1600})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "index.html").as_uri())
        page.wait_for_function("document.getElementById('fig-curves').data !== undefined")
        rows = page.locator("#runs tbody tr")
        assert rows.count() == len(visible) == 13 and page.locator("#runs tr.hidden-run").count() == 0
        assert page.evaluate("document.getElementById('fig-curves').data.length") == len(with_curves) == 12
        assert page.evaluate("document.getElementById('fig-curves').layout.xaxis.title.text") == "step"
        page.select_option("#curve-x", "epoch")
        assert page.evaluate("document.getElementById('fig-curves').layout.xaxis.title.text") == "epoch"
        assert page.evaluate("document.getElementById('fig-curves').data[0].x") == [0, 1]  # val/acc after each epoch
        page.select_option("#curve-x", "step")
        headers = page.locator("#runs thead th.override").all_inner_texts()
        assert "attention" in headers and "debug" not in headers
        assert page.locator("#groups tbody tr").count() == 2  # test/acc: softmax (3 seeds), sdpa (2)
        assert page.locator("#groups tbody tr td.seeds").all_inner_texts() == ["2", "3"]
        page.check("#show-hidden")
        assert rows.count() == len(data["runs"]) == 14
        assert "debug=fdr" in page.locator("#runs tr.hidden-run").inner_text()
        assert "debug" in page.locator("#runs thead th.override").all_inner_texts()
        assert page.locator("#groups tbody tr").count() == 3
        page.uncheck("#show-hidden")
        page.select_option("#compare-a", str(index["softmax_0"]))
        page.locator(f'#runs tr[data-run="{index["sdpa_1"]}"] button[data-slot="b"]').click()
        diff = page.locator("#compare-table tbody")
        assert "attention" in diff.inner_text() and "sdpa" in diff.inner_text()
        assert page.locator("#compare-table tr.diff-config").count() >= 1
        assert page.evaluate("document.getElementById('fig-compare').data.length") == 2
        page.locator("#compare-section").screenshot(path=str(tmp_path / "compare.png"))
        assert "0.55" in page.locator("#study-0-best").inner_text()
        assert "model.depth=2" in page.locator("#study-0-best").inner_text()
        assert page.evaluate("document.getElementById('fig-study-0-trials').data.length") == 2
        assert page.evaluate("document.getElementById('fig-study-0-importance').data[0].y.length") == 2
        page.locator("#studies-section").screenshot(path=str(tmp_path / "study.png"))
        ids = page.evaluate("[...document.querySelectorAll('[id]')].filter(e => !e.closest('svg')).map(e => e.id)")
        assert len(ids) == len(set(ids))
        assert page.locator(".js-plotly-plot").count() == len([i for i in ids if i.startswith("fig-")]) == 5
        wide = page.evaluate("""() => { const t = document.querySelector('.paper-table'); const box = t.parentElement;
            return [box.scrollWidth > box.clientWidth, document.documentElement.scrollWidth <= window.innerWidth]; }""")
        assert wide == [True, True]  # the wide campaign table scrolls inside its box, the page does not
        page.locator('#paper-nav a[data-paper="olinear"]').click()
        page.wait_for_function(
            "[...document.querySelectorAll('#paper-olinear figure.table-figure img')]"
            ".some(i => i.complete && i.naturalWidth > 0)"
        )  # the table's figure decodes
        page.select_option("#filter-backend", "sdpa")
        assert rows.count() == 2
        assert page.evaluate("document.getElementById('fig-curves').data.length") == 2
        page.select_option("#filter-status", "failed")
        assert rows.count() == 0
        page.select_option("#filter-backend", "")
        page.select_option("#filter-status", "")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert all((tmp_path / f).stat().st_size > 5_000 for f in ("dashboard.png", "compare.png", "study.png"))


def test_dashboard_shows_the_committed_campaign_tables_with_their_verdicts():
    from qdsbench.report.html import _paper_tables

    tables = {(t["paper"], t["name"]): t for t in _paper_tables(REPO_ROOT / "results")}
    ili = tables[("olinear", "ili")]
    verdict_columns = [c for c in ili["columns"] if c.endswith(":verdict")]
    assert verdict_columns == ["test/mse:verdict", "test/mae:verdict"] and "protocol" in ili["columns"]
    assert ili["title"].startswith("ILI (setting S2)")
    assert any(n.startswith("Protocol **paper**") for n in ili["notes"])  # the protocol and what n means
    assert ("qds", "table1") in tables
    # a table drawn as a figure (figure: true) carries that committed PNG, byte for byte
    assert [f["name"] for f in ili["figures"]] == ["ili_vs_pred_len.png", "ili_predictions.png"]
    png = (REPO_ROOT / "results" / "olinear" / "ili_vs_pred_len.png").read_bytes()
    assert base64.b64decode(ili["figures"][0]["data"]) == png
    assert tables[("qds", "table1")]["figures"] == []
