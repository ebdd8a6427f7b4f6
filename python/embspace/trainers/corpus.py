"""A token corpus as sweep data: sentences of tokens, with a fingerprint for
the cache and the token counts.

Word2Vec and FastText train on a corpus, not on a :class:`~embspace.Ratings`.
:class:`TokenCorpus` holds one (a list of sentences, each a list of string
tokens), iterates it as often as a trainer needs (gensim makes one pass to
build the vocabulary and one per epoch), and gives what a sweep needs of its
data: :attr:`TokenCorpus.fingerprint` for the cache key and
:meth:`TokenCorpus.counts` (each token's occurrences) for the per-entity
tables and the check of ``k``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from ..errors import DatasetFormatError, InvalidParameterError, MissingFileError

__all__ = ["TokenCorpus", "as_corpus"]


class TokenCorpus:
    """Sentences of string tokens, kept in memory.

    Parameters
    ----------
    sentences : iterable of sequences of str
        Read once, here: a generator is fine. Empty sentences are kept (they
        change nothing a trainer learns, but they are part of the data).
    """

    def __init__(self, sentences: Iterable[Iterable[str]]) -> None:
        if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Iterable):
            raise InvalidParameterError(
                "a corpus must be an iterable of sentences, each a list of string tokens, "
                f"got {type(sentences).__name__}"
            )
        kept: list[list[str]] = []
        for i, sentence in enumerate(sentences):
            if isinstance(sentence, (str, bytes)) or not isinstance(sentence, Iterable):
                raise InvalidParameterError(
                    f"sentence {i} of the corpus must be a list of string tokens, "
                    f"got {type(sentence).__name__} (split the text into tokens first)"
                )
            tokens = list(sentence)
            bad = next((t for t in tokens if not isinstance(t, str)), None)
            if bad is not None:
                raise InvalidParameterError(
                    f"sentence {i} of the corpus has a token that is not a string: {bad!r}"
                )
            kept.append(tokens)
        if not any(kept):
            raise InvalidParameterError("the corpus has no tokens")
        self.sentences: list[list[str]] = kept

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, lowercase: bool = False) -> TokenCorpus:
        """Read a text file: one sentence per line, tokens separated by white
        space (``str.split()``: spaces, tabs, and the other Unicode spaces).

        UTF-8 (a leading byte-order mark is dropped); a name ending in ``.gz``
        is read through gzip. Blank lines are kept as empty sentences.
        ``lowercase=True`` folds every token with ``str.lower``.

        Raises
        ------
        MissingFileError
            ``path`` does not exist.
        DatasetFormatError
            The file is not UTF-8 text (the line is named) or not gzip when
            its name says so.
        InvalidParameterError
            The file has no tokens.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise MissingFileError(f"no corpus file {path}")
        opener: Any = gzip.open if path.endswith(".gz") else open
        sentences: list[list[str]] = []
        try:
            with opener(path, "rb") as fh:
                for number, raw in enumerate(fh, start=1):
                    try:
                        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                    except UnicodeDecodeError as exc:
                        raise DatasetFormatError(
                            f"{path}: line {number} is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})"
                        ) from None
                    tokens = line.split()
                    sentences.append([t.lower() for t in tokens] if lowercase else tokens)
        except (gzip.BadGzipFile, EOFError) as exc:
            raise DatasetFormatError(f"{path}: not a complete gzip file ({exc})") from None
        if not any(sentences):
            raise InvalidParameterError(f"the corpus {path} has no tokens")
        return cls(sentences)

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self.sentences)

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def n_tokens(self) -> int:
        return sum(len(s) for s in self.sentences)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of every token in order, each sentence and token
        length-prefixed (so no two corpora share it by how they are cut)."""
        h = hashlib.sha256(b"embspace.token-corpus/1")
        for sentence in self.sentences:
            h.update(len(sentence).to_bytes(8, "little"))
            for token in sentence:
                raw = token.encode("utf-8", "surrogatepass")
                h.update(len(raw).to_bytes(8, "little"))
                h.update(raw)
        return h.hexdigest()

    def counts(self) -> Counter[str]:
        """Each token's number of occurrences."""
        return Counter(t for s in self.sentences for t in s)

    def __repr__(self) -> str:
        return (
            f"<TokenCorpus {len(self.sentences):,} sentences, {self.n_tokens:,} tokens, "
            f"fingerprint {self.fingerprint[:12]}>"
        )


def as_corpus(data: Any) -> TokenCorpus:
    """``data`` as a :class:`TokenCorpus` (itself when it is one)."""
    return data if isinstance(data, TokenCorpus) else TokenCorpus(data)
