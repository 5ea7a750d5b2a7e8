"""Selectors compiled to parameterised DuckDB queries over curated shards."""

from __future__ import annotations

from pathlib import Path

import pytest
from mixer_fixtures import corpus_dir, document, sample_rows, write_corpus  # noqa: F401

from mixer.corpora import CorpusError
from mixer.select import compile_selector, select_documents, selection_query
from mixer.spec import Selector


def ids(corpus: Path | list[Path], **fields) -> list[str]:
    corpora = corpus if isinstance(corpus, list) else [corpus]
    table = select_documents([str(path) for path in corpora], Selector(**fields))
    return table.column("id").to_pylist()


def expected(predicate) -> list[str]:
    return sorted(row["id"] for row in sample_rows() if predicate(row))


def test_empty_selector_takes_everything_in_id_order(corpus_dir: Path) -> None:
    selected = select_documents([str(corpus_dir)], Selector())
    assert selected.column_names == ["id", "text", "domain", "source", "n_tokens"]
    assert selected.column("id").to_pylist() == expected(lambda row: True)


@pytest.mark.parametrize(
    ("fields", "predicate"),
    [
        ({"domain": "code"}, lambda row: row["domain"] == "code"),
        ({"domain": ["web", "math"]}, lambda row: row["domain"] in ("web", "math")),
        ({"source": ["mathset"]}, lambda row: row["source"] == "mathset"),
        ({"lang": "fr"}, lambda row: row["lang"] == "fr"),
        ({"min_quality": 0.5}, lambda row: row["quality"] >= 0.5),
        ({"max_quality": 0.2}, lambda row: row["quality"] <= 0.2),
        ({"min_quality": 0.3, "max_quality": 0.6}, lambda row: 0.3 <= row["quality"] <= 0.6),
        ({"tags_any": ["long_doc", "nope"]}, lambda row: "long_doc" in row["tags"]),
        ({"tags_none": ["long_doc"]}, lambda row: "long_doc" not in row["tags"]),
        ({"min_tokens": 100}, lambda row: row["n_tokens"] >= 100),
        ({"max_tokens": 20}, lambda row: row["n_tokens"] <= 20),
        (
            {"domain": "web", "lang": "en", "tags_none": ["long_doc"], "min_quality": 0.5},
            lambda row: row["domain"] == "web" and row["lang"] == "en"
            and "long_doc" not in row["tags"] and row["quality"] >= 0.5,
        ),
    ],
)
def test_each_predicate(corpus_dir: Path, fields: dict, predicate) -> None:
    selected = ids(corpus_dir, **fields)
    assert selected == expected(predicate)
    assert selected  # every case matches something, so the comparison means something


def test_user_values_are_parameters_never_sql(corpus_dir: Path) -> None:
    selector = Selector(source=["o'brien"], tags_any=["x'); DROP TABLE t; --"], min_quality=0.25)
    compiled = compile_selector(selector)
    assert not any(value in compiled.where for value in ("brien", "DROP", "0.25"))
    assert compiled.params == [["o'brien"], 0.25, ["x'); DROP TABLE t; --"]]
    query = selection_query(selector, [str(corpus_dir)])
    assert str(corpus_dir) not in query.sql  # even the shard globs are bound
    assert query.sql.count("?") == len(query.params)
    assert ids(corpus_dir, source="o'brien") == ["web-obrien"]
    assert ids(corpus_dir, source="o'brien", tags_any=["x'); DROP TABLE t; --"]) == []


def test_empty_lists_match_nothing_or_everything(corpus_dir: Path) -> None:
    assert ids(corpus_dir, domain=[]) == []
    assert ids(corpus_dir, tags_any=[]) == []
    assert len(ids(corpus_dir, tags_none=[])) == len(sample_rows())


def test_several_corpora_are_read_together(corpus_dir: Path, tmp_path: Path) -> None:
    other = write_corpus(tmp_path / "other", [document("zz-1", "extra text", "synthetic")])
    assert ids([corpus_dir, other], domain="synthetic") == ["zz-1"]
    assert len(ids([corpus_dir, other])) == len(sample_rows()) + 1


def test_corpus_without_shards_is_a_clear_error(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=rf"{tmp_path}/shards: no shards"):
        ids([corpus_dir, tmp_path])
