"""Text analysis in Python that reproduces Elasticsearch's built-in analyzers, so the embedded
store (SQLite FTS5) and Elasticsearch find the same posts for the same query.

Why it exists: FTS5's own tokenizers treat a run of Chinese characters as one token (a
two-character word inside a sentence is never found) and know nothing of Arabic clitics or
English stems. Elasticsearch analyses with `cjk`, `arabic`, `english` and `standard`; here the
same chains are written out token by token, and the FTS5 table only sees the finished tokens.

The division of labour is the same in both backends:

1. **Python folds** the text once with `yuqing.text.fold` (NFKC, case folding, Traditional ->
   Simplified, Arabic diacritics/alef/ya/ta-marbuta). Elasticsearch receives the *folded* text
   in its `body` field, so neither backend depends on the other's folding quirks (and
   Traditional Chinese is found by a Simplified query in both, which `cjk` alone cannot do).
2. **The analyzer chain** per field (`FIELDS`):
   - `zh`  = Elasticsearch `cjk`: standard tokenizer, CJK bigrams (a lone CJK character stays a
     unigram), the `cjk` English stop set;
   - `ar`  = `arabic`: decimal digits to ASCII, Arabic stop words, normalisation, Lucene's light
     stemmer (prefixes ال وال بال كال فال لل و, suffixes ها ان ات ون ين يه ية ه ة ي);
   - `en`  = `english`: possessive `'s` removed, English stop words, Porter stemmer (Lucene's);
   - `std` = `standard`: the standard tokenizer and lower case only (the fallback for scripts
     none of the above handles: Cyrillic, Greek, Thai, ...).
3. **Routing**: each query term (a word or a "phrase") is searched in exactly one field, chosen
   by the scripts it contains: any CJK -> `zh`; else any Arabic -> `ar`; else any other
   non-Latin script -> `std`; else (Latin letters, digits) -> `en`. A term matches a post when
   its tokens occur as a phrase (consecutive positions) in that field. Elasticsearch gets the
   same decision as a `match_phrase` on `body.<field>`.

Positions: a removed stop word leaves a gap (`GAP`), as Lucene's position increment does, so
"state of emergency" does not match "state emergency". Because a term routed to `en` can never
contain a CJK or Arabic token, the SQLite columns store only what their queries can reach:
tokens of other scripts collapse to one `BARRIER` (also put between title and text, like
Elasticsearch's `position_increment_gap` between array values), and a column is left empty when
the post has no token of the field's script. Known, documented divergence: a query phrase with a
stop word *inside* it ("state of emergency") matches in Elasticsearch when any single token
stands in the gap, in SQLite only when a stop word does.
"""

from __future__ import annotations

import html
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from yuqing.text import fold


FIELDS = ("zh", "ar", "en", "std")
GAP = "_"  # a removed stop word: keeps the position
BARRIER = "__"  # a token no query routed to this field can contain; never produced by text

# ---------------------------------------------------------------------------------------------
# character classes

_CJK_RANGES = (
    "\u1100-\u11ff\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0002ffff\U00030000-\U0003134f"
)
_ARABIC_RANGES = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"


def _ranges(pred) -> str:  # type: ignore[no-untyped-def]
    """A regex class body of every BMP character where `pred` holds, as ranges (one class is
    far faster for `re` than an alternation of classes)."""
    out: list[str] = []
    start = None
    for cp in range(0x10001):
        ok = cp < 0x10000 and not (0xD800 <= cp <= 0xDFFF) and pred(chr(cp))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            a, b = re.escape(chr(start)), re.escape(chr(cp - 1))
            out.append(a if start == cp - 1 else f"{a}-{b}")
            start = None
    return "".join(out)


_IS_CJK_CHAR = re.compile(f"[{_CJK_RANGES}]")


def _word_char(c: str) -> bool:
    """Inside a word for the standard tokenizer: letters, digits, `_`, combining marks; CJK
    characters are tokens of their own."""
    return (c.isalnum() or c == "_" or unicodedata.category(c).startswith("M")) and not _IS_CJK_CHAR.match(c)


