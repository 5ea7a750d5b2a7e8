"""Readers turn one input file into raw records, streaming: a record is parsed, quarantined
with its file, location and error, or dropped with a reason, and never silently lost.

``READERS[format](source, path)`` takes a ``SourceConfig`` as a dict and one file from its
``files()``; every record is a dict with the keys of ``RAW_COLUMNS`` (see ``records.py``).
No reader holds more than one record (at most ``max_document_bytes``) of a file in memory.

``read_input`` is what a curation run calls: before a reader opens a file it checks that the
file is a regular file it can open (a dangling symlink, a symlink loop, a FIFO or a file without
read permission is one quarantined record, ``unreadable file: ...``; opening a FIFO would block
the task for ever), and a reader that fails on a file in a way it does not handle itself costs
the rest of that file, as one quarantined record, not the run.

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

import os
import stat
from typing import Any, Callable, Iterator

from pipelines.readers.code import read_code
from pipelines.readers.html import read_html
from pipelines.readers.jsonl import read_jsonl
from pipelines.readers.parquet import read_parquet
from pipelines.readers.records import RAW_COLUMNS, record
from pipelines.readers.text import read_text
from pipelines.readers.tree import TREE_FORMATS, source_relative
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

__all__ = ["RAW_COLUMNS", "READERS", "read_file", "read_input", "unreadable"]

_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def unreadable(path: str) -> str | None:
    """Why ``path`` cannot be read as an input file, or None when it can."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:  # dangling symlink, symlink loop, no permission on a folder
        return f"unreadable file: {error.strerror or error}"
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
        return f"unreadable file: it is {kind}, not a regular file"
    try:
        with open(path, "rb"):
            pass
    except OSError as error:  # no read permission
        return f"unreadable file: {error.strerror or error}"
    return None


def read_input(source: dict, path: str, **part: int) -> Iterator[dict[str, Any]]:
    """Every raw record of one input file (``part``: a jsonl byte range, see
    ``staging.InputFile.reader_range``); never raises on bad input."""
    tree = source["format"] in TREE_FORMATS
    problem = unreadable(path)
    if problem is not None:
        location = source_relative(source, path) if tree else "file"
        yield record(source, path, location, input_id=location if tree else None, error=problem)
        return
    last = None
    try:
        for raw in READERS[source["format"]](source, path, **part):
            last = raw["location"]
            yield raw
    except Exception as error:  # a reader bug or an input no reader foresaw: lose the file's rest, not the run
        yield record(source, path, f"after {last}" if last else "file",
                     error=f"unreadable file: {type(error).__name__}: {error}")


def read_file(task: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Ray Data flat_map entry: ``task`` = {"source": SourceConfig as dict, "path": file}."""
    yield from read_input(task["source"], task["path"])
