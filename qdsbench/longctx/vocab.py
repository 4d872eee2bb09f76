"""The token vocabulary of RULER-synth: no tokenizer and no download, so every symbol is one token id.

Layout (ids are contiguous ranges, so a token's kind is a range test):
specials | digits 0-9 | 16 hex symbols | 26 capital letters | ``n_words`` key words | ``n_filler`` filler words.
Keys are adjective-noun-like pairs of word tokens, numbers are 7 digits (as in RULER), uuids are hex strings and
variable names are capital-letter strings; haystacks draw only from the filler words, so a needle is never part of
the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

SPECIALS = ("PAD", "BOS", "EOS", "NEEDLE", "IS", "SEP", "QUERY", "ANS", "VAR", "EQ", "LIST", "ELLIPSIS")


@dataclass(frozen=True)
class Vocab:
    n_words: int = 256
    n_filler: int = 64

    def __post_init__(self):
        if self.n_words < 16 or self.n_filler < 24:
            raise ValueError(f"vocab needs n_words >= 16 and n_filler >= 24, got {self.n_words}, {self.n_filler}")

    # specials
    def special(self, name: str) -> int:
        return SPECIALS.index(name)

    @property
    def pad(self) -> int:
        return 0

    @property
    def bos(self) -> int:
        return 1

    @property
    def eos(self) -> int:
        return 2

    # ranges
    @property
    def digit0(self) -> int:
        return len(SPECIALS)

    @property
    def hex0(self) -> int:
        return self.digit0 + 10

    @property
    def letter0(self) -> int:
        return self.hex0 + 16

    @property
    def word0(self) -> int:
        return self.letter0 + 26

    @property
    def filler0(self) -> int:
        return self.word0 + self.n_words

    @property
    def size(self) -> int:
        return self.filler0 + self.n_filler

    def describe(self, token: int) -> str:
        """Readable form of one token, for logs and failure messages."""
        if token < self.digit0:
            return SPECIALS[token]
        if token < self.hex0:
            return str(token - self.digit0)
        if token < self.letter0:
            return "0123456789abcdef"[token - self.hex0]
        if token < self.word0:
            return chr(ord("A") + token - self.letter0)
        if token < self.filler0:
            return f"w{token - self.word0}"
        if token < self.size:
            return f"f{token - self.filler0}"
        raise ValueError(f"token {token} is outside the vocabulary of size {self.size}")

    def render(self, tokens) -> str:
        return " ".join(self.describe(int(t)) for t in tokens)
