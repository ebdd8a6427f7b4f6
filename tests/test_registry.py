"""The one registry shape (embspace._registry): Registry and DeviceRegistry."""

from __future__ import annotations

import numpy as np
import pytest
from embspace import _registry
from embspace._registry import DeviceRegistry, Registry
from embspace.errors import DeviceUnavailableError, InvalidParameterError


def test_registry_reads_like_a_dict_in_registration_order() -> None:
    reg: Registry[int] = Registry("thing", {"b": 2, "a": 1})
    assert list(reg) == ["b", "a"] and len(reg) == 2 and reg["a"] == 1 and "b" in reg
    assert reg.get("zzz") is None and reg.get("a") == 1  # Mapping.get keeps its meaning
    with pytest.raises(KeyError):
        reg["zzz"]
    assert reg.register("c", 3) == 3 and list(reg) == ["b", "a", "c"]


def test_registry_refuses_repeats_and_bad_names_and_lists_the_known_ones() -> None:
    reg: Registry[int] = Registry("thing", {"a": 1})
    with pytest.raises(InvalidParameterError, match="already registered"):
        reg.register("a", 5)
    assert reg.register("a", 5, replace=True) == 5 and reg["a"] == 5
    for bad in ("", None, 3):
        with pytest.raises(InvalidParameterError, match="non-empty string"):
            reg.register(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"unknown thing 'x'; known: a"):
        reg.lookup("x")
    assert reg.lookup("a") == 5
    assert reg.unregister("a") == 5 and "a" not in reg


def test_device_registry_resolves_the_device_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reg: DeviceRegistry[str] = DeviceRegistry("backend", {"cpu": "rust"})
    with pytest.raises(InvalidParameterError, match="'cpu' or 'gpu'"):
        reg.register("tpu", "x")
    assert reg.for_device("cpu") == "rust"
    calls = []

    def resolve(device: str) -> tuple[str, object]:
        calls.append(device)
        return ("gpu" if device in ("gpu", "auto") else device), np

    monkeypatch.setattr(_registry, "module_for", resolve)
    assert reg.for_device("auto") == "rust"  # "auto" falls back to the CPU entry
    with pytest.raises(DeviceUnavailableError, match="no backend is available for device 'gpu'"):
        reg.for_device("gpu")
    reg.register("gpu", "cupy")  # a backend plugs in over the built-in one by default
    assert reg.for_device("gpu") == "cupy" and reg.for_device("auto") == "cupy"
    assert calls == ["auto", "gpu", "gpu", "auto"]
