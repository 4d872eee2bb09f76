"""Offline English text that installed wheels ship, read as files (the packages are never imported).

- Prose: the Lee Background Corpus, 300 ABC (Australian Broadcasting Corporation) news articles collected by Lee,
  Pincombe & Welsh (2005) for document-similarity research, one article per line, shipped as
  ``gensim/test/test_data/lee_background.cor`` in the ``gensim==4.4.0`` wheel (gensim is LGPL-2.1; the corpus
  carries no licence of its own). About 60K words, 75K SmolLM2 tokens.
- Words: the noun, adjective and verb lists of ``wonderwords==3.0.1`` (MIT), which RULER draws its keys and CWE
  words from.

Both wheels are installed with ``pip install --no-deps`` (their code is not needed).
"""

from __future__ import annotations

import importlib.util
import random
from functools import cache
from pathlib import Path

PROSE_WHEEL, WORDS_WHEEL = "gensim==4.4.0", "wonderwords==3.0.1"
PROSE_SOURCE = (
    "Lee Background Corpus (300 ABC news articles; Lee, Pincombe & Welsh 2005), "
    "gensim 4.4.0 wheel test data (gensim LGPL-2.1; no separate corpus licence)"
)


def _package_file(package: str, relative: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package '{package}' is not installed: pip install --no-deps {wheel}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: pip install --no-deps --force-reinstall {wheel}")
    return path


def prose_path() -> Path:
    """The Lee Background Corpus: one ABC news article per line (gensim's test data)."""
    return _package_file("gensim", "test/test_data/lee_background.cor", PROSE_WHEEL)


@cache
def prose_documents() -> tuple[str, ...]:
    return tuple(" ".join(line.split()) for line in prose_path().read_text(encoding="utf-8").splitlines() if line)


@cache
def essay_words() -> tuple[str, ...]:
    """The essay haystack as RULER keeps it: the whole text split on whitespace."""
    return tuple(" ".join(prose_documents()).split(" "))


@cache
def wonderwords_list(name: str) -> tuple[str, ...]:
    path = _package_file("wonderwords", f"assets/{name}list.txt", WORDS_WHEEL)
    return tuple(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())


@cache
def key_parts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """RULER's NIAH word keys are every adjective-noun pair: (adjectives, nouns), each sorted and distinct."""
    return tuple(sorted(set(wonderwords_list("adjective")))), tuple(sorted(set(wonderwords_list("noun"))))


def random_word_key(rng: random.Random) -> str:
    """A uniform adjective-noun key (RULER draws from the 6M materialised pairs; this draws the pair's parts)."""
    adjectives, nouns = key_parts()
    return f"{rng.choice(adjectives)}-{rng.choice(nouns)}"


@cache
def cwe_words() -> tuple[str, ...]:
    """RULER's CWE pool: nouns, adjectives and verbs, sorted."""
    return tuple(sorted(set(wonderwords_list("noun") + wonderwords_list("adjective") + wonderwords_list("verb"))))
