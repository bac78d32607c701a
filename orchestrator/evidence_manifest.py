"""The evidence archive's members and its manifest, with memory that does not grow with the
number of incidents: each member's SHA-256 and size, like any other per-incident record the
manifest needs (the chain heads), is spooled as it comes, and manifest.json is written last,
streaming from the spools, as `json.dumps(manifest, indent=2, sort_keys=True)` would write it
except that the members of a spooled object keep the order they came in."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from typing import Any, Self

IN_MEMORY = 1 << 20  # characters a spool holds before it moves to a temporary file
CHUNK = 1 << 16  # characters read back at a time


class Spool:
    """Text written as it comes and read back later, in order: in memory up to `IN_MEMORY`
    characters, then in a temporary file."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by close)
            max_size=IN_MEMORY, mode="w+", encoding="utf-8", newline=""
        )

    def write(self, text: str) -> None:
        self._file.write(text)

    def chunks(self) -> Iterator[str]:
        self._file.seek(0)
        while chunk := self._file.read(CHUNK):
            yield chunk

    def lines(self) -> Iterator[str]:
        self._file.seek(0)
        yield from self._file

    def close(self) -> None:
        self._file.close()


class SpooledObject:
    """The members of a JSON object, spooled as they are added and written out in that order."""

    def __init__(self) -> None:
        self._spool = Spool()
        self._count = 0

    def add(self, key: str, value: Any) -> None:
        self._spool.write(json.dumps([key, value]) + "\n")  # one line: JSON escapes newlines
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def formatted(self, depth: int) -> Iterator[str]:
        """The object as `json.dumps(indent=2)` writes it `depth` levels deep, a member at a
        time."""
        if not self._count:
            yield "{}"
            return
        indent = "\n" + "  " * (depth + 1)
        for index, line in enumerate(self._spool.lines()):
            key, value = json.loads(line)
            opening = "," if index else "{"
            yield f"{opening}{indent}{json.dumps(key)}: {_nested(value, depth + 1)}"
        yield "\n" + "  " * depth + "}"

    def close(self) -> None:
        self._spool.close()


def manifest_chunks(fixed: dict[str, Any], spooled: dict[str, SpooledObject]) -> Iterator[str]:
    """The manifest, keys sorted, formatted as `json.dumps(indent=2, sort_keys=True)` does;
    the members of the spooled objects keep the order they were added in."""
    for index, key in enumerate(sorted(fixed.keys() | spooled.keys())):
        yield ("{" if index == 0 else ",") + f"\n  {json.dumps(key)}: "
        if key in spooled:
            yield from spooled[key].formatted(1)
        else:
            yield _nested(fixed[key], 1)
    yield "\n}"


def _nested(value: Any, depth: int) -> str:
    return json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n" + "  " * depth)


class Archive:
    """Writes the members into the zip one at a time, hashing each as it goes, and the
    manifest last; a context manager that drops its spools on exit."""

    def __init__(self, zip_file: zipfile.ZipFile) -> None:
        self.zip = zip_file
        self.files = SpooledObject()  # name: {"sha256", "bytes"}, in the order written

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.files.close()

    @contextlib.contextmanager
    def file(self, name: str) -> Iterator[Callable[[str], None]]:
        digest, size = hashlib.sha256(), 0

        with self.zip.open(name, "w") as out:

            def put(text: str) -> None:
                nonlocal size
                data = text.encode()
                digest.update(data)
                size += len(data)
                out.write(data)

            yield put
        self.files.add(name, {"sha256": digest.hexdigest(), "bytes": size})

    def write(self, name: str, chunks: Iterator[str]) -> None:
        with self.file(name) as put:
            for chunk in chunks:
                put(chunk)

    def write_manifest(self, fixed: dict[str, Any], spooled: dict[str, SpooledObject]) -> None:
        """manifest.json: `fixed`, the spooled objects, and "files" (itself not among them)."""
        with self.zip.open("manifest.json", "w") as out:
            for chunk in manifest_chunks(fixed, {**spooled, "files": self.files}):
                out.write(chunk.encode())