def _letter_char(c: str) -> bool:
    return _word_char(c) and not c.isdigit() and c != "_"


# astral letters (rare) are matched by \w; astral CJK comes first in the alternation
_W = f"[{_ranges(_word_char)}\U00010000-\U0001ffff]"
_LETTER = f"[{_ranges(_letter_char)}]"
# UAX#29 (the standard tokenizer), simplified: letters join across ' . : · ’ ; digits across
# , . ; ' ’ ; underscore (ExtendNumLet) joins anything.
_WORD = (
    rf"{_W}+(?:(?:(?<={_LETTER})[.:'\u2019\u00b7](?={_LETTER})|(?<=\d)[.,;'\u2019](?=\d)){_W}+)*"
)
_IS_CJK = re.compile(rf"[{_CJK_RANGES}]")
_IS_ARABIC = re.compile(rf"[{_ARABIC_RANGES}]")
_HAS_LETTER = re.compile(r"[^\W\d_]")


def _is_latin_char(ch: str) -> bool:
    o = ord(ch)
    return o < 0x250 or 0x1E00 <= o <= 0x1EFF or 0x2C60 <= o <= 0x2C7F or 0xA720 <= o <= 0xA7FF or (
        0xFF00 <= o <= 0xFF5E
    ) or unicodedata.category(ch).startswith("M")


@lru_cache(maxsize=65536)
def script_of(word: str) -> str:
    """Script class of a non-CJK word: 'A' Arabic, 'L' Latin or digits only, 'O' other."""
    if word.isascii():
        return "L"
    if _IS_ARABIC.search(word):
        return "A"
    if all(_is_latin_char(c) for c in word if not c.isdigit() and c != "_"):
        return "L"
    return "O"


# ---------------------------------------------------------------------------------------------
# stop words (Lucene's sets, as Elasticsearch ships them)

# EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (`_english_`)
EN_STOP = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)
# CJKAnalyzer's default stop set
CJK_STOP = EN_STOP - {"an"} | {"s", "t", "www"}
# org/apache/lucene/analysis/ar/stopwords.txt (`_arabic_`)
AR_STOP = frozenset(
    """من ومن منها منه في وفي فيها فيه و ف ثم او أو ب بها به ا أ اى اي أي أى لا ولا الا ألا إلا لكن ما وما
    كما فما عن مع اذا إذا ان أن إن انها أنها إنها انه أنه إنه بان بأن فان فأن وان وأن وإن التى التي الذى
    الذي الذين الى الي إلى إلي على عليها عليه اما أما إما ايضا أيضا كل وكل لم ولم لن ولن هى هي هو وهى وهي
    وهو فهى فهي فهو انت أنت لك لها له هذه هذا تلك ذلك هناك كانت كان يكون تكون وكانت وكان غير بعض قد نحو
    بين بينما منذ ضمن حيث الان الآن خلال بعد قبل حتى عند عندما لدى جميع""".split()
)
# characters that make a poor "top term" bigram on their own (function characters)
_ZH_FUNCTION = frozenset("的了是在和与及也就都而之其这那我你他她它们着吗呢吧啊把被让给对于以为个")

# ---------------------------------------------------------------------------------------------
# Porter stemmer, as Lucene's org.apache.lucene.analysis.en.PorterStemmer (Martin Porter's
# reference implementation, including its departures: -bli -> -ble, -logi -> -log).


