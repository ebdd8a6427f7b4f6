"""Typed exceptions of embspace.

Every error that bad input can cause is one of these classes. Each derives from
:class:`EmbspaceError` *and* from the builtin a caller would expect
(``ValueError``, ``KeyError``, ``OSError``, ...), so both ``except EmbspaceError``
and ``except ValueError`` work. The Rust core maps its errors onto the classes of
the same kind here (see ``rust/py/src/errors.rs``).
"""

from __future__ import annotations

__all__ = [
    "AmbiguousQueryError",
    "ChecksumError",
    "DatasetFormatError",
    "DeviceUnavailableError",
    "DownloadError",
    "DuplicateEntryError",
    "EmbspaceError",
    "EntityNotFoundError",
    "IndexOutOfRangeError",
    "InvalidParameterError",
    "MissingFileError",
    "NoSharedKeysError",
    "NonFiniteError",
    "NotFittedError",
    "NumericalError",
    "ShapeMismatchError",
    "UnknownDatasetError",
    "UnsafeArchiveError",
]


class EmbspaceError(Exception):
    """Base class of every error raised by embspace on bad input."""


class EmbspaceWarning(UserWarning):
    """A result is computed but deserves attention (n <= d for CCA, rank-deficient
    inputs, fewer shared keys than entities, ...). A warning, not an error: it is
    importable from here but not listed in ``__all__``, which lists the errors."""


class _MessageKeyError(KeyError):
    """A KeyError whose ``str()`` is the plain message (KeyError quotes it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidParameterError(EmbspaceError, ValueError):
    """A parameter is outside its documented range (negative weight, k too large, ...)."""


class ShapeMismatchError(EmbspaceError, ValueError):
    """Arrays whose shapes must agree do not (different d, wrong rank, ...)."""


class NonFiniteError(EmbspaceError, ValueError):
    """A value that must be finite is NaN or infinite."""


class DuplicateEntryError(EmbspaceError, ValueError):
    """The same (user, item) pair, or the same key, occurs more than once."""


class IndexOutOfRangeError(EmbspaceError, IndexError):
    """An index points outside its dimension."""


class NumericalError(EmbspaceError, ArithmeticError):
    """A computation failed numerically (a system that is not positive definite)."""


class NoSharedKeysError(EmbspaceError, ValueError):
    """Two embeddings that must be compared have no key in common."""


class EntityNotFoundError(EmbspaceError, _MessageKeyError):
    """A query (key, index or title) matches no entity. ``suggestions`` lists
    close titles and ``rows`` their rows (same order; empty when unknown)."""

    def __init__(
        self, message: str, suggestions: list[str] | None = None, rows: list[int] | None = None
    ) -> None:
        super().__init__(message)
        self.suggestions = list(suggestions or [])
        self.rows = list(rows or [])


class AmbiguousQueryError(EmbspaceError, _MessageKeyError):
    """A title query matches several entities. ``candidates`` lists them and
    ``rows`` their rows (same order; empty when unknown)."""

    def __init__(
        self, message: str, candidates: list[str] | None = None, rows: list[int] | None = None
    ) -> None:
        super().__init__(message)
        self.candidates = list(candidates or [])
        self.rows = list(rows or [])


class UnknownDatasetError(EmbspaceError, _MessageKeyError):
    """A dataset name is neither in the registry nor an existing path."""


class DatasetFormatError(EmbspaceError, ValueError):
    """A file or folder is not in any ratings format embspace can read."""


class MissingFileError(DatasetFormatError, FileNotFoundError):
    """A file or folder given by path does not exist (also a ``FileNotFoundError``)."""


class DownloadError(EmbspaceError, OSError):
    """A download failed or was cut short; nothing was written to the cache."""


class ChecksumError(EmbspaceError, OSError):
    """A downloaded or cached file has the wrong size or sha256."""


class UnsafeArchiveError(EmbspaceError, ValueError):
    """An archive holds absolute paths, ``..`` members, links, or expands past the size bound."""


class NotFittedError(EmbspaceError, AttributeError):
    """A fitted attribute was read before ``fit`` was called."""


class DeviceUnavailableError(EmbspaceError, RuntimeError):
    """``device="gpu"`` was asked for but CuPy or a CUDA device is missing."""


def os_error_text(exc: OSError) -> str:
    """One line for an ``OSError``: ``"No space left on device: /path"`` when
    it carries an errno text and a file name, else its message (not in
    ``__all__``: a helper of the CLI and the cache, not an error class)."""
    if exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        also = f" -> {exc.filename2}" if getattr(exc, "filename2", None) else ""
        return f"{exc.strerror}{where}{also}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
