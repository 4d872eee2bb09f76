"""The long-term-forecasting protocol of Time-Series-Library (TSLib), implemented exactly.

Splits: ETT hourly 12/4/4 months (borders [0, 8640-T, 11520-T] / [8640, 11520, 14400]; rows after 14400 unused),
ETT 15-min the same x4, other datasets 7:1:2 (num_train = int(0.7 n), num_test = int(0.2 n)); validation and test
segments start T rows early. StandardScaler (population std) fitted on the train rows only. Stride-1 windows.
Test loader: shuffle=False, drop_last=False. Files are checked by md5 where known; a missing file fails with one line.
Models get the shapes and OLinear's OrthoTrans Q from ``model_inputs()``: this module is the only reader of the files.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from qdsbench.data.inputs import ModelInputs
from qdsbench.data.registry import register
from qdsbench.data.samplers import EpochSeededSampler
from qdsbench.errors import DatasetCorruptError, DatasetMissingError
from qdsbench.orthotrans import cached_q_matrix, q_rows_for

TSLIB = "the Time-Series-Library dataset bundle (github.com/thuml/Time-Series-Library, 'all_datasets')"


@dataclass(frozen=True)
class ForecastFile:
    path: str
    kind: str  # ett_hour | ett_minute | custom
    md5: tuple[str, ...]
    source: str
    q_ratio: float  # rows the paper's Q matrices were computed from (0.6 ETT, 0.7 others)


FILES = {
    "etth1": ForecastFile(
        "ETT-small/ETTh1.csv",
        "ett_hour",
        ("8381763947c85f4be6ac456c508460d6",),
        "github.com/zhouhaoyi/ETDataset (ETT-small/)",
        0.6,
    ),
    "etth2": ForecastFile(
        "ETT-small/ETTh2.csv",
        "ett_hour",
        ("51a229a3fc13579dd939364fefe9c7ab",),
        "github.com/zhouhaoyi/ETDataset (ETT-small/)",
        0.6,
    ),
    "ettm1": ForecastFile(
        "ETT-small/ETTm1.csv",
        "ett_minute",
        ("82d6bd89109c63d075d99c1077b33f38",),
        "github.com/zhouhaoyi/ETDataset (ETT-small/)",
        0.6,
    ),
    "ettm2": ForecastFile(
        "ETT-small/ETTm2.csv",
        "ett_minute",
        ("7687e47825335860bf58bccb31be0c56",),
        "github.com/zhouhaoyi/ETDataset (ETT-small/)",
        0.6,
    ),
    "ili": ForecastFile("ILI/national_illness.csv", "custom", ("652810719aa3cb6be48b277dd1b9da8a",), TSLIB, 0.7),
    "exchange_rate": ForecastFile(
        "exchange_rate/exchange_rate.csv",
        "custom",
        ("60553ab6c2bed1a235cbcf194ac04f57", "2fc11972378a4c8817c1adfdde522bf9"),
        TSLIB,
        0.7,
    ),
    "electricity": ForecastFile(
        "electricity/electricity.csv", "custom", ("a1973ba4f4bed84136013ffa1ca27dc8",), TSLIB, 0.7
    ),
    "weather": ForecastFile("weather/weather.csv", "custom", (), TSLIB, 0.7),
    "traffic": ForecastFile("traffic/traffic.csv", "custom", (), TSLIB, 0.7),
}
SPLITS = ("train", "val", "test")


def borders(kind: str, n_rows: int, seq_len: int) -> tuple[list[int], list[int]]:
    if kind in ("ett_hour", "ett_minute"):
        unit = 30 * 24 * (4 if kind == "ett_minute" else 1)
        return [0, 12 * unit - seq_len, 16 * unit - seq_len], [12 * unit, 16 * unit, 20 * unit]
    num_train, num_test = int(n_rows * 0.7), int(n_rows * 0.2)
    num_val = n_rows - num_train - num_test
    return [0, num_train - seq_len, n_rows - num_test - seq_len], [num_train, num_train + num_val, n_rows]


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _numeric(frame: pd.DataFrame, path: Path, name: str) -> np.ndarray:
    """The cells as float64; the first empty, NaN or non-numeric cell is one error naming the file, line and column
    (else it would surface epochs later as a NaN loss blamed on the learning rate)."""
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        col = int(np.flatnonzero(bad[row])[0])
        cell = frame.iat[row, col]
        what = "is empty or NaN" if pd.isna(cell) else f"{cell!r} is not a number"
        raise DatasetCorruptError(
            f"dataset '{name}': {path} line {row + 2}, column '{frame.columns[col]}': {what}; "
            "every data cell must be a number (fix the file or download it again)"
        )
    return numbers.to_numpy(dtype=np.float64)


def read_values(name: str, data_dir: str | Path, verify_md5: bool = True) -> np.ndarray:
    """The file's data columns (date dropped; custom files reordered to <others>, OT) as float64 rows x variates."""
    spec = FILES[name]
    path = Path(data_dir) / spec.path
    if not path.is_file():
        raise DatasetMissingError(name, str(path), f"download {Path(spec.path).name} from {spec.source}")
    if verify_md5 and spec.md5 and file_md5(path) not in spec.md5:
        raise DatasetCorruptError(
            f"dataset '{name}': {path} has md5 {file_md5(path)}, expected one of "
            f"{', '.join(spec.md5)}; download it again from {spec.source}"
        )
    frame = pd.read_csv(path)
    if spec.kind == "custom":
        columns = [c for c in frame.columns if c not in ("date", "OT")] + ["OT"]
        frame = frame[columns]
    else:
        frame = frame.drop(columns=["date"])
    values = _numeric(frame, path, name)
    if spec.kind.startswith("ett") and len(values) < borders(spec.kind, len(values), 0)[1][2]:
        raise DatasetCorruptError(
            f"dataset '{name}': {path} has {len(values)} rows, fewer than the protocol's "
            f"{borders(spec.kind, len(values), 0)[1][2]}; the file is truncated"
        )
    return values


