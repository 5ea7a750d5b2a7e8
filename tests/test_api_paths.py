"""Path confinement to the data roots (api/paths.py): escapes refused, every spec path field
confined and made absolute."""

from __future__ import annotations

import os
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from api.paths import ROOTS_ENV, DataRoots, PathError
from filters.decontam import EvalSet
from mixer.spec import MixtureSpec, load_mixture
from pipelines.config import CurateConfig, load_curate_config
from trainer.spec import TrainSpec, load_train_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture()
def root(tmp_path) -> Path:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.jsonl").write_text('{"text": "x"}\n')
    return root


@pytest.fixture()
def outside(tmp_path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return outside


@pytest.fixture()
def roots(root) -> DataRoots:
    return DataRoots((root,))


def refused(roots: DataRoots, path: str | Path, field: str = "some.field") -> PathError:
    with pytest.raises(PathError) as caught:
        roots.confine(path, field)
    return caught.value


def test_relative_paths_are_relative_to_the_first_root(roots, root, tmp_path):
    assert roots.confine("data/a.jsonl", "f") == root / "data" / "a.jsonl"
    second = tmp_path / "second"
    second.mkdir()
    both = DataRoots((root, second))
    assert both.confine("x", "f") == root / "x"
    assert both.confine(second / "y", "f") == second / "y"  # an absolute path in any root is fine
    assert both.confine(root, "f") == root  # a root itself


def test_a_not_yet_existing_output_inside_is_confined(roots, root):
    assert roots.confine("runs/new/curated", "output") == root / "runs" / "new" / "curated"
    assert roots.confine(root / "data" / "later" / "out", "output") == root / "data" / "later" / "out"


def test_dotdot_is_refused_even_when_it_stays_inside(roots, root):
    for path in ["../outside", "data/../data/a.jsonl", str(root / "data" / ".." / "data"), ".."]:
        error = refused(roots, path, "sources.0.path")
        assert error.field == "sources.0.path" and "'..'" in str(error)


def test_absolute_path_outside_is_refused_and_the_message_names_field_and_path(roots, outside):
    error = refused(roots, outside / "secret.txt", "sources.1.path")
    assert error.field == "sources.1.path"
    message = str(error)
    assert "\n" not in message and message.startswith("field sources.1.path: ")
    assert str(outside / "secret.txt") in message and "outside the data roots" in message
    assert refused(roots, "/etc/passwd").field == "some.field"


def test_a_sibling_with_the_root_as_prefix_is_outside(roots, root):
    sibling = root.parent / (root.name + "-evil")
    sibling.mkdir()
    refused(roots, sibling / "x")


def test_file_symlink_escaping_is_refused(roots, root, outside):
    (root / "data" / "link.txt").symlink_to(outside / "secret.txt")
    error = refused(roots, "data/link.txt", "tokenizer")
    assert error.field == "tokenizer" and str(outside / "secret.txt") in str(error)


def test_directory_symlink_escaping_is_refused_also_below_it(roots, root, outside):
    (root / "data" / "escape").symlink_to(outside, target_is_directory=True)
    refused(roots, "data/escape")
    refused(roots, "data/escape/secret.txt")
    refused(roots, "data/escape/not-yet/output")  # a path that does not exist, below the link


def test_symlinks_inside_the_roots_are_followed(roots, root):
    (root / "alias").symlink_to(root / "data", target_is_directory=True)
    assert roots.confine("alias/a.jsonl", "f") == root / "data" / "a.jsonl"


def test_a_root_that_is_a_symlink_is_resolved(tmp_path, root):
    link = tmp_path / "root-link"
    link.symlink_to(root, target_is_directory=True)
    linked = DataRoots((link,))
    assert linked.roots == (root,)
    assert linked.confine(link / "data" / "a.jsonl", "f") == root / "data" / "a.jsonl"


def test_a_symlink_loop_is_a_path_error(roots, root):
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    error = refused(roots, "loop-a/file", "output")
    assert error.field == "output" and "cannot be resolved" in str(error)


def test_nul_and_empty_paths_are_refused(roots):
    refused(roots, "data/a\x00b")
    refused(roots, "")


def test_glob_matches_are_confined_too(roots, root, outside):
    assert roots.confine_glob("data/*.jsonl", "sources.0.path") == root / "data" / "*.jsonl"
    (root / "data" / "b.jsonl").symlink_to(outside / "secret.txt")
    assert refused_glob(roots, "data/*.jsonl").field == "sources.0.path"


def refused_glob(roots: DataRoots, pattern: str) -> PathError:
    with pytest.raises(PathError) as caught:
        roots.confine_glob(pattern, "sources.0.path")
    return caught.value


def test_from_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ROOTS_ENV, raising=False)
    assert DataRoots.from_env().roots == (tmp_path.resolve(),)
    (tmp_path / "a").mkdir()
    monkeypatch.setenv(ROOTS_ENV, os.pathsep.join(["a", str(tmp_path / "b"), ""]))
    assert DataRoots.from_env().roots == (tmp_path.resolve() / "a", tmp_path.resolve() / "b")


