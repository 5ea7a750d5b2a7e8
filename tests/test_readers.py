"""Every reader, on good input and on each kind of bad input: a bad record is quarantined with
a clear message and the rest of the file is still read."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipelines.config import SourceConfig
from pipelines.readers import RAW_COLUMNS, READERS, read_file
from pipelines.readers.streams import bounded_lines


def source(path: Path | str, fmt: str, **options) -> dict:
    return SourceConfig(name="s", path=str(path), format=fmt, **options).model_dump()


def read(src: dict, path: Path | str) -> list[dict]:
    records = list(READERS[src["format"]](src, str(path)))
    assert all(tuple(r) == RAW_COLUMNS for r in records)
    return records


def good(records: list[dict]) -> list[dict]:
    return [r for r in records if r["error"] is None and r["skip_reason"] is None]


def errors(records: list[dict]) -> list[tuple[str, str]]:
    return [(r["location"], r["error"]) for r in records if r["error"] is not None]


def jsonl_bytes(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"id": i, "text": f"document {i}", "url": f"u{i}"}).encode() + b"\n"
                    for i in range(start, start + n))


# --- jsonl ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, compress", [
    ("", lambda b: b), (".gz", gzip.compress), (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_jsonl_reads_plain_and_compressed(tmp_path, suffix, compress):
    path = tmp_path / f"a.jsonl{suffix}"
    path.write_bytes(compress(jsonl_bytes(3)))
    records = read(source(path, "jsonl", id_field="id"), path)
    assert [(r["input_id"], r["text"], r["location"]) for r in records] == [
        ("0", "document 0", "line 1"), ("1", "document 1", "line 2"), ("2", "document 2", "line 3")]
    assert json.loads(records[0]["meta"]) == {"url": "u0"}


def test_multi_frame_zstd_is_read_across_frames(tmp_path):
    path = tmp_path / "a.jsonl.zst"
    compressor = zstandard.ZstdCompressor()
    path.write_bytes(compressor.compress(jsonl_bytes(2)) + compressor.compress(jsonl_bytes(2, start=2)))
    assert [r["text"] for r in read(source(path, "jsonl"), path)] == [f"document {i}" for i in range(4)]


@pytest.mark.parametrize("suffix, compress", [
    (".gz", gzip.compress), (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_truncated_compressed_jsonl_keeps_what_came_before(tmp_path, suffix, compress):
    whole = compress(jsonl_bytes(20_000))
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    records = read(source(path, "jsonl"), path)
    kept = good(records)
    assert 1000 < len(kept) < 20_000
    assert [r["text"] for r in kept] == [f"document {i}" for i in range(len(kept))]
    [(location, message)] = errors(records)
    assert location.startswith("after line ") and "unreadable file" in message
    assert "truncated" in message.lower()


def test_bad_jsonl_lines_are_quarantined_and_the_rest_read(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join([
        b'{"text": "first"}',
        b'{"text": "caf\xe9"}',          # latin-1, not UTF-8
        b"[1, 2, 3]",                    # not an object
        b'{"body": "no text field"}',
        b'{"text": null}',
        b'{"text": 42}',
        b"{not json",
        b"   ",                           # blank: not a record
        b'{"text": "last"}',
    ]) + b"\n")
    records = read(source(path, "jsonl"), path)
    assert [r["text"] for r in good(records)] == ["first", "last"]
    assert errors(records) == [
        ("line 2", "invalid UTF-8 at byte 13"),
        ("line 3", "record is a JSON list, not an object"),
        ("line 4", "field 'text' is missing"),
        ("line 5", "field 'text' is null, not a string"),
        ("line 6", "field 'text' is int, not a string"),
        ("line 7", "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
    ]
    assert records[1]["raw"].startswith('{"text": "caf')
    assert len(records) == 8  # every non-blank line is one counted input


def test_empty_files_give_no_records(tmp_path):
    for name, fmt in [("e.jsonl", "jsonl"), ("e.jsonl.gz", "jsonl"), ("e.parquet", "parquet"), ("e.warc", "warc")]:
        (tmp_path / name).write_bytes(b"")
        assert read(source(tmp_path / name, fmt), tmp_path / name) == []
    (tmp_path / "z.jsonl.gz").write_bytes(gzip.compress(b""))
    assert read(source(tmp_path / "z.jsonl.gz", "jsonl"), tmp_path / "z.jsonl.gz") == []


def test_oversized_line_is_rejected_unread_and_reading_goes_on(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as handle:
        handle.write(b'{"text": "before"}\n{"text": "')
        handle.write(b"x" * 3000)
        handle.write(b'"}\n{"text": "after"}\n')
    records = read(source(path, "jsonl", max_document_bytes=1000), path)
    assert [r["text"] for r in good(records)] == ["before", "after"]
    assert errors(records) == [("line 2", "line is 3,012 bytes, over max_document_bytes=1,000")]


def test_bounded_lines_never_returns_more_than_the_limit(tmp_path):
    path = tmp_path / "lines"
    path.write_bytes(b"short\n" + b"y" * 5000 + b"\nend")
    with open(path, "rb") as handle:
        lines = list(bounded_lines(handle, 100))
    assert [(line.number, line.data, line.size, line.oversized) for line in lines] == [
        (1, b"short", 5, False), (2, b"", 5000, True), (3, b"end", 3, False)]


def test_a_100_mb_document_is_rejected_with_size_and_limit(tmp_path):
    path = tmp_path / "huge.jsonl.gz"
    block = b"a" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(b'{"text": "small"}\n{"text": "')
        for _ in range(100):
            handle.write(block)
        handle.write(b'"}\n{"text": "tail"}\n')
    tracemalloc.start()
    try:
        records = read(source(path, "jsonl"), path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        path.unlink()
    # readline joins its pieces, so a bounded 16 MiB line peaks near 32 MiB: never the 100 MB.
    assert peak < 48 * (1 << 20)
    assert [r["text"] for r in good(records)] == ["small", "tail"]
    assert errors(records) == [("line 2", "line is 104,857,612 bytes, over max_document_bytes=16,777,216")]


# --- parquet -------------------------------------------------------------------------------

def test_parquet_rows_and_row_errors(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["one", None, "three"], "id": ["a", "b", "c"], "lang": ["en"] * 3}), path)
    records = read(source(path, "parquet", id_field="id"), path)
    assert [(r["location"], r["input_id"], r["text"]) for r in good(records)] == [
        ("row 1", "a", "one"), ("row 3", "c", "three")]
    assert errors(records) == [("row 2", "field 'text' is null, not a string")]
    assert json.loads(records[0]["meta"]) == {"lang": "en"}


def test_parquet_with_another_schema_is_one_clear_error(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"body": ["x", "y"], "id": [1, 2]}), path)
    records = read(source(path, "parquet"), path)
    assert errors(records) == [
        ("schema", "Parquet schema has no column 'text' (columns: body, id); none of its 2 rows read")]


def test_parquet_text_column_that_is_not_a_string(tmp_path):
    path = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"text": [1, 2, 3]}), path)
    assert errors(read(source(path, "parquet"), path)) == [
        ("schema", "Parquet column 'text' is int64, not a string; none of its 3 rows read")]


def test_corrupt_parquet_is_one_error(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"this is not parquet at all")
    [(location, message)] = errors(read(source(path, "parquet"), path))
    assert location == "after row 0" and message.startswith("unreadable Parquet:")


def test_parquet_row_over_the_limit(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": ["ok", "z" * 5000]}), path)
    records = read(source(path, "parquet", max_document_bytes=1000), path)
    assert errors(records) == [("row 2", "field 'text' is 5,000 bytes, over max_document_bytes=1,000")]


# --- text folders --------------------------------------------------------------------------

def test_text_folder_one_document_per_file_with_relative_ids(tmp_path):
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.md").write_text("\ufeffbeta")
    (root / "sub" / "c.rst").write_bytes(b"caf\xe9")
    (root / "image.png").write_bytes(b"\x89PNG")  # not selected: not a text extension
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.txt").write_text("ref")
    src = source(root, "text")
    files = SourceConfig.model_validate(src).files()
    assert [Path(f).relative_to(root).as_posix() for f in files] == ["a.txt", "sub/b.md", "sub/c.rst"]
    records = [r for f in files for r in read(src, f)]
    assert [(r["input_id"], r["text"]) for r in good(records)] == [("a.txt", "alpha"), ("sub/b.md", "beta")]
    assert errors(records) == [("sub/c.rst", "invalid UTF-8 at byte 3")]
    # The same files through a glob get the same ids.
    glob_src = source(f"{root}/**/*.md", "text")
    assert [r["input_id"] for f in SourceConfig.model_validate(glob_src).files() for r in read(glob_src, f)] == [
        "sub/b.md"]


def test_text_file_over_the_limit_is_refused_from_its_size(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"w" * 2048)
    src = source(tmp_path, "text", max_document_bytes=1024)
    assert errors(read(src, tmp_path / "big.txt")) == [
        ("big.txt", "file is 2,048 bytes, over max_document_bytes=1,024")]


def test_include_and_exclude(tmp_path):
    for name in ("keep.txt", "drop.txt", "data.csv"):
        (tmp_path / name).write_text(name)
    files = SourceConfig(name="s", path=str(tmp_path), format="text", include=["*.txt", "*.csv"],
                         exclude=["drop.*"]).files()
    assert [Path(f).name for f in files] == ["data.csv", "keep.txt"]
    with pytest.raises(ValueError, match="include/exclude apply to text, code and html sources only"):
        SourceConfig(name="s", path="x", format="jsonl", include=["*.txt"])


# --- code trees ----------------------------------------------------------------------------

def make_tree(root: Path) -> None:
    files = {
        "src/app.py": b"def main():\n    return 1\n",
        "src/util.ts": b"export const x = 1;\n",
        "Makefile": b"all:\n\techo hi\n",
        "node_modules/lib/index.js": b"module.exports = 1;\n",
        "third_party/zlib/zlib.c": b"int x;\n",
        "web/app.min.js": b"var a=1;",
        "package-lock.json": b"{}",
        "proto/msg_pb2.py": b"x = 1\n",
        "assets/logo.c": b"\x00\x01\x02binary",
        "src/latin.py": b"# caf\xe9\n",
        "notes.unknownext": b"not code",
        ".git/config": b"[core]",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_code_tree_languages_and_skips(tmp_path):
    make_tree(tmp_path)
    src = source(tmp_path, "code")
    assert src["kind"] == "code"
    files = SourceConfig.model_validate(src).files()
    relative = [Path(f).relative_to(tmp_path).as_posix() for f in files]
    assert "notes.unknownext" not in relative and ".git/config" not in relative
    records = {r["input_id"]: r for f in files for r in read(src, f)}
    assert {key: json.loads(r["meta"])["language"] for key, r in records.items() if r["text"]} == {
        "src/app.py": "python", "src/util.ts": "typescript", "Makefile": "makefile"}
    assert {key: r["skip_reason"] for key, r in records.items() if r["skip_reason"]} == {
        "node_modules/lib/index.js": "vendored_file",
        "third_party/zlib/zlib.c": "vendored_file",
        "web/app.min.js": "generated_file",
        "package-lock.json": "generated_file",
        "proto/msg_pb2.py": "generated_file",
        "assets/logo.c": "binary_file",
        "src/latin.py": "binary_file",
    }
    assert all(r["error"] is None for r in records.values())
    assert records["src/app.py"]["text"].startswith("def main")


def test_code_vendored_dirs_can_be_changed(tmp_path):
    make_tree(tmp_path)
    src = source(tmp_path, "code", vendored_dirs=[])
    [record] = read(src, tmp_path / "third_party" / "zlib" / "zlib.c")
    assert record["text"] == "int x;\n"


# --- WARC and HTML -------------------------------------------------------------------------

def warc_record(number: int, body: bytes, content_type: str = "text/html; charset=utf-8",
                status: str = "200 OK", record_type: str = "response") -> bytes:
    http = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    head = (f"WARC/1.0\r\nWARC-Type: {record_type}\r\n"
            f"WARC-Record-ID: <urn:uuid:{number:08d}-0000-0000-0000-000000000000>\r\n"
            f"WARC-Date: 2024-05-01T00:00:00Z\r\nWARC-Target-URI: https://example.com/{number}\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n").encode()
    return head + http + b"\r\n\r\n"


def page(number: int) -> bytes:
    return (f"<html><head><title>t</title></head><body><nav>Home | About</nav><article>"
            f"<h1>Article {number}</h1><p>{'Main text sentence number %d. ' % number * 15}</p>"
            f"</article><footer>Copyright</footer></body></html>").encode()


def test_warc_pages_skips_and_meta(tmp_path):
    path = tmp_path / "a.warc.gz"
    records = [
        warc_record(1, page(1)),
        warc_record(2, b"%PDF-1.4", content_type="application/pdf"),
        warc_record(3, b"", status="301 Moved Permanently"),
        warc_record(4, b"<html><body></body></html>"),
        warc_record(5, b"GET / HTTP/1.1\r\n\r\n", record_type="request"),  # not an input
        warc_record(6, page(6)),
    ]
    path.write_bytes(b"".join(gzip.compress(r) for r in records))
    out = read(source(path, "warc", id_field="WARC-Record-ID"), path)
    assert [(r["location"], r["skip_reason"]) for r in out] == [
        ("record 1", None), ("record 2", "not_html"), ("record 3", "http_error_status"),
        ("record 4", "empty_extraction"), ("record 6", None)]
    first = out[0]
    assert "Main text sentence number 1." in first["text"] and "Copyright" not in first["text"]
    assert first["input_id"] == "<urn:uuid:00000001-0000-0000-0000-000000000000>"
    assert json.loads(first["meta"]) == {
        "url": "https://example.com/1", "date": "2024-05-01T00:00:00Z", "content_type": "text/html",
        "record_id": "<urn:uuid:00000001-0000-0000-0000-000000000000>"}


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupt_warc_record_is_quarantined_and_reading_resumes(tmp_path, compressed):
    pieces = [warc_record(i, page(i)) for i in range(1, 6)]
    pieces[2] = b"WARC/1.0\r\nthis header line is garbage\r\n\r\nand so is this\r\n\r\n"
    path = tmp_path / ("bad.warc.gz" if compressed else "bad.warc")
    path.write_bytes(b"".join(gzip.compress(p) for p in pieces) if compressed else b"".join(pieces))
    out = read(source(path, "warc"), path)
    assert [r["url"] for r in map(lambda r: json.loads(r["meta"] or "{}"), good(out))] == [
        "https://example.com/1", "https://example.com/2", "https://example.com/4", "https://example.com/5"]
    problems = errors(out)
    assert problems and all(message.startswith("corrupt WARC record") for _, message in problems)
    assert problems[0][0] == "record 3"
    assert len({r["location"] for r in out}) == len(out)
    assert any("resumed at byte" in message for _, message in problems)


def test_truncated_warc_gz_quarantines_the_last_record(tmp_path):
    whole = b"".join(gzip.compress(warc_record(i, page(i))) for i in range(1, 4))
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(whole[:-150])
    out = read(source(path, "warc"), path)
    assert len(good(out)) == 2
    assert len(errors(out)) == 1


def test_warc_record_over_the_limit_is_not_read(tmp_path):
    path = tmp_path / "big.warc"
    path.write_bytes(warc_record(1, page(1)) + warc_record(2, b"<p>" + b"x" * 5000 + b"</p>") + warc_record(3, page(3)))
    out = read(source(path, "warc", max_document_bytes=4000), path)
    assert errors(out) == [("record 2", "WARC record body is 5,007 bytes, over max_document_bytes=4,000")]
    assert len(good(out)) == 2


def test_html_folder(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.html").write_bytes(page(7))
    (tmp_path / "site" / "empty.htm").write_bytes(b"<html><body><script>x()</script></body></html>")
    (tmp_path / "site" / "latin.html").write_bytes(
        b'<html><head><meta charset="iso-8859-1"></head><body><p>Un caf\xe9 tr\xe8s bon, ' * 3 + b"</p></body></html>")
    src = source(tmp_path / "site", "html")
    out = [r for f in SourceConfig.model_validate(src).files() for r in read(src, f)]
    assert [(r["input_id"], r["skip_reason"]) for r in out] == [
        ("a.html", None), ("empty.htm", "empty_extraction"), ("latin.html", None)]
    assert "Main text sentence number 7." in out[0]["text"]
    assert "café très bon" in out[2]["text"]


def test_read_file_dispatches_on_format(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl_bytes(2))
    assert [r["text"] for r in read_file({"source": source(path, "jsonl"), "path": str(path)})] == [
        "document 0", "document 1"]
    assert set(READERS) == {"jsonl", "parquet", "text", "code", "html", "warc"}
    assert os.path.exists(path)


# gzip hands on every byte before the cut; zstd only whole blocks (up to 128 KiB of text).
@pytest.mark.parametrize("suffix,compress,salvaged", [(".gz", gzip.compress, 5995),
                                                      (".zst", zstandard.ZstdCompressor().compress, 4500)])
def test_members_larger_than_a_read_and_a_cut_lose_only_the_last_block(tmp_path, suffix, compress, salvaged):
    first, second = jsonl_bytes(3000), jsonl_bytes(3000, start=3000)
    whole = compress(first) + compress(second)  # two members, each bigger than one 64 KiB read
    path = tmp_path / f"two{suffix}"
    path.write_bytes(whole)
    assert len(good(read(source(path, "jsonl"), path))) == 6000
    path.write_bytes(whole[:-20])
    records = read(source(path, "jsonl"), path)
    assert len(good(records)) >= salvaged
    [(where, message)] = errors(records)
    assert message == "unreadable file: truncated compressed stream: it ends inside a member"
    path.write_bytes(whole + b"not compressed at all")
    records = read(source(path, "jsonl"), path)
    assert len(good(records)) == 6000
    assert errors(records)[0][1].startswith("unreadable file: corrupt compressed data")


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_line_ranges_read_like_the_whole_file(tmp_path, ending):
    from pipelines.readers.jsonl import read_jsonl
    from pipelines.readers.streams import line_ranges

    lines = [json.dumps({"text": "t" * n}).encode() if n % 7 else b"" for n in range(1, 120)] + [b"{bad"]
    path = tmp_path / "x.jsonl"
    path.write_bytes(ending.join(lines) + ending if ending else b"\n".join(lines))
    src = source(path, "jsonl")
    whole = read(src, path)
    for split in (1, 37, 500, 10**9):
        ranges = line_ranges(str(path), split)
        assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
        assert all(end == next_start for (_, end, _), (next_start, _, _) in zip(ranges, ranges[1:]))
        parts = [r for start, end, first in ranges for r in read_jsonl(src, str(path), start, end, first)]
        assert parts == whole, split
    assert errors(whole)[-1][0] == f"line {len(lines)}"
