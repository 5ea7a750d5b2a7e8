"""HTML: main-text extraction (shared with WARC) and folders of .html files.

Extraction is Resiliparse's ``extract_plain_text`` (C++, its main-content heuristics), chosen
over trafilatura for speed: it keeps up with a WARC stream on one core. The charset comes from
the HTTP header when there is one, else the page's meta tag, else detection.
"""

from __future__ import annotations

from typing import Any, Iterator

from pipelines.readers.records import meta_json, record
from pipelines.readers.tree import load_tree_file

EMPTY_EXTRACTION = "empty_extraction"


class ExtractionError(ValueError):
    """The page could not be decoded or parsed."""


def extract_main_text(page: bytes, charset: str | None, main_content: bool) -> str:
    """The page's visible text (its main content only when ``main_content``), stripped."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLParserException, HTMLTree

    try:
        encoding = charset or detect_encoding(page, from_html_meta=True)
        tree = HTMLTree.parse(bytes_to_str(page, encoding, errors="replace"))
        text = extract_plain_text(tree, main_content=main_content, preserve_formatting=True)
    except (LookupError, UnicodeError, ValueError, HTMLParserException) as error:
        raise ExtractionError(f"cannot extract text from HTML: {error}") from error
    return text.strip()


def read_html(source: dict, path: str) -> Iterator[dict[str, Any]]:
    file = load_tree_file(source, path)
    where = dict(input_id=file.relative, meta=meta_json({"path": file.relative}))
    if file.data is None:
        yield record(source, path, file.relative, error=file.error, **where)
        return
    try:
        text = extract_main_text(file.data, None, source["main_content"])
    except ExtractionError as error:
        yield record(source, path, file.relative, error=str(error), **where)
        return
    if not text:
        yield record(source, path, file.relative, skip_reason=EMPTY_EXTRACTION, **where)
        return
    yield record(source, path, file.relative, text=text, **where)
