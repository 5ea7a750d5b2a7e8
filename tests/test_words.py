"""The fast English tokenizer: its cached spaCy rules, and sentence spans on edge cases."""

from __future__ import annotations

from filters.words import FastEnglishTokenizer, load_rules, rules_cache_path


def test_rules_are_cached_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MIDTRAIN_CACHE", str(tmp_path))
    path = rules_cache_path()
    assert path.parent == tmp_path and not path.exists()
    built = load_rules()
    assert path.exists()
    cached = load_rules()
    assert cached is not built and cached.specials == built.specials
    assert cached.split_chunk("(don't)") == built.split_chunk("(don't)") == ("(", "do", "n't", ")")
    path.write_bytes(b"not a pickle")
    assert load_rules().split_chunk("U.S.A.") == ("U.S.A.",)
    assert path.read_bytes() != b"not a pickle"
    assert FastEnglishTokenizer().word_tokenize("It's 5 p.m. now.") == ["It", "'s", "5", "p.m.", "now", "."]


def test_text_without_a_sentence_end_is_one_span_as_in_spacy():
    from datatrove.utils.word_tokenizers import SpaCyTokenizer

    spacy, ours = SpaCyTokenizer("en"), FastEnglishTokenizer()
    for text in ["", " ", "a ", "a  ", "a\t ", " a", "  a b c", "Heading without an end", "x\n",
                 "a b \n", "tab\tend ", "  ", "über straße ", "one two three four five six"]:
        assert ours.span_tokenize(text) == spacy.span_tokenize(text), repr(text)
