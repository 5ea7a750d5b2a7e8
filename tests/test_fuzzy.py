"""Fuzzy dedup: datasketch-exact signatures, connected components on Ray, survivors by quality,
and incremental dedup against an earlier run's signatures."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash
from pydantic import ValidationError
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from corpus.manifest import check_invariant
from filters.minhash import MinHasher, MinHashScheme, similarity
from pipelines import fuzzy
from pipelines.config import CurateConfig
from pipelines.curate import run_curation

WORDS = ("river field library bridge market church children summer weather stone storm quarry "
         "council teacher farmer museum student garden winter harbour orchard village mill road "
         "lantern meadow forest valley castle tower school bakery").split()


def document(rng: random.Random, words: int = 120) -> str:
    sentences, left = [], words
    while left > 0:
        length = min(left, rng.randint(8, 16))
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + ".")
        left -= length
    return " ".join(sentences)


def edit(rng: random.Random, text: str, fraction: float) -> str:
    """Replace a ``fraction`` of the words by a word outside the vocabulary."""
    words = text.split()
    for index in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[index] = f"edited{rng.randrange(10**6)}"
    return " ".join(words)


def jaccard(a: str, b: str, n: int = 5) -> float:
    def shingles(text: str) -> set:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))}

    left, right = shingles(a), shingles(b)
    return len(left & right) / len(left | right)


# --- signatures ----------------------------------------------------------------------------


def test_signatures_are_datasketch_minhashes_of_the_shingles():
    scheme = MinHashScheme(ngram=5, bands=14, rows=8, seed=3)
    hasher = MinHasher(scheme)
    rng = random.Random(0)
    texts = [document(rng) for _ in range(20)] + ["", "!!! ???", "two words", "Ünïcode wörds, ok", "a b c d e"]
    signatures, has_words = hasher.signatures(texts)
    assert has_words.tolist() == [True] * 20 + [False, False, True, True, True]
    for text, signature, shingles in zip(texts, signatures, hasher.shingle_hashes(texts)):
        reference = MinHash(num_perm=scheme.num_perm, seed=scheme.seed, scheme="affine32", hashfunc=int)
        reference.update_batch(shingles.tolist())
        assert np.array_equal(reference.hashvalues, signature)
    # One shingle per window of 5 words; fewer words make one shingle.
    assert [len(s) for s in hasher.shingle_hashes(["a b c d e f g", "a b", "a b c d e"])] == [3, 1, 1]


def test_a_signature_does_not_depend_on_its_batch():
    hasher = MinHasher(MinHashScheme())
    rng = random.Random(1)
    texts = [document(rng, rng.randint(1, 300)) for _ in range(50)]
    together, _ = hasher.signatures(texts)
    alone = np.vstack([MinHasher(MinHashScheme()).signatures([text])[0] for text in texts])
    assert np.array_equal(together, alone)


def test_estimated_similarity_tracks_jaccard():
    hasher = MinHasher(MinHashScheme())
    rng = random.Random(2)
    for fraction in (0.0, 0.02, 0.05, 0.1, 0.3):
        base = document(rng, 300)
        copy = edit(rng, base, fraction)
        signatures, _ = hasher.signatures([base, copy])
        estimate = similarity(signatures[:1], signatures[1:])[0]
        assert abs(estimate - jaccard(base, copy)) < 0.15, fraction


# --- connected components ------------------------------------------------------------------


@pytest.mark.parametrize("nodes, edges, partitions, chain", [
    (60, 45, 1, False), (3000, 2500, 3, False), (400, 0, 2, True),
])
def test_components_match_scipy(ray_runtime, tmp_path, nodes, edges, partitions, chain):
    rng = np.random.default_rng(nodes)
    if chain:  # a path through every node in random order: the most rounds
        order = rng.permutation(nodes)
        a, b = order[:-1], order[1:]
    else:
        a, b = rng.integers(0, nodes, edges), rng.integers(0, nodes, edges)
        a, b = a[a != b], b[a != b]
    # Node numbers of file 1, with one "earlier run" file (0) before it.
    node = lambda values: (np.int64(1) << np.int64(32)) | values.astype(np.int64)  # noqa: E731
    prefix = fuzzy._both_directions(tmp_path / "edges" / "0", node(a), node(b), partitions)
    labels, rounds = fuzzy.connected_components([prefix], partitions, 1, tmp_path)
    table = pq.read_table(labels).to_pydict()
    got = dict(zip(table["ordinal"], [c & 0xFFFFFFFF for c in table["component"]]))
    assert set(table["input_index"]) == {0} and not any(table["earlier"])
    count, component = scipy_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(nodes, nodes)), directed=False)
    touched = set(a.tolist()) | set(b.tolist())
    expected = {}
    for label in range(count):
        members = [int(x) for x in np.flatnonzero(component == label) if x in touched]
        expected.update(dict.fromkeys(members, min(members, default=0)))
    assert got == expected
    assert rounds <= 2 * int(np.log2(nodes) + 2) ** 2


# --- through curation ----------------------------------------------------------------------


def _corpus(rng: random.Random, prefix: str, originals: int) -> tuple[list[dict], dict[str, str]]:
    """Originals, each with one copy edited past the threshold and one within it; returns the
    records and, for every planted near-duplicate, its original."""
    records, planted = [], {}
    for i in range(originals):
        base = document(rng)
        records.append({"id": f"{prefix}{i}", "text": base})
        near, far = edit(rng, base, 0.01), edit(rng, base, 0.25)
        assert jaccard(base, near) > 0.9 and jaccard(base, far) < 0.5
        records.append({"id": f"{prefix}{i}-near", "text": near})
        records.append({"id": f"{prefix}{i}-far", "text": far})
        planted[f"{prefix}{i}-near"] = f"{prefix}{i}"
    return records, planted


def _config(tmp_path: Path, name: str, files: dict[str, list[dict]], **settings) -> CurateConfig:
    for source, records in files.items():
        path = tmp_path / name / f"{source}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
    off = dict.fromkeys(["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality",
                         "code_rules", "math_density", "pii_redaction"], False)
    return CurateConfig.model_validate({
        "output": str(tmp_path / name / "out"),
        "language": {"min_score": {}},
        "filters": off,
        "sources": [{"name": source, "path": str(tmp_path / name / f"{source}.jsonl"), "format": "jsonl",
                     "kind": "web", "id_field": "id"} for source in files],
        **settings,
    })


def _rows(pattern: Path) -> dict[str, dict]:
    if not list(pattern.parent.parent.glob(f"{pattern.parent.name}/{pattern.name}")):
        return {}  # e.g. nothing dropped: no dropped files
    return {row["id"]: row for row in duckdb.sql(f"SELECT * FROM read_parquet('{pattern}')").to_arrow_table().to_pylist()}


def _outcome(out: Path) -> tuple[dict, dict]:
    return _rows(out / "shards" / "*" / "*.parquet"), _rows(out / "dropped" / "*.parquet")


def test_near_duplicates_across_sources_keep_the_best_copy(ray_runtime, tmp_path):
    rng = random.Random(5)
    records, planted = _corpus(rng, "d", 12)
    alone = document(rng)
    records += [{"id": "alone", "text": alone}, {"id": "exact", "text": alone}]
    # Two sources, so clusters span them.
    files = {"a": records[::2], "b": records[1::2]}
    full_id = {record["id"]: f"{source}/{record['id']}" for source, part in files.items() for record in part}
    without = run_curation(_config(tmp_path, "plain", files, fuzzy_dedup={"enabled": False}), progress=lambda _: None)
    quality = {doc: row["quality"] for doc, row in _outcome(tmp_path / "plain" / "out")[0].items()}
    assert without.counts.kept == len(records) - 1  # only the exact copy goes

    manifest = run_curation(_config(tmp_path, "fuzzy", files), progress=lambda _: None)
    check_invariant(manifest.counts)
    kept, dropped = _outcome(tmp_path / "fuzzy" / "out")
    assert manifest.counts.dropped == {"exact_duplicate": 1, "near_duplicate": 12}
    assert dropped[full_id["exact"]]["dup_cluster"] == kept[full_id["alone"]]["dup_cluster"]
    assert kept[full_id["alone"]]["dup_cluster"].startswith("exact-")
    assert manifest.stages[-2:] == ["exact_dedup", "fuzzy_dedup"]
    for near, original in planted.items():
        pair = {full_id[near], full_id[original]}
        survivors = pair & set(kept)
        assert len(survivors) == 1, pair
        (survivor,) = survivors
        (loser,) = pair - survivors
        assert dropped[loser]["reason"] == "near_duplicate" and dropped[loser]["stage"] == "fuzzy_dedup"
        assert quality[survivor] >= quality[loser]
        assert kept[survivor]["dup_cluster"] == dropped[loser]["dup_cluster"]
        assert kept[survivor]["dup_cluster"].startswith("near-")
    # Edited past the threshold: not a near-duplicate of anything.
    assert all(full_id[f"d{i}-far"] in kept for i in range(12))
    # The kept documents' signatures are there for later runs.
    signatures = pq.read_table(sorted((tmp_path / "fuzzy" / "out" / "minhash").glob("part-*.parquet")))
    assert sorted(signatures.column("id").to_pylist()) == sorted(kept)
    assert json.loads((tmp_path / "fuzzy" / "out" / "minhash" / "scheme.json").read_text()) == {
        "ngram": 5, "bands": 14, "rows": 8, "seed": 1}


def test_a_run_whose_every_document_is_dropped_before_fuzzy_dedup_completes(ray_runtime, tmp_path):
    """No signature reaches fuzzy dedup (found by the API load test: a run failed in the
    bucket stage on an empty gather)."""
    rng = random.Random(8)
    config = _config(tmp_path, "none", {"web": [{"id": f"d{i}", "text": document(rng)} for i in range(6)]})
    config = config.model_copy(update={"language": config.language.model_copy(update={"allowed": ["fr"]})})
    manifest = run_curation(config, progress=lambda line: None)
    assert manifest.counts.kept == 0 and manifest.counts.dropped == {"language_not_allowed": 6}


def test_threshold_decides_which_pairs_are_duplicates(ray_runtime, tmp_path):
    rng = random.Random(6)
    base = document(rng, 400)
    copy = edit(rng, base, 0.02)  # Jaccard about 0.9
    similarity_now = jaccard(base, copy)
    files = {"web": [{"id": "a", "text": base}, {"id": "b", "text": copy}]}
    strict = run_curation(_config(tmp_path, "strict", files, fuzzy_dedup={"threshold": 0.99}), progress=lambda _: None)
    loose = run_curation(_config(tmp_path, "loose", files, fuzzy_dedup={"threshold": 0.7}), progress=lambda _: None)
    assert 0.8 < similarity_now < 0.97
    assert strict.counts.kept == 2 and loose.counts.kept == 1


def _copy_at(rng: random.Random, base: str, low: float, high: float) -> str:
    """An edited copy of ``base`` whose Jaccard similarity with it lies in [low, high)."""
    for _ in range(1000):
        copy = edit(rng, base, rng.uniform(0.005, 0.05))
        if low <= jaccard(base, copy) < high:
            return copy
    raise AssertionError("no copy in range")


def test_pairs_near_the_threshold_are_decided_on_their_text(ray_runtime, tmp_path):
    """The signature estimate errs by about 0.04 at 0.8; close pairs are decided on the text."""
    rng = random.Random(11)
    hasher = MinHasher(MinHashScheme())
    originals, above, below = [], [], []
    for i in range(10):
        base = document(rng, 300)
        originals.append({"id": f"o{i}", "text": base})
        above.append({"id": f"above{i}", "text": _copy_at(rng, base, 0.84, 0.87)})
        below.append({"id": f"below{i}", "text": _copy_at(rng, base, 0.76, 0.795)})
    signatures, _ = hasher.signatures([r["text"] for r in originals + below])
    estimates = similarity(signatures[:10], signatures[10:])
    assert (estimates >= 0.8).any()  # the estimate alone would have dropped some of these

    run_curation(_config(tmp_path, "above", {"web": originals + above}), progress=lambda _: None)
    kept, dropped = _outcome(tmp_path / "above" / "out")
    assert len(kept) == 10 and {row["reason"] for row in dropped.values()} == {"near_duplicate"}
    run_curation(_config(tmp_path, "below", {"web": originals + below}), progress=lambda _: None)
    kept, dropped = _outcome(tmp_path / "below" / "out")
    assert len(kept) == 20 and not dropped


def test_a_later_run_drops_what_an_earlier_run_kept(ray_runtime, tmp_path):
    rng = random.Random(8)
    first, _ = _corpus(rng, "old", 6)
    earlier = run_curation(_config(tmp_path, "first", {"web": first}), progress=lambda _: None)
    new = [document(rng) for _ in range(5)]
    second = [{"id": f"new{i}", "text": text} for i, text in enumerate(new)]
    second += [{"id": "again", "text": edit(rng, first[0]["text"], 0.01)},
               {"id": "verbatim", "text": first[3]["text"]}]
    reference = str(tmp_path / "first" / "out")
    manifest = run_curation(_config(tmp_path, "second", {"web": second}, fuzzy_dedup={"reference": [reference]}),
                            progress=lambda _: None)
    kept, dropped = _outcome(tmp_path / "second" / "out")
    assert sorted(kept) == [f"web/new{i}" for i in range(5)]
    assert {doc: row["reason"] for doc, row in dropped.items()} == {
        "web/again": "earlier_run_duplicate", "web/verbatim": "earlier_run_duplicate"}
    # Named after the earlier run's document (the original or its near copy, whichever it kept).
    assert dropped["web/again"]["dup_cluster"] in {"earlier:web/old0", "earlier:web/old0-near"}
    assert dropped["web/verbatim"]["dup_cluster"] in {"earlier:web/old1", "earlier:web/old1-near"}
    assert earlier.counts.kept > 0 and manifest.counts.dropped == {"earlier_run_duplicate": 2}


def test_references_are_checked_at_the_door(ray_runtime, tmp_path):
    files = {"web": [{"id": "a", "text": document(random.Random(9))}]}
    run_curation(_config(tmp_path, "ref", files), progress=lambda _: None)
    reference = str(tmp_path / "ref" / "out")
    with pytest.raises(ValidationError, match=r"signatures made with another scheme \(bands 14 there, 16 here"):
        _config(tmp_path, "x", files, fuzzy_dedup={"reference": [reference], "bands": 16})
    with pytest.raises(ValidationError, match="no minhash/scheme.json"):
        _config(tmp_path, "x", files, fuzzy_dedup={"reference": [str(tmp_path / "nowhere")]})


def test_partitioning_does_not_change_the_result(ray_runtime, tmp_path, monkeypatch):
    rng = random.Random(10)
    records, _ = _corpus(rng, "p", 8)
    files = {"a": records[::3], "b": records[1::3], "c": records[2::3]}  # clusters span files
    config = _config(tmp_path, "one", files)
    run_curation(config, progress=lambda _: None)
    monkeypatch.setattr(fuzzy, "_ROWS_PER_PARTITION", 7)  # many partitions for a few rows
    monkeypatch.setattr(fuzzy, "_FILE_PARTITIONS", 2)  # tasks that read several files
    run_curation(config.model_copy(update={"output": str(tmp_path / "many" / "out")}), progress=lambda _: None)
    for name in ("shards", "dropped", "minhash"):
        one = sorted((tmp_path / "one" / "out" / name).rglob("*.parquet"))
        many = sorted((tmp_path / "many" / "out" / name).rglob("*.parquet"))
        assert [p.read_bytes() for p in one] == [p.read_bytes() for p in many], name
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/one/out/dropped/*.parquet'").fetchall() == [(8,)]


def test_semantic_dedup_drops_what_says_the_same_after_fuzzy_dedup(ray_runtime, tmp_path):
    """Paraphrases share no 5-gram, so fuzzy dedup keeps them; semantic dedup does not."""
    texts = {
        "reverse": "How do I reverse a list in Python?",
        "reverse-again": "What is the way to reverse a Python list?",
        "penguins": "Penguins huddle together to survive the Antarctic winter.",
        "penguins-again": "To survive the Antarctic winter, penguins huddle together.",
        "volcanoes": "Volcanoes form where tectonic plates diverge or converge beneath the crust.",
        "bread": "Bake the bread at 220 degrees for thirty minutes until the crust is golden.",
    }
    files = {"web": [{"id": key, "text": text} for key, text in texts.items()]}
    plain = run_curation(_config(tmp_path, "plain", files), progress=lambda _: None)
    assert plain.counts.kept == 6
    manifest = run_curation(_config(tmp_path, "semantic", files, semantic_dedup={"enabled": True, "threshold": 0.95}),
                            progress=lambda _: None)
    kept, dropped = _outcome(tmp_path / "semantic" / "out")
    assert manifest.counts.dropped == {"semantic_duplicate": 2} and manifest.stages[-1] == "semantic_dedup"
    quality = {doc: row["quality"] for doc, row in _outcome(tmp_path / "plain" / "out")[0].items()}
    for name in ("reverse", "penguins"):
        (loser,) = {f"web/{name}", f"web/{name}-again"} & set(dropped)
        (survivor,) = {f"web/{name}", f"web/{name}-again"} & set(kept)
        assert dropped[loser]["reason"] == "semantic_duplicate" and dropped[loser]["stage"] == "semantic_dedup"
        assert dropped[loser]["dup_cluster"] == f"semantic:{survivor}"
        assert quality[survivor] >= quality[loser]
    check_invariant(manifest.counts)
