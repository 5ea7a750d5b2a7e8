"""A corpus of bad input (issue 8): every kind of broken, hostile or surprising file a curation
run may meet, written next to a few good documents, with what the run must make of each record.

``write_bad_inputs(root, good_texts)`` writes the files under ``root`` and returns the curate
config and one ``Expect`` per input record (its file, location, and whether it is kept, dropped
with a reason or quarantined with an error). tests/test_bad_input.py runs it through
``midtrain curate``; nothing here is committed as a binary blob. To look at the files:

    .venv/bin/python tests/bad_inputs.py [DIR]     # default tests/data/bad/ (git-ignored)

Two kinds cannot be made as root, who reads any file whatever its mode: "unreadable" is a
dangling symlink, a symlink loop and a FIFO here (a FIFO would block a reader that opened it);
test_bad_input.py checks a chmod-000 file separately, read by a child process that drops to
the ``nobody`` user.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

KEPT, DROPPED, QUARANTINED, ANY = "kept", "dropped", "quarantined", "any"
MB = 1 << 20
HUGE_BYTES = 100 * MB  # the 100 MB single document

# Thai prose (about the language and the kingdom), for a source whose allow-list is English.
THAI = (
    "ภาษาไทยเป็นภาษาราชการของประเทศไทย มีผู้พูดเป็นภาษาแม่หลายสิบล้านคน "
    "อักษรไทยพัฒนามาจากอักษรขอมโบราณ และเขียนจากซ้ายไปขวาโดยไม่เว้นวรรคระหว่างคำ "
    "กรุงเทพมหานครเป็นเมืองหลวงและเป็นศูนย์กลางทางเศรษฐกิจของประเทศ "
    "ชาวไทยส่วนใหญ่นับถือศาสนาพุทธ และมีวัดอยู่ในเกือบทุกชุมชน "
) * 4


@dataclass(frozen=True)
class Expect:
    """What the run must do with one input record."""

    kind: str  # the kind of bad input (a test id); "good" for the control documents
    file: str  # relative to the corpus root
    location: str  # "line 3", "row 2", "schema", "after line 2", a relative path ...
    outcome: str  # KEPT, DROPPED, QUARANTINED, or ANY (judged by the filters, not asserted)
    reason: str = ""  # drop reason, or the start of the quarantine error


@dataclass(frozen=True)
class BadCorpus:
    config: dict
    expected: list[Expect]  # every input record
    empty_files: dict[str, str]  # inputs with no record at all: file -> kind


def _line(fields: object) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def write_bad_inputs(root: Path, good: list[str]) -> BadCorpus:
    """Write the corpus under ``root``; ``good`` are at least 10 texts every filter keeps."""
    assert len(good) >= 10, "write_bad_inputs needs 10 good texts"
    texts = iter(good)
    root.mkdir(parents=True, exist_ok=True)
    expected: list[Expect] = []

    # --- jsonl: one file of bad lines between good ones -----------------------------------
    jsonl = root / "jsonl"
    jsonl.mkdir()
    lines: list[tuple[str, bytes, str, str]] = [
        ("good", _line({"id": "g1", "text": next(texts)}), KEPT, ""),
        ("invalid_utf8", b'{"id": "u", "text": "caf\xe9 au lait"}', QUARANTINED, "invalid UTF-8 at byte 24"),
        ("nul_bytes_raw", b'{"id": "n0", "text": "a\x00b"}', QUARANTINED,
         "invalid JSON: Invalid control character at column 24"),
        ("nul_bytes_escaped", _line({"id": "n1", "text": "\x00\x00\x00"}), DROPPED, "empty_text"),
        ("json_array", b'["an", "array"]', QUARANTINED, "record is a JSON list, not an object"),
        ("json_number", b"42", QUARANTINED, "record is a JSON int, not an object"),
        ("json_string", b'"just a string"', QUARANTINED, "record is a JSON str, not an object"),
        ("invalid_json", b'{"id": "j", "text": ', QUARANTINED, "invalid JSON: Expecting value"),
        ("text_missing", _line({"id": "m", "body": "no text field"}), QUARANTINED, "field 'text' is missing"),
        ("text_null", _line({"id": "nl", "text": None}), QUARANTINED, "field 'text' is null, not a string"),
        ("text_not_string", _line({"id": "o", "text": {"nested": "object"}}), QUARANTINED,
         "field 'text' is dict, not a string"),
        ("id_not_scalar", _line({"id": ["a", "list"], "text": "some text"}), QUARANTINED,
         "field 'id' is not a string or integer"),
        ("lone_surrogate", b'{"id": "s", "text": "half a pair \\ud800 here"}', QUARANTINED,
         "invalid Unicode: field 'text' holds a lone surrogate \\ud800"),
        ("deep_nesting", b"[" * 100_000 + b"]" * 100_000, QUARANTINED, "invalid JSON: nested too deeply"),
        ("unexpected_script", _line({"id": "thai", "text": THAI}), DROPPED, "language_not_allowed"),
        ("duplicate_ids", _line({"id": "dup", "text": next(texts)}), KEPT, ""),
        ("good", _line({"id": "g2", "text": next(texts)}), KEPT, ""),
    ]
    (jsonl / "mixed.jsonl").write_bytes(b"\n".join(data for _, data, _, _ in lines) + b"\n")
    expected += [Expect(kind, "jsonl/mixed.jsonl", f"line {n}", outcome, reason)
                 for n, (kind, _, outcome, reason) in enumerate(lines, 1)]

    # The same id again, in a file read later: ids are unique per run.
    first_dup = next(n for n, (kind, *_) in enumerate(lines, 1) if kind == "duplicate_ids")
    (jsonl / "repeat.jsonl").write_bytes(_line({"id": "dup", "text": next(texts)}) + b"\n")
    expected.append(Expect("duplicate_ids", "jsonl/repeat.jsonl", "line 1", QUARANTINED,
                           f"duplicate id jsonl/dup (first at {jsonl / 'mixed.jsonl'}:line {first_dup})"))

    # Truncated gzip: the lines before the cut are read, the cut is one quarantined record.
    first, second = next(texts), next(texts)
    whole = gzip.compress(b"\n".join(_line({"id": f"gz{i}", "text": t}) for i, t in
                                     enumerate([first, second, "cut off " + random.Random(0).randbytes(2000).hex()]))
                         + b"\n")
    (jsonl / "cut.jsonl.gz").write_bytes(whole[:-30])
    expected += [Expect("truncated_gzip", "jsonl/cut.jsonl.gz", "line 1", KEPT),
                 Expect("truncated_gzip", "jsonl/cut.jsonl.gz", "line 2", KEPT),
                 Expect("truncated_gzip", "jsonl/cut.jsonl.gz", "after line 2", QUARANTINED,
                        "unreadable file: truncated compressed stream: it ends inside a member")]
    # Truncated zstd: zstd hands on whole blocks only, so a one-block file loses all of it.
    whole = zstandard.ZstdCompressor().compress(_line({"id": "zs", "text": next(texts)}) + b"\n")
    (jsonl / "cut.jsonl.zst").write_bytes(whole[: len(whole) // 2])
    expected.append(Expect("truncated_zstd", "jsonl/cut.jsonl.zst", "after line 0", QUARANTINED,
                           "unreadable file: truncated compressed stream: it ends inside a member"))

    # A 100 MB single document (one line), then a good one: refused from its size, unread.
    with open(jsonl / "huge.jsonl", "wb") as handle:
        handle.write(b'{"id": "huge", "text": "')
        block = b"all work and no play makes a dull document " * (MB // 43)
        while handle.tell() < HUGE_BYTES:
            handle.write(block)
        handle.write(b'"}\n')
        size = handle.tell() - 1
        handle.write(_line({"id": "after-huge", "text": next(texts)}) + b"\n")
    expected += [Expect("huge_document", "jsonl/huge.jsonl", "line 1", QUARANTINED,
                        f"line is {size:,} bytes, over max_document_bytes=16,777,216"),
                 Expect("huge_document", "jsonl/huge.jsonl", "line 2", KEPT)]

    (jsonl / "empty.jsonl").write_bytes(b"")  # 0 bytes: an input with no records
    os.symlink("nowhere.jsonl", jsonl / "gone.jsonl")  # dangling
    expected.append(Expect("unreadable_dangling_symlink", "jsonl/gone.jsonl", "file", QUARANTINED,
                           "unreadable file: No such file or directory"))
    os.symlink("loop.jsonl", jsonl / "loop.jsonl")  # a symlink to itself
    expected.append(Expect("symlink_loop", "jsonl/loop.jsonl", "file", QUARANTINED,
                           "unreadable file: Too many levels of symbolic links"))
    # A folder symlink back up the tree: a '**' glob would meet every file again and again.
    (jsonl / "sub").mkdir()
    os.symlink("..", jsonl / "sub" / "up")

    # --- parquet ---------------------------------------------------------------------------
    parquet = root / "parquet"
    parquet.mkdir()
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": [next(texts), None]}), parquet / "ok.parquet")
    expected += [Expect("good", "parquet/ok.parquet", "row 1", KEPT),
                 Expect("text_null", "parquet/ok.parquet", "row 2", QUARANTINED, "field 'text' is null, not a string")]
    pq.write_table(pa.table({"id": ["q1", "q2", "q3"], "body": ["a", "b", "c"]}), parquet / "other.parquet")
    expected.append(Expect("parquet_other_schema", "parquet/other.parquet", "schema", QUARANTINED,
                           "Parquet schema has no column 'text' (columns: id, body); none of its 3 rows read"))
    pq.write_table(pa.table({"id": ["f1"], "text": ["lost with its footer"]}), parquet / "footer.parquet")
    data = bytearray((parquet / "footer.parquet").read_bytes())
    data[-12:-4] = b"\xff" * 8  # the footer's metadata bytes and length: garbage
    (parquet / "footer.parquet").write_bytes(bytes(data))
    expected.append(Expect("parquet_corrupt_footer", "parquet/footer.parquet", "after row 0", QUARANTINED,
                           "unreadable Parquet:"))
    (parquet / "empty.parquet").write_bytes(b"")

    # --- text folder -----------------------------------------------------------------------
    notes = root / "notes"
    notes.mkdir()
    (notes / "good.txt").write_text(next(texts))
    expected.append(Expect("good", "notes/good.txt", "good.txt", KEPT))
    (notes / "empty.txt").write_bytes(b"")
    expected.append(Expect("empty_file", "notes/empty.txt", "empty.txt", DROPPED, "empty_text"))
    (notes / "nul.txt").write_bytes(b"\x00" * 4096)
    expected.append(Expect("nul_bytes_file", "notes/nul.txt", "nul.txt", DROPPED, "empty_text"))
    (notes / "latin1.txt").write_bytes("Un café très bon, à la française.".encode("latin-1"))
    expected.append(Expect("invalid_utf8_file", "notes/latin1.txt", "latin1.txt", QUARANTINED,
                           "invalid UTF-8 at byte 6"))
    os.mkfifo(notes / "pipe.txt")
    expected.append(Expect("unreadable_fifo", "notes/pipe.txt", "pipe.txt", QUARANTINED,
                           "unreadable file: it is a FIFO, not a regular file"))

    # --- code tree with a binary file ------------------------------------------------------
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("def main():\n    return 1\n")
    expected.append(Expect("good", "repo/src/app.py", "src/app.py", KEPT))
    (repo / "src" / "blob.c").write_bytes(bytes(range(256)) * 64)  # NUL bytes and all
    expected.append(Expect("binary_in_code_tree", "repo/src/blob.c", "src/blob.c", DROPPED, "binary_file"))

    # --- html with no text -----------------------------------------------------------------
    site = root / "site"
    site.mkdir()
    (site / "blank.html").write_bytes(b"<html><head><style>p{}</style><script>var x = 1;</script></head>"
                                      b"<body><div><img src='a.png'></div></body></html>")
    expected.append(Expect("html_no_text", "site/blank.html", "blank.html", DROPPED, "empty_extraction"))

    config = {
        "output": str(root / "out"),
        "language": {"allowed": ["en"]},  # every source is declared English
        "sources": [
            {"name": "jsonl", "path": str(jsonl / "**" / "*.jsonl*"), "format": "jsonl", "kind": "web",
             "id_field": "id"},
            {"name": "parquet", "path": str(parquet / "*.parquet"), "format": "parquet", "kind": "web",
             "id_field": "id"},
            {"name": "notes", "path": str(notes), "format": "text", "kind": "web"},
            {"name": "repo", "path": str(repo), "format": "code"},
            {"name": "site", "path": str(site), "format": "html", "kind": "web"},
        ],
    }
    empty_files = {"jsonl/empty.jsonl": "empty_file", "parquet/empty.parquet": "empty_file"}
    return BadCorpus(config=config, expected=expected, empty_files=empty_files)


def default_good_texts() -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_curate_inputs import clean_articles

    return clean_articles(12)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "data" / "bad")
    if target.exists():
        shutil.rmtree(target)
    corpus = write_bad_inputs(target, default_good_texts())
    (target / "curate.json").write_text(json.dumps(corpus.config, indent=2) + "\n")
    (target / "expected.json").write_text(json.dumps([e.__dict__ for e in corpus.expected], indent=2) + "\n")
    print(f"wrote {len(corpus.expected)} expected records of {len({e.kind for e in corpus.expected})} kinds "
          f"to {target}; curate with: midtrain curate {target / 'curate.json'}")
