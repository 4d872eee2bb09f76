"""results/<paper>/expected.csv holds the paper's numbers the verdicts compare against: check its values against the
paper notes (../shared/papers/*.md, or QDSBENCH_PAPERS), parsed from their own markdown tables and text.

QDSFormer: Tables 1, 2, A3 and A1, every cell both ways (each paper cell has exactly one row with its mean and std,
each row is a paper cell) and the tolerance rule max(2 std, 0.5). OLinear: every row's value, from the per-horizon
ETT table, the ablation (ILI), the headline table (Exchange), the ETTh1 baselines (iTransformer) and the DLinear
list.
"""

import csv
import os
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

BACKENDS = {
    "Softmax": "softmax",
    "Softmax_σ²": "normsoftmax_var",
    "QR": "qr",
    "QontOT": "qontot",
    "Sinkhorn": "sinkhorn",
}
MEDMNIST = {
    "OCT": "octmnist",
    "Pneumonia": "pneumoniamnist",
    "Tissue": "tissuemnist",
    "OrganA": "organamnist",
    "OrganC": "organcmnist",
    "OrganS": "organsmnist",
    "Breast": "breastmnist",
}
DATASETS = {"FashionMNIST": "fashion_mnist", "MNIST": "mnist"}


@pytest.fixture
def papers() -> Path:
    candidates = [os.environ.get("QDSBENCH_PAPERS"), REPO_ROOT.parent / "shared" / "papers"]
    if os.environ.get("QDSBENCH_DATA"):
        candidates.append(Path(os.environ["QDSBENCH_DATA"]).parent / "papers")
    for path in filter(None, candidates):
        if (Path(path) / "qdsformer.md").is_file():
            return Path(path)
    pytest.skip("the paper notes (../shared/papers) are not available")


def expected_rows(paper: str) -> list[dict[str, str]]:
    with open(REPO_ROOT / "results" / paper / "expected.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def markdown_table(text: str, caption: str) -> list[list[str]]:
    """The rows (cells stripped of bold) of the first markdown table after the line starting with ``caption``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(caption))
    while not lines[start].startswith("|"):
        start += 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]
        if not all(set(c) <= set("-: ") for c in cells):
            rows.append(cells)
    return rows


def mean_std(cell: str) -> tuple[float, float]:
    mean, std = cell.split("±")
    return float(mean), float(std)


def qds_paper_cells(text: str) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """(table, dataset, backend, setting) -> (mean, std), as expected.csv spells them."""
    cells = {}
    table1 = markdown_table(text, "**Table 1**")
    header, dataset = table1[0], None
    for row in table1[1:]:
        if row[0] in DATASETS:
            dataset = DATASETS[row[0]]
            continue
        for name, cell in zip(header[1:], row[1:]):
            cells[("table1", dataset, BACKENDS[name], f"depth={row[0]}")] = mean_std(cell)
    table2 = markdown_table(text, "**Table 2**")
    for row in table2[1:]:
        if row[0] == "mean":
            continue
        for name, cell in zip(table2[0][1:], row[1:]):
            cells[("table2", MEDMNIST[row[0]], BACKENDS[name], "depth=2")] = mean_std(cell)
    table_a3 = markdown_table(text, "**Table A3**")
    for row in table_a3[1:]:
        depth = {"MNIST": 1, "FashionMNIST": 2}[row[0]]
        for layers, cell in zip(table_a3[0][1:], row[1:]):
            if layers == "ViT baseline":
                key = ("tableA3", DATASETS[row[0]], "softmax", f"depth={depth}")
            else:
                key = ("tableA3", DATASETS[row[0]], "qontot", f"depth={depth},circuit_layers={layers}")
            cells[key] = mean_std(cell)
    table_a1 = markdown_table(text, "**Table A1**")
    for row in table_a1[1:]:
        for ansatz, cell in zip(table_a1[0][1:], row[1:]):
            setting = f"depth=2,circuit_layers={row[0]},ansatz={ansatz.lower()}"
            cells[("tableA1", "fashion_mnist", "qontot", setting)] = mean_std(cell)
    return cells


def test_qds_expected_values_are_the_papers_tables(papers):
    paper = qds_paper_cells((papers / "qdsformer.md").read_text())
    assert sum(1 for key in paper if key[0] == "table1") == 40
    rows = expected_rows("qds")
    ours = {}
    for row in rows:
        key = (row["table"], row["dataset"], row["backend"], row["setting"])
        assert key not in ours, f"duplicate row {key}"
        ours[key] = row
    assert set(ours) == set(paper), set(ours) ^ set(paper)
    for key, (mean, std) in paper.items():
        row = ours[key]
        assert (float(row["expected"]), float(row["expected_std"])) == (mean, std), key
        assert float(row["tolerance"]) == pytest.approx(max(2 * std, 0.5)), key
        assert row["metric"] == ("test/acc" if key[0] == "table2" else "val/acc"), key


def olinear_paper_values(text: str) -> dict[tuple[str, str, str, str], float]:
    """(table, model, setting, metric) -> value, as expected.csv spells them."""
    values = {}

    def put(table, model, setting, pair):
        mse, mae = (float(x) for x in pair.replace(" ", "").split("/"))
        values[(table, model, setting, "test/mse")] = mse
        values[(table, model, setting, "test/mae")] = mae

    ett = markdown_table(text, "**(c) OLinear per-horizon ETT")
    for row in ett[1:]:
        for horizon, pair in zip(ett[0][1:], row[1:]):
            if horizon != "avg":
                put(row[0].lower(), "olinear", f"pred_len={horizon}", pair)
    ablation = {r[0]: r[1] for r in markdown_table(text, "**(b) Dataset-level averages")[1:]}
    put("ili", "olinear", "pred_len=avg", ablation["ILI (S2)"])
    headline = {r[0]: r[1] for r in markdown_table(text, "**(a) Long-term forecasting")[1:]}
    put("exchange_rate", "olinear", "pred_len=avg", headline["Exchange"])
    baselines = {r[0]: r[1:] for r in markdown_table(text, "**(d) ETTh1 per-horizon baselines")[1:]}
    put("etth1", "itransformer", "pred_len=96", baselines["iTransformer"][0])
    dlinear = re.search(r"^- DLinear ETTh1: (.*) \(avg", text, re.M).group(1).split(", ")
    for horizon, pair in zip((96, 192, 336, 720), dlinear):
        put("etth1", "dlinear", f"pred_len={horizon}", pair)
    return values


def test_olinear_expected_values_are_the_papers_numbers(papers):
    paper = olinear_paper_values((papers / "olinear.md").read_text())
    rows = expected_rows("olinear")
    assert rows
    for row in rows:
        key = (row["table"], row["model"], row["setting"], row["metric"])
        assert key in paper, f"expected.csv row {key} has no paper number in the notes"
        assert float(row["expected"]) == paper[key], key
