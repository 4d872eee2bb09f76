"""MonarchAttention and the efficient-attention baselines; zero-shot conversion of a trained run."""

import json

import pytest
import torch

from qdsbench import attention
from qdsbench.attention.monarch import monarch_flops
from qdsbench.convert import convert_and_evaluate
from qdsbench.train import train


def qkv(n=50, d=16, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, n, d, generator=g, dtype=torch.float64) * scale for _ in range(3)]


@pytest.mark.parametrize(
    "n,block,steps,pad",
    [(49, 7, 1, "pre"), (50, 7, 2, "pre"), (50, 7, 3, "post"), (197, 14, 2, "pre"), (16, None, 1, "post")],
)
def test_efficient_form_equals_explicit_matrix(n, block, steps, pad):
    q, k, v = qkv(n)
    backend = attention.create("monarch", block_size=block, num_steps=steps, pad=pad)
    a = backend.attention_matrix(q, k)
    assert a.shape[-2:] == (n, n) and (a >= 0).all()
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 3, n, dtype=torch.float64))  # row-stochastic
    torch.testing.assert_close(backend(q, k, v), a @ v)


@pytest.mark.parametrize("block", [1, 50])
def test_degenerate_block_sizes_are_exact_softmax(block):
    q, k, v = qkv(50)
    torch.testing.assert_close(
        attention.create("monarch", block_size=block)(q, k, v), attention.create("softmax")(q, k, v)
    )


def test_more_steps_raise_the_variational_objective():
    q, k, _ = qkv(64, scale=0.8)
    s = q @ k.transpose(-1, -2) / 4

    def objective(a):
        return float((a * s).sum() - torch.special.xlogy(a, a).sum())

    values = [
        objective(attention.create("monarch", block_size=8, num_steps=t).attention_matrix(q, k)) for t in (1, 2, 3, 4)
    ]
    assert all(b >= a - 1e-9 for a, b in zip(values, values[1:]))
    assert objective(torch.softmax(s, -1)) >= values[-1]  # softmax is the unconstrained maximiser


def test_flop_formula_matches_the_papers_ratios_and_the_flop_counter():
    ratio = [monarch_flops(197, 64, 14, t) / (4 * 197**2 * 64) for t in (1, 2, 3)]
    assert [round(r, 3) for r in ratio] == [0.195, 0.352, 0.509]
    from torch.utils.flop_counter import FlopCounterMode

    q, k, v = (t.float() for t in qkv(197, d=64))
    with FlopCounterMode(display=False) as counter:
        attention.create("monarch", block_size=14, num_steps=2)(q, k, v)
    assert counter.get_total_flops() == 2 * 3 * monarch_flops(197, 64, 14, 2)


def test_baselines_approximate_softmax_where_they_should():
    q, k, v = qkv(64, scale=0.5)
    exact = attention.create("softmax")(q, k, v)

    def rel(out):
        return float((out - exact).norm() / exact.norm())

    # landmarks = N: exact up to the iterative pseudo-inverse, which converges with more iterations
    six = rel(attention.create("nystrom", num_landmarks=64)(q, k, v))
    assert six < 0.05 and rel(attention.create("nystrom", num_landmarks=64, pinv_iterations=30)(q, k, v)) < 1e-6
    assert rel(attention.create("nystrom", num_landmarks=16)(q, k, v)) < rel(attention.create("linear")(q, k, v)) + 0.5
    few = rel(attention.create("performer", num_features=16, redraw=False)(q, k, v))
    many = rel(attention.create("performer", num_features=8192, redraw=False)(q, k, v))
    assert many < 0.05 and many < few
    for name in ("cosformer", "linear"):
        out = attention.create(name)(q, k, v)
        assert out.shape == exact.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["monarch", "performer", "nystrom", "cosformer", "linear"])
def test_non_causal_only_and_clear_errors(name):
    with pytest.raises(ValueError, match="does not support causal"):
        attention.create(name, causal=True)


