"""Passkey retrieval and FIM exact match (trainer.evals) on the fixture tokenizer: prompts built
as described, exact lengths, seeded determinism, and scoring checked with oracle models (plain
modules that read the input ids) against a random decoder."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from mixer_fixtures import code, corpus_dir, special, tokenizer, tokenizer_path  # noqa: F401
from tokenizers import Tokenizer
from torch import nn

from mixer.tokenizer import SpecialTokens, token_bytes
from trainer.evals import (
    FILLER_SENTENCES,
    FimExample,
    fim_exact_match,
    fim_example,
    fim_prompt,
    passkey_accuracy,
    passkey_prompts,
    perplexity,
)
from trainer.model import Decoder
from trainer.spec import ModelSpec

LENGTHS = [128, 200, 257]  # the fixture's 400-token vocabulary needs about 100 for key and question
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def random_decoder(tokenizer: Tokenizer) -> Decoder:
    torch.manual_seed(0)
    spec = ModelSpec(vocab_size=None, d_model=32, n_layers=1, n_heads=4, ffn_hidden=64)
    return Decoder(spec, tokenizer.get_vocab_size())


@pytest.fixture(scope="module")
def code_texts() -> list[str]:
    return [code(random.Random(seed)) for seed in range(6)]


def one_hot(choices: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(choices, vocab).float() * 10.0


class Peek(nn.Module):
    """Puts all mass on the token that actually follows each position (it reads the answer in
    the teacher-forced input): retrieves every key. ``shift`` 0 predicts the current token
    instead (an off-by-one scorer would reward it); ``spoil_last`` gets the last token wrong."""

    def __init__(self, vocab: int, shift: int = 1, spoil_last: bool = False) -> None:
        super().__init__()
        self.vocab, self.shift, self.spoil_last = vocab, shift, spoil_last
        self.seen: list[tuple[bool, bool]] = []  # (training, grad enabled) at each call

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        assert tokens.dtype == torch.int64 and segments.dtype == torch.int64
        assert not segments.any()  # one document
        following = torch.roll(tokens, -self.shift, dims=1)
        if self.spoil_last:
            following[:, -2] = (tokens[:, -1] + 1) % self.vocab
        return one_hot(following, self.vocab)


class FimOracle(nn.Module):
    """Knows the texts: reads prefix and suffix back from the ids of the prompt's own segment,
    finds the text they come from, and emits the tokens of its middle, then the end token (or,
    with ``run_on``, one more token of the middle's first instead of stopping)."""

    def __init__(self, texts: list[str], tokenizer: Tokenizer, special: SpecialTokens, run_on: bool = False) -> None:
        super().__init__()
        self.texts, self.tokenizer, self.special, self.run_on = texts, tokenizer, special, run_on
        self.table = token_bytes(tokenizer)
        self.widths: list[int] = []

    def text(self, ids: list[int]) -> str:
        return b"".join(self.table[token] for token in ids).decode("utf-8")

    def next_token(self, row: list[int]) -> int:
        start = row.index(self.special.fim_prefix)
        suffix_at, middle_at = row.index(self.special.fim_suffix), row.index(self.special.fim_middle)
        prefix, suffix = self.text(row[start + 1:suffix_at]), self.text(row[suffix_at + 1:middle_at])
        text = next(text for text in self.texts
                    if text.startswith(prefix) and text.endswith(suffix) and len(text) > len(prefix) + len(suffix))
        middle = text[len(prefix):len(text) - len(suffix)]
        target = self.tokenizer.encode(middle, add_special_tokens=False).ids
        target += [target[0]] if self.run_on else [self.special.eod]
        generated = len(row) - middle_at - 1
        return target[generated] if generated < len(target) else self.special.eod

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        self.widths.append(tokens.shape[1])
        choices = torch.zeros_like(tokens)
        for row in range(tokens.shape[0]):
            own = (segments[row] == segments[row, -1]).nonzero().min().item()  # left padding is another document
            assert own == 0 or tokens[row, own - 1] == self.special.pad
            choices[row, -1] = self.next_token(tokens[row, own:].tolist())
        return one_hot(choices, self.tokenizer.get_vocab_size())


# ---------------------------------------------------------------------------------------------
# Passkey


def test_passkey_prompts_are_exactly_the_context_length(tokenizer):
    for length in LENGTHS:
        for prompt in passkey_prompts(tokenizer, length, 5, seed=1):
            assert prompt.ids.dtype == np.int64 and prompt.ids.shape == (length,)
    with pytest.raises(ValueError, match="shorter than the key"):
        passkey_prompts(tokenizer, 20, 1, seed=1)


def test_passkey_prompt_holds_the_key_at_the_drawn_depth(tokenizer):
    filler = " " + " ".join(FILLER_SENTENCES * 100)
    longest_sentence = max(len(tokenizer.encode(" " + s, add_special_tokens=False).ids) for s in FILLER_SENTENCES)
    length, depths = 257, []
    for trial, prompt in enumerate(passkey_prompts(tokenizer, length, 12, seed=4)):
        key = prompt.passkey
        assert len(key) == 5 and key.isdigit()
        text = tokenizer.decode(prompt.ids.tolist())
        sentence = f"The pass key is {key}. Remember it. {key} is the pass key."
        assert text.count(sentence) == 1
        assert text.endswith(f" What is the pass key? The pass key is {key}")
        assert tokenizer.decode(prompt.ids[prompt.key_start:prompt.key_end].tolist()) == " " + sentence
        assert tokenizer.decode(prompt.ids[prompt.answer_start:].tolist()) == " " + key
        before = tokenizer.decode(prompt.ids[:prompt.key_start].tolist())
        assert filler.startswith(before)  # the key sits between whole filler sentences
        assert before == "" or before.endswith(".")
        # the depth the trial drew (its rng's second draw), honoured to within a sentence
        rng = np.random.default_rng([4, length, trial])
        assert str(int(rng.integers(10_000, 100_000))) == key
        drawn = rng.random()
        n_filler = length - (prompt.key_end - prompt.key_start) - (length - prompt.answer_start) - len(
            tokenizer.encode(" What is the pass key? The pass key is", add_special_tokens=False).ids)
        assert abs(prompt.key_start - drawn * n_filler) <= longest_sentence
        assert prompt.depth == pytest.approx(prompt.key_start / n_filler)
        depths.append(prompt.depth)
    assert min(depths) < 0.3 and max(depths) > 0.7


def test_passkey_prompts_are_seeded(tokenizer):
    first = passkey_prompts(tokenizer, 200, 4, seed=7)
    again = passkey_prompts(tokenizer, 200, 6, seed=7)  # more trials: the first four unchanged
    other = passkey_prompts(tokenizer, 200, 4, seed=8)
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(first, again))
    assert not all(np.array_equal(a.ids, b.ids) for a, b in zip(first, other))
    assert len({prompt.passkey for prompt in first}) > 1


