"""English word and sentence splitting for datatrove's prose filters, equal to spaCy's blank
English tokenizer plus ``sentencizer`` (what datatrove uses) and several times faster.

Why it exists: datatrove's Gopher, C4 and FineWeb filters spend most of their time in spaCy.
Gopher quality, Gopher repetition and FineWeb each tokenise the whole text again, C4 splits
every kept line into sentences, each call builds a spaCy ``Doc``, and datatrove runs spaCy
inside a ``memory_zone``, which turns spaCy's own per-chunk cache off. The filter logic is
fine; only the splitting is slow, and no library offers spaCy's exact tokens faster.

What is ours and what is spaCy's: the rules (prefix, suffix and infix patterns, the URL
pattern and the ~1,300 English tokenizer exceptions such as "don't" → "do", "n't") are read
from spaCy's English defaults, so they stay spaCy's. We re-implement only the driver spaCy
runs per whitespace-delimited chunk (try exceptions, strip prefixes and suffixes, split
infixes, then re-merge exceptions that the splitting exposed), memoise each chunk's tokens
(web text is Zipfian, so nearly every chunk is a cache hit), and keep the last few texts'
word lists, since consecutive filters tokenise the same text. tests/test_prose.py checks
the tokens and sentence spans against spaCy on the sample corpus.

``FastEnglishTokenizer`` implements datatrove's ``WordTokenizer`` interface, so an instance is
passed to a datatrove filter as its ``language=``.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import unicodedata
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

from datatrove.utils.word_tokenizers import WordTokenizer

# spaCy's sentencizer default (spacy/pipeline/sentencizer.pyx): characters that end a sentence.
SENTENCE_END_CHARS = frozenset(
    "!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？"
    "𐩖𐩗𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑩂𑩃𑪛𑪜𑱁𑱂𖩮𖩯𖫵𖬷𖬸𖭄𛲟𝪈｡。"
)
_PIECES = re.compile(r"\s+|\S+")
_SENTENCE_END = re.compile("[" + re.escape("".join(sorted(SENTENCE_END_CHARS))) + "]")
logger = logging.getLogger(__name__)


def _is_punct(token: str) -> bool:
    """spaCy's ``Token.is_punct``: every character is in a Unicode punctuation category."""
    return all(unicodedata.category(ch).startswith("P") for ch in token)


