"""Near-duplicate removal: midtrain's fuzzy (MinHash) dedup against datatrove's 4-stage MinHash
pipeline, on a generated corpus with planted duplicates, same input and same cores, side by
side in one run: quality against exact ground truth, documents per second, and memory.

Corpus (deterministic from ``--seed``). Words are drawn from a fixed vocabulary (the lowercase
words of ``examples/sample/``'s web pages, ranked by frequency) with Zipf weights (1/rank),
into sentences (capitalised, commas, ``. ? !``) and paragraphs; ``--min-words``..``--max-words``
words, and in some documents a boilerplate footer ("Posted by ... Share this article.").
Planted, then shuffled over ``--files`` jsonl files with ids ``d0000000``..:

- exact duplicates (``--exact-fraction`` of the documents): identical copies of a member of a
  family (its original or one of its near-duplicates);
- near-duplicates (``--near-fraction``): a copy of the family's original, or of an earlier
  near-duplicate, edited (word substitutions, insertions and deletions, two sentences swapped,
  the footer changed, punctuation changed) until its word-5-gram Jaccard with what it was
  copied from falls to a target drawn uniformly from [0.5, 1.0]; so the 0.8 threshold is
  tested from both sides (the JSON has the histogram of what was reached);
- everything else: unrelated documents. A family is an original and the copies planted from
  it, ``--copies-per-family`` copies on average.

Ground truth. Shingles are the word 5-grams of the lowercased text split into ``\\w+`` words
(a text of fewer than 5 words is one shingle of all its words). Two documents are
near-duplicates iff the exact Jaccard of their shingle sets is at least 0.8. Pairs are only
compared within a family: unrelated generated documents share almost no 5-grams, which
``unrelated_check`` verifies on a sample of documents from different families (every pair
sharing a shingle, its exact Jaccard; the JSON reports the maximum). In each connected component
of the ≥ 0.8 graph, all documents but one should be removed.

Scoring (``score_removal``, a pure function). A tool's removed set R (midtrain: ids in
``OUT/dropped/`` with reason ``exact_duplicate`` or ``near_duplicate``; datatrove: input ids
missing from its output) against the components C of size ≥ 2:

    precision = |R ∩ ⋃C| / |R|
    recall    = Σ_c min(|R ∩ c|, |c| - 1) / Σ_c (|c| - 1)
    F1        = 2 · precision · recall / (precision + recall)

``components_emptied`` counts components a tool removed entirely (precision does not see that
loss). Exact dedup (``exact_recall``): over the groups of identical text, copies removed /
copies planted. midtrain also reports how many of them it dropped as ``exact_duplicate``:
an identical copy of a document that is not its cluster's survivor is a ``near_duplicate``.

Tools, on the same jsonl files and 2 cores:

- datatrove 0.10.1: ``MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)``;
  LocalPipelineExecutor per stage, one after the other: JsonlReader → MinhashDedupSignature
  (tasks = files, 2 workers), MinhashDedupBuckets (14 tasks, one per bucket, 2 workers),
  MinhashDedupCluster (1 task), JsonlReader → MinhashDedupFilter → JsonlWriter (tasks = files,
  2 workers); workers forked. It has no exact-dedup stage and does not verify candidates:
  any band collision joins a cluster.
- midtrain: ``pipelines.curate.run_curation`` with every per-document filter off (kind web,
  no language gate, no PII redaction), exact dedup and ``fuzzy_dedup`` on (5-grams, 14 bands ×
  8 rows, candidate pairs verified at Jaccard ≥ 0.8), a local Ray with 2 CPUs and 2 tasks.
  Its documents still go through reading, normalising, language ID, token counting and the
  Parquet shards, manifest and report: the headline is end-to-end against end-to-end. Ray's
  start-up is timed apart (datatrove has none) and reported with the ratio including it;
  ``stage_seconds`` from the manifest show where the time went.

Each tool runs in a fresh child process, so its memory is its own: a sampler sums RSS every
0.2 s (and PSS, which splits pages shared between processes such as Ray's object store, every
5 s: reading it is costly) over the child and all its descendants (the Ray driver, GCS, raylet
and workers; datatrove's forked workers). ``peak_rss_mb`` is the peak of that sum during the
run; ``baseline_rss_mb`` the sum just before it, after the child has waited idle for
``BASELINE_SECONDS`` (for midtrain: Ray up and idle).

    .venv/bin/python bench/dedup.py [--sizes 10000 100000] [--datatrove-sizes 10000 100000]
        [--short-sizes 10000 100000 1000000] [--datatrove-short-sizes 10000 100000]
        [--output bench/results/dedup.json] [--workdir DIR --keep]

``--sizes`` run with ``--min-words``/``--max-words`` (50-400); ``--short-sizes`` with
``--short-min-words``/``--short-max-words`` (20-60), for memory at scale. datatrove runs only
at the sizes listed in ``--datatrove-sizes``/``--datatrove-short-sizes`` (a million short
documents would take it well over half an hour here); the JSON says where it did not run.
Beside datatrove's sizes midtrain also runs once with fuzzy dedup off, to show what fuzzy
dedup adds (``--no-marginal`` skips that). The defaults take about 25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import itertools
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from api.demo import sample_texts  # noqa: E402  (after the path insert that makes it importable)
from bench.curate import WORKERS  # noqa: E402

THRESHOLD = 0.8
NGRAM = 5
BANDS, ROWS, MINHASH_SEED = 14, 8, 1
SOURCE = "bench"  # midtrain's ids are "<source>/<input id>"
BASELINE_SECONDS = 5.5  # idle before a timed run, so the memory sampler sees its baseline (PSS too)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Millions of small containers are built here and never freed in cycles: without the
    cyclic collector's repeated passes over them, building them is several times faster."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- ground truth and scoring ---------------------------------------------------------------

WORD = re.compile(r"\w+")


def shingles(text: str, n: int = NGRAM) -> frozenset[tuple[str, ...]]:
    """Word n-grams of the lowercased text split into ``\\w+`` words; a shorter text is one
    shingle of all its words."""
    words = WORD.findall(text.lower())
    if len(words) < n:
        return frozenset([tuple(words)])
    return frozenset(zip(*(words[i:] for i in range(n))))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def components(ids: list[str], texts: list[str], threshold: float = THRESHOLD) -> list[list[str]]:
    """Connected components (size ≥ 2) of the graph joining documents at Jaccard ≥ threshold."""
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sets = [shingles(text) for text in texts]
    for i, j in itertools.combinations(range(len(ids)), 2):
        if root(i) != root(j) and (texts[i] == texts[j] or jaccard(sets[i], sets[j]) >= threshold):
            parent[root(i)] = root(j)
    groups: dict[int, list[str]] = defaultdict(list)
    for i, doc_id in enumerate(ids):
        groups[root(i)].append(doc_id)
    return [sorted(group) for group in groups.values() if len(group) > 1]


def exact_recall(removed: set[str], groups: list[list[str]]) -> dict:
    """Copies of identical texts removed (all but one per group) over copies planted."""
    planted = sum(len(group) - 1 for group in groups)
    removed_copies = sum(min(len(removed.intersection(group)), len(group) - 1) for group in groups)
    return {"copies_planted": planted, "copies_removed": removed_copies,
            "recall": round(removed_copies / planted, 5) if planted else 1.0}


def score_removal(removed: set[str], truth: list[list[str]]) -> dict:
    """Precision, recall and F1 of a removed set against duplicate components (see module doc)."""
    in_components = sum(len(removed.intersection(c)) for c in truth)
    hits = sum(min(len(removed.intersection(c)), len(c) - 1) for c in truth)
    wanted = sum(len(c) - 1 for c in truth)
    precision = in_components / len(removed) if removed else 1.0
    recall = hits / wanted if wanted else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "removed": len(removed),
        "should_remove": wanted,
        "removed_in_components": in_components,
        "removed_outside_components": len(removed) - in_components,
        "recall_hits": hits,
        "components_emptied": sum(removed.issuperset(c) for c in truth),
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
    }


# --- corpus -----------------------------------------------------------------------------------

NAMES = ["admin", "Anna", "J. Smith", "the editors", "Maria Lopez", "staff", "Tom", "Lee Chen", "guest"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
TAILS = ["Share this article.", "Leave a comment below.", "All rights reserved.", "Filed under {}.",
         "Read more posts about {}.", "Subscribe for updates on {}.", "Comments are closed."]
ENDINGS = ".", ".", ".", ".", ".", "?", "!"


@dataclass
class Draft:
    """A document as sentences of words, paragraph sizes and an optional footer line."""

    sentences: list[list[str]]
    ends: list[str]
    paragraphs: list[int]  # sentences per paragraph, in order
    footer: str | None

    def copy(self) -> "Draft":
        return Draft([list(s) for s in self.sentences], list(self.ends), list(self.paragraphs), self.footer)

    def render(self) -> str:
        joined = [" ".join(words) for words in self.sentences]
        rendered = [sentence[:1].upper() + sentence[1:] + end for sentence, end in zip(joined, self.ends)]
        blocks, start = [], 0
        for size in self.paragraphs:
            blocks.append(" ".join(rendered[start:start + size]))
            start += size
        if self.footer:
            blocks.append(self.footer)
        return "\n\n".join(blocks)


class CorpusGenerator:
    """Seeded English-like drafts and the edits that make near-duplicates of them."""

    EDITS = {"substitute": 35, "insert": 15, "delete": 15, "swap_sentences": 10, "footer": 10,
             "punctuation": 15}

    def __init__(self, seed: int, min_words: int, max_words: int) -> None:
        import numpy as np

        self.rng = random.Random(seed)
        self.min_words, self.max_words = min_words, max_words
        counts = Counter(word for text in sample_texts("web/*.jsonl.gz")
                         for word in re.findall(r"\b[a-z]+\b", text) if len(word) > 1 or word in "ai")
        self.vocabulary = np.array(sorted(counts, key=lambda word: (-counts[word], word)), dtype=object)
        zipf = 1.0 / np.arange(1, len(self.vocabulary) + 1)
        self.probabilities = zipf / zipf.sum()
        self.draws = np.random.default_rng(seed)
        self.stream: list[str] = []
        self.position = 0
        self.edits, self.edit_weights = zip(*self.EDITS.items())

    def words(self, k: int) -> list[str]:
        """The next ``k`` words of a seeded Zipf stream over the vocabulary."""
        if self.position + k > len(self.stream):
            drawn = self.draws.choice(len(self.vocabulary), size=max(k, 1 << 20), p=self.probabilities)
            self.stream = self.stream[self.position:] + self.vocabulary[drawn].tolist()
            self.position = 0
        self.position += k
        return self.stream[self.position - k:self.position]

    def footer(self) -> str:
        rng = self.rng
        topic = " ".join(self.words(rng.randint(1, 2)))
        return (f"Posted by {rng.choice(NAMES)} on {rng.choice(MONTHS)} {rng.randint(1, 28)}, "
                f"{rng.randint(2005, 2025)}. " + rng.choice(TAILS).format(topic))

    def sentence(self) -> list[str]:
        words = self.words(self.rng.randint(4, 18))
        for position in range(1, len(words) - 1):
            if self.rng.random() < 0.06:
                words[position] += ","
        return words

    def draft(self) -> Draft:
        rng = self.rng
        target = rng.randint(self.min_words, self.max_words)
        sentences: list[list[str]] = []
        while sum(map(len, sentences)) < target:
            sentences.append(self.sentence())
        paragraphs, left = [], len(sentences)
        while left:
            paragraphs.append(min(left, rng.randint(2, 6)))
            left -= paragraphs[-1]
        return Draft(sentences, [rng.choice(ENDINGS) for _ in sentences], paragraphs,
                     self.footer() if rng.random() < 0.4 else None)

    def edit(self, draft: Draft, kind: str | None = None) -> None:
        """One edit (random unless ``kind`` is given), in place."""
        rng = self.rng
        kind = kind or rng.choices(self.edits, self.edit_weights)[0]
        sentence = rng.choice(draft.sentences)
        if kind == "substitute":
            sentence[rng.randrange(len(sentence))] = self.words(1)[0]
        elif kind == "insert":
            sentence.insert(rng.randint(0, len(sentence)), self.words(1)[0])
        elif kind == "delete" and len(sentence) > 3:
            del sentence[rng.randrange(len(sentence))]
        elif kind == "swap_sentences" and len(draft.sentences) > 1:
            i, j = rng.sample(range(len(draft.sentences)), 2)
            draft.sentences[i], draft.sentences[j] = draft.sentences[j], draft.sentences[i]
        elif kind == "footer":
            draft.footer = self.footer()
        else:  # punctuation (also when a delete or swap does not apply): same shingles, other text
            index = rng.randrange(len(draft.ends))
            draft.ends[index] = "!" if draft.ends[index] != "!" else "."

    def near_duplicate(self, source: Draft) -> tuple[Draft, float]:
        """An edited copy whose Jaccard with ``source`` is at most a target drawn from [0.5, 1.0]
        (1.0 a twentieth of the time: punctuation changed, shingles the same)."""
        target = min(1.0, self.rng.uniform(0.5, 1.025))
        original_text = source.render()
        original = shingles(original_text)
        copy = source.copy()
        if target == 1.0:
            self.edit(copy, "punctuation")
            return copy, 1.0
        while True:
            self.edit(copy)
            text = copy.render()
            similarity = jaccard(original, shingles(text))
            if similarity <= target and text != original_text:
                return copy, similarity


@dataclass
class Corpus:
    ids: list[str]
    texts: list[str]
    families: list[list[int]]  # indexes into ids/texts, original first
    planted: Counter = field(default_factory=Counter)
    edit_jaccards: list[float] = field(default_factory=list)  # each near-duplicate vs its source


def generate_corpus(documents: int, seed: int, min_words: int, max_words: int, exact_fraction: float,
                    near_fraction: float, copies_per_family: float) -> Corpus:
    """``documents`` texts with planted families, shuffled; ids ``d0000000``.. in final order."""
    generator = CorpusGenerator(seed, min_words, max_words)
    rng = generator.rng
    exact, near = round(documents * exact_fraction), round(documents * near_fraction)
    family_count = max(1, round((exact + near) / copies_per_family)) if exact + near else 0
    copies = ["exact"] * exact + ["near"] * near
    rng.shuffle(copies)
    assigned: list[list[str]] = [[] for _ in range(family_count)]
    for kind in copies:
        assigned[rng.randrange(family_count)].append(kind)

    texts: list[str] = []
    members: list[list[int]] = []
    edit_jaccards: list[float] = []
    for kinds in assigned:
        drafts = [generator.draft()]
        family = [len(texts)]
        texts.append(drafts[0].render())
        for kind in kinds:
            if kind == "exact":
                texts.append(texts[rng.choice(family)])
            else:
                source = drafts[0] if rng.random() < 0.7 else rng.choice(drafts)
                draft, similarity = generator.near_duplicate(source)
                drafts.append(draft)
                edit_jaccards.append(similarity)
                texts.append(draft.render())
            family.append(len(texts) - 1)
        members.append(family)
    while len(texts) < documents:
        texts.append(generator.draft().render())

    order = list(range(len(texts)))
    rng.shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    width = max(7, len(str(len(texts))))
    return Corpus(
        ids=[f"d{index:0{width}d}" for index in range(len(texts))],
        texts=[texts[old] for old in order],
        families=[[position[i] for i in family] for family in members if len(family) > 1],
        planted=Counter(exact_copies=exact, near_duplicates=near, families=family_count,
                        unrelated=len(texts) - exact - near - family_count),
        edit_jaccards=edit_jaccards,
    )


@dataclass
class Truth:
    near: list[list[str]]  # components of the ≥ 0.8 graph, size ≥ 2 (identical texts included)
    exact: list[list[str]]  # groups of identical text, size ≥ 2


def ground_truth(corpus: Corpus) -> Truth:
    near, exact = [], []
    for family in corpus.families:
        ids = [corpus.ids[i] for i in family]
        texts = [corpus.texts[i] for i in family]
        near += components(ids, texts)
        by_text: dict[str, list[str]] = defaultdict(list)
        for doc_id, text in zip(ids, texts):
            by_text[text].append(doc_id)
        exact += [sorted(group) for group in by_text.values() if len(group) > 1]
    return Truth(near, exact)


def unrelated_check(corpus: Corpus, sample: int, seed: int) -> dict:
    """Exact Jaccard of every pair of sampled documents from different families that shares a
    shingle: the assumption behind comparing pairs only within families."""
    family_of = {i: number for number, family in enumerate(corpus.families) for i in family}
    chosen = random.Random(seed).sample(range(len(corpus.texts)), min(sample, len(corpus.texts)))
    sets = [shingles(corpus.texts[i]) for i in chosen]
    holders: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for position, shingle_set in enumerate(sets):
        for shingle in shingle_set:
            holders[shingle].append(position)
    pairs = {(a, b) for group in holders.values() if len(group) > 1 for a, b in itertools.combinations(group, 2)
             if family_of.get(chosen[a], -1 - chosen[a]) != family_of.get(chosen[b], -1 - chosen[b])}
    similarities = [jaccard(sets[a], sets[b]) for a, b in pairs]
    return {
        "documents_sampled": len(chosen),
        "pairs_in_sample": len(chosen) * (len(chosen) - 1) // 2,
        "pairs_sharing_a_shingle": len(pairs),
        "max_jaccard": round(max(similarities, default=0.0), 4),
        "pairs_at_or_above_0.5": sum(s >= 0.5 for s in similarities),
        "pairs_at_or_above_threshold": sum(s >= THRESHOLD for s in similarities),
    }


def corpus_summary(corpus: Corpus, truth: Truth) -> dict:
    bins = Counter(min(19, int(similarity * 20)) for similarity in corpus.edit_jaccards)
    below = sum(similarity < THRESHOLD for similarity in corpus.edit_jaccards)
    return {
        "planted": dict(corpus.planted),
        "near_duplicate_jaccard_vs_source": {
            "below_threshold": below,
            "at_or_above_threshold": len(corpus.edit_jaccards) - below,
            "histogram": {f"{b / 20:.2f}-{(b + 1) / 20:.2f}": bins[b] for b in sorted(bins)},
        },
        "truth": {
            "duplicate_components": len(truth.near),
            "documents_in_components": sum(map(len, truth.near)),
            "documents_to_remove": sum(len(c) - 1 for c in truth.near),
            "exact_groups": len(truth.exact),
            "exact_copies_to_remove": sum(len(g) - 1 for g in truth.exact),
        },
    }


def write_corpus(corpus: Corpus, directory: Path, files: int) -> float:
    """Round-robin over ``files`` jsonl files; returns megabytes written."""
    directory.mkdir(parents=True, exist_ok=True)
    handles = [(directory / f"part-{index:03d}.jsonl").open("w", encoding="utf-8") for index in range(files)]
    for number, (doc_id, text) in enumerate(zip(corpus.ids, corpus.texts)):
        handles[number % files].write(json.dumps({"id": doc_id, "text": text}) + "\n")
    for handle in handles:
        handle.close()
    return sum(path.stat().st_size for path in directory.iterdir()) / 1e6


# --- the two tools (each called in a child process by ``measured``) ----------------------------

def run_datatrove(data: str, out: str, files: int) -> dict:
    """datatrove's four MinHash stages, one executor each, timed from the first to the last."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    time.sleep(BASELINE_SECONDS)
    started, clock = time.time(), time.perf_counter()
    config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=MINHASH_SEED)
    folder = Path(out)
    stages: list[tuple[str, Callable[[], list], int]] = [
        ("signatures", lambda: [JsonlReader(data, glob_pattern="*.jsonl"),
                                MinhashDedupSignature(str(folder / "signatures"), config=config)], files),
        ("buckets", lambda: [MinhashDedupBuckets(str(folder / "signatures"), str(folder / "buckets"),
                                                 config=config)], BANDS),
        ("cluster", lambda: [MinhashDedupCluster(str(folder / "buckets"), str(folder / "remove"),
                                                 config=config)], 1),
        ("filter", lambda: [JsonlReader(data, glob_pattern="*.jsonl"), MinhashDedupFilter(str(folder / "remove")),
                            JsonlWriter(str(folder / "kept"))], files),
    ]
    stage_seconds = {}
    for name, pipeline, tasks in stages:
        mark = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline(), tasks=tasks, workers=min(WORKERS, tasks), start_method="fork",
                              logging_dir=str(folder / "logs" / name), skip_completed=False).run()
        stage_seconds[name] = round(time.perf_counter() - mark, 2)
    return {"seconds": time.perf_counter() - clock, "stage_seconds": stage_seconds,
            "window": [started, time.time()]}


