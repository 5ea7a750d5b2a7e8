"""The report of one run: ``RUN/report.html``, self-contained, with its figures also written as
PNGs under ``RUN/report/``.

A run folder, as ``midtrain recipe run`` leaves it::

    RUN/recipe.json   {"recipe", "scale", "corpus", "mixture", "train", "created_at"}
    RUN/mixture/      the mix build (mixer.build: report.json, mixture.json, ...)
    RUN/train/        the training output (trainer.train: metrics.jsonl, eval.jsonl, summary.json)

Only the training output is required; a folder that is itself a training output (it holds
``metrics.jsonl``) is read as ``train/``. What is missing is found elsewhere when it can be and
otherwise named in the report in place of its section:

- the train spec (LR schedule, RoPE per phase): ``recipe.json``'s ``train``, else the spec
  saved in the latest checkpoint;
- the mix build: ``RUN/mixture``, else the train spec's ``mixture`` folder;
- the curated corpora: ``recipe.json``'s ``corpus``, else the mix build's ``mixture.json``.
  The funnel is the curation report's (pipelines.report): ``OUT/report/stats.json`` when it has
  been written, else computed by the same function from the shards and the manifest, read-only.

Sections: curation funnel; composition per phase (target and realised shares by domain, from
the build report); LR against tokens with the phase boundaries; RoPE frequencies of every phase
(wavelength per dimension pair and the change from the first phase, from trainer.rope); loss
overall and per domain against tokens; evaluation per phase end (held-out perplexity per
domain, passkey retrieval by context length, FIM exact match). The figures that
``trainer.plots`` already draws for a run are drawn by it; the rest here, with matplotlib's
object API as there.

``run_data(RUN)`` gives the same numbers as JSON for the API's dashboard.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, PercentFormatter

from trainer import report_html as h
from trainer.plots import (
    PhaseSpan,
    draw_eval_perplexity,
    draw_fim,
    draw_loss,
    draw_passkey,
    draw_scalar,
    nested_series,
    number,
    phase_spans,
    read_jsonl,
    save,
    series,
)
from trainer.spec import TrainSpec

REPORT_FILE = "report.html"
FIGURES_DIR = "report"
DOMAIN_COLORS = {"web": "#4477aa", "code": "#ee6677", "math": "#228833", "instruction": "#ccbb44",
                 "reasoning": "#66ccee", "synthetic": "#aa3377", "long": "#bbbbbb"}
EXTRA_COLORS = ["#332288", "#117733", "#882255", "#999933", "#44aa99", "#cc6677", "#88ccee", "#ddcc77"]


class RunError(FileNotFoundError):
    """A folder that holds no training output (exit status 2 from the CLI)."""


def domain_color(domain: str, others: list[str]) -> str:
    if domain in DOMAIN_COLORS:
        return DOMAIN_COLORS[domain]
    return EXTRA_COLORS[others.index(domain) % len(EXTRA_COLORS)] if domain in others else "#777777"


# ---------------------------------------------------------------------------------------------
# What a run folder holds


@dataclass
class RunData:
    run_dir: Path
    name: str
    train_dir: Path
    recipe: dict | None = None
    spec: TrainSpec | None = None
    spec_from: str | None = None  # where the train spec came from
    mixture_dir: Path | None = None
    build: dict | None = None  # the build's report.json
    corpora: list[Path] = field(default_factory=list)
    funnels: list[tuple[Path, dict]] = field(default_factory=list)  # (OUT, curation stats)
    metrics: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    summary: dict | None = None
    spans: list[PhaseSpan] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # section -> why it cannot be drawn

    @property
    def phase_ends(self) -> list[dict]:
        """The evaluations at phase ends (the last evaluation of each phase when none is
        marked, as in a run written before phase_end was recorded)."""
        ends = [record for record in self.evals if record.get("phase_end")]
        if ends:
            return ends
        last: dict[str, dict] = {}
        for record in self.evals:
            last[str(record.get("phase"))] = record
        return list(last.values())


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _existing(path_text: str, run_dir: Path) -> Path | None:
    """A path a recipe or spec names: as given (relative to the working directory), else
    relative to the run folder; None when neither exists."""
    for candidate in (Path(path_text), run_dir / path_text):
        if candidate.exists():
            return candidate
    return None


def train_dir_of(run_dir: Path) -> Path:
    if (run_dir / "train").is_dir():
        return run_dir / "train"
    if (run_dir / "metrics.jsonl").is_file():
        return run_dir
    raise RunError(f"{run_dir}: no train/ folder and no metrics.jsonl: not a training run")


def _spec_from_checkpoint(train_dir: Path) -> dict | None:
    """The spec a checkpoint saved (weights only: the spec is plain data), without reading
    the weights into memory (mmap)."""
    import torch

    directory = train_dir / "checkpoints"
    latest = directory / "latest"
    if not latest.is_file():
        return None
    path = directory / latest.read_text().strip()
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    return state.get("spec")


def collect(run_dir: str | Path, corpora: bool = True) -> RunData:
    """Everything the report shows, read from ``run_dir``; what cannot be found is recorded in
    ``missing``. ``corpora=False`` leaves out the curation funnel (its stats may need a pass
    over the corpus). Raises :class:`RunError` when there is no training output at all."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    data = RunData(run_dir=run_dir, name=run_dir.resolve().name, train_dir=train_dir_of(run_dir))
    recipe_path = run_dir / "recipe.json"
    if recipe_path.is_file():
        try:
            data.recipe = _read_json(recipe_path)
        except (OSError, json.JSONDecodeError) as error:
            data.missing["recipe"] = f"recipe.json cannot be read ({error})"
    else:
        data.missing["recipe"] = "no recipe.json: the recipe, scale and corpus are not known from it"
    _collect_training(data)
    _collect_spec(data)
    _collect_build(data)
    if corpora:
        _collect_corpora(data)
    return data


