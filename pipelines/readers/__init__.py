"""Readers turn one input file into raw records, streaming: a record is parsed, quarantined
with its file, location and error, or dropped with a reason, and never silently lost.

``READERS[format](source, path)`` takes a ``SourceConfig`` as a dict and one file from its
``files()``; every record is a dict with the keys of ``RAW_COLUMNS`` (see ``records.py``).
No reader holds more than one record (at most ``max_document_bytes``) of a file in memory.

| format  | one input is           | location          | module       |
|---------|------------------------|-------------------|--------------|
| jsonl   | a line (.gz/.zst too)  | ``line 17``       | jsonl.py     |
| parquet | a row                  | ``row 3``         | parquet.py   |
| text    | a file in a folder     | its relative path | text.py      |
| code    | a file in a code tree  | its relative path | code.py      |
| html    | a file in a folder     | its relative path | html.py      |
| warc    | a response record      | ``record 5``      | warc.py      |
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from pipelines.readers.code import read_code
from pipelines.readers.html import read_html
from pipelines.readers.jsonl import read_jsonl
from pipelines.readers.parquet import read_parquet
from pipelines.readers.records import RAW_COLUMNS
from pipelines.readers.text import read_text
from pipelines.readers.warc import read_warc

Reader = Callable[[dict, str], Iterator[dict[str, Any]]]

READERS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "text": read_text,
    "code": read_code,
    "html": read_html,
    "warc": read_warc,
}

__all__ = ["RAW_COLUMNS", "READERS", "read_file"]


def read_file(task: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Ray Data flat_map entry: ``task`` = {"source": SourceConfig as dict, "path": file}."""
    source = task["source"]
    yield from READERS[source["format"]](source, task["path"])