def midtrain_config(data: str, out: str, fuzzy: bool = True) -> dict:
    """Every per-document filter off, exact and (unless ``fuzzy`` is false) fuzzy dedup on
    (contract 2)."""
    return {
        "output": out,
        "sources": [{"name": SOURCE, "path": str(Path(data) / "*.jsonl"), "format": "jsonl", "kind": "web",
                     "id_field": "id"}],
        "filters": {"gopher_repetition": False, "gopher_quality": False, "c4_quality": False,
                    "fineweb_quality": False, "code_rules": False, "math_density": False, "pii_redaction": False},
        "language": {"min_score": {}},
        "exact_dedup": True,
        "fuzzy_dedup": {"enabled": fuzzy, "ngram": NGRAM, "bands": BANDS, "rows": ROWS, "threshold": THRESHOLD,
                        "seed": MINHASH_SEED},
        "concurrency": WORKERS,
    }


def run_midtrain(data: str, out: str, fuzzy: bool = True) -> dict:
    """Ray started and Ray Data's first use made before the clock starts (as bench/curate.py
    does; timed apart), then one ``run_curation``."""
    import ray
    import ray.data

    from pipelines.config import CurateConfig
    from pipelines.curate import run_curation
    from pipelines.runtime import ensure_ray

    mark = time.perf_counter()
    ensure_ray(num_cpus=WORKERS)
    ray.data.range(WORKERS, override_num_blocks=WORKERS).map(lambda row: row, num_cpus=1).take_all()
    startup = time.perf_counter() - mark
    config = CurateConfig.model_validate(midtrain_config(data, out, fuzzy))
    time.sleep(BASELINE_SECONDS)
    started, clock = time.time(), time.perf_counter()
    manifest = run_curation(config, progress=lambda line: None)
    seconds = time.perf_counter() - clock
    window = [started, time.time()]
    ray.shutdown()
    return {"seconds": seconds, "ray_startup_seconds": startup, "stage_seconds": manifest.stage_seconds,
            "counts": manifest.counts.model_dump(),
            "window": window}


