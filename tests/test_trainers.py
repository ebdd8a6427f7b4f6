"""Sweeping anything that makes embeddings: the adapters of embspace.trainers
(implicit, scikit-learn, gensim) on real data, plain training functions, the
cache keys of code and versions, and the typed errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import embspace as es
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from embspace.cache import EmbeddingCache, code_identity, function_identity
from embspace.errors import InvalidParameterError, NotFittedError, ShapeMismatchError
from embspace.sweeps import Sweep
from embspace.trainers import (
    TRAINERS,
    FunctionTrainer,
    GensimFastText,
    GensimWord2Vec,
    ImplicitALS,
    ImplicitBPR,
    ImplicitLMF,
    SklearnNMF,
    SklearnPCA,
    SklearnTruncatedSVD,
    TokenCorpus,
    fitted_sides,
)
from sklearn.base import clone

#: The measures swept: one neighbor measure and three that are exactly 1 for a
#: space against itself.
MEASURES = ("neighbors", "cca", "cka", "procrustes")
SELF_MEASURES = ("cca", "cka", "procrustes", "unitmatch")

# the sweeps here use 1 or 2 seeds, on purpose (fast): their warning that no
# value can then be flagged changed is expected
pytestmark = pytest.mark.filterwarnings("ignore:with [0-9]+ seeds?:embspace.errors.EmbspaceWarning")


@pytest.fixture(scope="module")
def ratings(ml_small: es.Ratings) -> es.Ratings:
    """ml-latest-small, users and items with >= 20 ratings (566 x 1286): small and fast."""
    return ml_small.filter(min_user_ratings=20, min_item_ratings=20)


@pytest.fixture(scope="module")
def corpus() -> TokenCorpus:
    """gensim's Lee background corpus (300 news stories), tokenized."""
    pytest.importorskip("gensim")
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        return TokenCorpus(simple_preprocess(line) for line in f)


def _matrix(r: es.Ratings) -> sp.csr_matrix:
    return r.matrix.tocsr().astype(np.float32)


# -------------------------------------------------------------------------- references
# Each checks the adapter's result against the library used directly, or against
# the maths of the decomposition.


def _ref_implicit(module: str, cls: str, extra_cols: int):
    def check(est: Any, r: es.Ratings, items: es.Embeddings, users: es.Embeddings | None) -> None:
        import importlib

        from threadpoolctl import threadpool_limits

        params = est.get_params()
        params.pop("device", None)
        params.pop("num_threads", None)
        model_cls = getattr(importlib.import_module(module), cls)
        with threadpool_limits(1, "blas"):
            model = model_cls(**params, num_threads=1)
            model.fit(_matrix(r), show_progress=False)
        f = est.factors
        assert model.item_factors.shape == (r.n_items, f + extra_cols)
        np.testing.assert_array_equal(items.vectors, model.item_factors[:, :f])
        assert users is not None
        np.testing.assert_array_equal(users.vectors, model.user_factors[:, :f])

    return check


def _ref_svd(est: Any, r: es.Ratings, items: es.Embeddings, users: es.Embeddings | None) -> None:
    # users = U S = X V: the ratings projected on the item components
    x = _matrix(r).toarray().astype(np.float64)
    assert users is not None
    np.testing.assert_allclose(users.vectors, x @ items.vectors, rtol=1e-3, atol=1e-3)
    # V has orthonormal columns
    v = items.vectors.astype(np.float64)
    np.testing.assert_allclose(v.T @ v, np.eye(v.shape[1]), atol=1e-4)


def _ref_pca(est: Any, r: es.Ratings, items: es.Embeddings, users: es.Embeddings | None) -> None:
    x = _matrix(r).toarray().astype(np.float64)
    assert users is not None
    np.testing.assert_allclose(
        users.vectors, (x - x.mean(axis=0)) @ items.vectors, rtol=1e-3, atol=1e-3
    )


def _ref_nmf(est: Any, r: es.Ratings, items: es.Embeddings, users: es.Embeddings | None) -> None:
    x = _matrix(r).toarray().astype(np.float64)
    assert users is not None
    assert (items.vectors >= 0).all() and (users.vectors >= 0).all()
    # X ~ W H: a far better fit than no model at all
    err = np.linalg.norm(x - users.vectors @ items.vectors.T)
    assert err < 0.9 * np.linalg.norm(x)


