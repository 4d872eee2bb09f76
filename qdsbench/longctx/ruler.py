"""RULER-style synthetic tasks at token level (RULER's ``scripts/synthetic.yaml`` minus the downloads).

Each task mirrors a RULER task; where RULER needs a download a synthetic stand-in is used and named here:

- ``essay`` haystack (Paul Graham essays) -> ``markov``: sentences from a fixed sparse Markov chain over filler words
  (seeded once, so every sample reads the same "language");
- QA tasks (SQuAD, HotpotQA) are left out: no corpus offline;
- instructions and the in-context examples of VT/CWE/FWE -> one instruction token per task family at the start.

A sample is ``[BOS, INSTR, context..., QUERY, query..., ANS]`` of exactly ``length`` tokens; its gold answer is the
reference token strings joined by SEP and closed by EOS. Needle depths are drawn from RULER's 40 evenly spaced
depths (0-100 %). Generation is pure-Python ``random.Random(seed)``, deterministic per (task, length, seed, index).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qdsbench.longctx.vocab import Vocab

DEPTHS = [100.0 * i / 39 for i in range(40)]  # RULER: np.round(np.linspace(0, 100, num=40), 2)
GENERATOR_VERSION = 1
NOISE_SENTENCE_LEN = 20


@dataclass(frozen=True)
class TaskSpec:
    """One RULER task's arguments (names follow RULER's synthetic.yaml)."""

    kind: str  # niah | vt | cwe | fwe
    haystack: str = "noise"  # noise | markov | needle
    key: str = "words"  # words | numbers | uuids
    value: str = "numbers"  # numbers | uuids
    num_needle_k: int = 1
    num_needle_v: int = 1
    num_needle_q: int = 1
    num_chains: int = 1
    num_hops: int = 4
    num_cw: int = 10
    alpha: float = 2.0
    metric: str = "string_match_all"


TASKS: dict[str, TaskSpec] = {
    "niah_single_1": TaskSpec("niah", "noise", "words", "numbers"),
    "niah_single_2": TaskSpec("niah", "markov", "words", "numbers"),
    "niah_single_3": TaskSpec("niah", "markov", "words", "uuids"),
    "niah_multikey_1": TaskSpec("niah", "markov", "words", "numbers", num_needle_k=4),
    "niah_multikey_2": TaskSpec("niah", "needle", "words", "numbers"),
    "niah_multikey_3": TaskSpec("niah", "needle", "uuids", "uuids"),
    "niah_multivalue": TaskSpec("niah", "markov", "words", "numbers", num_needle_v=4),
    "niah_multiquery": TaskSpec("niah", "markov", "words", "numbers", num_needle_k=4, num_needle_q=4),
    "vt": TaskSpec("vt", "noise"),
    "cwe": TaskSpec("cwe"),
    "fwe": TaskSpec("fwe"),
}
INSTRUCTION = {"niah": "NEEDLE", "vt": "VAR", "cwe": "LIST", "fwe": "ELLIPSIS"}


@dataclass
class Sample:
    task: str
    length: int
    prompt: list[int]
    references: list[list[int]]  # each must appear in the prediction (string_match_all)
    answer: list[int]  # the training target after the prompt: references joined by SEP, then EOS
    depths: list[float] = field(default_factory=list)
    metric: str = "string_match_all"


@dataclass(frozen=True)
class Formats:
    """Token lengths of the random strings (RULER: 7-digit numbers, 32-hex uuids, 5-letter variables)."""

    number_len: int = 7
    uuid_len: int = 8
    key_words: int = 2
    var_len: int = 3
    vt_value_len: int = 5


def task_names() -> list[str]:
    return list(TASKS)


def spec_for(task: str) -> TaskSpec:
    if task not in TASKS:
        raise ValueError(f"unknown RULER task '{task}'; valid choices: {', '.join(TASKS)}")
    return TASKS[task]


class RulerGenerator:
    """Makes samples of every task at any length from one vocabulary and one set of string formats."""

    def __init__(self, vocab: Vocab | None = None, formats: Formats | None = None, markov_seed: int = 1234):
        self.vocab, self.formats, self.markov_seed = vocab or Vocab(), formats or Formats(), markov_seed
        v = self.vocab
        self.noise_sentence = [v.filler0 + i for i in range(NOISE_SENTENCE_LEN)]
        rng = random.Random(markov_seed)  # the "essay language": 4 likely successors per filler word
        self.successors = [rng.sample(range(v.n_filler), 4) for _ in range(v.n_filler)]

    # --- random strings ---------------------------------------------------------------------------------------------
    def number(self, rng: random.Random, n: int | None = None) -> list[int]:
        n = n or self.formats.number_len
        first = rng.randrange(1, 10)  # no leading zero, as RULER's random.randint(10**6, 10**7)
        return [self.vocab.digit0 + first] + [self.vocab.digit0 + rng.randrange(10) for _ in range(n - 1)]

    def uuid(self, rng: random.Random) -> list[int]:
        return [self.vocab.hex0 + rng.randrange(16) for _ in range(self.formats.uuid_len)]

    def word_key(self, rng: random.Random) -> list[int]:
        return [self.vocab.word0 + rng.randrange(self.vocab.n_words) for _ in range(self.formats.key_words)]

    def string(self, kind: str, rng: random.Random) -> list[int]:
        return {"words": self.word_key, "numbers": self.number, "uuids": self.uuid}[kind](rng)

    def distinct(self, kind: str, rng: random.Random, n: int, exclude=()) -> list[list[int]]:
        seen, out = {tuple(x) for x in exclude}, []
        while len(out) < n:
            s = self.string(kind, rng)
            if tuple(s) not in seen:
                seen.add(tuple(s))
                out.append(s)
        return out

    # --- haystacks --------------------------------------------------------------------------------------------------
    def sentences(self, haystack: str, rng: random.Random, n_tokens: int) -> list[list[int]]:
        """Filler sentences totalling at least ``n_tokens`` tokens; needles go between sentences."""
        out, total = [], 0
        while total < n_tokens:
            if haystack == "noise":
                s = list(self.noise_sentence)
            else:
                word, s = rng.randrange(self.vocab.n_filler), []
                for _ in range(rng.randrange(8, 17)):
                    s.append(self.vocab.filler0 + word)
                    word = (
                        rng.choice(self.successors[word]) if rng.random() < 0.9 else rng.randrange(self.vocab.n_filler)
                    )
            out.append(s)
            total += len(s)
        return out

    def needle(self, key: list[int], value: list[int]) -> list[int]:
        v = self.vocab
        return [v.special("NEEDLE"), *key, v.special("IS"), *value, v.special("SEP")]

    @staticmethod
    def insert(units: list[list[int]], items: list[list[int]], depths: list[float]) -> list[int]:
        """Insert items between units at the given depths (percent of the units); items keep their order."""
        slots = sorted(zip((round(d / 100 * len(units)) for d in depths), range(len(items))))
        out, cursor = [], 0
        for slot, idx in slots:
            for u in units[cursor:slot]:
                out.extend(u)
            cursor = max(cursor, slot)
            out.extend(items[idx])
        for u in units[cursor:]:
            out.extend(u)
        return out

    def fit(self, units: list[list[int]], budget: int, rng: random.Random) -> list[list[int]]:
        """Drop whole units from the end until the rest fits, then pad the front with noise to exactly ``budget``."""
        while units and sum(map(len, units)) > budget:
            units = units[:-1]
        missing = budget - sum(map(len, units))
        pad = (self.noise_sentence * (missing // NOISE_SENTENCE_LEN + 1))[:missing]
        return ([pad] if pad else []) + units

    # --- tasks ------------------------------------------------------------------------------------------------------
    def sample(self, task: str, length: int, seed: int, index: int = 0) -> Sample:
        spec = spec_for(task)
        rng = random.Random(f"{task}:{length}:{seed}:{index}")
        make = {"niah": self._niah, "vt": self._vt, "cwe": self._cwe, "fwe": self._fwe}[spec.kind]
        sample = make(spec, task, length, rng)
        if len(sample.prompt) != length:
            raise ValueError(
                f"task '{task}' cannot make a {length}-token prompt (got {len(sample.prompt)}); use a longer length"
            )
        return sample

    def _frame(self, spec: TaskSpec, body: list[int], query: list[int]) -> list[int]:
        v = self.vocab
        return [v.bos, v.special(INSTRUCTION[spec.kind]), *body, v.special("QUERY"), *query, v.special("ANS")]

    def _answer(self, refs: list[list[int]]) -> list[int]:
        out: list[int] = []
        for i, r in enumerate(refs):
            out += ([self.vocab.special("SEP")] if i else []) + r
        return out + [self.vocab.eos]

    def _body_budget(self, length: int, query_len: int) -> int:
        return length - 4 - query_len  # BOS, INSTR, QUERY, ANS

    def _niah(self, spec: TaskSpec, task: str, length: int, rng: random.Random) -> Sample:
        keys = self.distinct(spec.key, rng, spec.num_needle_k)
        values = [self.distinct(spec.value, rng, spec.num_needle_v) for _ in keys]
        needles = [self.needle(k, val) for k, vals in zip(keys, values) for val in vals]
        order = list(range(len(needles)))
        rng.shuffle(order)
        needles = [needles[i] for i in order]
        queried = rng.sample(range(len(keys)), spec.num_needle_q)
        query = [t for q in queried for t in keys[q]]
        refs = [val for q in queried for val in values[q]]
        budget = self._body_budget(length, len(query))
        depths = rng.sample(DEPTHS, len(needles))
        if spec.haystack == "needle":
            n_needle_tokens = sum(map(len, needles))
            per = len(self.needle(self.string(spec.key, rng), self.string(spec.value, rng)))
            n_distract = max(0, (budget - n_needle_tokens) // per)
            d_keys = self.distinct(spec.key, rng, n_distract, exclude=keys)
            units = [self.needle(k, self.string(spec.value, rng)) for k in d_keys]
        else:
            units = self.sentences(spec.haystack, rng, budget)
        units = self.fit(units, budget - sum(map(len, needles)), rng)
        body = self.insert(units, needles, depths)
        return Sample(task, length, self._frame(spec, body, query), refs, self._answer(refs), depths, spec.metric)

    def _vt(self, spec: TaskSpec, task: str, length: int, rng: random.Random) -> Sample:
        """Variable tracking: chain 0 carries the queried value; chains 1.. are distractors with other values."""
        v, f = self.vocab, self.formats
        value = self.number(rng, f.vt_value_len)
        statements, refs, names_used = [], [], []
        for chain_index in range(spec.num_chains):
            chain_value = value if chain_index == 0 else self.number(rng, f.vt_value_len)
            names = []
            while len(names) < spec.num_hops + 1:
                name = [v.letter0 + rng.randrange(26) for _ in range(f.var_len)]
                if name not in names and name not in names_used:
                    names.append(name)
            names_used += names
            chain = [[v.special("VAR"), *names[0], v.special("EQ"), *chain_value, v.special("SEP")]]
            chain += [
                [v.special("VAR"), *b, v.special("EQ"), v.special("VAR"), *a, v.special("SEP")]
                for a, b in zip(names, names[1:])
            ]
            statements += chain
            if chain_index == 0:
                refs = names
        budget = self._body_budget(length, len(value))
        depths = sorted(rng.sample(DEPTHS, len(statements)))
        if spec.num_chains > 1:  # interleave the chains, each keeping its own order
            order = sorted(range(len(statements)), key=lambda i: (i % (spec.num_hops + 1), i))
            statements = [statements[i] for i in order]
        units = self.fit(self.sentences(spec.haystack, rng, budget), budget - sum(map(len, statements)), rng)
        body = self.insert(units, statements, depths)
        return Sample(task, length, self._frame(spec, body, value), refs, self._answer(refs), depths, spec.metric)

    def _word_list(self, counts: dict[int, int], rng: random.Random, budget: int) -> list[int]:
        words = [w for w, c in counts.items() for _ in range(c)]
        rng.shuffle(words)
        words = words[:budget]
        missing = budget - len(words)
        return (self.noise_sentence * (missing // NOISE_SENTENCE_LEN + 1))[:missing] + words

    def _cwe(self, spec: TaskSpec, task: str, length: int, rng: random.Random) -> Sample:
        """Common words: ``num_cw`` words appear 10x as often as the others (RULER: 30x vs 3x; 6x vs 1x < 4K).

        A body too short for that (10 x num_cw common tokens would leave fewer than num_cw rare words: below about
        110 tokens at num_cw = 10) lowers the common words' count until num_cw rare words fit, at least 2x: else the
        body holds only the common words and "list the distinct words" answers the task."""
        budget = self._body_budget(length, 0)
        pool = rng.sample(range(self.vocab.n_words), self.vocab.n_words)
        common, rare = pool[: spec.num_cw], pool[spec.num_cw :]
        freq_rare = max(1, math.ceil(budget / (10 * spec.num_cw + len(rare))))
        freq_common = 10 * freq_rare
        if freq_rare == 1 and budget < (freq_common + 1) * spec.num_cw:
            freq_common = max(2, (budget - spec.num_cw) // spec.num_cw)
        n_rare = min(len(rare), max(0, (budget - freq_common * spec.num_cw) // freq_rare))
        counts = {self.vocab.word0 + w: freq_common for w in common}
        counts.update({self.vocab.word0 + w: freq_rare for w in rare[:n_rare]})
        body = self._word_list(counts, rng, budget)
        refs = [[self.vocab.word0 + w] for w in common]
        return Sample(task, length, self._frame(spec, body, []), refs, self._answer(refs), [], spec.metric)

    def _fwe(self, spec: TaskSpec, task: str, length: int, rng: random.Random) -> Sample:
        """Frequent words: Zipf(alpha) over coded words, rank 1 shown as ELLIPSIS; the answer is ranks 2-4."""
        budget = self._body_budget(length, 0)
        n_types = min(self.vocab.n_words, 64)
        ranked = rng.sample(range(self.vocab.n_words), n_types)
        weights = [1 / (r + 1) ** spec.alpha for r in range(n_types)]
        draws = rng.choices(range(n_types), weights=weights, k=budget)
        counts = [draws.count(r) for r in range(n_types)]
        order = sorted(range(n_types), key=lambda r: (-counts[r], r))  # ties broken by Zipf rank
        text = [self.vocab.special("ELLIPSIS") if r == order[0] else self.vocab.word0 + ranked[r] for r in draws]
        refs = [[self.vocab.word0 + ranked[r]] for r in order[1:4]]
        return Sample(task, length, self._frame(spec, text, []), refs, self._answer(refs), [], spec.metric)


# --- scoring (RULER scripts/eval/synthetic/constants.py, on token strings) ----------------------------------------


def contains(prediction: list[int], reference: list[int]) -> bool:
    """Token-level analogue of RULER's case-insensitive substring test."""
    n = len(reference)
    return n == 0 or any(prediction[i : i + n] == reference for i in range(len(prediction) - n + 1))


