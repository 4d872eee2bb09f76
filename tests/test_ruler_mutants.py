"""RULER-synth's generators and helpers against their definitions, each checked from the output alone (the prompt's
tokens, brute force over small cases, the Zipf pmf), written to kill the mutants in results/quality/mutation.md.

Every generator is built inside its test: mutmut activates a mutant after the test modules are imported, so a
module-level ``RulerGenerator()`` would never run a mutated ``__init__``.
"""

import math
import random
from collections import Counter
from dataclasses import replace

import pytest

from qdsbench.longctx.ruler import (
    DEPTHS,
    NOISE_SENTENCE_LEN,
    TASKS,
    Formats,
    RulerGenerator,
    load_or_generate,
    spec_for,
    string_match_all,
    string_match_part,
    task_names,
)
from qdsbench.longctx.vocab import Vocab


def kind(v: Vocab, token: int) -> str:
    for name, start in (("filler", v.filler0), ("word", v.word0), ("letter", v.letter0), ("hex", v.hex0)):
        if token >= start:
            return name if token < v.size else "out of range"
    return "digit" if token >= v.digit0 else "special"


def spans(prompt: list[int], start_token: int, end_token: int) -> tuple[list[list[int]], list[int]]:
    """The ``start_token ... end_token`` spans (needles or statements) after BOS and the instruction token, and the
    tokens between them."""
    body = prompt[2:]
    found, rest, i = [], [], 0
    while i < len(body):
        if body[i] == start_token:
            end = body.index(end_token, i)
            found.append(body[i : end + 1])
            i = end + 1
        else:
            rest.append(body[i])
            i += 1
    return found, rest


def niah_parts(gen: RulerGenerator, prompt: list[int]):
    v = gen.vocab
    body = prompt[: prompt.index(v.special("QUERY"))]
    needles, rest = spans(body, v.special("NEEDLE"), v.special("SEP"))
    pairs = [(tuple(n[1 : n.index(v.special("IS"))]), tuple(n[n.index(v.special("IS")) + 1 : -1])) for n in needles]
    return pairs, rest