# -- whole specs ---------------------------------------------------------------------------


def curate_example() -> CurateConfig:
    return load_curate_config(EXAMPLES / "curate.yaml")


def eval_set(path: str) -> EvalSet:
    return EvalSet.model_construct(name="evals", path=path, fields=["question"], id_field=None)


# Each setter puts a path into one field of the example config, skipping the validators that
# want the file to exist (they run before confinement in the API too).
CURATE_FIELDS = {
    "output": lambda c, p: c.model_copy(update={"output": p}),
    "sources.1.path": lambda c, p: c.model_copy(update={"sources": [
        c.sources[0], c.sources[1].model_copy(update={"path": p}), *c.sources[2:]]}),
    "language.model": lambda c, p: c.model_copy(update={"language": c.language.model_copy(update={"model": p})}),
    "quality.classifiers.web": lambda c, p: c.model_copy(
        update={"quality": c.quality.model_copy(update={"classifiers": {"web": p}})}),
    "domain.classifier": lambda c, p: c.model_copy(
        update={"domain": c.domain.model_copy(update={"classifier": p})}),
    "decontamination.sets.0.path": lambda c, p: c.model_copy(
        update={"decontamination": c.decontamination.model_copy(update={"sets": [eval_set(p)]})}),
    "tokenizer": lambda c, p: c.model_copy(update={"tokenizer": p}),
    "fuzzy_dedup.reference.0": lambda c, p: c.model_copy(
        update={"fuzzy_dedup": c.fuzzy_dedup.model_copy(update={"reference": [p]})}),
}


def curate_value(config: CurateConfig, field: str) -> str:
    return {
        "output": config.output,
        "sources.1.path": config.sources[1].path,
        "language.model": config.language.model,
        "quality.classifiers.web": config.quality.classifiers.get("web"),
        "domain.classifier": config.domain.classifier,
        "decontamination.sets.0.path": config.decontamination.sets[0].path if config.decontamination.sets else None,
        "tokenizer": config.tokenizer,
        "fuzzy_dedup.reference.0": (config.fuzzy_dedup.reference or [None])[0],
    }[field]


@pytest.mark.parametrize("field", sorted(CURATE_FIELDS))
def test_every_curate_path_field_is_confined(roots, root, outside, field):
    config = CURATE_FIELDS[field](curate_example(), "models/thing")
    confined = roots.curate_config(config)
    assert curate_value(confined, field) == str(root / "models" / "thing")
    assert curate_value(config, field) == "models/thing"  # a copy: the input is unchanged
    with pytest.raises(PathError) as caught:
        roots.curate_config(CURATE_FIELDS[field](curate_example(), str(outside / "thing")))
    assert caught.value.field == field


def test_the_curate_example_is_confined_whole(roots, root):
    config = roots.curate_config(curate_example())
    assert config.output == str(root / "runs" / "demo" / "curated")
    assert [source.path for source in config.sources] == [
        str(root / source.path) for source in curate_example().sources]
    assert config.model_dump(exclude={"output", "sources"}) == curate_example().model_dump(exclude={"output", "sources"})


MIXTURE_FIELDS = {
    "corpus.0": lambda s, p: s.model_copy(update={"corpus": [p, "other"]}),
    "corpus.1": lambda s, p: s.model_copy(update={"corpus": ["other", p]}),
    "tokenizer": lambda s, p: s.model_copy(update={"tokenizer": p}),
}


