"""Language-aware text folding shared by matching (crawlers), analysis (index) and model
input normalisation (nlp), so "the same text" means the same thing in every stage.

fold(): NFKC (full/half width), case folding, Traditional -> Simplified Chinese (OpenCC),
Arabic normalisation (tashkeel and tatweel removed; alef, ya and ta-marbuta variants unified).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_ARABIC_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_MAP = str.maketrans(
    {
        "\u0622": "\u0627",  # آ -> ا
        "\u0623": "\u0627",  # أ -> ا
        "\u0625": "\u0627",  # إ -> ا
        "\u0671": "\u0627",  # ٱ -> ا
        "\u0649": "\u064a",  # ى -> ي
        "\u0629": "\u0647",  # ة -> ه
    }
)
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")


@lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    from opencc import OpenCC

    return OpenCC("t2s")


@lru_cache(maxsize=1)
def _t2s_triggers() -> frozenset[str]:
    """Characters without which OpenCC's t2s conversion is the identity: every character that
    TSCharacters maps to another, and each position where a TSPhrases key differs from its value
    (all of a key whose value has another length). Text holding none of them - nearly every
    post written in Simplified Chinese - skips OpenCC, the costliest step of folding."""
    import os

    import opencc

    base = os.path.join(os.path.dirname(opencc.__file__), "dictionary")
    out: set[str] = set()
    with open(os.path.join(base, "TSCharacters.txt"), encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            if value.split(" ")[0] != key:
                out.add(key)
    with open(os.path.join(base, "TSPhrases.txt"), encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            v = value.split(" ")[0]
            if v == key:
                continue
            if len(v) != len(key):
                out.update(key)
            else:
                out.update(k for k, x in zip(key, v) if k != x)
    return frozenset(out)


def normalize_arabic(text: str) -> str:
    return _ARABIC_DIACRITICS.sub("", text).translate(_ARABIC_MAP)


def to_simplified(text: str) -> str:
    if not _HAN.search(text) or _t2s_triggers().isdisjoint(text):
        return text
    return _t2s().convert(text)


def fold(text: str) -> str:
    """Fold for comparison (never for display: the original text is always kept)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = to_simplified(text)
    if _ARABIC.search(text):
        text = normalize_arabic(text)
    return re.sub(r"\s+", " ", text).strip()
