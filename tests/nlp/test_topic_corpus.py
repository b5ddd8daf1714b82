"""The topic corpus (a deployment's unlabelled posts) and the topic expansion it enables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nlp.errors import ModelError
from nlp.topic_corpus import FILES, TopicCorpus, build_corpus
from nlp.topics import KW_VISIBLE, TopicMatcher, matcher_for_model
from yuqing.config import TopicConfig

# fruit posts praise sweetness and juice, phone posts battery life; the examples below use neither
FRUIT = ["苹果新鲜香甜多汁", "苹果很甜香甜多汁", "橙子新鲜香甜多汁", "苹果个大香甜多汁", "水果新鲜香甜多汁"]
PHONE = ["屏幕清晰续航给力", "屏幕很大续航给力", "手机屏幕续航给力", "屏幕不错续航给力", "手机续航给力屏幕好"]
OTHER = ["今天天气不错", "明天开会讨论", "外卖送得很快", "快递员态度好"]


def _corpus() -> TopicCorpus:
    return build_corpus((FRUIT + PHONE) * 4 + OTHER * 2, max_docs=1000, min_df=1)


def _topics(keywords: bool = False) -> list[TopicConfig]:
    return [TopicConfig(name="fruit", examples=["苹果不错", "苹果好"], keywords=["橙子"] if keywords else []),
            TopicConfig(name="phone", examples=["屏幕不错", "屏幕好"])]


def test_corpus_round_trip(tmp_path: Path) -> None:
    c = _corpus()
    assert sorted(c.save(tmp_path)) == sorted(FILES)
    back = TopicCorpus.load(tmp_path)
    assert back.vocabulary == c.vocabulary
    assert np.allclose(back.idf, c.idf)
    assert (back.docs != c.docs).nnz == 0
    assert np.allclose(back.transform(["香甜多汁"]).toarray(), c.transform(["香甜多汁"]).toarray())


def test_corpus_mismatch_names_the_file(tmp_path: Path) -> None:
    _corpus().save(tmp_path)
    cfg = json.loads((tmp_path / FILES[0]).read_text(encoding="utf-8"))
    cfg["n_docs"] += 1
    (tmp_path / FILES[0]).write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ModelError, match=FILES[1]):
        TopicCorpus.load(tmp_path)


def test_expansion_places_posts_in_words_the_examples_never_used() -> None:
    embed = lambda texts: None  # encoder weight 0: never called
    plain = TopicMatcher(_topics(), embed, 0.3, 10.0)
    expanded = TopicMatcher(_topics(), embed, 0.3, 10.0, corpus=_corpus())
    posts = ["香甜多汁", "续航给力"]
    before = plain.scores(posts, None)
    after = expanded.scores(posts, None)
    assert abs(before[0][0] - before[0][1]) < 1e-6 and abs(before[1][0] - before[1][1]) < 1e-6  # no shared word
    assert after[0][0] - after[0][1] > 0.5 and after[1][1] - after[1][0] > 0.5


def test_keyword_hit_stays_visible_with_expansion() -> None:
    m = TopicMatcher(_topics(keywords=True), lambda t: None, 0.3, 10.0, corpus=_corpus())
    row = m.scores(["续航给力的橙子"], None)[0]
    assert row[0] >= KW_VISIBLE


def test_uncovered_script_falls_back_to_prototypes() -> None:
    topics = [TopicConfig(name="water", examples=["water outage in the district"]),
              TopicConfig(name="bus", examples=["bus route cancelled"])]
    m = TopicMatcher(topics, lambda t: None, 0.3, 10.0, corpus=_corpus())
    assert m.coverage(["water outage again"])[0] < 0.5
    row = m.scores(["water outage again"], None)[0]
    assert row[0] > row[1]


def test_matcher_for_model_uses_a_listed_corpus_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    from nlp.classifier import Classifier
    from nlp.manifest import read_manifest, write_manifest

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    clf = Classifier.load(d, device="cpu")
    head = clf.manifest.heads.topics
    assert matcher_for_model(d, set(clf.manifest.files), _topics(), clf._embed_texts, head).corpus is None
    _corpus().save(d)
    write_manifest(d, read_manifest(d))
    clf = Classifier.load(d, device="cpu")  # checksums of the corpus verified by the loader
    m = matcher_for_model(d, set(clf.manifest.files), _topics(), clf._embed_texts, head)
    assert m is not None and m.corpus is not None
    assert matcher_for_model(d, set(clf.manifest.files), [], clf._embed_texts, head) is None


def test_standin_keywords(tmp_path: Path) -> None:
    from nlp.evaluate import standin_keywords

    kw = standin_keywords()
    assert len(kw) == 10 and all(kw.values())
    bad = tmp_path / "kw.json"
    bad.write_text('{"keywords": {"a": "not a list"}}', encoding="utf-8")
    with pytest.raises(ValueError, match="kw.json"):
        standin_keywords(bad)


def test_deployment_corpus_from_the_cli_changes_what_classify_answers(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`yuqing topic-corpus` builds a corpus from the deployment's posts (bad lines reported by
    number, the rest kept); `yuqing classify --topic-corpus DIR` then places posts in words the
    examples never used. A missing corpus is a clear load error (exit 2)."""
    import io

    from nlp.contract import main as classify_main
    from yuqing.cli import main as cli_main

    posts = tmp_path / "posts.jsonl"
    rows = [json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in enumerate((FRUIT + PHONE) * 4 + OTHER * 2)]
    posts.write_text("\n".join([rows[0], "{not json", json.dumps({"id": "x"}), *rows[1:]]) + "\n", encoding="utf-8")
    out_dir = tmp_path / "corpus"
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli_main(["topic-corpus", "--input", str(posts), "--out", str(out_dir), "--min-df", "1"]) == 0
    assert "posts.jsonl:2: not JSON" in err.getvalue() and "posts.jsonl:3: no 'text'" in err.getvalue()
    assert TopicCorpus.load(out_dir).docs.shape[0] == len(rows)

    topics = tmp_path / "topics.yaml"
    topics.write_text("- name: fruit\n  examples: [苹果不错, 苹果好]\n- name: phone\n  examples: [屏幕不错, 屏幕好]\n",
                      encoding="utf-8")

    def classify(extra: list[str]) -> tuple[int, list[dict], str]:
        o, e = io.StringIO(), io.StringIO()
        line = json.dumps({"id": "p", "text": "香甜多汁"}, ensure_ascii=False) + "\n"
        rc = classify_main(["--model", str(tiny_model_dir), "--topics", str(topics), *extra], io.StringIO(line), o, e)
        return rc, [json.loads(x) for x in o.getvalue().splitlines()], e.getvalue()

    rc, plain, _ = classify([])
    assert rc == 0
    rc, expanded, _ = classify(["--topic-corpus", str(out_dir)])
    assert rc == 0
    def score(answer: dict, topic: str) -> float:
        return next((t["score"] for t in answer["topics"] if t["topic"] == topic), 0.0)

    # the examples share no word with the post: without the corpus the two topics cannot be told apart
    assert abs(score(plain[0], "fruit") - score(plain[0], "phone")) < 1e-6
    assert expanded[0]["topics"][0]["topic"] == "fruit"
    assert score(expanded[0], "fruit") - score(expanded[0], "phone") > 0.3
    rc, _, e = classify(["--topic-corpus", str(tmp_path / "missing")])
    assert rc == 2 and "missing" in e and "topic corpus" in e