class _Porter:
    __slots__ = ("b", "k", "j", "k0")

    def cons(self, i: int) -> bool:
        ch = self.b[i]
        if ch in "aeiou":
            return False
        if ch == "y":
            return True if i == self.k0 else not self.cons(i - 1)
        return True

    def m(self) -> int:
        n = 0
        i = self.k0
        j = self.j
        while True:
            if i > j:
                return n
            if not self.cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if self.cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not self.cons(i):
                    break
                i += 1
            i += 1

    def vowelinstem(self) -> bool:
        return any(not self.cons(i) for i in range(self.k0, self.j + 1))

    def doublec(self, j: int) -> bool:
        return j >= self.k0 + 1 and self.b[j] == self.b[j - 1] and self.cons(j)

    def cvc(self, i: int) -> bool:
        if i < self.k0 + 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in "wxy"

    def ends(self, s: str) -> bool:
        n = len(s)
        if n > self.k - self.k0 + 1:
            return False
        if "".join(self.b[self.k - n + 1 : self.k + 1]) != s:
            return False
        self.j = self.k - n
        return True

    def setto(self, s: str) -> None:
        n = len(s)
        del self.b[self.j + 1 :]
        self.b.extend(s)
        self.k = self.j + n

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.setto(s)

    def step1(self) -> None:
        b = self.b
        if b[self.k] == "s":
            if self.ends("sses"):
                self.k -= 2
            elif self.ends("ies"):
                self.setto("i")
            elif b[self.k - 1] != "s":
                self.k -= 1
        if self.ends("eed"):
            if self.m() > 0:
                self.k -= 1
        elif (self.ends("ed") or self.ends("ing")) and self.vowelinstem():
            self.k = self.j
            if self.ends("at"):
                self.setto("ate")
            elif self.ends("bl"):
                self.setto("ble")
            elif self.ends("iz"):
                self.setto("ize")
            elif self.doublec(self.k):
                ch = self.b[self.k]
                self.k -= 1
                if ch in "lsz":
                    self.k += 1
            elif self.m() == 1 and self.cvc(self.k):
                self.setto("e")

    def step2(self) -> None:
        if self.ends("y") and self.vowelinstem():
            self.b[self.k] = "i"

    _STEP3 = {
        "a": (("ational", "ate"), ("tional", "tion")),
        "c": (("enci", "ence"), ("anci", "ance")),
        "e": (("izer", "ize"),),
        "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
        "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
        "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
        "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
        "g": (("logi", "log"),),
    }
    _STEP4 = {
        "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
        "i": (("iciti", "ic"),),
        "l": (("ical", "ic"), ("ful", "")),
        "s": (("ness", ""),),
    }
    _STEP5 = {
        "a": ("al",),
        "c": ("ance", "ence"),
        "e": ("er",),
        "i": ("ic",),
        "l": ("able", "ible"),
        "n": ("ant", "ement", "ment", "ent"),
        "o": ("ion", "ou"),
        "s": ("ism",),
        "t": ("ate", "iti"),
        "u": ("ous",),
        "v": ("ive",),
        "z": ("ize",),
    }

    def step3(self) -> None:
        if self.k == self.k0:
            return
        for suf, rep in self._STEP3.get(self.b[self.k - 1], ()):
            if self.ends(suf):
                self.r(rep)
                return

    def step4(self) -> None:
        for suf, rep in self._STEP4.get(self.b[self.k], ()):
            if self.ends(suf):
                self.r(rep)
                return

    def step5(self) -> None:
        if self.k == self.k0:
            return
        for suf in self._STEP5.get(self.b[self.k - 1], ()):
            if self.ends(suf):
                if suf == "ion" and not (self.j >= self.k0 and self.b[self.j] in "st"):
                    continue
                break
        else:
            return
        if self.m() > 1:
            self.k = self.j

    def step6(self) -> None:
        self.j = self.k
        if self.b[self.k] == "e":
            a = self.m()
            if a > 1 or (a == 1 and not self.cvc(self.k - 1)):
                self.k -= 1
        if self.b[self.k] == "l" and self.doublec(self.k) and self.m() > 1:
            self.k -= 1

    def stem(self, word: str) -> str:
        if len(word) <= 2:
            return word
        self.b = list(word)
        self.k0 = 0
        self.k = len(word) - 1
        self.j = 0
        self.step1()
        if self.k > self.k0:  # Lucene guards later steps the same way via k/j bounds
            self.step2()
            self.step3()
            self.step4()
            self.step5()
            self.step6()
        return "".join(self.b[: self.k + 1])


_porter = _Porter()