class _SpacyRules:
    """spaCy's English tokenizer rules, compiled once per process."""

    def __init__(self) -> None:
        import spacy
        from spacy.symbols import ORTH

        tokenizer = spacy.blank("en").tokenizer
        self.prefix_search: Callable[[str], Any] | None = tokenizer.prefix_search
        self.suffix_search: Callable[[str], Any] | None = tokenizer.suffix_search
        self.infix_finditer: Callable[[str], Iterator[Any]] | None = tokenizer.infix_finditer
        self.token_match: Callable[[str], Any] | None = tokenizer.token_match
        self.url_match: Callable[[str], Any] | None = tokenizer.url_match
        self.specials: dict[str, tuple[str, ...]] = {
            string: tuple(piece[ORTH] for piece in pieces) for string, pieces in tokenizer.rules.items()
        }
        # spaCy's second pass re-merges an exception whose affix-split form shows up inside a
        # chunk (e.g. "id." → "i", "d", "." → "i", "d."); it knows only exceptions that have
        # an affix, split without exceptions. Keyed by the first token of that form.
        self.merges: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for string in self.specials:
            if self.prefix_length(string) or self.suffix_length(string) or self._has_infix(string):
                form = self.split_chunk(string, with_specials=False)
                self.merges.setdefault(form[0], []).append((form, string))

    def prefix_length(self, text: str) -> int:
        match = self.prefix_search(text) if self.prefix_search else None
        return match.end() - match.start() if match is not None else 0

    def suffix_length(self, text: str) -> int:
        match = self.suffix_search(text) if self.suffix_search else None
        return match.end() - match.start() if match is not None else 0

    def _has_infix(self, text: str) -> bool:
        return self.infix_finditer is not None and any(True for _ in self.infix_finditer(text))

    def tokenize_chunk(self, chunk: str) -> tuple[str, ...]:
        """spaCy's tokens for one chunk without whitespace: both passes."""
        tokens = self.split_chunk(chunk)
        if any(token in self.merges for token in tokens):
            return self._merge_specials(tokens)
        return tokens

    def split_chunk(self, chunk: str, with_specials: bool = True) -> tuple[str, ...]:
        """spaCy's ``Tokenizer._tokenize`` for one chunk without whitespace: strip prefixes
        and suffixes until an exception or nothing is left, then split the core on infixes."""
        specials = self.specials if with_specials else {}
        special = specials.get(chunk)
        if special is not None:
            return special
        prefixes: list[str] = []
        suffixes: list[str] = []
        string = chunk
        last_size = -1
        while string and len(string) != last_size:
            if self.token_match and self.token_match(string):
                break
            if string in specials:
                break
            last_size = len(string)
            pre_len = self.prefix_length(string)
            if pre_len:
                minus_pre = string[pre_len:]
                if minus_pre and minus_pre in specials:
                    prefixes.append(string[:pre_len])
                    string = minus_pre
                    break
            suf_len = self.suffix_length(string[pre_len:])
            if suf_len:
                minus_suf = string[:-suf_len]
                if minus_suf and minus_suf in specials:
                    suffixes.append(string[-suf_len:])
                    string = minus_suf
                    break
            if pre_len and suf_len and pre_len + suf_len <= len(string):
                prefixes.append(string[:pre_len])
                suffixes.append(string[-suf_len:])
                string = string[pre_len:-suf_len]
            elif pre_len:
                prefixes.append(string[:pre_len])
                string = string[pre_len:]
            elif suf_len:
                suffixes.append(string[-suf_len:])
                string = string[:-suf_len]
        return tuple(prefixes) + self._core(string, specials) + tuple(reversed(suffixes))

    def _core(self, string: str, specials: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        if not string:
            return ()
        special = specials.get(string)
        if special is not None:
            return special
        if (self.token_match and self.token_match(string)) or (self.url_match and self.url_match(string)):
            return (string,)
        matches = list(self.infix_finditer(string)) if self.infix_finditer else []
        if not matches:
            return (string,)
        pieces: list[str] = []
        start = 0
        for match in matches:
            infix_start, infix_end = match.start(), match.end()
            if infix_start == 0:  # an infix at the very start is not a split point
                continue
            if infix_start != start:
                pieces.append(string[start:infix_start])
            if infix_start != infix_end:
                pieces.append(string[infix_start:infix_end])
            start = infix_end
        if string[start:]:
            pieces.append(string[start:])
        return tuple(pieces)

    def _merge_specials(self, tokens: tuple[str, ...]) -> tuple[str, ...]:
        """spaCy's ``_apply_special_cases``: longest matches first (leftmost among equals); a
        match is used when neither its first nor its last token is already covered."""
        matches = []
        for start, token in enumerate(tokens):
            for form, string in self.merges.get(token, ()):
                if tokens[start : start + len(form)] == form:
                    matches.append((start, start + len(form), string))
        matches.sort(key=lambda match: (match[0] - match[1], match[0]))
        covered: set[int] = set()
        chosen: dict[int, tuple[int, str]] = {}
        for start, end, string in matches:
            if start not in covered and end - 1 not in covered:
                chosen[start] = (end, string)
            covered.update(range(start, end))
        merged: list[str] = []
        index = 0
        while index < len(tokens):
            if index in chosen:
                end, string = chosen[index]
                merged.extend(self.specials[string])
                index = end
            else:
                merged.append(tokens[index])
                index += 1
        return tuple(merged)


def rules_cache_path() -> Path:
    """Where the compiled rules are kept between processes: importing spaCy (which imports
    thinc and torch) costs about 2 s per worker process, loading the pickled rules 40 ms. The
    file is named by spaCy's version, so an upgrade rebuilds it."""
    root = Path(os.environ.get("MIDTRAIN_CACHE", Path.home() / ".cache" / "midtrain"))
    return root / f"spacy-{metadata.version('spacy')}-en-tokenizer-rules.pickle"


def load_rules() -> _SpacyRules:
    """spaCy's English rules, from the cache when a process has built them before."""
    path = rules_cache_path()
    if path.exists():
        try:
            rules = pickle.loads(path.read_bytes())
            if isinstance(rules, _SpacyRules):
                return rules
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError) as error:
            logger.warning("rebuilding the tokenizer rules cache %s: %s", path, error)
    rules = _SpacyRules()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_bytes(pickle.dumps(rules))
        os.replace(partial, path)
    except OSError as error:  # a read-only home still tokenises, only slower to start
        logger.warning("cannot cache the tokenizer rules at %s: %s", path, error)
    return rules


