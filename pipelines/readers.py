"""Readers turn one input file into raw records, streaming: a record is parsed or quarantined
with its file, line (or row) and error, and never silently lost.

Every record is a dict with the keys of ``RAW_COLUMNS``; ``error`` is None for a good one.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any, BinaryIO, Iterator

RAW_COLUMNS = ("source", "kind", "file", "location", "input_id", "text", "meta", "error", "raw")
_RAW_PREVIEW = 200  # bytes of a bad record kept for debugging


def _record(source: dict, file: str, location: str, **values: Any) -> dict[str, Any]:
    record = dict.fromkeys(RAW_COLUMNS)
    record.update(source=source["name"], kind=source["kind"], file=file, location=location)
    record.update(values)
    return record


def _open_binary(path: str) -> BinaryIO:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
    return open(path, "rb")


def _document(source: dict, file: str, location: str, record: Any) -> dict[str, Any]:
    """Validate one decoded record and split it into id, text and meta."""
    text_field, id_field = source["text_field"], source.get("id_field")
    if not isinstance(record, dict):
        return _record(source, file, location, error=f"record is a JSON {type(record).__name__}, not an object")
    if text_field not in record:
        return _record(source, file, location, error=f"field {text_field!r} is missing")
    text = record[text_field]
    if not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return _record(source, file, location, error=f"field {text_field!r} is {kind}, not a string")
    input_id = record.get(id_field) if id_field else None
    if input_id is not None and not isinstance(input_id, (str, int)):
        return _record(source, file, location, error=f"field {id_field!r} is not a string or integer")
    meta = {key: value for key, value in record.items() if key not in (text_field, id_field)}
    return _record(
        source,
        file,
        location,
        input_id=None if input_id is None else str(input_id),
        text=text,
        meta=json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str),
    )


def read_jsonl(source: dict, path: str) -> Iterator[dict[str, Any]]:
    line_number = 0
    try:
        with _open_binary(path) as handle:
            for line_number, line in enumerate(io.BufferedReader(handle), start=1):  # type: ignore[arg-type]
                if not line.strip():
                    continue  # blank lines are not records
                location = f"line {line_number}"
                preview = line[:_RAW_PREVIEW].decode("utf-8", "replace")
                try:
                    decoded = line.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield _record(source, path, location, error=f"invalid UTF-8 at byte {error.start}", raw=preview)
                    continue
                try:
                    record = json.loads(decoded)
                except json.JSONDecodeError as error:
                    yield _record(source, path, location, error=f"invalid JSON: {error.msg} at column {error.colno}", raw=preview)
                    continue
                yield _document(source, path, location, record)
    except (OSError, EOFError, ValueError) as error:
        # A truncated or corrupt compressed stream: the unreadable rest counts as one record.
        yield _record(source, path, f"after line {line_number}", error=f"unreadable file: {error}")


def read_parquet(source: dict, path: str) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    row = 0
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                yield _document(source, path, f"row {row}", record)
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
        yield _record(source, path, f"after row {row}", error=f"unreadable Parquet: {error}")


READERS = {"jsonl": read_jsonl, "parquet": read_parquet}


def read_file(task: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Ray Data flat_map entry: ``task`` = {"source": SourceConfig as dict, "path": file}."""
    source = task["source"]
    yield from READERS[source["format"]](source, task["path"])
