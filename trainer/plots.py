"""Figures of a training run and of a spec's LR schedule.

``plot_run(OUTPUT)`` reads the run's ``metrics.jsonl`` and ``eval.jsonl`` (as
:mod:`trainer.train` writes them; a key a record lacks is left out of its figure, a figure with
nothing to show is not drawn, and a line cut short by a run still writing is skipped) and writes
``OUTPUT/plots/*.png``:

- ``loss.png``: the training loss, overall and per domain, against tokens seen;
- ``lr.png``, ``grad_norm.png``; ``throughput.png``: tokens/s, and MFU when recorded;
- ``eval_perplexity.png``: held-out perplexity per domain over the evaluations, one panel per
  held-out set (``perplexity_by_domain`` when recorded, else ``exp`` of ``loss_by_domain``);
- ``passkey.png``: passkey accuracy against context length at each evaluation that has it
  (the phase ends);
- ``fim_exact_match.png``: FIM exact match at each evaluation that has it.

Plots against tokens mark the phase boundaries (the tokens seen when each phase's first step
began) and name the phases.

``plot_schedule(spec, path)`` draws the LR of every optimizer step of the planned run against
the tokens seen before the step (the value ``trainer.train`` will use), with the phases marked;
``schedule_curve`` gives the same numbers for a caller or a test.

matplotlib's object API (``Figure``), not pyplot, as in :mod:`pipelines.report`; every PNG is
written to a temporary name and renamed, so a reader never sees half a figure.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, LogFormatter

from trainer.schedule import lr_at
from trainer.spec import TrainSpec

PLOTS_DIR = "plots"
MAX_SCHEDULE_POINTS = 20_000  # steps drawn per phase at most (evenly spaced, first and last kept)


# ---------------------------------------------------------------------------------------------
# Reading and writing


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; [] when it does not exist. Lines that do not parse
    (the last one of a run still writing) or are not objects are skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    figure.savefig(partial, dpi=100, format="png")
    os.replace(partial, path)  # a reader never sees half a figure
    return path


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (absent, null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def series(records: list[dict], key: str, x_key: str = "tokens_seen") -> tuple[list[float], list[float]]:
    """(x, y) over the records where both are numbers."""
    pairs = [(number(record.get(x_key)), number(record.get(key))) for record in records]
    kept = [(x, y) for x, y in pairs if x is not None and y is not None]
    return [x for x, _ in kept], [y for _, y in kept]


def nested_series(records: list[dict], key: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per name of the ``key`` dicts (e.g. ``loss_by_domain``): (tokens seen, value)."""
    found: dict[str, tuple[list[float], list[float]]] = {}
    for record in records:
        x, values = number(record.get("tokens_seen")), record.get(key)
        if x is None or not isinstance(values, dict):
            continue
        for name, value in values.items():
            if number(value) is not None:
                xs, ys = found.setdefault(str(name), ([], []))
                xs.append(x)
                ys.append(float(value))
    return dict(sorted(found.items()))


# ---------------------------------------------------------------------------------------------
# Phases


@dataclass(frozen=True)
class PhaseSpan:
    name: str
    start: float  # tokens seen when its first step began
    end: float  # tokens seen after its last recorded step


def phase_spans(metrics: list[dict]) -> list[PhaseSpan]:
    """The phases in the order the metrics meet them. A phase starts where the previous one's
    last step ended (the first at 0: its first record is after one step)."""
    spans: list[PhaseSpan] = []
    for record in metrics:
        name, tokens = record.get("phase"), number(record.get("tokens_seen"))
        if name is None or tokens is None:
            continue
        if spans and spans[-1].name == str(name):
            spans[-1] = PhaseSpan(spans[-1].name, spans[-1].start, tokens)
        else:
            spans.append(PhaseSpan(str(name), spans[-1].end if spans else 0.0, tokens))
    return spans


def mark_phases(axes: Any, spans: list[PhaseSpan], label: bool = True) -> None:
    """A dashed line at every phase start after the first, and the phase names at the top."""
    for index, span in enumerate(spans):
        if index:
            axes.axvline(span.start, color="#888888", linestyle="--", linewidth=0.8)
        if label:  # drawn only inside the axes, and never moving the layout
            note = axes.annotate(span.name, (span.start, 1.0), xycoords=("data", "axes fraction"),
                                 xytext=(3, -3), textcoords="offset points", va="top", fontsize=8,
                                 color="#555555", annotation_clip=True)
            note.set_in_layout(False)