@lru_cache(maxsize=200_000)
def porter(word: str) -> str:
    """Porter stem of a lower-case word (the `english` analyzer's last step)."""
    return _porter.stem(word)


# ---------------------------------------------------------------------------------------------
# Arabic light stemmer (org.apache.lucene.analysis.ar.ArabicStemmer)

_AR_PREFIXES = ("ال", "وال", "بال", "كال", "فال", "لل", "و")
_AR_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ية", "ه", "ة", "ي")
_AR_NORM = re.compile("[\u0640\u064b-\u0652]")
_AR_NORM_MAP = str.maketrans({"\u0622": "\u0627", "\u0623": "\u0627", "\u0625": "\u0627", "\u0649": "\u064a", "\u0629": "\u0647"})


@lru_cache(maxsize=200_000)
def arabic_stem(word: str) -> str:
    """Lucene's ArabicStemmer: one prefix (wa- needs a word of 4+ letters, others leave 2+),
    then every suffix in turn, each only if 2+ letters remain."""
    s = word
    for p in _AR_PREFIXES:
        if len(p) == 1 and len(s) < 4:
            continue
        if len(s) < len(p) + 2:
            continue
        if s.startswith(p):
            s = s[len(p) :]
            break
    for suf in _AR_SUFFIXES:
        if len(s) >= len(suf) + 2 and s.endswith(suf):
            s = s[: -len(suf)]
    return s


def _decimal_ascii(word: str) -> str:
    if word.isascii():
        return word
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in word)


@lru_cache(maxsize=200_000)
def _ar_token(word: str) -> str:
    """`arabic` chain for one (already lower-cased) word: digits, stop, normalise, stem."""
    w = _decimal_ascii(word)
    if w in AR_STOP:
        return GAP
    w = _AR_NORM.sub("", w).translate(_AR_NORM_MAP)
    return arabic_stem(w) if _IS_ARABIC.search(w) else w


@lru_cache(maxsize=200_000)
def _en_token(word: str) -> str:
    """`english` chain for one word: possessive, stop, Porter."""
    w = word
    if len(w) > 2 and w[-2:] in ("'s", "\u2019s", "\uff07s"):
        w = w[:-2]
    if w in EN_STOP:
        return GAP
    return porter(w)


# ---------------------------------------------------------------------------------------------
# tokenizing

_SEGMENT = re.compile(rf"(?P<c>[{_CJK_RANGES}]+)|(?P<w>{_WORD})")


@dataclass(frozen=True, slots=True)
class Tok:
    """A standard-tokenizer token: its text, offsets in the string it came from, and its script
    class ('C' CJK, 'A' Arabic, 'L' Latin/digits, 'O' other)."""

    text: str
    start: int
    end: int
    kind: str


def _segments(text: str) -> list[tuple[str, str]]:
    return [("C", c) if c else (script_of(w), w) for c, w in _SEGMENT.findall(text)]


# space-delimited chunk -> its segments. A space is never inside a token nor a joiner (the
# lookarounds of `_WORD` only see characters of the word they join), so the tokens of a text
# are the tokens of its chunks in order. Space-separated scripts repeat their chunks ("the",
# "floods,") with Zipf frequencies, so most chunks are found here instead of running the
# regex (~4x cheaper for English and Arabic posts); long chunks (unspaced Chinese) are not kept.
_SEG_CACHE: dict[str, list[tuple[str, str]]] = {}
_SEG_CACHE_MAX = 500_000
_SEG_CHUNK_MAX = 32


def segments(folded: str) -> list[tuple[str, str]]:
    """The standard tokenizer's output, compactly: ('C', run) for a run of adjacent CJK
    characters (each one a token to Lucene), else (script class, word)."""
    if " " not in folded:
        return _segments(folded)
    cache = _SEG_CACHE
    if len(cache) > _SEG_CACHE_MAX:
        cache.clear()
    out: list[tuple[str, str]] = []
    for chunk in folded.split(" "):
        segs = cache.get(chunk)
        if segs is None:
            segs = _segments(chunk)
            if len(chunk) <= _SEG_CHUNK_MAX:
                cache[chunk] = segs
        out += segs
    return out


