"""TensorBoard scalars for a training run, from the same records as ``metrics.jsonl`` and
``eval.jsonl`` (so the two never disagree), under ``OUTPUT/tensorboard``.

A resumed run opens the writer with ``purge_step`` at its first new step, which makes
TensorBoard drop the events an interrupted run wrote past the checkpoint, as ``open_jsonl``
does for the JSON lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NUMBERS = (int, float)


class Board:
    """Writes scalars when ``directory`` is given; does nothing otherwise."""

    def __init__(self, directory: Path | None, first_step: int) -> None:
        self.writer = None
        if directory is not None:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self.writer = SummaryWriter(log_dir=str(directory), purge_step=first_step)

    def _scalars(self, prefix: str, values: dict[str, Any], step: int) -> None:
        for name, value in values.items():
            if isinstance(value, dict):
                self._scalars(f"{prefix}/{name}", value, step)
            elif isinstance(value, NUMBERS) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def write(self, section: str, record: dict[str, Any]) -> None:
        """A record's numbers, nested dicts included, under ``section`` at the record's step:
        ``train`` for metrics.jsonl (loss, LR, gradient norm, throughput, losses by domain and
        source), ``eval`` for eval.jsonl (held-out losses and perplexities, passkey, FIM)."""
        if self.writer is not None:
            values = {key: value for key, value in record.items() if key not in ("step", "tokens_seen")}
            self._scalars(section, values, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
