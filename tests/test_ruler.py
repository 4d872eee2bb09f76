"""RULER-synth: deterministic generators, RULER's 40-depth grid, exact lengths, the answers really in the context,
RULER's scoring on hand-made cases, the jsonl cache, and the data module's batches."""

from collections import Counter

import pytest
import torch

from qdsbench.data.ruler import RulerDataModule, collate
from qdsbench.longctx.ruler import (
    DEPTHS,
    TASKS,
    RulerGenerator,
    contains,
    load_or_generate,
    string_match_all,
    string_match_part,
)

GEN = RulerGenerator()
V = GEN.vocab


def test_forty_depths_from_zero_to_hundred():
    assert len(DEPTHS) == 40 and DEPTHS[0] == 0 and DEPTHS[-1] == 100
    assert all(abs((b - a) - 100 / 39) < 1e-9 for a, b in zip(DEPTHS, DEPTHS[1:]))


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("length", [128, 512, 2048])
def test_exact_length_frame_and_determinism(task, length):
    a, b, c = GEN.sample(task, length, 0, 5), GEN.sample(task, length, 0, 5), GEN.sample(task, length, 1, 5)
    assert a == b and a.prompt != c.prompt
    assert len(a.prompt) == length
    assert a.prompt[0] == V.bos and a.prompt[-1] == V.special("ANS")
    assert a.answer[-1] == V.eos and all(contains(a.answer, r) for r in a.references)
    assert all(d in DEPTHS for d in a.depths)


@pytest.mark.parametrize("task", [t for t, s in TASKS.items() if s.kind == "niah"])
def test_niah_needles_hold_the_answers(task):
    spec = TASKS[task]
    for i in range(20):
        s = GEN.sample(task, 512, 3, i)
        assert len(s.references) == spec.num_needle_q * spec.num_needle_v
        assert len(s.depths) == spec.num_needle_k * spec.num_needle_v
        query_start = len(s.prompt) - 1 - spec.num_needle_q * GEN.formats.key_words
        keys = s.prompt[query_start:-1]
        for ref in s.references:
            assert contains(s.prompt, [V.special("IS"), *ref, V.special("SEP")])
        for q in range(spec.num_needle_q):
            key = keys[q * 2 : q * 2 + 2] if spec.key == "words" else None
            if key:
                assert contains(s.prompt[:query_start], [V.special("NEEDLE"), *key, V.special("IS")])


def test_depths_are_spread_over_the_grid():
    depths = Counter(d for i in range(400) for d in GEN.sample("niah_single_1", 256, 0, i).depths)
    assert len(depths) == 40 and max(depths.values()) < 25  # ~10 per depth expected


def test_needle_position_follows_its_depth():
    for i in range(30):
        s = GEN.sample("niah_single_2", 1024, 0, i)
        pos = s.prompt.index(
            V.special(
                "NEEDLE",
            ),
            2,
        )
        assert abs(pos / 1024 - s.depths[0] / 100) < 0.05


def test_vt_chain_resolves_to_the_queried_value():
    s = GEN.sample("vt", 512, 0, 0)
    value = s.prompt[-1 - GEN.formats.vt_value_len : -1]
    var, eq, sep = V.special("VAR"), V.special("EQ"), V.special("SEP")
    first = [var, *s.references[0], eq, *value, sep]
    assert contains(s.prompt, first)
    for a, b in zip(s.references, s.references[1:]):
        assert contains(s.prompt, [var, *b, eq, var, *a, sep])
    assert len(s.references) == TASKS["vt"].num_hops + 1


def test_cwe_answer_is_the_ten_most_common_words():
    s = GEN.sample("cwe", 1024, 0, 0)
    counts = Counter(t for t in s.prompt if V.word0 <= t < V.filler0)
    top = {w for w, _ in counts.most_common(10)}
    assert top == {r[0] for r in s.references}
    assert min(counts[r[0]] for r in s.references) > max(c for w, c in counts.items() if w not in top)


def test_fwe_answer_is_ranks_two_to_four():
    s = GEN.sample("fwe", 1024, 0, 0)
    counts = Counter(t for t in s.prompt if V.word0 <= t < V.filler0)
    ellipsis = s.prompt.count(V.special("ELLIPSIS")) - 1  # minus the instruction token
    ranked = [w for w, _ in counts.most_common()]
    assert [r[0] for r in s.references] == ranked[:3]
    assert ellipsis >= counts[ranked[0]]


def test_scoring_matches_ruler_on_hand_made_cases():
    refs = [[[1, 2, 3], [4, 5]]]
    assert string_match_all([[9, 1, 2, 3, 4, 5]], refs) == 100.0
    assert string_match_all([[1, 2, 3]], refs) == 50.0
    assert string_match_all([[1, 2, 4, 5, 3]], refs) == 50.0  # contiguous match, as RULER's substring test
    assert string_match_all([[]], refs) == 0.0
    assert string_match_all([[1, 2, 3], [7]], [[[1, 2, 3]], [[7], [8]]]) == 75.0
    assert string_match_part([[4, 5]], refs) == 100.0 and string_match_part([[6]], refs) == 0.0


def test_cache_round_trip(tmp_path):
    first = load_or_generate(GEN, "niah_multikey_3", 256, 7, 3, tmp_path)
    files = list(tmp_path.glob("niah_multikey_3-*-N256-s7-n3.jsonl"))
    assert len(files) == 1
    assert load_or_generate(GEN, "niah_multikey_3", 256, 7, 3, tmp_path) == first


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="valid choices: niah_single_1"):
        GEN.sample("niah_single_4", 256, 0)
    with pytest.raises(ValueError, match="unknown RULER task 'qa_1'"):
        RulerDataModule(tasks=["qa_1"])


def test_batches_mark_exactly_the_answer_targets():
    batch = collate([GEN.sample("niah_multivalue", 256, 0, 0), GEN.sample("niah_single_1", 256, 0, 1)])
    tokens, mask = batch["tokens"], batch["answer_mask"]
    targets = tokens[:, 1:]
    for row, s in enumerate([GEN.sample("niah_multivalue", 256, 0, 0), GEN.sample("niah_single_1", 256, 0, 1)]):
        assert targets[row][mask[row]].tolist() == s.answer


def test_curriculum_follows_its_stages(tmp_path):
    dm = RulerDataModule(
        tasks=["vt", "cwe"],
        cache_dir=str(tmp_path),
        curriculum=[{"length": 64, "steps": 2, "batch_size": 3}, {"length": 128, "steps": 1, "batch_size": 2}],
    )
    batches = list(dm.train_dataloader())
    assert [(b["prompt_len"], b["tokens"].shape[0]) for b in batches] == [(64, 3), (64, 3), (128, 2)]
    again = list(dm.train_dataloader())
    assert all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(batches, again))


def test_vt_distractor_chains_keep_their_own_values():
    from dataclasses import replace

    from qdsbench.longctx import ruler

    spec = replace(TASKS["vt"], num_chains=3)
    sample = GEN._vt(spec, "vt", 512, __import__("random").Random(0))
    assert len(sample.prompt) == 512 and len(sample.references) == spec.num_hops + 1
    value = sample.prompt[-1 - GEN.formats.vt_value_len : -1]
    assert contains(sample.prompt, [V.special("VAR"), *sample.references[0], V.special("EQ"), *value])
    assert sample.prompt.count(V.special("EQ")) == 3 * (spec.num_hops + 1)
    assert ruler.GENERATOR_VERSION == 1
