"""The whole-corpus half of a curation run, in DuckDB over the staged Parquet files.

1. **Decisions.** A kept document whose id an earlier record (in input order) already holds
   is quarantined: contract 1 promises unique ids. The remaining kept documents are grouped
   into clusters: near-duplicate components from fuzzy dedup (pipelines/fuzzy.py, run on Ray
   before this), else exact duplicates (same normalised text). Each cluster keeps its best
   document, by quality and then smallest id, so the choice does not depend on read order;
   the others are dropped as ``exact_duplicate`` (the survivor's text exactly) or
   ``near_duplicate``, and every member carries the cluster's ``dup_cluster``. A component
   that holds an earlier run's document keeps none (``earlier_run_duplicate``). With semantic
   dedup on, the survivors then go through semantic.py on Ray, and those saying the same as a
   better survivor are dropped as ``semantic_duplicate``.
2. **Outputs.** Kept rows are written sorted by (domain, id) into per-domain shards, dropped
   and quarantined rows sorted by input order, each in fixed-size row groups, so the same
   staged rows always give byte-identical files whatever the run's parallelism was. With
   fuzzy dedup the kept documents' signatures go to ``OUT/minhash/`` for later runs.

DuckDB does this out of core: only the narrow (index, ordinal, id, hash) columns are windowed,
and rows are streamed to the writers in record batches, so no process holds the corpus.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.files import OutputWriteError
from corpus.manifest import Counts, DomainTotals, InputRecord, ShardRecord, manifest_path, sha256_file
from corpus.signatures import SIGNATURE_SCHEMA, SIGNATURES_DIR, write_scheme
from corpus.schema import DROPPED_SCHEMA, PARQUET_COMPRESSION, QUARANTINE_SCHEMA, SHARD_SCHEMA, shards_dir
from filters.minhash import MinHashScheme
from pipelines.fuzzy import COMPONENT_SCHEMA, ROW_BITS
from pipelines.semantic import SemanticDedupSettings, semantic_duplicates
from pipelines.staging import InputUnit
from pipelines.stages import DROPPED, KEPT, QUARANTINED

EXACT_DEDUP_STAGE, EXACT_DUPLICATE = "exact_dedup", "exact_duplicate"
FUZZY_DEDUP_STAGE, NEAR_DUPLICATE = "fuzzy_dedup", "near_duplicate"
EARLIER_RUN_DUPLICATE = "earlier_run_duplicate"
SEMANTIC_DEDUP_STAGE, SEMANTIC_DUPLICATE = "semantic_dedup", "semantic_duplicate"
DUPLICATE_ID = "duplicate id"
OUTPUT_DIRS = ("shards", "dropped", "quarantine", "report", SIGNATURES_DIR)  # a rerun replaces them all
_ROW_GROUP = 4096
_FETCH_ROWS = 4096


class ParquetRoller:
    """Writes ``part-00000.parquet``, ``-00001``, ... of at most ``max_rows`` rows each, in row
    groups of a fixed size, each file under a temporary name until it is complete."""

    def __init__(self, directory: Path, schema: pa.Schema, max_rows: int) -> None:
        self.directory, self.schema, self.max_rows = directory, schema, max_rows
        self.finished: list[tuple[Path, int]] = []
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_file = 0

    def write(self, table: pa.Table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        while table.num_rows:
            room = min(self.max_rows - self._rows_in_file - self._buffered, _ROW_GROUP - self._buffered)
            self._buffer.append(table.slice(0, room))
            self._buffered += min(room, table.num_rows)
            table = table.slice(room)
            if self._buffered == _ROW_GROUP or self._rows_in_file + self._buffered == self.max_rows:
                self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        try:
            if self._writer is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(self._tmp(), self.schema, compression=PARQUET_COMPRESSION)
            self._writer.write_table(pa.concat_tables(self._buffer), row_group_size=_ROW_GROUP)
        except OSError as error:  # disk full, file too large: name the file, leave no torn one
            self.abort()
            raise OutputWriteError.of(self._path(), error) from error
        self._rows_in_file += self._buffered
        self._buffer, self._buffered = [], 0
        if self._rows_in_file == self.max_rows:
            self._close_file()

    def _path(self) -> Path:
        return self.directory / f"part-{len(self.finished):05d}.parquet"

    def _tmp(self) -> Path:
        return self._path().with_suffix(".parquet.tmp")

    def abort(self) -> None:
        """Drop the file being written (its temporary name); finished files stay."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the disk that failed the write can fail the footer too
                pass
            self._writer = None
        self._tmp().unlink(missing_ok=True)
        self._buffer, self._buffered, self._rows_in_file = [], 0, 0

    def _close_file(self) -> None:
        if self._writer is None:
            return
        final = self._path()
        try:
            self._writer.close()  # writes the footer: a full disk can fail here too
            os.replace(self._tmp(), final)
        except OSError as error:
            self.abort()
            raise OutputWriteError.of(final, error) from error
        self.finished.append((final, self._rows_in_file))
        self._writer, self._rows_in_file = None, 0

    def close(self) -> list[tuple[Path, int]]:
        self._flush()
        self._close_file()
        return self.finished