def _collect_training(data: RunData) -> None:
    data.metrics = read_jsonl(data.train_dir / "metrics.jsonl")
    data.evals = read_jsonl(data.train_dir / "eval.jsonl")
    data.spans = phase_spans(data.metrics) or phase_spans(data.evals)
    summary = data.train_dir / "summary.json"
    if summary.is_file():
        data.summary = _read_json(summary)
    if not data.metrics:
        data.missing["training"] = f"{data.train_dir / 'metrics.jsonl'} is missing or empty: the run has not trained a step"
    if not data.evals:
        data.missing["evaluation"] = (f"{data.train_dir / 'eval.jsonl'} is missing or empty: the run was trained "
                                      "without eval_every, or has not reached an evaluation")


def _collect_spec(data: RunData) -> None:
    candidates: list[tuple[str, Any]] = []
    if data.recipe and isinstance(data.recipe.get("train"), dict):
        candidates.append(("recipe.json", data.recipe["train"]))
    try:
        saved = _spec_from_checkpoint(data.train_dir)
    except Exception as error:  # a torn or foreign checkpoint: the spec is just not known
        saved, data.missing["spec_checkpoint"] = None, f"the latest checkpoint cannot be read ({error})"
    if saved is not None:
        candidates.append(("the latest checkpoint", saved))
    problems = []
    for origin, spec in candidates:
        try:
            data.spec, data.spec_from = TrainSpec.model_validate(spec), origin
            return
        except ValueError as error:
            problems.append(f"{origin}'s train spec does not validate ({str(error).splitlines()[0]})")
    data.missing["spec"] = "; ".join(problems) or ("no train spec: neither recipe.json's \"train\" nor a "
                                                   "checkpoint in train/checkpoints holds one")


def _collect_build(data: RunData) -> None:
    candidates = [data.run_dir / "mixture"]
    if data.spec is not None:
        found = _existing(data.spec.mixture, data.run_dir)
        if found is not None:
            candidates.append(found)
    for directory in candidates:
        if (directory / "report.json").is_file():
            data.mixture_dir, data.build = directory, _read_json(directory / "report.json")
            return
    data.missing["mixture"] = ("no mix build: neither RUN/mixture/report.json nor the train spec's mixture folder "
                               "holds a finished build's report")


