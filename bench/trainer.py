"""Training-step throughput of ``trainer.model.Decoder`` against ``transformers``'
``LlamaForCausalLM`` of the same configuration, on CPU, side by side in one run.

Each configuration (``--config``; by default a ~10M and a ~125M parameter model, both with a
32,000-token vocabulary, tied embeddings and grouped-query attention) is built once as our
``Decoder`` (seeded random init) and once as ``LlamaForCausalLM`` (SDPA attention, the default;
no attention mask, so plain causal attention, which transformers runs as SDPA with
``is_causal=True`` and ``enable_gqa``) holding a copy of the same weights (``copy_into_llama``).
Before any timing the two are run on the benchmark's batch and the largest logit difference is
recorded: they compute the same function (``tests/test_bench_trainer.py`` checks this to 1e-4
on small models, for packed batches too).

A step is what the trainer does: forward on ``batch x seq_len`` random token ids, the mean
next-token cross-entropy (on float32 logits) against random targets, backward, gradient
clipping to norm 1, AdamW (weight decay on matrices only) and ``zero_grad``. Ours computes the
loss inside its forward (``Decoder(tokens, segments, targets)``, as the trainer calls it; with
``--compile`` the loss is compiled too); transformers' logits go through ``F.cross_entropy`` as
a training loop over ``LlamaForCausalLM`` does. Both models see the same batch. Ours gets ``segments`` of all zeros (one document per row: the trainer's batch when
no document boundary falls inside a row). ``ours_packed`` is ours again on a batch whose rows
pack several documents (lengths drawn uniformly from 1..``seq_len/2``, so a row holds ~4), which
takes the per-document masked attention path that transformers has no counterpart for here.

Timing: ``torch.set_num_threads(--threads)`` (2), ``--warmup`` untimed steps per model, then
``--repeats`` rounds; in each round every model runs ``--steps`` steps, in an order that is
rotated, and reversed every other round (with three models, six rounds run all six orders), so a
drift of the machine (other processes, thermals) and whatever one model leaves behind for the next
(caches, the allocator) fall on all of them alike. tokens/s is batch x seq_len x steps over the
round's wall time; the median round is the figure and the best round is reported beside it. The
ratio ours / transformers is given both as the ratio of the medians and as the median of the
per-round ratios (each pair ran within one round).

MFU (model FLOPs utilisation) counts FLOPs as the trainer does (``trainer.throughput``, PaLM's
6·N + 12·L·d·T, N every parameter but an input-only embedding table), so the two report the
same figure. MFU = FLOPs per token x tokens/s / peak (``mfu`` at the median round, ``mfu_best`` at the best).
The peak is ``--peak-tflops`` when given; otherwise it is measured before and after the runs, the
best of several float32 ``torch.matmul`` of square matrices (1024 to 4096) on the same threads:
a practical peak, below the datasheet FMA rate, and as exposed to other load on the machine as
the runs are. The JSON says which was used.

On a GPU (``--device cuda``) both models run under bf16 autocast, as the trainer does, the
timing waits for the device (``torch.cuda.synchronize``), and the peak is the GPU's bf16 datasheet
figure from ``trainer.throughput`` unless ``--peak-tflops`` is given. ``--compile`` compiles
every block of ours (``Decoder.compile_blocks``, the trainer's ``compile: true``) and every decoder
layer of theirs, and the warmup then includes the compilation. The issue's GPU target is MFU
≥ 45% for ``125m:seq_len=2048`` with ``--device cuda --compile``.

    .venv/bin/python bench/trainer.py [--config NAME[:key=value,...]] [--threads 2]
        [--warmup 1] [--repeats 6] [--steps 1] [--peak-tflops T] [--device cpu|cuda]
        [--compile] [--output bench/results]

``--config`` may repeat; NAME is a preset (``10m``, ``125m``) whose fields the key=value pairs
override (d_model, n_layers, n_heads, n_kv_heads, ffn_hidden, vocab, batch, seq_len), or a new
name with all of them given. Writes ``bench/results/trainer.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.results import write_result  # noqa: E402
from trainer.model import Decoder  # noqa: E402
from trainer.spec import ModelSpec, OptimizerSpec  # noqa: E402
from trainer.throughput import flops_per_token, matmul_parameters, peak_flops  # noqa: E402
from trainer.train import build_optimizer  # noqa: E402

PRESETS: dict[str, dict[str, int]] = {
    # 8.2M of the 12.1M parameters are the (tied) embedding: a small model is mostly vocabulary
    "10m": {"d_model": 256, "n_layers": 4, "n_heads": 8, "n_kv_heads": 4, "ffn_hidden": 1024,
            "vocab": 32_000, "batch": 4, "seq_len": 512},
    "125m": {"d_model": 768, "n_layers": 12, "n_heads": 12, "n_kv_heads": 4, "ffn_hidden": 3072,
             "vocab": 32_000, "batch": 2, "seq_len": 512},
}
# the trainer's AdamW (weight decay on matrices only) at a typical mid-training setting
OPTIMIZER = OptimizerSpec(lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
MODEL_KEYS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden")
KEYS = (*MODEL_KEYS, "vocab", "batch", "seq_len")


# ---------------------------------------------------------------------------------------------
# The same model in transformers


def llama_config(spec: ModelSpec, vocab_size: int, max_positions: int = 4096):
    """A ``LlamaConfig`` of the same shape, norm epsilon, RoPE base and embedding tying."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=spec.d_model, intermediate_size=spec.ffn_hidden,
        num_hidden_layers=spec.n_layers, num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.kv_heads, head_dim=spec.head_dim, hidden_act="silu",
        max_position_embeddings=max_positions, rms_norm_eps=spec.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_base},
        tie_word_embeddings=spec.tie_embeddings, attention_bias=False, mlp_bias=False,
        attention_dropout=0.0, use_cache=False, pad_token_id=None, bos_token_id=None,
        eos_token_id=None,
    )


