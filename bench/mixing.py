"""Mixer throughput and packing quality, against a plain numpy concat-and-chunk baseline on the
same tokenised documents, side by side in one run, one core each.

Data: the bundled sample curated by the example config (``examples/curate.yaml``; heuristic
quality, no classifiers) and a byte-level BPE trained on it, or ``--corpus``/``--tokenizer``
from an earlier run (e.g. ``runs/demo/curated`` and ``runs/demo/tokenizer.json``).

Measured, every side pinned to one thread (``RAYON_NUM_THREADS=1``, ``torch.set_num_threads(1)``),
so tokens per second are per core:

- **build on the fly**: ``PlannedMixture.pack`` of a ``--tokens`` phase (seeded shuffled passes,
  document-level FIM on code, error-minimising interleave, concat-and-chunk), from documents
  already tokenised; and the same including the selection and tokenisation of every document
  (``PlannedMixture.of``), which a long phase amortises over its repetitions.
- **baseline build**: the same documents in one seeded shuffled order, repeated to the same
  budget, each with its end token, ``np.concatenate`` and a reshape to ``seq_len``.
- **read built shards**: ``PhaseDataset`` over the memory-mapped phase, every batch as int64
  tensors (tokens, segments, sources), after one untimed pass so both read from the page cache;
  **baseline read**: slicing the baseline's tokens ``.npy`` memory-mapped, batch by batch, to int64.
- **packing**: one epoch of every sample document at ``--seq-len`` packed by concat-and-chunk and
  by best-fit: documents truncated, padding share, and the largest gap between a source's
  realised and target share.

    .venv/bin/python bench/mixing.py [--tokens 20000000] [--seq-len 2048] [--output bench/results]

Writes ``bench/results/mixing.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402

from bench.results import write_result  # noqa: E402
from mixer.build import PlannedMixture, build_mixture, derive_rng  # noqa: E402
from mixer.dataset import PhaseDataset  # noqa: E402
from mixer.spec import MixtureSpec  # noqa: E402
from mixer.tokenizer import SpecialTokens, load_tokenizer  # noqa: E402

BATCH = 8
SOURCES = [  # the demo's general phase
    {"name": "web", "select": {"domain": "web"}, "weight": 0.55},
    {"name": "code", "select": {"domain": "code"}, "weight": 0.25, "fim": {"rate": 0.5}},
    {"name": "math", "select": {"domain": "math"}, "weight": 0.1},
    {"name": "instruction", "select": {"domain": "instruction"}, "weight": 0.1},
]


def timed(function: Callable, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def curate_sample(work: Path) -> tuple[Path, Path]:
    """The sample curated by the example config, and a tokenizer trained on it."""
    from api import service
    from api.demo import DEMO_VOCAB_SIZE, demo_curate_config

    curated = work / "curated"
    service.curate(demo_curate_config(curated), progress=lambda line: None)
    tokenizer = service.train_tokenizer([str(curated)], work / "tokenizer.json", vocab_size=DEMO_VOCAB_SIZE,
                                        progress=lambda line: None)
    return curated, Path(tokenizer)


def spec_for(corpus: Path, tokenizer: Path, tokens: int, seq_len: int, packing: str = "concat",
             sources: list[dict] = SOURCES) -> MixtureSpec:
    return MixtureSpec.model_validate({
        "name": "bench", "corpus": [str(corpus)], "tokenizer": str(tokenizer), "seed": 7,
        "phases": [{"name": "phase", "tokens": tokens, "seq_len": seq_len, "packing": {"method": packing},
                    "sources": sources}],
    })


def baseline_build(planned: PlannedMixture, tokens: int, seq_len: int, eod: int) -> np.ndarray:
    """Concat-and-chunk in plain numpy from the same tokenised documents: each gets its end
    token, then pass after pass over all of them, each pass in a new seeded order, until the
    budget; one concatenate, cut to ``seq_len``. No weights, FIM or per-source accounting."""
    phase = planned.spec.phases[0]
    sources = [planned.cache.get(source.select) for source in phase.sources]
    documents = [np.append(docs.token_ids(i), np.uint32(eod)) for docs in sources for i in range(len(docs))]
    rng = derive_rng(0, "baseline")
    chosen: list[np.ndarray] = []
    taken = 0
    while taken < tokens:
        for index in rng.permutation(len(documents)).tolist():
            chosen.append(documents[index])
            taken += len(documents[index])
            if taken >= tokens:
                break
    return np.concatenate(chosen)[: tokens // seq_len * seq_len].reshape(-1, seq_len)


def read_dataset(dataset: PhaseDataset) -> int:
    tokens = 0
    for batch in dataset:
        tokens += batch.tokens.numel()
    return tokens


def read_baseline(path: Path) -> int:
    array = np.load(path, mmap_mode="r")
    tokens = 0
    for first in range(0, len(array) - BATCH + 1, BATCH):
        batch = torch.from_numpy(np.asarray(array[first:first + BATCH], dtype=np.int64))
        tokens += batch.numel()
    return tokens


def throughput(corpus: Path, tokenizer: Path, tokens: int, seq_len: int, work: Path) -> dict:
    spec = spec_for(corpus, tokenizer, tokens, seq_len)
    prepare_seconds, planned = timed(PlannedMixture.of, spec)
    pack_seconds, (arrays, report) = timed(planned.pack, spec.phases[0])
    written = arrays.tokens.size
    eod = SpecialTokens.from_tokenizer(load_tokenizer(tokenizer)).eod
    base_seconds, base = timed(baseline_build, planned, tokens, seq_len, eod)

    mix = work / "mix"
    build_mixture(spec, str(mix))
    base_path = work / "baseline-tokens.npy"
    np.save(base_path, base)
    dataset = PhaseDataset.from_built(mix, "phase", BATCH)
    read_dataset(dataset), read_baseline(base_path)  # untimed: both into the page cache
    read_seconds, read_tokens = timed(read_dataset, dataset)
    base_read_seconds, base_read_tokens = timed(read_baseline, base_path)
    build_rate = written / pack_seconds
    build_all_rate = written / (prepare_seconds + pack_seconds)
    base_rate = base.size / base_seconds
    read_rate = read_tokens / read_seconds
    base_read_rate = base_read_tokens / base_read_seconds
    return {
        "phase_tokens": tokens, "seq_len": seq_len, "tokens_written": int(written),
        "documents_selected": sum(source.documents for source in planned.plan.phases[0].sources),
        "tokens_available": sum(source.tokens_available for source in planned.plan.phases[0].sources),
        "select_and_tokenize_seconds": round(prepare_seconds, 3),
        "build_on_the_fly": {"seconds": round(pack_seconds, 3), "tokens_per_s_per_core": round(build_rate)},
        "build_on_the_fly_incl_tokenize": {"seconds": round(prepare_seconds + pack_seconds, 3),
                                           "tokens_per_s_per_core": round(build_all_rate)},
        "baseline_build": {"seconds": round(base_seconds, 3), "tokens_per_s_per_core": round(base_rate)},
        "build_ratio_vs_baseline": round(build_rate / base_rate, 3),
        "read_built": {"seconds": round(read_seconds, 3), "tokens_per_s_per_core": round(read_rate),
                       "arrays": ["tokens", "segments", "sources"]},
        "baseline_read": {"seconds": round(base_read_seconds, 3), "tokens_per_s_per_core": round(base_read_rate),
                          "arrays": ["tokens"]},
        "read_ratio_vs_baseline": round(read_rate / base_read_rate, 3),
        "max_share_error": round(report.max_share_error, 6),
        "targets_met": {"read_20M_per_core": read_rate >= 20e6, "build_1M_per_core": build_rate >= 1e6},
    }


def one_epoch_phases(available: int, seq_len: int) -> list[dict]:
    """Every sample document once (sources weighted by their size, the budget one pass), under
    each packing; one spec, so the documents are tokenised once for both."""
    sources = [{**source, "weight": 1} for source in SOURCES]
    return [
        {"name": method, "tokens": available, "seq_len": seq_len, "packing": {"method": method},
         "weighting": {"scheme": "temperature", "temperature": 1.0}, "sources": sources}
        for method in ("concat", "best_fit")
    ]


def packing(corpus: Path, tokenizer: Path, seq_len: int) -> dict:
    probe = PlannedMixture.of(spec_for(corpus, tokenizer, seq_len, seq_len))
    available = sum(source.tokens_available for source in probe.plan.phases[0].sources)
    spec = spec_for(corpus, tokenizer, available, seq_len).model_copy(
        update={"phases": MixtureSpec.model_validate({
            "name": "x", "corpus": ["x"], "tokenizer": "x", "phases": one_epoch_phases(available, seq_len)
        }).phases})
    planned = PlannedMixture.of(spec)
    results: dict = {}
    for phase in spec.phases:
        seconds, (_, report) = timed(planned.pack, phase)
        results[phase.name] = {
            "sequences": report.n_sequences, "tokens_real": report.tokens_real,
            "documents": sum(source.documents_used for source in report.sources),
            "epochs": {source.name: round(source.epochs, 3) for source in report.sources},
            "documents_truncated": report.documents_truncated,
            "padding": report.padding, "padding_share": round(report.padding / report.tokens_written, 5),
            "tokens_dropped": report.tokens_dropped,
            "max_share_error": round(report.max_share_error, 6), "seconds": round(seconds, 3),
        }
    concat, best = results["concat"], results["best_fit"]
    results["best_fit_truncates_fewer"] = best["documents_truncated"] < concat["documents_truncated"]
    results["best_fit_padding_at_most_1pct"] = best["padding_share"] <= 0.01
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=20_000_000)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--corpus", type=Path, help="a curated output (default: curate the sample)")
    parser.add_argument("--tokenizer", type=Path, help="its tokenizer (with --corpus)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    # one core: tokenizers builds its thread pool on first use, so this is early enough
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-mixer-") as scratch:
        work = Path(scratch)
        if args.corpus is None:
            print("bench: curating the sample ...", flush=True)
            corpus, tokenizer = curate_sample(work)
        else:
            if args.tokenizer is None:
                parser.error("--corpus needs --tokenizer")
            corpus, tokenizer = args.corpus, args.tokenizer
        print("bench: throughput ...", flush=True)
        speed = throughput(corpus, tokenizer, args.tokens, args.seq_len, work)
        print("bench: packing ...", flush=True)
        packed = {str(seq_len): packing(corpus, tokenizer, seq_len) for seq_len in (args.seq_len, 8192)}
    result = {
        "benchmark": "mixing", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "threads": 1, "throughput": speed, "packing": packed,
    }
    write_result(args.output, "mixing", result)


if __name__ == "__main__":
    main()