def _collect_corpora(data: RunData) -> None:
    named: list[str] = []
    if data.recipe and data.recipe.get("corpus"):
        corpus = data.recipe["corpus"]
        named = [corpus] if isinstance(corpus, str) else [str(item) for item in corpus]
    elif data.mixture_dir is not None and (data.mixture_dir / "mixture.json").is_file():
        named = [str(item) for item in _read_json(data.mixture_dir / "mixture.json").get("spec", {}).get("corpus", [])]
    problems = []
    for text in named:
        out = _existing(text, data.run_dir)
        if out is None or not (out / "manifest.json").is_file():
            problems.append(f"{text}: no curated output with a manifest.json there")
            continue
        data.corpora.append(out)
        try:
            data.funnels.append((out, curation_stats(out)))
        except Exception as error:  # a corpus whose files disagree with its manifest
            problems.append(f"{text}: its funnel cannot be drawn ({str(error).splitlines()[0]})")
    if not named:
        problems.append("the corpus is not known: no recipe.json \"corpus\" and no mix build naming one")
    if problems:
        data.missing["corpus"] = "; ".join(problems)


def curation_stats(out: Path) -> dict:
    """The curation report's stats (pipelines.report): its ``stats.json`` when written, else
    computed the same way from the shards and manifest (read-only: nothing is written)."""
    from corpus.manifest import read_manifest
    from pipelines.report import build_stats, load_stats, report_dir

    if (report_dir(out) / "stats.json").is_file():
        return load_stats(report_dir(out))
    return build_stats(out, read_manifest(out))


# ---------------------------------------------------------------------------------------------
# Numbers the sections and the dashboard share


def composition(build: dict) -> list[dict]:
    """Per phase: target and realised shares by domain (sources of one domain summed) and the
    sources themselves."""
    phases = []
    for phase in build.get("phases", []):
        target: dict[str, float] = {}
        realised: dict[str, float] = {}
        for source in phase.get("sources", []):
            domain = str(source.get("domain"))
            target[domain] = target.get(domain, 0.0) + float(source.get("target_share") or 0.0)
            realised[domain] = realised.get(domain, 0.0) + float(source.get("realised_share") or 0.0)
        phases.append({
            "phase": phase.get("name"), "seq_len": phase.get("seq_len"), "tokens": phase.get("tokens_real"),
            "target": target, "realised": realised,
            "sources": [{key: source.get(key) for key in ("name", "domain", "tokens_target", "tokens_written",
                                                          "target_share", "realised_share", "epochs")}
                        for source in phase.get("sources", [])],
        })
    return phases


def rope_table(spec: TrainSpec) -> list[dict]:
    """Per phase: its RoPE kind, ``seq_len`` and the inverse frequencies and attention scale
    trainer.rope gives it (float64 lists)."""
    from trainer.rope import rope_frequencies

    rows = []
    for phase in spec.phases:
        inv_freq, scale = rope_frequencies(spec.model.head_dim, spec.model.rope_base, phase.rope, phase.seq_len)
        rows.append({"phase": phase.name, "kind": phase.rope.kind, "seq_len": phase.seq_len,
                     "inv_freq": [float(value) for value in inv_freq.double()], "attention_scale": scale})
    return rows


def eval_rows(data: RunData) -> list[dict]:
    """Per phase end and held-out set: perplexity overall and per domain."""
    rows = []
    for record in data.phase_ends:
        for held_out, result in (record.get("eval") or {}).items():
            if not isinstance(result, dict):
                continue
            row = {"after phase": record.get("phase"), "tokens": record.get("tokens_seen"),
                   "held-out set": held_out, "all": number(result.get("perplexity"))}
            for domain, value in sorted((result.get("perplexity_by_domain") or {}).items()):
                row[domain] = number(value)
            rows.append(row)
    return rows


def context_length(key: str) -> int:
    """A passkey result's key (a context length) as a number, for ordering."""
    return int(key) if str(key).isdigit() else 0


def _phase_end_rows(data: RunData, key: str, row_of) -> list[dict]:
    """A row per phase end that measured ``key`` (a dict): its phase, then ``row_of(result)``."""
    return [{"after phase": record.get("phase"), **row_of(record[key])}
            for record in data.phase_ends if isinstance(record.get(key), dict)]


def passkey_rows(data: RunData) -> list[dict]:
    return _phase_end_rows(data, "passkey", lambda results: {
        f"{length} tokens": number(results[length]) for length in sorted(results, key=context_length)})


def fim_rows(data: RunData) -> list[dict]:
    return _phase_end_rows(data, "fim_exact_match", lambda result: {
        "exact match": number(result.get("exact_match")), "examples": result.get("n")})


