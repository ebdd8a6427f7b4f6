"""gensim's Word2Vec and FastText on a token corpus as embspace trainers
(``pip install 'embspace[gensim]'``).

``fit(corpus)`` takes a :class:`~embspace.trainers.TokenCorpus` (or any list
of token lists: it is made one) and keeps the word vectors as
``embeddings_`` (one side, the ``"items"`` of a sweep), keyed by the words in
gensim's vocabulary order: by count, most frequent first, ties in the order
of first occurrence, so the same corpus and ``min_count`` give the same keys
in the same order. The parameters are gensim's, with ``random_state`` passed
as gensim's ``seed``.

Determinism: gensim draws the initial vectors from ``numpy.random.default_rng
(seed)`` and its sampling from a generator seeded the same way, but with
several worker threads the order in which their updates land depends on the
scheduler. The adapters therefore always train with ``workers=1`` (no
``workers`` parameter): the same ``random_state`` then gives the same vectors,
bit for bit, in any process (no ``PYTHONHASHSEED`` needed: gensim 4 does not
hash words to seed them). This is slower than gensim's default of 3 workers.
"""

from __future__ import annotations

import time
from typing import Any

from ..embeddings import Embeddings
from ..errors import InvalidParameterError
from ._base import IterationCallback, Trainer, is_ratings, require
from .corpus import as_corpus

__all__ = ["GensimFastText", "GensimWord2Vec"]


class _GensimTrainer(Trainer):
    package = "gensim"
    extra = "gensim"
    sides = ("items",)
    trains_on = "corpus"

    def _model_class(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _model_params(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params.pop("random_state")
        return params

    def n_entities(self, data: Any, entities: str) -> int | None:
        """The vocabulary size: the distinct tokens seen at least ``min_count`` times."""
        if entities != "items" or is_ratings(data):
            return None
        counts = as_corpus(data).counts()
        return sum(1 for c in counts.values() if c >= self.min_count)

    def fit(self, corpus: Any, callback: IterationCallback | None = None) -> Any:
        """Train on ``corpus`` (sentences of string tokens)."""
        if is_ratings(corpus):
            raise InvalidParameterError(
                f"{type(self).__name__} trains on a token corpus (a list of token lists), "
                "not on a Ratings"
            )
        require("gensim", "gensim")
        from gensim.models.callbacks import CallbackAny2Vec

        corpus = as_corpus(corpus)
        seed = self._check_seed()
        t0 = time.perf_counter()
        epochs = [0]

        class _Epochs(CallbackAny2Vec):
            def on_epoch_end(self, model: Any) -> None:
                epochs[0] += 1
                if callback is not None:
                    callback(epochs[0], time.perf_counter() - t0, None)

        model = self._model_class()(
            sentences=corpus,
            seed=0 if seed is None else seed,
            workers=1,
            callbacks=[_Epochs()],
            **self._model_params(),
        )
        wv = model.wv
        if not len(wv.index_to_key):
            raise InvalidParameterError(
                f"no word of the corpus occurs min_count={self.min_count} times: the vocabulary "
                "is empty"
            )
        self.embeddings_ = Embeddings(
            list(wv.index_to_key), wv.vectors, metadata=self._metadata("items", seed)
        )
        self.vocabulary_ = list(wv.index_to_key)
        self.model_ = model
        self.n_iter_ = epochs[0]
        self.converged_ = None
        self.fit_time_ = time.perf_counter() - t0
        return self


class GensimWord2Vec(_GensimTrainer):
    """gensim's ``Word2Vec``. Parameters are gensim's (``vector_size``,
    ``window``, ``min_count``, ``sg``, ``hs``, ``negative``, ``ns_exponent``,
    ``sample``, ``alpha``, ``min_alpha``, ``epochs``, ``max_vocab_size``,
    ``max_final_vocab``, ``shrink_windows``) with gensim's defaults, and
    ``random_state`` (gensim's ``seed``; None trains with seed 0 and is never
    cached). One worker thread (see the module docs)."""

    def __init__(
        self,
        vector_size: int = 100,
        window: int = 5,
        min_count: int = 5,
        sg: int = 0,
        hs: int = 0,
        negative: int = 5,
        ns_exponent: float = 0.75,
        sample: float = 1e-3,
        alpha: float = 0.025,
        min_alpha: float = 0.0001,
        epochs: int = 5,
        max_vocab_size: int | None = None,
        max_final_vocab: int | None = None,
        shrink_windows: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.vector_size = vector_size
        self.window = window
        self.min_count = min_count
        self.sg = sg
        self.hs = hs
        self.negative = negative
        self.ns_exponent = ns_exponent
        self.sample = sample
        self.alpha = alpha
        self.min_alpha = min_alpha
        self.epochs = epochs
        self.max_vocab_size = max_vocab_size
        self.max_final_vocab = max_final_vocab
        self.shrink_windows = shrink_windows
        self.random_state = random_state

    def _model_class(self) -> Any:
        from gensim.models import Word2Vec

        return Word2Vec

    def n_entities(self, data: Any, entities: str) -> int | None:
        if self.max_vocab_size is not None or self.max_final_vocab is not None:
            return None
        return super().n_entities(data, entities)


class GensimFastText(_GensimTrainer):
    """gensim's ``FastText`` (Word2Vec with character n-grams). Parameters
    are gensim's (those of :class:`GensimWord2Vec` plus ``min_n``, ``max_n``
    and ``bucket``, with gensim's defaults: ``bucket=2_000_000`` n-gram
    vectors of ``vector_size`` floats, 800 MB at 100 dimensions; lower it for
    small corpora) and ``random_state``. The embeddings are the vectors of
    the vocabulary's words (``model.wv.vectors``: each word's own vector plus
    its n-grams', as gensim gives them)."""

    def __init__(
        self,
        vector_size: int = 100,
        window: int = 5,
        min_count: int = 5,
        sg: int = 0,
        hs: int = 0,
        negative: int = 5,
        ns_exponent: float = 0.75,
        sample: float = 1e-3,
        alpha: float = 0.025,
        min_alpha: float = 0.0001,
        epochs: int = 5,
        min_n: int = 3,
        max_n: int = 6,
        bucket: int = 2_000_000,
        shrink_windows: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.vector_size = vector_size
        self.window = window
        self.min_count = min_count
        self.sg = sg
        self.hs = hs
        self.negative = negative
        self.ns_exponent = ns_exponent
        self.sample = sample
        self.alpha = alpha
        self.min_alpha = min_alpha
        self.epochs = epochs
        self.min_n = min_n
        self.max_n = max_n
        self.bucket = bucket
        self.shrink_windows = shrink_windows
        self.random_state = random_state

    def _model_class(self) -> Any:
        from gensim.models import FastText

        return FastText
