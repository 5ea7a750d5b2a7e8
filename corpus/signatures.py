"""Contract 1's ``OUT/minhash/``: the MinHash signature of every kept document of a run, so a
later run can deduplicate against this corpus without reading its text (incremental dedup).

``part-*.parquet`` hold ``(id, minhash)``, ``minhash`` being ``num_perm`` little-endian uint32;
``scheme.json`` holds the parameters that made them. Signatures are comparable only under the
same scheme, so a reference run with another one is refused, not silently misread.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from filters.minhash import MinHashScheme

SIGNATURES_DIR = "minhash"
SCHEME_FILE = "scheme.json"
SIGNATURE_SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("minhash", pa.binary())])


def write_scheme(out: Path, scheme: MinHashScheme) -> None:
    directory = out / SIGNATURES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SCHEME_FILE).write_text(json.dumps(asdict(scheme), sort_keys=True) + "\n")


def reference_files(folder: str | Path, scheme: MinHashScheme) -> list[str]:
    """The signature files of an earlier run's output ``folder``, checked against ``scheme``."""
    directory = Path(folder) / SIGNATURES_DIR
    scheme_path = directory / SCHEME_FILE
    if not scheme_path.is_file():
        raise ValueError(f"fuzzy_dedup.reference {folder}: no {SIGNATURES_DIR}/{SCHEME_FILE} "
                         "(not a midtrain run with fuzzy dedup enabled)")
    try:
        theirs = json.loads(scheme_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"fuzzy_dedup.reference {scheme_path}: not JSON ({error})") from None
    ours = asdict(scheme)
    different = sorted(key for key in ours if theirs.get(key) != ours[key])
    if different:
        detail = ", ".join(f"{key} {theirs.get(key)} there, {ours[key]} here" for key in different)
        raise ValueError(f"fuzzy_dedup.reference {folder}: signatures made with another scheme ({detail})")
    return [str(path) for path in sorted(directory.glob("part-*.parquet"))]
