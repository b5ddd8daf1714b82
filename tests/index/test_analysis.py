"""The Python analysis that stands in for Elasticsearch's analyzers: Porter (Lucene's), the
Arabic light stemmer, CJK bigrams, routing, the query language, highlights, fast folding."""

from __future__ import annotations

import pytest

from index import analysis as an

# Martin Porter's published vocabulary sample (as Lucene's PorterStemmer outputs it)
PORTER = """caresses caress ponies poni ties ti caress caress cats cat feed feed agreed agre
plastered plaster bled bled motoring motor sing sing conflated conflat troubled troubl sized size
hopping hop tanned tan falling fall hissing hiss fizzed fizz failing fail filing file happy happi
sky sky relational relat conditional condit rational ration valenci valenc digitizer digit
conformabli conform radicalli radic differentli differ vileli vile analogousli analog
vietnamization vietnam predication predic operator oper feudalism feudal decisiveness decis
hopefulness hope callousness callous formaliti formal sensitiviti sensit sensibiliti sensibl
triplicate triplic formative form formalize formal electriciti electr electrical electr hopeful
hope goodness good revival reviv allowance allow inference infer airliner airlin gyroscopic
gyroscop adjustable adjust defensible defens irritant irrit replacement replac adjustment adjust
dependent depend adoption adopt homologou homolog communism commun activate activ angulariti
angular homologous homolog effective effect bowdlerize bowdler probate probat rate rate cease
ceas controll control roll roll generalization gener emergency emerg flooding flood""".split()


@pytest.mark.parametrize("word,stem", list(zip(PORTER[::2], PORTER[1::2])))
def test_porter(word: str, stem: str) -> None:
    assert an.porter(word) == stem


@pytest.mark.parametrize(
    "word,stem",
    [
        ("الحسن", "حسن"),
        ("والحسن", "حسن"),
        ("بالحسن", "حسن"),
        ("كالحسن", "حسن"),
        ("فالحسن", "حسن"),
        ("للاخر", "اخر"),
        ("وحسن", "حسن"),
        ("زوج", "زوج"),  # wa- needs four letters
        ("ساهدهات", "ساهد"),
        ("ساهدان", "ساهد"),
        ("ساهدين", "ساهد"),
        ("ساهدون", "ساهد"),
        ("ساهديه", "ساهد"),
        ("ساهده", "ساهد"),
        ("ساهدي", "ساهد"),
        ("وساهدون", "ساهد"),
    ],
)
def test_arabic_light_stemmer(word: str, stem: str) -> None:
    assert an.arabic_stem(word) == stem


def test_cjk_bigrams_and_unigrams_like_elasticsearch() -> None:
    cols = an.index_columns(None, "政府发布通报 iPhone手机，火 2024年")
    # the `cjk` analyzer's output for this text (checked against osmem's _analyze)
    assert cols["zh"].split() == ["政府", "府发", "发布", "布通", "通报", "iphone", "手机", "火", "2024", "年"]
    assert cols["en"].split() == ["iphon", "__", "2024"]  # CJK runs are barriers, not tokens
    assert cols["ar"] == "" and cols["std"] == ""  # no Arabic, no other script: nothing to search


def test_stop_words_leave_a_gap_and_barriers_separate() -> None:
    cols = an.index_columns("Title words", "The state of emergency")
    assert cols["en"].split() == ["titl", "word", "__", "_", "state", "_", "emerg"]
    assert an.make_term("state of emergency") == an.Term("state of emergency", "en", ("state", "_", "emerg"))
    assert an.make_term("the of") == an.SKIP


def test_routing_by_script() -> None:
    assert an.make_term("政府").field == "zh"  # type: ignore[union-attr]
    assert an.make_term("iPhone手机").field == "zh"  # type: ignore[union-attr]
    assert an.make_term("الحكومة").field == "ar"  # type: ignore[union-attr]
    assert an.make_term("Москва").field == "std"  # type: ignore[union-attr]
    assert an.make_term("Flooding").field == "en"  # type: ignore[union-attr]
    assert an.make_term("في") == an.SKIP  # an Arabic stop word alone


