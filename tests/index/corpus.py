"""A small generated multilingual corpus whose expected search results are known by
construction: every post records which word *families* were written into it, in which surface
form, and the filler text is built from characters and words that belong to no family. So the
expected ids of a query come from the generator's bookkeeping, not from the code under test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from yuqing.records import Author, Classification, Engagement, Post, SourceTier, TopicScore

UTC = timezone.utc

# family -> surface forms that every backend must treat as the same word
FAMILIES: dict[str, tuple[str, ...]] = {
    # Chinese two- and three-character words; Traditional forms fold to Simplified
    "zh:政府": ("政府",),
    "zh:通报": ("通报", "通報"),
    "zh:洪水": ("洪水",),
    "zh:发布会": ("发布会", "發佈會"),
    "zh:谣言": ("谣言", "謠言"),
    # English: every form has the same Porter stem
    "en:flood": ("flood", "floods", "flooding", "Flooded"),
    "en:rescue": ("rescue", "rescued", "rescues"),
    "en:ministry": ("ministry", "Ministry's", "ministries"),
    "en:rumor": ("rumor", "rumors", "RUMOR"),
    # Arabic: with and without diacritics, with clitics the light stemmer removes
    "ar:حكومة": ("الحكومة", "حكومة", "الحُكُومَة", "والحكومة", "للحكومة", "بالحكومة"),
    "ar:فيضانات": ("الفيضانات", "فيضانات", "والفيضانات"),
    "ar:بيان": ("البيان", "بيان", "البَيَان"),
}
# the exact-form subsets every backend must find even without Arabic stemming
EXACT_AR = {"الحكومة": ("الحكومة", "الحُكُومَة")}

ZH_FILLER = "今天下午相关部门表示目前情况稳定请大家关注后续消息各地正在处理城区路段天气晴朗"
EN_FILLER = "today officials said city update local people were told more details later".split()
AR_FILLER = "قال المسؤولون اليوم إن الوضع مستقر في المدينة".split()
EN_PHRASE = "state of emergency"  # written as a phrase into some posts
EN_PHRASE_SPLIT = "emergency state"  # same words, other order: must not match the phrase

SOURCES = ["weibo-a", "news-b", "forum-c", "gov-d", "wire-e"]
PLATFORMS = ["weibo", "web", "forum"]
TOPICS = ["flood", "health", "traffic", "policy"]
WATCHLISTS = ["mwr", "leaders"]
SENTIMENTS = ["negative", "neutral", "positive"]


@dataclass
class GenPost:
    post: Post
    families: set[str] = field(default_factory=set)
    forms: set[str] = field(default_factory=set)
    phrase: bool = False
    phrase_split: bool = False


def _check_filler() -> None:
    """The filler must not contain any family word, or expectations would be wrong."""
    from yuqing.text import fold

    filler = fold(ZH_FILLER + " " + " ".join(EN_FILLER) + " " + " ".join(AR_FILLER))
    for forms in FAMILIES.values():
        for f in forms:
            ff = fold(f)
            assert ff not in filler, f
    for ch in "".join(fold(f) for k, v in FAMILIES.items() if k.startswith("zh") for f in v):
        assert ch not in fold(ZH_FILLER), ch


def times() -> list[datetime]:
    """Publication times: two windows around the 2024 New York DST changes (spring forward on
    10 March, fall back on 3 November), local-midnight edges in Shanghai, and many ties."""
    out: list[datetime] = []
    base = datetime(2024, 3, 9, 0, 0, tzinfo=UTC)
    for i in range(90):
        out.append(base + timedelta(minutes=41 * i))
    base = datetime(2024, 11, 2, 18, 0, tzinfo=UTC)
    for i in range(50):
        out.append(base + timedelta(minutes=23 * i))
    # exact edges: Shanghai midnight (16:00 UTC), one millisecond before, NY 01:30 twice
    edge = datetime(2024, 3, 10, 16, 0, tzinfo=UTC)
    out += [edge, edge - timedelta(milliseconds=1), edge + timedelta(milliseconds=1)]
    out += [datetime(2024, 11, 3, 5, 30, tzinfo=UTC), datetime(2024, 11, 3, 6, 30, tzinfo=UTC)]
    return out


def generate(n: int = 240, seed: int = 7) -> list[GenPost]:
    _check_filler()
    rnd = random.Random(seed)
    ts = times()
    tie_times = [datetime(2024, 3, 11, 9, 0, tzinfo=UTC), datetime(2024, 11, 3, 12, 0, tzinfo=UTC)]
    zh_f = [k for k in FAMILIES if k.startswith("zh")]
    en_f = [k for k in FAMILIES if k.startswith("en")]
    ar_f = [k for k in FAMILIES if k.startswith("ar")]
    out: list[GenPost] = []
    for i in range(n):
        lang = rnd.choice(["zh", "zh", "en", "ar", "mixed"])
        fams: list[str] = []
        pool = {"zh": zh_f, "en": en_f, "ar": ar_f, "mixed": zh_f + en_f}[lang]
        fams = rnd.sample(pool, rnd.randint(0, 3))
        if lang == "mixed":  # always one Chinese and one English word
            fams = list(dict.fromkeys([rnd.choice(zh_f), rnd.choice(en_f), *fams[:1]]))
        g = GenPost(post=None)  # type: ignore[arg-type]
        pieces: list[str] = []
        for fam in fams:
            form = rnd.choice(FAMILIES[fam])
            g.families.add(fam)
            g.forms.add(form)
            pieces.append(form)
        if lang in ("en", "mixed") and rnd.random() < 0.25:
            if rnd.random() < 0.5:
                pieces.append(EN_PHRASE)
                g.phrase = True
            else:
                pieces.append(EN_PHRASE_SPLIT)
                g.phrase_split = True
        text = _compose(rnd, lang, pieces)
        title = None
        if rnd.random() < 0.3:
            title = _compose(rnd, "zh" if lang in ("zh", "mixed") else lang, [])
        if i < len(ts):
            published = ts[i]
        else:
            published = rnd.choice(tie_times) if rnd.random() < 0.5 else rnd.choice(ts)
        sent = SENTIMENTS[rnd.randrange(3)] if i % 11 else None
        cls = None
        if sent:
            cls = Classification(
                sentiment=sent,
                sentiment_scores={s: (0.8 if s == sent else 0.1) for s in SENTIMENTS},
                topics=[TopicScore(topic=t, score=0.7) for t in rnd.sample(TOPICS, rnd.randint(0, 2))],
                rumor=round(rnd.choice([0.0, 0.1, 0.5, 0.5, 0.9, rnd.random()]), 2),
                model="test@1",
            )
        likes = rnd.choice([0, 0, 1, 2, 5, 5, 10, None])
        g.post = Post(
            id=f"post-{i:04d}",
            url=f"https://example.test/{i}",
            source=SOURCES[i % len(SOURCES)],
            platform=rnd.choice(PLATFORMS),
            source_tier=rnd.choice(list(SourceTier)),
            author=Author(id=f"au{rnd.randrange(12):02d}" if rnd.random() < 0.9 else None, name="x"),
            published_at=published,
            fetched_at=published + timedelta(minutes=5),
            lang=None if lang == "mixed" else lang,
            title=title,
            text=text,
            engagement=Engagement(likes=likes, reposts=rnd.choice([0, 1, None])),
            watchlists=rnd.sample(WATCHLISTS, rnd.randint(0, 2)),
            matched_terms=[],
            classification=cls,
        )
        out.append(g)
    return out


def _compose(rnd: random.Random, lang: str, pieces: list[str]) -> str:
    """Filler with the pieces at random places, separated so no two family words touch."""
    parts: list[str] = []
    for p in pieces + [None] * rnd.randint(1, 3):  # type: ignore[list-item]
        parts.append(p if p is not None else _filler(rnd, lang))
    rnd.shuffle(parts)
    if lang == "zh":
        return "，".join(parts) + "。"
    if lang == "mixed":
        return " ".join(parts)
    return " ".join(parts) + "."


def _filler(rnd: random.Random, lang: str) -> str:
    if lang in ("zh", "mixed") and (lang == "zh" or rnd.random() < 0.5):
        a = rnd.randrange(len(ZH_FILLER) - 8)
        return ZH_FILLER[a : a + rnd.randint(3, 8)]
    if lang == "ar":
        return " ".join(rnd.sample(AR_FILLER, 3))
    return " ".join(rnd.sample(EN_FILLER, 4))