@dataclass
class FinalCounts:
    counts: Counts
    inputs: list[InputRecord]
    shards: list[ShardRecord]
    domains: dict[str, DomainTotals] = field(default_factory=dict)


def _decisions_sql(exact_dedup: bool) -> str:
    """Per (input_index, ordinal) of a kept row: its final status, stage, reason and cluster.

    A document's cluster is its near-duplicate component (table ``components``, empty
    without fuzzy dedup), else with exact dedup its text's group, else itself. Each cluster
    keeps its best document (quality, then smallest id); copies of the survivor's exact text
    are ``exact_duplicate``, the rest ``near_duplicate``, and a component holding an earlier
    run's document keeps nothing (``earlier_run_duplicate``, with ``dup_cluster``
    ``earlier:<id>`` naming the earlier document: the component's smallest node)."""
    exact_group = "'exact-' || k.text_hash" if exact_dedup else "'self-' || k.id"
    survivor_copy = "text_hash = survivor_hash" if exact_dedup else "false"
    return f"""
    CREATE TEMP TABLE decision AS
    WITH kept AS (
        SELECT input_index, ordinal, id, text_hash, quality,
               row_number() OVER w AS id_rank,
               first_value(file || ':' || location) OVER w AS first_at
        FROM staged WHERE status = '{KEPT}'
        WINDOW w AS (PARTITION BY id ORDER BY input_index, ordinal)
    ), clustered AS (
        SELECT k.input_index, k.ordinal, k.id, k.text_hash, k.quality, coalesce(c.earlier, false) AS earlier,
               e.id AS earlier_id,
               CASE WHEN c.component IS NOT NULL THEN 'near-' || c.component::VARCHAR ELSE {exact_group} END AS cluster
        FROM kept k LEFT JOIN components c USING (input_index, ordinal)
                    LEFT JOIN earlier_ids e ON e.node = c.component
        WHERE k.id_rank = 1
    ), ranked AS (
        SELECT *, first_value(id) OVER c AS survivor, first_value(text_hash) OVER c AS survivor_hash,
               count(*) OVER (PARTITION BY cluster) AS copies,
               count(DISTINCT text_hash) OVER (PARTITION BY cluster) AS texts
        FROM clustered
        WINDOW c AS (PARTITION BY cluster ORDER BY quality DESC NULLS LAST, id)
    )
    SELECT input_index, ordinal, '{QUARANTINED}' AS status, 'ids' AS stage,
           '{DUPLICATE_ID} ' || id || ' (first at ' || first_at || ')' AS reason,
           NULL AS dup_cluster
    FROM kept WHERE id_rank > 1
    UNION ALL
    SELECT input_index, ordinal,
           CASE WHEN id = survivor AND NOT earlier THEN '{KEPT}' ELSE '{DROPPED}' END,
           CASE WHEN id = survivor AND NOT earlier THEN NULL
                WHEN NOT earlier AND {survivor_copy} THEN '{EXACT_DEDUP_STAGE}'
                ELSE '{FUZZY_DEDUP_STAGE}' END,
           CASE WHEN earlier THEN '{EARLIER_RUN_DUPLICATE}'
                WHEN id = survivor THEN NULL
                WHEN {survivor_copy} THEN '{EXACT_DUPLICATE}'
                ELSE '{NEAR_DUPLICATE}' END,
           CASE WHEN earlier THEN 'earlier:' || earlier_id
                WHEN copies = 1 THEN NULL
                WHEN texts = 1 THEN 'exact-' || left(survivor_hash, 16)
                ELSE 'near-' || left(survivor_hash, 16) END
    FROM ranked
    """


