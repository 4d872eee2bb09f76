"""Oversmoothing vs depth (recipe A1c), the analysis study's cheap parts at the smoke budget, and its tables rebuilt
from the committed records (issue 15)."""

import json
import math
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from omegaconf import OmegaConf

from qdsbench.analysis.oversmoothing import depth_profile
from qdsbench.campaign.stage import resolve
from qdsbench.studies import analysis as study
from qdsbench.studies import analysis_tables as at

RESULTS = REPO_ROOT / "results"
STAGES = OmegaConf.load(REPO_ROOT / "conf" / "paper" / "analysis.yaml").stages


def test_pure_attention_collapses_and_residual_layernorm_does_not():
    def distance(profile, layer):
        return next(r["distance_to_mean"] for r in profile if r["layer"] == layer)

    pure = depth_profile({"name": "softmax"}, "pure", "full", depth=8, samples=4)
    assert distance(pure, 0) > 0.9 and distance(pure, 8) < 1e-6  # rank collapse (Dong et al.)
    window = depth_profile({"name": "softmax"}, "pure", "window", depth=8, samples=4)
    assert distance(window, 8) > 100 * distance(pure, 8)  # local masks slow the collapse (Wu et al.)
    ln = depth_profile({"name": "softmax"}, "residual_ln", "full", depth=8, samples=4)
    assert distance(ln, 8) > 0.3
    ds = depth_profile({"name": "sinkhorn", "n_iter": 10}, "pure", "full", depth=8, samples=4)
    assert distance(ds, 8) < 1e-6  # doubly stochastic attention keeps the mean and still contracts the rest
    with pytest.raises(ValueError, match="^unknown variant 'post_ln'; valid choices: pure, residual, residual_ln$"):
        depth_profile({"name": "softmax"}, "post_ln")


def test_study_calibration_and_depth_parts(tmp_path):
    study.main(["--parts", "calibration,depth", "--budget", "smoke", "--out", str(tmp_path)])
    text = (tmp_path / "calibration.md").read_text()
    assert text.startswith("# Calibration") and "Command: `make reproduce-analysis`" in text
    meta = json.loads((tmp_path / "calibration.meta.json").read_text())
    assert meta["argv"] == "--parts calibration" and meta["budget"] == "smoke" and meta["torch_threads"] == 1
    assert meta["date"] in text and f"torch {meta['torch']}." in text
    rows = {r["item"]: r for r in at.read_records(tmp_path / "calibration.csv")}
    assert abs(rows["causal uniform T=64: alpha_1"]["ours"] - 0.074) < 5e-4
    assert rows["qr: max_k |alpha_k - 1/T| (T = 8)"]["ours"] < 1e-9
    assert (tmp_path / "oversmoothing_depth.png").stat().st_size > 1000
    assert json.loads((tmp_path / "oversmoothing_depth.meta.json").read_text())["samples"] == 2
    assert "| L1 | L2 | L4 | L8 | L16 | L6 | residual_L6 |" in (tmp_path / "oversmoothing_depth.md").read_text()
    for stem in ("calibration", "oversmoothing_depth"):  # the md the part wrote is what its records render to
        md = (tmp_path / f"{stem}.md").read_bytes()
        (tmp_path / f"{stem}.md").unlink()
        assert {"calibration": at.calibration_tables, "oversmoothing_depth": at.depth_tables}[stem](
            tmp_path, tmp_path
        ) == [tmp_path / f"{stem}.md"]
        assert (tmp_path / f"{stem}.md").read_bytes() == md
    assert (tmp_path / "calibration.csv").read_bytes().count(b"\r\n") == len(rows) + 1  # CRLF, as committed
    with pytest.raises(SystemExit, match="unknown part"):
        study.main(["--parts", "nope", "--out", str(tmp_path)])


