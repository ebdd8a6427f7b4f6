"""Safe zip extraction, member by member."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from embspace.datasets.archive import check_archive, extract_archive
from embspace.errors import DatasetFormatError, UnsafeArchiveError


def _write_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _special(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def _listing(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_single_top_folder_becomes_the_destination(tmp_path):
    archive = _write_zip(
        tmp_path / "a.zip",
        [("top/", b""), ("top/x.csv", b"1,2\n"), ("top/sub/y.txt", b"y"), ("__MACOSX/._x", b"")],
    )
    dest = extract_archive(archive, tmp_path / "cache" / "ds")
    assert _listing(dest) == {"x.csv": b"1,2\n", "sub/y.txt": b"y"}
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ds"]  # no temp left


def test_flat_archive_content_becomes_the_destination(tmp_path):
    archive = _write_zip(tmp_path / "a.zip", [("x.csv", b"1"), ("y.csv", b"2")])
    dest = extract_archive(archive, tmp_path / "out")
    assert _listing(dest) == {"x.csv": b"1", "y.csv": b"2"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x", r"\.\."),
        ("a/../../x", r"\.\."),
        ("a\\..\\..\\x", r"\.\."),
        ("/etc/x", "absolute"),
        ("\\x", "absolute"),
        ("C:\\x", "absolute"),
        ("C:x", "absolute"),
    ],
)
def test_escaping_names_are_refused(tmp_path, name, message):
    archive = _write_zip(tmp_path / "a.zip", [("ok.csv", b"1"), (name, b"x")])
    with zipfile.ZipFile(archive) as zf:
        assert name.replace("\\", "/") in [n.replace("\\", "/") for n in zf.namelist()]
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFIFO | 0o644, "not a regular file"),
        (stat.S_IFCHR | 0o644, "not a regular file"),
    ],
)
def test_links_and_special_members_are_refused(tmp_path, mode, message):
    archive = _write_zip(tmp_path / "a.zip", [("ok.csv", b"1"), (_special("bad", mode), b"/x")])
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_repeated_names_are_refused(tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = _write_zip(tmp_path / "a.zip", [("a.csv", b"1"), ("a.csv", b"2")])
    with pytest.raises(UnsafeArchiveError, match="more than once"):
        extract_archive(archive, tmp_path / "out")


def test_total_size_bound(tmp_path):
    archive = _write_zip(tmp_path / "a.zip", [("a.csv", b"1" * 600), ("b.csv", b"2" * 600)])
    with pytest.raises(UnsafeArchiveError, match="more than 1,000 bytes"):
        extract_archive(archive, tmp_path / "out", max_total_bytes=1_000)
    assert not (tmp_path / "out").exists()
    assert _listing(extract_archive(archive, tmp_path / "out", max_total_bytes=1_200)) == {
        "a.csv": b"1" * 600,
        "b.csv": b"2" * 600,
    }


def test_compression_ratio_bound(tmp_path):
    bomb = b"\0" * (8 << 20)
    archive = _write_zip(tmp_path / "a.zip", [("bomb.bin", bomb)])
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("bomb.bin")
        assert info.file_size / info.compress_size > 500  # it really is a bomb
        with pytest.raises(UnsafeArchiveError, match="expands"):
            check_archive(zf)
        # the same archive passes under a looser ratio bound
        assert len(check_archive(zf, max_ratio=10_000)) == 1
    with pytest.raises(UnsafeArchiveError, match="bound"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # small members may compress arbitrarily well
    small = _write_zip(tmp_path / "s.zip", [("zeros.txt", b"\0" * 4096)])
    assert (extract_archive(small, tmp_path / "small") / "zeros.txt").stat().st_size == 4096


def test_member_count_bound(tmp_path):
    archive = _write_zip(tmp_path / "a.zip", [(f"f{i}.txt", b"") for i in range(5)])
    with zipfile.ZipFile(archive) as zf, pytest.raises(UnsafeArchiveError, match="members"):
        check_archive(zf, max_members=4)


def test_not_a_zip_and_damaged_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip")
    with pytest.raises(DatasetFormatError, match="not a readable zip"):
        extract_archive(bad, tmp_path / "out")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.csv", b"abcdefgh" * 100)
    blob = bytearray(buf.getvalue())
    blob[blob.index(b"abcdefgh") + 5] ^= 0xFF  # flip a data byte: the CRC fails
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(blob))
    with pytest.raises(DatasetFormatError, match="damaged"):
        extract_archive(damaged, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "damaged.zip"]


def test_existing_destination_is_kept(tmp_path):
    archive = _write_zip(tmp_path / "a.zip", [("x.csv", b"new")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "x.csv").write_bytes(b"old")
    assert extract_archive(archive, dest) == dest
    assert (dest / "x.csv").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "out"]
