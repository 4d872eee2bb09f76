"""The MiniLM zero-shot conversion study (qdsbench.studies.minilm_conversion): its metrics against brute-force
references, passages, FLOP matching against the paper's Monarch formula, the table from records only, and the real
encoder where exact attention must give back the original embeddings."""

from __future__ import annotations

import json
import math

import pytest
import torch

from qdsbench.models import pretrained
from qdsbench.studies import minilm_conversion as mc
from qdsbench.tables import write_csv, write_text

MINILM = pretrained.weights_available()["minilm_l6"]


def brute_neighbours(e: torch.Tensor, i: int, k: int) -> list[int]:
    scores = [(float(e[i] @ e[j]), j) for j in range(len(e)) if j != i]
    return [j for _, j in sorted(scores, reverse=True)[:k]]


def test_agreement_matches_brute_force():
    torch.manual_seed(0)
    original = torch.nn.functional.normalize(torch.randn(12, 6), dim=-1)
    converted = torch.nn.functional.normalize(original + 0.4 * torch.randn(12, 6), dim=-1)
    got = mc.agreement(original, converted)
    n = len(original)
    top1 = sum(brute_neighbours(original, i, 1) == brute_neighbours(converted, i, 1) for i in range(n)) / n
    top5 = sum(len(set(brute_neighbours(original, i, 5)) & set(brute_neighbours(converted, i, 5))) for i in range(n))
    self1 = sum(max(range(n), key=lambda j: float(converted[i] @ original[j])) == i for i in range(n)) / n
    cos = [float(original[i] @ converted[i]) for i in range(n)]
    assert got["top1_agreement"] == pytest.approx(top1)
    assert got["top5_overlap"] == pytest.approx(top5 / (5 * n))
    assert got["self_retrieval_top1"] == pytest.approx(self1)
    assert got["cos_mean"] == pytest.approx(sum(cos) / n, abs=1e-6)
    assert got["cos_min"] == pytest.approx(min(cos), abs=1e-6)
    same = mc.agreement(original, original)
    assert all(v == pytest.approx(1.0) for v in same.values())


class WordTokenizer:
    cls_token_id, sep_token_id = 101, 102

    def __call__(self, text, add_special_tokens=False):
        return type("Encoding", (), {"input_ids": [len(w) for w in text.split()]})()


def test_passages_are_consecutive_windows_with_cls_and_sep():
    docs = ("a bb ccc dddd", "eeeee ffffff g hh iii")
    ids = mc.passages(WordTokenizer(), 5, 3, docs)
    assert ids.tolist() == [[101, 1, 2, 3, 102], [101, 4, 5, 6, 102], [101, 1, 2, 3, 102]]
    with pytest.raises(ValueError, match="fewer than"):
        mc.passages(WordTokenizer(), 5, 4, docs)


def paper_monarch_flops(n: int, d: int, b: int, t: int) -> int:
    """The paper's formula (notes section 3): (T-1) 4 N_p d (b + M) + 6 N_p b d + 4 N_p M d per head."""
    m = math.ceil(n / b)
    n_p = m * b
    return (t - 1) * 4 * n_p * d * (b + m) + 6 * n_p * b * d + 4 * n_p * m * d


@pytest.mark.parametrize("n", [128, 256])
def test_monarch_flops_are_the_papers_and_baselines_are_matched(n):
    for b, t in [(8, 1), (16, 2), (32, 3)]:
        measured, analytic = mc.attention_flops(mc.monarch_config(b, t), n)
        assert measured == analytic == paper_monarch_flops(n, mc.HEAD_DIM, b, t) * mc.HEADS
    assert mc.attention_flops({"name": "softmax"}, n)[0] == mc.softmax_flops(n) == 4 * n * n * 32 * 12
    target = mc.attention_flops(mc.monarch_config(16, 2), n)[0]
    for name, (option, values) in mc.KNOBS.items():
        chosen = mc.matched(name, target, n)
        gaps = {v: abs(math.log(mc.attention_flops({**chosen, option: v}, n)[0] / target)) for v in values if v <= n}
        assert gaps[chosen[option]] == min(gaps.values()), name
        assert 0.5 < mc.attention_flops(chosen, n)[0] / target < 2.0, name
    # sink_window: 4 d per visible pair (query i sees its window of W, the sink outside it)
    w = 32
    pairs = sum(min(i + 1, w) + (1 if i >= w else 0) for i in range(n))
    assert mc.attention_flops({"name": "sink_window", "window": w, "sinks": 1}, n)[0] == 4 * 32 * 12 * pairs


def test_the_table_is_rebuilt_from_the_records(tmp_path):
    rows = [
        {"length": 128, "passages": 10, "backend": "monarch", "options": "block_size=16, num_steps=1",
         "matched_to": "", "flops_ratio_vs_softmax": 0.25, "analytic_matches_measured": True, "cos_mean": 0.8815,
         "cos_min": 0.78, "top1_agreement": 0.75, "top5_overlap": 0.81, "self_retrieval_top1": 1.0},
    ]  # fmt: skip
    write_csv(tmp_path / "monarch" / "minilm_conversion.csv", rows)
    meta = {"command": "c", "measured": "d", "machine": "m", "torch": "t", "threads": 1, "minutes": 2.0,
            "passages": 10, "lengths": [128], "corpus": "Lee"}  # fmt: skip
    write_text(tmp_path / "monarch" / "minilm_conversion.meta.json", json.dumps(meta))
    (path,) = mc.render(tmp_path, tmp_path / "out")
    text = path.read_text()
    assert "| 128 | monarch | block_size=16, num_steps=1 | — | 0.25 | 0.8815 | 0.78 | 0.75 | 0.81 | 1.0 |" in text
    assert "10 passages of exactly N tokens at N = 128" in text


@pytest.mark.skipif(MINILM is not None, reason=str(MINILM))
def test_exact_attention_gives_back_the_original_embeddings():
    from qdsbench import models

    encoder = models.create("minilm_l6", attention={"name": "softmax"})
    docs = ("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. " * 30,)
    ids = mc.passages(encoder.tokenizer, 64, 8, docs)
    encoder.use_native_attention("sdpa")
    original = mc.embed(encoder, ids)
    for config in ({"name": "softmax"}, mc.monarch_config(64, 1), mc.monarch_config(1, 2)):  # b = N and b = 1: exact
        encoder.set_backend(config)
        got = mc.agreement(original, mc.embed(encoder, ids))
        assert got["cos_min"] > 0.99999, config
    encoder.set_backend(mc.monarch_config(8, 1))
    assert mc.agreement(original, mc.embed(encoder, ids))["cos_min"] < 0.9999  # a real approximation changes it
