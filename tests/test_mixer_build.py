"""Building mixtures: determinism, exact token accounting, FIM layouts, packing, streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mixer_fixtures import corpus_dir, mixture, sample_rows, tokenizer_path  # noqa: F401

from mixer.build import BuildError, BuildReport, PlannedMixture, build_mixture, format_report_table, report_rows
from mixer.fim import FimSplit, draw_split, fim_token_ids
from mixer.pack import interleave, pack
from mixer.plan import PlanError
from mixer.spec import FimSpec, MixtureSpec
from mixer.stream import PAD_SOURCE, phase_dir, read_phase_info
from mixer.tokenizer import SpecialTokens, load_tokenizer

PHASES = [
    {
        "name": "general",
        "tokens": 5_003,
        "seq_len": 64,
        "sources": [
            {"name": "web", "select": {"domain": "web", "tags_none": ["long_doc"]}, "weight": 0.55},
            {"name": "code", "select": {"domain": "code"}, "weight": 0.3, "fim": {"rate": 0.5}},
            {"name": "math", "select": {"domain": "math"}, "weight": 0.15},
        ],
    },
    {
        "name": "fim-only",
        "tokens": 3_000,
        "seq_len": 128,
        "sources": [
            {
                "name": "code",
                "select": {"domain": "code"},
                "weight": 1,
                "fim": {"rate": 1, "spm_rate": 0.5},
            },
        ],
    },
    {
        "name": "long",
        "tokens": 2_000,
        "seq_len": 256,
        "sources": [
            {"name": "long", "select": {"tags_any": ["long_doc"]}, "weight": 0.4},
            {"name": "replay", "select": {"domain": ["web", "math"]}, "weight": 0.6},
        ],
    },
]


Built = tuple[Path, BuildReport]


@pytest.fixture(scope="module")
def spec(corpus_dir: Path, tokenizer_path: Path) -> MixtureSpec:
    return mixture(corpus_dir, tokenizer_path, PHASES)


@pytest.fixture(scope="module")
def built(spec: MixtureSpec, tmp_path_factory) -> Built:
    out = tmp_path_factory.mktemp("mix") / "out"
    return out, build_mixture(spec, str(out))


def tree(directory: Path) -> dict[str, bytes]:
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    return {str(path.relative_to(directory)): path.read_bytes() for path in files}


def load(mix: Path, phase: str, array: str) -> np.ndarray:
    return np.load(phase_dir(mix, phase) / f"{array}.npy")


def stream_documents(mix: Path, phase: str, eod: int) -> list[tuple[int, np.ndarray]]:
    """(source index, token ids without the end token) of every document that ends within the
    written sequences, in stream order."""
    tokens, sources = load(mix, phase, "tokens").ravel(), load(mix, phase, "sources").ravel()
    ends = np.flatnonzero(tokens == eod)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [(int(sources[start]), tokens[start:end]) for start, end in zip(starts, ends)]


def test_output_layout(built: Built) -> None:
    out, report = built
    assert set(tree(out)) == {
        "mixture.json", "plan.json", "report.json", "tokenizer.json", "composition.png",
        *(f"phases/{phase['name']}/{name}" for phase in PHASES
          for name in ("tokens.npy", "segments.npy", "sources.npy", "phase.json")),
    }
    record = json.loads((out / "mixture.json").read_text())
    assert record["fingerprint"] == report.fingerprint and len(report.fingerprint) == 64
    assert record["spec"]["phases"][0]["name"] == "general"
    assert record["inputs"]["corpus_manifests_sha256"] == [None]
    assert BuildReport.model_validate_json((out / "report.json").read_text()) == report
    assert (out / "composition.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_spec_same_bytes(spec: MixtureSpec, built: Built, tmp_path: Path) -> None:
    out, _ = built
    build_mixture(spec, str(tmp_path / "again"))
    assert tree(tmp_path / "again") == tree(out)


def test_seed_changes_the_order_not_the_plan(
    spec: MixtureSpec, built: Built, tmp_path: Path
) -> None:
    out, report = built
    other = build_mixture(spec.model_copy(update={"seed": spec.seed + 1}), str(tmp_path / "other"))
    for phase in PHASES:
        name = phase["name"]
        first, second = load(out, name, "tokens"), load(tmp_path / "other", name, "tokens")
        assert first.shape == second.shape and not np.array_equal(first, second)
    plans = [json.loads((mix / "plan.json").read_text()) for mix in (out, tmp_path / "other")]
    assert plans[0].pop("seed") + 1 == plans[1].pop("seed")
    assert plans[0] == plans[1]
    assert other.fingerprint != report.fingerprint


def test_tokens_per_source_are_exact(built: Built) -> None:
    out, report = built
    for phase_spec, phase in zip(PHASES, report.phases):
        sources = load(out, phase.name, "sources")
        assert phase.tokens_written == phase.n_sequences * phase.seq_len == sources.size
        assert phase.tokens_dropped == phase_spec["tokens"] % phase_spec["seq_len"]
        assert sum(source.tokens_target for source in phase.sources) == phase.tokens_budget
        for index, source in enumerate(phase.sources):
            assert source.tokens_taken == source.tokens_target
            assert source.tokens_written + source.tokens_dropped == source.tokens_target
            assert source.tokens_written == int((sources == index).sum())
            share = source.tokens_written / phase.tokens_written
            assert source.realised_share == pytest.approx(share)
        assert sum(source.tokens_dropped for source in phase.sources) == phase.tokens_dropped


def test_unfimmed_documents_are_the_selected_texts(built: Built, tokenizer_path: Path) -> None:
    out, _ = built
    tokenizer = load_tokenizer(tokenizer_path)
    special = SpecialTokens.from_tokenizer(tokenizer)
    rows = sample_rows()
    texts = {
        0: {row["text"] for row in rows if row["domain"] == "web" and not row["tags"]},
        2: {row["text"] for row in rows if row["domain"] == "math"},
    }
    documents = stream_documents(out, "general", special.eod)
    assert len(documents) > 40
    for source, allowed in texts.items():
        decoded = [tokenizer.decode(ids.tolist()) for index, ids in documents if index == source]
        assert all(text in allowed for text in decoded[:-1])
        # a source's last document may be the one truncated to hit its target exactly
        assert any(text.startswith(decoded[-1]) for text in allowed)


def split_fim(ids: list[int], special: SpecialTokens, tokenizer) -> tuple[str, str, str]:
    """(prefix, middle, suffix) of a FIM document, read back from either layout."""
    assert ids[0] == special.fim_prefix
    suffix_at, middle_at = ids.index(special.fim_suffix), ids.index(special.fim_middle)
    assert suffix_at < middle_at
    decode = lambda part: tokenizer.decode(part, skip_special_tokens=False)  # noqa: E731
    suffix = decode(ids[suffix_at + 1 : middle_at])
    if suffix_at == 1:  # SPM: <pre> <suf> suffix <mid> prefix middle (or PSM with no prefix)
        return "", decode(ids[middle_at + 1 :]), suffix
    return decode(ids[1:suffix_at]), decode(ids[middle_at + 1 :]), suffix


def test_fim_documents_round_trip(built: Built, tokenizer_path: Path) -> None:
    out, report = built
    tokenizer = load_tokenizer(tokenizer_path)
    special = SpecialTokens.from_tokenizer(tokenizer)
    code_texts = {row["text"] for row in sample_rows() if row["domain"] == "code"}
    documents = stream_documents(out, "fim-only", special.eod)
    assert len(documents) > 20
    for _, ids in documents[:-1]:  # the last one may be truncated
        ids = ids.tolist()
        order = [special.fim_prefix, special.fim_suffix, special.fim_middle]
        assert [token for token in ids if token in order] == order
        prefix, middle, suffix = split_fim(ids, special, tokenizer)
        assert prefix + middle + suffix in code_texts
    code = report.phases[1].sources[0]
    assert code.fim_documents == code.documents_used  # rate 1
    assert 0 < code.fim_spm_documents < code.fim_documents
    general_code = report.phases[0].sources[1]
    assert 0 < general_code.fim_documents < general_code.documents_used  # rate 0.5


@pytest.mark.parametrize("spm", [False, True])
def test_fim_layouts(tokenizer_path: Path, spm: bool) -> None:
    tokenizer = load_tokenizer(tokenizer_path)
    special = SpecialTokens.from_tokenizer(tokenizer)
    text = "def total(x):\n    return x + 1\n"
    start, end = 4, 13
    ids = fim_token_ids(text, FimSplit(start=start, end=end, spm=spm), tokenizer, special).tolist()

    def enc(piece: str) -> list[int]:
        return tokenizer.encode(piece).ids

    pre, mid, suf = enc(text[:start]), enc(text[start:end]), enc(text[end:])
    if spm:
        expected = [special.fim_prefix, special.fim_suffix, *suf, special.fim_middle, *pre, *mid]
    else:
        expected = [special.fim_prefix, *pre, special.fim_suffix, *suf, special.fim_middle, *mid]
    assert ids == expected


def test_fim_draws_are_seeded_and_bounded() -> None:
    fim = FimSpec(rate=0.7, spm_rate=0.3)
    draws = [draw_split(np.random.default_rng(5), 40, fim) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = np.random.default_rng(0)
    splits = [draw_split(rng, 40, fim) for _ in range(2000)]
    applied = [split for split in splits if split is not None]
    assert 0.65 < len(applied) / len(splits) < 0.75
    assert 0.25 < sum(split.spm for split in applied) / len(applied) < 0.35
    assert all(0 <= split.start <= split.end <= 40 for split in applied)
    assert draw_split(rng, 0, fim) in (None, FimSplit(0, 0, False), FimSplit(0, 0, True))


def test_segments_and_sources_follow_document_boundaries(
    built: Built, tokenizer_path: Path
) -> None:
    out, _ = built
    eod = SpecialTokens.from_tokenizer(load_tokenizer(tokenizer_path)).eod
    for phase in PHASES:
        tokens, segments, sources = (
            load(out, phase["name"], name) for name in ("tokens", "segments", "sources")
        )
        assert (tokens.dtype, segments.dtype, sources.dtype) == (np.uint32, np.uint32, np.uint8)
        assert (segments[:, 0] == 0).all()
        steps = np.diff(segments.astype(np.int64), axis=1)
        # a new segment starts exactly after an end-of-document token
        assert np.array_equal(steps == 1, tokens[:, :-1] == eod)
        assert ((steps == 0) | (steps == 1)).all()
        same_segment = steps == 0
        assert (sources[:, 1:][same_segment] == sources[:, :-1][same_segment]).all()
        # a document cut at a sequence end continues, same source, as segment 0 of the next
        cut = tokens[:-1, -1] != eod
        assert (sources[1:, 0][cut] == sources[:-1, -1][cut]).all()


def test_phase_info_names_the_sources(built: Built) -> None:
    out, report = built
    info = read_phase_info(out, "general")
    assert (info.sources, info.domains) == (["web", "code", "math"], ["web", "code", "math"])
    assert info.fingerprint == report.fingerprint and info.padding == 0


def test_interleave_keeps_shares_close() -> None:
    lengths = [[10] * 30, [10] * 10]
    order = interleave(lengths, [300, 100])
    assert sorted(order) == [(0, i) for i in range(30)] + [(1, i) for i in range(10)]
    ones = np.cumsum([source for source, _ in order])
    assert all(ones[4 * k - 1] == k for k in range(1, 11))  # one of every four documents
    # with uneven lengths, each source stays within one document of its share at every step
    lengths = [[7, 30, 3, 12, 9] * 4, [25, 5] * 5, [11] * 5]
    targets = [sum(source) for source in lengths]
    taken, total = [0, 0, 0], 0
    for source, position in interleave(lengths, targets):
        taken[source] += lengths[source][position]
        total += lengths[source][position]
        for i in range(3):
            assert abs(taken[i] - targets[i] / sum(targets) * total) <= 30 + 1


def test_pack_cuts_documents_and_drops_the_tail() -> None:
    documents = [np.array([1, 2, 9]), np.array([3, 9]), np.array([4, 5, 6, 9]), np.array([7, 9])]
    packed = pack(documents, [0, 1, 0, 1], seq_len=4, n_sources=2)
    assert packed.tokens.tolist() == [[1, 2, 9, 3], [9, 4, 5, 6]]
    assert packed.segments.tolist() == [[0, 0, 0, 1], [0, 1, 1, 1]]
    assert packed.sources.tolist() == [[0, 0, 0, 1], [1, 0, 0, 0]]
    assert packed.written_by_source.tolist() == [6, 2]
    assert packed.dropped_by_source.tolist() == [1, 2]
    # [3, 9] spans both sequences, [4, 5, 6, 9] is cut by the tail, [7, 9] is wholly dropped
    assert packed.truncated_by_source.tolist() == [1, 1] and packed.padding == 0


def test_plan_error_writes_nothing(corpus_dir: Path, tokenizer_path: Path, tmp_path: Path) -> None:
    phases = [dict(PHASES[0], sources=[dict(PHASES[0]["sources"][2], max_epochs=1.0)])]
    with pytest.raises(PlanError, match="phase 'general', source 'math'"):
        build_mixture(mixture(corpus_dir, tokenizer_path, phases), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_output_directory_guard_and_stale_phases(spec: MixtureSpec, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="not empty and not a built mixture"):
        build_mixture(spec, str(tmp_path / "busy"))
    out = tmp_path / "mix"
    build_mixture(spec, str(out))
    build_mixture(spec.model_copy(update={"phases": spec.phases[:1]}), str(out))
    assert sorted(path.name for path in (out / "phases").iterdir()) == ["general"]


def test_report_table(built: Built) -> None:
    _, report = built
    table = format_report_table(report)
    assert "fim-only" in table and report.fingerprint in table
    rows = report_rows(report)
    assert [row["source"] for row in rows] == ["web", "code", "math", "code", "long", "replay"]
    assert json.loads(json.dumps(rows)) == rows


def test_same_bytes_across_processes(spec: MixtureSpec, built: Built, tmp_path: Path) -> None:
    """Seeds must not depend on Python's per-process string hashing."""
    spec_file = tmp_path / "mixture.json"
    spec_file.write_text(spec.model_dump_json())
    script = (
        "import sys; from mixer.build import build_mixture; from mixer.spec import load_mixture; "
        "build_mixture(load_mixture(sys.argv[1]), sys.argv[2])"
    )
    out = tmp_path / "subprocess"
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    command = [sys.executable, "-c", script, str(spec_file), str(out)]
    subprocess.run(command, check=True, env=environment)
    assert tree(out) == tree(built[0])


