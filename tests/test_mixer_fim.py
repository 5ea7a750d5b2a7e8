"""Context-level FIM (fragments of packed sequences) and the exact token bytes it relies on."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from mixer_fixtures import corpus_dir, sample_rows, special, tokenizer, tokenizer_path  # noqa: F401
from tokenizers import Tokenizer

from mixer.fim import ContextFimCounts, fim_contexts
from mixer.pack import PAD_SOURCE, PackedPhase, pack
from mixer.spec import FimSpec
from mixer.tokenizer import SPECIAL_TOKENS, SpecialTokens, token_bytes

CODE, WEB, MATH = 0, 1, 2  # source indices of the packed test phases
N_SOURCES = 3
SEQ_LEN = 64


@pytest.fixture(scope="module")
def documents(tokenizer: Tokenizer, special: SpecialTokens) -> tuple[list[np.ndarray], list[int]]:
    """The fixture corpus's documents, tokenised with their end token, interleaved by domain."""
    source_of = {"code": CODE, "web": WEB, "math": MATH}
    rows = sample_rows()
    random.Random(3).shuffle(rows)
    encodings = tokenizer.encode_batch_fast([row["text"] for row in rows], add_special_tokens=False)
    tokens = [np.asarray([*encoding.ids, special.eod], dtype=np.uint32) for encoding in encodings]
    return tokens, [source_of[row["domain"]] for row in rows]


@pytest.fixture(scope="module")
def packed(documents: tuple[list[np.ndarray], list[int]]) -> PackedPhase:
    """Concat-and-chunk: full rows, documents cut across rows."""
    phase = pack(documents[0], documents[1], SEQ_LEN, N_SOURCES)
    assert phase.tokens.shape[0] > 20
    return phase


def padded_pack(
    documents: list[np.ndarray], document_sources: list[int], seq_len: int, pad: int
) -> PackedPhase:
    """Whole documents per row, each row padded at its end as one segment (a best-fit layout)."""
    rows: list[list[int]] = [[]]
    for index, document in enumerate(documents):
        assert len(document) <= seq_len
        if sum(len(documents[i]) for i in rows[-1]) + len(document) > seq_len:
            rows.append([])
        rows[-1].append(index)
    shape = (len(rows), seq_len)
    tokens = np.full(shape, pad, dtype=np.uint32)
    segments = np.zeros(shape, dtype=np.uint32)
    sources = np.full(shape, PAD_SOURCE, dtype=np.uint8)
    for r, row in enumerate(rows):
        at = 0
        for segment, index in enumerate(row):
            end = at + len(documents[index])
            tokens[r, at:end] = documents[index]
            segments[r, at:end] = segment
            sources[r, at:end] = document_sources[index]
            at = end
        segments[r, at:] = len(row)
    real = sources != PAD_SOURCE
    return PackedPhase(
        tokens=tokens,
        segments=segments,
        sources=sources,
        written_by_source=np.bincount(sources[real], minlength=N_SOURCES),
        dropped_by_source=np.zeros(N_SOURCES, dtype=np.int64),
        truncated_by_source=np.zeros(N_SOURCES, dtype=np.int64),
        padding=int((~real).sum()),
    )


def widened(phase: PackedPhase, extra: int, pad: int) -> PackedPhase:
    """The same rows with ``extra`` pad columns, so context-level FIM never has to cut them."""
    n_rows = phase.tokens.shape[0]
    last_segment = phase.segments[:, -1:].astype(np.int64)
    padded_end = phase.sources[:, -1:] == PAD_SOURCE
    pad_segment = np.where(padded_end, last_segment, last_segment + 1).astype(np.uint32)
    return replace(
        phase,
        tokens=np.hstack([phase.tokens, np.full((n_rows, extra), pad, dtype=np.uint32)]),
        segments=np.hstack([phase.segments, np.repeat(pad_segment, extra, axis=1)]),
        sources=np.hstack([phase.sources, np.full((n_rows, extra), PAD_SOURCE, dtype=np.uint8)]),
        padding=phase.padding + n_rows * extra,
    )


