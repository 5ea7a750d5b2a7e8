"""The build's composition figure, ``OUT/composition.png``: per phase, each source's target
against the tokens actually written, and the epochs it took over its documents; the title
gives the packing: method, sequences, real tokens of the budget, padding, tokens dropped and
documents truncated.

matplotlib's object API (``Figure``), not pyplot, so drawing needs no display and no global
state, as in pipelines/report.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from mixer.build import BuildReport

COMPOSITION_FILE = "composition.png"


def draw_composition(report: BuildReport, path: Path) -> Path:
    rows = [max(len(phase.sources), 1) for phase in report.phases]
    figure = Figure(figsize=(11, 0.4 * sum(rows) + 1.6 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), 2, squeeze=False, gridspec_kw={"height_ratios": rows, "width_ratios": [3, 1]})
    for (tokens, epochs), phase in zip(axes, report.phases):
        names = [source.name for source in phase.sources]
        y = np.arange(len(names))
        tokens.barh(y - 0.2, [s.tokens_target for s in phase.sources], height=0.4, label="target", color="#9ecae1")
        tokens.barh(y + 0.2, [s.tokens_written for s in phase.sources], height=0.4, label="written", color="#3182bd")
        tokens.set_yticks(y, names)
        tokens.invert_yaxis()
        tokens.xaxis.set_major_formatter(EngFormatter())
        efficiency = phase.tokens_real / phase.tokens_written if phase.tokens_written else 0.0
        tokens.set_title(f"{phase.name}, {phase.packing}: {phase.n_sequences:,} × {phase.seq_len}, "
                         f"{phase.tokens_real:,} real tokens of a {phase.tokens_budget:,} budget; "
                         f"{phase.padding:,} padding ({efficiency:.1%} efficient), {phase.tokens_dropped:,} dropped, "
                         f"{phase.documents_truncated:,} documents truncated", fontsize=9, loc="left")
        tokens.legend(fontsize=8, loc="lower right")
        epochs.barh(y, [s.epochs for s in phase.sources], color="#756bb1")
        epochs.set_yticks(y, [])
        epochs.invert_yaxis()
        epochs.set_title("epochs", fontsize=9)
    partial = path.with_name(path.name + ".partial")
    figure.savefig(partial, dpi=100, format="png")
    os.replace(partial, path)  # a reader never sees half a figure
    return path
