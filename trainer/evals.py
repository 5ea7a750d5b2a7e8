"""Evaluations a training loop can call between steps: pure functions of a model and a tokenizer,
no loop state. Each runs under ``torch.no_grad`` with the model in eval mode and puts the mode
back as it found it. They use the model's RoPE as it stands, so a loop that calls them at a
phase's end measures the phase's scaling.

- :func:`passkey_accuracy`: passkey retrieval (Mohtashami & Jaggi 2023, *Landmark Attention*,
  arXiv:2305.16300). A five-digit key is hidden at a seeded random depth in a filler of repeated
  sentences, and the prompt ends asking for it; the prompt and its answer together are exactly
  the context length. A trial is right when every answer token is the argmax of the logits at
  the position before it: teacher-forced, which is the same as greedy decoding of the answer
  (a wrong token anywhere makes both wrong).
- :func:`fim_exact_match`: fill-in-the-middle on held-out code. Each text loses a seeded middle
  (one line, or a short character range when no line fits), the PSM prompt
  ``<|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>`` is decoded greedily until the
  end-of-document token, and the result must equal the middle exactly (as the mixer trains it:
  :mod:`mixer.fim` ends a FIM document's middle with the end-of-document token).
- :func:`perplexity`: ``exp`` of mean losses, for the loss dicts the loop already records.

The model is anything called as ``model(tokens [B, S] int64, segments [B, S] int64) -> logits
[B, S, V]`` (:class:`trainer.model.Decoder`). Every prompt is one document (segments 0), except
that FIM decoding batches prompts of different lengths by padding them on the left as a
document of their own, which the block-diagonal mask keeps out of the prompt's attention and
positions.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from mixer.fim import fim_layout
from mixer.tokenizer import SpecialTokens, TokenizerError, token_bytes

FILLER_SENTENCES: tuple[str, ...] = (
    "The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
    "There and back again.",
)
QUESTION = "What is the pass key? The pass key is"
FIM_CHAR_SPAN = 16  # the longest middle drawn as a character range, when no line fits


# ---------------------------------------------------------------------------------------------
# Shared


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the model's mode as it was afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def logits_of(model: nn.Module, tokens: torch.Tensor, segments: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The model's logits, under bf16 autocast on CUDA as in training (``trainer.train.batch_loss``)."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(tokens.to(device), segments.to(device))


def encode(tokenizer: Tokenizer, text: str) -> np.ndarray:
    return np.asarray(tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)


def perplexity(loss_by_domain: dict[str, float]) -> dict[str, float]:
    """``exp`` of each mean loss (nats per token); ``inf`` where it overflows."""
    result = {}
    for name, loss in loss_by_domain.items():
        try:
            result[name] = math.exp(loss)
        except OverflowError:
            result[name] = math.inf
    return result


# ---------------------------------------------------------------------------------------------
# Passkey retrieval


@dataclass(frozen=True)
class PasskeyPrompt:
    ids: np.ndarray  # int64 [context length]: filler with the key sentence, question, answer
    answer_start: int  # index of the first answer token (the answer runs to the end)
    passkey: str
    key_start: int  # index of the key sentence's first token
    key_end: int  # index just after the key sentence
    depth: float  # the key's position as a fraction of the filler: filler tokens before it / filler tokens


def _filler(tokenizer: Tokenizer, n_tokens: int) -> tuple[np.ndarray, list[int]]:
    """``n_tokens`` of the repeated filler sentences (the last one cut where the count runs out)
    and the indices where a sentence starts, with ``n_tokens`` itself."""
    sentences = [encode(tokenizer, " " + sentence) for sentence in FILLER_SENTENCES]
    pieces, starts, at = [], [], 0
    while at < n_tokens:
        sentence = sentences[len(pieces) % len(sentences)]
        starts.append(at)
        pieces.append(sentence)
        at += len(sentence)
    ids = np.concatenate(pieces)[:n_tokens] if pieces else np.zeros(0, dtype=np.int64)
    return ids, [*starts, n_tokens]


def passkey_prompt(tokenizer: Tokenizer, length: int, rng: np.random.Generator) -> PasskeyPrompt:
    """One passkey trial of exactly ``length`` tokens. Draws the key, then the depth; the key
    sentence goes at the sentence boundary of the filler nearest that depth."""
    passkey = str(int(rng.integers(10_000, 100_000)))
    drawn = float(rng.random())
    key = encode(tokenizer, f" The pass key is {passkey}. Remember it. {passkey} is the pass key.")
    question = encode(tokenizer, " " + QUESTION)
    answer = encode(tokenizer, " " + passkey)
    n_filler = length - len(key) - len(question) - len(answer)
    if n_filler < 0:
        raise ValueError(f"passkey context length {length} is shorter than the key, question and "
                         f"answer ({length - n_filler} tokens)")
    filler, boundaries = _filler(tokenizer, n_filler)
    cut = min(boundaries, key=lambda boundary: abs(boundary - drawn * n_filler))
    ids = np.concatenate([filler[:cut], key, filler[cut:], question, answer])
    return PasskeyPrompt(
        ids=ids, answer_start=length - len(answer), passkey=passkey, key_start=cut,
        key_end=cut + len(key), depth=cut / n_filler if n_filler else 0.0,
    )


def passkey_prompts(tokenizer: Tokenizer, length: int, trials: int, seed: int) -> list[PasskeyPrompt]:
    """The trials of one context length; trial ``i`` draws from ``default_rng([seed, length, i])``,
    so each is the same whatever other lengths or trial counts are asked for."""
    return [passkey_prompt(tokenizer, length, np.random.default_rng([seed, length, trial]))
            for trial in range(trials)]


def passkey_accuracy(
    model: nn.Module,
    tokenizer: Tokenizer,
    special: SpecialTokens,
    context_lengths: Sequence[int],
    trials: int,
    seed: int,
    device: torch.device | str,
    batch_size: int = 1,
) -> dict[int, float]:
    """Fraction of ``trials`` retrieved at each context length (same order as given). A trial
    is right when every answer token is the argmax at the position before it. ``batch_size``
    trials run per forward (logits are ``[batch, length, vocab]``: keep it small for long
    contexts). ``special`` is unused (the prompt has no special token) but kept so every eval
    takes the same arguments."""
    del special
    if trials <= 0:
        raise ValueError("trials must be positive")
    device = torch.device(device)
    accuracy: dict[int, float] = {}
    with evaluating(model):
        for length in context_lengths:
            prompts = passkey_prompts(tokenizer, length, trials, seed)
            right = 0
            for first in range(0, trials, batch_size):
                chunk = prompts[first:first + batch_size]
                tokens = torch.from_numpy(np.stack([prompt.ids for prompt in chunk]))
                logits = logits_of(model, tokens, torch.zeros_like(tokens), device)
                predicted = logits.argmax(dim=-1).cpu()
                for row, prompt in enumerate(chunk):
                    start = prompt.answer_start
                    right += bool(torch.equal(predicted[row, start - 1:length - 1], tokens[row, start:]))
            accuracy[length] = right / trials
    return accuracy


# ---------------------------------------------------------------------------------------------
# Fill-in-the-middle exact match


@dataclass(frozen=True)
class FimExample:
    prefix: str
    middle: str
    suffix: str


def fim_example(
    text: str, rng: np.random.Generator, tokenizer: Tokenizer, max_middle_tokens: int
) -> FimExample | None:
    """Cut ``text`` into prefix, middle and suffix. The middle is one non-blank line (without
    its line break) drawn among those of at most ``max_middle_tokens`` tokens; when no line
    qualifies, a range of 1 to ``FIM_CHAR_SPAN`` characters. None for an empty text."""
    if not text:
        return None
    lines = text.splitlines(keepends=True)
    offsets = np.cumsum([0, *(len(line) for line in lines)]).tolist()
    contents = [line.rstrip("\r\n") for line in lines]
    candidates = [index for index, content in enumerate(contents) if content.strip()]
    if candidates:
        sizes = tokenizer.encode_batch_fast([contents[index] for index in candidates], add_special_tokens=False)
        candidates = [index for index, size in zip(candidates, sizes) if len(size.ids) <= max_middle_tokens]
    if candidates:
        line = candidates[int(rng.integers(len(candidates)))]
        start, end = offsets[line], offsets[line] + len(contents[line])
    else:
        start = int(rng.integers(len(text)))
        end = start + int(rng.integers(1, min(FIM_CHAR_SPAN, len(text) - start) + 1))
    return FimExample(text[:start], text[start:end], text[end:])


def fim_prompt(
    example: FimExample, tokenizer: Tokenizer, special: SpecialTokens, budget: int | None = None
) -> np.ndarray:
    """The PSM prompt (int64) ending in ``<|fim_middle|>``. Longer than ``budget`` tokens, it
    loses tokens from the start of the prefix, then (the prefix gone) from the end of the suffix."""
    prefix, suffix = (
        np.asarray(encoding.ids, dtype=np.uint32)
        for encoding in tokenizer.encode_batch_fast([example.prefix, example.suffix], add_special_tokens=False)
    )
    if budget is not None:
        excess = len(prefix) + len(suffix) + 3 - budget
        if excess > 0:
            prefix, excess = prefix[min(excess, len(prefix)):], max(0, excess - len(prefix))
            suffix = suffix[:len(suffix) - excess]
    empty = np.zeros(0, dtype=np.uint32)
    return fim_layout(prefix, empty, suffix, False, special).astype(np.int64)


def greedy_decode(
    model: nn.Module,
    prompts: Sequence[np.ndarray],
    eod: int,
    pad: int,
    max_new_tokens: int,
    device: torch.device,
    batch_size: int = 8,
) -> list[list[int]]:
    """Greedy continuations of ``prompts`` (without the end token), up to ``max_new_tokens``
    each or the end token. No KV cache: a full forward per new token. Prompts of a batch are
    padded on the left with ``pad`` as a document of their own (segment 0, the prompt 1), so
    padding changes neither the prompt's attention nor its positions."""
    outputs: list[list[int]] = []
    for first in range(0, len(prompts), batch_size):
        chunk = prompts[first:first + batch_size]
        width = max(len(prompt) for prompt in chunk)
        tokens = torch.full((len(chunk), width), pad, dtype=torch.int64)
        segments = torch.zeros_like(tokens)
        for row, prompt in enumerate(chunk):
            tokens[row, width - len(prompt):] = torch.from_numpy(np.asarray(prompt, dtype=np.int64))
            segments[row, width - len(prompt):] = 1
        generated: list[list[int]] = [[] for _ in chunk]
        done = [False] * len(chunk)
        for _ in range(max_new_tokens):
            following = logits_of(model, tokens, segments, device)[:, -1].argmax(dim=-1).cpu()
            for row, token in enumerate(following.tolist()):
                if done[row]:
                    continue
                if token == eod:
                    done[row] = True
                else:
                    generated[row].append(token)
            if all(done):
                break
            tokens = torch.cat([tokens, following[:, None]], dim=1)
            segments = torch.cat([segments, segments[:, -1:]], dim=1)
        outputs.extend(generated)
    return outputs