# --- memory: the process tree of a child, sampled from /proc ----------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def _parents() -> dict[int, int]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            found[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return found


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in _parents().items():
        children[parent].append(pid)
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack += children[pid]
    return tree


def _rss(pid: int) -> int | None:
    """Resident bytes (from statm, cheap), or None when the process has gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def _pss(pid: int) -> int:
    """Proportional set size in bytes: shared pages split between their processes. Reading it
    makes the kernel walk the page tables (~10 ms for a Ray worker), so it is sampled rarely."""
    try:
        return next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                    if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _name(pid: int) -> str:
    """The process name; for Python processes, the script it runs."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        if name.startswith("python"):
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            name = next((Path(a.decode()).name for a in arguments[1:] if a.endswith(b".py")), name)
        return name
    except OSError:
        return "?"


class TreeSampler(threading.Thread):
    """Sums memory over a process and its descendants: RSS every ``interval`` seconds (the
    process tree looked up again every second), PSS every ``pss_every`` samples. The sampler
    must not slow the tool it measures: reading every process's stat and smaps each 0.2 s cost
    half a core."""

    def __init__(self, root: int, interval: float = 0.2, pss_every: int = 25) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.pss_every = root, interval, pss_every
        self.samples: list[tuple[float, int, int | None, int]] = []  # time, rss, pss (or None), processes
        self.peak_names: dict[str, int] = {}  # RSS by process name at the highest sum
        self._stop_event = threading.Event()

    def run(self) -> None:
        peak, tree = -1, []
        for tick in itertools.count():
            if self._stop_event.is_set():
                break
            if tick % 5 == 0:
                tree = _tree(self.root)
            sizes = {pid: rss for pid in tree if (rss := _rss(pid)) is not None}
            rss = sum(sizes.values())
            pss = sum(map(_pss, sizes)) if tick % self.pss_every == 0 else None
            if rss > peak:
                peak, names = rss, Counter()
                for pid, size in sizes.items():
                    names["tool process" if pid == self.root else _name(pid)] += size
                self.peak_names = dict(names)
            self.samples.append((time.time(), rss, pss, len(sizes)))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def summary(self, window: list[float]) -> dict:
        """Peak sums inside ``window`` (wall-clock start, end) and the last sample before it."""
        start, end = window
        inside = [s for s in self.samples if start <= s[0] <= end] or self.samples[-1:]
        before = [s for s in self.samples if s[0] < start] or self.samples[:1]
        pss_inside = [s[2] for s in inside if s[2] is not None]
        pss_before = [s[2] for s in before if s[2] is not None]
        mb = 1 / 2**20
        peak = max(inside, key=lambda s: s[1])
        return {
            "peak_rss_mb": round(peak[1] * mb, 1),
            "peak_rss_at_seconds": round(peak[0] - start, 1),  # into the run: which stage it was in
            "baseline_rss_mb": round(before[-1][1] * mb, 1),
            "peak_pss_mb": round(max(pss_inside) * mb, 1) if pss_inside else None,
            "baseline_pss_mb": round(pss_before[-1] * mb, 1) if pss_before else None,
            "max_processes": max(s[3] for s in inside),
            "samples_in_run": len(inside),
            "interval_seconds": self.interval,
            "pss_interval_seconds": self.interval * self.pss_every,
            "rss_mb_by_process_name_at_peak": {name: round(value * mb, 1) for name, value
                                               in sorted(self.peak_names.items(), key=lambda kv: -kv[1])},
        }