def test_study_tables_format_as_committed():
    rows = [{"arm": "a|b", "x": 2.0, "y": 1.5e-5, "z": None, "ok": False, "n": 0.1234}]
    assert at.table(rows, ["arm", "x", "y", "z", "ok", "n"], {"n": "n | m"}) == (
        "| arm | x | y | z | ok | n \\| m |\n|---|---|---|---|---|---|\n| a\\|b | 2 | 1.50e-05 | - | **no** | 0.123 |\n"
    )
    assert at.mean_std([1.0, None, float("nan")]) == (1.0, 0.0)


def test_csv_cells_read_back_as_written(tmp_path):
    """A record CSV round-trips to the values the study wrote, so its tables format every cell as when measured."""
    row = {
        "i": 30000,
        "neg": -2,
        "f": 1.0,
        "x": 38.300000000000004,
        "e": 1.5e-05,
        "big": 1e20,
        "nan": float("nan"),
        "inf": float("-inf"),
        "ok": True,
        "no": False,
        "none": None,
        "text": "5e-18 ('10 iterations')",
        "word": "nanometre",
        "empty": "",
    }
    at.write_csv(tmp_path / "r.csv", [row])
    back = at.read_records(tmp_path / "r.csv")[0]
    assert math.isnan(back.pop("nan")) and back.pop("empty") is None  # "" is how None is written
    assert back == {k: v for k, v in row.items() if k not in ("nan", "empty")}
    assert [type(back[k]) for k in ("i", "f", "ok", "text")] == [int, float, bool, str]
    assert at.table([back], ["i", "f", "e", "big", "ok", "no", "none"]).splitlines()[-1] == (
        "| 30000 | 1 | 1.50e-05 | 1.00e+20 | yes | **no** | - |"
    )


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_committed_table_renders_from_its_records(stage, tmp_path):
    """Issue 15: each stage's render (named in conf/paper/analysis.yaml) rebuilds the committed md (and the CSVs
    aggregated from the records) byte for byte from the committed records alone."""
    written = resolve(STAGES[stage].render)(RESULTS, tmp_path)
    assert any(p.suffix == ".md" for p in written)
    for path in written:
        rel = path.relative_to(tmp_path)
        assert f"results/{rel}" in STAGES[stage].outputs
        assert path.read_bytes() == (RESULTS / rel).read_bytes(), rel


def test_rendered_tables_follow_their_records(tmp_path):
    """The tables come from the records, nothing else: a changed meta date or a changed run shows in the output."""
    records = tmp_path / "records" / "analysis"
    shutil.copytree(RESULTS / "analysis", records, ignore=shutil.ignore_patterns("*.png", "*.md"))
    meta = json.loads((records / "switch_causal.meta.json").read_text())
    (records / "switch_causal.meta.json").write_text(json.dumps({**meta, "date": "2031-01-02"}))
    runs = (records / "switch_causal_runs.csv").read_bytes()
    (records / "switch_causal_runs.csv").write_bytes(runs.replace(b"softmax,0,1.0,", b"softmax,0,0.4,"))
    at.render_switch_causal(tmp_path / "records", tmp_path / "out")
    text = (tmp_path / "out" / "analysis" / "switch_causal.md").read_text()
    committed = (RESULTS / "analysis" / "switch_causal.md").read_text()
    assert "Measured 2031-01-02 on x86_64" in text and "Measured 2026-11-24" in committed
    assert "| softmax | 3 | 0.800 |" in text and "| softmax | 3 | 1 |" in committed  # mean test acc over seeds
    assert "| every arm solves the task (test acc > 0.95) | min 0.800 | **no** |" in text
    with pytest.raises(FileNotFoundError):  # no meta record, no table
        (records / "vit_mnist.meta.json").unlink()
        at.render_vit(tmp_path / "records", tmp_path / "out")


def test_thin_script_runs_the_study(tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/reproduce_analysis.py", "--parts", "nope", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "reproduce_analysis: unknown part(s) ['nope']" in done.stderr