def test_a_replayed_phase_builds_the_earlier_sources_exactly(corpus_dir: Path, tokenizer_path: Path,
                                                             tmp_path: Path) -> None:
    phases = [dict(phase) for phase in PHASES]
    phases[2] = {**phases[2], "replay": {"phase": phases[0]["name"], "share": 0.3}}
    report = build_mixture(mixture(corpus_dir, tokenizer_path, phases), str(tmp_path / "replay"))
    long = report.phases[2]
    earlier = [source["name"] for source in phases[0]["sources"]]
    replayed = {f"{phases[0]['name']}.{name}" for name in earlier}
    assert {source.name for source in long.sources} == {"long", "replay", *replayed}
    assert all(source.tokens_taken == source.tokens_target for source in long.sources)
    assert sum(source.tokens_target for source in long.sources if source.name in replayed) == round(
        0.3 * phases[2]["tokens"])


@pytest.mark.parametrize("packing, level", [("concat", "document"), ("best_fit", "document"), ("best_fit", "context")])
def test_realised_shares_are_within_half_a_percent_of_target(corpus_dir: Path, tokenizer_path: Path,
                                                              packing: str, level: str) -> None:
    phase = {
        "name": "p", "tokens": 40_000, "seq_len": 64, "packing": {"method": packing, "window": 64},
        "sources": [
            {"name": "web", "select": {"domain": "web"}, "weight": 0.5},
            {"name": "code", "select": {"domain": "code"}, "weight": 0.3, "fim": {"rate": 0.7, "level": level}},
            {"name": "math", "select": {"domain": "math"}, "weight": 0.2},
        ],
    }
    spec = mixture(corpus_dir, tokenizer_path, [phase])
    arrays, report = PlannedMixture.of(spec).pack(spec.phases[0])
    if level == "document":
        assert report.max_share_error <= 0.005
    else:  # the sentinels and the pieces' own tokenisation grow the FIM source a little
        assert report.sources[1].realised_share > report.sources[1].target_share
    fims = [source.fim_documents + source.fim_fragments for source in report.sources]
    assert fims[1] > 0 and fims[0] == fims[2] == 0
    written = np.bincount(arrays.sources[arrays.sources != PAD_SOURCE], minlength=3)
    assert written.tolist() == [source.tokens_written for source in report.sources]
    assert report.tokens_real + report.padding == report.tokens_written == arrays.tokens.size
    if packing == "best_fit" and level == "document":  # nothing is dropped, every target is written
        assert [s.tokens_written for s in report.sources] == [s.tokens_target for s in report.sources]
