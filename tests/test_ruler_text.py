"""RULER's text tasks (qdsbench.longctx.ruler_text) and the SmolLM2 evaluation around them.

Answers are checked against references rebuilt from the prompt text alone (the needles' key -> value map, the
variable chains, word counts), the scorers against hand-made strings with RULER's rules. Most tests count tokens as
whitespace-separated words (any count works; lengths must fit it); one uses SmolLM2's own tokenizer.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from qdsbench.longctx import ruler_text as rt
from qdsbench.studies import ruler_text_eval
from qdsbench.text_sources import prose_documents

try:
    prose_documents()
    rt.cwe_words()
    MISSING = None
except FileNotFoundError as error:  # gensim / wonderwords wheels not installed
    MISSING = str(error)
needs_text = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def generator():
    return rt.RulerTextGenerator(words, rt.SMOLLM2_CHAT)


NEEDLE_RE = re.compile(r"One of the special magic (numbers|uuids) for (\S+) is: (\S+)\.")
NIAH = [t for t in rt.TASKS if t.startswith("niah")]


def needle_map(prompt: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, key, value in NEEDLE_RE.findall(prompt):
        found.setdefault(key, []).append(value)
    return found


@needs_text
@pytest.mark.parametrize("task", NIAH)
def test_niah_references_are_the_values_of_the_queried_keys(generator, task):
    spec = rt.spec_for(task)
    for index in range(2):
        s = generator.sample(task, 600, seed=1, index=index)
        found = needle_map(s.input)
        assert len(s.queries) == spec.num_needle_q
        expected = [v for q in s.queries for v in found[q]]
        # the needles are shuffled in the text; RULER lists the values per queried key in generation order
        assert sorted(s.outputs) == sorted(expected) and len(expected) == spec.num_needle_q * spec.num_needle_v
        assert [v for v in s.outputs if v in found[s.queries[0]]] == s.outputs[: spec.num_needle_v]
        for q in s.queries:
            for v in found[q]:
                assert f"One of the special magic {spec.value} for {q} is: {v}." in s.prompt
        assert s.prompt.rstrip().endswith(s.answer_prefix.rstrip())
        assert all(q in s.answer_prefix for q in s.queries)
        # the real needles are in the text; decoys (needle haystack) never reuse a real key
        assert all(n in s.input for n in s.needles)
        real_keys = {m.group(2) for m in map(NEEDLE_RE.match, s.needles)}
        assert all(len(found[k]) == spec.num_needle_v for k in real_keys)


@needs_text
def test_length_fits_the_budget_and_fills_it(generator):
    for task in rt.TASKS:
        s = generator.sample(task, 900, seed=0, index=0)
        budget = 900 - s.tokens_to_generate
        assert s.prompt_tokens == words(s.prompt) <= budget, task
        assert s.prompt_tokens > 0.85 * budget, (task, s.prompt_tokens, budget)


@needs_text
def test_generation_is_deterministic_from_the_seed(generator):
    a = generator.sample("niah_multikey_1", 700, seed=3, index=2)
    b = rt.RulerTextGenerator(words, rt.SMOLLM2_CHAT).sample("niah_multikey_1", 700, seed=3, index=2)
    assert a.to_dict() == b.to_dict()
    assert generator.sample("niah_multikey_1", 700, seed=3, index=3).prompt != a.prompt
    assert generator.sample("niah_multikey_1", 700, seed=4, index=2).prompt != a.prompt


@needs_text
def test_templates_are_rulers_with_its_singular_rewording(generator):
    single = generator.sample("niah_single_1", 500)
    assert single.input.startswith(
        "A special magic number is hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the number afterwards.\n"
    )
    assert (
        single.answer_prefix == f" The special magic number for {single.queries[0]} mentioned in the provided text is"
    )
    multi = generator.sample("niah_multivalue", 500)
    assert multi.input.startswith("Some special magic numbers are hidden within the following text.")
    assert multi.input.endswith(
        f"What are all the special magic numbers for {multi.queries[0]} mentioned in the provided text?"
    )
    query = generator.sample("niah_multiquery", 700)
    a, b, c, d = query.queries
    assert f"for {a}, {b}, {c}, and {d} mentioned" in query.answer_prefix
    assert single.prompt.startswith("<|im_start|>system\n") and "<|im_start|>assistant\n The special" in single.prompt


@needs_text
def test_noise_and_essay_haystacks(generator):
    s = generator.sample("niah_single_1", 800)
    lines = s.input.split("\n")[1:-1]  # between the instruction and the question
    assert [line for line in lines if line != rt.NOISE] == s.needles
    essay = generator.sample("niah_single_2", 800)
    assert essay.depths and all(d in rt.DEPTHS for d in essay.depths)
    first = rt.split_sentences(prose_documents()[0])[:3]
    assert all(sentence in essay.input for sentence in first)  # RULER reads the essay text from its start
    assert rt.split_sentences("He left. Then 3 men came! Why? 'Yes.' No") == [
        "He left.",
        "Then 3 men came!",
        "Why?",
        "'Yes.'",
        "No",
    ]


def follow_chain(text: str, value: str) -> list[str]:
    """Every variable that ends up holding ``value``, from the 'VAR X = ...' statements of ``text``."""
    direct = dict(re.findall(r"VAR ([A-Z]+) = (\d+)", text))
    copies = re.findall(r"VAR ([A-Z]+) = VAR ([A-Z]+)", text)
    holding = [name for name, v in direct.items() if v == value]
    changed = True
    while changed:
        changed = False
        for target, source in copies:
            if source in holding and target not in holding:
                holding.append(target)
                changed = True
    return holding


@needs_text
def test_variable_tracking_answer_follows_the_chain(generator):
    for index in range(3):
        s = generator.sample("vt", 800, index=index)
        task_part = s.input[s.input.index("\nMemorize and track", 1) :]  # after the in-context example
        assert sorted(follow_chain(task_part, s.queries[0])) == sorted(s.outputs) and len(s.outputs) == 5
        assert all(len(v) == 5 for v in s.outputs)
        example = s.input[: s.input.index("\nMemorize and track", 1)]
        assert "Answer: According to the chain(s)" in example and "12345" not in example  # randomised, as RULER


@needs_text
def test_common_and_frequent_words_answers_are_the_top_counts(generator):
    s = generator.sample("cwe", 900)
    listed = s.input.rsplit("\n", 2)[-2]  # the task's own list (after the one-shot example)
    counts = Counter(re.findall(r"\d+\. (\S+)", listed))
    top = [w for w, _ in counts.most_common(10)]
    assert set(top) == set(s.outputs) and min(counts[w] for w in top) > max(
        c for w, c in counts.items() if w not in top
    )
    f = generator.sample("fwe", 900)
    coded = f.input.split("coded words. ", 1)[1].split("\nQuestion:")[0].split()
    counts = Counter(w for w in coded if w != "...")
    assert [w for w, _ in counts.most_common(3)] == f.outputs
    assert Counter(coded).most_common(1)[0][0] == "..."  # rank 1 is the noise word


def test_scorers_on_hand_made_strings():
    assert rt.string_match_all(["The number is 1234567."], [["1234567"]]) == 100.0
    assert rt.string_match_all(["1234567 and 7654321"], [["1234567", "7654321", "1111111", "2222222"]]) == 50.0
    assert rt.string_match_all(["MQNXB, qaezd"], [["mqnxb", "QAEZD", "TLGNX"]]) == 66.67  # case-insensitive
    assert rt.string_match_all(["a", "b", "c"], [["a"], ["x"], ["x"]]) == 33.33  # mean over samples, 2 decimals
    assert rt.string_match_part(["Paris, France"], [["London", "paris"]]) == 100.0
    assert rt.string_match_part(["Rome", "x"], [["London", "paris"], ["x", "y"]]) == 50.0
    assert rt.postprocess("  12\x0034\t5  ") == "12\n34\n5"
    assert rt.score("string_match_all", [" 3164318.\x01"], [["3164318"]]) == 100.0
    with pytest.raises(ValueError, match="valid choices"):
        rt.score("exact", ["a"], [["a"]])


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="niah_single_1"):
        rt.spec_for("niah_single_9")


def test_backend_parsing_and_the_table_from_records(tmp_path):
    assert ruler_text_eval.parse_backend("full") == ("full", {"name": "sdpa"})
    assert ruler_text_eval.parse_backend("sink_window:window=128,sinks=4")[1] == {
        "name": "sink_window",
        "window": 128,
        "sinks": 4,
    }
    rows = [
        {"backend": "full", "task": "niah_single_1", "length": 1024, "index": i, "prompt_tokens": 890,
         "max_new_tokens": 24, "score": 100.0 * ok, "prediction": p, "references": '["3164318"]',
         "seconds": 10.0, "cpu_seconds": 4.0}
        for i, (ok, p) in enumerate([(1, "3164318."), (0, "11."), (1, "It is 3164318")])
    ]  # fmt: skip
    scores = ruler_text_eval.task_scores(rows)
    assert scores[("full", "niah_single_1", "1024")]["score"] == "66.7"
    from qdsbench.tables import write_csv, write_text

    write_csv(tmp_path / "delta" / "ruler_text.csv", rows)
    meta = {"command": "c", "measured": "d", "machine": "m", "torch": "t", "threads": 1, "minutes": 1.0}
    write_text(tmp_path / "delta" / "ruler_text.meta.json", __import__("json").dumps(meta))
    (path,) = ruler_text_eval.render(tmp_path, tmp_path / "out")  # every ruler_text* record
    assert "| full | niah_single_1 | 1024 | 3 | 890 | 66.7 | 10.0 | 4.0 |" in path.read_text()


# ---------------------------------------------------------------------------------------------------------------
# With SmolLM2 (its tokenizer; the model for one sample)
# ---------------------------------------------------------------------------------------------------------------

from qdsbench.models import pretrained  # noqa: E402

SMOLLM2 = pretrained.weights_available()["smollm2_135m"]
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is not None or MISSING is not None, reason=str(SMOLLM2 or MISSING))


@needs_smollm2
def test_lengths_in_smollm2_tokens():
    pretrained._require_transformers(gguf=True)
    tokenizer = pretrained._smollm2_tokenizer(pretrained.smollm2_gguf_path())
    count = ruler_text_eval.token_counter(tokenizer)
    assert count("<|im_start|>") == 1  # the chat template's special tokens are single tokens
    g = rt.RulerTextGenerator(count, rt.SMOLLM2_CHAT)
    for task in ("niah_single_1", "niah_single_2", "vt", "cwe", "fwe"):
        s = g.sample(task, 1024)
        assert 0.9 * (1024 - s.tokens_to_generate) < s.prompt_tokens <= 1024 - s.tokens_to_generate, task
        assert s.prompt_tokens == len(tokenizer(s.prompt).input_ids)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_finds_the_needle_with_full_attention():
    from qdsbench import models

    model = models.create("smollm2_135m", attention=dict(ruler_text_eval.FULL))
    g = rt.RulerTextGenerator(ruler_text_eval.token_counter(model.tokenizer), rt.SMOLLM2_CHAT)
    (row,) = ruler_text_eval.evaluate(model, g, "niah_single_1", 512, samples=1, max_new_tokens=12)
    assert row["score"] == 100.0, row  # measured: 5 of 5 at 1K tokens (results/delta/ruler_text_pilot.md)
