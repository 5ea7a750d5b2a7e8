"""``midtrain demo``: the whole job on the bundled sample, through the same service functions
as every other command. The example specs are read from ``examples/`` and pointed at the
demo's own output directory; ``scale`` multiplies every token budget (tests use a small one).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from api import service
from corpus.catalog import format_table
from mixer.spec import MixtureSpec, load_mixture
from pipelines.config import CurateConfig, load_curate_config

DEMO_VOCAB_SIZE = 4096


def demo_curate_config(output: Path) -> CurateConfig:
    """The example config with its sample paths made absolute, so the demo runs from any
    working directory."""
    config = load_curate_config(service.EXAMPLES / "curate.yaml")
    root = service.EXAMPLES.parent
    sources = [source.model_copy(update={"path": str(root / source.path)}) for source in config.sources]
    return config.model_copy(update={"output": str(output), "sources": sources})


def demo_mixture(curated: Path, tokenizer: Path, scale: float) -> MixtureSpec:
    spec = load_mixture(service.EXAMPLES / "mixture.yaml")
    phases = []
    for phase in spec.phases:
        # Keep at least a few sequences per phase so a tiny scale still trains every phase.
        tokens = max(phase.seq_len * 8, int(phase.tokens * scale))
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

    curate_config = demo_curate_config(out / "curated")
    manifest = timed("curate", service.curate, curate_config, progress=progress)

    tokenizer = timed(
        "tokenizer", service.train_tokenizer, [str(out / "curated")], out / "tokenizer.json",
        vocab_size=DEMO_VOCAB_SIZE, progress=progress,
    )

    mixture = demo_mixture(out / "curated", tokenizer, scale)
    build = timed("mix", service.mix_build, mixture, out / "mix", progress=progress)

    train_spec = load_train_spec(service.EXAMPLES / "train.yaml")
    train_spec = train_spec.model_copy(update={"mixture": str(out / "mix"), "output": str(out / "train")})
    training = timed("train", service.train, train_spec, progress=progress)

    summary = {
        "wall_seconds": round(time.perf_counter() - started, 1),
        "step_seconds": timings,
        "curation": manifest.counts.model_dump(),
        "domains": {name: totals.model_dump() for name, totals in manifest.domains.items()},
        "mixture": build_summary(build),
        "training": training,
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
    from api.cli import summary_rows

    sections = [
        "== curation: documents kept and dropped by reason ==",
        format_table(service.manifest_summary(manifest)),
        "",
        "== mixture: tokens per source and phase ==",
        format_table(summary["mixture"]),
        "",
        "== training: loss per phase ==",
        format_table(summary_rows(summary["training"])),
        "",
        f"wall time {summary['wall_seconds']:.0f}s  "
        + "  ".join(f"{step} {seconds:.0f}s" for step, seconds in summary["step_seconds"].items()),
    ]
    return "\n".join(sections)