def rows_of(phase: PackedPhase, start: int, stop: int) -> PackedPhase:
    return replace(
        phase,
        tokens=phase.tokens[start:stop],
        segments=phase.segments[start:stop],
        sources=phase.sources[start:stop],
    )


def fragments(tokens: np.ndarray, segments: np.ndarray, sources: np.ndarray) -> list[tuple]:
    """``(source, tokens)`` of each segment of a row, padding left out."""
    out = []
    for segment in np.unique(segments):
        at = np.flatnonzero(segments == segment)
        assert np.array_equal(at, np.arange(at[0], at[-1] + 1)), "a segment is one run"
        assert len(set(sources[at].tolist())) == 1, "a segment has one source"
        if sources[at[0]] != PAD_SOURCE:
            out.append((int(sources[at[0]]), tokens[at]))
    return out


def same_arrays(a: PackedPhase, b: PackedPhase) -> bool:
    return all(
        np.array_equal(getattr(a, name), getattr(b, name))
        and getattr(a, name).dtype == getattr(b, name).dtype
        for name in ("tokens", "segments", "sources")
    )


def check_layout(phase: PackedPhase, special: SpecialTokens) -> None:
    """Segments 0, 1, ... in row order; padding only at a row's end, as one segment."""
    for tokens, segments, sources in zip(phase.tokens, phase.segments, phase.sources):
        pad = sources == PAD_SOURCE
        n_real = int((~pad).sum())
        assert not pad[:n_real].any(), "padding only at the end"
        assert (tokens[pad] == special.pad).all()
        if n_real < len(tokens):
            assert len(set(segments[pad].tolist())) == 1
            assert segments[n_real] == (segments[n_real - 1] + 1 if n_real else 0)
        steps = np.diff(segments.astype(np.int64))
        assert segments[0] == 0 and set(steps.tolist()) <= {0, 1}


def unfim(piece: np.ndarray, special: SpecialTokens, tokenizer: Tokenizer) -> tuple[str, bool]:
    """The original text of a FIM fragment (without its end token) and whether it is SPM."""
    ids = piece.tolist()
    if ids[-1] == special.eod:
        ids = ids[:-1]
    sentinels = (special.fim_prefix, special.fim_suffix, special.fim_middle)
    assert [ids.count(sentinel) for sentinel in sentinels] == [1, 1, 1]
    assert special.eod not in ids and ids[0] == special.fim_prefix
    at_suffix, at_middle = ids.index(special.fim_suffix), ids.index(special.fim_middle)
    assert at_suffix < at_middle

    def text(part: list[int]) -> str:
        return tokenizer.decode(part, skip_special_tokens=False)

    suffix, after_middle = text(ids[at_suffix + 1 : at_middle]), text(ids[at_middle + 1 :])
    if at_suffix == 1:  # SPM (or PSM with an empty prefix, the same tokens): prefix + middle last
        return after_middle + suffix, True
    return text(ids[1:at_suffix]) + after_middle + suffix, False


def test_token_bytes_are_exact(tokenizer: Tokenizer) -> None:
    table = token_bytes(tokenizer)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    assert len(table) == max(vocab.values()) + 1 == tokenizer.get_vocab_size()
    for token in SPECIAL_TOKENS:
        assert table[tokenizer.token_to_id(token)] == token.encode()
    alphabet = "ab é€ 日本語 🦀👩‍💻 \n\t\r\x00ÿ\u0100 <|endoftext|> def x():"
    rng = random.Random(11)
    texts = ["", "🦀", "<|pad|>", *(
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(200)
    )]
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert b"".join(table[i] for i in ids) == text.encode()
    # one byte per token for the characters the tiny tokenizer never saw: a token run can end
    # inside a character, and the table still gives its exact bytes where decode cannot
    ids = tokenizer.encode("日本", add_special_tokens=False).ids
    assert len(ids) == 6 and b"".join(table[i] for i in ids[:2]) == "日".encode()[:2]


