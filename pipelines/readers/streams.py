"""Byte streams for the line-oriented formats: transparent .gz/.zst decompression that fails
loudly on a truncated file, and line iteration that never holds more than one bounded line.

Decompression is incremental (zlib / zstandard decompress objects, output bounded per step):
it reads concatenated gzip members and zstd frames, keeps memory bounded however well the
input compresses, hands on every byte that decompressed before a cut, and only then raises
``TruncatedStream``. So a truncated file loses at most its last, incomplete line
(``zstandard``'s ``stream_reader`` ends at a cut quietly, and ``gzip`` and pyarrow's
``CompressedInputStream`` drop the whole buffer they were filling when they meet it).
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

CHUNK = 1 << 20  # read size for skipping an oversized line and scanning a file
COMPRESSED_READ = 1 << 16  # compressed bytes fed to the decompressor at a time


class TruncatedStream(EOFError):
    """The compressed input ended inside a member or frame."""


class CorruptStream(OSError):
    """The compressed input is not valid gzip/zstd (bad header, checksum or data)."""


OUTPUT_LIMIT = 1 << 20  # decompressed bytes produced per step, however well the input compresses


class _GzipMember:
    """One gzip member; output bounded per call through zlib's ``max_length``."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Decompress from ``data``: (output, input not consumed yet)."""
        output = self._zlib.decompress(data, OUTPUT_LIMIT)
        return output, self._zlib.unconsumed_tail or self._zlib.unused_data

    @property
    def eof(self) -> bool:
        return self._zlib.eof


class _ZstdFrame:
    """One zstd frame; fed in small steps, since zstandard's decompress object has no output
    bound (a 16 KiB step of ordinary text decompresses to well under a MiB)."""

    STEP = 1 << 14

    def __init__(self) -> None:
        import zstandard

        self._zstd = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        output = self._zstd.decompress(data[: self.STEP])
        rest = data[self.STEP:]
        return output, (self._zstd.unused_data + rest) if self._zstd.eof else rest

    @property
    def eof(self) -> bool:
        return self._zstd.eof


class _Decompressing(io.RawIOBase):
    """A raw stream of the decompressed bytes of ``path``, member after member."""

    def __init__(self, path: str, new_member: Callable[[], Any]) -> None:
        self._file = open(path, "rb")
        self._new_member = new_member
        self._member = new_member()
        self._started = False  # whether the current member has consumed any input
        self._input = b""  # compressed bytes read but not consumed yet
        self._pending = b""  # decompressed bytes not handed on yet

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if not self._step():
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _step(self) -> bool:
        """Decompress some input into ``_pending``; False at a clean end of the input."""
        if not self._input:
            self._input = self._file.read(COMPRESSED_READ)
            if not self._input:
                if self._started and not self._member.eof:
                    raise TruncatedStream("truncated compressed stream: it ends inside a member")
                return False
        if self._member.eof:
            self._member, self._started = self._new_member(), False  # the next member or frame
        self._started = True
        try:
            self._pending, self._input = self._member.feed(self._input)
        except Exception as error:  # zlib.error and zstd.ZstdError share no useful base class
            raise CorruptStream(f"corrupt compressed data: {error}") from error
        return True

    def close(self) -> None:
        self._file.close()
        super().close()


CODECS: dict[str, Callable[[], Any]] = {".gz": _GzipMember, ".zst": _ZstdFrame}


def open_binary(path: str) -> BinaryIO:
    """``path`` opened for buffered binary reading, decompressed by its extension."""
    new_member = next((make for suffix, make in CODECS.items() if path.endswith(suffix)), None)
    if new_member is None:
        return open(path, "rb", buffering=CHUNK)
    return io.BufferedReader(_Decompressing(path, new_member), COMPRESSED_READ)  # type: ignore[return-value]


def line_ranges(path: str, split_bytes: int) -> list[tuple[int, int, int]]:
    """(start, end, number of the first line) of consecutive byte ranges of an uncompressed
    file, each about ``split_bytes`` long and cut just after a newline, so that ranges can be
    read in parallel and still number their lines as the whole file would."""
    cuts = [(0, 1)]
    next_cut, offset, lines = split_bytes, 0, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            while next_cut <= offset + len(chunk):
                found = chunk.find(b"\n", max(next_cut - 1 - offset, 0))
                if found < 0:
                    next_cut = offset + len(chunk)  # cut at the first newline of a later chunk
                    break
                cut = offset + found + 1
                cuts.append((cut, lines + chunk.count(b"\n", 0, found + 1) + 1))
                next_cut = cut + split_bytes
            lines += chunk.count(b"\n")
            offset += len(chunk)
    cuts = [(start, line) for start, line in cuts if start < offset] or [(0, 1)]
    ends = [start for start, _ in cuts[1:]] + [offset]
    return [(start, end, line) for (start, line), end in zip(cuts, ends)]


@dataclass(frozen=True)
class Line:
    number: int
    data: bytes  # empty when the line was too long to keep
    size: int  # bytes in the line, newline excluded, even when ``data`` was not kept

    @property
    def oversized(self) -> bool:
        return self.size > len(self.data)


def bounded_lines(handle: BinaryIO, limit: int, first_number: int = 1, end: int | None = None) -> Iterator[Line]:
    """Every line of ``handle`` (numbered from ``first_number``) that starts before byte
    ``end``; one longer than ``limit`` bytes is measured and skipped in ``CHUNK`` steps instead
    of being read into memory."""
    number = first_number - 1
    while True:
        if end is not None and handle.tell() >= end:
            return
        data = handle.readline(limit + 1)
        if not data:
            return
        number += 1
        if data.endswith(b"\n") or len(data) <= limit:
            body = data.rstrip(b"\r\n")
            yield Line(number, body, len(body))
            continue
        size = len(data) + _skip_rest_of_line(handle)
        yield Line(number, b"", size)


def _skip_rest_of_line(handle: BinaryIO) -> int:
    """Consume up to and including the next newline; the bytes skipped, newline excluded."""
    skipped = 0
    while True:
        piece = handle.readline(CHUNK)
        if not piece:
            return skipped
        if piece.endswith(b"\n"):
            return skipped + len(piece) - 1
        skipped += len(piece)