class WindowDataset(Dataset):
    """Stride-1 windows: input rows [i, i+T), target rows [i+T, i+T+tau)."""

    def __init__(self, values: np.ndarray, seq_len: int, pred_len: int):
        self.data = torch.as_tensor(values, dtype=torch.float32)
        self.seq_len, self.pred_len = seq_len, pred_len

    def __len__(self) -> int:
        return len(self.data) - self.seq_len - self.pred_len + 1

    def __getitem__(self, i: int):
        return self.data[i : i + self.seq_len], self.data[i + self.seq_len : i + self.seq_len + self.pred_len]


class ForecastDataModule(pl.LightningDataModule):
    task = "forecasting"  # the task its (input window, target window) batches are for

    def __init__(
        self,
        *,
        name: str,
        data_dir: str,
        seq_len: int = 96,
        pred_len: int = 96,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        test_batch_size: int = 16,
        num_workers: int = 0,
        verify_md5: bool = True,
        shuffle_seed: int | None = None,
        num_variates: int | None = None,  # the config's declaration; checked against the file when it is read
    ):
        super().__init__()
        if name not in FILES:
            raise ValueError(f"unknown forecasting dataset '{name}'; valid choices: {', '.join(FILES)}")
        self.name, self.data_dir, self.seq_len, self.pred_len = name, data_dir, seq_len, pred_len
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.test_batch_size, self.num_workers, self.verify_md5 = test_batch_size, num_workers, verify_md5
        self.shuffle_seed = 0 if shuffle_seed is None else shuffle_seed
        self.num_variates = num_variates
        self.sets: dict[str, WindowDataset] = {}
        self.scaler_mean: np.ndarray | None = None
        self.scaler_std: np.ndarray | None = None

    def read(self) -> np.ndarray:
        """The file's rows (``read_values``); a column count other than the declared num_variates fails here."""
        values = read_values(self.name, self.data_dir, self.verify_md5)
        if self.num_variates is not None and values.shape[1] != self.num_variates:
            raise DatasetCorruptError(
                f"dataset '{self.name}': {FILES[self.name].path} has {values.shape[1]} variates but the config "
                f"declares num_variates={self.num_variates}; fix conf/data/{self.name}.yaml or the file"
            )
        return values

    def model_inputs(self) -> ModelInputs:
        """Shapes (the declared num_variates, else the file's) and the OrthoTrans Q; nothing is read until needed."""
        num_variates = self.num_variates if self.num_variates is not None else self.read().shape[1]
        return ModelInputs(
            seq_len=self.seq_len, pred_len=self.pred_len, num_variates=num_variates, orthotrans=self.orthotrans
        )

    def orthotrans(self, q_rows: str, cache_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
        """OLinear's Q_in (seq_len) and Q_out (pred_len) from the raw rows ``q_rows`` picks (see orthotrans.py)."""
        values = self.read()
        train_end = borders(FILES[self.name].kind, len(values), self.seq_len)[1][0]
        # float32 rows, as the authors' notebook reads them: with float64 rows Q differs by up to 4e-5 (ILI).
        rows = q_rows_for(values, q_rows, FILES[self.name].q_ratio, train_end).astype(np.float32)
        return cached_q_matrix(rows, self.seq_len, cache_dir), cached_q_matrix(rows, self.pred_len, cache_dir)

    def prepare_data(self) -> None:
        self.read()

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        values = self.read()
        starts, ends = borders(FILES[self.name].kind, len(values), self.seq_len)
        train = values[starts[0] : ends[0]]
        self.scaler_mean = train.mean(axis=0)
        self.scaler_std = train.std(axis=0)  # population std, as sklearn's StandardScaler
        scaled = (values - self.scaler_mean) / np.where(self.scaler_std == 0, 1.0, self.scaler_std)
        for split, start, end in zip(SPLITS, starts, ends):
            self.sets[split] = WindowDataset(scaled[start:end], self.seq_len, self.pred_len)

    def train_dataloader(self) -> DataLoader:
        ds = self.sets["train"]
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(len(ds), self.shuffle_seed),
            num_workers=self.num_workers,
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["val"], batch_size=self.eval_batch_size, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["test"], batch_size=self.test_batch_size, shuffle=False, drop_last=False)


for _name in FILES:
    register(_name)(functools.partial(ForecastDataModule, name=_name))