def is_noise(gen: RulerGenerator, tokens: list[int]) -> bool:
    """Noise filler: a prefix of the noise sentence (the front padding), then whole noise sentences."""
    sentence = [gen.vocab.filler0 + i for i in range(NOISE_SENTENCE_LEN)]
    pad = len(tokens) % NOISE_SENTENCE_LEN
    return tokens[:pad] == sentence[:pad] and tokens[pad:] == sentence * ((len(tokens) - pad) // NOISE_SENTENCE_LEN)


# --- random strings and their alphabets ----------------------------------------------------------------------------


def test_numbers_uuids_and_variable_names_use_exactly_their_alphabets():
    gen, rng = RulerGenerator(), random.Random(0)
    v = gen.vocab
    numbers = [gen.number(rng) for _ in range(2000)]
    assert all(len(n) == 7 and {kind(v, t) for t in n} == {"digit"} for n in numbers)
    assert {n[0] - v.digit0 for n in numbers} == set(range(1, 10))  # 10**6 .. 10**7 - 1: no leading zero
    assert {t - v.digit0 for n in numbers for t in n[1:]} == set(range(10))
    uuids = [gen.uuid(rng) for _ in range(500)]
    assert all(len(u) == 8 for u in uuids)
    assert {t - v.hex0 for u in uuids for t in u} == set(range(16))
    names = [name for i in range(40) for name in gen.sample("vt", 256, 0, i).references]
    assert all(len(name) == 3 for name in names)
    assert {t - v.letter0 for name in names for t in name} == set(range(26))


def test_a_given_vocab_and_formats_are_the_ones_used():
    vocab, formats = Vocab(n_words=16), Formats(number_len=5, key_words=1)
    gen = RulerGenerator(vocab, formats)
    assert gen.vocab == vocab and gen.formats == formats
    s = gen.sample("niah_single_1", 128, 0)
    assert [len(r) for r in s.references] == [5]
    assert len(s.prompt[s.prompt.index(vocab.special("QUERY")) + 1 : -1]) == 1  # a one-word key


def test_distinct_draws_distinct_strings_outside_exclude():
    gen = RulerGenerator(Vocab(n_words=16), Formats(key_words=1))
    w0 = gen.vocab.word0
    out = gen.distinct("words", random.Random(0), 15, exclude=[[w0]])
    assert sorted(out) == [[w0 + i] for i in range(1, 16)]  # all 15 one-word keys left, each once


# --- haystacks ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["niah_single_1", "vt"])
def test_a_noise_haystack_is_the_noise_sentence_repeated(task):
    gen = RulerGenerator()
    v = gen.vocab
    for i in range(5):
        prompt = gen.sample(task, 1024, 0, i).prompt
        body = prompt[: prompt.index(v.special("QUERY"))]
        start = v.special("NEEDLE") if task.startswith("niah") else v.special("VAR")
        _, rest = spans(body, start, v.special("SEP"))
        assert is_noise(gen, rest)


def test_a_markov_haystack_is_filler_words_from_one_fixed_sparse_chain():
    a, b = RulerGenerator(), RulerGenerator()  # the language is seeded once: two generators write the same text
    assert a.sample("niah_single_2", 2048, 0, 3) == b.sample("niah_single_2", 2048, 0, 3)
    v = a.vocab
    _, rest = niah_parts(a, a.sample("niah_single_2", 2048, 0, 3).prompt)
    assert {kind(v, t) for t in rest} == {"filler"} and not is_noise(a, rest)

    sentences = a.sentences("markov", random.Random(1), 20000)
    assert min(map(len, sentences)) >= 1
    assert {kind(v, t) for s in sentences for t in s} == {"filler"}
    following: dict[int, Counter] = {}
    for s in sentences:
        for x, y in zip(s, s[1:]):
            following.setdefault(x, Counter())[y] += 1
    top4 = sum(sum(n for _, n in c.most_common(4)) for c in following.values())
    share = top4 / sum(sum(c.values()) for c in following.values())
    assert 0.8 < share < 0.98, share  # mostly a word's few likely successors, but not only those


@pytest.mark.parametrize("haystack", ["noise", "markov"])
def test_sentences_are_the_fewest_that_reach_n_tokens(haystack):
    gen = RulerGenerator()
    for n in range(1, 90):
        out = gen.sentences(haystack, random.Random(n), n)
        total = sum(map(len, out))
        assert total >= n and total - len(out[-1]) < n, n


def test_fit_keeps_the_longest_prefix_that_fits_then_pads_the_front_with_noise():
    gen = RulerGenerator()
    units = [[1] * 3, [2] * 3, [3] * 4, [4] * 2]
    for budget in range(0, 16):
        out = gen.fit(units, budget, random.Random(0))
        k = max(j for j in range(len(units) + 1) if sum(map(len, units[:j])) <= budget)
        kept = sum(map(len, units[:k]))
        assert sum(map(len, out)) == budget
        assert out == ([out[0]] if kept < budget else []) + units[:k], budget
        if kept < budget:
            assert is_noise(gen, out[0]) and len(out[0]) == budget - kept


def test_insert_puts_each_item_after_its_depths_share_of_the_units():
    units = [[1000 + i] for i in range(200)]
    items = [[-i] for i in range(len(DEPTHS))]
    out = RulerGenerator.insert(units, items, DEPTHS)
    for i, depth in enumerate(DEPTHS):
        before = sum(1 for t in out[: out.index(-i)] if t >= 1000)
        assert before == round(depth / 100 * len(units)), depth


# --- tasks ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TASKS))
def test_a_sample_records_its_task_and_its_answer_is_the_references_joined(task):
    gen = RulerGenerator()
    v = gen.vocab
    s = gen.sample(task, 256, 4)
    assert (s.task, s.length, s.metric) == (task, 256, TASKS[task].metric)
    joined = [t for i, r in enumerate(s.references) for t in ([v.special("SEP")] if i else []) + r]
    assert s.answer == joined + [v.eos]
    assert gen.sample(task, 256, 4, 0) == s


def test_a_too_short_length_is_refused_with_the_lengths():
    with pytest.raises(ValueError, match=r"^task 'niah_single_1' cannot make a 16-token prompt \(got \d+\); use a"):
        RulerGenerator().sample("niah_single_1", 16, 0)


@pytest.mark.parametrize("task", ["niah_multikey_2", "niah_multikey_3"])
def test_a_needle_haystack_is_distractor_needles_with_other_keys(task):
    small = task == "niah_multikey_2"  # one-word keys from 16 words: a distractor would often reuse the real key
    gen = RulerGenerator(Vocab(n_words=16), Formats(key_words=1)) if small else RulerGenerator()
    v = gen.vocab
    for i in range(20):
        s = gen.sample(task, 128 if small else 512, 0, i)
        pairs, rest = niah_parts(gen, s.prompt)
        query = tuple(s.prompt[s.prompt.index(v.special("QUERY")) + 1 : -1])
        assert [val for key, val in pairs if key == query] == [tuple(s.references[0])]
        assert len({key for key, _ in pairs}) == len(pairs) > 3
        assert is_noise(gen, rest) and len(rest) < len(gen.needle(list(pairs[0][0]), list(pairs[0][1])))


def vt_statements(gen: RulerGenerator, prompt: list[int], var_len: int):
    """(name, value-or-None, source-name-or-None) for each `VAR name EQ ...` statement, in prompt order."""
    v = gen.vocab
    var, eq = v.special("VAR"), v.special("EQ")
    out = []
    for st in spans(prompt[: prompt.index(v.special("QUERY"))], var, v.special("SEP"))[0]:
        name = tuple(st[1 : 1 + var_len])
        assert st[1 + var_len] == eq
        rhs = st[2 + var_len : -1]
        out.append((name, None, tuple(rhs[1:])) if rhs[0] == var else (name, tuple(rhs), None))
    return out


@pytest.mark.parametrize("num_chains", [2, 3])
def test_vt_chains_are_distinct_interleaved_and_only_one_holds_the_queried_value(num_chains):
    gen = RulerGenerator(formats=Formats(var_len=1))  # 26 one-letter names: a reused name would show up
    f = gen.formats
    spec = replace(TASKS["vt"], num_chains=num_chains)
    for i in range(20):
        s = gen._vt(spec, "vt", 512, random.Random(i))
        value = tuple(s.prompt[-1 - f.vt_value_len : -1])
        statements = vt_statements(gen, s.prompt, f.var_len)
        names = [name for name, _, _ in statements]
        assert len(names) == len(set(names)) == num_chains * (spec.num_hops + 1)
        roots = [(pos, name, val) for pos, (name, val, _) in enumerate(statements) if val is not None]
        assert len(roots) == num_chains and all(len(val) == f.vt_value_len for _, _, val in roots)
        assert [val for _, _, val in roots].count(value) == 1
        source = {name: src for name, _, src in statements if src is not None}
        position = {name: pos for pos, name in enumerate(names)}
        chains = []
        for _, root, val in roots:
            chain = [root]
            while len(chain) < spec.num_hops + 1:
                chain.append(next(n for n, src in source.items() if src == chain[-1]))
            chains.append(chain)
            if val == value:
                assert [list(n) for n in chain] == s.references
        for j in range(spec.num_hops):  # every chain's j-th statement before any chain's (j+1)-th
            assert max(position[c[j]] for c in chains) < min(position[c[j + 1]] for c in chains)


@pytest.mark.parametrize("length", [256, 1024, 4096, 8192])
def test_cwe_common_words_are_ten_times_as_frequent_with_the_smallest_filling_frequency(length):
    gen = RulerGenerator()
    v, spec = gen.vocab, TASKS["cwe"]
    s = gen.sample("cwe", length, 0)
    body = s.prompt[2:-2]  # BOS LIST ... QUERY ANS
    assert {kind(v, t) for t in body} <= {"word", "filler"}
    counts = Counter(t for t in body if kind(v, t) == "word")
    common = {r[0] for r in s.references}
    assert len({counts[w] for w in common}) == 1 and len({c for w, c in counts.items() if w not in common}) == 1
    rare = next(c for w, c in counts.items() if w not in common)
    assert counts[next(iter(common))] == 10 * rare
    others = v.n_words - spec.num_cw  # rarer words available
    if rare > 1:  # one repetition fewer could not fill the body
        assert 10 * (rare - 1) * spec.num_cw + (rare - 1) * others < len(body)
    assert len(body) - sum(counts.values()) < rare  # the words fill the body up to less than one rare word's share


@pytest.mark.parametrize("length", [40, 64, 80, 100, 110, 128])
def test_a_short_cwe_body_still_holds_rare_words_and_its_answer_is_the_strictly_most_common(length):
    """Below about 110 tokens 10x common words fill the body alone (the answer is then every distinct word): the
    common count drops until num_cw rare words fit, and stays the strict top num_cw by count."""
    gen = RulerGenerator()
    v, spec = gen.vocab, TASKS["cwe"]
    for index in range(5):
        s = gen.sample("cwe", length, 0, index)
        counts = Counter(t for t in s.prompt[2:-2] if kind(v, t) == "word")
        common = {r[0] for r in s.references}
        rare = {w: c for w, c in counts.items() if w not in common}
        assert len(common) == spec.num_cw and set(counts) >= common
        if len(s.prompt) - 4 >= 3 * spec.num_cw:  # room for 2x common words and num_cw rare ones
            assert len(rare) >= spec.num_cw, (length, len(rare))
        assert min(counts[w] for w in common) >= 2 * max(rare.values(), default=1)


def test_fwe_follows_zipf_and_its_answer_is_the_next_three_by_count():
    gen = RulerGenerator()
    v, alpha = gen.vocab, TASKS["fwe"].alpha
    ellipsis = v.special("ELLIPSIS")
    s = gen.sample("fwe", 8192, 0)
    body = s.prompt[2:-2]
    counts = Counter(body)
    freq = sorted(counts.values(), reverse=True)[:4]
    harmonic = sum(1 / k**alpha for k in range(1, min(v.n_words, 64) + 1))
    for k, f in enumerate(freq, start=1):
        assert abs(f / len(body) - 1 / k**alpha / harmonic) < 0.02, k

    for i in range(60):  # short samples, where the counts often reorder the Zipf ranks
        s = gen.sample("fwe", 64, 0, i)
        counts = Counter(s.prompt[2:-2])
        refs = [r[0] for r in s.references]
        shown = [counts[ellipsis]] + [counts[r] for r in refs]
        assert shown == sorted(shown, reverse=True)
        assert all(c <= counts[refs[-1]] for w, c in counts.items() if w not in refs and w != ellipsis)


# --- scoring, names and the cache -----------------------------------------------------------------------------------


def test_scores_of_no_predictions_are_nan_and_part_averages_over_samples():
    assert math.isnan(string_match_all([], [])) and math.isnan(string_match_part([], []))
    refs = [[1, 2], [3]]
    assert string_match_part([[1, 2], [9], [3], [3, 1, 2]], [refs] * 4) == 75.0


def test_task_names_and_the_unknown_task_message():
    assert task_names() == list(TASKS) and all(spec_for(t) == TASKS[t] for t in task_names())
    with pytest.raises(ValueError, match=r"valid choices: niah_single_1, niah_single_2, niah_single_3, niah_multikey"):
        spec_for("qa_1")


def test_load_or_generate_returns_the_indexed_samples_with_or_without_a_cache(tmp_path):
    gen = RulerGenerator()
    direct = [gen.sample("niah_multivalue", 256, 7, i) for i in range(3)]
    assert len({tuple(s.prompt) for s in direct}) == 3
    assert load_or_generate(gen, "niah_multivalue", 256, 7, 3, None) == direct
    nested = tmp_path / "a" / "b"
    assert load_or_generate(gen, "niah_multivalue", 256, 7, 3, nested) == direct
    assert len(list(nested.glob("*.jsonl"))) == 1 and not list(nested.glob("*.tmp"))
    assert load_or_generate(gen, "niah_multivalue", 256, 7, 3, nested) == direct


def test_the_cache_key_separates_generators_with_other_formats(tmp_path):
    default, short = RulerGenerator(), RulerGenerator(formats=Formats(number_len=5))
    a = load_or_generate(default, "niah_single_1", 256, 0, 2, tmp_path)
    b = load_or_generate(short, "niah_single_1", 256, 0, 2, tmp_path)
    assert len(list(tmp_path.glob("*.jsonl"))) == 2
    assert [len(r) for s in a for r in s.references] == [7, 7] and [len(r) for s in b for r in s.references] == [5, 5]


def test_the_cache_key_separates_generators_with_another_essay_language(tmp_path):
    """The essay haystack's filler language comes from markov_seed: a cache filled by one generator must not answer
    another's request (it did before the seed was part of the key)."""
    default, other = RulerGenerator(), RulerGenerator(markov_seed=99)
    ours = load_or_generate(default, "niah_single_2", 256, 0, 2, tmp_path)
    theirs = load_or_generate(other, "niah_single_2", 256, 0, 2, tmp_path)
    assert theirs == [other.sample("niah_single_2", 256, 0, i) for i in range(2)] and theirs != ours
    assert len(list(tmp_path.glob("*.jsonl"))) == 2
