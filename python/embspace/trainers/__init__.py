"""Trainers: anything that makes embeddings, as a sweepable estimator.

:class:`~embspace.Sweep` sweeps any scikit-learn style estimator whose fitted
result is embeddings (``embeddings_``, or ``item_embeddings_`` /
``user_embeddings_``; see :func:`fitted_sides`) and any plain function
``train(data, *, seed, **params)`` (:class:`FunctionTrainer`). This package
holds that contract (:class:`Trainer`), the function wrapper, the token
corpus (:class:`TokenCorpus`: sweep data that is not a
:class:`~embspace.Ratings`) and adapters for third-party models:

==================  ==========================  =========================  ===========
name                class                       wraps                      data
==================  ==========================  =========================  ===========
``implicit-als``    :class:`ImplicitALS`        implicit ALS               Ratings
``implicit-bpr``    :class:`ImplicitBPR`        implicit BPR               Ratings
``implicit-lmf``    :class:`ImplicitLMF`        implicit LMF               Ratings
``truncated-svd``   :class:`SklearnTruncatedSVD` sklearn TruncatedSVD      Ratings
``nmf``             :class:`SklearnNMF`         sklearn NMF                Ratings
``pca``             :class:`SklearnPCA`         sklearn PCA                Ratings
``word2vec``        :class:`GensimWord2Vec`     gensim Word2Vec            TokenCorpus
``fasttext``        :class:`GensimFastText`     gensim FastText            TokenCorpus
==================  ==========================  =========================  ===========

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
        "truncated-svd": SklearnTruncatedSVD,
        "nmf": SklearnNMF,
        "pca": SklearnPCA,
        "word2vec": GensimWord2Vec,
        "fasttext": GensimFastText,
    },
)
