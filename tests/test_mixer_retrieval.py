"""Synthetic retrieval documents (mixer.retrieval): needles at word starts, every question
answered by a fact in the same sequence, seeded draws, and the build's accounting."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mixer_fixtures import corpus_dir, mixture, sample_rows, tokenizer_path  # noqa: F401
from pydantic import ValidationError

from mixer.build import build_mixture
from mixer.pieces import PieceEncoder, TokenisedText, word_start_flags
from mixer.retrieval import Needle, RetrievalDraw, draw_needles, retrieval_document
from mixer.spec import RetrievalSpec, SourceSpec
from mixer.stream import phase_dir
from mixer.tokenizer import SpecialTokens, load_tokenizer

TEXT = ("The river runs past the old mill and under two bridges. Farmers bring grain in autumn, "
        "and the miller keeps a ledger of every sack. ") * 12
FACT = re.compile(r"The (\w+ \w+) is (\d{5})\.")
QUESTION = re.compile(r"What is the (\w+ \w+)\? The (\w+ \w+) is (\d{5})\.")


def tokenised(tokenizer, text: str) -> TokenisedText:
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return TokenisedText(text, np.asarray(encoding.ids, dtype=np.uint32), word_start_flags(encoding.word_ids))


@pytest.mark.parametrize("start", [0.0, 0.5])
def test_needles_sit_at_word_starts_and_the_questions_follow(tokenizer_path: Path, start: float) -> None:
    tokenizer = load_tokenizer(tokenizer_path)
    document = tokenised(tokenizer, TEXT)
    needles = [Needle("harbor", "number", 48213, 0.1), Needle("lantern", "code", 90177, 0.7),
               Needle("tower", "key", 11111, 0.7)]
    draw = RetrievalDraw(needles, np.array([2, 0, 1]), start)
    ids = retrieval_document(document, draw, PieceEncoder(tokenizer), 600)
    assert ids is not None and ids.dtype == np.uint32 and len(ids) == 600  # the document is longer
    text = tokenizer.decode(ids.tolist())
    assert [match.groups() for match in FACT.finditer(text.partition(" What is")[0])] == [
        ("harbor number", "48213"), ("lantern code", "90177"), ("tower key", "11111")]  # in depth order
    assert [match.group(1) for match in QUESTION.finditer(text)] == ["tower key", "harbor number", "lantern code"]
    # Taking the facts out gives back a window of the document, token for token, that starts
    # where the draw says, and each fact stood before one of its word starts.
    encode = PieceEncoder(tokenizer).encode
    kept = ids.tolist()
    body_length = len(kept) - sum(len(encode(needle.fact)) + len(encode(needle.question)) for needle in needles)
    openings = np.flatnonzero(document.word_starts[: len(document.ids) - body_length + 1])
    first = int(openings[int(start * len(openings))])
    assert (first == 0) == (start == 0.0) and document.word_starts[first]
    for needle in needles:  # in depth order, as they appear
        fact = encode(needle.fact).tolist()
        at = next(i for i in range(len(kept)) if kept[i:i + len(fact)] == fact)
        assert document.word_starts[first + at]
        del kept[at:at + len(fact)]
    assert kept[:body_length] == document.ids[first:first + body_length].tolist()

def test_no_room_for_the_document_leaves_it_alone(tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tokenizer_path)
    draw = RetrievalDraw([Needle("harbor", "number", 48213, 0.5)], np.array([0]), 0.0)
    assert retrieval_document(tokenised(tokenizer, TEXT), draw, PieceEncoder(tokenizer), 20) is None


def test_draws_are_seeded_and_the_same_count_whatever_the_outcome() -> None:
    spec = RetrievalSpec(rate=0.5, needles=3)
    first = [draw_needles(np.random.default_rng(2), spec) for _ in range(2)]  # 2 draws 0.26 < rate
    assert first[0] is not None and repr(first[0]) == repr(first[1])
    rng_kept, rng_left = np.random.default_rng(3), np.random.default_rng(3)
    draw_needles(rng_kept, RetrievalSpec(rate=1.0, needles=3))
    draw_needles(rng_left, RetrievalSpec(rate=0.0, needles=3))
    assert rng_kept.random() == rng_left.random()  # the next document sees the same stream
    draw = draw_needles(np.random.default_rng(1), RetrievalSpec(rate=1.0, needles=5))
    assert len({needle.name for needle in draw.needles}) == 5 and sorted(draw.order.tolist()) == list(range(5))
    assert all(10_000 <= needle.value < 100_000 and 0 <= needle.depth < 1 for needle in draw.needles)


def test_a_source_takes_fim_or_retrieval_not_both() -> None:
    with pytest.raises(ValidationError, match="fim and retrieval"):
        SourceSpec(name="long", weight=1, fim={"rate": 0.5}, retrieval={"rate": 0.5})


def test_retrieval_needs_best_fit_packing(corpus_dir: Path, tokenizer_path: Path) -> None:
    phases = [{"name": "anneal", "tokens": 1_000, "seq_len": 256,
               "sources": [{"name": "long", "weight": 1, "retrieval": {"rate": 1.0}}]}]
    with pytest.raises(ValidationError, match="'anneal'.*needs packing method best_fit"):
        mixture(corpus_dir, tokenizer_path, phases)


def test_every_question_is_answered_within_its_sequence(corpus_dir: Path, tokenizer_path: Path,
                                                         tmp_path: Path) -> None:
    phases = [{
        "name": "long-context", "tokens": 6_000, "seq_len": 256,
        "packing": {"method": "best_fit", "window": 8},
        "sources": [
            {"name": "long", "select": {"tags_any": ["long_doc"]}, "weight": 0.5, "max_epochs": 50,
             "retrieval": {"rate": 1.0, "needles": 3}},
            {"name": "replay", "select": {"domain": ["web", "math"]}, "weight": 0.5},
        ],
    }]
    report = build_mixture(mixture(corpus_dir, tokenizer_path, phases), str(tmp_path / "mix"))
    long = report.phases[0].sources[0]
    assert long.retrieval_documents == long.documents_used > 0
    assert long.tokens_taken == long.tokens_target  # the budget holds, needles included
    tokenizer = load_tokenizer(tokenizer_path)
    special = SpecialTokens.from_tokenizer(tokenizer)
    tokens = np.load(phase_dir(tmp_path / "mix", "long-context") / "tokens.npy")
    questions = 0
    for row in tokens:
        for document in np.split(row, np.flatnonzero(row == special.eod) + 1):
            text = tokenizer.decode([t for t in document.tolist() if t not in (special.eod, special.pad)])
            facts = dict(FACT.findall(text.split(" What is")[0]))
            for name, repeated, value in QUESTION.findall(text):
                questions += 1
                assert name == repeated and facts[name] == value, text
    assert questions >= 3 * (long.retrieval_documents - 1)  # all but a target-cut last one


def test_the_gpu_demo_is_the_demo_scaled_up() -> None:
    """examples/gpu/mixture.yaml (bench/gpu_demo.sh) is examples/mixture.yaml with 40x the
    tokens (120x in the long-context phase) and the epoch caps those need: same phases,
    sources, weights, transforms, packing."""
    from mixer.spec import load_mixture
    from trainer.spec import load_train_spec

    examples = Path(__file__).resolve().parents[1] / "examples"
    demo, gpu = load_mixture(examples / "mixture.yaml"), load_mixture(examples / "gpu" / "mixture.yaml")

    def shape(spec):
        return [(phase.name, phase.seq_len, phase.packing,
                 [source.model_dump(exclude={"max_epochs"}) for source in phase.sources]) for phase in spec.phases]

    assert shape(gpu) == shape(demo)
    assert [gpu_phase.tokens for gpu_phase in gpu.phases] == [factor * phase.tokens for factor, phase in zip((40, 40, 120), demo.phases)]
    train = load_train_spec(examples / "gpu" / "train.yaml")
    assert [phase.mixture_phase for phase in train.phases] == [phase.name for phase in gpu.phases]
