"""The decoder: document masking, position resets, grouped-query heads, tied embeddings; the
causal fast path, the masked path and FlexAttention computing the same attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.model import (
    IGNORE,
    AttentionPlan,
    Decoder,
    attend,
    document_mask,
    document_positions,
    flex_attention,
    plan_attention,
    sdpa_shares_kv_heads,
)
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


# ---------------------------------------------------------------------------------------------
# How attention runs: the causal fast path, the masked path and FlexAttention agree


PACKED = torch.tensor([[0] * 5 + [1] * 6 + [2] * 5, [0] * 9 + [1] * 7])


def test_plan_takes_the_causal_path_only_when_no_row_holds_a_boundary():
    assert plan_attention(torch.zeros(2, 16, dtype=torch.long), head_dim=8).kind == "causal"
    assert plan_attention(torch.full((2, 16), 7), head_dim=8).kind == "causal"  # the id does not matter
    masked = plan_attention(PACKED, head_dim=8)  # CPU: no FlexAttention (it has no backward there)
    assert masked.kind == "masked" and torch.equal(masked.mask, document_mask(PACKED))
    one_packed_row = torch.tensor([[0] * 16, [0] * 15 + [1]])
    assert plan_attention(one_packed_row, head_dim=8).kind == "masked"
    assert plan_attention(torch.zeros(1, 1, dtype=torch.long), head_dim=8).kind == "causal"


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_attend_causal_equals_masked_with_a_one_document_mask(kv_heads):
    generator = torch.Generator().manual_seed(5)
    q = torch.randn(2, 4, 16, 8, generator=generator, requires_grad=True)
    k = torch.randn(2, kv_heads, 16, 8, generator=generator, requires_grad=True)
    v = torch.randn(2, kv_heads, 16, 8, generator=generator, requires_grad=True)
    causal = attend(q, k, v, AttentionPlan("causal"))
    masked = attend(q, k, v, AttentionPlan("masked", document_mask(torch.zeros(2, 16, dtype=torch.long))))
    assert torch.allclose(causal, masked, atol=1e-6)
    weights = torch.randn_like(causal)
    causal_grads = torch.autograd.grad((causal * weights).sum(), (q, k, v))
    masked_grads = torch.autograd.grad((masked * weights).sum(), (q, k, v))
    for fast, slow in zip(causal_grads, masked_grads):
        assert torch.allclose(fast, slow, atol=1e-5)
    # and against attention written out, with the key/value heads repeated by hand
    groups = 4 // kv_heads
    scores = q @ k.repeat_interleave(groups, 1).transpose(-1, -2) / 8**0.5
    scores = scores.masked_fill(~torch.ones(16, 16, dtype=torch.bool).tril(), float("-inf"))
    assert torch.allclose(causal, scores.softmax(-1) @ v.repeat_interleave(groups, 1), atol=1e-5)


def test_the_causal_path_gives_the_masked_paths_logits_and_gradients():
    """Row 0 holds one document; alone it takes the causal path, next to a packed row the masked
    one. Its logits and the gradients of a loss on them must agree."""
    model = tiny().train()
    generator = torch.Generator().manual_seed(6)
    tokens = torch.randint(0, VOCAB, (2, 16), generator=generator)
    segments = torch.stack([torch.zeros(16, dtype=torch.long), PACKED[1]])
    weights = torch.randn(1, 16, VOCAB, generator=generator)

    def logits_and_grads(tokens, segments):
        model.zero_grad()
        logits = model(tokens, segments)[:1]
        (logits * weights).sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    assert plan_attention(segments[:1], head_dim=8).kind == "causal" and plan_attention(segments, head_dim=8).kind == "masked"
    fast, fast_grads = logits_and_grads(tokens[:1], segments[:1])
    slow, slow_grads = logits_and_grads(tokens, segments)
    assert torch.allclose(fast, slow, atol=1e-5)
    for fast_grad, slow_grad in zip(fast_grads, slow_grads):
        assert torch.allclose(fast_grad, slow_grad, atol=1e-5, rtol=1e-4)


def test_the_paths_are_deterministic():
    model = tiny()
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        for segments in (torch.zeros_like(tokens), PACKED):
            assert torch.equal(model(tokens, segments), model(tokens, segments))


def flex_or_skip(call):
    try:
        return call()
    except (NotImplementedError, RuntimeError) as error:  # a torch whose FlexAttention cannot run here
        pytest.skip(f"FlexAttention does not run on CPU in this torch: {error}")


@pytest.mark.skipif(flex_attention is None, reason="this torch has no FlexAttention")
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_flex_attention_equals_the_masked_path(kv_heads):
    """FlexAttention runs on CUDA (compiled); on CPU it runs eagerly, forward only, which is
    enough to check its document-causal BlockMask against the boolean mask."""
    model = tiny(n_kv_heads=kv_heads)
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(8))
    plan = flex_or_skip(lambda: plan_attention(PACKED, use_flex=True, head_dim=8))
    assert plan.kind == "flex"
    with torch.no_grad():
        masked = model(tokens, PACKED)
        model.use_flex = True
        flexed = flex_or_skip(lambda: model(tokens, PACKED))
    assert torch.allclose(flexed, masked, atol=1e-5)
    # the attention itself, on a longer batch with several blocks of 128 and documents across them
    generator = torch.Generator().manual_seed(9)
    segments = torch.tensor([[0] * 100 + [1] * 200 + [2] * 20, [0] * 300 + [1] * 20])
    q = torch.randn(2, 4, 320, 8, generator=generator)
    k, v = (torch.randn(2, kv_heads, 320, 8, generator=generator) for _ in range(2))
    expected = attend(q, k, v, AttentionPlan("masked", document_mask(segments)))
    got = flex_or_skip(lambda: attend(q, k, v, plan_attention(segments, use_flex=True, head_dim=8)))
    assert torch.allclose(got, expected, atol=1e-5)


def test_rope_tables_follow_positions_and_every_change_of_setting():
    model = tiny()
    segments = torch.tensor([[0, 0, 0, 1, 1, 2]])
    cos, sin = model.rope_tables(segments)
    assert cos.shape == (1, 1, 6, 4)
    positions = torch.tensor([0, 1, 2, 0, 1, 0], dtype=torch.float32)
    angles = positions[:, None] * model.inv_freq
    assert torch.allclose(cos[0, 0], angles.cos()) and torch.allclose(sin[0, 0], angles.sin())
    first = model.rope_table(6)
    assert model.rope_table(6) is first  # cached
    assert model.rope_table(7)[0].shape == (7, 4)
    along = torch.arange(6, dtype=torch.float32)[:, None] * model.inv_freq  # positions 0..5
    assert torch.allclose(first[0], along.cos())
    model.set_rope(model.inv_freq * 0.5, 1.0)  # a new tensor
    assert torch.allclose(model.rope_table(6)[0], (along * 0.5).cos())
    model.inv_freq.mul_(2.0)  # in place
    assert torch.allclose(model.rope_table(6)[0], along.cos())
    model.set_rope(model.inv_freq, 1.5)  # same frequencies, another scale
    assert torch.allclose(model.rope_table(6)[1], along.sin() * 1.5)


def test_a_table_made_in_inference_mode_is_not_used_for_training():
    model = tiny().train()
    tokens = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(10))
    with torch.inference_mode():
        model(tokens, torch.zeros_like(tokens))
    model(tokens, torch.zeros_like(tokens)).sum().backward()  # would fail on an inference tensor
    assert model.embed.weight.grad is not None


def test_grouped_heads_go_to_sdpa_only_where_a_fused_kernel_takes_them():
    assert sdpa_shares_kv_heads(torch.zeros(1, 4, 8, 8), masked=True)  # CPU: mask or not
    assert sdpa_shares_kv_heads(torch.zeros(1, 4, 8, 8), masked=False)
    elsewhere = torch.empty(1, 4, 8, 8, device="meta")  # stands for CUDA: flash only
    assert not sdpa_shares_kv_heads(elsewhere, masked=False)  # float32: no flash kernel
    assert sdpa_shares_kv_heads(elsewhere.to(torch.bfloat16), masked=False)
    assert not sdpa_shares_kv_heads(elsewhere.to(torch.bfloat16), masked=True)


def test_with_targets_the_model_returns_each_positions_loss():
    """The loss inside the model (the trainer's call) is cross-entropy of its logits, bitwise
    in eager mode, IGNORE positions 0; compiled, the same to float rounding."""
    model = tiny()
    tokens = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(1))
    segments = torch.zeros(2, 16, dtype=torch.long)
    targets = tokens[:, 1:].clone()
    targets[0, :3] = IGNORE
    losses = model(tokens[:, :-1], segments, targets)
    expected = F.cross_entropy(model(tokens[:, :-1], segments).flatten(0, 1), targets.flatten(),
                               ignore_index=IGNORE, reduction="none").view_as(targets)
    assert torch.equal(losses, expected) and not losses[0, :3].any()
    model.compile_blocks()
    torch.testing.assert_close(model(tokens[:, :-1], segments, targets), expected, rtol=1e-4, atol=1e-5)


def test_blocks_get_rope_tables_of_one_rank_packed_or_not() -> None:
    """A compiled block guards on its inputs' ranks: causal and packed batches must hand it
    cos/sin of the same rank, or every switch between them costs a recompile (on the H200 the
    demo hit torch.compile's recompile limit this way)."""
    model = tiny()
    ranks = []
    model.blocks[0].register_forward_pre_hook(lambda module, args: ranks.append((args[1].dim(), args[2].dim())))
    tokens = torch.randint(0, VOCAB, (2, 12))
    model(tokens, torch.zeros_like(tokens))  # one document per row: causal
    model(tokens, torch.tensor([[0] * 6 + [1] * 6] * 2))  # packed: positions restart
    assert ranks == [(4, 4), (4, 4)]
