"""A Llama-style decoder in one readable file: token embedding, RMSNorm, grouped-query attention
with RoPE, SwiGLU MLP, optional tied embeddings.

The mixer packs several documents into each sequence, so attention must not cross documents: a
token sees only earlier tokens of its own document, and RoPE positions restart at 0 at every
document start. How attention runs is chosen once per batch, in one place (``plan_attention``):

- ``causal``: no row of the batch holds a document boundary (one document per row), so the
  document mask is the plain causal one: ``scaled_dot_product_attention`` with ``is_causal=True``
  and no mask, which lets the fused kernels skip the blocks above the diagonal, with
  ``enable_gqa`` sharing key/value heads without copying them.
- ``flex`` (training on CUDA): rows pack several documents: FlexAttention (compiled) with a
  document-causal ``BlockMask``, which also skips every block that lies across two documents.
- ``masked`` (CPU, and CUDA without gradients): SDPA with a boolean block-diagonal causal mask
  [batch, 1, seq, seq] built from the batch's ``segments``.

They compute the same function to float rounding (``tests/test_trainer_model.py`` checks each
against the others, and ``tests/test_bench_trainer.py`` checks the model against transformers'
Llama). RoPE's cos/sin tables are computed once per sequence length and RoPE setting and looked
up at each token's position in its document. The inverse frequencies are a non-persistent buffer
that ``set_rope`` replaces when a phase changes the scaling; they are derived from the spec, not
learned, so checkpoints do not carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.spec import ModelSpec

try:  # FlexAttention is a prototype; without it packed batches use the masked path everywhere
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:  # pragma: no cover - every torch this project supports has it
    create_block_mask = flex_attention = None


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
    """Apply RoPE to ``x`` [..., head_dim], pairing dimension i with i + d/2; ``cos`` and ``sin``
    [..., head_dim / 2] broadcast against it (the model rotates [batch, seq, heads, head_dim])."""
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


# ---------------------------------------------------------------------------------------------
# How attention runs: chosen once per batch (plan_attention), applied per layer (attend)


@dataclass(frozen=True)
class AttentionPlan:
    """``kind`` is ``causal`` (no mask), ``masked`` or ``flex`` (``mask`` the boolean mask or the
    ``BlockMask``)."""

    kind: str
    mask: Any = None  # masked: boolean [batch, 1, seq, seq]; flex: a BlockMask


def document_block_mask(segments: torch.Tensor, compiled: bool = True) -> Any:
    """FlexAttention's document-causal ``BlockMask`` for ``segments`` [batch, seq]. ``compiled``
    builds it with ``torch.compile(create_block_mask)``, which never materialises the
    [batch, seq, seq] mask (eager does, chunk by chunk: fine for tests)."""
    document = document_starts(segments).cumsum(dim=1)

    def same_document_causal(b, h, q_index, kv_index):
        return (document[b, q_index] == document[b, kv_index]) & (q_index >= kv_index)

    batch, seq = segments.shape
    build = _compiled("create_block_mask") if compiled else create_block_mask
    return build(same_document_causal, batch, None, seq, seq, device=segments.device)


# FlexAttention's compiled CUDA kernel needs heads at least this wide (its tiles' tl.dot)
FLEX_MIN_HEAD_DIM = 16


def flex_available(device: torch.device, head_dim: int) -> bool:
    """FlexAttention for packed training batches: on CUDA (on CPU it has no backward), with
    gradients on and heads of at least ``FLEX_MIN_HEAD_DIM``. Without gradients (evaluation, FIM
    decoding, whose length grows by a token per step and would recompile the kernel at every
    one) the masked path is used."""
    return (flex_attention is not None and device.type == "cuda" and torch.is_grad_enabled()
            and head_dim >= FLEX_MIN_HEAD_DIM)


def plan_attention(segments: torch.Tensor, use_flex: bool | None = None, *, head_dim: int) -> AttentionPlan:
    """The one place that picks how attention runs for a batch of ``segments`` [batch, seq]
    through heads ``head_dim`` wide.

    ``use_flex`` None: FlexAttention for packed rows where ``flex_available`` (CUDA training);
    True or False forces the choice for packed rows (tests). Looking for a boundary reads one
    bool back from the device: a sync per forward, which the trainer pays anyway for the loss."""
    packed = bool(document_starts(segments)[:, 1:].any())
    if not packed:
        return AttentionPlan("causal")
    if use_flex is None:
        use_flex = flex_available(segments.device, head_dim)
    if use_flex:
        return AttentionPlan("flex", document_block_mask(segments, compiled=segments.device.type == "cuda"))
    return AttentionPlan("masked", document_mask(segments))


_COMPILED: dict[str, Callable] = {}


def _compiled(name: str) -> Callable:
    """``torch.compile`` of FlexAttention's functions, made on first use (CUDA only)."""
    if name not in _COMPILED:
        function = {"flex_attention": flex_attention, "create_block_mask": create_block_mask}[name]
        _COMPILED[name] = torch.compile(function, dynamic=False)
    return _COMPILED[name]


