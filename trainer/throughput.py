"""Training FLOPs per token and model FLOPs utilisation (MFU).

FLOPs follow the PaLM paper's accounting (Chowdhery et al. 2022, appendix B): ``6 · N`` per
token (2 forward, 4 backward) with N every parameter but an input embedding table that is not
also the output head (with tied embeddings the shared matrix counts once, as the head), plus
``12 · layers · seq_len · d_attention`` for the attention scores and the weighted sum of values
(counted in full, as PaLM does, though a causal mask needs half). MFU is the FLOPs a step's
tokens needed over what the device could do in its time at peak. ``bench/trainer.py`` uses the
same count.
"""

from __future__ import annotations

import torch

from trainer.spec import ModelSpec

# Dense bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets; the first name that
# occurs in torch.cuda.get_device_name wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10", 125.0),
)


def matmul_parameters(spec: ModelSpec, vocab_size: int) -> int:
    """N of 6·N: the decoder's parameters (``trainer.model.Decoder``) but an input-only
    embedding table."""
    d, head_dim = spec.d_model, spec.head_dim
    attention = d * spec.n_heads * head_dim + 2 * d * spec.kv_heads * head_dim + spec.n_heads * head_dim * d
    block = attention + 3 * d * spec.ffn_hidden + 2 * d  # q, kv, out; gate, up, down; two norms
    return spec.n_layers * block + d + vocab_size * d  # the final norm, the head


def flops_per_token(spec: ModelSpec, vocab_size: int, seq_len: int) -> int:
    """Training FLOPs for one token of a ``seq_len`` sequence."""
    attention = 12 * spec.n_layers * seq_len * spec.n_heads * spec.head_dim
    return 6 * matmul_parameters(spec, vocab_size) + attention


def peak_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """The device's peak in FLOP/s: ``override_tflops`` when given, else the bf16 peak of a
    known GPU; None on CPU or an unknown GPU (MFU is then not reported)."""
    if override_tflops is not None:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for model, tflops in PEAK_BF16_TFLOPS:
        if model in name:
            return tflops * 1e12
    return None