class FastEnglishTokenizer(WordTokenizer):
    """datatrove ``WordTokenizer`` with spaCy blank-English results (see the module docstring).

    ``cache_size`` bounds the chunk memo (it is cleared when full); ``documents`` is how many
    recent texts keep their word lists, so a chain of filters tokenises each text once."""

    def __init__(self, cache_size: int = 500_000, documents: int = 4) -> None:
        super().__init__("en")
        self.cache_size = cache_size
        self.documents = documents
        self._rules: _SpacyRules | None = None
        self._chunks: dict[str, tuple[str, ...]] = {}
        self._recent: OrderedDict[str, list[str]] = OrderedDict()

    # Compiled patterns and caches stay in the process that built them; a pickled copy (a Ray
    # or multiprocessing worker) rebuilds them on first use.
    def __getstate__(self) -> dict[str, Any]:
        return {"cache_size": self.cache_size, "documents": self.documents, "language": self.language}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cache_size"], state["documents"])

    @property
    def rules(self) -> _SpacyRules:
        if self._rules is None:
            self._rules = load_rules()
        return self._rules

    def chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        """Tokens of one whitespace-free chunk, memoised."""
        tokens = self._chunks.get(chunk)
        if tokens is None:
            tokens = self.rules.tokenize_chunk(chunk)
            if len(self._chunks) >= self.cache_size:
                self._chunks.clear()
            self._chunks[chunk] = tokens
        return tokens

    def word_tokenize(self, text: str) -> list[str]:
        words = self._recent.get(text)
        if words is not None:
            self._recent.move_to_end(text)
            return list(words)
        chunks = self._chunks
        words = []
        for chunk in text.split():
            tokens = chunks.get(chunk)
            words.extend(tokens if tokens is not None else self.chunk_tokens(chunk))
        self._recent[text] = words
        if len(self._recent) > self.documents:
            self._recent.popitem(last=False)
        return list(words)

    def _tokens_with_offsets(self, text: str) -> list[tuple[str, int]]:
        """Every spaCy token with its start offset, whitespace tokens included: spaCy makes a
        token of each whitespace run except one ordinary space after a token."""
        out: list[tuple[str, int]] = []
        for piece in _PIECES.finditer(text):
            start, chunk = piece.start(), piece.group()
            if chunk[0].isspace():
                if start > 0 and chunk[0] == " ":
                    chunk, start = chunk[1:], start + 1
                if chunk:
                    out.append((chunk, start))
                continue
            for token in self.chunk_tokens(chunk):
                out.append((token, start))
                start += len(token)
        return out

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans by spaCy's ``sentencizer``: a sentence ends after a run of
        sentence-final characters, at the first token that is neither one nor punctuation."""
        if not _SENTENCE_END.search(text):
            # No token can end a sentence, so the text is one span: from 0 (a leading
            # whitespace run is a token too) to the end, less one ordinary trailing space,
            # which spaCy attaches to the token before it.
            if not text:
                return []
            single_space = len(text) > 1 and text[-1] == " " and not text[-2].isspace()
            return [(0, len(text) - 1 if single_space else len(text))]
        tokens = self._tokens_with_offsets(text)
        if not tokens:
            return []
        starts = [0]
        seen_end = False
        for index, (token, _) in enumerate(tokens):
            is_end = token in SENTENCE_END_CHARS
            if seen_end and not is_end and not _is_punct(token):
                starts.append(index)
                seen_end = False
            elif is_end:
                seen_end = True
        spans = []
        for first, after in zip(starts, starts[1:] + [len(tokens)]):
            last_token, last_start = tokens[after - 1]
            spans.append((tokens[first][1], last_start + len(last_token)))
        return spans

    def sent_tokenize(self, text: str) -> list[str]:
        sentences = (text[start:end].strip() for start, end in self.span_tokenize(text))
        return [sentence for sentence in sentences if sentence]
