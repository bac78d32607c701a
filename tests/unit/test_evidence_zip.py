"""The spooled zip writer keeps no per-member record in memory, yet writes archives the
standard reader opens: past 65,535 members too, where the counts need ZIP64 records."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from orchestrator.evidence_zip import SpooledZipWriter

MEMBERS = 65_535 + 500  # more than the classic end record can count


def content(index: int) -> bytes:
    return f"member {index}\n".encode()


def test_past_the_classic_member_count_the_standard_reader_reads_it_back() -> None:
    buffer = io.BytesIO()
    with SpooledZipWriter(buffer) as archive:
        for index in range(MEMBERS):
            if index % 2:
                archive.writestr(f"odd/{index}.txt", content(index))
            else:
                with archive.open(f"even/{index}.txt", "w") as member:
                    member.write(content(index))
        assert len(archive.filelist) == MEMBERS
        assert archive.NameToInfo == {}  # nothing kept per member
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as reader:
        names = reader.namelist()
        assert names == [
            f"{'odd' if index % 2 else 'even'}/{index}.txt" for index in range(MEMBERS)
        ]
        assert reader.testzip() is None  # every member's CRC checks out
        for index in (0, 1, 65_534, 65_535, MEMBERS - 1):
            assert reader.read(names[index]) == content(index)
        assert reader.getinfo(names[-1]).compress_type == zipfile.ZIP_DEFLATED


def test_it_writes_to_a_path_and_to_an_unseekable_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with SpooledZipWriter(path, "x") as archive:
        archive.writestr("a.txt", b"a")
        archive.mkdir("folder")

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            self.data += data
            return len(data)

    stream = Unseekable()
    with SpooledZipWriter(stream) as archive:  # type: ignore[arg-type]
        archive.writestr("b.txt", b"b")
        with archive.open("c.txt", "w") as member:
            member.write(b"c" * 10_000)
    with pytest.raises(FileExistsError):
        SpooledZipWriter(path, "x")
    with zipfile.ZipFile(path) as written:
        assert written.namelist() == ["a.txt", "folder/"]
        assert written.read("a.txt") == b"a"
    with zipfile.ZipFile(io.BytesIO(bytes(stream.data))) as streamed:
        assert streamed.testzip() is None
        assert streamed.read("c.txt") == b"c" * 10_000


@pytest.mark.parametrize("mode", ["r", "a"])
def test_it_only_writes_new_archives(mode: str) -> None:
    with pytest.raises(ValueError, match="new archives only"):
        SpooledZipWriter(io.BytesIO(), mode)  # type: ignore[arg-type]
