"""Service functions: what every CLI command and REST endpoint calls. No curation, mixing or
training logic lives here, only the wiring of the packages that have it, and the demo job.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from corpus.catalog import domain_table, format_table
from corpus.files import write_text_atomic
from corpus.manifest import Manifest, read_manifest
from mixer.spec import MixtureSpec, load_mixture
from pipelines.config import CurateConfig, load_curate_config

if TYPE_CHECKING:
    from filters.classifier import TrainingSettings

Progress = Callable[[str], None]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def curate(config: CurateConfig | str | Path, progress: Progress = print, resume: bool = False) -> Manifest:
    from pipelines.curate import run_curation

    if not isinstance(config, CurateConfig):
        config = load_curate_config(config)
    return run_curation(config, progress=progress, resume=resume)


def catalog(out: str | Path) -> list[dict]:
    """Per domain of a curated output: documents, tokens, chars, quality p10/p50/p90 and mean."""
    return domain_table(out)


def report(out: str | Path) -> Path:
    """Regenerate ``OUT/report/`` from a finished curation output; returns the directory."""
    from pipelines.report import write_report

    return write_report(Path(out), read_manifest(out))


def train_tokenizer(
    corpus: list[str], output: str | Path, vocab_size: int = 8192, progress: Progress = print
) -> Path:
    from mixer.tokenizer import train_tokenizer as train

    started = time.perf_counter()
    path = train(corpus, str(output), vocab_size=vocab_size)
    progress(f"tokenizer: {vocab_size} tokens trained in {time.perf_counter() - started:.1f}s → {path}")
    return Path(path)


def train_classifier(
    positive: list[str],
    negative: list[str],
    output: str | Path,
    text_field: str = "text",
    settings: TrainingSettings | None = None,
    progress: Progress = print,
) -> dict:
    """Train a fastText quality classifier (``filters/classifier.py``); writes the model and
    ``<stem>.report.json`` beside it, and returns that report."""
    from filters.classifier import ClassifierTrainer, TrainingSettings

    return ClassifierTrainer(settings or TrainingSettings(), progress).train_files(positive, negative, output, text_field)


def train_domain_classifier(
    labelled: dict[str, list[str]],
    output: str | Path,
    text_field: str = "text",
    text_fields: dict[str, str] | None = None,
    settings: TrainingSettings | None = None,
    progress: Progress = print,
) -> dict:
    """Train a fastText domain classifier (``filters/domain.py``) from inputs per domain,
    ``text_fields`` overriding ``text_field`` per domain; writes the model and
    ``<stem>.report.json`` beside it, and returns that report."""
    from filters.classifier import TrainingSettings
    from filters.domain import DomainClassifierTrainer

    return DomainClassifierTrainer(settings or TrainingSettings(), progress).train_files(
        labelled, output, text_field, text_fields)


def mix_plan(spec: MixtureSpec | str | Path, output: str | Path | None = None) -> Any:
    from mixer.plan import plan_mixture, write_plan

    if not isinstance(spec, MixtureSpec):
        spec = load_mixture(spec)
    plan = plan_mixture(spec)
    if output is not None:
        write_plan(plan, output)
    return plan


def mix_build(spec: MixtureSpec | str | Path, output: str | Path, progress: Progress = print) -> Any:
    from mixer.build import build_mixture

    if not isinstance(spec, MixtureSpec):
        spec = load_mixture(spec)
    return build_mixture(spec, str(output), progress=progress)


def training_resources() -> dict[str, float]:
    """Ask Ray for a GPU when the cluster has one; on CPU, the cores of the largest live node,
    since Ray pins a task's torch threads to the CPUs it asked for and a task runs on one node
    (the cluster's total would never be placed on a cluster of several nodes)."""
    import ray

    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=1)
    return {"num_cpus": max(1, int(largest))}


def _train_task(spec_json: str, resume: bool) -> dict:
    from trainer.spec import TrainSpec
    from trainer.train import run_training

    spec = TrainSpec.model_validate_json(spec_json)
    return run_training(spec, progress=lambda line: print(line, flush=True), resume=resume)


