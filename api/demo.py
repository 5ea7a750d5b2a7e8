"""``midtrain demo``: the whole job on the bundled sample, through the same service functions
as every other command. The example specs are read from ``examples/`` and pointed at the
demo's own output directory; ``scale`` multiplies every token budget and the held-out batches
(tests use a small one).

Before curating, the demo trains a fastText quality classifier for ``web``: positive = the
sample's synthetic and instruction documents and its clean web articles, negative = the web
junk planted in it (spam, boilerplate, lorem ipsum, character soup, short pages), split by
``examples/sample/ground_truth.json``. Most clean web articles are also training positives,
so the web ``quality`` the demo curates is optimistic; the held-out precision/recall in
``classifier/web-quality.report.json`` are the honest figures.

It also trains a fastText domain classifier on the sample's labelled folders (web, code,
math, instruction, reasoning, synthetic) and curates the ``kind: auto`` sources (the
multilingual prose and the long chapters) with it. The multilingual and long documents are
in no training folder, so their domains are the classifier's own guesses; its held-out
figures per domain are in ``classifier/domain.report.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from api import service
from corpus.catalog import format_table
from corpus.schema import DOMAINS
from filters.classifier import TrainingSettings
from mixer.spec import MixtureSpec, load_mixture
from pipelines.config import CurateConfig, QualitySettings, SourceConfig, load_curate_config
from pipelines.readers.jsonl import read_jsonl
from trainer.report import collect, phase_effects, write_run_report

DEMO_VOCAB_SIZE = 4096
# A small model for a small sample: 14 MB, about a second to train on two cores. The sample's
# 233 junk documents are a tenth of the examples, so a fifth is held out to measure on ~47.
DEMO_CLASSIFIER = TrainingSettings(epochs=10, dim=32, bucket=100_000, holdout=0.2, seed=0)
# The sample has a folder per domain; its code files are Parquet rows with the text in `content`.
DOMAIN_TEXT_FIELDS = {"code": "content"}
# lr 0.5: at 0.1 ten epochs over a few hundred documents per domain underfit (held-out accuracy
# 0.989 against 0.996 here, and the multilingual prose mostly below 0.7 confidence).
DEMO_DOMAIN_CLASSIFIER = replace(DEMO_CLASSIFIER, lr=0.5)


def demo_curate_config(
    output: Path, web_classifier: Path | None = None, domain_classifier: Path | None = None
) -> CurateConfig:
    """The example config with its sample paths made absolute, so the demo runs from any
    working directory, scoring ``web`` with ``web_classifier`` and tagging ``kind: auto``
    sources with ``domain_classifier`` when they are given."""
    config = load_curate_config(service.EXAMPLES / "curate.yaml")
    root = service.EXAMPLES.parent
    sources = [source.model_copy(update={"path": str(root / source.path)}) for source in config.sources]
    update: dict[str, Any] = {"output": str(output), "sources": sources}
    if web_classifier is not None:
        update["quality"] = QualitySettings(classifiers={"web": str(web_classifier)})
    if domain_classifier is not None:
        update["domain"] = config.domain.model_copy(update={"classifier": str(domain_classifier.resolve())})
    return config.model_copy(update=update)


def sample_records(pattern: str) -> Iterator[dict[str, Any]]:
    """The readable records of the bundled sample's jsonl files matching ``pattern`` (relative
    to ``examples/sample/``), read by curation's own jsonl reader: the planted bad lines are
    curation's to quarantine and are left out here."""
    source = SourceConfig(name="sample", path=pattern, format="jsonl", id_field="id").model_dump()
    for path in sorted((service.EXAMPLES / "sample").glob(pattern)):
        for record in read_jsonl(source, str(path)):
            if record["error"] is None:
                yield record


def sample_texts(pattern: str) -> list[str]:
    return [record["text"] for record in sample_records(pattern)]


def write_web_examples(directory: Path) -> tuple[Path, Path]:
    """The sample's web articles split by its ground truth into ``web-clean.jsonl`` and
    ``web-junk.jsonl`` under ``directory``."""
    truth = json.loads((service.EXAMPLES / "sample" / "ground_truth.json").read_text())["sources"]["web"]
    junk_ids = {doc_id for ids in truth["junk"].values() for doc_id in ids}
    clean, junk = [], []
    for record in sample_records("web/*.jsonl.gz"):
        (junk if record["input_id"] in junk_ids else clean).append({"text": record["text"]})
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "web-clean.jsonl", directory / "web-junk.jsonl"
    for path, records in zip(paths, (clean, junk)):
        path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    return paths


def train_web_classifier(directory: Path, progress=print) -> dict:
    """Train the demo's web quality classifier; returns its report."""
    clean, junk = write_web_examples(directory)
    sample = service.EXAMPLES / "sample"
    positive = [str(clean), str(sample / "synthetic"), str(sample / "instruction")]
    return service.train_classifier(
        positive, [str(junk)], directory / "web-quality.bin", settings=DEMO_CLASSIFIER, progress=progress
    )


