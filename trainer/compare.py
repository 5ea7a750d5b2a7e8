"""Runs side by side: ``midtrain compare RUN_A RUN_B ... --output compare.html``.

One self-contained page (trainer.report_html) for two or more run folders, each read as the
run report reads it (trainer.report.collect, so a run without recipe.json or a mix build still
compares on what it has): a summary table of final figures (loss overall and per domain over
the last steps, held-out perplexity, passkey accuracy and FIM exact match at the last phase
end, schedule and RoPE kinds), the LR curves overlaid against tokens, the losses overall and per
domain overlaid, each run's phase boundaries dashed in its colour, the evaluation tables per
phase end, and each run's composition per phase. The PNGs are written beside the page, in
``<output stem>_figures/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from trainer import report_html as h
from trainer.plots import nested_series, save, series, tokens_axis
from trainer.report import (
    EXTRA_COLORS,
    RunData,
    collect,
    composition,
    draw_composition,
    eval_rows,
    fim_rows,
    final_metrics,
    passkey_rows,
)

RUN_COLORS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", *EXTRA_COLORS]


def run_color(index: int) -> str:
    return RUN_COLORS[index % len(RUN_COLORS)]


def labels_of(runs: list[RunData]) -> list[str]:
    """Each run's name, made unique (two folders of one name in different places)."""
    labels, seen = [], {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        labels.append(run.name if seen[run.name] == 1 else f"{run.name} ({seen[run.name]})")
    return labels


def _phase_lines(axes: Any, run: RunData, color: str) -> None:
    for span in run.spans[1:]:
        axes.axvline(span.start, color=color, linestyle="--", linewidth=0.7, alpha=0.7)


def draw_overlay(runs: list[RunData], labels: list[str], key: str, title: str, path: Path) -> Path | None:
    """One scalar (``lr``, ``loss``) of every run against tokens, phase starts dashed."""
    if not any(series(run.metrics, key)[0] for run in runs):
        return None
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots()
    for index, (run, label) in enumerate(zip(runs, labels)):
        xs, ys = series(run.metrics, key)
        if xs:
            axes.plot(xs, ys, color=run_color(index), linewidth=1.1, label=label)
            _phase_lines(axes, run, run_color(index))
    axes.set_title(title)
    axes.set_ylabel(key)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    tokens_axis(axes)
    return save(figure, path)


def draw_domain_overlay(runs: list[RunData], labels: list[str], path: Path) -> Path | None:
    """One panel per domain, every run's loss in it."""
    curves = [nested_series(run.metrics, "loss_by_domain") for run in runs]
    domains = sorted({domain for found in curves for domain in found})
    if not domains:
        return None
    figure = Figure(figsize=(10, 2.8 * len(domains) + 0.6), layout="constrained")
    axes_list = figure.subplots(len(domains), 1, sharex=True, squeeze=False)[:, 0]
    for axes, domain in zip(axes_list, domains):
        for index, (run, found, label) in enumerate(zip(runs, curves, labels)):
            if domain in found:
                axes.plot(*found[domain], color=run_color(index), linewidth=1.0, label=label)
                _phase_lines(axes, run, run_color(index))
        axes.set_title(f"training loss: {domain}")
        axes.set_ylabel("loss")
        axes.grid(alpha=0.3)
    axes_list[0].legend(fontsize=8)
    tokens_axis(axes_list[-1])
    return save(figure, path)


def _labelled(rows: list[dict], label: str) -> list[dict]:
    return [{"run": label, **row} for row in rows]


def render(runs: list[RunData], figures: Path) -> str:
    labels = labels_of(runs)
    summary = [{**final_metrics(run), "run": label} for run, label in zip(runs, labels)]
    columns = list(dict.fromkeys(key for row in summary for key in row))
    sections: list[tuple[str, str, str]] = [("summary", "Final figures", h.table(summary, columns))]

    def figure_or_note(path: Path | None, caption: str, name: str) -> str:
        return h.figure(path, caption, name) if path is not None else h.missing(caption, "no run recorded it")

    sections.append(("lr", "Learning rate", figure_or_note(
        draw_overlay(runs, labels, "lr", "learning rate against tokens; dashed: each run's phase starts",
                     figures / "lr.png"), "learning rate, runs overlaid", "lr")))
    sections.append(("loss", "Loss", figure_or_note(
        draw_overlay(runs, labels, "loss", "training loss against tokens", figures / "loss.png"),
        "training loss, runs overlaid", "loss") + figure_or_note(
        draw_domain_overlay(runs, labels, figures / "loss_by_domain.png"), "training loss per domain, runs overlaid",
        "loss_by_domain")))

    perplexity = [row for run, label in zip(runs, labels) for row in _labelled(eval_rows(run), label)]
    passkey = [row for run, label in zip(runs, labels) for row in _labelled(passkey_rows(run), label)]
    fim = [row for run, label in zip(runs, labels) for row in _labelled(fim_rows(run), label)]
    evaluation = ["<h3>held-out perplexity per domain at each phase end</h3>", h.table(perplexity),
                  "<h3>passkey retrieval by context length</h3>", h.table(passkey),
                  "<h3>FIM exact match</h3>", h.table(fim)]
    for run, label in zip(runs, labels):
        if "evaluation" in run.missing:
            evaluation.append(h.missing(f"{label}: evaluation", run.missing["evaluation"]))
    sections.append(("evaluation", "Evaluation per phase", "".join(evaluation)))

    parts = []
    for index, (run, label) in enumerate(zip(runs, labels)):
        parts.append(f"<h3>{h.esc(label)}</h3>")
        if run.build is None:
            parts.append(h.missing(f"{label}: composition", run.missing.get("mixture", "no mix build")))
            continue
        path = draw_composition(composition(run.build), figures / f"composition_{index}.png", title=label)
        parts.append(figure_or_note(path, f"{label}: target and realised share by domain", f"composition_{index}"))
    sections.append(("composition", "Composition per run", "".join(parts)))

    folders = "".join(f"<li>{h.esc(label)}: {h.esc(run.run_dir)}</li>" for run, label in zip(runs, labels))
    return h.page(f"midtrain comparison: {' vs '.join(labels)}", f'<ul class="meta">{folders}</ul>', sections)


def write_comparison(run_dirs: list[str | Path], output: str | Path = "compare.html") -> Path:
    """Read every run, write ``output`` and its figures; returns ``output``."""
    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two run folders")
    runs = [collect(run_dir) for run_dir in run_dirs]
    output = Path(output)
    figures = output.parent / f"{output.stem}_figures"
    figures.mkdir(parents=True, exist_ok=True)
    for stale in figures.glob("*.png"):
        stale.unlink()
    document = render(runs, figures)
    from corpus.files import write_text_atomic

    write_text_atomic(output, document)
    return output