def phase_effects(data: RunData) -> list[dict]:
    """What each phase did, from one phase end to the next: the change of held-out loss per
    domain on the first phase's held-out set (the one data every phase end measures; an anneal
    should lower its code and math losses more than its web loss), and the change of passkey
    accuracy per context length (a long-context phase should raise it beyond the original
    window). Negative loss changes and positive passkey changes are gains."""
    ends = data.phase_ends
    rows = []
    for before, after in zip(ends, ends[1:]):
        row: dict[str, Any] = {"phase": after.get("phase"), "from": before.get("phase")}
        sets = [name for name in (before.get("eval") or {}) if name in (after.get("eval") or {})]
        if sets:
            row["held-out set"] = sets[0]
            old = before["eval"][sets[0]].get("loss_by_domain") or {}
            new = after["eval"][sets[0]].get("loss_by_domain") or {}
            for domain in sorted(set(old) & set(new)):
                row[f"Δ loss {domain}"] = number(new[domain] - old[domain])
        old_passkey, new_passkey = before.get("passkey") or {}, after.get("passkey") or {}
        for length in sorted(set(old_passkey) & set(new_passkey), key=context_length):
            row[f"Δ passkey {length}"] = number(new_passkey[length] - old_passkey[length])
        rows.append(row)
    return rows


def final_metrics(data: RunData) -> dict[str, Any]:
    """The figures a comparison lines up: the last step's loss (overall and per domain,
    averaged over the last steps of the last phase), and the last phase end's evaluations."""
    row: dict[str, Any] = {"run": data.name}
    if data.recipe:
        row["recipe"] = data.recipe.get("recipe")
    if data.spec is not None:
        row["schedule"] = data.spec.schedule.kind
        row["rope"] = " → ".join(phase.rope.kind for phase in data.spec.phases)
    if data.metrics:
        last = data.metrics[-1]
        row["tokens"] = int(last.get("tokens_seen") or 0)
        row["steps"] = last.get("step")
        tail = [record for record in data.metrics if record.get("phase") == last.get("phase")][-5:]
        losses = [record["loss"] for record in tail if number(record.get("loss")) is not None]
        if losses:
            row["final loss"] = float(np.mean(losses))
        for domain, (_, ys) in nested_series(tail, "loss_by_domain").items():
            row[f"loss {domain}"] = float(np.mean(ys))
    ends = data.phase_ends
    if ends:
        last_end = ends[-1]
        for held_out, result in (last_end.get("eval") or {}).items():
            if isinstance(result, dict) and number(result.get("perplexity")) is not None:
                row[f"ppl {held_out}"] = float(result["perplexity"])
        for length, value in (last_end.get("passkey") or {}).items():
            row[f"passkey {length}"] = number(value)
        fim = last_end.get("fim_exact_match")
        if isinstance(fim, dict):
            row["FIM exact match"] = number(fim.get("exact_match"))
    if data.summary and number(data.summary.get("wall_seconds")) is not None:
        row["wall s"] = float(data.summary["wall_seconds"])
    return row


# ---------------------------------------------------------------------------------------------
# Figures drawn here (the rest are trainer.plots')


