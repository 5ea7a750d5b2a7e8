"""The trainer's CUDA paths, which CPU runs never take: FlexAttention for packed rows, bf16
autocast, compiled blocks and a whole phase loop on the GPU. Skipped where no CUDA device is
present (CI); run where one is lent:

    python -m pytest -q tests/test_trainer_cuda.py
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainer.model import Decoder, plan_attention
from trainer.spec import ModelSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

VOCAB = 512


def packed_rows(batch: int, seq_len: int, seed: int) -> torch.Tensor:
    """Segment ids of rows that pack documents of 1..seq_len/4 tokens."""
    generator = torch.Generator().manual_seed(seed)
    segments = torch.zeros(batch, seq_len, dtype=torch.long)
    for row in range(batch):
        at, document = 0, 0
        while at < seq_len:
            length = int(torch.randint(1, seq_len // 4 + 1, (1,), generator=generator))
            segments[row, at:at + length] = document
            at, document = at + length, document + 1
    return segments


def loss_and_grads(model: Decoder, tokens: torch.Tensor, segments: torch.Tensor) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the loss inside the model, as the trainer has it
        loss = model(tokens[:, :-1], segments[:, :-1], tokens[:, 1:]).mean()
    loss.backward()
    return loss.item(), {name: p.grad.float().clone() for name, p in model.named_parameters()}


def small_model(seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    spec = ModelSpec(vocab_size=VOCAB, d_model=128, n_layers=2, n_heads=8, n_kv_heads=2, ffn_hidden=256)
    return Decoder(spec, VOCAB).cuda().train()


def test_packed_rows_take_flex_attention_in_cuda_training():
    segments = packed_rows(2, 256, seed=1).cuda()
    assert plan_attention(segments, head_dim=16).kind == "flex"
    with torch.no_grad():
        assert plan_attention(segments, head_dim=16).kind == "masked"
    assert plan_attention(torch.zeros_like(segments), head_dim=16).kind == "causal"
    # FlexAttention's kernel needs heads 16 wide: narrower ones take the masked path
    assert plan_attention(segments, head_dim=8).kind == "masked"


def test_flex_attention_computes_what_the_masked_path_does():
    """Loss and gradients of FlexAttention (document BlockMask) against SDPA with the boolean
    block-diagonal mask, both under bf16 autocast: equal to bf16 rounding."""
    model = small_model()
    tokens = torch.randint(0, VOCAB, (4, 513), generator=torch.Generator().manual_seed(2)).cuda()
    segments = packed_rows(4, 513, seed=3).cuda()
    model.use_flex = True
    flex_loss, flex_grads = loss_and_grads(model, tokens, segments)
    model.use_flex = False
    masked_loss, masked_grads = loss_and_grads(model, tokens, segments)
    assert math.isfinite(flex_loss)
    assert flex_loss == pytest.approx(masked_loss, rel=2e-3)
    for name, grad in masked_grads.items():
        scale = grad.abs().max().item() + 1e-12
        assert (flex_grads[name] - grad).abs().max().item() / scale < 5e-2, name


def test_compiled_blocks_compute_what_eager_blocks_do():
    eager, compiled = small_model(), small_model()
    compiled.compile_blocks()
    tokens = torch.randint(0, VOCAB, (2, 257), generator=torch.Generator().manual_seed(4)).cuda()
    for segments in (torch.zeros_like(tokens), packed_rows(2, 257, seed=5).cuda()):
        eager_loss, _ = loss_and_grads(eager, tokens, segments)
        compiled_loss, _ = loss_and_grads(compiled, tokens, segments)
        assert compiled_loss == pytest.approx(eager_loss, rel=2e-3)


def test_a_compiled_two_phase_run_learns_on_the_gpu(tmp_path):
    """The phase loop on CUDA: bf16, compiled blocks, FlexAttention on the packed synthetic
    mixture, a context-extension phase; the loss falls and MFU is reported against the peak."""
    from test_trainer_train import make_mixture, records, train_spec

    from trainer.train import run_training

    mixture = make_mixture(tmp_path / "mix", {"short": (32, 48), "long": (64, 24)})
    summary = run_training(train_spec(mixture, tmp_path / "run", device="cuda", compile=True))
    assert summary["device"].startswith("cuda")
    steps = [record for record in records(tmp_path / "run") if "loss" in record]
    losses = [record["loss"] for record in steps]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-4:]) / 4 < losses[0] - 1.0, losses
    # a 2-layer, 32-wide model uses a sliver of an H100: MFU rounds to ~0, but it is reported
    assert all(0 <= record["mfu"] < 1 for record in steps), json.dumps(steps[:2])
