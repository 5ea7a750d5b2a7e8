"""Plain-text folders: one document per file, id = the file's path relative to the source root."""

from __future__ import annotations

from typing import Any, Iterator

from pipelines.readers.records import meta_json, preview, record
from pipelines.readers.tree import load_tree_file


def read_text(source: dict, path: str) -> Iterator[dict[str, Any]]:
    file = load_tree_file(source, path)
    if file.data is None:
        yield record(source, path, file.relative, input_id=file.relative, error=file.error)
        return
    try:
        text = file.data.decode("utf-8-sig")  # a BOM is encoding, not text
    except UnicodeDecodeError as error:
        yield record(source, path, file.relative, input_id=file.relative,
                     error=f"invalid UTF-8 at byte {error.start}", raw=preview(file.data))
        return
    yield record(source, path, file.relative, input_id=file.relative, text=text,
                 meta=meta_json({"path": file.relative}))