def build_llama(spec: ModelSpec, vocab_size: int, max_positions: int = 4096):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM._from_config(llama_config(spec, vocab_size, max_positions),
                                         attn_implementation="sdpa")


@torch.no_grad()
def copy_into_llama(ours: Decoder, theirs) -> None:
    """Give ``theirs`` (a ``LlamaForCausalLM``) our weights and our RoPE tables.

    Our fused projections split along their output rows: ``kv`` is [keys; values] and
    ``gate_up`` is [gate; up]. Both RoPEs pair dimension i with i + head_dim/2 (transformers'
    ``rotate_half``), so q and k need no permutation. Our ``inv_freq`` and ``attention_scale``
    (after ``set_rope``) go into its rotary embedding, so a scaled RoPE is compared too."""
    spec = ours.spec
    kv_width = spec.kv_heads * spec.head_dim
    inner = theirs.model
    inner.embed_tokens.weight.copy_(ours.embed.weight)
    for block, layer in zip(ours.blocks, inner.layers, strict=True):
        layer.input_layernorm.weight.copy_(block.attention_norm.weight)
        layer.post_attention_layernorm.weight.copy_(block.mlp_norm.weight)
        attention = layer.self_attn
        attention.q_proj.weight.copy_(block.attention.q.weight)
        keys, values = block.attention.kv.weight.split(kv_width, dim=0)
        attention.k_proj.weight.copy_(keys)
        attention.v_proj.weight.copy_(values)
        attention.o_proj.weight.copy_(block.attention.out.weight)
        gate, up = block.mlp.gate_up.weight.split(spec.ffn_hidden, dim=0)
        layer.mlp.gate_proj.weight.copy_(gate)
        layer.mlp.up_proj.weight.copy_(up)
        layer.mlp.down_proj.weight.copy_(block.mlp.down.weight)
    inner.norm.weight.copy_(ours.norm.weight)
    if not spec.tie_embeddings:
        theirs.lm_head.weight.copy_(ours.head.weight)
    rotary = inner.rotary_emb
    rotary.inv_freq.copy_(ours.inv_freq)
    rotary.original_inv_freq.copy_(ours.inv_freq)
    rotary.attention_scaling = ours.attention_scale


# ---------------------------------------------------------------------------------------------
# FLOPs


