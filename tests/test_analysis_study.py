"""Oversmoothing vs depth (recipe A1c) and the analysis study's cheap parts at the smoke budget."""

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from qdsbench.analysis.oversmoothing import depth_profile
from qdsbench.studies import analysis as study


def test_pure_attention_collapses_and_residual_layernorm_does_not():
    def at(profile, layer):
        return next(r["distance_to_mean"] for r in profile if r["layer"] == layer)

    pure = depth_profile({"name": "softmax"}, "pure", "full", depth=8, samples=4)
    assert at(pure, 0) > 0.9 and at(pure, 8) < 1e-6  # rank collapse (Dong et al.)
    window = depth_profile({"name": "softmax"}, "pure", "window", depth=8, samples=4)
    assert at(window, 8) > 100 * at(pure, 8)  # local masks slow the collapse (Wu et al.)
    ln = depth_profile({"name": "softmax"}, "residual_ln", "full", depth=8, samples=4)
    assert at(ln, 8) > 0.3
    ds = depth_profile({"name": "sinkhorn", "n_iter": 10}, "pure", "full", depth=8, samples=4)
    assert at(ds, 8) < 1e-6  # doubly stochastic attention keeps the mean and still contracts the rest
    with pytest.raises(ValueError, match="^unknown variant 'post_ln'; valid choices: pure, residual, residual_ln$"):
        depth_profile({"name": "softmax"}, "post_ln")


def test_study_calibration_and_depth_parts(tmp_path):
    study.main(["--parts", "calibration,depth", "--budget", "smoke", "--out", str(tmp_path)])
    text = (tmp_path / "calibration.md").read_text()
    assert text.startswith("# Calibration") and "Command: `make reproduce-analysis`" in text
    rows = {r["item"]: r for r in study.read_csv(tmp_path / "calibration.csv")}
    assert abs(rows["causal uniform T=64: alpha_1"]["ours"] - 0.074) < 5e-4
    assert rows["qr: max_k |alpha_k - 1/T| (T = 8)"]["ours"] < 1e-9
    assert (tmp_path / "oversmoothing_depth.png").stat().st_size > 1000
    assert (tmp_path / "calibration.csv").read_bytes().count(b"\r\n") == len(rows) + 1  # CRLF, as committed
    with pytest.raises(SystemExit, match="unknown part"):
        study.main(["--parts", "nope", "--out", str(tmp_path)])


def test_study_tables_format_as_committed():
    rows = [{"arm": "a|b", "x": 2.0, "y": 1.5e-5, "z": None, "ok": False, "n": 0.1234}]
    assert study.table(rows, ["arm", "x", "y", "z", "ok", "n"], {"n": "n | m"}) == (
        "| arm | x | y | z | ok | n \\| m |\n|---|---|---|---|---|---|\n"
        "| a\\|b | 2 | 1.50e-05 | - | **no** | 0.123 |\n")
    assert study.mean_std([1.0, None, float("nan")]) == (1.0, 0.0)


def test_thin_script_runs_the_study(tmp_path):
    done = subprocess.run([sys.executable, "scripts/reproduce_analysis.py", "--parts", "nope", "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "reproduce_analysis: unknown part(s) ['nope']" in done.stderr
