"""Switch-tagging data (analysis notes X1 / A1b), the tagger model, the sigmoid backend and the per-query split."""

import csv

import pytest
import torch

from qdsbench.data.switch_tagging import IGNORE, generate


@pytest.mark.parametrize("causal", [False, True])
def test_labels_follow_the_partner_rule(causal):
    tokens, labels, qtype = generate(200, 32, 16, 4, 0.4, causal, seed=0)
    bits = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(0))
    assert tokens.shape == labels.shape == qtype.shape == (200, 16)
    assert (tokens[:, 0] == 32).all() and (labels[:, 0] == IGNORE).all() and (qtype[:, 0] == 0).all()
    for b in range(200):
        for i in range(1, 16):
            x = int(tokens[b, i])
            if x < 8:
                others = tokens[b, 1:i] if causal else torch.cat([tokens[b, 1:i], tokens[b, i + 1 :]])
                assert int(labels[b, i]) == int((others == (x ^ 1)).any()) and qtype[b, i] == 1
            else:
                assert int(labels[b, i]) == int(bits[x]) and qtype[b, i] == 2
    context = labels[qtype == 1]
    low, high = (0.15, 0.45) if causal else (0.35, 0.65)  # an earlier partner is rarer than any partner
    assert low < float(context.float().mean()) < high


def test_tagger_shapes_and_causal_backend():
    from qdsbench import models

    net = models.create("tagger", attention={"name": "softmax"}, vocab_size=32, seq_len=16, depth=2, causal=True)
    tokens, _, _ = generate(4, 32, 16, 4, 0.4, True, seed=0)
    assert net(tokens).shape == (4, 16, 2)
    assert all(layer.attn.backend.causal for layer in net.blocks)
    with pytest.raises(ValueError, match="does not support causal=True"):
        models.create("tagger", attention={"name": "qr"}, vocab_size=32, seq_len=16, causal=True)


def test_sigmoid_backend_is_unnormalised():
    from qdsbench import attention

    q, k = torch.randn(2, 1, 6, 4), torch.randn(2, 1, 6, 4)
    p = attention.create("sigmoid").attention_matrix(q, k)
    torch.testing.assert_close(p, torch.sigmoid(q @ k.transpose(-1, -2) / 2 - torch.log(torch.tensor(6.0))))
    causal = attention.create("sigmoid", causal=True).attention_matrix(q, k)
    assert causal.triu(1).abs().max() == 0


def test_switch_tagging_run_and_analysis_by_query_type(make_cfg, tmp_path):
    from qdsbench.analysis.analyze import analyze
    from qdsbench.train import train

    result = train(
        make_cfg(
            "experiment=analysis/switch_tagging",
            "trainer.max_epochs=1",
            "data.n_train=640",
            "data.n_val=100",
            "data.n_test=100",
            "attention=sigmoid",
        )
    )
    assert {"test/acc", "test/acc_context", "test/acc_plain"} <= set(result)
    out = analyze(tmp_path / "run", max_samples=50, wandb=False)
    layer = next(csv.DictReader(open(out / "metrics.csv")))
    assert layer["backend"] == "sigmoid" and layer["proxy"] == "1"  # sink measures on Gu's proxy
    groups = list(csv.DictReader(open(out / "metrics_groups.csv")))
    assert [(g["kind"], g["group"]) for g in groups] == [("query", "bos"), ("query", "context"), ("query", "plain")]
    assert sum(int(g["count"]) for g in groups) == 50 * 16