def draw_composition(phases: list[dict], path: Path, title: str = "composition per phase") -> Path | None:
    """Per phase two stacked bars, target and realised share by domain."""
    if not phases:
        return None
    domains = sorted({domain for phase in phases for part in ("target", "realised") for domain in phase[part]})
    others = [domain for domain in domains if domain not in DOMAIN_COLORS]
    figure = Figure(figsize=(10, 0.9 * len(phases) + 1.6), layout="constrained")
    axes = figure.subplots()
    labels, y = [], 0.0
    positions = []
    for phase in phases:
        for part in ("target", "realised"):
            positions.append(y)
            labels.append(f"{phase['phase']} · {part}")
            left = 0.0
            for domain in domains:
                share = phase[part].get(domain, 0.0)
                if share > 0:
                    axes.barh(y, share, left=left, color=domain_color(domain, others), height=0.8,
                              hatch="//" if part == "realised" else None, edgecolor="white",
                              label=domain if (phase is phases[0] and part == "target") else None)
                    if share >= 0.06:
                        axes.text(left + share / 2, y, f"{share:.0%}", ha="center", va="center", fontsize=7,
                                  color="white")
                left += share
            y += 1.0
        y += 0.5
    axes.set_yticks(positions, labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("share of the phase's tokens")
    axes.set_title(title)
    handles = [axes.barh(0, 0, color=domain_color(domain, others), label=domain) for domain in domains]
    axes.legend(handles=handles, labels=domains, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save(figure, path)


def draw_rope(rope: list[dict], path: Path) -> Path | None:
    """Two panels against the dimension pair: each phase's wavelength (positions per full turn,
    log scale) with its context length marked, and each phase's frequency as a multiple of the
    first phase's (1 = unchanged, 1/s = interpolated by s)."""
    if not rope:
        return None
    figure = Figure(figsize=(10, 7), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    first = np.asarray(rope[0]["inv_freq"])
    for index, row in enumerate(rope):
        inv_freq = np.asarray(row["inv_freq"])
        pairs = np.arange(len(inv_freq))
        color = EXTRA_COLORS[index % len(EXTRA_COLORS)]
        label = f"{row['phase']} ({row['kind']}, {row['seq_len']:,})"
        top.plot(pairs, 2 * math.pi / inv_freq, marker="o", markersize=3, color=color, label=label,
                 linestyle="-" if index == 0 else "--")
        top.axhline(row["seq_len"], color=color, linewidth=0.7, linestyle=":")
        bottom.plot(pairs, inv_freq / first, marker="o", markersize=3, color=color, label=label)
    top.set_yscale("log")
    top.set_ylabel("wavelength (positions per turn)")
    top.set_title("RoPE wavelength per dimension pair; dotted: each phase's context length")
    top.legend(fontsize=8)
    top.grid(alpha=0.3, which="both")
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    bottom.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    bottom.set_ylabel(f"frequency / {rope[0]['phase']}'s")
    bottom.set_xlabel("dimension pair i (fast → slow)")
    bottom.set_title("change from the first phase (1 = unchanged)")
    bottom.grid(alpha=0.3, which="both")
    return save(figure, path)


def draw_funnel_of(stats: dict, path: Path) -> Path | None:
    from pipelines.report import draw_funnel

    if not stats.get("funnel"):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_funnel(stats["funnel"], path)
    return path


# ---------------------------------------------------------------------------------------------
# The page


def _figure_or_missing(path: Path | None, caption: str, name: str, why: str) -> str:
    return h.figure(path, caption, name) if path is not None else h.missing(caption, why)


def _funnel_section(data: RunData, figures: Path) -> str:
    from pipelines.report import funnel_rows

    parts = []
    for index, (out, stats) in enumerate(data.funnels):
        totals = stats.get("totals", {})
        kept = totals.get("kept", {})
        parts.append(f"<h3>{h.esc(out)}</h3><p class=\"meta\">input {h.cell(totals.get('input'))} documents, kept "
                     f"{h.cell(kept.get('documents'))} ({h.cell(kept.get('tokens'))} tokens), dropped "
                     f"{h.cell(totals.get('dropped', {}).get('documents'))}, quarantined "
                     f"{h.cell(totals.get('quarantined'))}</p>")
        path = draw_funnel_of(stats, figures / f"funnel_{index}.png")
        parts.append(_figure_or_missing(path, "curation funnel", "funnel", "the curation stats hold no funnel"))
        parts.append(h.table(funnel_rows(stats)))
        reasons = [{"stage": row.get("stage"), "reason": row.get("reason"), "documents": row.get("documents")}
                   for row in stats.get("drop_reasons", [])]
        if reasons:
            parts.append("<h3>drops by reason</h3>" + h.table(reasons))
    if "corpus" in data.missing:
        parts.append(h.missing("curation funnel", data.missing["corpus"]))
    return "".join(parts)


def _composition_section(data: RunData, figures: Path) -> str:
    if data.build is None:
        return h.missing("composition", data.missing.get("mixture", "no mix build"))
    phases = composition(data.build)
    parts = [_figure_or_missing(draw_composition(phases, figures / "composition.png"),
                                "composition per phase: target and realised share by domain", "composition",
                                "the build report lists no phases")]
    rows = [{"phase": phase["phase"], "source": source["name"], "domain": source["domain"],
             "target share": source["target_share"], "realised share": source["realised_share"],
             "tokens written": source["tokens_written"], "epochs": source["epochs"]}
            for phase in phases for source in phase["sources"]]
    parts.append(h.table(rows))
    return "".join(parts)


def _lr_section(data: RunData, figures: Path) -> str:
    if not data.metrics:
        return h.missing("learning rate", data.missing.get("training", "no metrics"))
    path = draw_scalar(data.metrics, data.spans, "lr", "learning rate against tokens seen; dashed: phase starts",
                       figures / "lr.png")
    parts = [_figure_or_missing(path, "learning rate with phase boundaries", "lr", "no step recorded an LR")]
    if data.spec is not None:
        schedule = data.spec.schedule.model_dump(exclude_none=True)
        parts.append(f"<p class=\"meta\">schedule {h.esc(json.dumps(schedule))}, peak LR "
                     f"{h.cell(data.spec.optimizer.lr)} (train spec from {h.esc(data.spec_from)})</p>")
    rows = [{"phase": span.name, "first token": int(span.start), "last token": int(span.end)} for span in data.spans]
    parts.append(h.table(rows))
    return "".join(parts)


def _rope_section(data: RunData, figures: Path) -> str:
    if data.spec is None:
        return h.missing("RoPE frequencies", data.missing.get("spec", "no train spec"))
    rope = rope_table(data.spec)
    parts = [h.figure(draw_rope(rope, figures / "rope.png"), "RoPE frequencies per phase, before and after extension",
                      "rope")]
    rows = [{"phase": row["phase"], "kind": row["kind"], "seq_len": row["seq_len"],
             "attention scale": row["attention_scale"],
             "longest wavelength": 2 * math.pi / min(row["inv_freq"]),
             "slowest frequency / first phase's": min(row["inv_freq"]) / min(rope[0]["inv_freq"])}
            for row in rope]
    specs = {phase.name: phase.rope.model_dump(exclude_none=True) for phase in data.spec.phases}
    for row in rows:
        row["spec"] = json.dumps(specs[row["phase"]])
    parts.append(h.table(rows))
    if all(row["kind"] == "none" for row in rope):
        parts.append('<p class="meta">No phase changes RoPE: every phase uses the model\'s base.</p>')
    return "".join(parts)


def _loss_section(data: RunData, figures: Path) -> str:
    if not data.metrics:
        return h.missing("loss", data.missing.get("training", "no metrics"))
    path = draw_loss(data.metrics, data.spans, figures / "loss.png")
    parts = [_figure_or_missing(path, "training loss overall and per domain, phase boundaries dashed", "loss",
                                "no step recorded a loss")]
    rows = []
    for span in data.spans:
        mine = [record for record in data.metrics if record.get("phase") == span.name]
        row: dict[str, Any] = {"phase": span.name, "steps": len(mine)}
        if mine:
            row["first loss"], row["last loss"] = number(mine[0].get("loss")), number(mine[-1].get("loss"))
            for domain, (_, ys) in nested_series(mine, "loss_by_domain").items():
                row[f"{domain}: first → last"] = f"{ys[0]:.3f} → {ys[-1]:.3f}"
        rows.append(row)
    parts.append(h.table(rows))
    return "".join(parts)


def _eval_section(data: RunData, figures: Path) -> str:
    if not data.evals:
        return h.missing("evaluation", data.missing.get("evaluation", "no evaluations"))
    parts = ["<h3>held-out perplexity per domain at each phase end</h3>", h.table(eval_rows(data))]
    effects = phase_effects(data)
    if effects:
        parts += ["<h3>what each phase changed</h3><p>held-out loss per domain on the first phase's "
                  "held-out set, and passkey accuracy per context length, from one phase end to the "
                  "next (a lower loss and a higher accuracy are gains)</p>", h.table(effects)]
    path = draw_eval_perplexity(data.evals, data.spans, figures / "eval_perplexity.png")
    parts.append(_figure_or_missing(path, "held-out perplexity per domain", "eval_perplexity", "no perplexity"))
    passkey = passkey_rows(data)
    parts.append("<h3>passkey retrieval by context length</h3>")
    if passkey:
        parts.append(h.table(passkey))
        parts.append(_figure_or_missing(draw_passkey(data.evals, figures / "passkey.png"), "passkey retrieval",
                                        "passkey", "no passkey results"))
    else:
        parts.append(h.missing("passkey retrieval", "no phase end measured it (evals.passkey_trials 0, or no "
                                                    "tokenizer in the mixture)"))
    fim = fim_rows(data)
    parts.append("<h3>FIM exact match</h3>")
    if fim:
        parts.append(h.table(fim))
        parts.append(_figure_or_missing(draw_fim(data.evals, figures / "fim_exact_match.png"), "FIM exact match",
                                        "fim", "no FIM results with examples"))
    else:
        parts.append(h.missing("FIM exact match", "no phase end measured it (evals.fim_documents 0, or no "
                                                  "tokenizer in the mixture)"))
    return "".join(parts)


SECTIONS = [
    ("funnel", "Curation funnel", _funnel_section),
    ("composition", "Composition per phase", _composition_section),
    ("lr", "Learning rate", _lr_section),
    ("rope", "RoPE frequencies", _rope_section),
    ("loss", "Loss", _loss_section),
    ("evaluation", "Evaluation per phase", _eval_section),
]


def header(data: RunData) -> str:
    facts = []
    if data.recipe:
        facts.append(f"recipe <strong>{h.esc(data.recipe.get('recipe'))}</strong> at scale "
                     f"{h.esc(data.recipe.get('scale'))}, created {h.esc(data.recipe.get('created_at'))}")
    if data.summary:
        facts.append(f"{h.cell(data.summary.get('tokens'))} tokens in {h.cell(data.summary.get('steps'))} steps, "
                     f"{h.cell(data.summary.get('parameters'))} parameters on {h.esc(data.summary.get('device'))}, "
                     f"{h.cell(data.summary.get('wall_seconds'))} s")
    facts.append(f"run folder {h.esc(data.run_dir)}")
    notes = "".join(h.missing(what, why) for what, why in data.missing.items()
                    if what in ("recipe", "spec", "spec_checkpoint"))
    return f'<p class="meta">{"; ".join(facts)}</p>{notes}'


def render(data: RunData, figures: Path) -> str:
    """The report's HTML, drawing its figures into ``figures``."""
    sections = [(key, title, build(data, figures)) for key, title, build in SECTIONS]
    return h.page(f"midtrain run report: {data.name}", header(data), sections)


def write_run_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write ``output`` (default ``RUN/report.html``) and its PNGs (``report/`` beside it);
    returns the HTML file's path."""
    data = collect(run_dir)
    output = Path(output) if output is not None else Path(run_dir) / REPORT_FILE
    figures = output.parent / (FIGURES_DIR if output.name == REPORT_FILE else output.stem + "_figures")
    figures.mkdir(parents=True, exist_ok=True)
    for stale in figures.glob("*.png"):  # figures of an earlier report that this one may not draw
        stale.unlink()
    document = render(data, figures)
    from corpus.files import write_text_atomic

    write_text_atomic(output, document)
    return output


# ---------------------------------------------------------------------------------------------
# JSON for the dashboard


def thin(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` evenly spaced points, the last kept."""
    if len(xs) <= max_points:
        return xs, ys
    keep = np.unique(np.linspace(0, len(xs) - 1, max_points).round().astype(int))
    return [xs[i] for i in keep], [ys[i] for i in keep]


def run_data(run_dir: str | Path, max_points: int = 500, corpora: bool = True) -> dict[str, Any]:
    """A run's curves and tables as JSON: loss overall and per domain and LR against tokens
    (at most ``max_points`` each), phase spans, composition per phase, the phase-end
    evaluations, the final figures, and what is missing (``corpora`` as for :func:`collect`)."""
    data = collect(run_dir, corpora)
    loss = dict(zip(("tokens", "values"), thin(*series(data.metrics, "loss"), max_points)))
    lr = dict(zip(("tokens", "values"), thin(*series(data.metrics, "lr"), max_points)))
    by_domain = {name: dict(zip(("tokens", "values"), thin(xs, ys, max_points)))
                 for name, (xs, ys) in nested_series(data.metrics, "loss_by_domain").items()}
    return {
        "name": data.name,
        "recipe": data.recipe.get("recipe") if data.recipe else None,
        "phases": [{"name": span.name, "start": span.start, "end": span.end} for span in data.spans],
        "loss": loss, "lr": lr, "loss_by_domain": by_domain,
        "composition": composition(data.build) if data.build else [],
        "evaluation": {"perplexity": eval_rows(data), "passkey": passkey_rows(data), "fim": fim_rows(data)},
        "final": final_metrics(data),
        "has_report": (data.run_dir / REPORT_FILE).is_file(),
        "missing": data.missing,
    }