def test_bad_monarch_options():
    with pytest.raises(ValueError, match="valid choices: pre, post"):
        attention.create("monarch", pad="middle")


def test_zero_shot_conversion_of_a_trained_run(make_cfg, tmp_path):
    train(
        make_cfg(
            "trainer.max_epochs=3",
            "model.tokenizer=patch",
            "model.patch_size=2",
            "model.depth=2",
            "data.eval_batch_size=100",
        )
    )
    run_dir = tmp_path / "run"
    same = convert_and_evaluate(run_dir, {"name": "softmax"}, "all")
    assert same["accuracy"] == same["original_accuracy"] and max(same["relative_output_error"]) < 1e-5
    assert same["top1_agreement"] == 1 and same["paired_counts"]["original_only"] == 0
    assert same["paired_counts"]["converted_only"] == 0
    exact = convert_and_evaluate(run_dir, {"name": "monarch", "block_size": 17}, "all")  # 16 patches + CLS
    assert abs(exact["accuracy"] - exact["original_accuracy"]) < 1e-9
    result = convert_and_evaluate(run_dir, {"name": "monarch", "block_size": 4, "num_steps": 2}, "second_half")
    assert result["layers"] == [1] and result["relative_output_error"][0] == pytest.approx(0, abs=1e-6)
    assert result["relative_output_error"][1] > 0 and result["row_kl"][1] > 0
    assert result["attention_flops_analytic"] is not None
    counts, n_seen = result["paired_counts"], result["samples"]
    assert sum(counts.values()) == n_seen
    assert counts["both_correct"] + counts["original_only"] == round(result["original_accuracy"] * n_seen)
    assert counts["both_correct"] + counts["converted_only"] == round(result["accuracy"] * n_seen)
    # both right means the same class; a model right where the other is wrong means different classes
    assert (
        counts["both_correct"] / n_seen
        <= result["top1_agreement"]
        <= 1 - (n_seen - counts["neither"] - counts["both_correct"]) / n_seen
    )
    json.dumps(result)
    # FLOPs are counted once per batch size; every batch (a short last one too) still adds the analytic count
    assert result["attention_flops_measured"] == result["attention_flops_analytic"]
    # a grid shares the unconverted model's predictions: the same result as computing them each time
    shared = {}
    first = convert_and_evaluate(
        run_dir, {"name": "monarch", "block_size": 4, "num_steps": 2}, "second_half", original_predictions=shared
    )
    assert shared and {k: v for k, v in first.items() if k != "time"} == {
        k: v for k, v in result.items() if k != "time"
    }
    again = convert_and_evaluate(run_dir, {"name": "nystrom", "num_landmarks": 4}, "all", original_predictions=shared)
    alone = convert_and_evaluate(run_dir, {"name": "nystrom", "num_landmarks": 4}, "all")
    assert again["paired_counts"] == alone["paired_counts"] and again["original_accuracy"] == alone["original_accuracy"]
    # diagnostics on the first images only: the same errors as a conversion of just those images, accuracy on all
    few = convert_and_evaluate(run_dir, {"name": "nystrom", "num_landmarks": 4}, "all", diagnostic_samples=150)
    head = convert_and_evaluate(
        run_dir, {"name": "nystrom", "num_landmarks": 4}, "all", max_samples=few["diagnostic_samples"]
    )
    assert few["diagnostic_samples"] < few["samples"] == alone["samples"] and few["accuracy"] == alone["accuracy"]
    assert few["relative_output_error"] == head["relative_output_error"] and few["row_kl"] == head["row_kl"]
    assert alone["diagnostic_samples"] == alone["samples"]
    # sink_window's kernels are invisible to FlopCounterMode: its count is 4 d per kept pair, i.e. softmax's 4 N^2 d
    # times (kept pairs) / N^2, the pairs counted here by brute force
    sparse = convert_and_evaluate(run_dir, {"name": "sink_window", "window": 3, "sinks": 1}, "all", max_samples=8)
    n = sparse["sequence_length"]
    pairs = sum(1 for i in range(n) for j in range(i + 1) if i - j < 3 or j < 1)
    assert sparse["attention_flops_measured"] * n * n == sparse["softmax_attention_flops"] * pairs > 0