def train(spec: Any, resume: bool = False, on_ray: bool = True, progress: Progress = print) -> dict:
    """Run a train spec; as a Ray task (the "attached trainer") unless ``on_ray`` is False."""
    from trainer.spec import TrainSpec, load_train_spec
    from trainer.train import run_training

    if not isinstance(spec, TrainSpec):
        spec = load_train_spec(spec)
    if not on_ray:
        return run_training(spec, progress=progress, resume=resume)
    import ray

    from pipelines.runtime import ensure_ray

    ensure_ray()
    task = ray.remote(**training_resources())(_train_task)
    return ray.get(task.remote(spec.model_dump_json(), resume))


def serve(host: str, port: int, state_path: str | None = None, log_level: str = "info",
          access_log: bool = True) -> None:
    from api.app import serve as run_server

    run_server(host=host, port=port, state_path=state_path, log_level=log_level, access_log=access_log)


def manifest_summary(manifest: Manifest) -> list[dict]:
    """Documents kept and dropped by reason, for the terminal."""
    rows = [{"outcome": "input", "documents": manifest.counts.input}]
    rows.append({"outcome": "kept", "documents": manifest.counts.kept})
    for reason, n in sorted(manifest.counts.dropped.items(), key=lambda item: -item[1]):
        rows.append({"outcome": f"dropped: {reason}", "documents": n})
    rows.append({"outcome": "quarantined", "documents": manifest.counts.quarantined})
    return rows


