"""Near-duplicate clusters across a whole run, on Ray: LSH buckets, verified candidate pairs,
connected components.

The input is one MinHash signature per kept document (filters/minhash.py), in the staged
files' ``minhash`` column and, for incremental dedup, in earlier runs' ``OUT/minhash/``. A
document is a node numbered ``file << 32 | row``; earlier runs' files come first, so a
component whose smallest node is an earlier run's holds a document already in the corpus.

1. **Buckets.** Tasks over the signature files compute band keys and scatter (key, node) by
   key; one task per partition sorts its keys and pairs each bucket's smallest node with every
   other node of the bucket (a star: a bucket of k nodes gives k - 1 pairs, not k²/2).
2. **Verification.** LSH with 14 bands of 8 rows catches about half the pairs at Jaccard 0.7
   and a fifth at 0.6, so a candidate pair becomes an edge only if its Jaccard similarity
   reaches ``threshold``. The two signatures' estimate decides when it is clearly on one side
   (its standard error is about 0.04 at 0.8); a pair of this run's documents estimated within
   ``_EXACT_MARGIN`` of the threshold is decided on the exact Jaccard of the two documents'
   shingles, computed from their text (earlier runs keep signatures only, so their pairs are
   decided on the estimate). Pairs are scattered by the file of their first node, then of
   their second, so each task reads its own files only, row group by row group.
3. **Components.** Alternating large-star and small-star (Kiveris et al., *Connected
   Components in MapReduce and Beyond*, 2014) on the edge list, each step one wave of tasks
   over hash partitions, until a round leaves the edge set unchanged; every node then points
   at its component's smallest node.

No process holds the corpus or the whole graph: a task holds one partition, and partitions
are sized from the input (``_ROWS_PER_PARTITION``). Partitions pass between waves as ``.npy``
files under the work folder rather than through the object store, so memory stays bounded
whatever the corpus size, and a task reads only its slice of each file (memory-mapped).
Ray tasks on numpy arrays rather than Ray Data's ``groupby``: every step is a shuffle of
integer pairs followed by a vectorised per-key reduction, and ``map_groups`` calls Python once
per group, which for millions of two-node groups costs more than the computation itself.

Output: Parquet files of ``(input_index, ordinal, component, earlier)`` for this run's
documents in components of two or more nodes; finalize picks each component's survivor.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filters.minhash import MinHasher, MinHashScheme, fmix, similarity
from pipelines.runtime import ensure_ray

SIGNATURE_COLUMN = "minhash"
COMPONENT_SCHEMA = pa.schema([
    pa.field("input_index", pa.int32()),
    pa.field("ordinal", pa.int64()),
    pa.field("component", pa.int64()),
    pa.field("earlier", pa.bool_()),
])
_ROWS_PER_PARTITION = 1 << 22  # rows of a shuffle partition (~64 MB of int64 pairs)
_READ_ROWS = 1 << 17  # signature rows a bucket task hashes at once
_MAX_ROUNDS = 100
_FILE_PARTITIONS = 64  # tasks per wave that read signatures or text, each for a share of the files
# Estimates this close to the threshold are checked on the documents' text: with 112
# permutations the estimate's standard error is about 0.04 at Jaccard 0.8.
_EXACT_MARGIN = 0.12
ROW_BITS = 32


@dataclass(frozen=True)
class SignatureFile:
    """A Parquet file with a ``minhash`` column; its nodes are ``number << 32 | row``."""

    number: int
    path: str


def _node(file_number: int, rows: np.ndarray) -> np.ndarray:
    return (np.int64(file_number) << np.int64(ROW_BITS)) | rows.astype(np.int64)


def _file_of(nodes: np.ndarray) -> np.ndarray:
    return nodes >> np.int64(ROW_BITS)


def _partition_of(values: np.ndarray, partitions: int) -> np.ndarray:
    mixed = fmix(values.astype(np.uint64), 64)
    return (mixed % np.uint64(partitions)).astype(np.int64)


# --- partitions on disk --------------------------------------------------------------------


Ragged = tuple[np.ndarray, np.ndarray]  # a variable-length column: values end to end, and each row's length


def _scatter(prefix: Path, columns: dict[str, np.ndarray | Ragged], partition: np.ndarray, partitions: int) -> str:
    """Write ``columns`` (equal numbers of rows) grouped by ``partition``, with the offsets
    that let each reader slice out its own partition."""
    order = np.argsort(partition, kind="stable")
    offsets = np.searchsorted(partition[order], np.arange(partitions + 1))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    np.save(f"{prefix}.offsets.npy", offsets)
    for name, values in columns.items():
        if isinstance(values, tuple):
            flat, lengths = values
            starts = (np.cumsum(lengths) - lengths)[order]
            lengths = lengths[order]
            moved = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
            np.save(f"{prefix}.{name}.npy", flat[moved])
            np.save(f"{prefix}.{name}.bounds.npy", np.r_[0, np.cumsum(lengths)])
        else:
            np.save(f"{prefix}.{name}.npy", values[order])
    return str(prefix)


def _gather(prefixes: list[str], partition: int, names: tuple[str, ...],
            ragged: tuple[str, ...] = ()) -> dict[str, np.ndarray | Ragged]:
    """Partition ``partition`` of every scattered file, concatenated per column."""
    parts: dict[str, list] = {name: [] for name in (*names, *ragged)}
    for prefix in prefixes:
        offsets = np.load(f"{prefix}.offsets.npy")
        start, end = int(offsets[partition]), int(offsets[partition + 1])
        for name in names:
            parts[name].append(np.array(np.load(f"{prefix}.{name}.npy", mmap_mode="r")[start:end]))
        for name in ragged:
            bounds = np.load(f"{prefix}.{name}.bounds.npy")[start:end + 1]
            values = np.load(f"{prefix}.{name}.npy", mmap_mode="r")[bounds[0]:bounds[-1]]
            parts[name].append((np.array(values), np.diff(bounds)))
    gathered: dict[str, np.ndarray | Ragged] = {name: np.concatenate(parts[name]) for name in names}
    for name in ragged:
        gathered[name] = (np.concatenate([v for v, _ in parts[name]]), np.concatenate([n for _, n in parts[name]]))
    return gathered


# --- signatures ----------------------------------------------------------------------------


def signature_matrix(column: pa.Array | pa.ChunkedArray, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """``(signatures, valid)`` of a binary column of signatures, nulls as rows of zeros."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = 4 * num_perm
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    filled = pc.fill_null(column, pa.scalar(bytes(width), pa.binary())).cast(pa.binary(width))
    data = np.frombuffer(filled.buffers()[1], dtype="<u4")
    start = filled.offset * num_perm
    return data[start:start + len(filled) * num_perm].reshape(len(filled), num_perm), valid