def string_match_all(predictions: list[list[int]], references: list[list[list[int]]]) -> float:
    """Mean over samples of the fraction of references found in the prediction, x 100."""
    if not predictions:
        return float("nan")
    return (
        100.0
        * sum(sum(contains(p, r) for r in refs) / len(refs) for p, refs in zip(predictions, references))
        / len(predictions)
    )


def string_match_part(predictions: list[list[int]], references: list[list[list[int]]]) -> float:
    """Mean over samples of 1 if any reference is found, x 100 (RULER's QA metric)."""
    if not predictions:
        return float("nan")
    return 100.0 * sum(max(contains(p, r) for r in refs) for p, refs in zip(predictions, references)) / len(predictions)


METRICS = {"string_match_all": string_match_all, "string_match_part": string_match_part}


# --- cached evaluation sets ---------------------------------------------------------------------------------------


def cache_key(
    task: str, length: int, seed: int, count: int, vocab: Vocab, formats: Formats, markov_seed: int = 1234
) -> str:
    """Everything a cached sample depends on; the essay haystack's language depends on ``markov_seed`` (a key
    without it would hand one generator's cached samples to another)."""
    args = {
        "spec": asdict(spec_for(task)),
        "vocab": asdict(vocab),
        "formats": asdict(formats),
        "version": GENERATOR_VERSION,
    }
    if markov_seed != 1234:  # the default's key is unchanged, so existing caches stay valid
        args["markov_seed"] = markov_seed
    args = json.dumps(args, sort_keys=True)
    return f"{task}-{hashlib.sha1(args.encode()).hexdigest()[:10]}-N{length}-s{seed}-n{count}"


def load_or_generate(
    generator: RulerGenerator, task: str, length: int, seed: int, count: int, cache_dir: str | Path | None
) -> list[Sample]:
    """Evaluation samples, read from ``cache_dir/<key>.jsonl`` when present, else generated and cached."""
    path = None
    if cache_dir is not None:
        key = cache_key(task, length, seed, count, generator.vocab, generator.formats, generator.markov_seed)
        path = Path(cache_dir) / f"{key}.jsonl"
        if path.exists():
            return [Sample(**json.loads(line)) for line in path.read_text().splitlines() if line]
    samples = [generator.sample(task, length, seed, i) for i in range(count)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(asdict(s)) + "\n" for s in samples))
        tmp.replace(path)
    return samples