@pytest.mark.parametrize("spm_rate", [0.0, 0.5, 1.0])
def test_rate_one_transforms_every_fragment(
    packed: PackedPhase, tokenizer: Tokenizer, special: SpecialTokens, spm_rate: float
) -> None:
    fim = {CODE: FimSpec(rate=1.0, spm_rate=spm_rate, level="context")}
    out, counts = fim_contexts(packed, fim, 5, tokenizer, special)
    # the same rows with room to spare: nothing is cut, so every fragment is whole
    wide, wide_counts = fim_contexts(widened(packed, 400, special.pad), fim, 5, tokenizer, special)
    assert out.tokens.shape == packed.tokens.shape == out.segments.shape == out.sources.shape
    assert wide_counts.dropped.sum() == 0
    check_layout(out, special)
    check_layout(wide, special)

    n_code = n_spm = 0
    for row in range(packed.tokens.shape[0]):
        before = fragments(packed.tokens[row], packed.segments[row], packed.sources[row])
        after = fragments(wide.tokens[row], wide.segments[row], wide.sources[row])
        assert [source for source, _ in after] == [source for source, _ in before]
        for (source, old), (_, new) in zip(before, after):
            if source != CODE or (len(old) == 1 and old[0] == special.eod):
                assert np.array_equal(new, old)  # other sources, and bare end tokens, kept
                continue
            text, spm = unfim(new, special, tokenizer)
            original = old[:-1] if old[-1] == special.eod else old
            assert text == tokenizer.decode(original.tolist())
            assert (new[-1] == special.eod) == (old[-1] == special.eod)
            n_code += 1
            n_spm += spm
        # the row itself is its widened twin cut at seq_len, the cut counted by source
        assert np.array_equal(out.tokens[row], wide.tokens[row, :SEQ_LEN])
        assert np.array_equal(out.sources[row], wide.sources[row, :SEQ_LEN])
        assert np.array_equal(out.segments[row], wide.segments[row, :SEQ_LEN])

    assert counts.fragments[CODE] == n_code > 10
    assert counts.skipped.sum() == 0
    assert counts.fragments[[WEB, MATH]].sum() == counts.spm[[WEB, MATH]].sum() == 0
    if spm_rate == 0.0:
        assert counts.spm[CODE] == 0
    elif spm_rate == 1.0:
        assert counts.spm[CODE] == n_code == n_spm
    else:
        # a PSM fragment with an empty prefix reads as SPM, so n_spm may count a few more
        assert 0 < counts.spm[CODE] < n_code and counts.spm[CODE] <= n_spm
    # FIM lengthens the code fragments, so full rows must drop tokens, counted where they went
    cut = wide.sources[:, SEQ_LEN:]
    expected_dropped = np.bincount(cut[cut != PAD_SOURCE], minlength=N_SOURCES)
    assert np.array_equal(counts.dropped, expected_dropped) and counts.dropped.sum() > 0
    assert np.array_equal(out.dropped_by_source, packed.dropped_by_source + counts.dropped)
    assert np.array_equal(out.truncated_by_source, packed.truncated_by_source)
    assert np.array_equal(out.written_by_source + counts.dropped, wide.written_by_source)
    assert out.padding == int((out.sources == PAD_SOURCE).sum()) == 0