def _ref_gensim(cls_name: str):
    def check(est: Any, data: Any, items: es.Embeddings, users: es.Embeddings | None) -> None:
        import gensim.models

        params = est.get_params()
        seed = params.pop("random_state")
        model = getattr(gensim.models, cls_name)(
            sentences=list(data), seed=seed, workers=1, **params
        )
        assert users is None
        assert items.keys == list(model.wv.index_to_key)
        np.testing.assert_array_equal(items.vectors, model.wv.vectors)
        # the vocabulary is every token seen min_count times
        counts = data.counts()
        assert set(items.keys) == {t for t, c in counts.items() if c >= est.min_count}

    return check


ADAPTERS = {
    "implicit-als": (
        "implicit",
        lambda: ImplicitALS(factors=8, iterations=3),
        "regularization",
        [0.01, 1.0],
        _ref_implicit("implicit.cpu.als", "AlternatingLeastSquares", 0),
    ),
    "implicit-bpr": (
        "implicit",
        lambda: ImplicitBPR(factors=8, iterations=5),
        "learning_rate",
        [0.01, 0.05],
        _ref_implicit("implicit.cpu.bpr", "BayesianPersonalizedRanking", 1),
    ),
    "implicit-lmf": (
        "implicit",
        lambda: ImplicitLMF(factors=8, iterations=3),
        "regularization",
        [0.6, 1.0],
        _ref_implicit("implicit.cpu.lmf", "LogisticMatrixFactorization", 2),
    ),
    "sklearn-truncated-svd": (
        None,
        lambda: SklearnTruncatedSVD(n_components=8, n_iter=2),
        "n_oversamples",
        [5, 10],
        _ref_svd,
    ),
    "sklearn-nmf": (
        None,
        lambda: SklearnNMF(n_components=6, init="random", max_iter=30, tol=0.0),
        "alpha_W",
        [0.0, 0.01],
        _ref_nmf,
    ),
    "sklearn-pca": (
        None,
        lambda: SklearnPCA(n_components=8, svd_solver="randomized", iterated_power=2),
        "n_oversamples",
        [5, 10],
        _ref_pca,
    ),
    "gensim-word2vec": (
        "gensim",
        lambda: GensimWord2Vec(vector_size=12, epochs=2, min_count=10),
        "window",
        [2, 5],
        _ref_gensim("Word2Vec"),
    ),
    "gensim-fasttext": (
        "gensim",
        lambda: GensimFastText(vector_size=12, epochs=1, min_count=10, bucket=2000),
        "window",
        [2, 5],
        _ref_gensim("FastText"),
    ),
}


