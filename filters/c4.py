"""C4 quality (Raffel et al. 2020) exactly as datatrove decides and edits, with less work.

Why it exists: after the Gopher filters (``filters.gopher``), datatrove's C4 filter was the
next per-document cost, mostly in splitting every kept line into sentences. The sentences are
only counted, and only compared with ``min_num_sentences`` at the end, so once the count
reaches it no further line needs splitting. This subclass stops splitting there and skips
datatrove's per-line statistics counters (the pipeline counts drops by reason itself); the
line rules, their order, the text it writes back and the reasons are datatrove's, read from
datatrove's own constructor. tests/test_prose.py checks decisions and rewritten text against
datatrove with spaCy, and tests/test_gopher.py against the stock class on the same words.
"""

from __future__ import annotations

from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.filters import C4QualityFilter
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.utils.text import split_into_sentences


class FastC4QualityFilter(C4QualityFilter):
    """datatrove's ``C4QualityFilter`` that counts sentences only until it has enough."""

    def filter(self, doc: DatatroveDocument) -> bool | tuple[bool, str]:
        if not self.split_paragraph:
            return super().filter(doc)  # sentence mode: every unit is one sentence already
        sentences, kept = 0, []
        enough = self.min_num_sentences <= 0  # datatrove's -1 ("off") and 0 both always pass
        for line in doc.text.splitlines():
            line = line.strip()
            words = line.split()
            if self.max_word_length != -1 and any(len(word) > self.max_word_length for word in words):
                continue
            if self.remove_citations:
                line = CITATION_REGEX.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                continue
            if len(words) < self.min_words_per_line:
                continue
            lowered = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lowered:
                return False, "lorem_ipsum"
            if self.filter_javascript and "javascript" in lowered:
                continue
            if self.filter_curly_bracket and "{" in line:
                return False, "curly_bracket"
            if self.filter_policy and any(phrase in lowered for phrase in POLICY_SUBSTRINGS):
                continue
            if not enough:
                sentences += len(split_into_sentences(line, self.language))
                enough = sentences >= self.min_num_sentences
            kept.append(line)
        if not enough:
            return False, "too_few_sentences"
        doc.text = "\n".join(kept).strip()
        return True