def _child(function: str, kwargs: dict, result: str, log: str) -> None:
    with open(log, "ab", buffering=0) as handle:  # the tools' logs and progress bars, not the terminal
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    Path(result).write_text(json.dumps(globals()[function](**kwargs)))


def measured(function: Callable[..., dict], scratch: Path, **kwargs) -> dict:
    """``function(**kwargs)`` in a fresh (spawned) process, with the memory of its process tree."""
    result, log = scratch / f"{function.__name__}.result.json", scratch / f"{function.__name__}.log"
    process = multiprocessing.get_context("spawn").Process(
        target=_child, args=(function.__name__, kwargs, str(result), str(log)))
    load = os.getloadavg()[0]
    process.start()
    sampler = TreeSampler(process.pid)
    sampler.start()
    process.join()
    sampler.stop()
    if process.exitcode:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{function.__name__} failed with exit code {process.exitcode}; log {log}:\n{tail}")
    output = json.loads(result.read_text())
    output["memory"] = sampler.summary(output.pop("window"))
    # Other work on the machine slows either tool; the 1-minute load average shows whether it did.
    output["load_average_before"], output["load_average_after"] = round(load, 2), round(os.getloadavg()[0], 2)
    return output


# --- what each tool removed ---------------------------------------------------------------------

def datatrove_removed(out: Path, ids: list[str]) -> set[str]:
    kept = set()
    for path in (out / "kept").glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            kept.update(json.loads(line)["id"] for line in handle)
    return set(ids) - kept


