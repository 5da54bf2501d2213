"""The archive format and its safe extraction: what we write, other tools read; what we
read, we check; a crafted archive never puts anything outside the output directory."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import zipfile

import orjson
import pytest

from factflow_storage.download.extract import extract_archive
from factflow_storage.download.tree import STAGING_DIR, OutputTree
from factflow_storage.zipformat import zipreader
from factflow_storage.zipformat.zipreader import UnsafeArchive, ZipStreamReader
from factflow_storage.zipformat.layout import MANIFEST_NAME
from factflow_storage.zipformat.zipwriter import ZipStreamWriter
from tree_support import files_under

PREFIX = "executions/E1/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def our_zip(members: dict[str, bytes], *, streamed: bool = False, with_sha: bool = True,
            manifest: bool = True) -> bytes:
    out = io.BytesIO()
    writer = ZipStreamWriter(out.write)
    rows = []
    for name, data in members.items():
        digest = sha(data) if with_sha else None
        if streamed:
            writer.add_stream(name, len(data), [data[i:i + 7000] for i in range(0, len(data), 7000)],
                              sha256_hex=digest)
        else:
            writer.add_bytes(name, data, sha256_hex=digest)
        if not name.endswith(".meta.json"):
            rows.append({"key": name, "size": len(data), "checksum": f"sha256:{sha(data)}"})
    if manifest:
        writer.add_bytes(MANIFEST_NAME, orjson.dumps({"objects": rows}))
    writer.close()
    return out.getvalue()


def extract(data: bytes, out_dir, accept=lambda key: key.startswith(PREFIX)):
    with OutputTree(str(out_dir)) as tree:
        return extract_archive(io.BytesIO(data), tree, accept)


MEMBERS = {
    PREFIX + "r/s/a.json": b'{"a": 1}',
    PREFIX + "r/s/a.json.meta.json": orjson.dumps({"key": PREFIX + "r/s/a.json"}),
    PREFIX + "r/s/empty": b"",
    PREFIX + "r/t/big.bin": os.urandom(300_000),
}


class ReadIntoOnly(io.RawIOBase):
    """A stream that only fills buffers, and in pieces of at most 5,000 bytes."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(memoryview(buffer)[:5000])


class Read1Only:
    """A stream without ``readinto``: the reader takes what each ``read1`` gives."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def read1(self, size: int = -1) -> bytes:
        return self._data.read1(min(size, 3000))

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


@pytest.mark.parametrize("make_stream", [io.BytesIO, ReadIntoOnly, Read1Only], ids=["file", "pieces", "read1"])
def test_pieces_held_by_the_caller_keep_their_bytes_while_reading_goes_on(make_stream, monkeypatch):
    """The reader fills its buffers again only once nothing holds a view of them: a writer
    thread still holding earlier pieces must never see them change."""
    monkeypatch.setattr(zipreader, "READ_INTO", 4096)  # many buffers for a small archive
    members = {f"{PREFIX}r/s/m{n:03d}": os.urandom(n * 97 % 20_000) for n in range(120)}
    reader = ZipStreamReader(make_stream(our_zip(members, streamed=True, manifest=False)))
    held = {member.name: list(body) for member, body in reader.members()}
    assert {name: b"".join(pieces) for name, pieces in held.items()} == members
    assert all(isinstance(piece, memoryview) for pieces in held.values() for piece in pieces)


@pytest.mark.parametrize("streamed", [False, True], ids=["sized", "descriptor"])
def test_our_archive_reads_back_in_python_zipfile_and_unzip(streamed, tmp_path):
    data = our_zip(MEMBERS, streamed=streamed)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert {name: archive.read(name) for name in MEMBERS} == MEMBERS
    assert all(stat.S_ISREG(info.external_attr >> 16) for info in archive.infolist())
    if shutil.which("unzip"):
        (tmp_path / "a.zip").write_bytes(data)
        result = subprocess.run(["unzip", "-tq", str(tmp_path / "a.zip")], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_many_members_use_zip64_end_records():
    members = {f"{PREFIX}r/s/{n:05d}": b"%d" % n for n in range(70_000)}
    archive = zipfile.ZipFile(io.BytesIO(our_zip(members, manifest=False)))
    names = archive.namelist()
    assert len(names) == 70_000 and archive.read(names[-1]) == b"69999"


@pytest.mark.parametrize("streamed", [False, True], ids=["sized", "descriptor"])
def test_extraction_writes_exactly_the_members(streamed, tmp_path):
    done = extract(our_zip(MEMBERS, streamed=streamed), tmp_path / "out")
    assert files_under(tmp_path / "out") == MEMBERS
    assert (done.objects, done.sidecars) == (3, 1)


def test_members_without_a_header_sha256_are_checked_against_the_manifest(tmp_path):
    members = {PREFIX + "r/s/a": b"alpha", PREFIX + "r/s/b": b"beta"}
    extract(our_zip(members, with_sha=False), tmp_path / "ok")
    assert files_under(tmp_path / "ok") == members

    out = io.BytesIO()
    writer = ZipStreamWriter(out.write)
    writer.add_bytes(PREFIX + "r/s/a", b"alpha")
    writer.add_bytes(MANIFEST_NAME, orjson.dumps({"objects": [
        {"key": PREFIX + "r/s/a", "size": 5, "checksum": "sha256:" + sha(b"other")}]}))
    writer.close()
    with pytest.raises(UnsafeArchive, match="manifest"):
        extract(out.getvalue(), tmp_path / "bad")
    assert files_under(tmp_path / "bad") == {}


def test_a_member_that_does_not_match_its_sha256_is_not_kept(tmp_path):
    out = io.BytesIO()
    writer = ZipStreamWriter(out.write)
    writer.add_bytes(PREFIX + "r/s/a", b"tampered", sha256_hex=sha(b"original"))
    writer.close()
    with pytest.raises(UnsafeArchive, match="sha256"):
        extract(out.getvalue(), tmp_path / "out")
    assert files_under(tmp_path / "out") == {}


def crafted(*members: tuple[zipfile.ZipInfo | str, bytes]) -> bytes:
    """An archive made by Python's zipfile, as a hostile server could send."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    return out.getvalue()


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member, message", [
    ("/tmp/evil", "absolute path"),
    ("../evil", "'..' segment"),
    (PREFIX + "../../../evil", "'..' segment"),
    (PREFIX + "r/s/..\\..\\evil", "backslash"),
    ("executions/OTHER/r/s/x", "not an object this download asked for"),
    (PREFIX + "r/s/x/", "empty segment"),
])
def test_names_outside_the_selection_are_refused_before_anything_is_written(member, message, tmp_path):
    out_dir = tmp_path / "nested" / "out"
    data = crafted((PREFIX + "r/s/first", b"fine"), (member, b"evil"))
    with pytest.raises(UnsafeArchive, match=message):
        extract(data, out_dir)
    everything = files_under(tmp_path)
    assert not any(b"evil" == content for content in everything.values())
    assert set(everything) <= {os.path.join("nested", "out", PREFIX, "r", "s", "first")}


