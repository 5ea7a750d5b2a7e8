"""Path confinement: every filesystem path a request names must lie under a data root.

The REST API reads and writes files on the server's disk on a client's behalf (sources to
curate, outputs to write, tokenizers, models, mixtures, checkpoints). ``DataRoots`` holds the
folders it may touch (``$MIDTRAIN_DATA_ROOTS``, ``os.pathsep``-separated; unset: the working
directory), and ``confine`` maps a path from a request to a resolved absolute path under one of
them, or raises ``PathError`` naming the field:

- a ``..`` component is refused outright, before anything is resolved;
- a relative path is relative to the first root;
- symlinks are resolved (also in existing parents of a path that does not exist yet), and the
  result must lie under a root, so a link inside a root cannot point outside it;
- a symlink loop, or a path the OS cannot resolve, is refused.

``curate_config``, ``mixture`` and ``train_spec`` return a copy of a validated spec with every
path field confined and replaced by its resolved absolute path. A curate source's ``path`` is a
glob: the pattern is confined, and so is every file or folder it matches now (a glob's ``**``
follows symlinked folders). Files inside a matched folder are not walked here.

Confinement checks paths at the time of the call; it is not a sandbox against someone who can
change the tree under a root between the check and the use.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from api.deps import ProblemError
from mixer.spec import MixtureSpec
from pipelines.config import CurateConfig
from trainer.spec import TrainSpec

ROOTS_ENV = "MIDTRAIN_DATA_ROOTS"


class PathError(ValueError):
    """A path outside the data roots (or not resolvable); ``field`` is its dotted path in the
    spec (``sources.1.path``), ``message`` says why, and ``str()`` names both on one line."""

    def __init__(self, field: str, path: str | Path, reason: str) -> None:
        self.field = field
        self.path = str(path)
        self.message = f"{self.path!r} {reason}"
        super().__init__(f"field {field}: {self.message}")


@dataclass(frozen=True)
class DataRoots:
    """The folders request paths may name, each resolved and absolute."""

    roots: tuple[Path, ...]

    def __post_init__(self) -> None:
        if not self.roots:
            raise ValueError("DataRoots needs at least one root")
        object.__setattr__(self, "roots", tuple(Path(root).resolve() for root in self.roots))

    @classmethod
    def from_env(cls) -> "DataRoots":
        """``$MIDTRAIN_DATA_ROOTS`` (relative entries are relative to the working directory);
        unset or empty: the working directory alone."""
        value = os.environ.get(ROOTS_ENV, "")
        entries = [entry for entry in value.split(os.pathsep) if entry.strip()]
        return cls(tuple(Path(entry) for entry in entries) or (Path.cwd(),))

    def confine(self, path: str | Path, field: str) -> Path:
        """``path`` resolved and absolute, if it lies under a root; else ``PathError``."""
        text = str(path)
        if not text:
            raise PathError(field, text, "is empty")
        if "\x00" in text:
            raise PathError(field, text.replace("\x00", "\\0"), "contains a NUL character")
        candidate = Path(text)
        if ".." in candidate.parts:
            raise PathError(field, text, "contains '..'")
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        try:
            resolved = candidate.resolve(strict=False)
        except (RuntimeError, OSError, ValueError) as error:  # 3.11: RuntimeError on a loop
            raise PathError(field, text, f"cannot be resolved ({error})") from error
        if not any(resolved.is_relative_to(root) for root in self.roots):
            shown = text if str(resolved) == text else f"{text}' -> '{resolved}"
            raise PathError(field, shown, f"is outside the data roots ({self.describe()})")
        return resolved

    def confine_glob(self, pattern: str, field: str) -> Path:
        """A glob pattern confined as a path, and every path it matches now confined too."""
        confined = self.confine(pattern, field)
        if glob.has_magic(str(confined)):
            for match in glob.iglob(str(confined), recursive=True):
                self.confine(match, field)
        return confined

    def describe(self) -> str:
        return os.pathsep.join(str(root) for root in self.roots)

    # -- whole specs ------------------------------------------------------------------------

    def curate_config(self, config: CurateConfig) -> CurateConfig:
        """A copy of ``config`` with every path confined: output, sources' globs, the language
        model, quality and domain classifiers, decontamination sets, the tokenizer, and the
        fuzzy dedup reference folders."""
        sources = [
            source.model_copy(update={"path": str(self.confine_glob(source.path, f"sources.{n}.path"))})
            for n, source in enumerate(config.sources)
        ]
        language = config.language
        if language.model is not None:
            language = language.model_copy(update={"model": self._str(language.model, "language.model")})
        quality = config.quality.model_copy(update={"classifiers": {
            domain: self._str(path, f"quality.classifiers.{domain}")
            for domain, path in config.quality.classifiers.items()
        }})
        domain = config.domain
        if domain.classifier is not None:
            domain = domain.model_copy(update={"classifier": self._str(domain.classifier, "domain.classifier")})
        decontamination = config.decontamination.model_copy(update={"sets": [
            spec.model_copy(update={"path": self._str(spec.path, f"decontamination.sets.{n}.path")})
            for n, spec in enumerate(config.decontamination.sets)
        ]})
        fuzzy = config.fuzzy_dedup.model_copy(update={"reference": [
            self._str(folder, f"fuzzy_dedup.reference.{n}") for n, folder in enumerate(config.fuzzy_dedup.reference)
        ]})
        tokenizer = None if config.tokenizer is None else self._str(config.tokenizer, "tokenizer")
        return config.model_copy(update={
            "output": self._str(config.output, "output"),
            "sources": sources,
            "language": language,
            "quality": quality,
            "domain": domain,
            "decontamination": decontamination,
            "fuzzy_dedup": fuzzy,
            "tokenizer": tokenizer,
        })

    def mixture(self, spec: MixtureSpec) -> MixtureSpec:
        """A copy of ``spec`` with its corpus folders and tokenizer confined."""
        return spec.model_copy(update={
            "corpus": [self._str(folder, f"corpus.{n}") for n, folder in enumerate(spec.corpus)],
            "tokenizer": self._str(spec.tokenizer, "tokenizer"),
        })

    def train_spec(self, spec: TrainSpec) -> TrainSpec:
        """A copy of ``spec`` with its mixture, output and ``init_from`` confined."""
        return spec.model_copy(update={
            "mixture": self._str(spec.mixture, "mixture"),
            "output": self._str(spec.output, "output"),
            "init_from": None if spec.init_from is None else self._str(spec.init_from, "init_from"),
        })

    def _str(self, path: str | Path, field: str) -> str:
        return str(self.confine(path, field))


def curate_config(config: CurateConfig, roots: DataRoots | None = None) -> CurateConfig:
    """``DataRoots.curate_config`` under ``roots`` (default: ``DataRoots.from_env()``)."""
    return (roots or DataRoots.from_env()).curate_config(config)


def mixture(spec: MixtureSpec, roots: DataRoots | None = None) -> MixtureSpec:
    """``DataRoots.mixture`` under ``roots`` (default: ``DataRoots.from_env()``)."""
    return (roots or DataRoots.from_env()).mixture(spec)


def train_spec(spec: TrainSpec, roots: DataRoots | None = None) -> TrainSpec:
    """``DataRoots.train_spec`` under ``roots`` (default: ``DataRoots.from_env()``)."""
    return (roots or DataRoots.from_env()).train_spec(spec)


async def get_roots(request: Request) -> DataRoots:
    """FastAPI dependency: the roots ``create_app`` configured (async: no thread hop)."""
    return request.app.state.roots


def path_problem(error: PathError) -> ProblemError:
    """The 422 problem for ``error``, naming its field: ``raise path_problem(error) from error``."""
    return ProblemError(422, "Unprocessable Entity", str(error), field=error.field)


__all__ = ["ROOTS_ENV", "DataRoots", "PathError", "curate_config", "get_roots", "mixture", "path_problem", "train_spec"]
