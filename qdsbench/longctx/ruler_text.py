"""RULER's synthetic tasks as text, fitted to a real tokenizer (the token-level RULER-synth is ``ruler.py``).

Reimplemented (not copied) from NVIDIA/RULER, commit c3f5e3b, Apache-2.0: the templates, answer prefixes and
generation budgets of ``scripts/data/synthetic/constants.py``; the task arguments of ``scripts/synthetic.yaml``; the
needle, haystack, insertion and length-fitting rules of ``scripts/data/synthetic/niah.py``, ``variable_tracking.py``,
``common_words_extraction.py`` and ``freq_words_extraction.py``; the scorers of ``scripts/eval/synthetic/constants.py``
and the prediction clean-up of ``scripts/eval/evaluate.py``. As in RULER, ``length`` counts the prompt (model
template + task template + answer prefix) plus the task's generation budget, and the haystack is the largest that
fits (binary search over its size).

Offline sources (qdsbench.text_sources, files of installed wheels, never imported): the ``noise`` haystack is RULER's
repeated sentences; the ``essay`` haystack (Paul Graham's essays in RULER, a download) is real English prose: the Lee
Background Corpus (300 ABC news articles, Lee, Pincombe & Welsh 2005), ``gensim/test/test_data/lee_background.cor``
of ``gensim==4.4.0`` (LGPL-2.1). Word keys (adjective-noun) and CWE's words come from the lists of
``wonderwords==3.0.1`` (MIT), RULER's own source. Sentences are split by a regular expression, not nltk's punkt.

Differences from RULER, all small: each sample gets its own seeded ``random.Random`` (RULER shares one stream and
re-seeds its shuffles with the global seed), so a sample depends only on (task, length, seed, index); distractor
needles never reuse a real key (so the queried key has exactly its own values); CWE's pool past the wonderwords
lists (RULER's randle words, beyond about 100K tokens) is not provided; QA (SQuAD, HotpotQA) is left out.
"""

from __future__ import annotations

import math
import random
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from qdsbench.text_sources import cwe_words, essay_words, random_word_key

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
DEPTHS = [round(100 * i / 39) for i in range(40)]  # RULER: np.round(np.linspace(0, 100, 40)).astype(int)
PLAIN = "{task_template}"  # RULER's 'base' model template
# SmolLM2-Instruct's chat template (the GGUF's tokenizer.chat_template) for one user turn and the assistant's start
SMOLLM2_CHAT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\n{task_template}<|im_end|>\n<|im_start|>assistant\n"
)

# RULER constants.py: (template, answer prefix, tokens to generate) per task family
TEMPLATES = {
    "niah": (
        "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
        "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?",
        " The special magic {type_needle_v} for {query} mentioned in the provided text are",
        128,
    ),
    "vt": (
        "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
        "Question: Find all variables that are assigned the value {query} in the text above.",
        " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
        "assigned the value {query}, they are: ",
        30,
    ),
    "cwe": (
        "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones "
        "that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?",
        " Answer: The top 10 words that appear most often in the list are:",
        120,
    ),
    "fwe": (
        "Read the following coded text and track the frequency of each coded word. Find the three most frequently "
        "appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
        "What are the three most frequently appeared words in the above coded text?",
        " Answer: According to the coded text above, the three most frequently appeared words are:",
        50,
    ),
}


@dataclass(frozen=True)
class TextTask:
    """One RULER task (names as in RULER's synthetic.yaml)."""

    kind: str  # niah | vt | cwe | fwe
    haystack: str = "noise"  # noise | essay | needle
    key: str = "words"  # words | numbers | uuids
    value: str = "numbers"
    num_needle_k: int = 1
    num_needle_v: int = 1
    num_needle_q: int = 1
    num_chains: int = 1
    num_hops: int = 4
    freq_cw: int = 30
    freq_ucw: int = 3
    num_cw: int = 10
    alpha: float = 2.0
    metric: str = "string_match_all"


