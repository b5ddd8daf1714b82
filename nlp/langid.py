"""Offline language identification: `detect(text) -> ISO 639-1 code or None`.

Why lingua: it is maintained, ships its models inside the wheel (no download at run time) and is
accurate on short, informal text such as tweets and Weibo posts. The detector is restricted to the
languages a monitoring desk plausibly sees; a smaller candidate set is both faster and more accurate
on short posts than all 75 languages. It is built once per process, lazily (loading costs ~1 s).

Script shortcuts, answered without asking lingua because the script alone decides them and lingua
costs ~1-2 ms a post plus a one-off load of each candidate's n-gram models (seconds, ~25 MB each):
- Han with no kana or hangul is `zh` (the most common case here);
- Arabic script using only the letters of the Arabic language (no Persian/Urdu letters such as
  پ چ ژ گ ک ی ٹ ڈ ڑ ں ے) is `ar`. Measured on real Arabic tweets, lingua's n-grams called a few of
  these `fa`/`ur` (e.g. "جستن بيبر"); Persian and Urdu cannot be written without their own letters
  for long, so those texts still go to lingua.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from nlp.normalize import clean

#: Candidate languages (ISO 639-1 or lingua names). Each Latin-script language costs ~25 MB of
#: resident memory once seen, so the list is what a Chinese agency's desk sees, not all 75.
LANGUAGES = ("ZH", "EN", "AR", "JA", "KO", "RU", "FR", "DE", "ES", "PERSIAN", "URDU", "TR")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
_LETTER = re.compile(r"[^\W\d_]", re.U)
#: Letters (not digits, punctuation or diacritics) of the Arabic script (base block, supplements,
#: presentation forms), and those of them that are not letters of the Arabic language itself
#: (U+0621-U+064A and their presentation forms-B): counted by the regex engine, not a Python loop
#: per character.
_ARABIC_LETTER = re.compile(r"(?=[^\W\d_])[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_NON_ARABIC_LANGUAGE_LETTER = re.compile(
    r"(?=[^\W\d_])(?![\u0621-\u064a\ufe70-\ufeff])[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_URLISH = re.compile(r"https?://\S+|@\w+|#\w+")
_lock = threading.Lock()

_NAMES = {
    "ZH": "CHINESE", "EN": "ENGLISH", "AR": "ARABIC", "JA": "JAPANESE", "KO": "KOREAN",
    "RU": "RUSSIAN", "FR": "FRENCH", "DE": "GERMAN", "ES": "SPANISH", "PT": "PORTUGUESE",
    "IT": "ITALIAN", "NL": "DUTCH", "TR": "TURKISH",
}


@lru_cache(maxsize=1)
def _detector():  # type: ignore[no-untyped-def]
    from lingua import Language, LanguageDetectorBuilder

    langs = [getattr(Language, _NAMES.get(code, code)) for code in LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detect(text: str | bytes | None) -> str | None:
    """ISO 639-1 code (lower case) of the text's main language, or None when there is no
    language to detect (empty, binary, only digits/URLs/emoji)."""
    t = _URLISH.sub(" ", clean(text))[:2000]
    letters = len(_LETTER.findall(t))
    if not letters:
        return None
    han = len(_HAN.findall(t))  # every Han ideograph is a letter
    if han and not _KANA_HANGUL.search(t) and han >= 0.5 * letters:
        return "zh"
    arabic = len(_ARABIC_LETTER.findall(t))
    if arabic and arabic >= 0.5 * letters and not _NON_ARABIC_LANGUAGE_LETTER.search(t):
        return "ar"
    with _lock:
        det = _detector()
    lang = det.detect_language_of(t)
    if lang is None:
        return None
    return lang.iso_code_639_1.name.lower()
