"""Byte streams for the line-oriented formats: transparent .gz/.zst decompression that fails
loudly on a truncated file, and line iteration that never holds more than one bounded line.

Decompression is pyarrow's ``CompressedInputStream`` rather than ``gzip``/``zstandard``: it
reads concatenated members and frames, keeps memory bounded however well the input compresses,
and raises on a truncated stream (``zstandard``'s ``stream_reader`` ends there quietly, and
``gzip`` drops the whole buffer it was filling when it meets the cut).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO, Iterator

CHUNK = 1 << 20  # read size for skipping an oversized line and scanning a file
DECOMPRESSED_BUFFER = 1 << 16  # small, so little decoded text before a cut is lost with it
CODECS = {".gz": "gzip", ".zst": "zstd"}


def open_binary(path: str) -> BinaryIO:
    """``path`` opened for buffered binary reading, decompressed by its extension."""
    import pyarrow as pa

    codec = next((name for suffix, name in CODECS.items() if path.endswith(suffix)), None)
    if codec is None:
        return open(path, "rb", buffering=CHUNK)
    stream = pa.CompressedInputStream(pa.OSFile(path), codec)
    return io.BufferedReader(stream, DECOMPRESSED_BUFFER)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Line:
    number: int
    data: bytes  # empty when the line was too long to keep
    size: int  # bytes in the line, newline excluded, even when ``data`` was not kept

    @property
    def oversized(self) -> bool:
        return self.size > len(self.data)


def bounded_lines(handle: BinaryIO, limit: int) -> Iterator[Line]:
    """Every line of ``handle``; one longer than ``limit`` bytes is measured and skipped in
    ``CHUNK`` steps instead of being read into memory."""
    number = 0
    while True:
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