def tokenize(text: str) -> list[Tok]:
    """The standard tokenizer with offsets (one Tok per CJK character), for highlighting."""
    out: list[Tok] = []
    for m in _SEGMENT.finditer(text):
        s = m.start()
        w = m.group()
        if m.lastgroup == "c":
            out.extend(Tok(ch, s + i, s + i + 1, "C") for i, ch in enumerate(w))
        else:
            out.append(Tok(w, s, m.end(), script_of(w)))
    return out


def _word_token(word: str, kind: str, field: str) -> str:
    """One non-CJK word through a field's chain."""
    if field == "zh":
        return GAP if word in CJK_STOP else word
    if field == "en":
        return _en_token(word) if kind == "L" else BARRIER
    if field == "ar":
        return _ar_token(word)
    return word if kind in "LO" else BARRIER


_WORD_CACHE: dict[str, dict[str, str]] = {f: {} for f in FIELDS}


def _field_tokens(segs: Sequence[tuple[str, str]], field: str) -> list[str]:
    """Analysed tokens of one field, one per position (GAP for a removed stop word, BARRIER
    where another script stands); CJK runs become bigrams (a lone character a unigram) in `zh`,
    like Lucene's CJKBigramFilter."""
    out: list[str] = []
    cache = _WORD_CACHE[field]
    if len(cache) > 500_000:
        cache.clear()
    zh = field == "zh"
    for kind, w in segs:
        if kind == "C":
            if zh:
                if len(w) == 1:
                    out.append(w)
                else:
                    out.extend([w[i : i + 2] for i in range(len(w) - 1)])
            else:
                out.append(BARRIER)
            continue
        t = cache.get(w)
        if t is None:
            t = cache[w] = _word_token(w, kind, field)
        out.append(t)
    return out


def _collapse(tokens: list[str]) -> list[str]:
    """Collapse runs of BARRIERs and trim them at the ends (they only separate)."""
    if BARRIER not in tokens:  # the usual case, a post in one script: nothing to do
        return tokens
    out: list[str] = []
    for t in tokens:
        if t == BARRIER and (not out or out[-1] == BARRIER):
            continue
        out.append(t)
    while out and out[-1] == BARRIER:
        out.pop()
    return out


_FIELD_KIND = {"zh": "C", "ar": "A", "en": "L", "std": "O"}


def analyze_post(title: str | None, text: str) -> tuple[dict[str, str], list[str]]:
    """Fold and tokenize a post once; return its FTS5 column values (`index_columns`) and its
    top-term words (`display_terms`)."""
    parts = [segments(fold(p)) for p in (title, text) if p]
    return _columns(parts), _display(parts)


IndexRow = tuple[str, str, str, str, str]


def analyze_many(texts: Sequence[tuple[str | None, str]]) -> list[IndexRow | str]:
    """`analyze_post` over (title, text) pairs as the SQLite writer stores them, for a worker
    process: per post the `FIELDS` column values in order and the display terms joined by
    newlines (flat strings: a fifth of the pickling cost of a dict and a list, and nothing
    left to join in the writer). A pair that fails gives its error as a string in its place
    instead of failing the others."""
    out: list[IndexRow | str] = []
    for title, text in texts:
        try:
            cols, terms = analyze_post(title, text)
            out.append((cols["zh"], cols["ar"], cols["en"], cols["std"], "\n".join(terms)))
        except Exception as e:  # noqa: BLE001 - reported per item by the caller
            out.append(f"{type(e).__name__}: {e}")
    return out


def _columns(parts: list[list[tuple[str, str]]]) -> dict[str, str]:
    kinds = {k for segs in parts for k, _ in segs}
    cols: dict[str, str] = {}
    for field in FIELDS:
        if _FIELD_KIND[field] not in kinds:
            cols[field] = ""
            continue
        seq: list[str] = []
        for segs in parts:
            if seq:
                seq.append(BARRIER)
            seq.extend(_field_tokens(segs, field))
        seq = _collapse(seq)
        cols[field] = " ".join(seq) if any(t != GAP and t != BARRIER for t in seq) else ""
    return cols