def test_passkey_scoring_with_oracles(tokenizer, special):
    vocab = tokenizer.get_vocab_size()
    oracle = Peek(vocab)
    oracle.train()
    assert passkey_accuracy(oracle, tokenizer, special, LENGTHS, 3, seed=0, device=CPU) == {n: 1.0 for n in LENGTHS}
    assert oracle.training and set(oracle.seen) == {(False, False)}  # eval, no grad, mode restored
    batched = passkey_accuracy(oracle, tokenizer, special, LENGTHS, 3, seed=0, device="cpu", batch_size=2)
    assert batched == {n: 1.0 for n in LENGTHS}
    # every answer token counts, and the logits before a token are the ones that predict it
    assert passkey_accuracy(Peek(vocab, spoil_last=True), tokenizer, special, LENGTHS, 3, 0, CPU) == {
        n: 0.0 for n in LENGTHS}
    assert passkey_accuracy(Peek(vocab, shift=0), tokenizer, special, LENGTHS, 3, 0, CPU) == {n: 0.0 for n in LENGTHS}


def test_passkey_random_model_scores_nothing_and_is_deterministic(tokenizer, special, random_decoder):
    random_decoder.train()
    scores = passkey_accuracy(random_decoder, tokenizer, special, [200, 128], 4, seed=0, device=CPU, batch_size=4)
    assert list(scores) == [200, 128] and all(score <= 0.25 for score in scores.values())
    assert random_decoder.training
    assert passkey_accuracy(random_decoder, tokenizer, special, [200, 128], 4, 0, CPU, batch_size=4) == scores


# ---------------------------------------------------------------------------------------------
# FIM exact match


