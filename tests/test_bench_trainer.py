"""Our decoder against an independent implementation: ``transformers``' ``LlamaForCausalLM``
holding the same weights (``bench.trainer.copy_into_llama``) computes the same logits, for one
document per row, for packed rows (each document against transformers on it alone), with grouped
or full heads, tied or untied embeddings, and a scaled RoPE. Also bench/trainer.py's FLOP count
(the benchmark itself is run by hand)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from bench.trainer import build_llama, copy_into_llama, parse_config  # noqa: E402
from trainer.model import Decoder, plan_attention  # noqa: E402
from trainer.spec import ModelSpec  # noqa: E402
from trainer.throughput import flops_per_token, matmul_parameters  # noqa: E402

VOCAB = 97
TOLERANCE = 1e-4


def pair(**fields) -> tuple[Decoder, torch.nn.Module]:
    spec = ModelSpec(**{"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
                        "ffn_hidden": 48, "rope_base": 10_000.0, **fields})
    torch.manual_seed(0)
    ours = Decoder(spec, VOCAB).eval()
    with torch.no_grad():  # norms away from 1, so a swapped norm weight would show
        for name, parameter in ours.named_parameters():
            if name.endswith("norm.weight"):
                parameter.uniform_(0.5, 1.5)
    theirs = build_llama(spec, VOCAB).eval()
    copy_into_llama(ours, theirs)
    return ours, theirs


def their_logits(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=tokens).logits


CASES = {
    "gqa-tied": {},
    "mha-untied": {"n_kv_heads": None, "tie_embeddings": False},
    "mqa-base": {"n_kv_heads": 1, "rope_base": 500_000.0, "d_model": 64, "n_heads": 4},
}


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
def test_same_logits_as_transformers_llama_for_one_document_per_row(fields):
    ours, theirs = pair(**fields)
    tokens = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(1))
    segments = torch.zeros_like(tokens)
    assert plan_attention(segments, head_dim=8).kind == "causal"
    with torch.no_grad():
        logits = ours(tokens, segments)
    expected = their_logits(theirs, tokens)
    assert logits.abs().max() > 0.1  # not a degenerate comparison
    assert torch.allclose(logits, expected, atol=TOLERANCE, rtol=0)
    # the weights were copied, not shared: a change on one side shows
    with torch.no_grad():
        theirs.model.layers[1].mlp.up_proj.weight.add_(0.05)
    assert not torch.allclose(ours(tokens, segments), their_logits(theirs, tokens), atol=TOLERANCE)


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
def test_each_packed_document_matches_transformers_on_it_alone(fields):
    ours, theirs = pair(**fields)
    lengths = [[7, 20, 1, 12], [40], [13, 27]]
    tokens = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(2))
    segments = torch.tensor([[index for index, length in enumerate(row) for _ in range(length)]
                             for row in lengths])
    assert plan_attention(segments, head_dim=8).kind == "masked"
    with torch.no_grad():
        logits = ours(tokens, segments)
    for row, row_lengths in enumerate(lengths):
        start = 0
        for length in row_lengths:
            alone = their_logits(theirs, tokens[row:row + 1, start:start + length])[0]
            assert torch.allclose(logits[row, start:start + length], alone, atol=TOLERANCE, rtol=0)
            start += length


def test_scaled_rope_matches_transformers_with_the_same_frequencies_and_scale():
    ours, theirs = pair()
    ours.set_rope(ours.inv_freq / torch.tensor([1.0, 1.5, 2.0, 4.0]), 1.2)  # head_dim 8: 4 frequencies
    copy_into_llama(ours, theirs)
    tokens = torch.randint(0, VOCAB, (2, 33), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = ours(tokens, torch.zeros_like(tokens))
    assert torch.allclose(logits, their_logits(theirs, tokens), atol=TOLERANCE, rtol=0)


def test_gradients_match_transformers():
    ours, theirs = pair()
    ours.train(), theirs.train()
    tokens = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(4))
    targets = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(5))
    cross_entropy = torch.nn.functional.cross_entropy
    loss = cross_entropy(ours(tokens, torch.zeros_like(tokens)).flatten(0, 1), targets.flatten())
    their_loss = cross_entropy(theirs(input_ids=tokens).logits.flatten(0, 1), targets.flatten())
    loss.backward(), their_loss.backward()
    assert abs(loss.item() - their_loss.item()) < 1e-5
    block, layer = ours.blocks[0], theirs.model.layers[0]
    keys, values = block.attention.kv.weight.grad.split(16)  # kv heads 2 x head_dim 8
    gate, up = block.mlp.gate_up.weight.grad.split(48)
    for mine, theirs_grad in [
        (ours.embed.weight.grad, theirs.model.embed_tokens.weight.grad),
        (block.attention.q.weight.grad, layer.self_attn.q_proj.weight.grad),
        (keys, layer.self_attn.k_proj.weight.grad), (values, layer.self_attn.v_proj.weight.grad),
        (gate, layer.mlp.gate_proj.weight.grad), (up, layer.mlp.up_proj.weight.grad),
        (block.attention_norm.weight.grad, layer.input_layernorm.weight.grad),
    ]:
        assert torch.allclose(mine, theirs_grad, atol=1e-6, rtol=1e-4)


def test_flops_follow_palm_with_the_head_counted_once():
    spec = ModelSpec(vocab_size=100, d_model=16, n_layers=2, n_heads=4, ffn_hidden=32)
    parameters = Decoder(spec, 100).parameter_count()
    assert matmul_parameters(spec, 100) == parameters  # tied: the shared matrix is the head
    untied = spec.model_copy(update={"tie_embeddings": False})
    untied_parameters = Decoder(untied, 100).parameter_count()
    assert untied_parameters == parameters + 100 * 16
    assert matmul_parameters(untied, 100) == parameters
    assert flops_per_token(spec, 100, 64) == 6 * parameters + 12 * 2 * 16 * 64


def test_config_flag_overrides_a_preset_or_needs_every_field():
    name, fields = parse_config("125m:seq_len=256,batch=1")
    assert name == "125m" and fields["seq_len"] == 256 and fields["d_model"] == 768
    with pytest.raises(Exception, match="lacks"):
        parse_config("mine:d_model=64")
    with pytest.raises(Exception, match="unknown key"):
        parse_config("10m:width=3")
