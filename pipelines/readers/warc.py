"""WARC (.warc, .warc.gz, .warc.zst): ``response`` and ``resource`` records, streamed with
FastWARC, their HTML turned into main text (see ``html.py``).

Other record types (warcinfo, request, metadata, revisit) carry no page and are not inputs.
A response that is not a page is dropped with a reason: ``http_error_status`` (not 2xx),
``not_html`` (another content type) or ``empty_extraction``. A record FastWARC cannot parse
is quarantined, and reading resumes at the next record header (or gzip/zstd member) found
after it, so one corrupt record does not cost the rest of the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Generator, Iterator

from pipelines.readers.html import EMPTY_EXTRACTION, ExtractionError, extract_main_text
from pipelines.readers.records import meta_json, record, too_large
from pipelines.readers.streams import CHUNK

HTML_TYPES = ("text/html", "application/xhtml+xml")
RESYNC_MAGIC = {".gz": b"\x1f\x8b\x08", ".zst": b"\x28\xb5\x2f\xfd"}
PLAIN_MAGIC = b"WARC/1."


@dataclass
class _Cursor:
    number: int = 0  # records seen so far, every type
    last_start: int = -1  # byte offset of the last record that began to parse


@dataclass(frozen=True)
class _Failure:
    error: str
    progressed: bool  # at least one record parsed before it


def read_warc(source: dict, path: str) -> Iterator[dict[str, Any]]:
    if os.path.getsize(path) == 0:
        return
    cursor, offset, first = _Cursor(), 0, True
    while True:
        failure = yield from _records_from(source, path, offset, cursor)
        if failure is None:
            return
        resume = next_record_start(path, cursor.last_start + 1 if cursor.last_start >= offset else offset + 1)
        if first or failure.progressed:  # a failed retry is the same corrupt stretch, counted once
            rest = "the rest of the file is unreadable" if resume is None else f"resumed at byte {resume:,}"
            cursor.number += 1  # the corrupt stretch takes a number, so locations stay unique
            yield record(source, path, f"record {cursor.number}",
                         error=f"corrupt WARC record after byte {max(cursor.last_start, 0):,}: {failure.error}; {rest}")
        if resume is None:
            return
        offset, first = resume, False


def _records_from(source: dict, path: str, offset: int,
                  cursor: _Cursor) -> Generator[dict[str, Any], None, _Failure | None]:
    """Yield records from byte ``offset``; the failure that stopped them, or None at the end."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    wanted = (WarcRecordType.response, WarcRecordType.resource)
    progressed = False
    with open(path, "rb") as handle:
        handle.seek(offset)
        try:
            for warc_record in ArchiveIterator(handle, parse_http=True):
                cursor.number += 1
                cursor.last_start = warc_record.stream_pos
                progressed = True
                location = f"record {cursor.number}"
                if warc_record.headers.get("WARC-Type") is None:  # a header FastWARC half-read
                    yield record(source, path, location, error="corrupt WARC record: no valid WARC-Type header")
                elif warc_record.record_type in wanted:
                    yield convert(source, path, location, warc_record)
        except (OSError, ValueError) as error:
            return _Failure(str(error) or type(error).__name__, progressed)
    return None


def convert(source: dict, path: str, location: str, warc_record: Any) -> dict[str, Any]:
    """One response/resource record as a raw record: a document, a skip or an error."""
    headers = warc_record.headers
    meta = {
        "url": headers.get("WARC-Target-URI"),
        "date": headers.get("WARC-Date"),
        "record_id": headers.get("WARC-Record-ID"),
        "content_type": warc_record.http_content_type if warc_record.is_http else headers.get("Content-Type"),
    }
    id_field = source.get("id_field")
    where = dict(meta=meta_json(meta), input_id=headers.get(id_field) if id_field else None)
    outcome = _page(source, warc_record)
    if isinstance(outcome, _Skip):
        return record(source, path, location, skip_reason=outcome.reason, **where)
    if isinstance(outcome, _Error):
        return record(source, path, location, error=outcome.message, **where)
    return record(source, path, location, text=outcome, **where)


@dataclass(frozen=True)
class _Skip:
    reason: str


@dataclass(frozen=True)
class _Error:
    message: str


def _page(source: dict, warc_record: Any) -> str | _Skip | _Error:
    """The record's main text, or why there is none."""
    if "Content-Length" not in warc_record.headers:
        return _Error("corrupt WARC record: header has no Content-Length")
    limit, size = source["max_document_bytes"], warc_record.content_length
    if size > limit:  # refused from its header: the body is never read
        return _Error(too_large("WARC record body", size, limit))
    http = warc_record.http_headers if warc_record.is_http else None
    if http is not None and http.status_code is None:
        return _Error("corrupt WARC record: no HTTP status line")
    if http is not None and not 200 <= http.status_code < 300:
        return _Skip("http_error_status")
    content_type = (warc_record.http_content_type if http is not None else warc_record.headers.get("Content-Type")) or ""
    if content_type.split(";")[0].strip().lower() not in HTML_TYPES:
        return _Skip("not_html")
    encoding = (http.get("Content-Encoding") or "identity").strip().lower() if http is not None else "identity"
    if encoding != "identity":
        return _Error(f"HTTP body is Content-Encoding {encoding!r}, which is not decoded")
    body = warc_record.reader.read()
    if len(body) < size:
        return _Error(f"truncated WARC record: {len(body):,} of {size:,} bytes")
    try:
        text = extract_main_text(body, warc_record.http_charset if http is not None else None, source["main_content"])
    except ExtractionError as error:
        return _Error(str(error))
    return text if text else _Skip(EMPTY_EXTRACTION)


def next_record_start(path: str, after: int) -> int | None:
    """The first offset at or after ``after`` where a record could begin, scanning in chunks."""
    magic = next((m for ext, m in RESYNC_MAGIC.items() if path.endswith(ext)), PLAIN_MAGIC)
    with open(path, "rb") as handle:
        handle.seek(after)
        position, tail = after, b""
        while chunk := handle.read(CHUNK):
            window = tail + chunk
            found = window.find(magic)
            if found >= 0:
                return position - len(tail) + found
            tail = window[-(len(magic) - 1):]
            position += len(chunk)
    return None
