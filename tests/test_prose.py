"""Our prose filters (datatrove's rules with filters.words' tokenizer) against stock datatrove
(the same rules with spaCy), on the sample's web documents and perturbed copies of them; the
drop reasons one by one; and the math-density gate."""

from __future__ import annotations

import difflib
import pickle
import random

import pytest
from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from api.demo import sample_texts
from filters.base import Document
from filters.math import MathDensity
from filters.prose import (
    C4Quality,
    FineWebQuality,
    GopherQuality,
    GopherRepetition,
    fineweb_prose_chain,
)
from filters.words import FastEnglishTokenizer



def web_texts() -> list[str]:
    return sample_texts("web/*.jsonl.gz")


def perturb(text: str, rng: random.Random) -> str:
    """One crawl-like damage per copy, so filters see documents near their thresholds."""
    lines = text.splitlines()
    words = text.split()
    choice = rng.randrange(8)
    if choice == 0:  # cut short
        return " ".join(words[: rng.randint(20, 80)])
    if choice == 1:  # repeated lines and paragraphs
        return text + "\n\n" + "\n".join(rng.choices(lines, k=max(1, len(lines) // 2)))
    if choice == 2:  # navigation and bullets
        menu = ["- Home", "- About us", "- Contact", "• Share this", "Read more...", "Log in"]
        return "\n".join(rng.choices(menu, k=rng.randint(3, 20))) + "\n" + text
    if choice == 3:  # punctuation stripped, one long line
        return " ".join(word.strip(".,;:!?") for word in words)
    if choice == 4:  # hashtags and ellipses
        return " ".join(word + (rng.choice([" #tag", "...", " …"]) if rng.random() < 0.12 else "") for word in words)
    if choice == 5:  # cookie banner and javascript lines, citation marks
        extra = ["This site uses cookies to improve your experience.", "Please enable JavaScript to view comments.",
                 "See our privacy policy for details.", "As shown in [1], this holds.[citation needed]"]
        return "\n".join(lines + rng.choices(extra, k=3))
    if choice == 6:  # every line broken after a few words
        return "\n".join(" ".join(words[i : i + rng.randint(2, 6)]) for i in range(0, len(words), 4))
    return text.replace(". ", ".\n")  # one sentence a line


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    rng = random.Random(7)
    texts = web_texts()
    assert len(texts) > 1000
    return texts + [perturb(text, rng) for text in texts]


def _stock_verdict(rule, text: str) -> tuple[bool, str | None, str]:
    doc = DatatroveDocument(text=text, id="x")
    result = rule.filter(doc)
    if isinstance(result, tuple):
        return bool(result[0]), result[1], doc.text
    return bool(result), None, doc.text


STOCK_RULES = {
    "gopher_repetition": lambda: GopherRepetitionFilter(),
    "gopher_quality": lambda: GopherQualityFilter(),
    "c4_quality": lambda: C4QualityFilter(filter_no_terminal_punct=False),
    "fineweb_quality": lambda: FineWebQualityFilter(),
}
OURS = {"gopher_repetition": GopherRepetition, "gopher_quality": GopherQuality,
        "c4_quality": C4Quality, "fineweb_quality": FineWebQuality}


def web_doc(text: str) -> Document:
    return Document(id="d", text=text, source="s", kind="web", domain="web", lang="en")


@pytest.mark.parametrize("name", list(STOCK_RULES))
def test_keep_drop_agrees_with_stock_datatrove(name: str, corpus: list[str]) -> None:
    stock, ours = STOCK_RULES[name](), OURS[name]()
    agree = reasons_agree = texts_agree = kept = 0
    for text in corpus:
        keep, reason, stock_text = _stock_verdict(stock, text)
        doc = web_doc(text)
        verdict = ours.check(doc)
        kept += keep
        agree += keep == verdict.keep
        reasons_agree += keep == verdict.keep and (keep or verdict.reason.endswith(reason))
        texts_agree += not keep or doc.text == stock_text
    share = agree / len(corpus)
    print(f"{name}: keep/drop agreement {share:.4%} over {len(corpus)} documents, {kept} kept by datatrove")
    assert share >= 0.99
    assert reasons_agree / len(corpus) >= 0.99
    assert texts_agree / len(corpus) >= 0.99
    # The corpus must exercise the rule from both sides, or agreement says nothing.
    assert 0.02 < kept / len(corpus) < 0.98


def test_word_tokens_match_spacy(corpus: list[str]) -> None:
    spacy_words, ours = SpaCyTokenizer("en"), FastEnglishTokenizer()
    sample = corpus[::2] + sample_texts("*/*.jsonl")
    same_docs = matched = total = 0
    for text in sample:
        expected, got = spacy_words.word_tokenize(text), ours.word_tokenize(text)
        same_docs += expected == got
        blocks = difflib.SequenceMatcher(a=expected, b=got, autojunk=False).get_matching_blocks()
        matched += sum(block.size for block in blocks)
        total += max(len(expected), len(got))
    print(f"tokens: {matched / total:.5%} of {total} agree; {same_docs}/{len(sample)} documents identical")
    assert matched / total >= 0.999
    assert same_docs / len(sample) >= 0.99


def test_sentences_match_spacy(corpus: list[str]) -> None:
    spacy_words, ours = SpaCyTokenizer("en"), FastEnglishTokenizer()
    lines = [line.strip() for text in corpus[::4] for line in text.splitlines() if line.strip()]
    same = sum(spacy_words.span_tokenize(line) == ours.span_tokenize(line) for line in lines)
    print(f"sentence spans identical on {same}/{len(lines)} lines")
    assert same / len(lines) >= 0.995


@pytest.mark.parametrize(
    ("chunk", "tokens"),
    [
        ("don't", ["do", "n't"]),
        ("(U.S.A.)", ["(", "U.S.A.", ")"]),
        ("well-known,", ["well", "-", "known", ","]),
        ("https://example.com/a?b=1.", ["https://example.com/a?b=1", "."]),
        ("$3.50!", ["$", "3.50", "!"]),
        ("id.", ["i", "d."]),  # spaCy's second pass re-merges the "d." exception
        ("It's", ["It", "'s"]),
    ],
)
def test_tricky_chunks(chunk: str, tokens: list[str]) -> None:
    assert FastEnglishTokenizer().word_tokenize(chunk) == tokens
    assert SpaCyTokenizer("en").word_tokenize(chunk) == tokens


def test_sentence_rules() -> None:
    text = "It works. Does it?! Yes... (Mostly.) Fine"
    ours = FastEnglishTokenizer()
    assert ours.span_tokenize(text) == SpaCyTokenizer("en").span_tokenize(text)
    # "(" is punctuation, so no sentence starts there: spaCy keeps "Yes... (Mostly.)" together.
    assert ours.sent_tokenize(text) == ["It works.", "Does it?!", "Yes... (Mostly.)", "Fine"]
    assert ours.span_tokenize("") == []


def test_tokenizer_survives_pickling() -> None:
    tokenizer = FastEnglishTokenizer()
    tokenizer.word_tokenize("warm the cache, please")
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.word_tokenize("Isn't it?") == ["Is", "n't", "it", "?"]


def test_chunk_cache_is_bounded() -> None:
    tokenizer = FastEnglishTokenizer(cache_size=10)
    tokenizer.word_tokenize(" ".join(f"w{i}" for i in range(25)))
    assert len(tokenizer._chunks) <= 10


# --- drop reasons, one by one -------------------------------------------------------------

PROSE = ("The river that runs through the old town has been a part of daily life for centuries. "
         "Farmers used it to water their fields, and children learned to swim in its slow bends. "
         "Today the banks are lined with trees, and people walk there with their dogs in the evening. "
         "A small museum near the bridge tells the story of the mills that once stood along the water. "
         "In spring the school takes every class there to count the birds that nest in the reeds. ")
OTHER = ("Our neighbours grow tomatoes, beans and squash in a plot behind the library. "
         "Each autumn they hold a market where anyone may swap seeds, jars of jam or advice. "
         "Last year a storm flattened half of the beds, so volunteers rebuilt them with stone. "
         "Now there is a waiting list, and the council is looking for a second piece of land. "
         "Visitors are welcome on Saturday mornings, when someone is always there to show them round. ")


def _reason(rule, text: str) -> str | None:
    return rule.check(web_doc(text)).reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Too short to be a page of the web.", "gopher_short_doc"),
        (" ".join(["a bc de"] * 40), "gopher_below_avg_threshold"),
        (" ".join(["extraordinarily uncharacteristically"] * 40), "gopher_above_avg_threshold"),
        (PROSE + " #x" * 20, "gopher_too_many_hashes"),
        (PROSE + " ..." * 20, "gopher_too_many_ellipsis"),
        ("\n".join(["- " + PROSE] * 2 + ["- item"] * 20), "gopher_too_many_bullets"),
        ("\n".join([PROSE] + ["and then the story went on..."] * 5), "gopher_too_many_end_ellipsis"),
        (PROSE + " 1234 5678 9012" * 40, "gopher_below_alpha_threshold"),
        (" ".join(["river bank walk dogs evening museum bridge"] * 10), "gopher_enough_stop_words"),
    ],
)
def test_gopher_quality_reasons(text: str, reason: str) -> None:
    assert _reason(GopherQuality(), text) == reason


def test_gopher_long_doc() -> None:
    assert _reason(GopherQuality(max_doc_words=200), PROSE * 4) == "gopher_long_doc"
    assert _reason(GopherQuality(), PROSE * 4) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "gopher_rep_empty"),
        ("\n\n".join(["Same paragraph here."] * 4 + [PROSE]), "gopher_rep_dup_para_frac"),
        ("\n\n".join([PROSE, PROSE, "A short one.", "Another one.", "And a third."]), "gopher_rep_dup_para_char_frac"),
        ("\n".join(["a line", "a line", "a line", PROSE]), "gopher_rep_dup_line_frac"),
        ("\n".join([PROSE, PROSE[:200], "x", "y", "z", PROSE[:200]]), "gopher_rep_dup_line_char_frac"),
        ("the river " * 80, "gopher_rep_top_2_gram"),
    ],
)
def test_gopher_repetition_reasons(text: str, reason: str) -> None:
    assert _reason(GopherRepetition(), text) == reason