def test_non_fim_fragments_are_kept_or_cut_at_the_end(
    packed: PackedPhase, tokenizer: Tokenizer, special: SpecialTokens
) -> None:
    fim = {CODE: FimSpec(rate=1.0, level="context")}
    out, counts = fim_contexts(packed, fim, 8, tokenizer, special)
    cut_by_source = np.zeros(N_SOURCES, dtype=np.int64)
    for row in range(packed.tokens.shape[0]):
        before = fragments(packed.tokens[row], packed.segments[row], packed.sources[row])
        after = fragments(out.tokens[row], out.segments[row], out.sources[row])
        assert len(after) <= len(before)
        for k, (source, old) in enumerate(before):
            new = after[k][1] if k < len(after) else old[:0]
            if source == CODE:
                continue
            if k < len(after) - 1:
                assert np.array_equal(new, old)
            else:  # the row's last fragment, or one pushed out whole
                assert np.array_equal(new, old[: len(new)])
                cut_by_source[source] += len(old) - len(new)
    assert np.array_equal(cut_by_source[[WEB, MATH]], counts.dropped[[WEB, MATH]])


@pytest.mark.parametrize(
    "fim",
    [
        {CODE: FimSpec(rate=0.0, level="context")},
        {},
        {7: FimSpec(rate=1.0, level="context")},  # a source no row holds
    ],
)
def test_nothing_to_do_keeps_every_array(
    packed: PackedPhase,
    documents: tuple[list[np.ndarray], list[int]],
    tokenizer: Tokenizer,
    special: SpecialTokens,
    fim: dict[int, FimSpec],
) -> None:
    short = [document for document in documents[0] if len(document) <= SEQ_LEN]
    sources = [s for document, s in zip(*documents) if len(document) <= SEQ_LEN]
    for phase in (packed, padded_pack(short, sources, SEQ_LEN, special.pad)):
        out, counts = fim_contexts(phase, fim, 1, tokenizer, special)
        assert same_arrays(out, phase)
        assert np.array_equal(out.written_by_source, phase.written_by_source)
        assert np.array_equal(out.dropped_by_source, phase.dropped_by_source)
        assert out.padding == phase.padding
        for name in ("fragments", "spm", "skipped", "dropped"):
            assert not getattr(counts, name).any()


def test_rows_are_deterministic_and_independent(
    packed: PackedPhase, tokenizer: Tokenizer, special: SpecialTokens
) -> None:
    fim = {CODE: FimSpec(rate=0.5, level="context"), MATH: FimSpec(rate=0.5, level="context")}
    out, counts = fim_contexts(packed, fim, 21, tokenizer, special)
    again, counts_again = fim_contexts(packed, fim, 21, tokenizer, special)
    assert same_arrays(out, again)
    assert all(
        np.array_equal(getattr(counts, name), getattr(counts_again, name))
        for name in ContextFimCounts.__dataclass_fields__
    )
    other, _ = fim_contexts(packed, fim, 22, tokenizer, special)
    assert not np.array_equal(other.tokens, out.tokens)

    n_rows = packed.tokens.shape[0]
    changed = [r for r in range(n_rows) if not np.array_equal(out.tokens[r], packed.tokens[r])]
    assert len(changed) >= 3
    for row in changed[:3] + [n_rows - 1]:
        one = rows_of(packed, row, row + 1)
        alone, _ = fim_contexts(one, fim, 21, tokenizer, special, first_row=row)
        assert same_arrays(alone, rows_of(out, row, row + 1))
    # the other rows' content does not reach a row: swap all of them for copies of row 0
    row = changed[-1]
    keep = np.arange(n_rows)[:, None] == row
    others = replace(
        packed,
        **{
            name: np.where(keep, getattr(packed, name), getattr(packed, name)[0])
            for name in ("tokens", "segments", "sources")
        },
    )
    mixed, _ = fim_contexts(others, fim, 21, tokenizer, special)
    assert same_arrays(rows_of(mixed, row, row + 1), rows_of(out, row, row + 1))


