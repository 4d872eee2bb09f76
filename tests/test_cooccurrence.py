"""Yang et al.'s co-occurrence task, shallow model and GD dynamics (analysis notes, recipe B1 and X2)."""

import csv

import pytest
import torch

from qdsbench.analysis import cooccurrence as dyn
from qdsbench.data.cooccurrence import MU1, MU2, MU3, CooccurrenceDataModule, generate
from qdsbench.models.yang_shallow import YangShallow


def test_data_follows_definition_2_1_with_exact_type_counts():
    tokens, y, types = generate([30, 10, 10, 10], 64, 5, seed=0)
    assert tokens.shape == (60, 5) and y.shape == types.shape == (60,)
    assert [int((types == k).sum()) for k in range(4)] == [30, 10, 10, 10]
    assert ((tokens == MU3).sum(1) == 1).all()  # the common token exactly once in every sequence
    has1, has2 = (tokens == MU1).any(1), (tokens == MU2).any(1)
    assert (has1 == ((types == 0) | (types == 1))).all() and (has2 == ((types == 0) | (types == 2))).all()
    assert ((tokens == MU1).sum(1) <= 1).all() and ((tokens == MU2).sum(1) <= 1).all()
    assert (y == torch.where(types == 0, 1.0, -1.0)).all() and float(y.sum()) == 0  # label-balanced
    assert int(tokens.max()) < 64


def test_distinct_random_tokens_assumption_2_3_ii():
    tokens, _, _ = generate([30, 10, 10, 10], 192, 5, seed=1, distinct=True)
    random = tokens[tokens >= 3]
    assert random.numel() == 160 and random.unique().numel() == 160
    with pytest.raises(ValueError, match="^distinct_random_tokens needs vocab_size >= 163 for 160 random slots"):
        generate([30, 10, 10, 10], 64, 5, seed=0, distinct=True)


def test_model_shapes_readouts_and_linear_mlp():
    torch.manual_seed(0)
    tokens, _, _ = generate([3, 1, 1, 1], 16, 5, seed=0)
    for readout in ("sum", "mean", "first", "cls"):
        net = YangShallow({"name": "softmax"}, 16, 5, m=8, m1=12, readout=readout)
        assert net(tokens).shape == (6,)
        length = 6 if readout == "cls" else 5
        assert net.attention_matrix(tokens).shape == (6, length, length)
    net = YangShallow({"name": "softmax"}, 16, 5, m=8, m1=12)
    assert set(net.a.unique().tolist()) <= {-1.0, 1.0} and not net.a.requires_grad
    torch.testing.assert_close(net.per_query(tokens).sum(-1), net(tokens))
    # with uniform attention F = sum_h G(x_h): the bag-of-words limit of the notes
    net.W_Q.data.zero_()
    torch.testing.assert_close(net(tokens), net.linear_mlp()[tokens].sum(-1))
    with pytest.raises(ValueError, match="^unknown readout 'last'; valid choices: sum, mean, first, cls$"):
        YangShallow({"name": "softmax"}, 16, 5, readout="last")


def test_gd_reproduces_the_two_phases_of_yang_et_al():
    """3000 full-batch GD steps of the Appendix A setup: Phase 1 ends within 100 steps, the loss falls below 1e-3,
    and the end-state and Phase-2 signs of Thm 3.2/3.3 hold (directions, not magnitudes)."""
    torch.manual_seed(0)
    dm = CooccurrenceDataModule(seed=0)
    net = YangShallow({"name": "softmax"}, 64, 5)
    rows, summary = dyn.run_gd(net, dm.full("train"), None, steps=3000, log_every=100, dense_steps=120)
    checks = dyn.phase_checks(rows, summary["T1"])
    assert all(checks.values()), [k for k, ok in checks.items() if not ok]
    assert 5 <= summary["T1"] <= 60  # calibrated 15-35 steps (notes 2.5)
    first = rows[0]
    assert first["loss"] > 0.3 and rows[-1]["loss"] < 1e-3  # and the loss did fall, monotonically at the ends
    t1_row = [r for r in rows if r["step"] == summary["T1"]][0]
    assert t1_row["loss"] > 0.02  # Phase 1 ends with all samples correct but the loss still Theta(1)-ish


@pytest.mark.parametrize(
    "name,options,length",
    [
        ("qr", {}, 5),
        ("sinkhorn", {"n_iter": 21}, 5),
        ("qontot", {"n_data_qubits": 3, "n_aux_qubits": 1, "layers": 2, "grad": "scores", "dtype": "complex128"}, 8),
    ],
)
def test_exact_ds_attention_with_sum_readout_gives_no_gradient_to_w_q_and_w_k(name, options, length):
    """F = sum_l u^T V p_l = u^T V (column sums of A): with exact DS attention W_Q, W_K cannot matter."""
    torch.manual_seed(0)
    tokens, y, _ = generate([4, 2, 2, 2], 32, length, seed=0)
    grads = {}
    for backend in ("softmax", name):
        net = YangShallow({"name": backend, **(options if backend == name else {})}, 32, length, m=16, m1=32).double()
        dyn.logistic_loss(net(tokens), y.double()).mean().backward()
        grads[backend] = {k: float(p.grad.norm()) for k, p in (("Q", net.W_Q), ("K", net.W_K), ("V", net.W_V))}
    assert grads[name]["Q"] < 1e-6 * grads[name]["V"] and grads[name]["K"] < 1e-6 * grads[name]["V"]
    assert grads["softmax"]["Q"] > 1e-4 * grads["softmax"]["V"]  # softmax: attention does get a gradient


def test_cooccurrence_lightning_run_logs_the_dynamics_and_analyze_splits_by_type(make_cfg, tmp_path):
    from qdsbench.analysis.analyze import analyze
    from qdsbench.train import train

    cfg = make_cfg(
        "experiment=analysis/cooccurrence",
        "trainer.max_epochs=1",
        "data.steps_per_epoch=60",
        "task.log_every=20",
        "task.dense_steps=5",
    )
    result = train(cfg)
    assert result["test/acc"] > 0.6
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    logged = {r["metric"] for r in rows}
    assert {
        "train/G_mu1",
        "train/score_q1_k2",
        "train/balance_I2_over_I3",
        "grad/W_Q",
        "train/T1",
        "val/loss_I2_mu1",
    } <= logged
    g_steps = sorted(int(r["step"]) for r in rows if r["metric"] == "train/G_mu1")
    assert g_steps == [0, 1, 2, 3, 4, 20, 40]  # dense, then every log_every; each step logged once
    assert len([r for r in rows if r["metric"] == "train/T1"]) == 1
    out = analyze(tmp_path / "run", max_samples=600, wandb=False)
    groups = list(csv.DictReader(open(out / "metrics_groups.csv")))
    assert [g["group"] for g in groups] == ["I1_both", "I2_mu1", "I3_mu2", "I4_neither"]
    assert [g["count"] for g in groups] == ["300", "100", "100", "100"]
