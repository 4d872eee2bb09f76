"""The long-term-forecasting protocol, OrthoTrans and OLinear, on the real provided files."""

import numpy as np
import pandas as pd
import pytest
import torch

from qdsbench import data
from qdsbench.data.forecasting import borders, read_values
from qdsbench.models.dlinear import DLinear
from qdsbench.models.olinear import OLinear
from qdsbench.orthotrans import cached_q_matrix, q_matrix
from qdsbench.tasks.forecasting import ForecastingTask


def test_split_borders_follow_tslib():
    assert borders("ett_hour", 17420, 96) == ([0, 8544, 11424], [8640, 11520, 14400])
    assert borders("ett_minute", 69680, 96) == ([0, 34464, 45984], [34560, 46080, 57600])
    assert borders("custom", 966, 36) == ([0, 640, 737], [676, 773, 966])


def test_etth1_window_counts(shared_data_dir):
    module = data.create("etth1", data_dir=str(shared_data_dir), seq_len=96, pred_len=96)
    module.setup()
    assert [len(module.sets[s]) for s in ("train", "val", "test")] == [8449, 2785, 2785]
    for pred_len, expected in ((192, 2689), (336, 2545), (720, 2161)):
        m = data.create("etth1", data_dir=str(shared_data_dir), seq_len=96, pred_len=pred_len)
        m.setup()
        assert len(m.sets["test"]) == expected


def test_scaler_uses_train_rows_only_and_test_loader_keeps_every_window(shared_data_dir):
    module = data.create("ili", data_dir=str(shared_data_dir), seq_len=36, pred_len=24, test_batch_size=16)
    module.setup()
    raw = read_values("ili", shared_data_dir)
    np.testing.assert_allclose(module.scaler_mean, raw[:676].mean(0))
    np.testing.assert_allclose(module.scaler_std, raw[:676].std(0))
    assert len(module.sets["test"]) == 170
    loader = module.test_dataloader()
    assert sum(len(x) for x, _ in loader) == 170  # drop_last=False
    first_x, first_y = module.sets["test"][0]
    scaled = (raw - module.scaler_mean) / module.scaler_std
    np.testing.assert_allclose(first_x.numpy(), scaled[737:773], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first_y.numpy(), scaled[773:797], rtol=1e-5, atol=1e-5)


def test_missing_and_corrupt_files(tmp_path, shared_data_dir):
    with pytest.raises(data.DatasetMissingError) as info:
        data.create("ettm1", data_dir=str(tmp_path)).prepare_data()
    assert "ETTm1.csv" in str(info.value) and "ETDataset" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "ILI").mkdir()
    content = (shared_data_dir / "ILI" / "national_illness.csv").read_text()
    (tmp_path / "ILI" / "national_illness.csv").write_text(content[:-200])
    with pytest.raises(data.DatasetCorruptError, match="md5"):
        data.create("ili", data_dir=str(tmp_path)).prepare_data()


def reference_q(values, length):
    """An independent transcription of the authors' notebook cell."""
    n = values.shape[0]
    mats = []
    for j in range(values.shape[1]):
        lag = np.stack([values[i : i + n - length + 1, j] for i in range(length)])
        centered = lag - lag.mean(axis=1, keepdims=True)
        cov = centered @ centered.T / (lag.shape[1] - 1)
        if (np.diag(cov) < 1e-4).any():
            continue
        mats.append(cov / np.diag(cov)[None, :])
    sigma = np.mean(np.array(mats, dtype=np.float32), axis=0)
    w, v = np.linalg.eigh(sigma)
    return v[:, ::-1].T


def test_q_matrix_properties_and_reference(shared_data_dir, tmp_path):
    values = read_values("ili", shared_data_dir)[:676]
    q = q_matrix(values, 12)
    assert q.shape == (12, 12) and q.dtype == np.float32
    np.testing.assert_allclose(q @ q.T, np.eye(12), atol=1e-5)
    reference = reference_q(values, 12)
    assert np.abs(np.abs(q) - np.abs(reference)).max() < 1e-5
    sigma_rows = np.mean(
        [
            np.cov(np.array([values[i : 676 - 12 + i + 1, j] for i in range(12)]))
            / np.diag(np.cov(np.array([values[i : 676 - 12 + i + 1, j] for i in range(12)])))
            for j in range(7)
        ],
        axis=0,
    ).astype(np.float32)
    eigenvalues = np.einsum("ij,jk,ik->i", q, 0.5 * (sigma_rows + sigma_rows.T), q)
    assert np.all(np.diff(eigenvalues) <= 1e-4)  # rows sorted by descending eigenvalue
    cached = cached_q_matrix(values, 12, tmp_path)
    assert np.array_equal(cached, q) and len(list(tmp_path.glob("q_12_*.npy"))) == 1
    assert np.array_equal(cached_q_matrix(values, 12, tmp_path), q)


