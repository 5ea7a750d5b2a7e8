"""One ``midtrain curate`` run over every input format with every kind of bad input mixed in:
each bad record is quarantined (or each deliberate skip dropped) with its file, location and
a clear message, everything else is curated, and the manifest's invariant holds."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from test_readers import make_tree, page, warc_record

from api.cli import main
from api.demo import sample_texts
from filters.base import Document
from filters.prose import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from corpus.manifest import check_invariant, read_manifest
from corpus.schema import shard_glob

pytestmark = pytest.mark.slow

def clean_articles(count: int) -> list[str]:
    """Real English articles from the sample that every prose filter keeps, so whatever is
    not kept below was lost to the bad input around it, not to a filter."""
    rules = [GopherRepetition(), GopherQuality(), C4Quality(), FineWebQuality()]
    articles = []
    for text in sample_texts("web/web-0000[02].jsonl.gz"):
        doc = Document(id="x", text=text, source="s", domain="web", lang="en")
        if len(text) > 1000 and all(rule.check(doc).keep for rule in rules):
            articles.append(text)
            if len(articles) == count:
                return articles
    raise AssertionError("the sample has too few clean articles")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("inputs")
    texts = iter(clean_articles(14))
    good = [json.dumps({"id": f"a{n}", "text": next(texts)}) for n in range(6)]
    lines = good[:2] + [
        "{not json",                                   # line 3: invalid JSON
        json.dumps([1, 2]),                            # line 4: not an object
        json.dumps({"id": "m"}),                       # line 5: text missing
        json.dumps({"id": "n", "text": None}),         # line 6: text null
    ] + good[2:4]
    jsonl = root / "jsonl"
    jsonl.mkdir()
    (jsonl / "plain.jsonl").write_bytes("\n".join(lines).encode() + b"\n" + b'{"id": "u", "text": "caf\xe9"}\n')
    (jsonl / "empty.jsonl").write_bytes(b"")
    cut = [json.dumps({"id": f"c{n}", "text": next(texts)}) for n in range(3)]
    whole = gzip.compress(("\n".join(cut) + "\n").encode())
    (jsonl / "cut.jsonl.gz").write_bytes(whole[: len(whole) - 40])  # inside the last line
    (jsonl / "frames.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        (json.dumps({"id": "z", "text": next(texts)}) + "\n").encode()))
    (jsonl / "huge.jsonl").write_bytes(b'{"id": "big", "text": "' + b"word " * 300_000 + b'"}\n')

    parquet = root / "parquet"
    parquet.mkdir()
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": [next(texts), None]}), parquet / "ok.parquet")
    pq.write_table(pa.table({"id": ["q1"], "body": ["no text column"]}), parquet / "other.parquet")

    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text(next(texts))
    (root / "notes" / "b.md").write_text(next(texts))
    make_tree(root / "repo")
    (root / "site").mkdir()
    (root / "site" / "p.html").write_bytes(page(7))
    warc = b"".join(gzip.compress(record) for record in [
        warc_record(1, page(1)),
        warc_record(2, b"%PDF-1.4", content_type="application/pdf"),
        b"WARC/1.0\r\nthis header line is garbage\r\n\r\n",
        warc_record(4, page(4)),
    ])
    (root / "crawl.warc.gz").write_bytes(warc)

    config = {
        "output": str(root / "out"),
        "language": {"allowed": ["en"]},
        "sources": [
            {"name": "jsonl", "path": str(jsonl / "*"), "format": "jsonl", "kind": "web",
             "id_field": "id", "max_document_bytes": 1_000_000},
            {"name": "parquet", "path": str(parquet / "*.parquet"), "format": "parquet", "kind": "web",
             "id_field": "id"},
            {"name": "notes", "path": str(root / "notes"), "format": "text", "kind": "web"},
            {"name": "repo", "path": str(root / "repo"), "format": "code"},
            {"name": "site", "path": str(root / "site"), "format": "html", "kind": "web"},
            {"name": "crawl", "path": str(root / "crawl.warc.gz"), "format": "warc", "kind": "web"},
        ],
    }
    (root / "curate.json").write_text(json.dumps(config))
    return {"root": root, "config": root / "curate.json", "out": root / "out"}


@pytest.fixture(scope="module")
def curated(ray_runtime, corpus) -> dict:
    assert main(["curate", str(corpus["config"])]) == 0
    out = corpus["out"]
    quarantine = pq.read_table(out / "quarantine").to_pylist()
    dropped = pq.read_table(out / "dropped").to_pylist()
    return {
        "out": out,
        "manifest": read_manifest(out),
        "quarantine": {(Path(row["file"]).name, row["location"]): row["error"] for row in quarantine},
        "dropped": {(row["source"], row["location"]): row["reason"] for row in dropped},
    }


def test_every_bad_input_is_quarantined_with_a_clear_message(curated):
    found = curated["quarantine"]
    expected_prefixes = {
        ("plain.jsonl", "line 3"): "invalid JSON",
        ("plain.jsonl", "line 4"): "record is a JSON list, not an object",
        ("plain.jsonl", "line 5"): "field 'text' is missing",
        ("plain.jsonl", "line 6"): "field 'text' is null, not a string",
        ("plain.jsonl", "line 9"): "invalid UTF-8",
        ("huge.jsonl", "line 1"): "line is 1,500,025 bytes, over max_document_bytes=1,000,000",
        ("ok.parquet", "row 2"): "field 'text' is null",
        ("other.parquet", "schema"): "Parquet schema has no column 'text'",
        ("cut.jsonl.gz", "after line 2"): "unreadable file: truncated compressed stream",
    }
    for where, prefix in expected_prefixes.items():
        assert where in found, f"{where} not quarantined; quarantine has {sorted(found)}"
        assert found[where].startswith(prefix), found[where]
    warc = [error for (name, _), error in found.items() if name == "crawl.warc.gz"]
    assert warc and all(error.startswith("corrupt WARC record") for error in warc)


def test_deliberate_skips_are_counted_drops(curated):
    reasons = curated["manifest"].counts.dropped
    assert reasons["vendored_file"] == 2 and reasons["generated_file"] == 3
    assert reasons["binary_file"] == 2 and reasons["not_html"] == 1
    assert curated["dropped"][("crawl", "record 2")] == "not_html"


def test_the_rest_is_curated_and_the_invariant_holds(curated):
    manifest = curated["manifest"]
    check_invariant(manifest.counts)
    files = {Path(record.path).name: record.documents for record in manifest.inputs}
    assert files["empty.jsonl"] == 0 and files["plain.jsonl"] == 9
    kept = {row[0] for row in duckdb.sql(
        f"SELECT id FROM read_parquet('{shard_glob(curated['out'])}')").fetchall()}
    for expected in ("jsonl/a0", "jsonl/a3", "jsonl/z", "jsonl/c0", "jsonl/c1", "parquet/p1", "notes/a.txt", "notes/b.md",
                     "repo/src/app.py", "repo/Makefile"):
        assert expected in kept, f"{expected} not kept; kept {sorted(kept)}"
    # The generated pages repeat one sentence, so the prose rules judge them; none is lost.
    pages = [reason for (source, where), reason in curated["dropped"].items()
             if source in ("crawl", "site") and where in ("record 1", "record 4", "p.html")]
    pages += [id_ for id_ in kept if id_.startswith(("crawl/", "site/"))]
    assert len(pages) == 3
    assert (curated["out"] / "report" / "stats.json").exists()