def test_a_fragment_cut_inside_a_character_is_skipped(
    documents: tuple[list[np.ndarray], list[int]], tokenizer: Tokenizer, special: SpecialTokens
) -> None:
    table = token_bytes(tokenizer)
    lead = documents[0][0]
    fillers = [document for document, source in zip(*documents) if source == WEB][:6]
    cjk = tokenizer.encode("def 日本語(x): return '🦀' * x", add_special_tokens=False).ids
    cjk_doc = np.asarray([*cjk, special.eod], dtype=np.uint32)
    # the first token that continues a character (its first byte is 0b10xxxxxx)
    inside = next(k for k, token in enumerate(cjk) if 0x80 <= table[token][0] < 0xC0)
    seq_len = len(lead) + inside
    phase = pack([lead, cjk_doc, *fillers], [WEB, CODE, *[WEB] * len(fillers)], seq_len, N_SOURCES)
    # the document's two fragments end and start inside a character
    assert phase.sources[0, -1] == CODE and phase.sources[1, 0] == CODE
    fim = {CODE: FimSpec(rate=1.0, level="context")}
    out, counts = fim_contexts(phase, fim, 3, tokenizer, special)
    assert counts.skipped[CODE] == 2
    assert counts.fragments.sum() == counts.dropped.sum() == 0
    assert same_arrays(out, phase)
    # once whole, the same document is transformed
    whole = pack([cjk_doc, *fillers], [CODE, *[WEB] * len(fillers)], len(cjk_doc) + 5, N_SOURCES)
    out, counts = fim_contexts(whole, fim, 3, tokenizer, special)
    assert counts.fragments[CODE] == 1 and counts.skipped.sum() == 0
    first = fragments(out.tokens[0], out.segments[0], out.sources[0])[0][1]
    assert unfim(first, special, tokenizer)[0] == "def 日本語(x): return '🦀' * x"


def test_padded_rows_are_repadded_and_accounted(
    documents: tuple[list[np.ndarray], list[int]], tokenizer: Tokenizer, special: SpecialTokens
) -> None:
    seq_len = 128  # room for two or three short documents, then padding
    short = [(document, s) for document, s in zip(*documents) if len(document) <= seq_len]
    phase = padded_pack([d for d, _ in short], [s for _, s in short], seq_len, special.pad)
    assert phase.padding > 0
    fim = {CODE: FimSpec(rate=1.0, level="context"), MATH: FimSpec(rate=1.0, level="context")}
    out, counts = fim_contexts(phase, fim, 9, tokenizer, special)
    check_layout(out, special)
    wide, _ = fim_contexts(widened(phase, 400, special.pad), fim, 9, tokenizer, special)
    growth = np.zeros(N_SOURCES, dtype=np.int64)
    for row in range(phase.tokens.shape[0]):
        before = fragments(phase.tokens[row], phase.segments[row], phase.sources[row])
        after = fragments(wide.tokens[row], wide.segments[row], wide.sources[row])
        for (source, old), (_, new) in zip(before, after, strict=True):
            if source in fim:
                text, _ = unfim(new, special, tokenizer)
                assert text == tokenizer.decode(old[:-1].tolist())
                growth[source] += len(new) - len(old)
            else:
                assert np.array_equal(new, old)
        pad = out.sources[row] == PAD_SOURCE
        if pad.any():  # one pad segment after the last fragment
            assert (out.tokens[row][pad] == special.pad).all()
            assert set(out.segments[row][pad].tolist()) == {len(before)}
    # every added token is a sentinel or comes from tokenising three pieces separately
    assert (growth[[CODE, MATH]] >= 3 * counts.fragments[[CODE, MATH]]).all()
    assert counts.fragments[CODE] > 0 and counts.fragments[MATH] > 0
    assert np.array_equal(out.written_by_source + counts.dropped, phase.written_by_source + growth)
    assert np.array_equal(out.dropped_by_source, counts.dropped)
    assert out.padding == int((out.sources == PAD_SOURCE).sum()) > 0
    assert out.padding + out.written_by_source.sum() == out.tokens.size