def write_json(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------
# Corpora, mixture plans and previews (REST: api/routes/corpora.py, api/routes/mixtures.py)

DOCUMENT_COLUMNS = "id, source, domain, lang, tags, quality, n_tokens, n_chars"


def corpus_stats(out: str | Path) -> dict[str, Any]:
    """A finished curation output in numbers: the manifest's run, counts and shards, and the
    catalog's per-domain table."""
    manifest = read_manifest(out)
    return {
        "output": str(out),
        "run_id": manifest.run_id,
        "config_hash": manifest.config_hash,
        "started_at": manifest.started_at,
        "finished_at": manifest.finished_at,
        "tokenizer": manifest.tokenizer,
        "counts": manifest.counts.model_dump(),
        "domains": catalog(out),
        "shards": len(manifest.shards),
        "shard_bytes": sum(shard.bytes for shard in manifest.shards),
    }


def corpus_documents(
    out: str | Path,
    domain: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
    max_chars: int = 2000,
) -> tuple[list[dict[str, Any]], int]:
    """A page of a curated output's documents, by id, optionally of one domain and/or with one
    tag, each text cut to ``max_chars`` characters; and how many documents match. Filters are
    bound parameters, never SQL text."""
    from corpus.catalog import connect

    where = "(?::VARCHAR IS NULL OR domain = ?) AND (?::VARCHAR IS NULL OR list_contains(tags, ?))"
    filters = [domain, domain, tag, tag]
    connection = connect(out)
    try:
        total = connection.execute(f"SELECT count(*) FROM docs WHERE {where}", filters).fetchone()[0]
        rows = connection.execute(
            f"SELECT {DOCUMENT_COLUMNS}, left(text, ?) FROM docs WHERE {where} "
            "ORDER BY id, source LIMIT ? OFFSET ?",
            [max_chars, *filters, limit, offset],
        ).fetchall()
    finally:
        connection.close()
    names = [column.strip() for column in DOCUMENT_COLUMNS.split(",")]
    documents = []
    for row in rows:
        document = dict(zip(names, row[:-1]))
        document.update(text=row[-1], truncated=document["n_chars"] > max_chars)
        documents.append(document)
    return documents, int(total)


def check_mixture_inputs(spec: MixtureSpec) -> None:
    """Every corpus of ``spec`` a folder with curated shards, and its tokenizer a tokenizers
    file; else ``api.paths.PathError`` naming the field (``corpus.1``, ``tokenizer``)."""
    from api.paths import PathError
    from corpus.schema import shards_dir
    from mixer.tokenizer import TokenizerError, load_tokenizer

    for number, folder in enumerate(spec.corpus):
        if not Path(folder).is_dir():
            raise PathError(f"corpus.{number}", folder, "is not a folder")
        if not any(shards_dir(folder).glob("domain=*/*.parquet")):
            raise PathError(f"corpus.{number}", folder, "has no curated shards to catalog")
    try:
        load_tokenizer(spec.tokenizer)
    except TokenizerError as error:
        raise PathError("tokenizer", spec.tokenizer, f"is not usable ({error})") from error


def mixture_plan(spec: MixtureSpec) -> dict[str, Any]:
    """The mixer's plan of ``spec`` as JSON data, as ``write_plan`` writes it; raises
    ``mixer.plan.PlanError`` when the corpora cannot supply it."""
    return json.loads(mix_plan(spec).model_dump_json())


def plan_error_field(spec: MixtureSpec, problem: str) -> str | None:
    """The spec field a ``PlanError`` problem line is about: ``phases.0.sources.2`` when it
    names a phase's own source, ``phases.0`` when it names the phase only."""
    for i, phase in enumerate(spec.phases):
        for j, source in enumerate(phase.sources):
            if problem.startswith(f"phase {phase.name!r}, source {source.name!r}:"):
                return f"phases.{i}.sources.{j}"
    for i, phase in enumerate(spec.phases):
        if problem.startswith(f"phase {phase.name!r}"):
            return f"phases.{i}"
    return None


def mixture_preview(spec: MixtureSpec, phase: str, sequences: int = 4, max_chars: int = 2000) -> dict[str, Any]:
    """The first ``sequences`` packed sequences of ``phase``, decoded: the phase is built in
    memory with its budget cut to ``sequences * seq_len`` tokens (the earlier phases are kept,
    for a replay), so the sources' shares, FIM and packing are the phase's own, but the
    documents are a sample, not the full build's first ones. Each sequence is a list of
    segments (a document or a piece of one, or padding) with its source, domain, token count and
    text cut to ``max_chars`` characters. Raises KeyError for an unknown phase and PlanError."""
    import numpy as np

    from mixer.build import phase_on_the_fly
    from mixer.pack import PAD_SOURCE
    from mixer.tokenizer import load_tokenizer

    names = [candidate.name for candidate in spec.phases]
    if phase not in names:
        raise KeyError(f"mixture {spec.name!r} has no phase {phase!r}")
    index = names.index(phase)
    target = spec.phases[index]
    budget = min(target.tokens, sequences * target.seq_len)
    cut = spec.model_copy(update={"phases": [*spec.phases[:index], target.model_copy(update={"tokens": budget})]})
    arrays = phase_on_the_fly(cut, phase)
    tokenizer = load_tokenizer(spec.tokenizer)
    info = arrays.info
    rows = []
    for row in range(min(sequences, arrays.tokens.shape[0])):
        tokens, segments, sources = arrays.tokens[row], arrays.segments[row], arrays.sources[row]
        cuts = np.flatnonzero((segments[1:] != segments[:-1]) | (sources[1:] != sources[:-1])) + 1
        starts, ends = [0, *cuts.tolist()], [*cuts.tolist(), len(tokens)]
        pieces = []
        for start, end in zip(starts, ends):
            source = int(sources[start])
            if source == PAD_SOURCE:
                pieces.append({"source": None, "domain": None, "padding": True, "tokens": end - start,
                               "text": "", "truncated": False})
                continue
            text = tokenizer.decode(tokens[start:end].tolist(), skip_special_tokens=False)
            pieces.append({"source": info.sources[source], "domain": info.domains[source], "padding": False,
                           "tokens": end - start, "text": text[:max_chars], "truncated": len(text) > max_chars})
        rows.append({"index": row, "segments": pieces})
    return {"mixture": spec.name, "phase": phase, "seq_len": info.seq_len, "tokens_budget": budget,
            "sequences": rows}


__all__ = [
    "catalog",
    "check_mixture_inputs",
    "corpus_documents",
    "corpus_stats",
    "curate",
    "format_table",
    "manifest_summary",
    "mix_build",
    "mix_plan",
    "mixture_plan",
    "mixture_preview",
    "plan_error_field",
    "report",
    "serve",
    "train",
    "train_classifier",
    "train_domain_classifier",
    "train_tokenizer",
]