def index_columns(title: str | None, text: str) -> dict[str, str]:
    """The FTS5 column values (space-separated tokens) of a post: title and text analysed per
    field, joined by a BARRIER; a field is empty when no query routed to it could match."""
    return analyze_post(title, text)[0]


def display_terms(title: str | None, text: str, limit: int = 64) -> list[str]:
    """The distinct words of a post that `terms(field="term")` counts ("hot words"): Latin and
    other-script words folded, not stemmed, no stop words, 2+ characters, not pure numbers;
    Arabic words normalised, stop words out; Chinese (CJK) bigrams without function
    characters. Stored with the post, so both backends count exactly the same values."""
    return _display([segments(fold(p)) for p in (title, text) if p], limit)


def _display_word(kind: str, w: str) -> str | None:
    if len(w) < 2 or not _HAS_LETTER.search(w):
        return None
    if kind == "A":
        return None if w in AR_STOP else _AR_NORM.sub("", w).translate(_AR_NORM_MAP)
    if len(w) > 2 and w[-2:] in ("'s", "\u2019s"):
        w = w[:-2]
    return None if w in EN_STOP or w in CJK_STOP else w


# word -> its display form or None (the kind of a non-CJK word is a function of the word)
_DISPLAY_CACHE: dict[str, str | None] = {}
_MISSING = object()


def _display(parts: list[list[tuple[str, str]]], limit: int = 64) -> list[str]:
    seen: dict[str, None] = {}
    cache: dict[str, Any] = _DISPLAY_CACHE
    if len(cache) > 500_000:
        cache.clear()
    fn = _ZH_FUNCTION
    for segs in parts:
        for kind, w in segs:
            if len(seen) >= limit:
                break
            if kind == "C":
                bigrams = [w[i : i + 2] for i in range(len(w) - 1)]
                if not fn.isdisjoint(w):
                    bigrams = [b for b in bigrams if b[0] not in fn and b[1] not in fn]
                seen.update(dict.fromkeys(bigrams))
                continue
            d = cache.get(w, _MISSING)
            if d is _MISSING:
                d = cache[w] = _display_word(kind, w)
            if d is not None:
                seen[d] = None
    return list(seen)[:limit]


# ---------------------------------------------------------------------------------------------
# the query language: terms, "phrases", AND / OR / NOT, parentheses; adjacent operands AND.


@dataclass(frozen=True)
class Term:
    """A word or phrase, folded; `field` and `tokens` say where and what the backends search."""

    text: str
    field: str
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class And:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    item: "Node"


@dataclass(frozen=True)
class Const:
    """TRUE (no restriction) or FALSE (matches nothing: a term of stop words only)."""

    value: bool


@dataclass(frozen=True)
class Skip:
    """A term with nothing searchable in it (stop words only): dropped from its AND / OR, as
    Lucene's query parser drops it; a query of nothing else matches nothing."""


Node = Term | And | Or | Not | Const | Skip
TRUE = Const(True)
FALSE = Const(False)
SKIP = Skip()

_QTOKEN = re.compile(r'"([^"]*)"?|[“”]([^“”]*)[”“]?|(\()|(\))|([^\s()"“”]+)')
_OPS = {"AND", "OR", "NOT"}


class QuerySyntaxError(ValueError):
    """The search text cannot be parsed (unbalanced parentheses, a dangling operator)."""


def route(segs: Iterable[tuple[str, str]]) -> str:
    kinds = {k for k, _ in segs}
    if "C" in kinds:
        return "zh"
    if "A" in kinds:
        return "ar"
    if "O" in kinds:
        return "std"
    return "en"


