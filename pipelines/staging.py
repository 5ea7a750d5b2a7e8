"""The distributed half of a curation run: each input file (a byte range of a large
uncompressed jsonl file; a run of small files of a folder source) becomes one work unit that a Ray task reads, filters and writes to
``OUT/.staging/<config>/`` as one Parquet file of staged rows.

A unit is all or nothing: its file appears under its final name only when every record of
the input is in it, so ``--resume`` after an interruption can trust what it finds and stage
only the rest. A staged file records its inputs' sizes and modification times; a unit whose
inputs changed since is staged again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from itertools import chain
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from corpus.schema import PARQUET_COMPRESSION
from pipelines.config import CurateConfig
from pipelines.readers import read_input
from pipelines.readers.streams import CODECS, line_ranges
from pipelines.readers.tree import TREE_FORMATS
from pipelines.stages import STAGED_SCHEMA, document_stage

STAGING = ".staging"
_FINGERPRINT_KEY = b"midtrain.input"
_WRITE_ROWS = 8192  # staged rows buffered before a Parquet row group is written


class InputFile(BaseModel):
    """One input file, or the lines starting in bytes [start, end) of a large one."""

    path: str
    size: int
    mtime_ns: int
    start: int = 0
    end: int | None = None
    first_line: int = 1

    def reader_range(self) -> dict[str, int]:
        """Keyword arguments that restrict a jsonl reader to this part; none for a whole file."""
        if self.end is None:
            return {}
        return {"start": self.start, "end": self.end, "first_line": self.first_line}


class InputUnit(BaseModel):
    """One task's input: a file, or for folder sources (text, code, html) a run of small
    files, so a tree of 100k files is not 100k tasks. ``index`` orders every record of a run
    (see finalize)."""

    index: int
    source: str
    files: list[InputFile]

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {"source": self.source, "files": [file.model_dump() for file in self.files]}

    def staged_name(self) -> str:
        paths = "\0".join(f"{file.path}@{file.start}" for file in self.files)
        key = hashlib.sha1(f"{self.source}\0{paths}".encode()).hexdigest()[:12]
        return f"input-{self.index:06d}-{key}.parquet"


class CurationError(ValueError):
    """Bad curation input found before any work starts (e.g. a glob that matches nothing)."""


COMPRESSED = tuple(CODECS)  # a compressed stream cannot be entered mid-way, so is never split

# A folder source's files are grouped into units of at most this many files or bytes.
UNIT_FILES, UNIT_BYTES = 512, 64 * 2**20


def _grouped(files: list[InputFile], by_folder: bool) -> list[list[InputFile]]:
    if not by_folder:
        return [[file] for file in files]
    groups: list[list[InputFile]] = [[]]
    for file in files:
        group = groups[-1]
        if group and (len(group) == UNIT_FILES or sum(f.size for f in group) + file.size > UNIT_BYTES):
            groups.append(group := [])
        group.append(file)
    return groups


def plan_units(config: CurateConfig) -> list[InputUnit]:
    units: list[InputUnit] = []
    for source in config.sources:
        paths = source.files()
        if not paths:
            raise CurationError(f"source {source.name!r}: path {source.path!r} matches no files")
        files = []
        for path in paths:
            try:
                stat = os.stat(path)
                size, mtime_ns = stat.st_size, stat.st_mtime_ns
            except OSError:  # a dangling symlink or a loop: one input, quarantined when read
                size, mtime_ns = 0, 0
            whole = InputFile(path=path, size=size, mtime_ns=mtime_ns)
            if source.format == "jsonl" and not path.endswith(COMPRESSED) and size > config.split_bytes:
                files.extend(whole.model_copy(update={"start": start, "end": end, "first_line": line})
                             for start, end, line in line_ranges(path, config.split_bytes))
            else:
                files.append(whole)
        for group in _grouped(files, by_folder=source.format in TREE_FORMATS):
            units.append(InputUnit(index=len(units), source=source.name, files=group))
    return units


def staging_dir(out: str | Path, config_hash: str) -> Path:
    return Path(out) / STAGING / config_hash[:16]


def reset_staging(out: str | Path) -> None:
    shutil.rmtree(Path(out) / STAGING, ignore_errors=True)


def is_staged(directory: Path, unit: InputUnit) -> bool:
    """Whether ``unit`` was staged completely from the same, unchanged input."""
    path = directory / unit.staged_name()
    if not path.exists():
        return False
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False  # a damaged file is staged again, not trusted
    return json.loads(metadata.get(_FINGERPRINT_KEY, b"null")) == unit.fingerprint


def _batches(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for ordinal, record in enumerate(records):
        record["ordinal"] = ordinal
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def stage_unit(unit: InputUnit, config_json: str, directory: Path, batch_size: int) -> int:
    """Read, filter and stage every record of one input; returns the number of records.
    Memory is bounded by one batch plus one row group, whatever the input's size."""
    stage = document_stage(config_json)
    source = stage.sources[unit.source]
    schema = STAGED_SCHEMA.append(pa.field("input_index", pa.int32())).with_metadata(
        {_FINGERPRINT_KEY: json.dumps(unit.fingerprint).encode()}
    )
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / unit.staged_name()
    partial = final.with_name(f"{final.name}.{os.getpid()}.partial")
    rows, pending, buffered = 0, [], 0
    with pq.ParquetWriter(partial, schema, compression=PARQUET_COMPRESSION) as writer:
        records = chain.from_iterable(read_input(source, file.path, **file.reader_range()) for file in unit.files)
        for batch in _batches(records, batch_size):
            table = stage(batch)
            pending.append(table.append_column(
                "input_index", pa.array([unit.index] * table.num_rows, pa.int32())
            ))
            rows += table.num_rows
            buffered += table.num_rows
            if buffered >= _WRITE_ROWS:
                writer.write_table(pa.concat_tables(pending))
                pending, buffered = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending))
    os.replace(partial, final)
    return rows


def stage_row(row: dict[str, Any], config_json: str, directory: str, batch_size: int) -> dict[str, Any]:
    """Ray Data ``map`` entry: one row in = one input unit; out = what was staged."""
    unit = InputUnit.model_validate(row)
    started = time.perf_counter()
    records = stage_unit(unit, config_json, Path(directory), batch_size)
    return {"index": unit.index, "records": records, "seconds": time.perf_counter() - started}
