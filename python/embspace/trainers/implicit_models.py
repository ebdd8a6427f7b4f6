"""implicit's ALS, BPR and LMF as embspace trainers (``pip install 'embspace[implicit]'``).

Each adapter fits the implicit model on the ratings matrix (users x items,
CSR, the ratings as implicit's confidences) and keeps its factors as
``item_embeddings_`` / ``user_embeddings_``, keyed by the ratings' item and
user keys. The parameters are implicit's, with ``random_state`` the seed.

What the factors are:

- ALS: ``item_factors`` and ``user_factors`` as they are (``factors`` columns).
- BPR: implicit appends a bias column (the item bias; a column of ones on the
  user side), so that ``u . v`` includes the item bias; the embeddings are the
  ``factors`` latent columns, without it.
- LMF: implicit appends two columns (``[1, user bias]`` for users, ``[item
  bias, 1]`` for items); the embeddings are the ``factors`` latent columns.

Determinism: the same ``random_state`` gives the same factors, bit for bit.
ALS's result does not depend on the thread count (each user's / item's solve
reads only the other side's factors; checked on ml-latest-small with 1 and 2
threads), so ``num_threads`` is passed through (and is not in the cache key).
BPR and LMF update the factors from several threads at once (Hogwild) and give
different factors with different thread counts, so they always run on one
thread and have no ``num_threads``. BLAS runs on one thread during a fit
(``threadpoolctl``) so that the Gram matrices implicit computes with numpy are
the same on every machine.

``device="gpu"`` runs implicit's CUDA models (ALS, BPR; implicit has no GPU
LMF) and copies the factors back to the CPU. Not tested here (no GPU);
implicit's GPU models are not promised to be bit-reproducible.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np

from ..embeddings import Embeddings
from ..errors import DeviceUnavailableError, InvalidParameterError
from ._base import IterationCallback, Trainer, is_ratings, require

__all__ = ["ImplicitALS", "ImplicitBPR", "ImplicitLMF"]


class _ImplicitTrainer(Trainer):
    package = "implicit"
    extra = "implicit"
    #: Whether implicit has a GPU version of the model.
    _gpu = False

    def _model_params(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _model_class(self, gpu: bool) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, ratings: Any, callback: IterationCallback | None = None) -> Any:
        """Fit on ``ratings`` (an embspace :class:`~embspace.Ratings`)."""
        if not is_ratings(ratings):
            raise InvalidParameterError(
                f"{type(self).__name__} trains on an embspace Ratings, got {type(ratings).__name__}"
            )
        require("implicit", "implicit")
        seed = self._check_seed()
        device = getattr(self, "device", "cpu")
        if device not in ("cpu", "gpu"):
            raise InvalidParameterError(f"device must be 'cpu' or 'gpu', got {device!r}")
        gpu = device == "gpu"
        if gpu:
            has_cuda = bool(importlib.import_module("implicit.gpu").HAS_CUDA)
            if not (self._gpu and has_cuda):
                raise DeviceUnavailableError(
                    f"{type(self).__name__} has no GPU model here (implicit built without CUDA, "
                    "or no GPU version of this model); use device='cpu'"
                )
        from threadpoolctl import threadpool_limits

        matrix = ratings.matrix.tocsr().astype(np.float32)
        t0 = time.perf_counter()
        done = [0]

        def each(iteration: int, elapsed: float, *extra: Any) -> None:
            # ALS passes (iteration from 0, seconds, loss or None); BPR and LMF
            # (epoch, seconds, correct, skipped): no loss.
            done[0] = int(iteration) + 1
            if callback is not None:
                loss = extra[0] if len(extra) == 1 else None
                number = float(loss) if isinstance(loss, (int, float)) else None
                callback(done[0], time.perf_counter() - t0, number)

        with threadpool_limits(1, "blas"):  # implicit checks BLAS's threads when it is made
            model = self._model_class(gpu)(**self._model_params(), random_state=seed)
            model.fit(matrix, show_progress=False, callback=each)
        if gpu:
            model = model.to_cpu()
        k = int(self.factors)
        users = np.asarray(model.user_factors)[:, :k]
        items = np.asarray(model.item_factors)[:, :k]
        self.user_embeddings_ = Embeddings(
            ratings.user_keys, users, ids=ratings.user_ids, metadata=self._metadata("users", seed)
        )
        self.item_embeddings_ = Embeddings(
            ratings.item_keys, items, ids=ratings.item_ids, metadata=self._metadata("items", seed)
        )
        self.model_ = model
        self.n_iter_ = done[0]
        self.converged_ = None
        self.fit_time_ = time.perf_counter() - t0
        return self


class ImplicitALS(_ImplicitTrainer):
    """implicit's ``AlternatingLeastSquares`` (implicit-feedback ALS with
    confidence ``1 + alpha * r``), as an embspace trainer.

    Parameters are implicit's (``factors``, ``regularization``, ``alpha``,
    ``iterations``, ``use_cg``, ``calculate_training_loss``), plus
    ``random_state`` (the seed), ``num_threads`` (None: every CPU; the result
    does not depend on it) and ``device`` (``"cpu"`` or ``"gpu"``).
    """

    _gpu = True

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        use_cg: bool = True,
        calculate_training_loss: bool = False,
        random_state: int | None = None,
        num_threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.use_cg = use_cg
        self.calculate_training_loss = calculate_training_loss
        self.random_state = random_state
        self.num_threads = num_threads
        self.device = device

    def _model_class(self, gpu: bool) -> Any:
        where = "gpu" if gpu else "cpu"
        return importlib.import_module(f"implicit.{where}.als").AlternatingLeastSquares

    def _model_params(self) -> dict[str, Any]:
        params = {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "calculate_training_loss": self.calculate_training_loss,
        }
        if self.device == "cpu":
            params["use_cg"] = self.use_cg
            params["num_threads"] = 0 if self.num_threads is None else int(self.num_threads)
        return params


class ImplicitBPR(_ImplicitTrainer):
    """implicit's ``BayesianPersonalizedRanking`` (SGD on sampled (user,
    liked item, other item) triples), as an embspace trainer.

    Parameters are implicit's (``factors``, ``learning_rate``,
    ``regularization``, ``iterations``, ``verify_negative_samples``), plus
    ``random_state`` and ``device``. Always one CPU thread (see the module
    docs); the embeddings leave out implicit's bias column.
    """

    _gpu = True

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        verify_negative_samples: bool = True,
        random_state: int | None = None,
        device: str = "cpu",
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.verify_negative_samples = verify_negative_samples
        self.random_state = random_state
        self.device = device

    def _model_class(self, gpu: bool) -> Any:
        where = "gpu" if gpu else "cpu"
        return importlib.import_module(f"implicit.{where}.bpr").BayesianPersonalizedRanking

    def _model_params(self) -> dict[str, Any]:
        params = {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "verify_negative_samples": self.verify_negative_samples,
        }
        if self.device == "cpu":
            params["num_threads"] = 1
        return params


class ImplicitLMF(_ImplicitTrainer):
    """implicit's ``LogisticMatrixFactorization``, as an embspace trainer.

    Parameters are implicit's (``factors``, ``learning_rate``,
    ``regularization``, ``iterations``, ``neg_prop``), plus ``random_state``.
    CPU only (implicit has no GPU LMF), always one thread (see the module
    docs); the embeddings leave out implicit's two bias columns.
    """

    def __init__(
        self,
        factors: int = 30,
        learning_rate: float = 1.0,
        regularization: float = 0.6,
        iterations: int = 30,
        neg_prop: int = 30,
        random_state: int | None = None,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.neg_prop = neg_prop
        self.random_state = random_state

    def _model_class(self, gpu: bool) -> Any:
        return importlib.import_module("implicit.cpu.lmf").LogisticMatrixFactorization

    def _model_params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "neg_prop": self.neg_prop,
            "num_threads": 1,
        }
