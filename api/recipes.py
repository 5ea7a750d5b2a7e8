"""The mid-training survey's recipes as presets (``recipes/*.yaml``) and ``midtrain recipe``.

A recipe file describes one published model's staged training at full scale: its phases, each
with a token budget, a sequence length, a RoPE scaling and its data proportions by type (sources
with selectors over the corpus domains and the ``long_doc`` tag, optionally a replay share of an
earlier phase), one LR schedule over all phases, the model's original context and RoPE base, and
where the numbers come from (``source``) and which of them are approximations.

A run makes it small enough for a given machine with four knobs and nothing else:

- ``scale`` multiplies every token budget (phase tokens, warmup), so the phases keep their ratios;
- ``seq_len`` is the length the recipe's original ``context`` becomes; every phase's length and
  every RoPE ``original_context`` is multiplied by ``seq_len / context`` (2k -> 8k stays 1:4);
- ``model`` is a size preset (``tiny`` by default, for CPU);
- ``batch_size`` is the sequences per step at the original context; longer phases take fewer
  sequences per step, so the tokens per step stay the same (as the real recipes do).

A phase that ``scale`` leaves too small to train ``min_steps`` steps is raised to that floor and
the run says so (``floored`` in ``recipe.json``). Schedule positions tied to phases
(``decay_from: PHASE`` for WSD, ``milestones_at: [{phase, at}]`` for multi-step) are resolved
from the tokens each phase will actually train, so the LR path follows the phases at any scale.

``run`` leaves ``runs/<name>/recipe.json``, ``runs/<name>/mixture/`` (the mix build) and
``runs/<name>/train/`` (the training run). Before anything is built it checks that the corpus
holds documents for every source; a source it lacks is an error naming the phase, the source and
the missing domain (or tag), unless ``drop_missing`` is set, in which case the source is dropped,
the phase's other weights are renormalised, and what was done is printed and recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corpus.specfile import SpecError, read_spec_data, validation_message

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
Progress = Callable[[str], None]

# Model sizes for a run (trainer.spec.ModelSpec fields; vocab from the tokenizer, RoPE base from
# the recipe). tiny: for tests and CPU; small: the demo's model; 10m/125m: bench/trainer.py's.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_hidden": 176},
    "small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "ffn_hidden": 352},
    "10m": {"d_model": 256, "n_layers": 4, "n_heads": 8, "n_kv_heads": 4, "ffn_hidden": 1024},
    "125m": {"d_model": 768, "n_layers": 12, "n_heads": 12, "n_kv_heads": 4, "ffn_hidden": 3072},
}
SCALED_TOKEN_FIELDS = ("warmup_tokens", "timescale_tokens", "half_cycle_tokens")
PLACEHOLDER = "<set by recipe run>"
TOLERANCE = 1e-6
MIN_PASSKEY_LENGTH = 128


class RecipeError(ValueError):
    """A recipe that cannot be run as asked (a missing source type, an unknown name, ...)."""


class MilestoneAt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: str
    at: float = Field(ge=0.0, lt=1.0)  # fraction of that phase's tokens


class Recipe(BaseModel):
    """One ``recipes/*.yaml`` file. ``phases`` are mixture phases (contract 3) with a ``rope``
    each (contract 4); ``schedule`` is a train-spec schedule whose token counts are at full scale,
    with ``decay_from`` / ``milestones_at`` optionally tying its positions to phases."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    title: str
    source: str  # the survey table rows and the model's paper
    approximations: list[str] = Field(default_factory=list)
    context: int = Field(gt=0)  # the original (pre-extension) context at full scale
    rope_base: float = Field(gt=1.0)
    published_peak_lr: float | None = None  # documentation: small models train at the run's lr
    seed: int = 1234
    schedule: dict[str, Any]
    phases: list[dict[str, Any]] = Field(min_length=2)
    path: str = ""

    def phase_names(self) -> list[str]:
        return [phase["name"] for phase in self.phases]


@dataclass(frozen=True)
class Settings:
    """How a recipe is made small: see the module docstring."""

    scale: float = 1e-7
    seq_len: int | None = 128  # the original context's length in this run; None: full length
    model: str = "tiny"
    batch_size: int = 8  # sequences per step at the original context
    lr: float = 3e-3
    min_steps: int = 2
    eval_every: int | None = 50  # None: no evaluation (no held-out batches either)
    passkey_trials: int = 4
    fim_documents: int = 8
    seed: int = 0


@dataclass
class Resolved:
    """A recipe made concrete: the mixture and train specs as run, and what was changed."""

    mixture: Any  # mixer.spec.MixtureSpec
    train: Any  # trainer.spec.TrainSpec
    floored: dict[str, dict[str, int]] = field(default_factory=dict)  # phase: {scaled, run}
    dropped: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Loading


def recipe_paths() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*.yaml"))


def recipe_names() -> list[str]:
    return [path.stem for path in recipe_paths()]


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A preset by name (``recipes/NAME.yaml``) or a recipe file; validated as a recipe and, at
    full scale, as a mixture spec and a train spec (``SpecError`` naming the file otherwise)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise RecipeError(f"no recipe {str(name_or_path)!r}; presets: {', '.join(recipe_names())}")
    data = read_spec_data(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: want a mapping at the top level")
    try:
        recipe = Recipe.model_validate({**data, "path": str(path)})
    except ValidationError as error:
        raise SpecError(f"{path}: {validation_message(error)}") from error
    try:
        check_proportions(recipe)
        resolve(recipe, Settings(scale=1.0, seq_len=None, batch_size=1, min_steps=1, eval_every=None))
    except (ValueError, ValidationError) as error:
        detail = validation_message(error) if isinstance(error, ValidationError) else str(error)
        raise SpecError(f"{path}: {detail}") from error
    return recipe


def proportions(phase: dict[str, Any]) -> dict[str, float]:
    """The phase's shares as written: each own source's weight, and ``replay:<phase>``."""
    shares = {source["name"]: float(source["weight"]) for source in phase["sources"]}
    if phase.get("replay"):
        shares[f"replay:{phase['replay']['phase']}"] = float(phase["replay"]["share"])
    return shares


def check_proportions(recipe: Recipe) -> None:
    for phase in recipe.phases:
        total = sum(proportions(phase).values())
        if abs(total - 1.0) > TOLERANCE:
            raise ValueError(f"phase {phase['name']!r}: proportions (weights + replay share) sum to {total:g}, not 1")


# ---------------------------------------------------------------------------------------------
# Scaling


def phase_batch(settings: Settings, base_seq: int, seq_len: int) -> int:
    return max(1, round(settings.batch_size * base_seq / seq_len))


def resolve(recipe: Recipe, settings: Settings, corpus: str = PLACEHOLDER, tokenizer: str = PLACEHOLDER,
            mixture_dir: str = PLACEHOLDER, train_dir: str = PLACEHOLDER, name: str | None = None,
            drop: dict[str, list[str]] | None = None) -> Resolved:
    """The recipe's mixture and train specs at ``settings``' scale; ``drop`` maps a phase to
    sources to leave out (its other weights renormalised to the same total)."""
    from mixer.spec import MixtureSpec
    from trainer.spec import TrainSpec

    if settings.model not in MODEL_PRESETS:
        raise RecipeError(f"unknown model preset {settings.model!r}; presets: {', '.join(MODEL_PRESETS)}")
    if settings.scale <= 0:
        raise RecipeError(f"scale must be positive, not {settings.scale}")
    ratio = 1.0 if settings.seq_len is None else settings.seq_len / recipe.context
    base_seq = round(recipe.context * ratio)
    held_out = 1 if settings.eval_every else 0
    mixture_phases, train_phases, floored, dropped = [], [], {}, []
    trained: dict[str, int] = {}
    for phase in recipe.phases:
        phase = json.loads(json.dumps(phase))  # a deep copy
        rope = phase.pop("rope", {"kind": "none"})
        seq_len = round(phase["seq_len"] * ratio)
        if seq_len < 16:
            raise RecipeError(f"phase {phase['name']!r}: seq_len {phase['seq_len']} becomes {seq_len} (< 16); "
                              f"raise --seq-len")
        batch = phase_batch(settings, base_seq, seq_len)
        scaled = int(phase["tokens"] * settings.scale)
        floor = (settings.min_steps + held_out + 1) * batch * seq_len
        tokens = max(scaled, floor)
        if tokens != scaled:
            floored[phase["name"]] = {"scaled": scaled, "run": tokens}
        steps = (tokens // seq_len) // batch - held_out
        trained[phase["name"]] = steps * batch * seq_len
        for removed in (drop or {}).get(phase["name"], []):
            dropped.append(drop_source(phase, removed))
        if "original_context" in rope:
            rope["original_context"] = max(1, round(rope["original_context"] * ratio))
        mixture_phases.append({**phase, "tokens": tokens, "seq_len": seq_len})
        train_phases.append({"name": phase["name"], "mixture_phase": phase["name"], "seq_len": seq_len,
                             "batch_size": batch, "tokens": trained[phase["name"]], "rope": rope})
    mixture = MixtureSpec.model_validate({
        "name": name or recipe.name, "corpus": [corpus], "tokenizer": tokenizer, "seed": recipe.seed,
        "phases": mixture_phases,
    })
    train = TrainSpec.model_validate({
        "name": name or recipe.name, "mixture": mixture_dir, "output": train_dir, "seed": settings.seed,
        "model": {"vocab_size": None, **MODEL_PRESETS[settings.model], "rope_base": recipe.rope_base},
        "optimizer": {"lr": settings.lr},
        "schedule": resolve_schedule(recipe, settings.scale, trained),
        "phases": train_phases,
        "checkpoint_every": 1000, "keep_checkpoints": 2,
        "eval_every": settings.eval_every, "eval_batches": 1,
        "evals": passkey_settings(settings, train_phases),
        "log_every": 10,
    })
    return Resolved(mixture=mixture, train=train, floored=floored, dropped=dropped)


def passkey_settings(settings: Settings, phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Passkey retrieval at every phase length of at least ``MIN_PASSKEY_LENGTH`` (a shorter
    one cannot hold the key, the question and the answer; none when no phase is that long), and
    FIM infilling whose prompt and generation fit in the shortest phase."""
    lengths = sorted({phase["seq_len"] for phase in phases if phase["seq_len"] >= MIN_PASSKEY_LENGTH})
    return {"passkey_lengths": lengths or None, "passkey_trials": settings.passkey_trials if lengths else 0,
            "fim_documents": settings.fim_documents,
            # prompt and generation fit in the shortest phase (FIM is measured at each phase's length)
            "fim_max_new_tokens": max(1, min(32, min(phase["seq_len"] for phase in phases) // 2))}


def resolve_schedule(recipe: Recipe, scale: float, trained: dict[str, int]) -> dict[str, Any]:
    """The recipe's schedule with token counts scaled and phase-tied positions as fractions of
    the tokens the run will train."""
    schedule = dict(recipe.schedule)
    for key in SCALED_TOKEN_FIELDS:
        if schedule.get(key) is not None:
            schedule[key] = int(schedule[key] * scale)
    total = sum(trained.values())
    starts, position = {}, 0
    for name, tokens in trained.items():
        starts[name] = position
        position += tokens
    if "decay_from" in schedule:
        phase = schedule.pop("decay_from")
        if phase not in starts:
            raise ValueError(f"schedule.decay_from: no phase {phase!r}")
        schedule["decay_fraction"] = (total - starts[phase]) / total
    if "milestones_at" in schedule:
        milestones = []
        for entry in schedule.pop("milestones_at"):
            at = MilestoneAt.model_validate(entry)
            if at.phase not in starts:
                raise ValueError(f"schedule.milestones_at: no phase {at.phase!r}")
            milestones.append((starts[at.phase] + at.at * trained[at.phase]) / total)
        schedule["milestones"] = milestones
    return schedule


def drop_source(phase: dict[str, Any], name: str) -> dict[str, Any]:
    """Remove source ``name`` from ``phase`` (a mixture phase dict, in place) and renormalise the
    others so that they keep the phase's own total; returns what was done."""
    own = phase["sources"]
    gone = next(source for source in own if source["name"] == name)
    kept = [source for source in own if source["name"] != name]
    if not kept:
        raise RecipeError(f"phase {phase['name']!r}: dropping {name!r} leaves no source of its own")
    before = {source["name"]: source["weight"] for source in kept}
    total_before = sum(source["weight"] for source in own)
    remaining = sum(before.values())
    for source in kept:
        source["weight"] = source["weight"] * total_before / remaining
    phase["sources"] = kept
    return {"phase": phase["name"], "source": name, "weight": gone["weight"],
            "renormalised": {source["name"]: [before[source["name"]], round(source["weight"], 6)]
                             for source in kept}}


# ---------------------------------------------------------------------------------------------
# The corpus against the recipe


def corpus_domains(corpus: str | Path) -> dict[str, int]:
    """Documents per domain in a curated output."""
    import duckdb

    from mixer.corpora import shard_globs

    rows = duckdb.connect().sql(
        "SELECT domain, count(*) FROM read_parquet(?, union_by_name = true) GROUP BY domain",
        params=[shard_globs([corpus])],
    ).fetchall()
    return {domain: count for domain, count in rows}


def matching_documents(corpus: str | Path, select: dict[str, Any]) -> int:
    import duckdb

    from mixer.corpora import shard_globs
    from mixer.select import compile_selector
    from mixer.spec import Selector

    compiled = compile_selector(Selector.model_validate(select))
    sql = f"SELECT count(*) FROM read_parquet(?, union_by_name = true) WHERE {compiled.where}"
    return duckdb.connect().sql(sql, params=[shard_globs([corpus]), *compiled.params]).fetchall()[0][0]


def missing_sources(recipe: Recipe, corpus: str | Path) -> list[dict[str, Any]]:
    """Every (phase, source) whose selector matches no document of ``corpus``, with why: the
    domains it selects that the corpus lacks, or the tags/quality no document has."""
    domains = corpus_domains(corpus)
    missing = []
    for phase in recipe.phases:
        for source in phase["sources"]:
            select = source.get("select", {})
            if matching_documents(corpus, select):
                continue
            wanted = select.get("domain")
            wanted = [wanted] if isinstance(wanted, str) else wanted
            lacking = [domain for domain in wanted or [] if not domains.get(domain)]
            if lacking:
                reason = f"domain {', '.join(lacking)}"
            elif select.get("tags_any"):
                reason = f"documents tagged {', '.join(select['tags_any'])}"
            else:
                reason = f"documents matching {json.dumps(select, sort_keys=True)}"
            missing.append({"phase": phase["name"], "source": source["name"], "missing": reason})
    return missing


def missing_message(recipe: Recipe, corpus: str | Path, missing: list[dict[str, Any]]) -> str:
    have = ", ".join(sorted(corpus_domains(corpus))) or "nothing"
    items = "; ".join(f"phase {item['phase']!r} source {item['source']!r} needs {item['missing']}"
                      for item in missing)
    return (f"recipe {recipe.name}: corpus {corpus} (domains: {have}) lacks a source type: {items}. "
            "Curate that type, or pass --drop-missing to drop these sources and renormalise each "
            "phase's other weights")


# ---------------------------------------------------------------------------------------------
# list, show, run


def recipe_rows() -> list[dict[str, Any]]:
    rows = []
    for name in recipe_names():
        recipe = load_recipe(name)
        rows.append({
            "name": name, "model": recipe.title, "phases": " → ".join(
                f"{phase['name']} ({phase['seq_len'] // 1024}k)" for phase in recipe.phases),
            "schedule": recipe.schedule["kind"],
            "tokens": human_tokens(sum(phase["tokens"] for phase in recipe.phases)),
        })
    return rows


def human_tokens(tokens: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= size:
            return f"{tokens / size:.4g}{unit}"
    return str(int(tokens))


def rope_text(rope: dict[str, Any]) -> str:
    extra = ", ".join(f"{key} {value}" for key, value in rope.items() if key != "kind")
    return rope["kind"] + (f" ({extra})" if extra else "")


def format_recipe(recipe: Recipe) -> str:
    """``recipe show``: the phases with budgets, lengths, RoPE and proportions, the schedule,
    the source and the approximations."""
    lines = [f"{recipe.name}: {recipe.title}", f"source: {recipe.source}",
             f"original context {recipe.context}, RoPE base {recipe.rope_base:g}, published peak LR "
             f"{recipe.published_peak_lr if recipe.published_peak_lr is not None else 'not published'}",
             "schedule: " + ", ".join(f"{key} {value}" for key, value in recipe.schedule.items()), "phases:"]
    for phase in recipe.phases:
        shares = ", ".join(f"{name} {share:g}" for name, share in proportions(phase).items())
        lines.append(f"  {phase['name']}: {human_tokens(phase['tokens'])} tokens, seq_len {phase['seq_len']}, "
                     f"rope {rope_text(phase.get('rope', {'kind': 'none'}))}; {shares}")
    if recipe.approximations:
        lines.append("approximations:")
        lines.extend(f"  - {text}" for text in recipe.approximations)
    return "\n".join(lines)


def run_name(recipe: Recipe, corpus: Path, settings: Settings, tokenizer: str | None, drop_missing: bool) -> str:
    """``<recipe>-<8 hex of the inputs>``: the recipe file, the corpus (path and manifest) and
    every setting."""
    from mixer.corpora import manifest_sha256

    inputs = {
        "recipe": hashlib.sha256(Path(recipe.path).read_bytes()).hexdigest(),
        "corpus": str(corpus.resolve()), "manifest": manifest_sha256(corpus),
        "settings": settings.__dict__, "tokenizer": tokenizer, "drop_missing": drop_missing,
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    return f"{recipe.name}-{digest[:8]}"


def run_recipe(name: str, corpus: str | Path, settings: Settings = Settings(), output: str | Path = "runs",
               run: str | None = None, tokenizer: str | Path | None = None, vocab_size: int = 4096,
               drop_missing: bool = False, on_ray: bool = True, progress: Progress = print) -> dict[str, Any]:
    """Mix and train ``name`` on ``corpus``; returns the run's record (``recipe.json``)."""
    from api import service
    from mixer.corpora import shard_files

    recipe = load_recipe(name)
    corpus = Path(corpus)
    shard_files(corpus)  # a CorpusError (FileNotFoundError) when it is not a curated output
    missing = missing_sources(recipe, corpus)
    if missing and not drop_missing:
        raise RecipeError(missing_message(recipe, corpus, missing))
    drop: dict[str, list[str]] = {}
    for item in missing:
        drop.setdefault(item["phase"], []).append(item["source"])
    run = run or run_name(recipe, corpus, settings, None if tokenizer is None else str(tokenizer), drop_missing)
    run_dir = Path(output) / run
    train_dir, mixture_dir = run_dir / "train", run_dir / "mixture"
    if train_dir.is_dir() and any(train_dir.iterdir()):
        raise RecipeError(f"{run_dir}: already holds a training run; remove it or choose another --name")
    run_dir.mkdir(parents=True, exist_ok=True)
    # resolve before the tokenizer, so a bad setting costs nothing
    resolved = resolve(recipe, settings, str(corpus), PLACEHOLDER, str(mixture_dir), str(train_dir), run, drop)
    reasons = {(item["phase"], item["source"]): item["missing"] for item in missing}
    for item in resolved.dropped:
        item["missing"] = reasons[item["phase"], item["source"]]
        changes = ", ".join(f"{name} {old:g}→{new:g}" for name, (old, new) in item["renormalised"].items())
        progress(f"recipe: phase {item['phase']!r}: dropped source {item['source']!r} (weight {item['weight']:g}; "
                 f"the corpus has no {item['missing']}); renormalised {changes}")
    for phase, tokens in resolved.floored.items():
        progress(f"recipe: phase {phase!r}: {tokens['scaled']:,} tokens at scale {settings.scale:g} raised to "
                 f"{tokens['run']:,} ({settings.min_steps} training steps and the held-out batch)")
    if tokenizer is None:
        tokenizer = service.train_tokenizer([str(corpus)], run_dir / "tokenizer.json", vocab_size=vocab_size,
                                            progress=progress)
    mixture = resolved.mixture.model_copy(update={"tokenizer": str(tokenizer)})
    record: dict[str, Any] = {
        "recipe": recipe.name, "scale": settings.scale, "corpus": str(corpus),
        "mixture": mixture.model_dump(mode="json"), "train": resolved.train.model_dump(mode="json"),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "title": recipe.title, "source": recipe.source, "approximations": recipe.approximations,
        "settings": settings.__dict__, "proportions": {phase["name"]: proportions(phase) for phase in recipe.phases},
        "floored": resolved.floored, "dropped": resolved.dropped, "status": "running",
    }
    service.write_json(run_dir / "recipe.json", record)
    progress(f"recipe: {recipe.name} → {run_dir}")
    try:
        service.mix_build(mixture, mixture_dir, progress=progress)
        summary = service.train(resolved.train, on_ray=on_ray, progress=progress)
    except BaseException as error:
        record.update(status="failed", error=(str(error).strip().splitlines() or [type(error).__name__])[0])
        service.write_json(run_dir / "recipe.json", record)
        raise
    record.update(status="succeeded", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), run_dir=str(run_dir))
    service.write_json(run_dir / "recipe.json", record)
    from trainer.report import write_run_report

    record["report"] = str(write_run_report(run_dir))
    progress(f"recipe: report {record['report']}")
    record["summary"] = summary
    return record


def finite_losses(summary: dict[str, Any]) -> bool:
    return all(math.isfinite(phase["last_loss"]) for phase in summary.get("phases", []))
