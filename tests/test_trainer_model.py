"""The decoder: document masking, position resets, grouped-query heads, tied embeddings."""

from __future__ import annotations

import pytest
import torch

from trainer.model import Decoder, document_mask, document_positions
from trainer.spec import ModelSpec

VOCAB = 64


def tiny(**fields) -> Decoder:
    torch.manual_seed(0)
    spec = {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_hidden": 64}
    return Decoder(ModelSpec(**{**spec, **fields}), VOCAB).eval()


def test_positions_restart_at_every_document():
    segments = torch.tensor([[0, 0, 0, 1, 1, 2], [0, 1, 1, 1, 1, 1]])
    assert document_positions(segments).tolist() == [[0, 1, 2, 0, 1, 0], [0, 0, 1, 2, 3, 4]]


def test_mask_is_block_diagonal_and_causal():
    mask = document_mask(torch.tensor([[0, 0, 0, 1, 1, 2]]))[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ]
    # A repeated id after another document is a new document, not a continuation.
    rejoined = document_mask(torch.tensor([[0, 0, 1, 0]]))[0, 0]
    assert not rejoined[3, 0] and not rejoined[3, 2] and rejoined[3, 3]


def test_a_token_never_sees_another_document():
    model = tiny()
    generator = torch.Generator().manual_seed(1)
    segments = torch.tensor([[0] * 5 + [1] * 6 + [2] * 5])
    tokens = torch.randint(0, VOCAB, (1, 16), generator=generator)
    changed = tokens.clone()
    changed[0, :5] = torch.randint(0, VOCAB, (5,), generator=generator)  # the document before
    changed[0, 11:] = torch.randint(0, VOCAB, (5,), generator=generator)  # the document after
    with torch.no_grad():
        before, after = model(tokens, segments), model(changed, segments)
    middle = slice(5, 11)
    assert torch.allclose(before[0, middle], after[0, middle], atol=1e-6)
    assert not torch.allclose(before[0, :5], after[0, :5], atol=1e-3)  # the changes themselves show
    assert not torch.allclose(before[0, 11:], after[0, 11:], atol=1e-3)


def test_a_token_never_sees_a_later_token_of_its_own_document():
    model = tiny()
    tokens = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(2))
    segments = torch.zeros_like(tokens)
    changed = tokens.clone()
    changed[0, 8] = (changed[0, 8] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(tokens, segments), model(changed, segments)
    assert torch.allclose(before[0, :8], after[0, :8], atol=1e-6)
    assert not torch.allclose(before[0, 8:], after[0, 8:], atol=1e-3)


def test_a_packed_document_reads_as_if_it_were_alone():
    model = tiny()
    document = torch.randint(0, VOCAB, (1, 7), generator=torch.Generator().manual_seed(3))
    filler = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(4))
    packed = torch.cat([filler, document], dim=1)
    segments = torch.tensor([[0] * 9 + [1] * 7])
    with torch.no_grad():
        alone = model(document, torch.zeros_like(document))
        inside = model(packed, segments)[:, 9:]
    assert torch.allclose(alone, inside, atol=1e-5)


def test_grouped_query_heads_and_tied_embeddings():
    model = tiny(n_heads=4, n_kv_heads=1)
    assert model.blocks[0].attention.kv.out_features == 2 * 1 * 8
    assert model.head.weight is model.embed.weight
    untied = tiny(tie_embeddings=False)
    assert untied.head.weight is not untied.embed.weight
    logits = model(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    assert logits.shape == (2, 5, VOCAB)


def test_rope_buffer_is_swappable_and_not_checkpointed():
    model = tiny()
    assert "inv_freq" not in model.state_dict()
    assert torch.allclose(model.inv_freq, torch.tensor([10_000.0 ** (-2 * i / 8) for i in range(4)]))
    model.set_rope(torch.full((4,), 0.5), 1.2)
    assert torch.equal(model.inv_freq, torch.full((4,), 0.5)) and model.attention_scale == 1.2
    with pytest.raises(ValueError, match="expected"):
        model.set_rope(torch.ones(8), 1.0)