def make_term(raw: str) -> Node:
    """Route and analyse one word or phrase; SKIP when nothing searchable is left."""
    folded = fold(raw)
    segs = segments(folded)
    if not segs:
        return SKIP
    field = route(segs)
    seq = _field_tokens(segs, field)
    while seq and seq[0] == GAP:
        seq.pop(0)
    while seq and seq[-1] == GAP:
        seq.pop()
    if not seq:
        return SKIP
    if field == "ar" and not any(_IS_ARABIC.search(t) for t in seq):
        return SKIP  # only Arabic stop words: see module docstring (sparse columns)
    return Term(folded, field, tuple(seq))


def parse(text: str | None) -> Node:
    """Parse the search language into a simplified tree. Precedence NOT > AND > OR; `AND`,
    `OR`, `NOT` are operators only in upper case (a lower-case "or" is a word)."""
    if text is None or not text.strip():
        return TRUE
    text = text.replace("（", "(").replace("）", ")")
    items: list[tuple[str, str]] = []
    for m in _QTOKEN.finditer(text):
        if m.group(1) is not None or m.group(2) is not None:
            items.append(("term", m.group(1) if m.group(1) is not None else m.group(2)))
        elif m.group(3):
            items.append(("(", "("))
        elif m.group(4):
            items.append((")", ")"))
        else:
            w = m.group(5)
            items.append(("op", w) if w in _OPS else ("term", w))
    pos = 0

    def peek() -> tuple[str, str] | None:
        return items[pos] if pos < len(items) else None

    def parse_or() -> Node:
        nonlocal pos
        parts = [parse_and()]
        while peek() == ("op", "OR"):
            pos += 1
            parts.append(parse_and())
        return _or(parts)

    def parse_and() -> Node:
        nonlocal pos
        parts = [parse_not()]
        while True:
            nxt = peek()
            if nxt == ("op", "AND"):
                pos += 1
                parts.append(parse_not())
            elif nxt is not None and (nxt[0] in ("term", "(") or nxt == ("op", "NOT")):
                parts.append(parse_not())
            else:
                return _and(parts)

    def parse_not() -> Node:
        nonlocal pos
        if peek() == ("op", "NOT"):
            pos += 1
            return _not(parse_not())
        return parse_atom()

    def parse_atom() -> Node:
        nonlocal pos
        nxt = peek()
        if nxt is None:
            raise QuerySyntaxError("the search ends with an operator")
        kind, value = nxt
        pos += 1
        if kind == "term":
            return make_term(value)
        if kind == "(":
            node = parse_or()
            if peek() != (")", ")"):
                raise QuerySyntaxError("a '(' is never closed")
            pos += 1
            return node
        raise QuerySyntaxError(f"unexpected {value!r}")

    node = parse_or()
    if pos != len(items):
        raise QuerySyntaxError(f"unexpected {items[pos][1]!r}")
    return FALSE if node == SKIP else node


def _and(parts: list[Node]) -> Node:
    if all(p == SKIP for p in parts):
        return SKIP
    flat: list[Node] = []
    for p in parts:
        if p == FALSE:
            return FALSE
        if p == TRUE or p == SKIP:
            continue
        flat.extend(p.items if isinstance(p, And) else (p,))
    if not flat:
        return TRUE
    return flat[0] if len(flat) == 1 else And(tuple(dict.fromkeys(flat)))


def _or(parts: list[Node]) -> Node:
    if all(p == SKIP for p in parts):
        return SKIP
    flat: list[Node] = []
    for p in parts:
        if p == TRUE:
            return TRUE
        if p == FALSE or p == SKIP:
            continue
        flat.extend(p.items if isinstance(p, Or) else (p,))
    if not flat:
        return FALSE
    return flat[0] if len(flat) == 1 else Or(tuple(dict.fromkeys(flat)))


def _not(p: Node) -> Node:
    if p == SKIP:
        return SKIP
    if isinstance(p, Const):
        return Const(not p.value)
    if isinstance(p, Not):
        return p.item
    return Not(p)


