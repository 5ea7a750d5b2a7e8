"""The raw record every reader yields, and the checks shared by the record-oriented formats.

A raw record is one counted input. ``error`` set: it could not be read (quarantined).
``skip_reason`` set: it was read but deliberately left out (a vendored or binary file, a
non-HTML WARC response); the stage drops it under that reason. Neither set: a document.
"""

from __future__ import annotations

import json
from typing import Any

RAW_COLUMNS = (
    "source", "kind", "file", "location", "input_id", "text", "meta", "error", "raw", "skip_reason",
)
RAW_PREVIEW = 200  # bytes of a bad record kept for debugging
MIB = 1 << 20


def record(source: dict, file: str, location: str, **values: Any) -> dict[str, Any]:
    """A raw record with every column present; ``values`` fill in what is known."""
    raw = dict.fromkeys(RAW_COLUMNS)
    raw.update(source=source["name"], kind=source["kind"], file=file, location=location)
    raw.update(values)
    return raw


def preview(data: bytes) -> str:
    return data[:RAW_PREVIEW].decode("utf-8", "replace")


def meta_json(meta: dict[str, Any]) -> str:
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)


def too_large(what: str, size: int, limit: int) -> str:
    """The one message every reader gives for an input over ``max_document_bytes``."""
    return f"{what} is {size:,} bytes, over max_document_bytes={limit:,}"


def document(source: dict, file: str, location: str, fields: Any) -> dict[str, Any]:
    """Validate one decoded JSON/Parquet record and split it into id, text and meta."""
    text_field, id_field = source["text_field"], source.get("id_field")
    if not isinstance(fields, dict):
        return record(source, file, location, error=f"record is a JSON {type(fields).__name__}, not an object")
    if text_field not in fields:
        return record(source, file, location, error=f"field {text_field!r} is missing")
    text = fields[text_field]
    if not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return record(source, file, location, error=f"field {text_field!r} is {kind}, not a string")
    # A Parquet row arrives whole, so its size is checked here; a JSON line is checked as bytes.
    limit = source["max_document_bytes"]
    size = len(text.encode("utf-8")) if len(text) * 4 > limit else 0  # 4 bytes/char at most: skip the copy
    if size > limit:
        return record(source, file, location, error=too_large(f"field {text_field!r}", size, limit),
                      raw=text[:RAW_PREVIEW])
    input_id = fields.get(id_field) if id_field else None
    if input_id is not None and not isinstance(input_id, (str, int)):
        return record(source, file, location, error=f"field {id_field!r} is not a string or integer")
    meta = {key: value for key, value in fields.items() if key not in (text_field, id_field)}
    return record(
        source, file, location,
        input_id=None if input_id is None else str(input_id),
        text=text,
        meta=meta_json(meta),
    )