def test_query_language() -> None:
    t = an.make_term
    assert an.parse(None) == an.TRUE
    assert an.parse("  ") == an.TRUE
    a, b, c = t("alpha"), t("beta"), t("gamma")
    assert an.parse("alpha beta") == an.And((a, b))
    assert an.parse("alpha OR beta gamma") == an.Or((a, an.And((b, c))))
    assert an.parse("alpha OR beta AND NOT gamma") == an.Or((a, an.And((b, an.Not(c)))))
    assert an.parse("NOT alpha") == an.Not(a)
    assert an.parse("NOT NOT alpha") == a
    assert an.parse('"state of emergency" OR（政府）') == an.Or((t("state of emergency"), t("政府")))
    assert an.parse("flood or rescue") == an.And((t("flood"), t("rescue")))  # "or": a stop word
    # a stop-word-only term is dropped (Lucene's query parser); nothing else left: no match
    assert an.parse("the OR flood") == t("flood")
    assert an.parse("the AND flood") == t("flood")
    assert an.parse("flood NOT the") == t("flood")
    assert an.parse("the") == an.FALSE
    assert an.parse("NOT (the OR of)") == an.FALSE
    for bad in ("(a OR b", "a OR", "a )", "NOT"):
        with pytest.raises(an.QuerySyntaxError):
            an.parse(bad)


def test_highlight_marks_the_original_and_escapes_html() -> None:
    terms = an.positive_terms(an.parse("通报 OR flooding OR الحكومة NOT rumor"))
    text = "<b>政府通報</b> Flooded streets & وَالحُكُومَةُ rumor"
    frags = an.highlight(text, terms)
    joined = " ".join(frags)
    assert "&lt;b&gt;政府<em>通報</em>&lt;/b&gt;" in joined
    assert "<em>Flooded</em>" in joined and "&amp;" in joined
    assert "<em>وَالحُكُومَةُ</em>" in joined
    assert "<em>rumor</em>" not in joined  # under NOT: not a reason the post matched


def test_display_terms() -> None:
    terms = an.display_terms("国家政府的通报", "The Ministry's flooding statement الحكومة في")
    assert "政府" in terms and "通报" in terms
    assert not any("的" in t for t in terms)
    assert "ministry" in terms and "flooding" in terms and "the" not in terms
    assert "الحكومه" in terms and "في" not in terms


# Chunks that the standard tokenizer's joiners touch (letters across . : ' ’ ·, digits across
# , . ; ' ’), at the edges of spaces, in every script, and repeated so the chunk cache answers.
_CHUNKY = [
    "U.S. a.b. c'd d’e 3,5 3, 5 3 ,5 1.2.3 a:b :a b: ·x y· x·y _a_ a_ __",
    "政府发布通报 iPhone手机，火 2024年 الحكومة في والمياه 水管爆裂 Москва 3.14",
    "  leading and  double  spaces , . ; ' ’ · : trailing ",
    "flooding floods flooded flooding floods flooded. flooding, floods; flooded:",
    "a" * 40 + " " + "b" * 33 + " x.y" * 10,
]


@pytest.mark.parametrize("text", _CHUNKY)
def test_segments_by_chunk_equal_segments_of_the_whole(text: str) -> None:
    """`segments` tokenizes space-separated chunks through a cache; the tokens must be those
    of the whole string (a space is never inside a token nor next to a joiner it affects)."""
    whole = an._segments(text)
    for _ in range(2):  # the second pass answers from the cache
        assert an.segments(text) == whole
        assert an.segments(an.fold(text)) == an._segments(an.fold(text))


def test_analyze_many_gives_the_writers_rows() -> None:
    """The flat rows the SQLite writer stores: the `FIELDS` columns, then the display terms."""
    pairs = [("标题", "政府发布通报 The floods' statement الحكومة"), (None, "state of emergency")]
    for (title, text), row in zip(pairs, an.analyze_many(pairs), strict=True):
        cols, terms = an.analyze_post(title, text)
        assert row == (*(cols[f] for f in an.FIELDS), "\n".join(terms))