def tokens_axis(axes: Any) -> None:
    axes.set_xlim(left=0)
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes.set_xlabel("tokens seen")


# ---------------------------------------------------------------------------------------------
# The run's figures


def plot_run(output_dir: str | Path) -> list[Path]:
    """Draw the figures of the run in ``output_dir`` into ``output_dir/plots``; returns the
    paths written. Raises FileNotFoundError when there is no ``metrics.jsonl`` and no
    ``eval.jsonl``."""
    output = Path(output_dir)
    if not (output / "metrics.jsonl").exists() and not (output / "eval.jsonl").exists():
        raise FileNotFoundError(f"{output}: no metrics.jsonl or eval.jsonl to plot")
    metrics = read_jsonl(output / "metrics.jsonl")
    evals = read_jsonl(output / "eval.jsonl")
    spans = phase_spans(metrics) or phase_spans(evals)
    directory = output / PLOTS_DIR
    drawn = [
        draw_loss(metrics, spans, directory / "loss.png"),
        draw_scalar(metrics, spans, "lr", "learning rate", directory / "lr.png"),
        draw_scalar(metrics, spans, "grad_norm", "gradient norm (before clipping)", directory / "grad_norm.png"),
        draw_throughput(metrics, spans, directory / "throughput.png"),
        draw_eval_perplexity(evals, spans, directory / "eval_perplexity.png"),
        draw_passkey(evals, directory / "passkey.png"),
        draw_fim(evals, directory / "fim_exact_match.png"),
    ]
    return [path for path in drawn if path is not None]


def draw_loss(metrics: list[dict], spans: list[PhaseSpan], path: Path) -> Path | None:
    overall = series(metrics, "loss")
    by_domain = nested_series(metrics, "loss_by_domain")
    if not overall[0] and not by_domain:
        return None
    panels = 2 if by_domain else 1
    figure = Figure(figsize=(10, 3.4 * panels + 0.3), layout="constrained")
    axes_list = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    top = axes_list[0]
    top.plot(*overall, color="#4477aa", linewidth=1.0)
    top.set_title("training loss (nats per token)")
    if by_domain:
        bottom = axes_list[1]
        for name, (xs, ys) in by_domain.items():
            bottom.plot(xs, ys, linewidth=0.9, label=name)
        bottom.set_title("training loss per domain")
        bottom.legend(fontsize=8)
    for axes in axes_list:
        axes.set_ylabel("loss")
        mark_phases(axes, spans, label=axes is top)
        axes.grid(alpha=0.3)
    tokens_axis(axes_list[-1])
    return save(figure, path)


def draw_scalar(metrics: list[dict], spans: list[PhaseSpan], key: str, title: str, path: Path) -> Path | None:
    xs, ys = series(metrics, key)
    if not xs:
        return None
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    axes = figure.subplots()
    axes.plot(xs, ys, color="#4477aa", linewidth=1.0)
    axes.set_ylabel(key)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    mark_phases(axes, spans)
    tokens_axis(axes)
    return save(figure, path)


def draw_throughput(metrics: list[dict], spans: list[PhaseSpan], path: Path) -> Path | None:
    panels = [(key, label, series(metrics, key)) for key, label in
              (("tokens_per_s", "tokens/s"), ("mfu", "model FLOPs utilisation"))]
    panels = [panel for panel in panels if panel[2][0]]
    if not panels:
        return None
    figure = Figure(figsize=(10, 3.2 * len(panels) + 0.5), layout="constrained")
    axes_list = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for index, (axes, (key, label, (xs, ys))) in enumerate(zip(axes_list, panels)):
        axes.plot(xs, ys, color="#228833", linewidth=1.0)
        axes.set_ylabel(key)
        axes.set_title(label)
        axes.grid(alpha=0.3)
        mark_phases(axes, spans, label=index == 0)
    tokens_axis(axes_list[-1])
    return save(figure, path)