def test_padding_gives_padded_keys_no_weight_and_pre_post_agree_without_padding():
    q, k, v = qkv(48)
    pre = attention.create("monarch", block_size=7, num_steps=2, pad="pre")
    r, l_mat, (b, m, extra) = pre._factors(q, k)
    assert extra == 1 and r[..., 0, :, 0].abs().max() == 0  # the one pre-pad key of block 0
    post = attention.create("monarch", block_size=7, num_steps=2, pad="post")
    r, _, _ = post._factors(q, k)
    assert r[..., -1, :, -1].abs().max() == 0  # the post-pad key of the last block
    q, k, v = qkv(49)
    torch.testing.assert_close(
        attention.create("monarch", block_size=7, num_steps=3, pad="pre")(q, k, v),
        attention.create("monarch", block_size=7, num_steps=3, pad="post")(q, k, v),
    )


def test_conversion_leaves_untouched_layers_bit_identical(make_cfg, tmp_path):
    from qdsbench.evaluate import load_task
    from qdsbench.models.backend_attention import attention_layers, set_backend

    train(make_cfg("trainer.max_epochs=1", "model.depth=2"))
    _, task, _, _ = load_task(tmp_path / "run")
    x = torch.randn(4, 1, 8, 8)
    before = task.net.blocks[0](task.net._pos_embed(task.net.patch_embed(x)))
    set_backend(task.net, {"name": "monarch", "block_size": 2}, "second_half")
    after = task.net.blocks[0](task.net._pos_embed(task.net.patch_embed(x)))
    assert torch.equal(before, after)
    assert type(attention_layers(task.net)[0].backend).__name__ == "SoftmaxAttention"


@pytest.mark.parametrize(
    "n,block,steps,pad",
    [
        (197, 14, 1, "pre"),
        (197, 14, 2, "post"),
        (50, 7, 3, "pre"),
        (10, 9, 2, "post"),
        (10, 10, 2, "pre"),
        (5, 3, 1, "pre"),
    ],
)
def test_gradients_are_finite_when_n_is_not_a_multiple_of_the_block(n, block, steps, pad):
    # padded keys have r == 0; xlogy's derivative there is -inf and used to turn into NaN in softmax's backward
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(2, 1, n, 16, generator=g, requires_grad=True) for _ in range(3))
    attention.create("monarch", block_size=block, num_steps=steps, pad=pad)(q, k, v).sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize("steps,pad", [(1, "pre"), (2, "post")])
def test_gradcheck_with_padding(steps, pad):
    q, k, v = (t[:1, :1, :11, :4].clone().requires_grad_() for t in qkv(11))
    backend = attention.create("monarch", block_size=4, num_steps=steps, pad=pad)
    assert torch.autograd.gradcheck(lambda q, k, v: backend(q, k, v), (q, k, v))


def test_block_larger_than_n_is_a_clear_error():
    q, k, v = qkv(10)
    with pytest.raises(ValueError) as info:
        attention.create("monarch", block_size=16)(q, k, v)
    message = str(info.value)
    assert "block_size=16" in message and "N=10" in message and "1 <= block_size <= 10" in message


def test_a_tiny_model_trains_at_n_197_block_14():
    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self, d=16, heads=2):
            super().__init__()
            self.heads, self.qkv, self.out = heads, torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, 1)
            self.attn = attention.create("monarch", block_size=14, num_steps=2)

        def forward(self, x):
            q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
            return self.out((x + self.attn(q, k, v).transpose(1, 2).flatten(-2)).mean(1)).squeeze(-1)

    model = Tiny()
    x, y = torch.randn(8, 197, 16), torch.randn(8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
