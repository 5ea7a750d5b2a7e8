"""JSON Lines (plain, .gz, .zst): one object per line, streamed line by line."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from pipelines.readers.records import document, preview, record, too_large
from pipelines.readers.streams import Line, bounded_lines, open_binary

# A JSON escape of a UTF-16 surrogate: only such escapes can put a lone surrogate (text that
# no UTF-8 can encode) into a decoded line, so only lines that have one are checked for it.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


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
        message = error.msg.removesuffix(" at")  # "Invalid control character at"
        return record(source, path, location, error=f"invalid JSON: {message} at column {error.colno}",
                      raw=preview(line.data))
    except RecursionError:
        return record(source, path, location, error="invalid JSON: nested too deeply to parse",
                      raw=preview(line.data))
    if _SURROGATE_ESCAPE.search(decoded):
        problem = lone_surrogate(fields)
        if problem:
            return record(source, path, location, error=problem, raw=preview(line.data))
    return document(source, path, location, fields)


def lone_surrogate(fields: Any) -> str | None:
    """'invalid Unicode: ...' naming the top-level field whose value holds a lone surrogate
    (a ``\\ud800`` escape without its pair), or None; such text cannot be stored as UTF-8."""
    items = fields.items() if isinstance(fields, dict) else [(None, fields)]
    for key, value in items:
        try:
            json.dumps([key, value], ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as error:
            bad = ord(error.object[error.start])
            where = f"field {ascii(key)}" if key is not None else "the record"
            return f"invalid Unicode: {where} holds a lone surrogate \\u{bad:04x}"
    return None