def positive_terms(node: Node) -> list[Term]:
    """Terms that can make a post match (not under a NOT): what highlights mark."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, (And, Or)):
        return [t for i in node.items for t in positive_terms(i)]
    return []


# ---------------------------------------------------------------------------------------------
# highlights on the original text


@dataclass(frozen=True, slots=True)
class _Pos:
    token: str
    start: int
    end: int


def _positions(original: str, field: str) -> list[_Pos]:
    """The field's token stream of `original` with offsets into `original` (not the folded
    text): each standard token is folded on its own, CJK bigrams span their two characters."""
    toks: list[Tok] = []
    for m in _SEGMENT.finditer(original):
        s, e = m.start(), m.end()
        if m.lastgroup == "c":  # fold the run as a whole (t2s works on phrases)
            folded = fold(m.group())
            if len(folded) == e - s:
                toks.extend(Tok(ch, s + i, s + i + 1, "C") for i, ch in enumerate(folded))
                continue
        for t in tokenize(fold(m.group())):
            toks.append(Tok(t.text, s, e, t.kind))
    out: list[_Pos] = []
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        if t.kind == "C" and field == "zh":
            j = i + 1
            while j < n and toks[j].kind == "C" and toks[j].start == toks[j - 1].end:
                j += 1
            if j - i == 1:
                out.append(_Pos(t.text, t.start, t.end))
            else:
                for a in range(i, j - 1):
                    out.append(_Pos(toks[a].text + toks[a + 1].text, toks[a].start, toks[a + 1].end))
            i = j
            continue
        tok = _word_token(t.text, t.kind, field) if t.kind != "C" else BARRIER
        out.append(_Pos(tok, t.start, t.end))
        i += 1
    return out


def highlight_spans(original: str, terms: Sequence[Term]) -> list[tuple[int, int]]:
    """Merged (start, end) character spans of `original` where a query term matches."""
    spans: list[tuple[int, int]] = []
    by_field: dict[str, list[Term]] = {}
    for t in terms:
        by_field.setdefault(t.field, []).append(t)
    for field, fterms in by_field.items():
        stream = _positions(original, field)
        toks = [p.token for p in stream]
        for term in fterms:
            k = len(term.tokens)
            first = term.tokens[0]
            for i in range(len(toks) - k + 1):
                if toks[i] == first and tuple(toks[i : i + k]) == term.tokens:
                    spans.append((stream[i].start, stream[i + k - 1].end))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def highlight(original: str, terms: Sequence[Term], fragment: int = 120, max_fragments: int = 3) -> list[str]:
    """HTML fragments of `original` with matches in `<em>`; the text is HTML-escaped. Each
    fragment is about `fragment` characters around its first match."""
    spans = highlight_spans(original, terms)
    if not spans:
        return []
    frags: list[str] = []
    i = 0
    while i < len(spans) and len(frags) < max_fragments:
        s0 = spans[i][0]
        lo = max(0, s0 - fragment // 3)
        hi = min(len(original), lo + fragment)
        j = i
        while j < len(spans) and spans[j][1] <= hi:
            j += 1
        if j == i:  # one match longer than the fragment
            hi = spans[i][1]
            j = i + 1
        out = ["…" if lo > 0 else ""]
        cur = lo
        for s, e in spans[i:j]:
            out.append(html.escape(original[cur:s]))
            out.append("<em>" + html.escape(original[s:e]) + "</em>")
            cur = e
        out.append(html.escape(original[cur:hi]))
        out.append("…" if hi < len(original) else "")
        frags.append("".join(out))
        i = j
    return frags


__all__ = [
    "BARRIER",
    "FIELDS",
    "GAP",
    "And",
    "Const",
    "FALSE",
    "Node",
    "Not",
    "Or",
    "QuerySyntaxError",
    "SKIP",
    "TRUE",
    "Term",
    "Tok",
    "analyze_many",
    "analyze_post",
    "display_terms",
    "highlight",
    "index_columns",
    "make_term",
    "parse",
    "porter",
    "positive_terms",
    "tokenize",
]

if __name__ == "__main__":  # pragma: no cover - a quick look at an analysis
    for arg in sys.argv[1:]:
        print(index_columns(None, arg), parse(arg))