def test_olinear_shapes_and_a_short_fit_lowers_the_loss():
    torch.manual_seed(0)
    t, tau, n = 24, 12, 3
    q_in = np.linalg.qr(np.random.default_rng(0).normal(size=(t, t)))[0].astype(np.float32)
    q_out = np.linalg.qr(np.random.default_rng(1).normal(size=(tau, tau)))[0].astype(np.float32)
    net = OLinear(q_in, q_out, n, t, tau, embed_size=4, d_model=32, d_ff=32, e_layers=1, dropout=0.0)
    series = torch.sin(torch.arange(400.0)[:, None] / 5 + torch.arange(n)[None])
    x = torch.stack([series[i : i + t] for i in range(0, 300, 10)])
    y = torch.stack([series[i + t : i + t + tau] for i in range(0, 300, 10)])
    assert net(x).shape == y.shape
    task = ForecastingTask(net, max_epochs=1, optimizer={"name": "adam", "lr": 3e-3})
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = task.loss(net(x), y).item()
    for _ in range(60):
        opt.zero_grad()
        loss = task.loss(net(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    assert DLinear(t, tau)(x).shape == y.shape


def test_weighted_l1():
    """The LR schedules' closed forms are in test_task_base.py."""
    task = ForecastingTask(torch.nn.Identity(), max_epochs=10, optimizer={"name": "adam", "lr": 1e-3})
    pred, target = torch.zeros(1, 4, 1), torch.ones(1, 4, 1)
    expected = float(np.mean([(i + 1) ** -0.5 for i in range(4)]))
    assert task.loss(pred, target).item() == pytest.approx(expected)


def test_test_metrics_are_float64_over_all_windows(make_cfg, shared_data_dir):
    from qdsbench.train import train

    metrics = train(
        make_cfg(
            "experiment=olinear/ili",
            f"paths.data_dir={shared_data_dir}",
            "trainer.max_epochs=1",
            "model.d_model=32",
            "model.d_ff=32",
            "callbacks=forecasting",
            run_name="ili",
        )
    )
    assert metrics["test/n_windows"] == 170 and metrics["test/n_values"] == 170 * 24 * 7
    assert metrics["test/mse"] > 0 and metrics["test/mae"] > 0


@pytest.fixture
def synthetic_ett(tmp_path):
    """An ETT-shaped CSV (14400 hourly rows: the protocol's minimum) with the real file's header."""
    rng = np.random.default_rng(0)
    t = np.arange(14400)
    values = np.stack([np.sin(t / (24 + 5 * j)) + 0.1 * rng.normal(size=t.size) for j in range(7)], axis=1)
    frame = pd.DataFrame(values, columns=["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"])
    frame.insert(0, "date", pd.date_range("2016-07-01", periods=t.size, freq="h").astype(str))
    (tmp_path / "ETT-small").mkdir()
    frame.to_csv(tmp_path / "ETT-small" / "ETTh1.csv", index=False)
    return tmp_path


@pytest.mark.parametrize(
    "model,extra",
    [
        ("olinear", ["model.d_model=16", "model.d_ff=16"]),
        ("dlinear", []),
        ("itransformer", ["model.d_model=16", "model.num_heads=2"]),
        ("itransformer", ["model.d_model=16", "model.num_heads=2", "attention=sinkhorn"]),
    ],
)
def test_fast_dev_run_on_a_synthetic_ett_csv(make_cfg, synthetic_ett, model, extra):
    from qdsbench.train import train

    metrics = train(
        make_cfg(
            f"experiment={model}/etth1",
            f"paths.data_dir={synthetic_ett}",
            "data.verify_md5=false",
            "+trainer.fast_dev_run=true",
            "callbacks=forecasting",
            *extra,
            run_name=f"{model}_{len(extra)}",
        )
    )
    assert np.isfinite(metrics["test/mse"])
    assert metrics["test/n_windows"] == 16 and metrics["test/n_values"] == 16 * 96 * 7


def test_olinear_parameter_count_matches_the_reference(shared_data_dir, tmp_path):
    from qdsbench import models

    inputs = data.create("etth1", data_dir=str(shared_data_dir), seq_len=96, pred_len=96).model_inputs()
    net = models.create("olinear", inputs=inputs, q_cache_dir=str(tmp_path))
    assert sum(p.numel() for p in net.parameters()) == 4_518_944  # the notes' count for ETTh1, T = tau = 96


def test_olinear_builds_q_from_float32_rows_and_its_forecast_depends_on_q(shared_data_dir, tmp_path):
    from qdsbench.models.olinear import create_olinear

    module = data.create("ili", data_dir=str(shared_data_dir), seq_len=36, pred_len=24)
    q_in, q_out = module.model_inputs().orthotrans("paper_ratio", tmp_path)
    rows = read_values("ili", shared_data_dir)[: int(966 * 0.7)]
    assert np.array_equal(q_in, q_matrix(rows.astype(np.float32), 36))
    assert np.array_equal(q_out, q_matrix(rows.astype(np.float32), 24))
    assert np.abs(q_in - q_matrix(rows.astype(np.float64), 36)).max() > 1e-6  # the cast is not a no-op
    torch.manual_seed(0)
    model = create_olinear(inputs=module.model_inputs(), q_cache_dir=str(tmp_path), d_model=16, d_ff=16, e_layers=1)
    model.eval()
    assert torch.equal(model.q_in, torch.from_numpy(q_in)) and torch.equal(model.q_out, torch.from_numpy(q_out))
    x = torch.randn(2, 36, 7)
    with torch.no_grad():
        forecast = model(x)
        model.q_in.copy_(torch.eye(36))  # OrthoTrans replaced by the identity: a different forecast
        assert not torch.allclose(model(x), forecast, atol=1e-4)


def test_q_rows_rules_pick_the_papers_share_or_the_train_split(shared_data_dir, tmp_path):
    """ETTh1 (17420 rows): paper_ratio = the first int(0.6 n) = 10452 rows, train_split = the 12 months (8640)."""
    module = data.create("etth1", data_dir=str(shared_data_dir), seq_len=12, pred_len=6)
    raw = read_values("etth1", shared_data_dir).astype(np.float32)
    for rule, n_rows in (("paper_ratio", 10452), ("train_split", 8640)):
        q_in, q_out = module.model_inputs().orthotrans(rule, tmp_path)
        assert np.array_equal(q_in, q_matrix(raw[:n_rows], 12)) and np.array_equal(q_out, q_matrix(raw[:n_rows], 6))
    with pytest.raises(ValueError, match="unknown q_rows 'all'"):
        module.model_inputs().orthotrans("all", tmp_path)


def test_model_inputs_carry_the_declared_shapes_and_a_wrong_declaration_fails(shared_data_dir):
    inputs = data.create("ili", data_dir=str(shared_data_dir), seq_len=36, pred_len=24).model_inputs()
    assert (inputs.seq_len, inputs.pred_len, inputs.num_variates) == (36, 24, 7)  # undeclared: the file's columns
    assert data.create("ili", data_dir="nowhere", num_variates=7).model_inputs().num_variates == 7  # reads nothing
    wrong = data.create("ili", data_dir=str(shared_data_dir), num_variates=8)
    with pytest.raises(data.DatasetCorruptError, match="has 7 variates but the config declares num_variates=8"):
        wrong.prepare_data()
    with pytest.raises(data.DatasetCorruptError, match="num_variates=8"):
        wrong.model_inputs().orthotrans("paper_ratio", "unused")


def test_a_forecasting_model_on_image_data_names_what_is_missing():
    from omegaconf import OmegaConf

    from qdsbench.builders import build_net
    from qdsbench.errors import UserError

    cfg = OmegaConf.create(
        {
            "model": {"name": "dlinear"},
            "attention": {"name": "softmax"},
            "data": {"name": "digits", "data_dir": "unused", "image_size": 8, "in_chans": 1, "num_classes": 10},
        }
    )
    with pytest.raises(UserError, match="model 'dlinear' needs seq_len, pred_len from its data.*'digits'"):
        build_net(cfg)
