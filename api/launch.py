"""From a launch request to what a job runs: the spec validated at the door, registered source
names replaced by their specs, every path confined to the data roots (``api.paths``) and made
absolute (a job's actor may run on another node, in another working directory).

A bad request raises ``ProblemError`` (422) or ``PathError`` naming the field in the request
body (``config.sources.1.path``), before any job is recorded.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from api.deps import ProblemError
from api.jobs import SUCCEEDED, Jobs
from api.paths import DataRoots, PathError
from api.state import Store

Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], data: Any, prefix: str, context: dict | None = None) -> Model:
    """``data`` as ``model``; the first error becomes a 422 problem naming its field under ``prefix``."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join([prefix, *(str(part) for part in first["loc"])])
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ProblemError(422, "Unprocessable Content", f"field {field}: {message}{more}", field=field) from None


def under(prefix: str, error: PathError) -> PathError:
    """The same error with its field named from the request body's root."""
    return PathError(f"{prefix}.{error.field}", error.path, error.message.removeprefix(f"{error.path!r} "))


def curation_request(store: Store, roots: DataRoots, config: dict[str, Any]) -> tuple[dict, str]:
    """A curation run's config with its sources resolved and paths confined; and its output."""
    from api.sources import resolve_sources
    from pipelines.config import DEFER_FILES, CurateConfig

    if isinstance(config.get("sources"), list):
        config = {**config, "sources": resolve_sources(store, config["sources"])}
    # the shape first, without reading a file; then the paths confined; then the files read
    parsed = validated(CurateConfig, config, "config", context={DEFER_FILES: True})
    try:
        parsed = roots.curate_config(parsed)
    except PathError as error:
        raise under("config", error) from None
    parsed = validated(CurateConfig, parsed.model_dump(mode="json"), "config")
    return parsed.model_dump(mode="json"), parsed.output


def mix_build_request(store: Store, roots: DataRoots, runs: Path, mixture: str, version: int | None,
                      output: str | None) -> tuple[dict, str]:
    """A saved mixture version with paths confined; and where its build goes."""
    from mixer.spec import MixtureSpec

    record = store.get_mixture(mixture, version)
    if record is None:
        which = f" version {version}" if version else ""
        raise ProblemError(404, "Not Found", f"no mixture {mixture!r}{which}", field="mixture")
    spec = roots.mixture(MixtureSpec.model_validate(record["spec"]))
    if output is None:
        target = runs / "mix-builds" / f"{record['name']}-v{record['version']}-{uuid.uuid4().hex[:8]}"
    else:
        target = roots.confine(output, "output")
    return spec.model_dump(mode="json"), str(target)


def training_request(jobs: Jobs, roots: DataRoots, spec: dict[str, Any], mix_build: str | None) -> tuple[dict, str]:
    """A train spec, on a finished mix build's output when one is named, paths confined; and
    its output."""
    from trainer.spec import TrainSpec

    if mix_build is not None:
        build = jobs.get(mix_build, "mix-build")
        if build is None:
            raise ProblemError(404, "Not Found", f"no mix build {mix_build!r}", field="mix_build")
        if build["status"] != SUCCEEDED:
            raise ProblemError(409, "Conflict", f"mix build {mix_build} is {build['status']}, not succeeded",
                               field="mix_build")
        spec = {**spec, "mixture": build["output"]}
    parsed = validated(TrainSpec, spec, "spec")
    try:
        parsed = roots.train_spec(parsed)
    except PathError as error:
        raise under("spec", error) from None
    return parsed.model_dump(mode="json"), parsed.output
