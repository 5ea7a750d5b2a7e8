"""Semantic deduplication on Ray, after SemDeDup (Abbas et al., *SemDeDup: Data-efficient
learning at web-scale through semantic deduplication*, 2023): documents whose sentence
embeddings are nearly parallel say the same thing, even when they share few word n-grams.

1. **Embed.** Tasks over row ranges of the candidate files embed every text with
   all-MiniLM-L6-v2 (filters/embedding.py: 384 floats, unit length) and write them, with each
   document's node, id and quality, to Parquet under the work folder. Texts never meet in one
   process: a task holds ``batch_size`` of them at a time.
2. **Cluster.** Spherical k-means (cosine, as the vectors are unit: assign to the centroid of
   largest dot product, move each centroid to its members' normalised mean), k-means++
   seeding, ``clusters`` centroids (default about the square root of the document count),
   fitted in one task on at most ``sample`` embeddings: the documents whose seeded hash of
   their node is smallest, so the sample does not depend on file order or task split.
3. **Assign.** Tasks give every embedding its nearest centroid and scatter the rows into
   groups of clusters (cluster mod groups; a group holds about ``_GROUP_DOCS`` documents).
4. **Deduplicate.** A task per group walks each cluster in order of quality descending, then
   id ascending: a document whose cosine similarity to a document already kept in its
   cluster reaches ``threshold`` is a duplicate of the most similar one (on a tie, the
   earlier kept); otherwise it is kept. Similarities are computed a block of documents
   against a slab of kept ones at a time, so a cluster of 50k documents needs about 200 MB,
   not a 50k x 50k matrix.

What is exact and what is not. Within a cluster the greedy walk is exact: every pair of a
kept document and a later one is compared. Across clusters nothing is compared, so two
near-identical documents that k-means puts in different clusters both survive; SemDeDup
accepts this (it is what makes the method sub-quadratic). On the raw bundled sample
(examples/sample, 3,291 documents, 57 clusters) the clustered walk finds all 452 duplicates
that one walk over every document finds at 0.95, and 717 of 717 at 0.9 (with 20 clusters:
451 and 713). The duplicate relation is not transitive: A kept, B a duplicate of A, and C
similar to B but not to A keeps C. SemDeDup keeps in each group of duplicates the document
farthest from its cluster's centroid (the least "prototypical"); our documents carry a
quality score and a user wants the best copy of a text kept, so the walk keeps by quality,
and keeping greedily means a kept document is never a duplicate of another kept one. At
0.95 templated texts that differ in one word ("the canvas x coordinate" and "the canvas y
coordinate") can be duplicates: semantic similarity is not identity.

Determinism: the same candidates and settings give a byte-identical output file, however
many tasks run, in whatever order the files come. A text's vector can differ in its last bits with the texts
batched beside it, so texts are embedded in fixed windows of ``batch_size`` consecutive rows
of a file (tasks are whole windows, ``rows_per_task`` a multiple of ``batch_size``), and
centroids are matched in the same windows; the sample is chosen by node, k-means is seeded,
every matrix product runs on one thread, and each cluster's walk depends only on its own
rows. Identical bytes are a promise for one machine type and one software stack: another
CPU's matrix kernels may round differently.

Cost: embedding dominates. On one CPU thread the model embeds about 8 web documents a second
at 256 word pieces (about 20 at 128), so a million documents is some 35 CPU-hours; k-means on
100k embeddings and 316 clusters takes under a minute, and the walk over a worst-case
cluster of 50k documents, none duplicates, about 35 s and 200 MB.

Ray tasks on Parquet files rather than Ray Data, as in pipelines/fuzzy.py: every step is a
fan-out over files the previous step wrote, and windows must follow file rows exactly,
which Ray Data's block splitting does not promise.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpus.schema import PARQUET_COMPRESSION
from filters.embedding import DIMENSION, MAX_TOKENS
from pipelines.runtime import ensure_ray

DUPLICATE_SCHEMA = pa.schema([
    pa.field("node", pa.int64(), nullable=False),
    pa.field("duplicate_of", pa.int64(), nullable=False),  # the kept document's node
    pa.field("similarity", pa.float32(), nullable=False),  # cosine to it, >= threshold
])
_EMBEDDED_SCHEMA = pa.schema([
    pa.field("node", pa.int64()),
    pa.field("id", pa.string()),
    pa.field("quality", pa.float64()),
    pa.field("embedding", pa.list_(pa.float32(), DIMENSION)),
])
_GROUPED_SCHEMA = _EMBEDDED_SCHEMA.append(pa.field("cluster", pa.int32()))
_GROUP_DOCS = 20_000  # documents per group of clusters (one deduplication task), about 35 MB
_MAX_GROUPS = 256  # bounds the files the assign step writes: tasks x groups
_BLOCK = 1024  # documents of a cluster compared at once against kept ones
_KEPT_SLAB = 8192  # kept documents per similarity product: a block needs 32 MB
_FIT_ROWS = 8192  # sample rows matched against centroids at once while fitting
_OUTPUT = "duplicates.parquet"

Progress = Callable[[str], None]


class SemanticDedupSettings(BaseModel):
    """The curate config's ``semantic_dedup`` section; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    clusters: int | None = Field(default=None, ge=1)  # None: round(sqrt(documents))
    # Cosine at or above which a document is a duplicate. Cosines are float32 (off by ~1e-7),
    # so 1.0 may miss even identical vectors: use 0.999 for "the same vector".
    threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int = Field(default=0, ge=0)  # the k-means sample and seeding
    sample: int = Field(default=100_000, ge=1)  # embeddings k-means is fitted on, at most
    iterations: int = Field(default=20, ge=1)  # k-means rounds at most (fewer once stable)
    # Texts embedded together: a fixed window of rows. Like ``seed``, part of the result (a
    # vector's last bits depend on its window); ``rows_per_task`` is not.
    batch_size: int = Field(default=256, ge=1)
    rows_per_task: int = Field(default=4096, ge=1)  # rows per embedding task, whole windows
    # Word pieces per text, [CLS] and [SEP] included: 256 as the model card; 128, the length
    # the model was trained at, embeds web documents two to three times as fast.
    max_tokens: int = Field(default=MAX_TOKENS, ge=8, le=MAX_TOKENS)

    @model_validator(mode="after")
    def _whole_windows(self) -> "SemanticDedupSettings":
        if self.rows_per_task % self.batch_size:
            raise ValueError(f"semantic_dedup: rows_per_task ({self.rows_per_task}) must be a multiple "
                             f"of batch_size ({self.batch_size}), so tasks cut no embedding window")
        return self


