"""Loading of the YAML/JSON specs (curate config, mixture, train spec) with one-line errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class SpecError(ValueError):
    """A spec that cannot be read or does not validate; the message names file and field."""


def repeated(names: list[str]) -> list[str]:
    """Names that occur more than once, sorted: for the uniqueness checks of every spec."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


def validation_message(error: ValidationError) -> str:
    """The first validation problem as 'field a.b.0: message'."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(root)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"field {field}: {first['msg']}{more}"


def read_spec_data(path: str | Path) -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())  # JSON is a subset of YAML
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"{path}: cannot read: {error}") from error


def load_spec(path: str | Path, model: type[Model]) -> Model:
    data = read_spec_data(path)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"{path}: {validation_message(error)}") from error
