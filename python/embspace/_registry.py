"""The one registry shape of every pluggable part.

A :class:`Registry` maps names to entries (measures, estimators, WALS and k-NN
backends, ...). It reads like a dict; :meth:`Registry.register` adds an entry
(refusing to replace one unless asked) and :meth:`Registry.lookup` raises an
:class:`~embspace.errors.InvalidParameterError` that lists the known names.
A :class:`DeviceRegistry` is keyed by device (``"cpu"``, ``"gpu"``) and
resolves ``device="auto"`` once, falling back to the CPU entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from .device import module_for
from .errors import DeviceUnavailableError, InvalidParameterError

__all__ = ["DeviceRegistry", "Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind (``kind`` names it in error messages), in the
    order they were registered."""

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, entry in (entries or {}).items():
            self.register(name, entry)

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name`` and return it. A name that is already
        registered is refused unless ``replace=True``."""
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(
                f"a {self.kind} name must be a non-empty string, got {name!r}"
            )
        if name in self._entries and not replace:
            raise InvalidParameterError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T | None:
        """Remove ``name`` and return its entry (None when it was not registered),
        e.g. to take a plug-in out again after a test."""
        return self._entries.pop(name, None)

    def lookup(self, name: str) -> T:
        """The entry ``name``; an :class:`InvalidParameterError` lists the known
        names otherwise. (``get`` keeps the dict meaning: None when absent.)"""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise InvalidParameterError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}"
            ) from None

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"


class DeviceRegistry(Registry[T]):
    """Entries keyed by the resolved device, ``"cpu"`` or ``"gpu"``."""

    DEVICES = ("cpu", "gpu")

    def register(self, name: str, entry: T, *, replace: bool = True) -> T:
        """Make ``entry`` serve ``device=name`` (replacing the current one by
        default: a backend plugs in over the built-in one)."""
        if name not in self.DEVICES:
            raise InvalidParameterError(f"device must be 'cpu' or 'gpu', got {name!r}")
        return super().register(name, entry, replace=replace)

    def for_device(self, device: str) -> T:
        """The entry for ``device`` (``"cpu"``, ``"gpu"`` or ``"auto"``), the
        device resolved once by :func:`embspace.device.module_for`. ``"auto"``
        falls back to the CPU entry when the resolved device has none."""
        resolved = module_for(device)[0]
        entry = self._entries.get(resolved)
        if entry is None and device == "auto":
            entry = self._entries.get("cpu")
        if entry is None:
            raise DeviceUnavailableError(
                f"no {self.kind} is available for device {resolved!r}; use device='cpu'"
            )
        return entry
