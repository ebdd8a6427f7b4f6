"""Trainers: anything that makes embeddings, as a sweepable estimator.

:class:`~embspace.Sweep` sweeps any scikit-learn style estimator whose fitted
result is embeddings (``embeddings_``, or ``item_embeddings_`` /
``user_embeddings_``; see :func:`fitted_sides`) and any plain function
``train(data, *, seed, **params)`` (:class:`FunctionTrainer`). This package
holds that contract (:class:`Trainer`), the function wrapper, the token
corpus (:class:`TokenCorpus`: sweep data that is not a
:class:`~embspace.Ratings`) and adapters for third-party models:

- ``implicit-als``, ``implicit-bpr``, ``implicit-lmf``: :class:`ImplicitALS`,
  :class:`ImplicitBPR`, :class:`ImplicitLMF` (implicit's models; data: Ratings);
- ``sklearn-truncated-svd``, ``sklearn-nmf``, ``sklearn-pca``: :class:`SklearnTruncatedSVD`,
  :class:`SklearnNMF`, :class:`SklearnPCA` (scikit-learn's decompositions of
  the ratings matrix; data: Ratings);
- ``gensim-word2vec``, ``gensim-fasttext``: :class:`GensimWord2Vec`, :class:`GensimFastText`
  (gensim's models; data: a :class:`TokenCorpus`, one side: the words).

:data:`TRAINERS` is their registry (a plug-in registers its own). implicit and
gensim are optional (``pip install 'embspace[implicit]'``, ``'embspace[gensim]'``),
imported when a trainer is fitted. Each module's docstring says exactly what
the embeddings are and how the seed is made to give the same result on any
machine.
"""

from __future__ import annotations

from .._registry import Registry
from ._base import SIDES, Trainer, fitted_sides, is_ratings
from .corpus import TokenCorpus, as_corpus
from .function import FunctionTrainer, function_params
from .gensim_models import GensimFastText, GensimWord2Vec
from .implicit_models import ImplicitALS, ImplicitBPR, ImplicitLMF
from .sklearn_models import SklearnNMF, SklearnPCA, SklearnTruncatedSVD

__all__ = [
    "SIDES",
    "TRAINERS",
    "FunctionTrainer",
    "GensimFastText",
    "GensimWord2Vec",
    "ImplicitALS",
    "ImplicitBPR",
    "ImplicitLMF",
    "SklearnNMF",
    "SklearnPCA",
    "SklearnTruncatedSVD",
    "TokenCorpus",
    "Trainer",
    "as_corpus",
    "fitted_sides",
    "function_params",
    "is_ratings",
]

#: The trainer adapters by name.
TRAINERS: Registry[type[Trainer]] = Registry(
    "trainer",
    {
        "implicit-als": ImplicitALS,
        "implicit-bpr": ImplicitBPR,
        "implicit-lmf": ImplicitLMF,
        "sklearn-truncated-svd": SklearnTruncatedSVD,
        "sklearn-nmf": SklearnNMF,
        "sklearn-pca": SklearnPCA,
        "gensim-word2vec": GensimWord2Vec,
        "gensim-fasttext": GensimFastText,
    },
)