def train_domain_classifier(directory: Path, progress=print) -> dict:
    """Train the demo's domain classifier on the sample's labelled folders; returns its report."""
    sample = service.EXAMPLES / "sample"
    labelled = {domain: [str(sample / domain)] for domain in DOMAINS}
    return service.train_domain_classifier(
        labelled, directory / "domain.bin", text_fields=DOMAIN_TEXT_FIELDS, settings=DEMO_DOMAIN_CLASSIFIER,
        progress=progress,
    )


def demo_mixture(curated: Path, tokenizer: Path, scale: float) -> MixtureSpec:
    spec = load_mixture(service.EXAMPLES / "mixture.yaml")
    phases = []
    for phase in spec.phases:
        # Keep enough sequences per phase that a tiny scale still trains every phase after the
        # batch held out for evaluation.
        tokens = max(phase.seq_len * 16, int(phase.tokens * scale))
        phases.append(phase.model_copy(update={"tokens": tokens}))
    return spec.model_copy(
        update={"corpus": [str(curated)], "tokenizer": str(tokenizer), "phases": phases}
    )


def run_demo(output: str | Path = "runs/demo", scale: float = 1.0, progress=print) -> dict[str, Any]:
    from trainer.spec import load_train_spec

    started = time.perf_counter()
    out = Path(output)
    timings: dict[str, float] = {}

    def timed(step: str, function, *args, **kwargs):
        mark = time.perf_counter()
        progress(f"demo: {step} ...")
        result = function(*args, **kwargs)
        timings[step] = round(time.perf_counter() - mark, 1)
        return result

    classifier = timed("classifier", train_web_classifier, out / "classifier", progress=progress)
    domains = timed("domain classifier", train_domain_classifier, out / "classifier", progress=progress)
    curate_config = demo_curate_config(
        out / "curated", web_classifier=Path(classifier["model"]), domain_classifier=Path(domains["model"])
    )
    manifest = timed("curate", service.curate, curate_config, progress=progress)

    tokenizer = timed(
        "tokenizer", service.train_tokenizer, [str(out / "curated")], out / "tokenizer.json",
        vocab_size=DEMO_VOCAB_SIZE, progress=progress,
    )

    mixture = demo_mixture(out / "curated", tokenizer, scale)
    build = timed("mix", service.mix_build, mixture, out / "mix", progress=progress)

    train_spec = load_train_spec(service.EXAMPLES / "train.yaml")
    # The held-out batches shrink with the budget too (not below 2), or a small scale has none
    # left to train on.
    eval_batches = max(2, min(train_spec.eval_batches, round(train_spec.eval_batches * scale)))
    train_spec = train_spec.model_copy(update={"mixture": str(out / "mix"), "output": str(out / "train"),
                                               "eval_batches": eval_batches})
    training = timed("train", service.train, train_spec, progress=progress)
    report = timed("report", write_run_report, out)
    effects = phase_effects(collect(out, corpora=False))

    summary = {
        "wall_seconds": round(time.perf_counter() - started, 1),
        "step_seconds": timings,
        "classifier": {"model": classifier["model"], "holdout": classifier["holdout_metrics"],
                       "train_seconds": classifier["train_seconds"]},
        "domain_classifier": {"model": domains["model"], "holdout": domains["holdout_metrics"],
                              "train_seconds": domains["train_seconds"]},
        "curation": manifest.counts.model_dump(),
        "domains": {name: totals.model_dump() for name, totals in manifest.domains.items()},
        "mixture": build_summary(build),
        "training": training,
        "report": str(report),
        "phase_effects": effects,
    }
    service.write_json(out / "summary.json", summary)
    text = format_summary(summary, manifest)
    (out / "summary.txt").write_text(text + "\n")
    progress(text)
    return summary


def build_summary(build: Any) -> list[dict]:
    from mixer.build import report_rows

    return report_rows(build)


def format_summary(summary: dict, manifest) -> str:
    from api.cli import confusion_rows, summary_rows

    holdout = summary["classifier"]["holdout"]
    domains = summary["domain_classifier"]["holdout"]
    sections = [
        f"== web quality classifier: held out at P(hq) >= {holdout['threshold']} ==",
        format_table(holdout["classes"]),
        "",
        f"== domain classifier (kind: auto sources): held out, top label, accuracy {domains['accuracy']:.3f} ==",
        format_table(domains["classes"]),
        format_table(confusion_rows(domains["confusion"])),
        "",
        "== curation: documents kept and dropped by reason ==",
        format_table(service.manifest_summary(manifest)),
        "",
        "== mixture: tokens per source and phase ==",
        format_table(summary["mixture"]),
        "",
        "== training: loss per phase ==",
        format_table(summary_rows(summary["training"])),
        "",
        "== what each phase changed: held-out loss per domain (lower is better), passkey accuracy ==",
        format_table(summary["phase_effects"]),
        "",
        f"report: {summary['report']}",
        f"wall time {summary['wall_seconds']:.0f}s  "
        + "  ".join(f"{step} {seconds:.0f}s" for step, seconds in summary["step_seconds"].items()),
    ]
    return "\n".join(sections)