@pytest.mark.parametrize("field", sorted(MIXTURE_FIELDS))
def test_every_mixture_path_field_is_confined(roots, root, outside, field):
    example = load_mixture(EXAMPLES / "mixture.yaml")
    confined = roots.mixture(example)
    assert confined.corpus == [str(root / "runs" / "demo" / "curated")]
    assert confined.tokenizer == str(root / "runs" / "demo" / "tokenizer.json")
    assert confined.phases == example.phases
    with pytest.raises(PathError) as caught:
        roots.mixture(MIXTURE_FIELDS[field](example, str(outside)))
    assert caught.value.field == field


TRAIN_FIELDS = {
    "mixture": lambda s, p: s.model_copy(update={"mixture": p}),
    "output": lambda s, p: s.model_copy(update={"output": p}),
    "init_from": lambda s, p: s.model_copy(update={"init_from": p}),
}


@pytest.mark.parametrize("field", sorted(TRAIN_FIELDS))
def test_every_train_path_field_is_confined(roots, root, outside, field):
    example = load_train_spec(EXAMPLES / "train.yaml")
    confined = roots.train_spec(TRAIN_FIELDS["init_from"](example, "runs/base/checkpoints"))
    assert (confined.mixture, confined.output, confined.init_from) == (
        str(root / "runs/demo/mix"), str(root / "runs/demo/train"), str(root / "runs/base/checkpoints"))
    assert roots.train_spec(example).init_from is None
    with pytest.raises(PathError) as caught:
        roots.train_spec(TRAIN_FIELDS[field](example, str(outside / "x")))
    assert caught.value.field == field


# Every str field of the three specs, by dotted name ("*" for list items and dict values),
# that is not a path. A new str field fails this test until it is confined or listed here.
NOT_PATHS = {
    CurateConfig: {
        "sources.*.name", "sources.*.format", "sources.*.kind", "sources.*.text_field", "sources.*.id_field",
        "sources.*.include.*", "sources.*.exclude.*", "sources.*.vendored_dirs.*", "language.allowed.*",
        "decontamination.sets.*.name", "decontamination.sets.*.fields.*", "decontamination.sets.*.id_field",
    },
    MixtureSpec: {
        "name", "phases.*.name", "phases.*.sources.*.name", "phases.*.sources.*.select.domain.*",
        "phases.*.sources.*.select.source.*", "phases.*.sources.*.select.lang.*",
        "phases.*.sources.*.select.tags_any.*", "phases.*.sources.*.select.tags_none.*",
        "phases.*.sources.*.fim.level", "phases.*.weighting.scheme", "phases.*.replay.phase",
        "phases.*.packing.method",
    },
    TrainSpec: {
        "name", "device", "optimizer.kind", "optimizer.implementation", "schedule.kind", "schedule.decay_shape",
        "schedule.mode", "schedule.anneal_shape", "phases.*.name", "phases.*.mixture_phase", "phases.*.rope.kind",
        "data_parallel",
    },
}
PATHS = {
    CurateConfig: {"output", "sources.*.path", "language.model", "quality.classifiers.*", "domain.classifier",
                   "decontamination.sets.*.path", "tokenizer", "fuzzy_dedup.reference.*"},
    MixtureSpec: {"corpus.*", "tokenizer"},
    TrainSpec: {"mixture", "output", "init_from"},
}


def string_fields(annotation: object, prefix: str) -> set[str]:
    if annotation is str:
        return {prefix}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found: set[str] = set()
        for name, info in annotation.model_fields.items():
            found |= string_fields(info.annotation, f"{prefix}.{name}" if prefix else name)
        return found
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple, set):
        return set().union(*(string_fields(arg, f"{prefix}.*") for arg in args if arg is not Ellipsis))
    if origin is dict:
        return string_fields(args[1], f"{prefix}.*")
    if origin is typing.Literal:
        return {prefix} if all(isinstance(arg, str) for arg in args) else set()
    return set().union(*(string_fields(arg, prefix) for arg in args)) if args else set()


@pytest.mark.parametrize("model", [CurateConfig, MixtureSpec, TrainSpec], ids=lambda m: m.__name__)
def test_every_string_field_is_a_known_path_or_not_a_path(model):
    fields = string_fields(model, "")
    assert PATHS[model] <= fields
    assert fields - PATHS[model] - NOT_PATHS[model] == set()
