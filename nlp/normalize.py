"""Model-input normalisation, shared by training and inference.

Why one function for both: a model only works on inputs shaped like the ones it was trained on.
If training saw `@user` and `http` placeholders and folded Traditional Chinese, inference must do
exactly the same, so both call `normalize()` and nothing else.

Steps (in order): decode and de-binarise (`clean`), HTML unescape + tag removal, URLs -> `http`
and mentions -> `@user` (the convention of the UMSAB/TweetEval tweets we train on), emoji
presentation selectors / zero-width joiners / skin tones dropped (the base emoji carries the
meaning), `yuqing.text.fold` (NFKC, case, Traditional->Simplified, Arabic letter variants) and
runs of one character capped at three ("!!!!!!", "哈哈哈哈哈" carry no more signal than three).
"""

from __future__ import annotations

import html
import re
import unicodedata

from yuqing.text import fold

_TAG = re.compile(r"<\s*(script|style)[^>]*>.*?<\s*/\s*\1\s*>|<[^>]{0,500}>", re.S | re.I)
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|cn|net|org|io|co|gov|edu|ly|me)/\S*", re.I)
_MENTION = re.compile(r"@[\w\u4e00-\u9fff\u0600-\u06ff.-]{1,30}")
_EMOJI_NOISE = re.compile("[\ufe0e\ufe0f\u200d\u200b\u200c\u2060\U0001f3fb-\U0001f3ff]")
_REPEAT = re.compile(r"(.)\1{3,}", re.S)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")

#: Characters of input kept before normalising. Over-long posts keep their head and tail
#: (`head_tail`), so a 1 MB paste costs the same as a long article.
MAX_INPUT_CHARS = 4000


def clean(text: str | bytes | None) -> str:
    """Text safe to analyse, or "" for nothing / binary.

    Bytes are decoded as UTF-8 with replacement. A text that is mostly control or replacement
    characters is binary (an image pasted as text, a mis-decoded file): it is answered as an
    empty post rather than fed to the model as noise.
    """
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        text = str(text)
    if not text:
        return ""
    sample = text[:2000]
    bad = len(_CONTROL.findall(sample))
    if bad > 0.3 * len(sample):
        return ""
    return _CONTROL.sub(" ", text)


def head_tail(text: str, max_chars: int = MAX_INPUT_CHARS) -> str:
    """Keep the first two thirds and the last third of an over-long text.

    Why head and tail: posts state the news first and the stance (a question, "谣言!", a call to
    action) last; the middle of a long repost chain is the least informative part.
    """
    if len(text) <= max_chars:
        return text
    head = (max_chars * 2) // 3
    tail = max_chars - head
    return text[:head] + " … " + text[-tail:]


def normalize(text: str | bytes | None, max_chars: int = MAX_INPUT_CHARS, fold_text: bool = True) -> str:
    """The model's view of a post (never stored or displayed: the original text is kept).

    `fold_text=False` skips `yuqing.text.fold` (case, Traditional->Simplified, Arabic letter
    variants): a deployer's pretrained model (`nlp.single_task`) was trained on unfolded text, with
    only the `@user` / `http` placeholders that this function also writes."""
    t = head_tail(clean(text), max_chars)
    if not t:
        return ""
    if "&" in t:
        t = html.unescape(t)
    if "<" in t:
        t = _TAG.sub(" ", t)
    t = _URL.sub(" http ", t)
    t = _MENTION.sub("@user", t)
    t = _EMOJI_NOISE.sub("", t)
    t = unicodedata.normalize("NFKC", t)
    if fold_text:
        t = fold(t)
    t = _REPEAT.sub(r"\1\1\1", t)
    return t
