"""Semantic deduplication: the bundled sentence embedder, the greedy walk against a brute-force
reference, and runs on Ray with the real model over a few near-duplicate and unrelated texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

import pipelines.semantic as semantic
from filters.embedding import DIMENSION, SentenceEmbedder, load_embedder
from pipelines.semantic import DUPLICATE_SCHEMA, SemanticDedupSettings, semantic_duplicates, walk_cluster

LONG = " ".join(f"Sentence number {i} talks about rivers, mountains and the weather in spring." for i in range(200))
# sentence-transformers 6.2.0 on the same model files (first six components of each vector).
REFERENCE = {
    "This is an example sentence": [0.067657, 0.063496, 0.048713, 0.079305, 0.037448, 0.002653],
    LONG: [0.006263, 0.067623, 0.073505, -0.031019, -0.010666, 0.042581],
}

# (text, quality): each pair is one text twice with small edits; the better copy must survive.
PAIRS = [
    (("The cat sat on the mat and looked out of the window at the birds.", 0.4),
     ("The cat sat on the mat and looked out the window at the birds.", 0.9)),
    (("Photosynthesis converts light energy into chemical energy stored in glucose.", 0.8),
     ("Photosynthesis turns light energy into chemical energy that is stored in glucose.", 0.3)),
    (("To install the package, run pip install and then import it in your script.", 0.6),
     ("To install the package, run pip install, then import it in your script.", 0.6)),  # a tie: smaller id
    (("How do I reverse a list in Python?", 0.2),
     ("What is the way to reverse a Python list?", 0.7)),
]
UNRELATED = [
    "Volcanoes form where tectonic plates diverge or converge beneath the crust.",
    "Bake the bread at 220 degrees for thirty minutes until the crust is golden.",
    "The treaty was signed in 1648, ending the Thirty Years' War in central Europe.",
    "def add(a, b):\n    return a + b",
    "Mitochondria produce most of the chemical energy that powers a cell.",
    "The orchestra rehearsed the symphony twice before the evening concert.",
    "Quarterly revenue grew by twelve percent, driven by strong cloud sales.",
    "A haiku has three lines of five, seven and five syllables.",
    "The river flooded the valley after a week of heavy autumn rain.",
    "Use a torque wrench to tighten the wheel nuts in a star pattern.",
    "Penguins huddle together to survive the Antarctic winter.",
    "The museum's new wing displays ceramics from the Ming dynasty.",
    "Regular expressions match patterns of characters in strings.",
    "She trained for the marathon by running forty miles every week.",
    "Vaccines train the immune system to recognise a pathogen.",
    "The library extended its opening hours during the exam period.",
]


# --------------------------------------------------------------------------- the embedder


def test_embeddings_are_the_models_unit_vectors_and_deterministic():
    embedder = load_embedder()
    texts = list(REFERENCE) + UNRELATED[:6]
    first = embedder.embed(texts)
    assert first.shape == (len(texts), DIMENSION) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    for row, expected in zip(first, REFERENCE.values()):
        np.testing.assert_allclose(row[:6], expected, atol=2e-6)
    assert embedder.embed(texts).tobytes() == first.tobytes()
    assert SentenceEmbedder(threads=2).embed(texts).tobytes() == first.tobytes()
    assert load_embedder() is embedder
    assert embedder.embed([]).shape == (0, DIMENSION)


def test_long_texts_are_cut_before_tokenising_without_changing_the_word_pieces():
    embedder = load_embedder()
    full = embedder._tokenizer.encode(LONG, add_special_tokens=True).ids  # the whole text tokenised
    ids = embedder.token_ids([LONG, "short text", "x" * 5000 + " end"])
    assert ids[0] == [*full[:255], full[-1]] and len(ids[0]) == 256
    assert ids[1] == embedder._tokenizer.encode("short text").ids
    assert len(SentenceEmbedder(max_tokens=128).token_ids([LONG])[0]) == 128
    with pytest.raises(ValueError):
        SentenceEmbedder(max_tokens=512)


# --------------------------------------------------------------------------- the greedy walk


def _brute_force(points: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    kept: list[int] = []
    found = []
    for i, point in enumerate(points):
        similarities = [float(points[j] @ point) for j in kept]
        if similarities and max(similarities) >= threshold:
            found.append((i, kept[int(np.argmax(similarities))]))
        else:
            kept.append(i)
    return found


def test_the_blocked_walk_is_the_greedy_walk(monkeypatch):
    rng = np.random.default_rng(7)
    bases = rng.normal(size=(12, 16))
    points = bases[rng.integers(0, 12, size=90)] + rng.normal(scale=0.25, size=(90, 16))
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    expected = _brute_force(points, 0.9)
    assert 10 < len(expected) < 80
    for block, slab in ((1024, 8192), (7, 5), (1, 1)):
        monkeypatch.setattr(semantic, "_BLOCK", block)
        monkeypatch.setattr(semantic, "_KEPT_SLAB", slab)
        rows, of, similarity = walk_cluster(points, 0.9)
        assert list(zip(rows.tolist(), of.tolist())) == expected
        assert (similarity >= 0.9).all()
        np.testing.assert_allclose(similarity, np.einsum("ij,ij->i", points[rows], points[of]), atol=1e-5)


# --------------------------------------------------------------------------- on Ray


def test_windows_follow_file_rows_across_row_groups(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"n": list(range(10))}), path, row_group_size=3)
    windows = [w.column("n").to_pylist() for w in semantic._windows(str(path), 4, 10, 4, ["n"])]
    assert windows == [[4, 5, 6, 7], [8, 9]]
    assert [w.num_rows for w in semantic._windows(str(path), 0, 10, 4, ["n"])] == [4, 4, 2]


def _candidates(folder: Path) -> tuple[list[Path], dict[int, tuple[str, float]], list[tuple[int, int]]]:
    """Three candidate files; returns them, each node's (id, quality), and the expected
    (duplicate, kept) node pairs."""
    rows = []
    expected = []
    for number, (a, b) in enumerate(PAIRS):
        node_a, node_b = 100 + 2 * number, 101 + 2 * number
        rows += [(node_a, f"pair{number}-a", a[1], a[0]), (node_b, f"pair{number}-b", b[1], b[0])]
        dropped, kept = (node_a, node_b) if (-a[1], "a") > (-b[1], "b") else (node_b, node_a)
        expected.append((dropped, kept))
    rows += [(500 - i, f"other{i:02d}", 0.5, text) for i, text in enumerate(UNRELATED)]
    order = np.random.default_rng(3).permutation(len(rows))
    rows = [rows[i] for i in order]
    paths = []
    for number, part in enumerate((rows[:11], rows[11:13], rows[13:])):
        path = folder / f"candidates-{number}.parquet"
        node, ids, quality, text = zip(*part)
        pq.write_table(pa.table({"node": pa.array(node, pa.int64()), "id": list(ids),
                                 "quality": pa.array(quality, pa.float64()), "text": list(text)}),
                       path, row_group_size=3)  # row groups that cut embedding windows
        paths.append(path)
    return paths, {row[0]: (row[1], row[2]) for row in rows}, sorted(expected)


def test_near_duplicates_are_found_and_the_better_copy_survives(ray_runtime, tmp_path, monkeypatch):
    paths, documents, expected = _candidates(tmp_path)
    settings = SemanticDedupSettings(enabled=True, batch_size=4, rows_per_task=4, sample=12)
    lines: list[str] = []
    output = semantic_duplicates(paths, settings, tmp_path / "run1", progress=lines.append)
    table = pq.read_table(output)
    assert table.schema == DUPLICATE_SCHEMA
    found = sorted(zip(table.column("node").to_pylist(), table.column("duplicate_of").to_pylist()))
    assert found == expected  # every near-identical pair, nothing unrelated, the better copy kept
    assert min(table.column("similarity").to_pylist()) >= settings.threshold
    assert not set(table.column("duplicate_of").to_pylist()) & set(table.column("node").to_pylist())
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]  # intermediates removed
    assert any("embedded 24 documents in 7 tasks" in line for line in lines)
    assert any("5 clusters fitted on 12 embeddings" in line for line in lines)

    # Other task splits, other groups of clusters: the same bytes.
    other = SemanticDedupSettings(enabled=True, batch_size=4, rows_per_task=12, sample=12)
    monkeypatch.setattr(semantic, "_GROUP_DOCS", 4)
    again = semantic_duplicates(list(reversed(paths)), other, tmp_path / "run2")
    assert again.read_bytes() == output.read_bytes()
    assert semantic_duplicates(paths, settings, tmp_path / "run1").read_bytes() == output.read_bytes()

    # One cluster: the same pairs at 0.9 (unrelated texts stay far below); none above every pair.
    for threshold, pairs in ((0.9, expected), (0.9999, [])):
        one = SemanticDedupSettings(threshold=threshold, clusters=1, batch_size=4, rows_per_task=8)
        table = pq.read_table(semantic_duplicates(paths, one, tmp_path / f"at-{threshold}"))
        assert sorted(zip(table.column("node").to_pylist(), table.column("duplicate_of").to_pylist())) == pairs


def test_no_candidates_give_an_empty_file(ray_runtime, tmp_path):
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"node": pa.array([], pa.int64()), "id": pa.array([], pa.string()),
                             "quality": pa.array([], pa.float64()), "text": pa.array([], pa.string())}), empty)
    output = semantic_duplicates([empty], SemanticDedupSettings(), tmp_path / "work")
    assert pq.read_table(output).num_rows == 0 and pq.read_table(output).schema == DUPLICATE_SCHEMA


def test_a_candidate_file_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"node": [1], "id": ["a"], "text": ["x"]}), path)
    with pytest.raises(ValueError, match="lacks the column.s. quality"):
        semantic_duplicates([path], SemanticDedupSettings(), tmp_path / "work")


@pytest.mark.parametrize("fields", [
    {"threshold": 0.0}, {"threshold": 1.01}, {"clusters": 0}, {"sample": 0}, {"seed": -1},
    {"batch_size": 64, "rows_per_task": 100}, {"max_tokens": 512}, {"minhash": True},
])
def test_settings_are_checked(fields):
    with pytest.raises(ValidationError):
        SemanticDedupSettings(**fields)


def test_settings_defaults():
    settings = SemanticDedupSettings()
    assert not settings.enabled and settings.threshold == 0.95 and settings.clusters is None
    assert SemanticDedupSettings(threshold=1.0).threshold == 1.0