def midtrain_removed(out: Path) -> dict[str, str]:
    """Dropped input id → reason."""
    import pyarrow.parquet as pq

    dropped = {}
    for path in out.glob("dropped/*.parquet"):
        table = pq.read_table(path, columns=["id", "reason"])
        for row_id, reason in zip(table.column("id").to_pylist(), table.column("reason").to_pylist()):
            dropped[row_id.split("/", 1)[1]] = reason
    return dropped


# --- one size, and the whole run -------------------------------------------------------------------

DEDUP_REASONS = {"exact_duplicate", "near_duplicate"}


@dataclass
class Case:
    profile: str  # "long" or "short" documents
    documents: int
    min_words: int
    max_words: int
    datatrove: bool


def log(line: str) -> None:
    print(f"[dedup bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def bench_datatrove(data: Path, scratch: Path, files: int, ids: list[str], truth: Truth) -> dict:
    result = measured(run_datatrove, scratch, data=str(data), out=str(scratch / "datatrove"), files=files)
    removed = datatrove_removed(scratch / "datatrove", ids)
    result["seconds"] = round(result["seconds"], 2)
    result["documents_per_second"] = round(len(ids) / result["seconds"], 1)
    result["near_duplicates"] = score_removal(removed, truth.near)
    result["exact_duplicates"] = exact_recall(removed, truth.exact)
    return result


def bench_midtrain(data: Path, scratch: Path, ids: list[str], truth: Truth) -> dict:
    result = measured(run_midtrain, scratch, data=str(data), out=str(scratch / "midtrain"))
    dropped = midtrain_removed(scratch / "midtrain")
    removed = {doc_id for doc_id, reason in dropped.items() if reason in DEDUP_REASONS}
    seconds, startup = result["seconds"], result["ray_startup_seconds"]
    result.update({
        "seconds": round(seconds, 2),
        "documents_per_second": round(len(ids) / seconds, 1),
        "ray_startup_seconds": round(startup, 2),
        "seconds_including_ray_startup": round(seconds + startup, 2),
        "documents_per_second_including_ray_startup": round(len(ids) / (seconds + startup), 1),
        "drop_reasons": dict(Counter(dropped.values()).most_common()),
        "near_duplicates": score_removal(removed, truth.near),
        "exact_duplicates": exact_recall(removed, truth.exact),
        "exact_duplicates_by_exact_stage": exact_recall(
            {doc_id for doc_id, reason in dropped.items() if reason == "exact_duplicate"}, truth.exact),
    })
    return result


def bench_case(case: Case, args: argparse.Namespace, scratch: Path) -> dict:
    log(f"{case.documents:,} {case.profile} documents ({case.min_words}-{case.max_words} words): generating")
    with gc_paused():
        corpus = generate_corpus(case.documents, args.seed, case.min_words, case.max_words, args.exact_fraction,
                                 args.near_fraction, args.copies_per_family)
        truth = ground_truth(corpus)
        result = {"profile": case.profile, "documents": case.documents, "words": [case.min_words, case.max_words],
                  "files": args.files, **corpus_summary(corpus, truth),
                  "unrelated_check": unrelated_check(corpus, args.check_sample, args.seed)}
    data = scratch / "data"
    result["megabytes"] = round(write_corpus(corpus, data, args.files), 2)
    ids = corpus.ids
    del corpus
    if case.datatrove:
        log("datatrove")
        result["datatrove"] = bench_datatrove(data, scratch, args.files, ids, truth)
    else:
        result["datatrove"] = {"skipped": "size not in --datatrove-sizes / --datatrove-short-sizes"}
    log("midtrain")
    result["midtrain"] = midtrain = bench_midtrain(data, scratch, ids, truth)
    if case.datatrove and not args.no_marginal:
        log("midtrain without fuzzy dedup")
        result["midtrain_without_fuzzy"] = plain = measured(
            run_midtrain, scratch, data=str(data), out=str(scratch / "midtrain-plain"), fuzzy=False)
        plain["seconds"] = round(plain["seconds"], 2)
        # What fuzzy dedup adds to a run (its signatures are computed during staging, so the
        # manifest's fuzzy_dedup seconds alone understate it).
        midtrain["fuzzy_dedup_marginal_seconds"] = round(midtrain["seconds"] - plain["seconds"], 2)
    if case.datatrove:
        baseline = result["datatrove"]["seconds"]
        marginal = midtrain.get("fuzzy_dedup_marginal_seconds")
        if marginal and marginal > 0:
            # datatrove's whole MinHash pipeline against what fuzzy dedup adds to a curation run.
            result["dedup_ratio_vs_datatrove"] = round(baseline / marginal, 3)
        result["speed_ratio_vs_datatrove"] = round(baseline / midtrain["seconds"], 3)
        result["speed_ratio_including_ray_startup"] = round(baseline / midtrain["seconds_including_ray_startup"], 3)
    return result


def memory_growth(runs: list[dict]) -> dict:
    """Per profile: midtrain's peak memory per size, and how it grows against the documents."""
    growth = {}
    for profile in sorted({run["profile"] for run in runs}):
        series = sorted((run for run in runs if run["profile"] == profile), key=lambda run: run["documents"])
        points = [{"documents": run["documents"], **{key: run["midtrain"]["memory"][key] for key in
                   ("peak_rss_mb", "peak_pss_mb", "baseline_rss_mb")},
                   "peak_rss_above_baseline_mb": round(run["midtrain"]["memory"]["peak_rss_mb"]
                                                       - run["midtrain"]["memory"]["baseline_rss_mb"], 1)}
                  for run in series]
        steps = [{"documents_ratio": round(b["documents"] / a["documents"], 2),
                  "peak_rss_ratio": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3),
                  "peak_pss_ratio": round(b["peak_pss_mb"] / a["peak_pss_mb"], 3)}
                 for a, b in zip(points, points[1:])]
        growth[profile] = {"points": points, "steps": steps}
    return growth