def eval_perplexities(evals: list[dict]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Per held-out set, per domain (and ``all``): (tokens seen, perplexity) over the evals."""
    sets: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for record in evals:
        x, results = number(record.get("tokens_seen")), record.get("eval")
        if x is None or not isinstance(results, dict):
            continue
        for held_out, result in results.items():
            if not isinstance(result, dict):
                continue
            values: dict[str, float] = {}
            overall = number(result.get("perplexity"))
            if overall is None and number(result.get("loss")) is not None:
                overall = math.exp(min(result["loss"], 700.0))
            if overall is not None:
                values["all"] = overall
            by_domain = result.get("perplexity_by_domain")
            if isinstance(by_domain, dict):
                values.update({str(k): float(v) for k, v in by_domain.items() if number(v) is not None})
            elif isinstance(result.get("loss_by_domain"), dict):
                values.update({str(k): math.exp(min(v, 700.0)) for k, v in result["loss_by_domain"].items()
                               if number(v) is not None})
            for name, value in values.items():
                xs, ys = sets.setdefault(str(held_out), {}).setdefault(name, ([], []))
                xs.append(x)
                ys.append(value)
    return sets


def draw_eval_perplexity(evals: list[dict], spans: list[PhaseSpan], path: Path) -> Path | None:
    sets = eval_perplexities(evals)
    if not sets:
        return None
    figure = Figure(figsize=(10, 3.2 * len(sets) + 0.5), layout="constrained")
    axes_list = figure.subplots(len(sets), 1, sharex=True, squeeze=False)[:, 0]
    for index, (axes, (held_out, lines)) in enumerate(zip(axes_list, sets.items())):
        for name, (xs, ys) in sorted(lines.items(), key=lambda item: item[0] != "all"):
            style = {"color": "black", "linewidth": 1.6} if name == "all" else {"linewidth": 1.0}
            axes.plot(xs, ys, marker="o", markersize=3, label=name, **style)
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))  # 60, not 6 x 10^1
        axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))
        axes.set_ylabel("perplexity")
        axes.set_title(f"held-out perplexity: {held_out}'s held-out batches")
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3, which="both")
        mark_phases(axes, spans, label=index == 0)
    tokens_axis(axes_list[-1])
    return save(figure, path)


def eval_label(record: dict) -> str:
    parts = [str(record["phase"])] if "phase" in record else []
    if number(record.get("step")) is not None:
        parts.append(f"step {int(record['step'])}")
    return ", ".join(parts) or "eval"


def passkey_points(evals: list[dict]) -> list[tuple[str, list[int], list[float]]]:
    """Per evaluation with passkey results: (label, context lengths ascending, accuracies)."""
    found = []
    for record in evals:
        results = record.get("passkey")
        if not isinstance(results, dict):
            continue
        pairs = []
        for length, accuracy in results.items():
            try:
                pairs.append((int(length), number(accuracy)))
            except (TypeError, ValueError):
                continue
        pairs = sorted((length, accuracy) for length, accuracy in pairs if accuracy is not None)
        if pairs:
            found.append((eval_label(record), [p[0] for p in pairs], [p[1] for p in pairs]))
    return found


def draw_passkey(evals: list[dict], path: Path) -> Path | None:
    points = passkey_points(evals)
    if not points:
        return None
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    for label, lengths, accuracies in points:
        axes.plot(lengths, accuracies, marker="o", label=label)
    lengths = sorted({length for _, found, _ in points for length in found})
    axes.set_xscale("log", base=2)
    axes.set_xticks(lengths, [str(length) for length in lengths])
    axes.minorticks_off()
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlabel("context length (tokens)")
    axes.set_ylabel("accuracy")
    axes.set_title("passkey retrieval")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return save(figure, path)


def fim_points(evals: list[dict]) -> list[tuple[str, float, int | None]]:
    """Per evaluation with FIM results: (label, exact match, examples)."""
    found = []
    for record in evals:
        result = record.get("fim_exact_match")
        if isinstance(result, dict) and number(result.get("exact_match")) is not None:
            n = number(result.get("n"))
            found.append((eval_label(record), float(result["exact_match"]), int(n) if n is not None else None))
    return found


def draw_fim(evals: list[dict], path: Path) -> Path | None:
    points = fim_points(evals)
    if not points:
        return None
    figure = Figure(figsize=(max(5, 1.2 * len(points) + 2), 4), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(points))
    bars = axes.bar(positions, [rate for _, rate, _ in points], color="#aa3377")
    axes.bar_label(bars, [f"{rate:.1%}" + (f" of {n}" if n is not None else "") for _, rate, n in points], fontsize=8)
    axes.set_xticks(positions, [label for label, _, _ in points], rotation=20, ha="right")
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("exact match")
    axes.set_title("FIM exact match (PSM, greedy)")
    return save(figure, path)


# ---------------------------------------------------------------------------------------------
# The spec's schedule


@dataclass(frozen=True)
class SchedulePhase:
    name: str
    first_token: int
    tokens: int
    steps: int
    tokens_per_step: int
    rewarm: bool
    lr_start: float  # at its first step
    lr_end: float  # at its last step


@dataclass(frozen=True)
class ScheduleCurve:
    tokens: np.ndarray  # float64: tokens seen before each drawn step
    lr: np.ndarray  # float64: the LR of that step, lr_at(tokens, total, ...)
    total_tokens: int
    phases: list[SchedulePhase]


def schedule_curve(spec: TrainSpec, planned: list | None = None, max_points: int = MAX_SCHEDULE_POINTS) -> ScheduleCurve:
    """The LR of every optimizer step (at most ``max_points`` per phase, evenly spaced, first
    and last kept) of ``planned`` (``trainer.train.plan_phases(spec)`` when None, which needs the
    spec's built mixture), as ``trainer.train`` computes it."""
    if planned is None:
        from trainer.train import plan_phases  # reads the built mixture

        planned = plan_phases(spec)
    total = sum(phase.tokens for phase in planned)
    peak = spec.optimizer.lr
    xs: list[np.ndarray] = []
    lrs: list[np.ndarray] = []
    phases = []
    for phase in planned:
        per_step = phase.tokens_per_step
        rewarm_from = phase.first_token if phase.spec.rewarm else None

        def lr(tokens: int) -> float:
            return lr_at(tokens, total, spec.schedule, peak, rewarm_from)

        steps = np.unique(np.linspace(0, phase.steps - 1, min(phase.steps, max_points)).round().astype(np.int64))
        tokens = phase.first_token + steps * per_step
        xs.append(tokens.astype(np.float64))
        lrs.append(np.asarray([lr(int(t)) for t in tokens.tolist()], dtype=np.float64))
        last = phase.first_token + (phase.steps - 1) * per_step
        phases.append(SchedulePhase(phase.spec.name, phase.first_token, phase.tokens, phase.steps, per_step,
                                    phase.spec.rewarm, lr(phase.first_token), lr(last)))
    return ScheduleCurve(np.concatenate(xs), np.concatenate(lrs), total, phases)


def schedule_figure(spec: TrainSpec, curve: ScheduleCurve) -> Figure:
    """The curve as a figure; its first line is the curve itself."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots()
    axes.plot(curve.tokens, curve.lr, color="#4477aa", linewidth=1.2)
    spans = [PhaseSpan(phase.name, phase.first_token, phase.first_token + phase.tokens) for phase in curve.phases]
    mark_phases(axes, spans)
    axes.set_ylim(0, max(float(curve.lr.max(initial=0.0)), spec.optimizer.lr) * 1.12)
    axes.set_ylabel("learning rate")
    axes.grid(alpha=0.3)
    tokens_axis(axes)
    axes.set_title(f"{spec.name}: {spec.schedule.kind} schedule, peak {spec.optimizer.lr:g}, "
                   f"warmup {spec.schedule.warmup_tokens:,} tokens, {curve.total_tokens:,} tokens in "
                   f"{len(curve.phases)} phases", fontsize=10)
    return figure


def plot_schedule(spec: TrainSpec, path: str | Path, planned: list | None = None) -> Path:
    """Draw the spec's LR over the whole run to ``path`` (PNG); ``planned`` as for
    :func:`schedule_curve`."""
    curve = schedule_curve(spec, planned)
    return save(schedule_figure(spec, curve), Path(path))


def schedule_lines(curve: ScheduleCurve) -> list[str]:
    """One line per phase: its tokens and steps, and the LR at its first and last step."""
    return [
        f"{phase.name}: tokens {phase.first_token:,}..{phase.first_token + phase.tokens:,} "
        f"({phase.tokens:,} in {phase.steps:,} steps of {phase.tokens_per_step:,}), "
        f"lr {phase.lr_start:.3g} -> {phase.lr_end:.3g}" + (" (rewarm)" if phase.rewarm else "")
        for phase in curve.phases
    ]