def measure_peak_flops(sizes: tuple[int, ...] = (1024, 2048, 3072, 4096), repeats: int = 5) -> float:
    """The best float32 matmul rate (FLOP/s) over square sizes, on the current threads."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.matmul(a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


# ---------------------------------------------------------------------------------------------
# Training steps


def packed_segments(batch: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """Rows of documents with lengths uniform in 1..seq_len/2, numbered from 0 in each row."""
    segments = torch.zeros(batch, seq_len, dtype=torch.long)
    for row in range(batch):
        at, document = 0, 0
        while at < seq_len:
            length = int(torch.randint(1, seq_len // 2 + 1, (1,), generator=generator))
            segments[row, at:at + length] = document
            at, document = at + length, document + 1
    return segments


def training_step(model: torch.nn.Module, token_losses: Callable[[], torch.Tensor],
                  optimizer: torch.optim.Optimizer, device: torch.device) -> float:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = token_losses().mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def bench_config(name: str, fields: dict[str, int], args: argparse.Namespace) -> dict:
    spec = ModelSpec(vocab_size=fields["vocab"], **{key: fields[key] for key in MODEL_KEYS})
    vocab, batch, seq_len = fields["vocab"], fields["batch"], fields["seq_len"]
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    ours = Decoder(spec, vocab).train()
    theirs = build_llama(spec, vocab, max_positions=max(seq_len, 4096)).train()
    copy_into_llama(ours, theirs)
    parameters = ours.parameter_count()
    assert parameters == sum(p.numel() for p in theirs.parameters()), "the two models differ in size"
    packed_ours = Decoder(spec, vocab).train()
    packed_ours.load_state_dict(ours.state_dict())
    ours, theirs, packed_ours = (model.to(device) for model in (ours, theirs, packed_ours))

    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, vocab, (batch, seq_len + 1), generator=generator)
    tokens, targets = ids[:, :-1].contiguous().to(device), ids[:, 1:].contiguous().to(device)
    one_document = torch.zeros_like(tokens)
    packed = packed_segments(batch, seq_len, generator).to(device)

    with torch.no_grad():  # before compiling: the eager models compute the same function
        difference = (ours(tokens, one_document) - theirs(input_ids=tokens).logits).abs().max().item()
    if args.compile:
        for model in (ours, packed_ours):
            model.compile_blocks()
        for layer in theirs.model.layers:
            layer.compile()

    def llama_losses() -> torch.Tensor:  # what a transformers training loop does with logits
        logits = theirs(input_ids=tokens).logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")

    # ours: the trainer's call (Decoder.forward with targets: the loss inside the model)
    runners = {
        "ours": (ours, lambda: ours(tokens, one_document, targets)),
        "transformers": (theirs, llama_losses),
        "ours_packed": (packed_ours, lambda: packed_ours(tokens, packed, targets)),
    }
    if args.no_packed:
        del runners["ours_packed"]
    optimizers = {label: build_optimizer(model, OPTIMIZER) for label, (model, _) in runners.items()}

    def run(label: str, steps: int) -> float:
        model, forward = runners[label]
        start = time.perf_counter()
        for _ in range(steps):
            training_step(model, forward, optimizers[label], device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    print(f"bench: {name}: {parameters:,} parameters, batch {batch} x {seq_len}, "
          f"max |logit difference| {difference:.2e}; warming up ...", flush=True)
    for label in runners:
        run(label, args.warmup)
    labels = list(runners)
    rounds: dict[str, list[float]] = {label: [] for label in labels}
    tokens_per_round = batch * seq_len * args.steps
    for number in range(args.repeats):
        order = labels[number % len(labels):] + labels[:number % len(labels)]
        if number % 2:  # rotated and reversed in turn: with 3 models, 6 rounds run every order
            order.reverse()
        for label in order:
            rounds[label].append(tokens_per_round / run(label, args.steps))
        print(f"bench: {name}: round {number + 1}/{args.repeats}: " + ", ".join(
            f"{label} {rounds[label][-1]:,.0f} tok/s" for label in labels), flush=True)

    per_token = flops_per_token(spec, vocab, seq_len)
    result: dict = {
        "model": {key: fields[key] for key in (*MODEL_KEYS, "vocab")}
        | {"tie_embeddings": spec.tie_embeddings},
        "batch": batch, "seq_len": seq_len, "tokens_per_step": batch * seq_len,
        "parameters": parameters,
        "parameters_non_embedding": parameters - vocab * spec.d_model,
        "parameters_in_6N": matmul_parameters(spec, vocab),
        "flops_per_token": per_token,
        "logits_max_abs_difference": difference,
    }
    for label in labels:
        median = statistics.median(rounds[label])
        result[label] = {
            "tokens_per_s": round(median), "tokens_per_s_best": round(max(rounds[label])),
            "tokens_per_s_rounds": [round(value) for value in rounds[label]],
            "step_seconds": round(batch * seq_len / median, 4),
        }
    result["ratio_ours_vs_transformers"] = round(result["ours"]["tokens_per_s"]
                                                 / result["transformers"]["tokens_per_s"], 3)
    # paired within each round (the two ran back to back), so less exposed to the machine's drift
    paired = [mine / theirs for mine, theirs in zip(rounds["ours"], rounds["transformers"])]
    result["ratio_per_round"] = [round(value, 3) for value in paired]
    result["ratio_median_of_rounds"] = round(statistics.median(paired), 3)
    return result


def parse_config(text: str) -> tuple[str, dict[str, int]]:
    name, _, overrides = text.partition(":")
    fields = dict(PRESETS.get(name, {}))
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        if key not in KEYS:
            raise argparse.ArgumentTypeError(f"unknown key {key!r} in --config {text!r}; known: {KEYS}")
        fields[key] = int(value)
    missing = [key for key in KEYS if key not in fields]
    if missing:
        raise argparse.ArgumentTypeError(f"--config {text!r} is not a preset and lacks {missing}")
    return name, fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=parse_config, action="append",
                        help=f"NAME[:key=value,...] (presets {sorted(PRESETS)}; may repeat)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model")
    parser.add_argument("--repeats", type=int, default=6, help="timed rounds")
    parser.add_argument("--steps", type=int, default=1, help="steps per model per round")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak FLOP rate for MFU, in TFLOP/s (default: measure a float32 matmul)")
    parser.add_argument("--no-packed", action="store_true", help="skip ours on a packed batch")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile every block of both models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    configs = args.config or [parse_config(name) for name in PRESETS]
    torch.set_num_threads(args.threads)

    import transformers

    measured: list[float] = []
    gpu = torch.device(args.device) if args.device == "cuda" else None
    datasheet = peak_flops(gpu, args.peak_tflops) if gpu is not None else None
    if gpu is not None and datasheet is None:
        parser.error(f"no known bf16 peak for {torch.cuda.get_device_name(gpu)}: give --peak-tflops")
    if args.peak_tflops is None and gpu is None:  # before and after the runs; the better of the two
        print("bench: measuring the float32 matmul peak ...", flush=True)
        measured.append(measure_peak_flops())
        print(f"bench: {measured[0] / 1e12:.3f} TFLOP/s", flush=True)
    results = {name: bench_config(name, fields, args) for name, fields in configs}
    if args.peak_tflops is not None:
        peak, source = args.peak_tflops * 1e12, "--peak-tflops"
    elif gpu is not None:
        peak, source = datasheet, f"bf16 datasheet peak of {torch.cuda.get_device_name(gpu)}"
    else:
        measured.append(measure_peak_flops())
        peak = max(measured)
        source = "measured: the best float32 torch.matmul (square, 1024-4096) before and after the runs"
    print(f"bench: peak {peak / 1e12:.3f} TFLOP/s ({source})", flush=True)
    for config in results.values():
        for label in ("ours", "transformers", "ours_packed"):
            if label in config:
                timing = config[label]
                timing["mfu"] = round(config["flops_per_token"] * timing["tokens_per_s"] / peak, 4)
                timing["mfu_best"] = round(config["flops_per_token"] * timing["tokens_per_s_best"] / peak, 4)
    result = {
        "benchmark": "trainer",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__},
        "threads": args.threads, "device": torch.cuda.get_device_name(gpu) if gpu is not None else "cpu",
        "dtype": "bfloat16 autocast" if gpu is not None else "float32", "compile": args.compile,
        "warmup": args.warmup, "repeats": args.repeats, "steps_per_round": args.steps,
        "peak_tflops": round(peak / 1e12, 4), "peak_source": source,
        "peak_tflops_measured_before_and_after": [round(value / 1e12, 4) for value in measured],
        "mfu_convention": "PaLM: (6*N + 12*L*d*T) * tokens/s / peak; N = all parameters but an "
                          "input-only embedding table (tied: the shared matrix counts once)",
        "configs": results,
    }
    write_result(args.output, "trainer", result)


if __name__ == "__main__":
    main()
