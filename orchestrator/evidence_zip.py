"""A zip writer whose memory does not grow with the number of members.

`zipfile.ZipFile` keeps a `ZipInfo` for every member it writes (in `filelist`, and again in
`NameToInfo`), because the central directory at the end of the archive lists them all; that is
about 400 bytes a member, and an evidence archive has a few hundred thousand members. This
writer keeps the list on disk instead (each `ZipInfo` pickled into a temporary file as its
member is finished, read back in order when the central directory is written) and keeps no
name index at all. The price: names are not checked for duplicates (the standard writer only
warns about them anyway), and the archive cannot be read through the writer.

This relies on how CPython's zipfile (checked against the 3.11 source) uses the two attributes
when writing: it only appends to `filelist` (`_ZipWriteFile.close`, `mkdir`), takes its `len`
(`_writecheck`, `_write_end_record`) and iterates it once, in order (`_write_end_record`); it
only assigns to `NameToInfo` and asks whether a name is `in` it (`_writecheck`). The unit test
writes past ZIP64's member count and reads the result back with the standard reader, so that
a zipfile which uses them otherwise shows up there.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Literal


class _SpooledInfos:
    """The `ZipInfo` of every finished member, pickled into a temporary file in order."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the writer's close)
        self._count = 0

    def append(self, info: zipfile.ZipInfo) -> None:
        self._file.seek(0, 2)
        pickle.dump(info, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[zipfile.ZipInfo]:
        self._file.seek(0)
        for _ in range(self._count):
            # Only what append wrote to our own, unnamed temporary file is unpickled.
            yield pickle.load(self._file)  # noqa: S301

    def close(self) -> None:
        self._file.close()


class _NoNames(dict[str, zipfile.ZipInfo]):
    """A name index that keeps nothing: `name in it` is always false."""

    def __setitem__(self, name: str, info: zipfile.ZipInfo) -> None:
        pass


class SpooledZipWriter(zipfile.ZipFile):
    """`zipfile.ZipFile` for writing a new archive only (mode "w" or "x"), with memory flat
    in the number of members: see the module's docstring."""

    _infos: _SpooledInfos | None = None  # set here since close(), called by __del__, checks it

    def __init__(
        self,
        file: str | os.PathLike[str] | IO[bytes],
        mode: Literal["w", "x"] = "w",
        compression: int = zipfile.ZIP_DEFLATED,
        compresslevel: int | None = None,
    ) -> None:
        if mode not in ("w", "x"):
            raise ValueError("SpooledZipWriter writes new archives only: mode 'w' or 'x'")
        self._infos = _SpooledInfos()
        try:
            super().__init__(file, mode, compression, allowZip64=True, compresslevel=compresslevel)
        except BaseException:
            self._infos.close()
            raise
        self.filelist = self._infos  # type: ignore[assignment]  # appended, counted, iterated
        self.NameToInfo = _NoNames()

    def close(self) -> None:
        try:
            super().close()  # writes the central directory from the spooled infos
        finally:
            if self._infos is not None:
                self._infos.close()