def test_gopher_repetition_duplicated_ngrams() -> None:
    # Distinct lines and no dominant short n-gram, but long repeated runs of words.
    words = PROSE.split()
    text = " ".join(words) + " " + " ".join(words[5:40]) + " " + " ".join(words[12:30])
    assert _reason(GopherRepetition(), text).startswith("gopher_rep_duplicated_")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (PROSE + "\nLorem ipsum dolor sit amet, consectetur.", "c4_lorem_ipsum"),
        (PROSE + "\nThe set {1, 2, 3} has three members.", "c4_curly_bracket"),
        ("One sentence only here.\nAnd a second one here.", "c4_too_few_sentences"),
    ],
)
def test_c4_reasons(text: str, reason: str) -> None:
    assert _reason(C4Quality(), text) == reason


def test_c4_rewrites_text_and_records_it() -> None:
    text = "Menu\n" + PROSE.replace(". ", ".[1] ", 1) + "\n   Please enable JavaScript to comment.  \nTerms of use apply to all."
    doc = web_doc(text)
    assert C4Quality().check(doc).keep
    assert doc.text == PROSE.replace(". ", ". ", 1).strip()
    assert doc.scores["c4_lines_removed"] == 3.0
    assert doc.scores["c4_chars_removed"] == len(text) - len(doc.text)