def sdpa_shares_kv_heads(q: torch.Tensor, masked: bool) -> bool:
    """Whether SDPA can take grouped key/value heads (``enable_gqa``) and still run a fused
    kernel. On CPU it can, mask or not. On CUDA only its flash kernel can: no mask, half
    precision (bf16 under the trainer's autocast); otherwise it would fall back to the math
    kernel, so the heads are copied out instead."""
    if q.device.type == "cpu":
        return True
    half = (torch.float16, torch.bfloat16)
    device = q.device.type
    # both calls are constants to torch.compile (torch.amp.is_autocast_available, which would
    # admit other devices, is not: it broke each compiled block in two on the GPU)
    autocast = (device == "cuda" and torch.is_autocast_enabled(device)
                and torch.get_autocast_dtype(device) in half)
    return not masked and (q.dtype in half or autocast)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: AttentionPlan) -> torch.Tensor:
    """Attention of ``q`` [batch, heads, seq, head_dim] over ``k``, ``v`` [batch, kv_heads, seq,
    head_dim] (each key/value head shared by a group of query heads) as ``plan`` says."""
    grouped = q.shape[1] != k.shape[1]
    if plan.kind == "flex":
        # autocast does not reach into FlexAttention: give q and k the dtype v came out in
        q, k = q.to(v.dtype), k.to(v.dtype)
        run = _compiled("flex_attention") if q.device.type == "cuda" else flex_attention
        return run(q, k, v, block_mask=plan.mask, enable_gqa=grouped)
    if grouped and not sdpa_shares_kv_heads(q, masked=plan.kind == "masked"):
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        grouped = False
    if plan.kind == "causal":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=grouped)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=plan.mask, enable_gqa=grouped)


# ---------------------------------------------------------------------------------------------
# The model


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = spec.n_heads, spec.kv_heads, spec.head_dim
        self.q = nn.Linear(spec.d_model, spec.n_heads * spec.head_dim, bias=False)
        self.kv = nn.Linear(spec.d_model, 2 * spec.kv_heads * spec.head_dim, bias=False)
        self.out = nn.Linear(spec.n_heads * spec.head_dim, spec.d_model, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, plan: AttentionPlan
    ) -> torch.Tensor:
        """``cos``, ``sin`` [batch or 1, seq, 1, head_dim / 2]."""
        batch, seq, _ = x.shape
        # RoPE on [batch, seq, heads, head_dim], as the projections lay it out (contiguous);
        # then heads to the front for attention
        q = rotate(self.q(x).view(batch, seq, self.n_heads, self.head_dim), cos, sin)
        k, v = self.kv(x).view(batch, seq, 2, self.kv_heads, self.head_dim).unbind(dim=2)
        k = rotate(k, cos, sin)
        y = attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), plan)
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
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, plan: AttentionPlan
    ) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, plan)
        return x + self.mlp(self.mlp_norm(x))


IGNORE = -100  # a target id that ``token_losses`` skips (loss 0)


def token_losses(hidden: torch.Tensor, head: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy in float32 of each position: ``hidden`` [batch, seq, d_model]
    through the output matrix ``head`` [vocab, d_model] against ``targets`` [batch, seq]
    (``IGNORE`` where no target). Compiled, the float32 logits and the softmax are fused into
    the loss and never written out whole: at 125M parameters and a 32k vocabulary they were a
    tenth of a GPU step's time, all of it memory traffic."""
    logits = F.linear(hidden, head).float()
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                           reduction="none").view_as(targets)


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
        self._rope_cache: tuple | None = None
        self.use_flex: bool | None = None  # for packed batches; None: FlexAttention in CUDA training
        self.token_losses: Callable[..., torch.Tensor] = token_losses  # compiled by compile_blocks
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

    def rope_table(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [length, head_dim / 2] at positions 0..length-1, times the attention
        scale; computed once per length and RoPE setting (a new ``inv_freq`` tensor, an in-place
        change to it, another scale or device all count as new; so does leaving inference mode,
        whose tensors autograd cannot save)."""
        inv_freq = self.inv_freq
        key = (length, inv_freq._version, self.attention_scale, inv_freq.device,
               torch.is_inference_mode_enabled())
        cache = self._rope_cache
        if cache is None or cache[0] is not inv_freq or cache[1] != key:
            angles = torch.arange(length, device=inv_freq.device, dtype=torch.float32)[:, None] * inv_freq
            tables = (angles.cos() * self.attention_scale, angles.sin() * self.attention_scale)
            self._rope_cache = cache = (inv_freq, key, tables)
        return cache[2]

    def rope_tables(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [batch, 1, seq, head_dim / 2] at each token's position in its document."""
        cos, sin = self.rope_table(segments.shape[1])
        positions = document_positions(segments)
        return cos[positions][:, None], sin[positions][:, None]

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor,
                targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [batch, seq, vocab] for ``tokens`` [batch, seq] with document ``segments``;
        given ``targets`` [batch, seq], each position's loss instead (``token_losses``). The
        loss is computed here, not by the caller, so that it runs inside a DDP/FSDP wrapper's
        forward and can be compiled with the model."""
        x = self.embed(tokens)
        plan = plan_attention(segments, self.use_flex, head_dim=self.spec.head_dim)
        cos, sin = self.rope_table(tokens.shape[1])
        if plan.kind != "causal":  # positions restart inside rows
            positions = document_positions(segments)
            cos, sin = cos[positions], sin[positions]
        else:  # one table for every row, of the same rank: compiled blocks see one signature
            cos, sin = cos[None], sin[None]
        # [batch or 1, seq, 1, head_dim / 2], against [batch, seq, heads, head_dim]
        cos, sin = cos.to(x.dtype).unsqueeze(-2), sin.to(x.dtype).unsqueeze(-2)
        for block in self.blocks:
            x = block(x, cos, sin, plan)
        if targets is not None:
            return self.token_losses(self.norm(x), self.head.weight, targets)
        return self.head(self.norm(x))

    def compile_blocks(self) -> None:
        """``torch.compile`` each block in place, as torchtitan does, and the loss: the attention
        plan and the RoPE gather stay eager (they look at the data), parameter names stay as
        they are (so checkpoints do not change), and under FSDP2 each block is compiled before
        it is sharded."""
        for block in self.blocks:
            block.compile()
        self.token_losses = torch.compile(token_losses)

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())