def ids_to_text(tokenizer: Tokenizer, ids: Sequence[int], table: list[bytes] | None) -> str:
    """Exact text of ``ids``, special tokens written out (an emitted sentinel is never a match)."""
    if table is None:
        return tokenizer.decode(list(ids), skip_special_tokens=False)
    return b"".join(table[token] if token < len(table) else b"\xff" for token in ids).decode("utf-8", "replace")


def fim_exact_match(
    model: nn.Module,
    tokenizer: Tokenizer,
    special: SpecialTokens,
    texts: Sequence[str],
    seed: int,
    device: torch.device | str,
    max_new_tokens: int = 32,
    max_context: int | None = None,
    batch_size: int = 8,
) -> dict:
    """``{"exact_match": rate, "n": count}`` over the non-empty ``texts``. Text ``i`` draws its
    middle from ``default_rng([seed, i])``; only lines of at most ``max_new_tokens`` tokens are
    drawn, as longer ones cannot be produced. With ``max_context``, prompt plus generation fit
    in it: the prompt is cut to ``max_context - max_new_tokens`` tokens (see :func:`fim_prompt`)."""
    if max_new_tokens <= 0:
        raise ValueError("max_new_tokens must be positive")
    budget = None
    if max_context is not None:
        budget = max_context - max_new_tokens
        if budget < 3:
            raise ValueError(f"max_context {max_context} leaves no room for the three FIM sentinels "
                             f"and {max_new_tokens} new tokens")
    examples = [fim_example(text, np.random.default_rng([seed, index]), tokenizer, max_new_tokens)
                for index, text in enumerate(texts)]
    examples = [example for example in examples if example is not None]
    if not examples:
        return {"exact_match": 0.0, "n": 0}
    prompts = [fim_prompt(example, tokenizer, special, budget) for example in examples]
    try:
        table: list[bytes] | None = token_bytes(tokenizer)
    except TokenizerError:  # not byte-level: decode instead
        table = None
    device = torch.device(device)
    with evaluating(model):
        outputs = greedy_decode(model, prompts, special.eod, special.pad, max_new_tokens, device, batch_size)
    right = sum(ids_to_text(tokenizer, ids, table) == example.middle for ids, example in zip(outputs, examples))
    return {"exact_match": right / len(examples), "n": len(examples)}