def table(runs: list[dict]) -> str:
    def cell(run: dict, tool: str, key: str, scale: str = "{:,.0f}") -> str:
        part = run[tool]
        if "skipped" in part:
            return "-"
        value = part
        for name in key.split("."):
            value = value[name]
        return scale.format(value)

    header = ("profile", "docs", "F1 dt", "F1 mt", "exact mt", "docs/s dt", "docs/s mt", "ratio",
              "ratio+ray", "dedup ratio", "RSS dt MB", "RSS mt MB")
    rows = [header]
    for run in runs:
        rows.append((run["profile"], f"{run['documents']:,}",
                     cell(run, "datatrove", "near_duplicates.f1", "{:.4f}"),
                     cell(run, "midtrain", "near_duplicates.f1", "{:.4f}"),
                     cell(run, "midtrain", "exact_duplicates.recall", "{:.2%}"),
                     cell(run, "datatrove", "documents_per_second"), cell(run, "midtrain", "documents_per_second"),
                     f"{run['speed_ratio_vs_datatrove']:.2f}×" if "speed_ratio_vs_datatrove" in run else "-",
                     f"{run['speed_ratio_including_ray_startup']:.2f}×" if "speed_ratio_vs_datatrove" in run else "-",
                     f"{run['dedup_ratio_vs_datatrove']:.1f}×" if "dedup_ratio_vs_datatrove" in run else "-",
                     cell(run, "datatrove", "memory.peak_rss_mb"), cell(run, "midtrain", "memory.peak_rss_mb")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(value.rjust(width) for value, width in zip(row, widths)) for row in rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000],
                        help="documents per run, long documents (--min-words..--max-words)")
    parser.add_argument("--datatrove-sizes", type=int, nargs="*", default=[10_000, 100_000],
                        help="of --sizes, where datatrove runs too")
    parser.add_argument("--short-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                        help="documents per run, short documents (--short-min-words..--short-max-words)")
    parser.add_argument("--datatrove-short-sizes", type=int, nargs="*", default=[10_000, 100_000],
                        help="of --short-sizes, where datatrove runs too")
    parser.add_argument("--min-words", type=int, default=50)
    parser.add_argument("--max-words", type=int, default=400)
    parser.add_argument("--short-min-words", type=int, default=20)
    parser.add_argument("--short-max-words", type=int, default=60)
    parser.add_argument("--exact-fraction", type=float, default=0.05, help="documents that are exact copies")
    parser.add_argument("--near-fraction", type=float, default=0.15, help="documents that are near-duplicates")
    parser.add_argument("--copies-per-family", type=float, default=2.0, help="planted copies per original, mean")
    parser.add_argument("--check-sample", type=int, default=4000, help="documents in the unrelated-pairs check")
    parser.add_argument("--files", type=int, default=8, help="jsonl input files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="inputs and outputs; default a new /tmp folder")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument("--no-marginal", action="store_true",
                        help="skip the midtrain run without fuzzy dedup (beside datatrove's sizes)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "dedup.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cases = [Case("long", n, args.min_words, args.max_words, n in args.datatrove_sizes) for n in args.sizes]
    cases += [Case("short", n, args.short_min_words, args.short_max_words, n in args.datatrove_short_sizes)
              for n in args.short_sizes]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="midtrain-bench-dedup-"))
    runs = []
    for case in cases:
        scratch = workdir / f"{case.profile}-{case.documents}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            runs.append(bench_case(case, args, scratch))
        finally:
            if not args.keep:
                shutil.rmtree(scratch, ignore_errors=True)
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "benchmark": "dedup",
        "datatrove": "datatrove 0.10.1 MinHash, MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, "
                     "seed=1): Signature (tasks = files) → Buckets (14 tasks) → Cluster (1 task) → Filter "
                     "(tasks = files) → JsonlWriter, LocalPipelineExecutor with 2 workers per stage, forked",
        "midtrain": "run_curation, kind web, every per-document filter off, language ungated, exact_dedup and "
                    "fuzzy_dedup (5-grams, 14 bands x 8 rows, verified at 0.8, seed 1) on, Ray with 2 CPUs and 2 "
                    "tasks; Ray and Ray Data started before timing, reported as ray_startup_seconds",
        "ground_truth": "word 5-gram shingles of the lowercased \\w+ words; near-duplicates at exact Jaccard >= 0.8 "
                        "within planted families; remove all but one document per connected component",
        "scoring": "precision = removed in a duplicate component / removed; recall = sum over components of "
                   "min(removed in it, size - 1) / sum of (size - 1); removed = exact_duplicate + near_duplicate "
                   "drops (midtrain), input ids missing from the output (datatrove)",
        "memory": "sum over the tool's child process and all its descendants from /proc: RSS every 0.2 s, "
                  "PSS every 5 s",
        "seed": args.seed,
        "exact_fraction": args.exact_fraction,
        "near_fraction": args.near_fraction,
        "copies_per_family": args.copies_per_family,
        "workers": WORKERS,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "datatrove_not_run_at": [f"{run['profile']} {run['documents']}" for run in runs
                                 if "skipped" in run["datatrove"]],
        "runs": runs,
        "midtrain_memory_growth": memory_growth(runs),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(runs))
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