def test_a_symlink_member_is_refused_and_nothing_links_out(tmp_path):
    out_dir = tmp_path / "out"
    data = crafted((symlink(PREFIX + "r/s/link"), b"/etc/passwd"))
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract(data, out_dir)
    assert files_under(out_dir) == {}
    assert not any(os.path.islink(os.path.join(d, n)) for d, _, ns in os.walk(out_dir) for n in ns)


def test_a_symlink_member_with_a_valid_sha256_header_is_removed_again(tmp_path):
    """Even a member that passed its sha256 check goes when the directory says it is a link."""
    out = io.BytesIO()
    writer = ZipStreamWriter(out.write)
    writer.add_bytes(PREFIX + "r/s/link", b"../../x", sha256_hex=sha(b"../../x"))
    writer.close()
    data = bytearray(out.getvalue())
    regular = (0o100644 << 16).to_bytes(4, "little")
    at = data.rindex(regular)
    data[at:at + 4] = ((stat.S_IFLNK | 0o777) << 16).to_bytes(4, "little")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract(bytes(data), tmp_path / "out")
    assert files_under(tmp_path / "out") == {}


def test_a_planted_symlink_inside_dir_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out_dir = tmp_path / "out"
    (out_dir / "executions").mkdir(parents=True)
    os.symlink(outside, out_dir / "executions" / "E1")
    with pytest.raises(Exception, match="symbolic link"):
        extract(our_zip({PREFIX + "r/s/a": b"x"}), out_dir)
    assert list(outside.iterdir()) == []


def test_compressed_members_and_truncated_archives_are_refused(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(PREFIX + "r/s/a", b"x" * 1000)
    with pytest.raises(UnsafeArchive, match="compressed"):
        extract(out.getvalue(), tmp_path / "a")
    whole = our_zip({PREFIX + "r/s/a": b"y" * 5000})
    with pytest.raises(UnsafeArchive, match="ends in the middle"):
        extract(whole[:3000], tmp_path / "b")
    assert files_under(tmp_path / "a") == {} and files_under(tmp_path / "b") == {}


def test_failed_extraction_leaves_no_partial_file_and_no_staging(tmp_path):
    whole = our_zip({PREFIX + "r/s/a": b"a" * 10, PREFIX + "r/s/b": os.urandom(200_000)}, streamed=True)
    with pytest.raises(UnsafeArchive):
        extract(whole[:100_000], tmp_path / "out")
    assert files_under(tmp_path / "out") == {PREFIX + "r/s/a": b"a" * 10}
    assert not (tmp_path / "out" / STAGING_DIR).exists()


def test_reader_checks_the_central_directory_against_the_members():
    data = bytearray(our_zip({PREFIX + "r/s/a": b"1"}, manifest=False))
    at = data.rindex(b"executions/E1/r/s/a")  # the central directory's copy of the name
    data[at + len(PREFIX)] = ord("X")
    reader = ZipStreamReader(io.BytesIO(bytes(data)))
    for _, body in reader.members():
        b"".join(body)
    with pytest.raises(UnsafeArchive, match="disagrees"):
        reader.central_directory()
