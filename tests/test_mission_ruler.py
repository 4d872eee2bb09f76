"""RULER needle tasks: the prompt itself must say `needle(queried key) -> reference value`.

The prompt is parsed on its own (every `NEEDLE key IS value SEP` span of the body, then the keys between QUERY and
ANS) without the generator's internal lists, and the references must be exactly the values the prompt's needles give
the queried keys, in query order; every queried key must occur as a needle key, and no reference may belong to
another key.
"""

import pytest

from qdsbench.longctx.ruler import TASKS, RulerGenerator

GEN = RulerGenerator()
V = GEN.vocab
NIAH = [t for t, s in TASKS.items() if s.kind == "niah"]


def parse_needles(prompt: list[int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    needle, is_, sep = V.special("NEEDLE"), V.special("IS"), V.special("SEP")
    assert prompt[0] == V.bos and prompt[1] == needle  # the niah instruction token is NEEDLE too: skip it
    pairs, i = [], 2
    body_end = prompt.index(V.special("QUERY"))
    while True:
        try:
            start = prompt.index(needle, i, body_end)
        except ValueError:
            return pairs
        mid = prompt.index(is_, start)
        end = prompt.index(sep, mid)
        pairs.append((tuple(prompt[start + 1 : mid]), tuple(prompt[mid + 1 : end])))
        i = end


def queried_keys(prompt: list[int], key_len: int) -> list[tuple[int, ...]]:
    query = prompt[prompt.index(V.special("QUERY")) + 1 : prompt.index(V.special("ANS"))]
    assert len(query) % key_len == 0
    return [tuple(query[i : i + key_len]) for i in range(0, len(query), key_len)]


@pytest.mark.parametrize("task", NIAH)
@pytest.mark.parametrize("length", [256, 1024])
def test_references_are_the_values_the_prompt_gives_the_queried_keys(task, length):
    spec = TASKS[task]
    key_len = {"words": GEN.formats.key_words, "numbers": GEN.formats.number_len, "uuids": GEN.formats.uuid_len}[
        spec.key
    ]
    for index in range(12):
        sample = GEN.sample(task, length, 11, index)
        needles = parse_needles(sample.prompt)
        keys = queried_keys(sample.prompt, key_len)
        assert len(keys) == spec.num_needle_q
        values_of: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        for key, value in needles:
            values_of.setdefault(key, []).append(value)
        expected = []
        for key in keys:
            assert key in values_of, "a queried key has no needle in the prompt"
            assert len(values_of[key]) == spec.num_needle_v
            expected += sorted(values_of[key])
        # multivalue: the needles' order in the prompt is shuffled, so compare each key's values as a set
        got = []
        for q in range(len(keys)):
            got += sorted(tuple(r) for r in sample.references[q * spec.num_needle_v : (q + 1) * spec.num_needle_v])
        assert got == expected
        other = {v for key, vals in values_of.items() if key not in keys for v in vals}
        assert not other & {tuple(r) for r in sample.references}, "a reference belongs to another key"
