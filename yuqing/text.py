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


def normalize_arabic(text: str) -> str:
    return _ARABIC_DIACRITICS.sub("", text).translate(_ARABIC_MAP)


def to_simplified(text: str) -> str:
    return _t2s().convert(text) if _HAN.search(text) else text


def fold(text: str) -> str:
    """Fold for comparison (never for display: the original text is always kept)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if _HAN.search(text):
        text = to_simplified(text)
    if _ARABIC.search(text):
        text = normalize_arabic(text)
    return re.sub(r"\s+", " ", text).strip()