_FINAL_VIEW = """
    CREATE TEMP VIEW final AS
    SELECT s.* EXCLUDE (status, stage, reason, dup_cluster),
           coalesce(d.status, s.status) AS status,
           CASE WHEN d.status IS NULL THEN s.stage ELSE d.stage END AS stage,
           CASE WHEN d.status IS NULL THEN s.reason ELSE d.reason END AS reason,
           d.dup_cluster AS dup_cluster
    FROM staged s LEFT JOIN decision d USING (input_index, ordinal)
"""


def _stream(con: duckdb.DuckDBPyConnection, sql: str):
    reader = con.sql(sql).to_arrow_reader(_FETCH_ROWS)
    for batch in reader:
        yield pa.Table.from_batches([batch])


def _write_shards(con: duckdb.DuckDBPyConnection, out: Path, shard_rows: int) -> list[ShardRecord]:
    rollers: dict[str, ParquetRoller] = {}
    columns = ", ".join(SHARD_SCHEMA.names)
    for table in _stream(con, f"SELECT {columns} FROM final WHERE status = '{KEPT}' ORDER BY domain, id"):
        domains = table.column("domain").to_pylist()
        start = 0
        for end in range(1, len(domains) + 1):  # rows arrive grouped by domain
            if end == len(domains) or domains[end] != domains[start]:
                domain = domains[start]
                if domain not in rollers:
                    rollers[domain] = ParquetRoller(shards_dir(out) / f"domain={domain}", SHARD_SCHEMA, shard_rows)
                rollers[domain].write(table.slice(start, end - start))
                start = end
    shards = []
    for domain, roller in sorted(rollers.items()):
        for path, rows in roller.close():
            shards.append(ShardRecord(path=str(path.relative_to(out)), domain=domain, rows=rows,
                                      bytes=path.stat().st_size, sha256=sha256_file(path)))
    return shards


def _write_sorted(con: duckdb.DuckDBPyConnection, sql: str, directory: Path, schema: pa.Schema,
                  rows: int) -> None:
    roller = ParquetRoller(directory, schema, rows)
    for table in _stream(con, sql):
        roller.write(table)
    roller.close()


def _components_views(con: duckdb.DuckDBPyConnection, components: list[str], earlier: list[str]) -> None:
    """``components`` (fuzzy.COMPONENT_SCHEMA) and ``earlier_ids``: the node number and id of
    every document in the earlier runs' signature files, numbered as fuzzy.py numbers them."""
    if components:
        con.read_parquet(components).create_view("components")
    else:
        con.from_arrow(COMPONENT_SCHEMA.empty_table()).create_view("components")
    if earlier:
        con.from_arrow(pa.table({"number": range(len(earlier)), "filename": earlier})).create_view("earlier_files")
        con.read_parquet([str(path) for path in earlier], filename=True, file_row_number=True).create_view(
            "earlier_rows")
        con.execute(f"""CREATE TEMP VIEW earlier_ids AS
            SELECT (f.number::BIGINT << {ROW_BITS}) | r.file_row_number AS node, r.id
            FROM earlier_rows r JOIN earlier_files f USING (filename)""")
    else:
        con.execute("CREATE TEMP VIEW earlier_ids AS SELECT NULL::BIGINT AS node, NULL::VARCHAR AS id WHERE false")


def _remove_outputs(out: Path) -> None:
    for name in OUTPUT_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


@dataclass
class DedupInputs:
    """What finalize deduplicates with: exact dedup on or off, fuzzy dedup's components over
    this run and the ``earlier`` runs' signature files (see fuzzy.py), the scheme to write this
    run's signatures under (None: fuzzy dedup off), and semantic dedup's settings."""

    exact: bool = True
    components: list[str] = field(default_factory=list)
    earlier: list[str] = field(default_factory=list)
    signatures: MinHashScheme | None = None
    semantic: SemanticDedupSettings | None = None