def test_the_registry_holds_every_adapter() -> None:
    assert set(TRAINERS) == set(ADAPTERS)
    for name, cls in TRAINERS.items():
        est = cls()
        assert "random_state" in est.get_params(), name
        assert clone(est).get_params() == est.get_params()


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_each_adapter_sweeps_with_floor_self_similarity_and_cache(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    package, make, param, values, reference = ADAPTERS[name]
    if package is not None:
        pytest.importorskip(package)
    gensim = package == "gensim"
    data = request.getfixturevalue("corpus" if gensim else "ratings")
    estimator = make()
    sweep = Sweep(
        data, estimator, param, values, seeds=2, measures=MEASURES, k=5, cache_dir=tmp_path
    )
    sweep.run(progress=False)
    assert sweep.finished and len(sweep.runs) == 4
    assert not any(r.cached for r in sweep.runs)
    table = sweep.table
    assert len(table) == len(values) * len(MEASURES)
    assert set(table["against"]) == {"reference"}
    assert table["floor"].notna().all() and table["chance"].notna().all()
    for value in values:
        for seed in sweep.seeds:
            run = sweep.embeddings(value, seed)
            # the keys are the data's: the ratings' items, or the vocabulary
            if gensim:
                assert set(run.keys) <= set(data.counts())
            else:
                assert run.keys == data.item_keys
            # a run against itself scores 1 on the measures that are not neighbor-based
            scores = es.compare(run, run, SELF_MEASURES).scores
            for m in SELF_MEASURES:
                assert scores[m] == pytest.approx(1.0, abs=1e-4), (m, scores)
            # the same seed trained again, outside the sweep: the same embeddings
            again = clone(estimator).set_params(**{param: value, "random_state": seed})
            again.fit(data)
            sides = fitted_sides(again, data)
            assert sides["items"].keys == run.keys
            np.testing.assert_array_equal(sides["items"].vectors, run.vectors)
            reference(again, data, sides["items"], sides.get("users"))
    # the seed reaches the library: distinct seeds, distinct spaces
    first, second = (sweep.embeddings(values[0], s).vectors for s in sweep.seeds)
    assert not np.array_equal(first, second)
    # a rerun hits the cache for every run and gives the same table
    rerun = Sweep(
        data, make(), param, values, seeds=2, measures=MEASURES, k=5, cache_dir=tmp_path
    ).run(progress=False)
    assert [r.cached for r in rerun.runs] == [True] * 4
    pd.testing.assert_frame_equal(rerun.table, table)
    for value in values:
        np.testing.assert_array_equal(
            rerun.embeddings(value, 1).vectors, sweep.embeddings(value, 1).vectors
        )


def test_implicit_als_does_not_depend_on_the_thread_count(ratings: es.Ratings) -> None:
    pytest.importorskip("implicit")
    one = ImplicitALS(factors=8, iterations=3, random_state=4, num_threads=1).fit(ratings)
    two = ImplicitALS(factors=8, iterations=3, random_state=4, num_threads=2).fit(ratings)
    np.testing.assert_array_equal(one.item_embeddings_.vectors, two.item_embeddings_.vectors)
    np.testing.assert_array_equal(one.user_embeddings_.vectors, two.user_embeddings_.vectors)
    # and num_threads is not part of the cache key
    cache = EmbeddingCache("unused")
    assert (
        cache.key(ratings, ImplicitALS(num_threads=1, random_state=0), 0).digest
        == cache.key(ratings, ImplicitALS(num_threads=2, random_state=0), 0).digest
    )


_WORD2VEC_IN_A_CHILD = """
import json, sys
from embspace.trainers import GensimWord2Vec, TokenCorpus
corpus = TokenCorpus(json.loads(sys.stdin.read()))
model = GensimWord2Vec(vector_size=8, epochs=1, min_count=10, random_state=3).fit(corpus)
print(json.dumps({"keys": model.embeddings_.keys, "vectors": model.embeddings_.vectors.tolist()}))
"""


def test_word2vec_is_the_same_in_another_process_whatever_the_hash_seed(
    corpus: TokenCorpus,
) -> None:
    import os

    here = GensimWord2Vec(vector_size=8, epochs=1, min_count=10, random_state=3).fit(corpus)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", _WORD2VEC_IN_A_CHILD],
        input=json.dumps(corpus.sentences),
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    child = json.loads(out.stdout)
    assert child["keys"] == here.embeddings_.keys
    np.testing.assert_array_equal(
        np.asarray(child["vectors"], dtype=np.float32), here.embeddings_.vectors
    )


# -------------------------------------------------------------------------- functions


def _random_space(data: es.Ratings, *, seed: int | None, d: int = 4, scale: float = 1.0):
    """A training function: a random space of the ratings' items (and users)."""
    rng = np.random.default_rng(seed)
    items = es.Embeddings(data.item_keys, rng.normal(size=(data.n_items, d)) * scale)
    users = es.Embeddings(data.user_keys, rng.normal(size=(data.n_users, d)))
    return {"items": items, "users": users}


def test_a_plain_function_sweeps_like_an_estimator(ratings: es.Ratings, tmp_path: Path) -> None:
    sweep = Sweep(
        ratings,
        _random_space,
        "d",
        [3, 6],
        seeds=2,
        measures=("neighbors", "cka"),
        k=5,
        cache_dir=tmp_path,
        params={"scale": 2.0},
    )
    assert isinstance(sweep.estimator, FunctionTrainer)
    assert sweep.estimator.get_params()["scale"] == 2.0
    sweep.run(progress=False)
    # the saved parameters name the function (no memory address, the same in every process)
    assert sweep.to_dict()["estimator_params"]["function"] == f"{__name__}._random_space"
    for d in (3, 6):
        for seed in sweep.seeds:
            want = _random_space(ratings, seed=seed, d=d, scale=2.0)
            got = sweep.embeddings(d, seed)
            assert got.keys == want["items"].keys
            np.testing.assert_array_equal(got.vectors, want["items"].vectors)
    # the users side is there too
    users = Sweep(
        ratings,
        _random_space,
        "d",
        [3, 6],
        seeds=2,
        measures=("cka",),
        entities="users",
        cache_dir=tmp_path,
        params={"scale": 2.0},
    ).run(progress=False)
    assert [r.cached for r in users.runs] == [True] * 4
    np.testing.assert_array_equal(
        users.embeddings(3, 0).vectors,
        _random_space(ratings, seed=0, d=3, scale=2.0)["users"].vectors,
    )
    # the floor of independent random spaces is their similarity; a rerun is all cached
    again = Sweep(
        ratings,
        _random_space,
        "d",
        [3, 6],
        seeds=2,
        measures=("neighbors", "cka"),
        k=5,
        cache_dir=tmp_path,
        params={"scale": 2.0},
    ).run(progress=False)
    assert [r.cached for r in again.runs] == [True] * 4
    pd.testing.assert_frame_equal(again.table, sweep.table)
    # another scale is another training
    other = Sweep(
        ratings,
        _random_space,
        "d",
        [3, 6],
        seeds=2,
        measures=("cka",),
        cache_dir=tmp_path,
        params={"scale": 3.0},
    ).run(progress=False)
    assert not any(r.cached for r in other.runs)


def test_a_function_returning_one_side_gives_items_only(ratings: es.Ratings) -> None:
    def items_only(data, *, seed, d=3):
        rng = np.random.default_rng(seed)
        return es.Embeddings(data.item_keys, rng.normal(size=(data.n_items, d)))

    est = FunctionTrainer(items_only, random_state=1).fit(ratings)
    assert est.user_embeddings_ is None
    assert set(fitted_sides(est, ratings)) == {"items"}
    sweep = Sweep(
        ratings,
        items_only,
        "d",
        [2, 3],
        seeds=1,
        measures=("cka",),
        entities="users",
        cache_dir=False,
    )
    with pytest.raises(InvalidParameterError, match="no users side"):
        sweep.run(progress=False)


# -------------------------------------------------------------------------- cache keys


def _compile(source: str) -> Any:
    """A function named ``train`` made from ``source`` (no file: the key falls back
    on the bytecode)."""
    space: dict[str, Any] = {"np": np, "es": es}
    exec(textwrap.dedent(source), space)
    return space["train"]


def test_the_cache_key_changes_when_the_function_code_changes(ratings: es.Ratings) -> None:
    cache = EmbeddingCache("unused")

    def key(function: Any, **params: Any) -> str:
        return cache.key(ratings, FunctionTrainer(function, random_state=0, **params), 0).digest

    a = _compile("def train(data, *, seed, d=3):\n    return d + 1\n")
    a_again = _compile("def train(data, *, seed, d=3):\n    return d + 1\n")
    b = _compile("def train(data, *, seed, d=3):\n    return d + 2\n")
    assert a.__qualname__ == b.__qualname__ == "train"
    assert key(a) == key(a) == key(a_again)
    assert key(a) != key(b)
    # a function read from a file is keyed by its source
    assert key(_random_space) == key(_random_space)
    assert key(_random_space) != key(_random_space, d=5)
    ident = function_identity(_random_space)
    assert ident["function"].endswith("test_trainers._random_space")
    import hashlib
    import inspect

    source = inspect.getsource(_random_space).encode()
    assert ident["code"] == hashlib.sha256(b"source:" + source).hexdigest()

    # the values a closure captured are part of it
    def make(offset: float) -> Any:
        def train(data, *, seed, d=3):
            return offset

        return train

    assert key(make(1.0)) == key(make(1.0)) != key(make(2.0))


def test_the_cache_key_changes_with_the_third_party_version(
    ratings: es.Ratings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sklearn

    cache = EmbeddingCache("unused")
    est = SklearnTruncatedSVD(random_state=0)
    before = cache.key(ratings, est, 0)
    assert json.loads(before.code or "{}") == {
        "class": "embspace.trainers.sklearn_models.SklearnTruncatedSVD",
        "package": "sklearn",
        "version": sklearn.__version__,
    }
    monkeypatch.setattr(sklearn, "__version__", "0.0.1")
    after = cache.key(ratings, est, 0)
    assert after.digest != before.digest
    # embspace's own estimators have no code field: their keys are unchanged
    assert cache.key(ratings, es.WALS(random_state=0), 0).code is None
    assert "code" not in cache.key(ratings, es.WALS(random_state=0), 0).identity()


def test_a_third_party_class_is_keyed_by_its_code() -> None:
    def model(body: str) -> Any:
        cls = _compile(
            "from sklearn.base import BaseEstimator\n"
            "class Model(BaseEstimator):\n    def __init__(self, d=2): self.d = d\n"
            f"    def fit(self, data): {body}\n"
            "train = Model\n"
        )
        return cls()

    # no source to read (made by exec): keyed by its methods' bytecode
    a, a_again, b = model("return 1"), model("return 1"), model("return 2")
    ident = code_identity(a)
    assert ident is not None and ident["class"].endswith("Model")
    assert ident == code_identity(a_again) != code_identity(b)
    cache = EmbeddingCache("unused")
    corpus = TokenCorpus([["a"]])
    assert cache.key(corpus, a, 0).digest != cache.key(corpus, b, 0).digest
    # a class read from a file: by its source
    import hashlib
    import inspect

    class Local:
        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {}

    want = hashlib.sha256(b"source:" + inspect.getsource(Local).encode()).hexdigest()
    local = code_identity(Local())
    assert local is not None and local["source"] == want and local["package"] == "test_trainers"
    mine = code_identity(SklearnNMF())
    assert mine is not None and mine["package"] == "sklearn"


# -------------------------------------------------------------------------- errors


def test_typed_errors(ratings: es.Ratings) -> None:
    def no_seed(data, d=3):
        return None

    def no_data(*, seed):
        return None

    with pytest.raises(InvalidParameterError, match="keyword parameter 'seed'"):
        Sweep(ratings, no_seed, "d", [1, 2], cache_dir=False)
    with pytest.raises(InvalidParameterError, match="first positional parameter"):
        FunctionTrainer(no_data)
    with pytest.raises(InvalidParameterError, match="has no parameter 'width'"):
        Sweep(ratings, _random_space, "d", [1, 2], cache_dir=False, params={"width": 3})
    with pytest.raises(InvalidParameterError, match="is not a parameter"):
        Sweep(ratings, _random_space, "width", [1, 2], cache_dir=False)

    def needs_d(data, *, seed, d):
        return None

    with pytest.raises(InvalidParameterError, match="needs a value for 'd'"):
        FunctionTrainer(needs_d)

    def wrong_result(data, *, seed, d=3):
        return np.zeros((3, d))

    with pytest.raises(InvalidParameterError, match="must return Embeddings"):
        FunctionTrainer(wrong_result, random_state=0).fit(ratings)

    class NoEmbeddings:
        def __init__(self, d=2, random_state=None):
            self.d = d
            self.random_state = random_state

        def get_params(self, deep=True):
            return {"d": self.d, "random_state": self.random_state}

        def set_params(self, **p):
            for k, v in p.items():
                setattr(self, k, v)
            return self

        def fit(self, data):
            self.components_ = np.zeros((2, 2))
            return self

    sweep = Sweep(ratings, NoEmbeddings(), "d", [2, 3], seeds=1, measures=("cka",), cache_dir=False)
    with pytest.raises(NotFittedError, match="left no embeddings"):
        sweep.run(progress=False)
    with pytest.raises(InvalidParameterError, match="scikit-learn style"):
        Sweep(ratings, object(), "d", [1, 2], cache_dir=False)
    with pytest.raises(InvalidParameterError, match="Ratings, a token corpus"):
        Sweep(object(), ImplicitALS(), "factors", [1, 2], cache_dir=False)
    with pytest.raises(InvalidParameterError, match="not a string"):
        Sweep([["a", 1]], GensimWord2Vec(), "window", [1, 2], cache_dir=False)
    with pytest.raises(InvalidParameterError, match="list of string tokens"):
        TokenCorpus(["a sentence as a string"])
    # a one-sided trainer has items only
    corpus = TokenCorpus([["a", "b", "c"]] * 5)
    with pytest.raises(InvalidParameterError, match="items only"):
        Sweep(corpus, GensimWord2Vec(), "window", [1, 2], entities="users", cache_dir=False)
    with pytest.raises(InvalidParameterError, match="gauge='balanced'"):
        Sweep(corpus, GensimWord2Vec(), "window", [1, 2], gauge="balanced", cache_dir=False)
    # k is checked against the vocabulary before any training
    with pytest.raises(InvalidParameterError, match="k = 10 neighbors needs more than the 3"):
        Sweep(corpus, GensimWord2Vec(min_count=1), "window", [1, 2], k=10, cache_dir=False)
    # a Ratings trainer refuses a corpus, and the other way round
    with pytest.raises(InvalidParameterError, match="trains on an embspace Ratings"):
        SklearnTruncatedSVD().fit(corpus)
    with pytest.raises(InvalidParameterError, match="token corpus"):
        GensimWord2Vec().fit(ratings)

    class ArrayModel:
        """Arrays with the wrong number of rows for the ratings."""

        def get_params(self, deep=True):
            return {}

        def fit(self, data):
            self.item_embeddings_ = np.zeros((3, 2))
            return self

    with pytest.raises(ShapeMismatchError, match="ratings have 1286 items"):
        fitted_sides(ArrayModel().fit(ratings), ratings)


def test_arrays_get_their_keys_from_the_ratings_or_the_vocabulary(ratings: es.Ratings) -> None:
    class Model:
        def fit(self, data):
            self.item_embeddings_ = np.arange(ratings.n_items * 2.0).reshape(-1, 2)
            self.user_embeddings_ = es.Embeddings(ratings.user_keys, np.ones((ratings.n_users, 2)))
            return self

    sides = fitted_sides(Model().fit(ratings), ratings)
    assert sides["items"].keys == ratings.item_keys
    np.testing.assert_array_equal(sides["items"].vectors[1], [2.0, 3.0])

    class Words:
        def fit(self, data):
            self.embeddings_ = np.eye(3)
            self.vocabulary_ = {"b": 1, "a": 0, "c": 2}
            return self

    words = fitted_sides(Words().fit(None), None)
    assert list(words) == ["items"] and words["items"].keys == ["a", "b", "c"]


def test_token_corpus_fingerprint() -> None:
    a = TokenCorpus([["the", "cat"], ["sat"]])
    assert a.fingerprint == TokenCorpus(iter([["the", "cat"], ["sat"]])).fingerprint
    others = [
        TokenCorpus([["the"], ["cat", "sat"]]),  # the same tokens cut otherwise
        TokenCorpus([["the", "cat", "sat"]]),
        TokenCorpus([["the", "cat"], ["sit"]]),
        TokenCorpus([["thec", "at"], ["sat"]]),
    ]
    assert len({a.fingerprint, *(o.fingerprint for o in others)}) == 5
    assert a.counts() == {"the": 1, "cat": 1, "sat": 1}


def test_a_one_sided_cache_entry_round_trips(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    corpus = TokenCorpus([["a", "b"]])
    key = cache.key(corpus, GensimWord2Vec(random_state=0), 0)
    words = es.Embeddings(["a", "b"], np.arange(4.0).reshape(2, 2))
    cache.put(key, None, words)
    entry = cache.lookup(key)
    assert entry is not None and set(entry.sides) == {"items"}
    np.testing.assert_array_equal(entry.items.vectors, words.vectors)
    with pytest.raises(InvalidParameterError, match="no users side"):
        entry.side("users")
    with pytest.raises(InvalidParameterError, match="one of them may be None"):
        cache.put(key, None, None)


def test_the_dimension_parameters_of_the_adapters_are_checked_before_training() -> None:
    from embspace.errors import ShapeMismatchError as Mismatch

    corpus = TokenCorpus([["a", "b", "c", "d"]] * 5)
    for est, param in (
        (GensimWord2Vec(min_count=1), "vector_size"),
        (SklearnTruncatedSVD(), "n_components"),
        (ImplicitALS(), "factors"),
    ):
        # unitmatch needs the same d on both sides: named, it is refused at once
        with pytest.raises(Mismatch):
            Sweep(corpus, est, param, [2, 3], measures=("unitmatch",), k=2, cache_dir=False)
        # by default it is skipped, with a warning
        with pytest.warns(es.errors.EmbspaceWarning, match="'unitmatch' skipped"):
            sweep = Sweep(corpus, est, param, [2, 3], seeds=4, k=2, cache_dir=False)
        assert "unitmatch" not in sweep.measures


def test_against_takes_any_fitted_trainer(ratings: es.Ratings) -> None:
    sweep = Sweep(
        ratings, _random_space, "d", [3, 4], seeds=2, measures=("cka",), cache_dir=False
    ).run(progress=False)
    svd = SklearnTruncatedSVD(n_components=4, random_state=0).fit(ratings)
    rows = sweep.against(svd, name="tsvd")
    assert len(rows) == 2 and set(rows["against"]) == {"tsvd"}
    for value, got in zip(rows["value"], rows["similarity"], strict=True):
        want = np.mean(
            [
                es.compare(sweep.embeddings(value, s), svd.item_embeddings_, ("cka",)).scores["cka"]
                for s in sweep.seeds
            ]
        )
        assert got == pytest.approx(want, rel=1e-9)
    with pytest.raises(InvalidParameterError, match="against\\(\\) takes Embeddings"):
        sweep.against(SklearnTruncatedSVD(), name="unfitted")


def test_function_identity_of_partials_methods_and_recursive_closures() -> None:
    import functools

    a = function_identity(functools.partial(_random_space, d=3))
    assert a == function_identity(functools.partial(_random_space, d=3))
    assert a != function_identity(functools.partial(_random_space, d=4))

    def outer() -> Any:
        def walk(n: int) -> int:
            return 0 if n == 0 else walk(n - 1)

        return walk

    ident = function_identity(outer())
    assert ident["closure"] == {"walk": "<itself>"}
    est = SklearnNMF(n_components=3)
    method = function_identity(est.fit)
    assert method["self"]["params"]["n_components"] == 3
    assert method != function_identity(SklearnNMF(n_components=4).fit)


def test_the_command_line_sweeps_an_adapter(tiny: es.Ratings) -> None:
    pytest.importorskip("implicit")
    args = [
        "sweep", "-e", "implicit-als", "-d", "synthetic:tiny", "--set", "factors=4",
        "--set", "iterations=2", "--param", "regularization", "--values", "0.01,1",
        "--seeds", "2", "--measures", "neighbors,cka", "--json", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "embspace", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["estimator"] == "ImplicitALS"
    assert payload["estimator_params"]["factors"] == 4
    cli_table = pd.DataFrame(payload["table"])
    # the same sweep in Python reads every run from the cache the command line filled
    sweep = Sweep(
        tiny,
        ImplicitALS(factors=4, iterations=2, random_state=0),
        "regularization",
        [0.01, 1.0],
        seeds=2,
        measures=("neighbors", "cka"),
    ).run(progress=False)
    assert [r.cached for r in sweep.runs] == [True] * 4
    np.testing.assert_allclose(cli_table["similarity"], sweep.table["similarity"])
    np.testing.assert_allclose(cli_table["floor"], sweep.table["floor"])


def test_implicit_device(tiny: es.Ratings) -> None:
    pytest.importorskip("implicit")
    import implicit.gpu
    from embspace.errors import DeviceUnavailableError

    with pytest.raises(InvalidParameterError, match="device must be 'cpu' or 'gpu'"):
        ImplicitALS(device="tpu").fit(tiny)
    if implicit.gpu.HAS_CUDA:  # implicit built with CUDA, and a GPU
        fitted = ImplicitALS(factors=4, iterations=2, random_state=0, device="gpu").fit(tiny)
        assert fitted.item_embeddings_.vectors.shape == (tiny.n_items, 4)
    else:
        with pytest.raises(DeviceUnavailableError, match="use device='cpu'"):
            ImplicitALS(device="gpu").fit(tiny)
        with pytest.raises(DeviceUnavailableError, match="use device='cpu'"):
            ImplicitBPR(device="gpu").fit(tiny)