TASKS: dict[str, TextTask] = {
    "niah_single_1": TextTask("niah", "noise"),
    "niah_single_2": TextTask("niah", "essay"),
    "niah_single_3": TextTask("niah", "essay", value="uuids"),
    "niah_multikey_1": TextTask("niah", "essay", num_needle_k=4),
    "niah_multikey_2": TextTask("niah", "needle"),
    "niah_multikey_3": TextTask("niah", "needle", key="uuids", value="uuids"),
    "niah_multivalue": TextTask("niah", "essay", num_needle_v=4),
    "niah_multiquery": TextTask("niah", "essay", num_needle_q=4),
    "vt": TextTask("vt", "noise"),
    "cwe": TextTask("cwe"),
    "fwe": TextTask("fwe"),
}


@dataclass
class TextSample:
    task: str
    length: int
    seed: int
    index: int
    input: str  # the task text before the answer prefix (RULER's "input")
    answer_prefix: str
    prompt: str  # what the model reads: model template around ``input``, then ``answer_prefix``
    outputs: list[str]  # RULER's references
    prompt_tokens: int
    tokens_to_generate: int
    metric: str = "string_match_all"
    depths: list[int] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    needles: list[str] = field(default_factory=list)  # the needles (niah) or chain statements (vt) inserted

    def to_dict(self) -> dict:
        return asdict(self)


def task_names() -> list[str]:
    return list(TASKS)


def spec_for(task: str) -> TextTask:
    if task not in TASKS:
        raise ValueError(f"unknown RULER text task '{task}'; valid choices: {', '.join(TASKS)}")
    return TASKS[task]


# ---------------------------------------------------------------------------------------------------------------
# Offline word lists and prose (files of installed wheels, found without importing them)
# ---------------------------------------------------------------------------------------------------------------


