"""Finished recipe-style runs for the report, compare and dashboard tests, built for real on a
tiny scale: a contract-1 corpus with a manifest and a dropped set (so the curation funnel
closes), a tokenizer, a three-phase mixture built by ``mixer.build`` and a tiny model trained
through it by ``trainer.train``, laid out as ``midtrain recipe run`` leaves a run::

    RUNS/<name>/recipe.json   {"recipe", "scale", "corpus", "mixture", "train", "created_at"}
    RUNS/<name>/mixture/      the mix build
    RUNS/<name>/train/        the training output

Import ``make_corpus`` and ``make_run`` (plain functions, so a module fixture of any scope can
call them)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from mixer_fixtures import sample_rows, write_corpus

from corpus.manifest import Counts, DomainTotals, Manifest, write_manifest
from corpus.schema import DROPPED_SCHEMA
from mixer.build import build_mixture
from mixer.spec import MixtureSpec
from mixer.tokenizer import train_tokenizer
from trainer.spec import TrainSpec
from trainer.train import run_training

DROPPED = [("language", "language_not_allowed"), ("language", "language_not_allowed"),
           ("gopher_quality", "gopher_short_doc"), ("exact_dedup", "exact_duplicate")]

MIX_PHASES = [
    {"name": "stable", "tokens": 2_048, "seq_len": 128, "sources": [
        {"name": "web", "select": {"domain": "web", "tags_none": ["long_doc"]}, "weight": 0.7},
        {"name": "code", "select": {"domain": "code"}, "weight": 0.2, "fim": {"rate": 0.5}},
        {"name": "math", "select": {"domain": "math"}, "weight": 0.1}]},
    {"name": "anneal", "tokens": 1_024, "seq_len": 128, "sources": [
        {"name": "web", "select": {"domain": "web", "tags_none": ["long_doc"]}, "weight": 0.4},
        {"name": "code", "select": {"domain": "code"}, "weight": 0.3},
        {"name": "math", "select": {"domain": "math"}, "weight": 0.3}]},
    {"name": "long", "tokens": 1_024, "seq_len": 256, "sources": [
        {"name": "long", "select": {"tags_any": ["long_doc"]}, "weight": 0.5},
        {"name": "replay", "select": {"domain": ["web", "code", "math"]}, "weight": 0.5}]},
]


def make_corpus(out: Path) -> tuple[Path, Path]:
    """The mixer tests' sample corpus plus a manifest and four dropped documents; returns
    (OUT, tokenizer file)."""
    rows = sample_rows()
    write_corpus(out, rows)
    (out / "dropped").mkdir()
    dropped = [{"id": f"d{i}", "source": "webcrawl", "stage": stage, "reason": reason, "domain": "web",
                "lang": "en", "text": "x y z", "n_chars": 5, "n_tokens": 3, "scores": [], "dup_cluster": None,
                "meta": "{}", "file": "in.jsonl", "location": f"line {i}"} for i, (stage, reason) in enumerate(DROPPED)]
    pq.write_table(pa.Table.from_pylist(dropped, DROPPED_SCHEMA), out / "dropped" / "part-00000.parquet")
    domains: dict[str, DomainTotals] = {}
    for domain in sorted({row["domain"] for row in rows}):
        mine = [row for row in rows if row["domain"] == domain]
        domains[domain] = DomainTotals(documents=len(mine), chars=sum(r["n_chars"] for r in mine),
                                       tokens=sum(r["n_tokens"] for r in mine))
    write_manifest(out, Manifest(
        run_id="fixture", config_hash="h", started_at="t0", finished_at="t1", tokenizer="whitespace",
        inputs=[], counts=Counts(input=len(rows) + len(DROPPED), kept=len(rows),
                                 dropped=dict(Counter(reason for _, reason in DROPPED))),
        domains=domains, shards=[], stages=["normalize", "language", "gopher_quality", "exact_dedup"]))
    tokenizer = train_tokenizer([str(out)], str(out.parent / f"{out.name}-tok.json"), 400)
    return out, Path(tokenizer)


def train_data(mixture: Path, output: Path, schedule: dict, long_rope: dict, seed: int = 3) -> dict:
    return {
        "name": output.parent.name, "mixture": str(mixture), "output": str(output), "seed": seed, "device": "cpu",
        "model": {"vocab_size": None, "d_model": 32, "n_layers": 2, "n_heads": 2, "ffn_hidden": 64},
        "optimizer": {"lr": 0.01},
        "schedule": schedule,
        "phases": [
            {"name": "stable", "mixture_phase": "stable", "seq_len": 128, "batch_size": 2},
            {"name": "anneal", "mixture_phase": "anneal", "seq_len": 128, "batch_size": 2},
            {"name": "long", "mixture_phase": "long", "seq_len": 256, "batch_size": 1, "rope": long_rope},
        ],
        "checkpoint_every": 1000, "eval_every": 1000, "eval_batches": 2, "tensorboard": False,
        "evals": {"passkey_lengths": [128, 256], "passkey_trials": 2, "fim_documents": 2, "fim_max_new_tokens": 8},
    }


def make_run(runs: Path, name: str, corpus: Path, tokenizer: Path, *,
             schedule: dict | None = None, long_rope: dict | None = None, recipe: bool = True) -> Path:
    """Build the mixture and train the model of one run under ``runs/name``; returns the run
    folder. ``recipe=False`` leaves out recipe.json (a run trained by hand)."""
    run = runs / name
    schedule = schedule or {"kind": "wsd", "warmup_tokens": 256, "decay_fraction": 0.3, "min_lr_ratio": 0.1}
    long_rope = long_rope or {"kind": "yarn", "factor": 2.0, "original_context": 128}
    mixture = {"name": f"{name}-mix", "corpus": [str(corpus)], "tokenizer": str(tokenizer), "seed": 1,
               "phases": MIX_PHASES}
    build_mixture(MixtureSpec.model_validate(mixture), str(run / "mixture"))
    train = train_data(run / "mixture", run / "train", schedule, long_rope)
    run_training(TrainSpec.model_validate(train))
    if recipe:
        (run / "recipe.json").write_text(json.dumps({
            "recipe": name, "scale": 0.001, "corpus": str(corpus), "mixture": mixture, "train": train,
            "created_at": "2025-01-01T00:00:00Z"}, indent=2))
    return run
