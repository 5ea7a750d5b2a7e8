"""JSON Lines (plain, .gz, .zst): one object per line, streamed line by line."""

from __future__ import annotations

import json
from typing import Any, Iterator

from pipelines.readers.records import document, preview, record, too_large
from pipelines.readers.streams import Line, bounded_lines, open_binary


def read_jsonl(source: dict, path: str, start: int = 0, end: int | None = None,
               first_line: int = 1) -> Iterator[dict[str, Any]]:
    """Records of ``path``, or of the lines starting in bytes [start, end) of an uncompressed
    file, numbered from ``first_line`` (see ``streams.line_ranges``)."""
    last = first_line - 1
    try:
        with open_binary(path) as handle:
            if start:
                handle.seek(start)
            for line in bounded_lines(handle, source["max_document_bytes"], first_line, end):
                last = line.number
                if line.oversized or line.data.strip():  # blank lines are not records
                    yield _parse(source, path, line)
    except (OSError, EOFError, ValueError) as error:
        # A truncated or corrupt compressed stream: the unreadable rest counts as one record.
        yield record(source, path, f"after line {last}", error=f"unreadable file: {error}")


def _parse(source: dict, path: str, line: Line) -> dict[str, Any]:
    location = f"line {line.number}"
    if line.oversized:
        return record(source, path, location, error=too_large("line", line.size, source["max_document_bytes"]))
    try:
        decoded = line.data.decode("utf-8")
    except UnicodeDecodeError as error:
        return record(source, path, location, error=f"invalid UTF-8 at byte {error.start}", raw=preview(line.data))
    try:
        fields = json.loads(decoded)
    except json.JSONDecodeError as error:
        return record(source, path, location, error=f"invalid JSON: {error.msg} at column {error.colno}",
                      raw=preview(line.data))
    return document(source, path, location, fields)
