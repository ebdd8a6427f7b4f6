"""Atomic writes: all or nothing, nothing left beside the target, and the
permissions of a plainly opened file (not mkstemp's 0o600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from embspace import Embeddings
from embspace._atomic import atomic_writer, write_atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_files_follow_the_umask(tmp_path, umask_027):
    assert _mode(write_atomic(tmp_path / "a.csv", b"x\n")) == 0o640
    emb = Embeddings(["a", "b"], np.eye(2, dtype=np.float32))
    assert _mode(emb.save(tmp_path / "e.npz")) == 0o640
    os.umask(0o022)
    assert _mode(write_atomic(tmp_path / "a.csv", b"y\n")) == 0o644
    assert (tmp_path / "a.csv").read_bytes() == b"y\n"


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_writer(target) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin"]


def test_a_failed_check_cancels_the_write(tmp_path):
    target = tmp_path / "t.bin"

    def reject() -> None:
        assert target.exists() is False  # the data is not in place before the check
        raise ValueError("bad digest")

    with pytest.raises(ValueError, match="bad digest"), atomic_writer(target, check=reject) as fh:
        fh.write(b"new")
    assert list(tmp_path.iterdir()) == []
