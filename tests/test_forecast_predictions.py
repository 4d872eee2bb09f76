"""The olinear predictions stage: its records hold the real test window, and its figures are rebuilt from them."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from conftest import REPO_ROOT

from qdsbench.studies import forecast_predictions

RECORDS = REPO_ROOT / "results" / "olinear" / "predictions"


def _rows(table: str) -> list[dict[str, str]]:
    with open(RECORDS / f"{table}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("table, seq_len", [("ili", 36), ("ili_s1", 12)])
def test_recorded_history_and_truth_are_the_first_test_window_of_the_raw_file(table, seq_len, shared_data_dir):
    """Independent of the datamodule: TSLib's 70/10/20 split of national_illness.csv, OT standardised with the train
    rows' mean and population std; the test split starts seq_len rows before the last 20%."""
    path = shared_data_dir / "ILI" / "national_illness.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent (see ../shared/data/README.md)")
    with open(path, newline="") as fh:
        ot = np.array([float(r["OT"]) for r in csv.DictReader(fh)])
    n_train, n_test = int(len(ot) * 0.7), int(len(ot) * 0.2)
    scaled = (ot - ot[:n_train].mean()) / ot[:n_train].std()
    start = len(ot) - n_test - seq_len
    rows = _rows(table)
    for horizon in sorted({int(r["pred_len"]) for r in rows}):
        here = [r for r in rows if int(r["pred_len"]) == horizon]
        history = [float(r["truth"]) for r in sorted(here, key=lambda r: int(r["step"])) if r["model"] == "history"]
        truth = [float(r["truth"]) for r in sorted(here, key=lambda r: int(r["step"])) if r["model"] == "truth"]
        np.testing.assert_allclose(history, scaled[start : start + seq_len], atol=2e-6)
        np.testing.assert_allclose(truth, scaled[start + seq_len : start + seq_len + horizon], atol=2e-6)
        forecasts = {r["model"] for r in here} - {"history", "truth"}
        assert forecasts and all(
            len([r for r in here if r["model"] == m]) == horizon for m in forecasts
        )  # one forecast value per step for every model drawn


def test_figures_and_table_are_rebuilt_from_the_records_alone(tmp_path):
    """render reads only predictions/*.csv and the meta record: the rebuild equals the committed files."""
    shutil.copytree(RECORDS, tmp_path / "records" / "olinear" / "predictions")
    written = forecast_predictions.render(tmp_path / "records", tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == sorted([*(f"{p.stem}_predictions.png" for p in RECORDS.glob("*.csv")), "predictions.md"])
    for path in written:
        assert path.read_bytes() == (REPO_ROOT / "results" / "olinear" / path.name).read_bytes(), path.name
    changed = tmp_path / "records" / "olinear" / "predictions" / "ili.csv"
    text = changed.read_text().splitlines()
    row = next(i for i, line in enumerate(text) if ",olinear," in line)
    parts = text[row].split(",")
    parts[-1] = str(float(parts[-1]) + 1.0)  # one forecast value moved: the figure must change
    changed.write_text("\n".join([*text[:row], ",".join(parts), *text[row + 1 :]]) + "\n")
    forecast_predictions.render(tmp_path / "records", tmp_path / "out")
    assert (tmp_path / "out" / "olinear" / "ili_predictions.png").read_bytes() != (
        REPO_ROOT / "results" / "olinear" / "ili_predictions.png"
    ).read_bytes()
