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
    """Ask Ray for a GPU when the cluster has one; on CPU, the node's cores, since Ray pins a
    task's torch threads to the CPUs it asked for."""
    import ray

    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": max(1, int(resources.get("CPU", 1)))}


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


def serve(host: str, port: int, state_path: str | None = None) -> None:
    from api.app import serve as run_server

    run_server(host=host, port=port, state_path=state_path)


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


__all__ = [
    "catalog",
    "curate",
    "format_table",
    "manifest_summary",
    "mix_build",
    "mix_plan",
    "report",
    "serve",
    "train",
    "train_classifier",
    "train_domain_classifier",
    "train_tokenizer",
]
