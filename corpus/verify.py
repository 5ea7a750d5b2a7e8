"""``midtrain verify OUT``: does a curated output hold what its manifest says?

Checks, each a finding when it fails: the manifest reads; the counting invariant
``input = kept + Σ dropped + quarantined``; inputs' documents sum to ``input``; every shard
the manifest lists exists with its recorded size, sha256 and row count (from the Parquet
footer, so a torn file shows); shard rows sum to ``kept`` and, per domain, to the domain's
documents; the dropped and quarantine files hold ``Σ dropped`` and ``quarantined`` rows; and no
Parquet file under ``shards/`` is missing from the manifest (a reader globbing the folder
would take it for data).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import ValidationError

from corpus.manifest import InvariantError, Manifest, check_invariant, read_manifest, sha256_file


@dataclass
class Verification:
    out: str
    shards: int = 0  # shards whose bytes were hashed
    rows: int = 0  # rows in them
    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def parquet_rows(path: Path) -> int:
    """Rows by the footer; raises ``OSError``/``ValueError`` (pyarrow's) for a torn file."""
    return pq.read_metadata(path).num_rows


def folder_rows(folder: Path, finding: list[str], out: Path) -> int:
    total = 0
    for path in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
        try:
            total += parquet_rows(path)
        except (OSError, ValueError) as error:
            finding.append(f"{path.relative_to(out)}: unreadable Parquet ({error})")
    return total


def verify_output(out: str | Path) -> Verification:
    """Every check above on the curated output ``out``."""
    root = Path(out)
    result = Verification(str(root))
    try:
        manifest = read_manifest(root)
    except (FileNotFoundError, ValueError, ValidationError) as error:
        result.findings.append(f"{root / 'manifest.json'}: {' '.join(str(error).split())[:300]}")
        return result
    counts = manifest.counts
    try:
        check_invariant(counts)
    except InvariantError as error:
        result.findings.append(f"manifest.json: {error}")
    read = sum(item.documents for item in manifest.inputs)
    if read != counts.input:
        result.findings.append(f"manifest.json: inputs read {read} documents but counts.input is {counts.input}")
    check_shards(root, manifest, result)
    check_side_files(root, manifest, result)
    return result


def check_shards(root: Path, manifest: Manifest, result: Verification) -> None:
    by_domain: Counter[str] = Counter()
    listed = set()
    for shard in manifest.shards:
        path = root / shard.path
        listed.add(path.resolve())
        if not path.is_file():
            result.findings.append(f"{shard.path}: missing")
            continue
        size = path.stat().st_size
        if size != shard.bytes:
            result.findings.append(f"{shard.path}: {size} bytes, the manifest says {shard.bytes}")
        digest = sha256_file(path)
        if digest != shard.sha256:
            result.findings.append(f"{shard.path}: sha256 {digest[:16]}..., the manifest says {shard.sha256[:16]}...")
        try:
            rows = parquet_rows(path)
        except (OSError, ValueError) as error:
            result.findings.append(f"{shard.path}: unreadable Parquet ({error})")
            continue
        if rows != shard.rows:
            result.findings.append(f"{shard.path}: {rows} rows, the manifest says {shard.rows}")
        result.shards += 1
        result.rows += rows
        by_domain[shard.domain] += rows
    shard_rows = sum(shard.rows for shard in manifest.shards)
    if shard_rows != manifest.counts.kept:
        result.findings.append(f"manifest.json: shards hold {shard_rows} rows but counts.kept is {manifest.counts.kept}")
    for domain, totals in sorted(manifest.domains.items()):
        if by_domain[domain] != totals.documents and result.shards == len(manifest.shards):
            result.findings.append(f"domain {domain}: shards hold {by_domain[domain]} rows, "
                                   f"the manifest says {totals.documents} documents")
    for path in sorted((root / "shards").rglob("*.parquet")) if (root / "shards").is_dir() else []:
        if path.resolve() not in listed:
            result.findings.append(f"{path.relative_to(root)}: not in the manifest (a partial or stray write)")


def check_side_files(root: Path, manifest: Manifest, result: Verification) -> None:
    """The dropped and quarantine records agree with the counts."""
    dropped = folder_rows(root / "dropped", result.findings, root)
    if dropped != sum(manifest.counts.dropped.values()):
        result.findings.append(f"dropped/: {dropped} rows, the manifest counts "
                               f"{sum(manifest.counts.dropped.values())} dropped")
    quarantined = folder_rows(root / "quarantine", result.findings, root)
    if quarantined != manifest.counts.quarantined:
        result.findings.append(f"quarantine/: {quarantined} rows, the manifest counts "
                               f"{manifest.counts.quarantined} quarantined")
