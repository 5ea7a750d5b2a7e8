"""A Llama-style decoder in one readable file: token embedding, RMSNorm, grouped-query attention
with RoPE, SwiGLU MLP, optional tied embeddings.

The mixer packs several documents into each sequence, so attention must not cross documents:
attention goes through ``scaled_dot_product_attention`` with a boolean block-diagonal causal
mask built from the batch's ``segments`` (a token sees only earlier tokens of its own document),
and RoPE positions restart at 0 at every document start. The RoPE inverse frequencies are a
non-persistent buffer that ``set_rope`` replaces when a phase changes the scaling; they are
derived from the spec, not learned, so checkpoints do not carry them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.spec import ModelSpec


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 whatever the autocast dtype: the mean of squares loses too much in bf16.
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply RoPE to ``x`` [batch, heads, seq, head_dim], pairing dimension i with i + d/2."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)


def document_starts(segments: torch.Tensor) -> torch.Tensor:
    """Boolean [batch, seq]: True at the first token of every document."""
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return starts


def document_positions(segments: torch.Tensor) -> torch.Tensor:
    """Position of each token within its document: 0 at every document start."""
    index = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    starts_here = torch.where(document_starts(segments), index, torch.zeros_like(index))
    return index - starts_here.cummax(dim=1).values


def document_mask(segments: torch.Tensor) -> torch.Tensor:
    """Boolean [batch, 1, seq, seq]: True where query i may attend to key j (j <= i, same
    document). Documents are runs of equal segment ids, so a repeated id never joins two runs."""
    document = document_starts(segments).cumsum(dim=1)
    seq = segments.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=segments.device).tril()
    same_document = document[:, :, None] == document[:, None, :]
    return (same_document & causal)[:, None]


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = spec.n_heads, spec.kv_heads, spec.head_dim
        self.q = nn.Linear(spec.d_model, spec.n_heads * spec.head_dim, bias=False)
        self.kv = nn.Linear(spec.d_model, 2 * spec.kv_heads * spec.head_dim, bias=False)
        self.out = nn.Linear(spec.n_heads * spec.head_dim, spec.d_model, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        batch, seq, _ = x.shape
        q = self.q(x).view(batch, seq, self.n_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(batch, seq, 2, self.kv_heads, self.head_dim).unbind(dim=2)
        q, k, v = rotate(q, cos, sin), rotate(k.transpose(1, 2), cos, sin), v.transpose(1, 2)
        # Share each key/value head across its group of query heads by repeating it: SDPA's
        # enable_gqa runs only on the flash kernel (no masks) or the math one on CUDA, so with
        # a document mask it would force the slow math kernel.
        groups = self.n_heads // self.kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(batch, seq, -1))


class SwiGLU(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.gate_up = nn.Linear(spec.d_model, 2 * spec.ffn_hidden, bias=False)
        self.down = nn.Linear(spec.ffn_hidden, spec.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(spec.d_model, spec.norm_eps)
        self.attention = Attention(spec)
        self.mlp_norm = RMSNorm(spec.d_model, spec.norm_eps)
        self.mlp = SwiGLU(spec)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, mask)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    def __init__(self, spec: ModelSpec, vocab_size: int) -> None:
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(vocab_size, spec.d_model)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layers))
        self.norm = RMSNorm(spec.d_model, spec.norm_eps)
        self.head = nn.Linear(spec.d_model, vocab_size, bias=False)
        if spec.tie_embeddings:
            self.head.weight = self.embed.weight
        # Unscaled RoPE until a phase says otherwise.
        exponents = torch.arange(0, spec.head_dim, 2, dtype=torch.float64) / spec.head_dim
        self.register_buffer("inv_freq", (spec.rope_base**-exponents).float(), persistent=False)
        self.attention_scale = 1.0
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def set_rope(self, inv_freq: torch.Tensor, attention_scale: float) -> None:
        """Use ``inv_freq`` [head_dim // 2] and multiply cos/sin by ``attention_scale``."""
        if inv_freq.shape != self.inv_freq.shape:
            expected = tuple(self.inv_freq.shape)
            raise ValueError(f"inv_freq has shape {tuple(inv_freq.shape)}, expected {expected}")
        self.inv_freq = inv_freq.to(self.inv_freq.device, torch.float32)
        self.attention_scale = attention_scale

    def rope_tables(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [batch, 1, seq, head_dim / 2] at each token's position in its document."""
        positions = document_positions(segments).float()
        angles = positions[:, None, :, None] * self.inv_freq
        return angles.cos() * self.attention_scale, angles.sin() * self.attention_scale

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """Logits [batch, seq, vocab] for ``tokens`` [batch, seq] with document ``segments``."""
        x = self.embed(tokens)
        cos, sin = self.rope_tables(segments)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        mask = document_mask(segments)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.head(self.norm(x))

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())