def test_c4_keeps_lines_without_terminal_punctuation_as_fineweb_did() -> None:
    doc = web_doc("A heading without a full stop\n" + PROSE)
    assert C4Quality().check(doc).keep
    assert doc.text.startswith("A heading without a full stop\n")
    c4_defaults = web_doc("A heading without a full stop\n" + PROSE)
    assert C4Quality(filter_no_terminal_punct=True).check(c4_defaults).keep
    assert c4_defaults.text == PROSE.strip()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("\n".join(["Heading one", "Heading two", "Heading three", "Heading four", "Heading five", "Heading six",
                    "Heading seven", "Heading eight", "Heading nine"]), "fineweb_line_punct_ratio"),
        ("\n".join(["Short line.", "Another.", "Yes.", PROSE]), "fineweb_short_line_ratio"),
        ("\n".join([PROSE, "Share this page with your friends today.", "Share this page with your friends today."]),
         "fineweb_char_dup_ratio"),
        ("\n".join([f"Uncharacteristically extraordinary{i}" for i in range(10)]
                   + ["Remarkably uncomplicated arrangements.", "Surprisingly straightforward explanations."]),
         "fineweb_list_ratio"),
    ],
)
def test_fineweb_reasons(text: str, reason: str) -> None:
    assert _reason(FineWebQuality(), text) == reason


def test_prose_filters_skip_other_domains_and_languages() -> None:
    for rule in fineweb_prose_chain():
        assert not rule.applies_to(Document(id="d", text="x", source="s", domain="math", lang="en"))
        assert not rule.applies_to(Document(id="d", text="x", source="s", domain="web", lang="fr"))
        assert rule.applies_to(web_doc("x"))


def test_clean_prose_passes_the_whole_chain() -> None:
    doc = web_doc("\n\n".join([PROSE, OTHER]))
    verdicts = [rule.check(doc) for rule in fineweb_prose_chain()]
    assert all(verdict.keep for verdict in verdicts), verdicts
    assert doc.scores["gopher_quality_pass"] == 1.0


# --- math -----------------------------------------------------------------------------------

def math_doc(text: str) -> Document:
    return Document(id="m", text=text, source="s", kind="math", domain="math", lang="en")


def test_math_filter_keeps_every_sample_math_document() -> None:
    texts = sample_texts("math/*.jsonl")
    assert len(texts) > 400
    gate = MathDensity()
    dropped = [text[:80] for text in texts if not gate.check(math_doc(text)).keep]
    assert dropped == []


def test_math_filter_drops_prose_labelled_math() -> None:
    doc = math_doc(PROSE * 3)
    assert MathDensity().check(doc).reason == "math_low_density"
    assert doc.scores["math_density"] == 0.0


def test_math_filter_keeps_formulas_the_prose_rules_would_drop() -> None:
    text = "Let $x \\in \\mathbb{R}$. Then $$\\sum_{n=1}^{\\infty} \\frac{1}{n^2} = \\frac{\\pi^2}{6}$$ and x^2 >= 0."
    doc = math_doc(text)
    assert MathDensity().check(doc).keep
    assert doc.scores["math_density"] > 0.5
    assert not GopherQuality().check(web_doc(text)).keep  # what the prose rules would have done


def test_math_filter_applies_to_math_only() -> None:
    gate = MathDensity()
    assert gate.applies_to(math_doc("x"))
    assert not gate.applies_to(web_doc("x"))
    with pytest.raises(ValueError):
        MathDensity(min_density=1.5)
