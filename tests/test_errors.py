"""Typed errors: each an EmbspaceError and its builtin; Rust errors map onto them."""

from __future__ import annotations

import numpy as np
import pytest
from embspace import _core, errors

BUILTINS = {
    "InvalidParameterError": ValueError,
    "ShapeMismatchError": ValueError,
    "NonFiniteError": ValueError,
    "DuplicateEntryError": ValueError,
    "IndexOutOfRangeError": IndexError,
    "NumericalError": ArithmeticError,
    "NoSharedKeysError": ValueError,
    "EntityNotFoundError": KeyError,
    "AmbiguousQueryError": KeyError,
    "UnknownDatasetError": KeyError,
    "DatasetFormatError": ValueError,
    "MissingFileError": FileNotFoundError,
    "DownloadError": OSError,
    "ChecksumError": OSError,
    "UnsafeArchiveError": ValueError,
    "NotFittedError": AttributeError,
    "DeviceUnavailableError": RuntimeError,
}


def test_every_error_is_typed_twice():
    assert set(errors.__all__) == set(BUILTINS) | {"EmbspaceError"}
    for name, builtin in BUILTINS.items():
        cls = getattr(errors, name)
        assert issubclass(cls, errors.EmbspaceError) and issubclass(cls, builtin), name


def test_key_errors_print_plainly():
    e = errors.EntityNotFoundError("no movie 'Heat'", suggestions=["Heat (1995)"])
    assert str(e) == "no movie 'Heat'" and e.suggestions == ["Heat (1995)"]
    a = errors.AmbiguousQueryError("two matches", candidates=["A", "B"])
    assert str(a) == "two matches" and a.candidates == ["A", "B"]
    assert str(errors.UnknownDatasetError("unknown dataset 'x'")) == "unknown dataset 'x'"
    assert errors.EntityNotFoundError("m").suggestions == []


def _arrays(rows, cols, values):
    return (
        np.asarray(rows, dtype=np.int64),
        np.asarray(cols, dtype=np.int64),
        np.asarray(values, dtype=np.float32),
    )


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((2, 2, *_arrays([0, 2], [0, 0], [1, 1])), errors.IndexOutOfRangeError, "row index 2"),
        ((2, 2, *_arrays([0, -1], [0, 0], [1, 1])), errors.IndexOutOfRangeError, "row index -1"),
        ((2, 2, *_arrays([0, 1], [0, 5], [1, 1])), errors.IndexOutOfRangeError, "column index 5"),
        ((2, 2, *_arrays([0, 1], [0], [1, 1])), errors.ShapeMismatchError, "same length"),
        ((2, 2, *_arrays([0, 1], [0, 1], [1, np.nan])), errors.NonFiniteError, "not finite"),
        ((2, 2, *_arrays([1, 1], [0, 0], [1, 2])), errors.DuplicateEntryError, "row 1, column 0"),
    ],
)
def test_rust_errors_map_to_typed_errors(args, error, message):
    with pytest.raises(error, match=message):
        _core.csr_from_coo(*args)


def test_rust_policy_and_dtype_errors():
    with pytest.raises(errors.InvalidParameterError, match="unknown duplicates policy"):
        _core.csr_from_coo(1, 1, *_arrays([0], [0], [1]), "median")
    with pytest.raises(TypeError):
        _core.csr_from_coo(1, 1, np.zeros(1, dtype=np.int32), *_arrays([0], [0], [1])[1:])


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        (([0, 2], [1, 0], [1.0, 1.0]), errors.DuplicateEntryError),  # unsorted columns
        (([0, 2], [0, 0], [1.0, 1.0]), errors.DuplicateEntryError),  # repeated column
        (([0, 2], [0, 3], [1.0, 1.0]), errors.IndexOutOfRangeError),
        (([0, 3], [0, 1], [1.0, 1.0]), errors.ShapeMismatchError),
        (([0, 1, 2], [0, 1], [1.0, 1.0]), errors.ShapeMismatchError),  # indptr length
        (([0, 2], [0, 1], [1.0, np.inf]), errors.NonFiniteError),
    ],
)
def test_transpose_validates_its_input(parts, error):
    indptr, indices, data = parts
    with pytest.raises(error):
        _core.csr_transpose(
            1,
            2,
            np.asarray(indptr, dtype=np.int64),
            np.asarray(indices, dtype=np.int32),
            np.asarray(data, dtype=np.float32),
        )


def test_a_missing_file_is_both_a_format_error_and_file_not_found(tmp_path):
    from embspace import Embeddings
    from embspace.datasets import load_ratings

    for call in (
        lambda: Embeddings.load(tmp_path / "absent.npz"),
        lambda: load_ratings(tmp_path / "absent.csv"),
    ):
        with pytest.raises(errors.MissingFileError, match="absent") as info:
            call()
        assert isinstance(info.value, errors.DatasetFormatError)
        assert isinstance(info.value, FileNotFoundError)