def test_fim_example_is_a_seeded_line(tokenizer, code_texts):
    for index, text in enumerate(code_texts):
        example = fim_example(text, np.random.default_rng([3, index]), tokenizer, 32)
        assert example == fim_example(text, np.random.default_rng([3, index]), tokenizer, 32)
        assert example.prefix + example.middle + example.suffix == text
        assert example.middle.strip() and "\n" not in example.middle
        assert example.prefix == "" or example.prefix.endswith("\n")
        assert example.suffix == "" or example.suffix.startswith("\n")
    middles = {fim_example(code_texts[0], np.random.default_rng([s, 0]), tokenizer, 32).middle for s in range(20)}
    assert len(middles) > 2
    # no line short enough: a short character range instead; nothing to cut in an empty text
    text = "x = " + "1 + " * 40 + "1"
    example = fim_example(text, np.random.default_rng(0), tokenizer, 4)
    assert example.prefix + example.middle + example.suffix == text and 1 <= len(example.middle) <= 16
    assert fim_example("", np.random.default_rng(0), tokenizer, 32) is None


def test_fim_prompt_is_psm_with_an_empty_middle(tokenizer, special):
    example = FimExample("def f(x):\n", "    y = x + 1", "\n    return y\n")
    ids = fim_prompt(example, tokenizer, special)
    assert ids.dtype == np.int64
    assert tokenizer.decode(ids.tolist(), skip_special_tokens=False) == (
        "<|fim_prefix|>def f(x):\n<|fim_suffix|>\n    return y\n<|fim_middle|>")
    full = len(ids)
    cut = fim_prompt(example, tokenizer, special, budget=full - 2)  # two tokens off the prefix's start
    assert len(cut) == full - 2 and cut[0] == special.fim_prefix and cut[-1] == special.fim_middle
    assert cut[1:].tolist() == ids[3:].tolist()
    prefix_tokens = ids.tolist().index(special.fim_suffix) - 1
    cut = fim_prompt(example, tokenizer, special, budget=full - prefix_tokens - 1)  # and one off the suffix's end
    assert cut.tolist() == [special.fim_prefix, *ids[prefix_tokens + 1:-2].tolist(), special.fim_middle]


def test_fim_exact_match_with_an_oracle(tokenizer, special, code_texts):
    texts = [*code_texts, ""]  # an empty text is not counted
    oracle = FimOracle(code_texts, tokenizer, special)
    oracle.train()
    assert fim_exact_match(oracle, tokenizer, special, texts, seed=0, device=CPU) == {"exact_match": 1.0, "n": 6}
    assert oracle.training
    assert fim_exact_match(oracle, tokenizer, special, texts, seed=5, device="cpu", batch_size=1) == {
        "exact_match": 1.0, "n": 6}
    # producing the middle is not enough: decoding must stop there
    run_on = FimOracle(code_texts, tokenizer, special, run_on=True)
    assert fim_exact_match(run_on, tokenizer, special, texts, seed=0, device=CPU) == {"exact_match": 0.0, "n": 6}


class Babble(nn.Module):
    """Never stops: always the first token of the vocabulary; records the widths it is given."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab, self.widths = vocab, []

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        self.widths.append(tokens.shape[1])
        return one_hot(torch.full_like(tokens, 100), self.vocab)


def test_fim_exact_match_keeps_to_max_context(tokenizer, special, code_texts):
    recorder = Babble(tokenizer.get_vocab_size())
    result = fim_exact_match(recorder, tokenizer, special, code_texts, seed=0, device=CPU, max_new_tokens=8,
                             max_context=24)
    assert result == {"exact_match": 0.0, "n": 6}
    assert max(recorder.widths) == 24 - 1  # the last forward gives the 8th new token: 24 in all
    with pytest.raises(ValueError, match="no room"):
        fim_exact_match(recorder, tokenizer, special, code_texts, seed=0, device=CPU, max_new_tokens=8, max_context=10)


def test_fim_exact_match_of_a_random_model(tokenizer, special, code_texts, random_decoder):
    texts = code_texts[:3]
    first = fim_exact_match(random_decoder, tokenizer, special, texts, seed=0, device=CPU, max_new_tokens=4)
    assert first == {"exact_match": 0.0, "n": 3}
    assert fim_exact_match(random_decoder, tokenizer, special, texts, seed=0, device=CPU, max_new_tokens=4) == first


def test_perplexity():
    assert perplexity({"web": 0.0, "code": math.log(7.5)}) == {"web": 1.0, "code": pytest.approx(7.5)}
    assert perplexity({"big": 1e4}) == {"big": math.inf}
    assert perplexity({}) == {}