def _semantic_dedup(con: duckdb.DuckDBPyConnection, settings: SemanticDedupSettings, work: Path,
                    progress: Callable[[str], None]) -> None:
    """Drop the survivors of exact and fuzzy dedup that say the same as a better one
    (semantic.py), as ``semantic_duplicate`` with ``dup_cluster`` ``semantic:<kept id>``."""
    work.mkdir(parents=True, exist_ok=True)
    candidates = work / "candidates.parquet"
    con.sql(f"""SELECT (input_index::BIGINT << {ROW_BITS}) | ordinal AS node, id, quality, text
                FROM final WHERE status = '{KEPT}' ORDER BY node""").write_parquet(str(candidates))
    con.read_parquet(str(candidates)).create_view("semantic_candidates")
    con.read_parquet(str(semantic_duplicates([candidates], settings, work, progress))).create_view("semantic_found")
    con.execute(f"""
        UPDATE decision SET status = '{DROPPED}', stage = '{SEMANTIC_DEDUP_STAGE}', reason = '{SEMANTIC_DUPLICATE}',
               dup_cluster = 'semantic:' || kept.id
        FROM semantic_found found JOIN semantic_candidates kept ON kept.node = found.duplicate_of
        WHERE ((decision.input_index::BIGINT << {ROW_BITS}) | decision.ordinal) = found.node""")


def finalize(out: Path, staged: list[Path], units: list[InputUnit], shard_rows: int,
             dedup: DedupInputs | None = None, progress: Callable[[str], None] = print) -> FinalCounts:
    """Decide duplicates, write shards, dropped and quarantine sets, and with fuzzy dedup the
    kept documents' MinHash signatures for later runs; count everything."""
    dedup = dedup or DedupInputs()
    # An earlier run's manifest would describe files about to be replaced: without it the
    # folder reads as unfinished until this run's manifest is written.
    manifest_path(out).unlink(missing_ok=True)
    _remove_outputs(out)
    spill = out / ".staging" / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute("SET preserve_insertion_order = true")
        con.read_parquet([str(path) for path in staged]).create_view("staged")
        _components_views(con, dedup.components, dedup.earlier)
        con.execute(_decisions_sql(dedup.exact))
        con.execute(_FINAL_VIEW)
        if dedup.semantic is not None and dedup.semantic.enabled:
            _semantic_dedup(con, dedup.semantic, out / ".staging" / "semantic", progress)

        shards = _write_shards(con, out, shard_rows)
        _write_sorted(con, f"""SELECT {', '.join(DROPPED_SCHEMA.names)} FROM final
                       WHERE status = '{DROPPED}' ORDER BY input_index, ordinal""",
                      out / "dropped", DROPPED_SCHEMA, shard_rows)
        _write_sorted(con, f"""SELECT source, file, location, reason AS error, left(text, 200) AS raw
                       FROM final WHERE status = '{QUARANTINED}' ORDER BY input_index, ordinal""",
                      out / "quarantine", QUARANTINE_SCHEMA, shard_rows)
        if dedup.signatures is not None:
            _write_sorted(con, f"""SELECT id, minhash FROM final WHERE status = '{KEPT}' AND minhash IS NOT NULL
                           ORDER BY id""", out / SIGNATURES_DIR, SIGNATURE_SCHEMA, shard_rows)
            write_scheme(out, dedup.signatures)

        per_file = {(source, file): n for source, file, n in
                    con.execute("SELECT source, file, count(*) FROM staged GROUP BY ALL").fetchall()}
        dropped = dict(con.execute(
            f"SELECT reason, count(*) FROM final WHERE status = '{DROPPED}' GROUP BY ALL ORDER BY reason"
        ).fetchall())
        quarantined = con.execute(f"SELECT count(*) FROM final WHERE status = '{QUARANTINED}'").fetchone()[0]
        domains: dict[str, DomainTotals] = defaultdict(DomainTotals)
        for domain, documents, chars, tokens in con.execute(
            f"""SELECT domain, count(*), sum(n_chars), sum(n_tokens) FROM final
                WHERE status = '{KEPT}' GROUP BY ALL ORDER BY domain"""
        ).fetchall():
            domains[domain] = DomainTotals(documents=documents, chars=int(chars), tokens=int(tokens))
    except BaseException:
        # Shards already finished would be read by anything that globs shards/ (the mixer
        # does), though no manifest accounts for them: a failed run leaves no outputs, only
        # its staging, which --resume reuses.
        _remove_outputs(out)
        raise
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)

    read = dict.fromkeys((unit.source, file.path) for unit in units for file in unit.files)  # ordered, unique
    inputs = [InputRecord(source=source, path=path, documents=per_file.get((source, path), 0))
              for source, path in read]
    counts = Counts(
        input=sum(record.documents for record in inputs),
        kept=sum(totals.documents for totals in domains.values()),
        dropped=dropped,
        quarantined=quarantined,
    )
    return FinalCounts(counts=counts, inputs=inputs, shards=shards, domains=dict(domains))