# --------------------------------------------------------------------------- small pieces


def _products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` in float32 on one thread (set by the caller): the same shapes and values
    give the same bits."""
    import torch

    def tensor(x: np.ndarray):
        # Arrays read from Parquet are read-only views, which torch will not wrap.
        return torch.from_numpy(x if x.flags.writeable and x.flags.c_contiguous else np.array(x, order="C"))

    return (tensor(a) @ tensor(b).T).numpy()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _sample_keys(nodes: np.ndarray, seed: int) -> np.ndarray:
    """A seeded bijection of node numbers (splitmix64): the smallest keys are the sample."""
    z = nodes.astype(np.uint64) + np.uint64((seed + 1) * 0x9E3779B97F4A7C15 % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list column of floats as an (n, DIMENSION) float32 array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, DIMENSION)


def _windows(path: str, start: int, end: int, size: int, columns: list[str]) -> Iterator[pa.Table]:
    """Rows [start, end) of a Parquet file in tables of ``size`` rows (the last may be short),
    reading only the row groups that hold them, a batch at a time."""
    parquet = pq.ParquetFile(path)
    bounds = np.cumsum([0] + [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])
    groups = [g for g in range(parquet.num_row_groups) if bounds[g] < end and bounds[g + 1] > start]
    if not groups:
        return
    position = int(bounds[groups[0]])
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in parquet.iter_batches(batch_size=size, row_groups=groups, columns=columns):
        low, high = position, position + batch.num_rows
        position = high
        first, last = max(low, start), min(high, end)
        if first >= last:
            continue
        pending.append(batch.slice(first - low, last - first))
        held += last - first
        while held >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _write(table: pa.Table, path: Path) -> None:
    """Write all or nothing: a file appears under its name only when complete."""
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial, compression=PARQUET_COMPRESSION)
    os.replace(partial, path)


# --------------------------------------------------------------------------- 1. embed


def _embed_unit(path: str, start: int, end: int, settings_json: str, out: str) -> int:
    """Embed rows [start, end) of one candidate file into ``out``; returns the rows."""
    from filters.embedding import load_embedder

    settings = SemanticDedupSettings.model_validate_json(settings_json)
    embedder = load_embedder(threads=1, max_tokens=settings.max_tokens)
    rows = 0
    partial = Path(out + ".partial")
    with pq.ParquetWriter(partial, _EMBEDDED_SCHEMA, compression=PARQUET_COMPRESSION) as writer:
        for window in _windows(path, start, end, settings.batch_size, ["node", "id", "quality", "text"]):
            vectors = embedder.embed(window.column("text").to_pylist())
            embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMENSION)
            writer.write_table(pa.table({
                "node": window.column("node").cast(pa.int64()),
                "id": window.column("id").cast(pa.string()),
                "quality": window.column("quality").cast(pa.float64()),
                "embedding": embedding,
            }, schema=_EMBEDDED_SCHEMA))
            rows += window.num_rows
    os.replace(partial, out)
    return rows


# --------------------------------------------------------------------------- 2. cluster


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on cosine distance: each next centroid is a point drawn with
    probability proportional to its squared distance to the nearest centroid so far."""
    chosen = [int(rng.integers(len(points)))]
    distance = np.maximum(1.0 - _products(points, points[chosen]).ravel(), 0.0).astype(np.float64)
    for _ in range(1, k):
        weights = distance ** 2
        total = weights.sum()
        if total <= 0.0:  # every point sits on a centroid: any point will do
            pick = int(rng.integers(len(points)))
        else:
            pick = int(np.searchsorted(np.cumsum(weights), rng.random() * total, side="right"))
            pick = min(pick, len(points) - 1)
        chosen.append(pick)
        distance = np.minimum(distance, np.maximum(1.0 - _products(points, points[[pick]]).ravel(), 0.0))
    return points[chosen].copy()


def _nearest(points: np.ndarray, centroids: np.ndarray, rows: int) -> np.ndarray:
    """Each point's centroid of largest dot product (the first on a tie), ``rows`` at a time."""
    labels = np.empty(len(points), dtype=np.int32)
    for start in range(0, len(points), rows):
        labels[start:start + rows] = _products(points[start:start + rows], centroids).argmax(axis=1)
    return labels


def spherical_kmeans(points: np.ndarray, k: int, seed: int, iterations: int) -> np.ndarray:
    """Centroids (k, d), unit rows, of ``points`` (unit rows); k-means++ seeding, then Lloyd
    rounds until no point changes cluster. A cluster left empty keeps its centroid."""
    _one_thread()
    rng = np.random.default_rng(seed)
    centroids = _kmeans_plus_plus(points, k, rng)
    labels = None
    for _ in range(iterations):
        new = _nearest(points, centroids, _FIT_ROWS)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        order = np.argsort(labels, kind="stable")
        members, starts = np.unique(labels[order], return_index=True)
        sums = np.add.reduceat(points[order].astype(np.float64), starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        moved = norms[:, 0] > 0
        centroids[members[moved]] = (sums[moved] / norms[moved]).astype(np.float32)
    return centroids


def _fit(parts: list[str], settings_json: str, k: int, out: str) -> int:
    """Choose the sample, fit the centroids, save them as ``out`` (.npy); returns the sample
    size."""
    settings = SemanticDedupSettings.model_validate_json(settings_json)
    keys = np.empty(0, dtype=np.uint64)
    where = np.empty((0, 2), dtype=np.int64)  # (part, row) of each key kept so far
    for number, part in enumerate(parts):
        nodes = pq.read_table(part, columns=["node"]).column(0).to_numpy()
        keys = np.concatenate([keys, _sample_keys(nodes, settings.seed)])
        rows = np.arange(len(nodes), dtype=np.int64)
        where = np.concatenate([where, np.stack([np.full_like(rows, number), rows], axis=1)])
        if len(keys) > settings.sample:  # keys are distinct: the smallest ``sample`` are one set
            best = np.argpartition(keys, settings.sample - 1)[:settings.sample]
            keys, where = keys[best], where[best]
    points, nodes = [], []
    for number, part in enumerate(parts):
        rows = np.sort(where[where[:, 0] == number, 1])
        if len(rows):
            table = pq.read_table(part, columns=["node", "embedding"]).take(pa.array(rows))
            points.append(_matrix(table.column("embedding")))
            nodes.append(table.column("node").to_numpy())
    order = np.argsort(np.concatenate(nodes), kind="stable")  # by node, whatever the parts
    sample = np.concatenate(points)[order]
    np.save(out, spherical_kmeans(sample, min(k, len(sample)), settings.seed, settings.iterations))
    return len(sample)


# --------------------------------------------------------------------------- 3. assign


def _assign(part: str, number: int, centroids_path: str, groups: int, batch_size: int, work: str) -> None:
    """Give each embedding of ``part`` its nearest centroid, in the embedding windows, and
    write its rows to ``work/group-<g>/part-<number>.parquet`` by group of clusters."""
    _one_thread()
    centroids = np.load(centroids_path)
    rows = pq.ParquetFile(part).metadata.num_rows
    tables = []
    for window in _windows(part, 0, rows, batch_size, _EMBEDDED_SCHEMA.names):
        labels = _nearest(_matrix(window.column("embedding")), centroids, batch_size)
        tables.append(window.append_column("cluster", pa.array(labels, pa.int32())))
    if not tables:
        return
    table = pa.concat_tables(tables)
    group = table.column("cluster").to_numpy() % groups
    for g in np.unique(group):
        folder = Path(work) / f"group-{g:05d}"
        folder.mkdir(exist_ok=True)
        _write(table.filter(pa.array(group == g)), folder / f"part-{number:05d}.parquet")


# --------------------------------------------------------------------------- 4. deduplicate


def walk_cluster(points: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The greedy walk over one cluster's unit vectors, best document first. Returns, for
    each duplicate, its row, the row of the kept document it duplicates and their cosine."""
    n = len(points)
    kept = np.empty(n, dtype=np.int64)  # rows of the kept documents, in the order kept
    kept_points = np.empty_like(points)  # their vectors, contiguous
    kept_count = 0
    rows, of, similarity = [], [], []
    for start in range(0, n, _BLOCK):
        block = points[start:start + _BLOCK]
        best = np.full(len(block), -np.inf, dtype=np.float32)
        best_at = np.full(len(block), -1, dtype=np.int64)
        for slab in range(0, kept_count, _KEPT_SLAB):
            end = min(slab + _KEPT_SLAB, kept_count)
            products = _products(block, kept_points[slab:end])
            at = products.argmax(axis=1)
            value = products[np.arange(len(block)), at]
            better = value > best  # strictly: on a tie the earlier kept document stays
            best[better], best_at[better] = value[better], kept[slab:end][at[better]]
        inside = _products(block, block)
        kept_here: list[int] = []
        for i in range(len(block)):
            if kept_here:
                values = inside[i, kept_here]
                j = int(values.argmax())
                if values[j] > best[i]:
                    best[i], best_at[i] = values[j], start + kept_here[j]
            if best[i] >= threshold:
                rows.append(start + i)
                of.append(best_at[i])
                similarity.append(best[i])
            else:
                kept_here.append(i)
        kept[kept_count:kept_count + len(kept_here)] = start + np.asarray(kept_here, dtype=np.int64)
        kept_points[kept_count:kept_count + len(kept_here)] = block[kept_here]
        kept_count += len(kept_here)
    return (np.asarray(rows, dtype=np.int64), np.asarray(of, dtype=np.int64),
            np.asarray(similarity, dtype=np.float32))


def _deduplicate(folder: str, threshold: float, out: str) -> int:
    """The walk over every cluster of one group; writes the duplicates to ``out``."""
    _one_thread()
    table = pq.read_table(folder, schema=_GROUPED_SCHEMA)
    order = pc.sort_indices(table, sort_keys=[("cluster", "ascending"), ("quality", "descending"),
                                              ("id", "ascending"), ("node", "ascending")])
    table = table.take(order)
    clusters = table.column("cluster").to_numpy()
    nodes = table.column("node").to_numpy()
    points = _matrix(table.column("embedding"))
    starts = np.flatnonzero(np.r_[True, clusters[1:] != clusters[:-1]])
    duplicates = []
    for first, last in zip(starts, np.r_[starts[1:], len(clusters)]):
        rows, of, similarity = walk_cluster(points[first:last], threshold)
        duplicates.append(pa.table([nodes[first + rows], nodes[first + of], similarity], schema=DUPLICATE_SCHEMA))
    result = pa.concat_tables(duplicates) if duplicates else DUPLICATE_SCHEMA.empty_table()
    _write(result, Path(out))
    return result.num_rows


# --------------------------------------------------------------------------- the whole


_CANDIDATE_COLUMNS = ("node", "id", "quality", "text")


def _units(candidates: Sequence[Path | str], rows_per_task: int) -> list[tuple[str, int, int]]:
    """(path, first row, end row) of each embedding task; a file without the candidate columns
    is an error before any task starts."""
    units = []
    for path in candidates:
        parquet = pq.ParquetFile(path)
        missing = [name for name in _CANDIDATE_COLUMNS if name not in parquet.schema_arrow.names]
        if missing:
            raise ValueError(f"semantic dedup: {path} lacks the column(s) {', '.join(missing)}")
        rows = parquet.metadata.num_rows
        units.extend((str(path), start, min(start + rows_per_task, rows)) for start in range(0, rows, rows_per_task))
    return units


def semantic_duplicates(candidates: Sequence[Path | str], settings: SemanticDedupSettings, workdir: Path,
                        progress: Progress | None = None) -> Path:
    """Find the semantic duplicates among ``candidates`` (Parquet files with ``node`` int64
    unique, ``id``, ``quality``, ``text``) and write them to ``workdir/semantic/duplicates.parquet``
    (``DUPLICATE_SCHEMA``, sorted by node); returns its path. ``workdir`` must be visible to
    every Ray node; the intermediate files under ``workdir/semantic/`` are removed at the end.
    ``settings.enabled`` is the caller's to check."""
    import ray

    say = progress or (lambda line: None)
    units = _units(candidates, settings.rows_per_task)
    root = Path(workdir) / "semantic"
    shutil.rmtree(root, ignore_errors=True)
    for name in ("embeddings", "groups", "duplicates"):
        (root / name).mkdir(parents=True)
    output = root / _OUTPUT
    settings_json = settings.model_dump_json()
    ensure_ray()
    remote = ray.remote(num_cpus=1)

    clock = time.perf_counter()
    parts = [str(root / "embeddings" / f"part-{number:05d}.parquet") for number in range(len(units))]
    embed = remote(_embed_unit)
    documents = sum(_gather([embed.remote(path, start, end, settings_json, part)
                             for (path, start, end), part in zip(units, parts)], "embedding", say))
    seconds = time.perf_counter() - clock
    say(f"semantic dedup: embedded {documents} documents in {len(units)} tasks, {seconds:.1f} s "
        f"({documents / max(seconds, 1e-9):.0f} docs/s)")
    if documents == 0:
        _write(DUPLICATE_SCHEMA.empty_table(), output)
        _clean(root)
        return output

    k = settings.clusters or max(1, round(math.sqrt(documents)))
    centroids = str(root / "centroids.npy")
    sampled = ray.get(remote(_fit).remote(parts, settings_json, k, centroids))
    k = min(k, sampled)
    groups = max(1, min(k, _MAX_GROUPS, -(-documents // _GROUP_DOCS)))
    assign = remote(_assign)
    _gather([assign.remote(part, number, centroids, groups, settings.batch_size, str(root / "groups"))
             for number, part in enumerate(parts)], "assigning clusters", say)
    say(f"semantic dedup: {k} clusters fitted on {sampled} embeddings, walked in {groups} tasks")

    folders = sorted(str(folder) for folder in (root / "groups").iterdir())
    deduplicate = remote(_deduplicate)
    outs = [str(root / "duplicates" / f"{Path(folder).name}.parquet") for folder in folders]
    found = sum(_gather([deduplicate.remote(folder, settings.threshold, out) for folder, out in zip(folders, outs)],
                        "walking clusters", say))
    table = pa.concat_tables([pq.read_table(out, schema=DUPLICATE_SCHEMA) for out in outs]) if outs \
        else DUPLICATE_SCHEMA.empty_table()
    _write(table.sort_by("node"), output)
    _clean(root)
    say(f"semantic dedup: {found} of {documents} documents are semantic duplicates "
        f"(cosine >= {settings.threshold}), {time.perf_counter() - clock:.1f} s in all")
    return output


def _gather(refs: list, step: str, say: Progress, every: float = 60.0) -> list:
    """``ray.get`` of ``refs``, in order, with a line at most every ``every`` seconds."""
    import ray

    pending, last = list(refs), time.perf_counter()
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=every)
        if pending and time.perf_counter() - last >= every:
            say(f"semantic dedup: {step}, {len(refs) - len(pending)}/{len(refs)} tasks done")
            last = time.perf_counter()
    return ray.get(refs)


def _clean(root: Path) -> None:
    for name in ("embeddings", "groups", "duplicates"):
        shutil.rmtree(root / name, ignore_errors=True)
    (root / "centroids.npy").unlink(missing_ok=True)