_SENTENCE_END = re.compile(r"([.!?][\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences at '.', '!' or '?' (closing quotes kept) followed by a capital or digit (nltk's job in RULER)."""
    marked = _SENTENCE_END.sub("\\1\x00", text.strip())
    return [s for s in (part.strip() for part in marked.split("\x00")) if s]


# ---------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------


def _fill(template: str, **values: str) -> str:
    """``str.format`` for our own placeholders only: the context may hold braces."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def _join_queries(queries: list[str]) -> str:
    return queries[0] if len(queries) == 1 else ", ".join(queries[:-1]) + ", and " + queries[-1]


def _singular(text: str) -> str:
    """RULER's rewording of the NIAH template when one value is asked for."""
    for old, new in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
        text = text.replace(old, new)
    return text


def _insert_between(sentences: list[str], items: list[str], depths: list[int]) -> str:
    """RULER's essay insertion: items at int(len * depth / 100) sentence boundaries, joined by spaces."""
    cuts = [0] + sorted(int(len(sentences) * d / 100) for d in depths) + [len(sentences)]
    parts = []
    for i in range(1, len(cuts)):
        parts.append(" ".join(sentences[cuts[i - 1] : cuts[i]]))
        if i - 1 < len(items):
            parts.append(items[i - 1])
    return " ".join(parts)


@dataclass
class _Built:
    input: str
    answer_prefix: str
    outputs: list[str]
    depths: list[int] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    needles: list[str] = field(default_factory=list)


class RulerTextGenerator:
    """Samples of every task at a length in tokens of ``count_tokens`` (e.g. SmolLM2's tokenizer).

    ``model_template`` wraps the task text (``{task_template}``), as RULER's model templates do; the answer prefix
    follows it. ``tokens_to_generate`` overrides RULER's per-task generation budget in the length accounting.
    """

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        model_template: str = PLAIN,
        tokens_to_generate: int | None = None,
    ):
        if "{task_template}" not in model_template:
            raise ValueError("model_template needs a {task_template} placeholder")
        self.count_tokens, self.model_template, self.tokens_to_generate = (
            count_tokens,
            model_template,
            tokens_to_generate,
        )

    def budget(self, task: str) -> int:
        spec = spec_for(task)
        return self.tokens_to_generate if self.tokens_to_generate is not None else TEMPLATES[spec.kind][2]

    def prompt_of(self, built: _Built) -> str:
        return _fill(self.model_template, task_template=built.input) + built.answer_prefix

    # --- the public entry point -------------------------------------------------------------------------------
    def sample(self, task: str, length: int, seed: int = 0, index: int = 0) -> TextSample:
        spec = spec_for(task)
        to_generate = self.budget(task)
        limit = length - to_generate
        key = f"{task}:{length}:{seed}:{index}"
        rng = random.Random(key)
        if spec.kind == "vt":
            icl = self._vt_icl(spec, random.Random(key + ":icl"))
            build = lambda n: self._vt(spec, key, n, icl)  # noqa: E731
        elif spec.kind == "cwe":
            build = lambda n: self._cwe(spec, key, n, length)  # noqa: E731
        elif spec.kind == "fwe":
            vocab = self._fwe_vocab(rng, max(limit // 50, 4))
            build = lambda n: self._fwe(spec, key, n, vocab)  # noqa: E731
        else:
            build = lambda n: self._niah(spec, key, n)  # noqa: E731
        low = {"cwe": spec.num_cw + 1, "vt": spec.num_hops + 1}.get(spec.kind, 1)  # room for the list / chain
        _, built = self._fit(build, limit, f"task '{task}' at length {length}", low)
        prompt = self.prompt_of(built)
        return TextSample(
            task=task,
            length=length,
            seed=seed,
            index=index,
            input=built.input,
            answer_prefix=built.answer_prefix,
            prompt=prompt,
            outputs=built.outputs,
            prompt_tokens=self.count_tokens(prompt),
            tokens_to_generate=to_generate,
            metric=spec.metric,
            depths=built.depths,
            queries=built.queries,
            needles=built.needles,
        )

    def _fit(self, build: Callable[[int], _Built], limit: int, what: str, low: int = 1) -> tuple[int, _Built]:
        """The largest haystack size n >= ``low`` whose prompt fits ``limit`` tokens: doubling, then bisection
        (RULER bisects between bounds estimated from one probe; doubling needs no estimate)."""

        def fits(n: int) -> _Built | None:
            built = build(n)
            return built if self.count_tokens(self.prompt_of(built)) <= limit else None

        best = fits(low)
        if best is None:
            raise ValueError(f"{what} cannot fit: the smallest prompt has more than {limit} tokens")
        lo, hi, found = low, 2 * low, (low, best)
        while (built := fits(hi)) is not None:
            lo, hi, found = hi, 2 * hi, (hi, built)
        lo, hi = lo + 1, hi - 1  # lo fits, hi does not
        while lo <= hi:
            mid = (lo + hi) // 2
            if (built := fits(mid)) is not None:
                found, lo = (mid, built), mid + 1
            else:
                hi = mid - 1
        return found

    # --- random strings ---------------------------------------------------------------------------------------
    @staticmethod
    def _random(kind: str, rng: random.Random) -> str:
        if kind == "numbers":
            return str(rng.randint(10**6, 10**7 - 1))
        if kind == "words":
            return random_word_key(rng)
        if kind == "uuids":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        raise ValueError(f"unknown needle type '{kind}'; valid choices: numbers, words, uuids")

    def _distinct(self, kind: str, rng: random.Random, n: int, exclude=()) -> list[str]:
        seen, out = set(exclude), []
        while len(out) < n:
            s = self._random(kind, rng)
            if s not in seen:
                seen.add(s)
                out.append(s)
        return out

    # --- tasks ------------------------------------------------------------------------------------------------
    def _niah(self, spec: TextTask, key: str, n: int) -> _Built:
        rng = random.Random(key)  # the same keys, values and depths for every haystack size n
        num_k = max(spec.num_needle_k, spec.num_needle_q)
        keys = self._distinct(spec.key, rng, num_k)
        values = [self._distinct(spec.value, rng, spec.num_needle_v) for _ in keys]
        needles = [
            _fill(NEEDLE, type_needle_v=spec.value, key=k, value=v) for k, vals in zip(keys, values) for v in vals
        ]
        rng.shuffle(needles)
        queried = rng.sample(range(num_k), spec.num_needle_q)
        depths = rng.sample(DEPTHS, len(needles)) if spec.haystack == "essay" else []
        fill_rng = random.Random(f"{key}:haystack:{n}")
        if spec.haystack == "essay":
            words = essay_words()
            words = (words * (n // len(words) + 1))[:n]
            context = _insert_between(split_sentences(" ".join(words)), needles, depths)
        else:
            if spec.haystack == "noise":
                lines = [NOISE] * n
            elif spec.haystack == "needle":
                decoys = [self._random(spec.key, fill_rng) for _ in range(n)]
                lines = [
                    _fill(NEEDLE, type_needle_v=spec.value, key=k, value=self._random(spec.value, fill_rng))
                    for k in decoys
                    if k not in keys
                ]
            else:
                raise ValueError(f"unknown haystack '{spec.haystack}'; valid choices: noise, essay, needle")
            slots = sorted(fill_rng.sample(range(len(lines) + 1), len(needles)), reverse=True)
            for slot, needle in zip(slots, needles):
                lines.insert(slot, needle)
            context = "\n".join(lines)
        queries = [keys[i] for i in queried]
        template, prefix, _ = TEMPLATES["niah"]
        type_v = spec.value
        if spec.num_needle_q * spec.num_needle_v == 1:
            template, prefix, type_v = _singular(template), _singular(prefix), type_v[:-1]
        query = _join_queries(queries)
        return _Built(
            input=_fill(template, type_needle_v=type_v, query=query, context=context),
            answer_prefix=_fill(prefix, type_needle_v=type_v, query=query),
            outputs=[v for i in queried for v in values[i]],
            depths=sorted(depths),
            queries=queries,
            needles=needles,
        )

    @staticmethod
    def _chains(spec: TextTask, rng: random.Random, icl: bool) -> tuple[list[list[str]], list[list[str]]]:
        letters, hops = (3, min(10, spec.num_hops)) if icl else (5, spec.num_hops)
        names: list[str] = []
        while len(names) < spec.num_chains * (hops + 1):
            name = "".join(rng.choices(string.ascii_uppercase, k=letters))
            if name not in names and name != "VAR":
                names.append(name)
        variables, chains = [], []
        for c in range(spec.num_chains):
            these = names[c * (hops + 1) : (c + 1) * (hops + 1)]
            value = "12345" if icl else str(rng.randint(10000, 99998))
            variables.append(these)
            chains.append([f"VAR {these[0]} = {value}"] + [f"VAR {b} = VAR {a} " for a, b in zip(these, these[1:])])
        return variables, chains

    def _vt_text(self, spec: TextTask, rng: random.Random, n: int, icl: bool) -> _Built:
        variables, chains = self._chains(spec, rng, icl)
        value = chains[0][0].split("=")[-1].strip()
        lines = [NOISE] * n
        for chain in chains:
            slots = sorted(rng.sample(range(len(lines)), len(chain)))
            for j, (slot, statement) in enumerate(zip(slots, chain)):
                lines.insert(slot + j, statement)
        context = "\n".join(lines).replace(". \n", ".\n")
        template, prefix, _ = TEMPLATES["vt"]
        hops = min(10, spec.num_hops) if icl else spec.num_hops
        return _Built(
            input=_fill(template, context=context, query=value),
            answer_prefix=_fill(prefix, num_v=str(hops + 1), query=value),
            outputs=variables[0],
            queries=[value],
            needles=[s for chain in chains for s in chain],
        )

    def _vt_icl(self, spec: TextTask, rng: random.Random) -> str:
        """RULER's one in-context example: a VT task fitted to 500 tokens, answered, with 3-letter variables."""
        seed = rng.random()
        plain = RulerTextGenerator(self.count_tokens)
        _, built = plain._fit(
            lambda n: self._vt_text(spec, random.Random(seed), n, icl=True),
            500,
            "vt example",
            min(10, spec.num_hops) + 1,
        )
        return built.input + built.answer_prefix + " " + " ".join(built.outputs) + "\n"

    def _vt(self, spec: TextTask, key: str, n: int, icl_example: str) -> _Built:
        built = self._vt_text(spec, random.Random(key), n, icl=False)
        rng = random.Random(key + ":icl-names")  # RULER's randomize_icl: new names and value in the example
        example = icl_example
        for name in icl_example.split()[-(min(10, spec.num_hops) + 1) :]:
            new = "".join(rng.choices(string.ascii_uppercase, k=len(name)))
            example = re.sub(rf"\b{re.escape(name)}\b", new, example)
        example = example.replace("12345", str(rng.randint(10000, 99998)))
        built.input = example + "\n" + built.input
        return built

    def _cwe(self, spec: TextTask, key: str, n: int, length: int) -> _Built:
        rng = random.Random(key)
        pool = cwe_words()
        if n + 40 > len(pool):
            raise ValueError(f"cwe needs {n} distinct words; the wonderwords pool has {len(pool)}")

        def example(num_words: int, common: int, uncommon: int) -> tuple[str, list[str]]:
            chosen = rng.sample(pool, num_words)
            top = chosen[: spec.num_cw]
            listed = top * common + chosen[spec.num_cw :] * uncommon
            rng.shuffle(listed)
            return " ".join(f"{i + 1}. {w}" for i, w in enumerate(listed)), top

        small = length < 4096  # RULER's smaller repeats below 4K tokens
        shot_context, shot_answer = example(20, 3, 1) if small else example(40, 10, 3)
        context, answer = example(n, 6, 1) if small else example(n, spec.freq_cw, spec.freq_ucw)
        template, prefix, _ = TEMPLATES["cwe"]
        shot = (
            _fill(template, context=shot_context)
            + prefix
            + " "
            + " ".join(f"{i + 1}. {w}" for i, w in enumerate(shot_answer))
        )
        return _Built(input=shot + "\n" + _fill(template, context=context), answer_prefix=prefix, outputs=answer)

    @staticmethod
    def _fwe_vocab(rng: random.Random, size: int, word_len: int = 6) -> list[str]:
        vocab: set[str] = set()
        while len(vocab) < size:
            vocab.add("".join(rng.choices(string.ascii_lowercase, k=word_len)))
        ordered = sorted(vocab)
        rng.shuffle(ordered)
        ordered[0] = "..."  # the top-ranked word is noise
        return ordered

    def _fwe(self, spec: TextTask, key: str, n: int, vocab: list[str]) -> _Built:
        zeta = _zeta(spec.alpha)
        words = [w for rank, w in enumerate(vocab, 1) for _ in range(int(n * rank**-spec.alpha / zeta))]
        random.Random(key).shuffle(words)
        template, prefix, _ = TEMPLATES["fwe"]
        return _Built(input=_fill(template, context=" ".join(words)), answer_prefix=prefix, outputs=vocab[1:4])


def _zeta(alpha: float) -> float:
    """Riemann zeta (RULER uses scipy.special.zeta): pi^2 / 6 at the default alpha = 2."""
    if alpha == 2.0:
        return math.pi**2 / 6
    from scipy.special import zeta

    return float(zeta(alpha))


# ---------------------------------------------------------------------------------------------------------------
# Scoring (RULER scripts/eval/synthetic/constants.py and evaluate.py's postprocess_pred)
# ---------------------------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess(prediction: str) -> str:
    """Strip, and turn control characters into newlines (RULER's postprocess_pred)."""
    return _CONTROL.sub("\n", prediction.strip()).strip()


def string_match_all(predictions: list[str], references: list[list[str]]) -> float:
    """Mean over samples of the fraction of references found (case-insensitive substring), x 100, 2 decimals."""
    if not predictions:
        return float("nan")
    found = [sum(r.lower() in p.lower() for r in refs) / len(refs) for p, refs in zip(predictions, references)]
    return round(100 * sum(found) / len(predictions), 2)


def string_match_part(predictions: list[str], references: list[list[str]]) -> float:
    """Mean over samples of 1 if any reference is found (case-insensitive substring), x 100, 2 decimals."""
    if not predictions:
        return float("nan")
    hits = [max(r.lower() in p.lower() for r in refs) for p, refs in zip(predictions, references)]
    return round(100 * sum(hits) / len(predictions), 2)


METRICS = {"string_match_all": string_match_all, "string_match_part": string_match_part}


def score(metric: str, predictions: list[str], references: list[list[str]]) -> float:
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; valid choices: {', '.join(METRICS)}")
    return METRICS[metric]([postprocess(p) for p in predictions], references)