def _take(path: str, rows: np.ndarray, column: str) -> pa.Array:
    """``column`` at the given rows, in their order, reading only the row groups that hold them."""
    parquet = pq.ParquetFile(path)
    bounds = np.cumsum([0] + [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    groups = np.searchsorted(bounds, ordered, side="right") - 1
    pieces = []
    for group in np.unique(groups):
        values = parquet.read_row_group(int(group), columns=[column]).column(0)
        pieces.append(values.take(pa.array(ordered[groups == group] - bounds[group])))
    taken = pa.chunked_array(pieces, type=parquet.schema_arrow.field(column).type).combine_chunks()
    return taken.take(pa.array(np.argsort(order)))


def _signatures_at(path: str, rows: np.ndarray, num_perm: int) -> np.ndarray:
    return signature_matrix(_take(path, rows, SIGNATURE_COLUMN), num_perm)[0]


def _row_of(nodes: np.ndarray) -> np.ndarray:
    return nodes & np.int64((1 << ROW_BITS) - 1)


def _per_file(nodes: np.ndarray, read) -> None:
    """Call ``read(mask, file_number)`` once per file among ``nodes``."""
    files = _file_of(nodes)
    for number in np.unique(files):
        read(files == number, int(number))


# --- the waves of tasks --------------------------------------------------------------------


def _bucket_scatter(file: SignatureFile, scheme: MinHashScheme, partitions: int, work: str) -> list[str]:
    hasher = MinHasher(scheme)
    prefixes, row = [], 0
    parquet = pq.ParquetFile(file.path)
    for number, batch in enumerate(parquet.iter_batches(batch_size=_READ_ROWS, columns=[SIGNATURE_COLUMN])):
        signatures, valid = signature_matrix(batch.column(0), scheme.num_perm)
        rows = np.flatnonzero(valid) + row
        row += batch.num_rows
        if not rows.size:
            continue
        keys = hasher.band_keys(signatures[valid]).ravel()
        nodes = np.repeat(_node(file.number, rows), scheme.bands)
        prefixes.append(_scatter(Path(work) / "buckets" / f"{file.number}-{number}",
                                 {"key": keys, "node": nodes}, (keys % np.uint64(partitions)).astype(np.int64),
                                 partitions))
    return prefixes


def _bucket_pairs(partition: int, prefixes: list[str], files: int, work: str) -> str:
    """Each bucket's smallest node paired with its other nodes, scattered by file of the first."""
    rows = _gather(prefixes, partition, ("key", "node"))
    order = np.lexsort((rows["node"], rows["key"]))
    keys, nodes = rows["key"][order], rows["node"][order]
    firsts = _firsts(keys)
    heads = np.repeat(firsts, np.diff(np.r_[firsts, len(keys)]))  # each row's bucket start
    same = heads != np.arange(len(keys))  # not the first (smallest) node of its bucket
    left, right = nodes[heads][same], nodes[same]
    return _scatter(Path(work) / "pairs" / str(partition), {"left": left, "right": right},
                    _file_of(left) % files, files)


def _attach_left(partition: int, prefixes: list[str], paths: dict[int, str], num_perm: int,
                 files: int, work: str) -> str:
    """Partition = a share of the files (number modulo ``files``) holding the pairs' left
    nodes: their signatures, scattered the same way by right node."""
    pairs = _gather(prefixes, partition, ("left", "right"))
    unique = np.unique(np.stack([pairs["left"], pairs["right"]], axis=1), axis=0)
    left, right = unique[:, 0], unique[:, 1]
    signatures = np.empty((len(left), num_perm), dtype=np.uint32)

    def read(mask: np.ndarray, number: int) -> None:
        signatures[mask] = _signatures_at(paths[number], _row_of(left[mask]), num_perm)

    _per_file(left, read)
    return _scatter(Path(work) / "left" / str(partition),
                    {"left": left, "right": right, "signature": signatures}, _file_of(right) % files, files)


def _verify(partition: int, prefixes: list[str], paths: dict[int, str], num_perm: int, threshold: float,
            texts_from: int, partitions: int, files: int, work: str) -> tuple[str, str, int, int]:
    """Partition = a share of the files holding the pairs' right nodes. Pairs whose signature estimate is clearly
    on one side of ``threshold`` are decided here: edges, both directions, scattered for the
    first large-star. Pairs of two documents with text (files from ``texts_from`` on: this
    run's) whose estimate is within ``_EXACT_MARGIN`` of it are scattered by left file for the
    exact check."""
    pairs = _gather(prefixes, partition, ("left", "right", "signature"))
    left, right = pairs["left"], pairs["right"]
    signatures = np.empty_like(pairs["signature"])

    def read(mask: np.ndarray, number: int) -> None:
        signatures[mask] = _signatures_at(paths[number], _row_of(right[mask]), num_perm)

    _per_file(right, read)
    estimate = similarity(pairs["signature"], signatures)
    with_text = (_file_of(left) >= texts_from) & (_file_of(right) >= texts_from)
    close = with_text & (np.abs(estimate - threshold) <= _EXACT_MARGIN)
    edge = ~close & (estimate >= threshold)
    edges = _both_directions(Path(work) / "edges-0" / f"estimate-{partition}", left[edge], right[edge], partitions)
    exact = _scatter(Path(work) / "close" / str(partition), {"left": left[close], "right": right[close]},
                     _file_of(left[close]) % files, files)
    return edges, exact, len(left), int(edge.sum())


def _shingles_at(path: str, rows: np.ndarray, hasher: MinHasher) -> list[np.ndarray]:
    """The sorted, distinct shingle hashes of the documents at ``rows``, from their text."""
    texts = _take(path, rows, "text").to_pylist()
    return [np.unique(shingles) for shingles in hasher.shingle_hashes(texts)]


def _attach_left_shingles(partition: int, prefixes: list[str], paths: dict[int, str], scheme: MinHashScheme,
                          files: int, work: str) -> str:
    pairs = _gather(prefixes, partition, ("left", "right"))
    left, right = pairs["left"], pairs["right"]
    shingles: list[np.ndarray] = [np.empty(0, np.uint32)] * len(left)
    hasher = MinHasher(scheme)

    def read(mask: np.ndarray, number: int) -> None:
        for index, values in zip(np.flatnonzero(mask), _shingles_at(paths[number], _row_of(left[mask]), hasher)):
            shingles[index] = values

    _per_file(left, read)
    flat = np.concatenate(shingles) if shingles else np.empty(0, np.uint32)
    return _scatter(Path(work) / "close-left" / str(partition),
                    {"left": left, "right": right, "shingles": (flat, np.array([len(v) for v in shingles], dtype=np.int64))},
                    _file_of(right) % files, files)


def _verify_exact(partition: int, prefixes: list[str], paths: dict[int, str], scheme: MinHashScheme,
                  threshold: float, partitions: int, work: str) -> tuple[str, int]:
    """Partition = a share of the files holding the right nodes: edges whose exact shingle Jaccard reaches
    ``threshold``."""
    pairs = _gather(prefixes, partition, ("left", "right"), ragged=("shingles",))
    left, right = pairs["left"], pairs["right"]
    flat, lengths = pairs["shingles"]
    bounds = np.r_[0, np.cumsum(lengths)]
    keep = np.zeros(len(left), dtype=bool)
    hasher = MinHasher(scheme)

    def read(mask: np.ndarray, number: int) -> None:
        for index, theirs in zip(np.flatnonzero(mask), _shingles_at(paths[number], _row_of(right[mask]), hasher)):
            ours = flat[bounds[index]:bounds[index + 1]]
            shared = np.intersect1d(ours, theirs, assume_unique=True).size
            keep[index] = shared >= threshold * (ours.size + theirs.size - shared)

    _per_file(right, read)
    edges = _both_directions(Path(work) / "edges-0" / f"exact-{partition}", left[keep], right[keep], partitions)
    return edges, int(keep.sum())


def _both_directions(prefix: Path, a: np.ndarray, b: np.ndarray, partitions: int) -> str:
    keys, values = np.concatenate([a, b]), np.concatenate([b, a])
    return _scatter(prefix, {"key": keys, "value": values}, _partition_of(keys, partitions), partitions)


def _fingerprint(a: np.ndarray, b: np.ndarray) -> int:
    """Order-free digest of an undirected edge set given as both directions of every edge."""
    once = a < b
    mixed = fmix(a[once].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + b[once].astype(np.uint64), 64)
    return int(mixed.sum(dtype=np.uint64))


def _neighbourhood_minimum(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (key, value) rows sorted by key, and per row the minimum of its key and all of
    the key's values."""
    rows = np.unique(np.stack([keys, values], axis=1), axis=0)
    keys, values = rows[:, 0], rows[:, 1]
    if not len(keys):
        return keys, values, keys.copy()
    firsts = _firsts(keys)
    minima = np.minimum(np.minimum.reduceat(values, firsts), keys[firsts])
    return keys, values, np.repeat(minima, np.diff(np.r_[firsts, len(keys)]))


def _firsts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array."""
    if not len(keys):
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def _large_star(partition: int, prefixes: list[str], partitions: int, earlier_files: int,
                work: str, round_number: int) -> tuple[str, str | None, int, int]:
    """Link every larger neighbour of a node to the node's neighbourhood minimum. Also writes
    each node's minimum as its label: final once a round changes nothing."""
    rows = _gather(prefixes, partition, ("key", "value"))
    keys, values, minima = _neighbourhood_minimum(rows["key"], rows["value"])
    fingerprint, count = _fingerprint(keys, values), int((keys < values).sum())
    labels = _write_labels(Path(work) / f"labels-{round_number}" / f"{partition}.parquet",
                           keys, minima, earlier_files)
    larger = values > keys
    # Oriented (larger, smaller) for small-star, which keys each edge by its larger end.
    big, small = values[larger], minima[larger]
    prefix = _scatter(Path(work) / f"large-{round_number}" / str(partition), {"key": big, "value": small},
                      _partition_of(big, partitions), partitions)
    return prefix, labels, fingerprint, count


def _small_star(partition: int, prefixes: list[str], partitions: int, work: str, round_number: int) -> str:
    """Link a node and its smaller neighbours to the smallest of them."""
    rows = _gather(prefixes, partition, ("key", "value"))
    keys, values, minima = _neighbourhood_minimum(rows["key"], rows["value"])
    firsts = _firsts(keys)
    members = np.concatenate([values, keys[firsts]])  # the smaller neighbours, and the node itself
    targets = np.concatenate([minima, minima[firsts]])
    moved = members != targets
    return _both_directions(Path(work) / f"edges-{round_number + 1}" / str(partition),
                            members[moved], targets[moved], partitions)


def _write_labels(path: Path, nodes: np.ndarray, labels: np.ndarray, earlier_files: int) -> str | None:
    """This run's nodes with their component label, as finalize reads them."""
    firsts = _firsts(nodes)
    nodes, labels = nodes[firsts], labels[firsts]
    ours = _file_of(nodes) >= earlier_files
    if not ours.any():
        return None
    nodes, labels = nodes[ours], labels[ours]
    table = pa.table({
        "input_index": (_file_of(nodes) - earlier_files).astype(np.int32),
        "ordinal": _row_of(nodes),
        "component": labels,
        "earlier": _file_of(labels) < earlier_files,
    }, schema=COMPONENT_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return str(path)


# --- the driver ----------------------------------------------------------------------------


@dataclass
class FuzzyResult:
    components: list[str]  # Parquet files of COMPONENT_SCHEMA
    candidate_pairs: int
    checked_on_text: int  # candidate pairs whose estimate was too close to call
    edges: int
    rounds: int


def _partitions(rows: int) -> int:
    return max(1, -(-rows // _ROWS_PER_PARTITION))


def _parquet_rows(path: str) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def fuzzy_components(staged: list[str], earlier: list[str], scheme: MinHashScheme, threshold: float,
                     work: Path) -> FuzzyResult:
    """Near-duplicate components of the documents signed in ``staged`` (this run's files, in
    input order) and ``earlier`` (earlier runs' signature files)."""
    import ray

    ensure_ray()
    shutil.rmtree(work, ignore_errors=True)
    files = [SignatureFile(number, path) for number, path in enumerate([*earlier, *staged])]
    paths = {file.number: file.path for file in files}
    rows = sum(_parquet_rows(file.path) for file in files)
    remote = ray.remote(num_cpus=1)
    bucket_scatter, bucket_pairs, attach_left, verify, attach_shingles, verify_exact = (remote(fn) for fn in (
        _bucket_scatter, _bucket_pairs, _attach_left, _verify, _attach_left_shingles, _verify_exact))
    folder = str(work)
    # Pairs go to tasks by the file they must read: file number modulo this many.
    file_parts = min(len(files), _FILE_PARTITIONS)
    numbers = range(file_parts)

    buckets = _partitions(rows * scheme.bands)
    scattered = [prefix for prefixes in ray.get([
        bucket_scatter.remote(file, scheme, buckets, folder) for file in files
    ]) for prefix in prefixes]
    if not scattered:  # no document reached fuzzy dedup with a signature (all dropped before it)
        return FuzzyResult(components=[], candidate_pairs=0, checked_on_text=0, edges=0, rounds=0)
    pairs = ray.get([bucket_pairs.remote(p, scattered, file_parts, folder) for p in range(buckets)])
    lefts = ray.get([attach_left.remote(f, pairs, paths, scheme.num_perm, file_parts, folder) for f in numbers])
    # A graph partition per _ROWS_PER_PARTITION candidate pairs (an upper bound on edges).
    candidates = sum(int(np.load(f"{prefix}.offsets.npy")[-1]) for prefix in lefts)
    partitions = _partitions(2 * candidates)
    verified = ray.get([verify.remote(f, lefts, paths, scheme.num_perm, threshold, len(earlier), partitions,
                                      file_parts, folder) for f in numbers])
    close = [exact for _, exact, _, _ in verified]
    with_shingles = ray.get([attach_shingles.remote(f, close, paths, scheme, file_parts, folder) for f in numbers])
    checked = ray.get([verify_exact.remote(f, with_shingles, paths, scheme, threshold, partitions, folder)
                       for f in numbers])
    edges = [prefix for prefix, _, _, _ in verified] + [prefix for prefix, _ in checked]
    result = FuzzyResult(components=[], candidate_pairs=sum(n for _, _, n, _ in verified),
                         checked_on_text=sum(int(np.load(f"{p}.offsets.npy")[-1]) for p in close),
                         edges=sum(n for _, _, _, n in verified) + sum(n for _, n in checked), rounds=0)
    if not result.edges:
        return result
    result.components, result.rounds = connected_components(edges, partitions, len(earlier), work)
    return result


def connected_components(edges: list[str], partitions: int, earlier_files: int,
                         work: Path) -> tuple[list[str], int]:
    """Large-star and small-star rounds over ``edges`` (scattered, both directions, into
    ``partitions``) until a round changes nothing; returns the label files and the rounds run."""
    import ray

    remote = ray.remote(num_cpus=1)
    large_star, small_star = remote(_large_star), remote(_small_star)
    previous = None
    for round_number in range(_MAX_ROUNDS):
        large = ray.get([large_star.remote(p, edges, partitions, earlier_files, str(work), round_number)
                         for p in range(partitions)])
        state = (sum(f for _, _, f, _ in large) % 2**64, sum(c for _, _, _, c in large))
        if state == previous:
            return sorted(labels for _, labels, _, _ in large if labels), round_number + 1
        previous = state
        oriented = [prefix for prefix, _, _, _ in large]
        edges = ray.get([small_star.remote(p, oriented, partitions, str(work), round_number)
                         for p in range(partitions)])
    raise RuntimeError(f"connected components did not converge in {_MAX_ROUNDS} rounds")
