"""A deployer's standard sequence-classification model answering one task beside the default model.

The override models are built here with plain transformers (BERT and XLM-R shapes, tiny) and
saved with `save_pretrained`, as `hf download` of e.g. cardiffnlp/twitter-xlm-roberta-base-sentiment
would leave them: no manifest of ours, only the checksum list the README tells a deployer to write.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                          BertForSequenceClassification, XLMRobertaConfig, XLMRobertaForSequenceClassification)

from nlp.classifier import Classifier, ClassifyInput
from nlp.contract import main as classify_main
from nlp.errors import ModelError
from nlp.onnx_export import main as models_main
from nlp.single_task import OverrideSpec, load_single_task, write_sums
from nlp.tokenization import train_tokenizer
from yuqing.config import ConfigError, load_settings

TEXTS = ["Great job by the water office today!", "bad awful service", "الخدمة رائعة جدا", "小区停水三天了", ""]


def _tokenizer():  # type: ignore[no-untyped-def]
    corpus = ["great job water office today", "bad awful service", "الخدمة رائعة جدا", "小区停水三天了"] * 20
    return train_tokenizer(corpus, vocab_size=200, min_frequency=1, max_length=64)


def _save(model, tok, out: Path, sums: bool = True) -> Path:  # type: ignore[no-untyped-def]
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    if sums:
        write_sums(out)
    return out


def bert_dir(root: Path, id2label: dict[int, str], name: str = "cardiff", sums: bool = True,
             problem_type: str | None = None) -> Path:
    torch.manual_seed(5)
    tok = _tokenizer()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=66, pad_token_id=tok.pad_token_id,
                     id2label=id2label, label2id={v: k for k, v in id2label.items()}, problem_type=problem_type)
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():  # a visible preference, so a permuted label order would show
        model.classifier.bias.copy_(torch.linspace(-1.0, 1.0, len(id2label)))
    return _save(model, tok, root / name, sums)


def xlmr_dir(root: Path, id2label: dict[int, str], name: str) -> Path:
    torch.manual_seed(6)
    tok = _tokenizer()
    cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64 + tok.pad_token_id + 2,
                           pad_token_id=tok.pad_token_id, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    return _save(XLMRobertaForSequenceClassification(cfg), tok, root / name)


def _reference(model_dir: Path, texts: list[str]) -> torch.Tensor:
    """Plain transformers, standard tokenizer call: the probabilities in the model's own label order."""
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).eval()
    with torch.inference_mode():
        return torch.stack([torch.softmax(model(**tok(t, return_tensors="pt")).logits[0], -1) for t in texts])


def test_sentiment_override_answers_sentiment_and_keeps_the_rest(tiny_model_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    # labels in an unusual order, with abbreviations: the loader maps them by name
    d = bert_dir(tmp_path, {0: "Positive", 1: "neg", 2: "neutral"})
    base = Classifier.load(tiny_model_dir, device="cpu")
    clf = Classifier.load(tiny_model_dir, device="cpu", overrides=[OverrideSpec("sentiment", d)])
    sha8 = (d / "sha256sums").read_text().split("model.safetensors")[0].splitlines()[-1][:8]
    assert clf.model_id == f"tiny@0.0.1+sentiment=cardiff@{sha8}"
    items = [ClassifyInput(id=str(i), text=t, time=1400000000, user={"followers": 3}) for i, t in enumerate(TEXTS)]
    a, b = base.classify(items), clf.classify(items)
    ref = _reference(d, TEXTS[:4])
    for i in range(4):
        s = b[i].sentiment_scores
        assert s["positive"] == pytest.approx(float(ref[i, 0]), abs=1e-5)
        assert s["negative"] == pytest.approx(float(ref[i, 1]), abs=1e-5)
        assert s["neutral"] == pytest.approx(float(ref[i, 2]), abs=1e-5)
        assert b[i].sentiment == max(s, key=s.get)
        assert b[i].rumor == a[i].rumor  # rumour still from the main model
        assert b[i].model == clf.model_id
    assert b[4].sentiment_scores == {"negative": 0.0, "neutral": 1.0, "positive": 0.0}  # empty: defined answer


def test_generic_labels_need_a_mapping_from_the_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    models = tmp_path / "models"
    d = xlmr_dir(models, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, "xlmt")
    with pytest.raises(ModelError, match=r"LABEL_0.*cannot be mapped.*nlp\.overrides\.sentiment\.labels"):
        load_single_task(OverrideSpec("sentiment", d))
    r = xlmr_dir(models, {0: "non-rumor", 1: "rumor"}, "rumourbert")
    topics = tmp_path / "topics.yaml"
    topics.write_text("- name: water\n  keywords: [water]\n", encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"models_dir: models\nnlp:\n  model: {tiny_model_dir}\n  overrides:\n"
        "    sentiment:\n      model: xlmt\n      labels: {LABEL_0: negative, LABEL_1: neutral, LABEL_2: positive}\n"
        "    rumor: models/rumourbert\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    lines = "".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(TEXTS))
    assert classify_main(["--config", str(cfg), "--topics", str(topics)], io.StringIO(lines), out, err) == 0, err.getvalue()
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(rows) == len(TEXTS)
    assert rows[0]["model"].startswith("tiny@0.0.1+sentiment=xlmt@") and "+rumor=rumourbert@" in rows[0]["model"]
    ref_s, ref_r = _reference(d, TEXTS[:4]), _reference(r, TEXTS[:4])
    for i in range(4):
        got = rows[i]["sentiment_scores"]
        assert [got["negative"], got["neutral"], got["positive"]] == pytest.approx(ref_s[i].tolist(), abs=1e-5)
        assert rows[i]["rumor"] == pytest.approx(float(ref_r[i, 1]), abs=1e-5)
    # the command-line override replaces the configured one for its task
    out2 = io.StringIO()
    assert classify_main(["--model", str(tiny_model_dir), "--topics", str(topics), "--override", f"rumor={r}"],
                         io.StringIO(lines), out2, io.StringIO()) == 0
    assert json.loads(out2.getvalue().splitlines()[0])["model"].startswith("tiny@0.0.1+rumor=rumourbert@")


@pytest.mark.parametrize("problem", ["no_sums", "tampered", "pickle_only", "two_labels", "unknown_label", "missing_weights"])
def test_unusable_override_is_refused_clearly(tiny_model_dir: Path, tmp_path: Path, problem: str) -> None:
    torch.set_num_threads(1)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    if problem == "two_labels":
        labels = {0: "negative", 1: "positive"}
    if problem == "unknown_label":
        labels = {0: "negative", 1: "neutral", 2: "joy"}
    d = bert_dir(tmp_path, labels, sums=problem != "no_sums")
    expected = {"no_sums": r"sha256sums: missing", "tampered": r"model.safetensors: sha256 .* does not match",
                "pickle_only": r"model.safetensors: missing \(pytorch_model.bin\)", "two_labels": "does not cover",
                "unknown_label": r"'joy' cannot be mapped", "missing_weights": r"weights missing"}[problem]
    if problem == "tampered":
        data = bytearray((d / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (d / "model.safetensors").write_bytes(bytes(data))
    if problem == "pickle_only":
        (d / "model.safetensors").rename(d / "pytorch_model.bin")
    if problem == "missing_weights":  # a bare encoder saved under a classification config: the head would be random
        from safetensors.torch import load_file, save_file

        w = {k: v for k, v in load_file(d / "model.safetensors").items() if not k.startswith("classifier")}
        save_file(w, d / "model.safetensors", metadata={"format": "pt"})
        write_sums(d)
    with pytest.raises(ModelError, match=expected):
        load_single_task(OverrideSpec("sentiment", d))
    err = io.StringIO()
    rc = classify_main(["--model", str(tiny_model_dir), "--topics", str(tmp_path / "none.yaml"), "--override",
                        f"sentiment={d}"], io.StringIO('{"id": 1, "text": "x"}\n'), io.StringIO(), err)
    assert rc == 2  # the topics file is missing: the contract says so before loading anything
    (tmp_path / "t.yaml").write_text("[]\n", encoding="utf-8")
    rc = classify_main(["--model", str(tiny_model_dir), "--topics", str(tmp_path / "t.yaml"), "--override",
                        f"sentiment={d}"], io.StringIO('{"id": 1, "text": "x"}\n'), io.StringIO(), err)
    assert rc == 2 and "cannot load model" in err.getvalue()


def test_models_checksum_and_verify_commands(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = bert_dir(tmp_path, {0: "negative", 1: "neutral", 2: "positive"}, sums=False)
    assert models_main(["verify", str(d)]) == 2 and "sha256sums: missing" in capsys.readouterr().err
    assert models_main(["checksum", str(d)]) == 0 and capsys.readouterr().out.strip() == str(d / "sha256sums")
    assert models_main(["verify", str(d)]) == 0 and capsys.readouterr().out.startswith("ok: ")
    (d / "config.json").write_text((d / "config.json").read_text() + " ", encoding="utf-8")
    assert models_main(["verify", str(d)]) == 2 and "config.json: sha256" in capsys.readouterr().err
    assert models_main(["verify", str(tiny_model_dir)]) == 0  # our own directories: manifest.json


WATER = "topics:\n  - name: water\n    keywords: [water]\n"


def test_config_overrides_are_read(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("nlp:\n  overrides:\n    sentiment: cardiff\n", encoding="utf-8")
    s = load_settings(cfg)
    assert s.nlp.overrides.sentiment is not None
    assert s.nlp.overrides.sentiment.model == "cardiff" and s.nlp.overrides.sentiment.labels is None
    # a topics model's labels map onto the configured topics, by name
    cfg.write_text(WATER + "nlp:\n  overrides:\n    topics:\n      model: agency-topics\n      labels: {LABEL_0: water}\n",
                   encoding="utf-8")
    s = load_settings(cfg)
    assert s.nlp.overrides.topics is not None and s.nlp.overrides.topics.labels == {"LABEL_0": "water"}
    assert [t for t, _ in s.nlp.overrides.items()] == ["topics"]


@pytest.mark.parametrize(("body", "error"), [
    ("nlp:\n  overrides:\n    sentiment: cardiff\n    language: other\n",
     r"config.yaml:4: nlp.overrides.language: Extra inputs"),
    ("nlp:\n  overrides:\n    sentiment:\n      model: x\n      labels: {LABEL_0: happy}\n",
     r"config.yaml:5: nlp.overrides.sentiment.labels.LABEL_0"),
    ("nlp:\n  overrides:\n    rumor:\n      model: x\n      labels: {LABEL_0: negative}\n",
     r"config.yaml:5: nlp.overrides.rumor.labels.LABEL_0"),
    (WATER + "nlp:\n  overrides:\n    topics:\n      model: agency-topics\n      labels: {LABEL_0: roads}\n",
     r"nlp.overrides.topics.labels: no topic named 'roads' \(known: water\)"),
    ("nlp:\n  overrides:\n    topics: agency-topics\n",
     r"nlp.overrides.topics: a topics model answers on the configured taxonomy"),
], ids=["unknown-task", "sentiment-label", "rumour-label", "unknown-topic", "no-taxonomy"])
def test_config_overrides_are_validated(tmp_path: Path, body: str, error: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=error):
        load_settings(cfg)


def test_worker_serves_the_configured_override(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The worker, not only `yuqing classify`, answers the overridden task with the override."""
    from datetime import datetime, timezone

    from index import open_store
    from index.base import Query
    from yuqing.records import Author, Post
    from yuqing.state.db import connect, migrate
    from yuqing.state.inbox import Inbox
    from yuqing.worker import run_worker

    torch.set_num_threads(1)
    d = bert_dir(tmp_path / "models", {0: "negative", 1: "neutral", 2: "positive"})
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: data\nmodels_dir: models\nnlp:\n  model: {tiny_model_dir}\n  overrides:\n    sentiment: cardiff\n"
                   "topics: []\n", encoding="utf-8")
    settings = load_settings(cfg)
    engine = connect(settings.state_url)
    migrate(engine)
    at = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    posts = [Post(id=f"p{i}", url=f"https://example.org/{i}", source="s", platform="web", author=Author(id="a"),
                  published_at=at, fetched_at=at, text=t) for i, t in enumerate(TEXTS[:4])]
    assert all(e.accepted for e in Inbox(engine).enqueue(posts))
    run_worker(settings, once=True)
    store = open_store(settings)
    assert store.count(Query()) == 4
    ref = _reference(d, [p.text for p in posts])
    for i, p in enumerate(posts):
        got = store.get(p.id)
        assert got is not None and got.classification is not None
        assert got.classification.model.startswith("tiny@0.0.1+sentiment=cardiff@")
        s = got.classification.sentiment_scores
        assert [s["negative"], s["neutral"], s["positive"]] == pytest.approx(ref[i].tolist(), abs=1e-4)


TOPICS_YAML = ("- name: water\n  keywords: [water]\n- name: roads\n  keywords: [road]\n"
               "- name: health\n  keywords: [hospital]\n")


def _topic_reference(model_dir: Path, texts: list[str], multi_label: bool) -> torch.Tensor:
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).eval()
    with torch.inference_mode():
        logits = torch.stack([model(**tok(t, return_tensors="pt")).logits[0] for t in texts])
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)


@pytest.mark.parametrize("multi_label", [True, False])
def test_topics_override_answers_topics_on_the_configured_taxonomy(tiny_model_dir: Path, tmp_path: Path,
                                                                   multi_label: bool) -> None:
    """A topic classifier trained elsewhere on the agency's taxonomy replaces the matcher: its
    labels are matched to the configured topic names (any order, any case), sigmoid scores for a
    multi-label model, softmax otherwise; topics below the floor are not listed; the other answers
    still come from the main model."""
    from nlp.topics import TOPIC_FLOOR

    torch.set_num_threads(1)
    d = bert_dir(tmp_path, {0: "Health", 1: "water", 2: "ROADS"}, name="agency-topics",
                 problem_type="multi_label_classification" if multi_label else "single_label_classification")
    topics = tmp_path / "topics.yaml"
    topics.write_text(TOPICS_YAML, encoding="utf-8")
    lines = "".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(TEXTS))
    base_out, out, err = io.StringIO(), io.StringIO(), io.StringIO()
    assert classify_main(["--model", str(tiny_model_dir), "--topics", str(topics)], io.StringIO(lines), base_out,
                         io.StringIO()) == 0
    assert classify_main(["--model", str(tiny_model_dir), "--topics", str(topics), "--override", f"topics={d}"],
                         io.StringIO(lines), out, err) == 0, err.getvalue()
    base = [json.loads(x) for x in base_out.getvalue().splitlines()]
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert rows[0]["model"].startswith("tiny@0.0.1+topics=agency-topics@")
    ref = _topic_reference(d, TEXTS[:4], multi_label)  # columns: Health, water, ROADS
    names = ["health", "water", "roads"]
    for i in range(4):
        want = sorted(((float(ref[i, j]), names[j]) for j in range(3) if float(ref[i, j]) >= TOPIC_FLOOR), reverse=True)
        got = rows[i]["topics"]
        assert [t["topic"] for t in got] == [n for _, n in want]
        assert [t["score"] for t in got] == pytest.approx([p for p, _ in want], abs=1e-5)
        assert rows[i]["sentiment_scores"] == base[i]["sentiment_scores"] and rows[i]["rumor"] == base[i]["rumor"]
    if not multi_label:
        assert float(ref.sum(1).min()) == pytest.approx(1.0, abs=1e-5)
    assert rows[4]["topics"] == []  # empty text: no topics, as from the matcher


def test_topics_override_on_another_taxonomy_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from yuqing.config import TopicConfig

    torch.set_num_threads(1)
    taxonomy = [TopicConfig(name=n, keywords=[n]) for n in ("water", "roads", "health")]
    other = bert_dir(tmp_path, {0: "water", 1: "roads", 2: "sports"}, name="other-topics")
    with pytest.raises(ModelError, match=r"id2label\[2\] = 'sports' cannot be mapped to the topics labels"):
        Classifier.load(tiny_model_dir, topics=taxonomy, device="cpu", overrides=[OverrideSpec("topics", other)])
    fewer = bert_dir(tmp_path, {0: "water", 1: "roads"}, name="fewer-topics")
    with pytest.raises(ModelError, match=r"does not cover the topics labels.*missing: \['health'\]"):
        Classifier.load(tiny_model_dir, topics=taxonomy, device="cpu", overrides=[OverrideSpec("topics", fewer)])
    with pytest.raises(ModelError, match=r"a topics model needs the configured taxonomy"):
        Classifier.load(tiny_model_dir, topics=[], device="cpu", overrides=[OverrideSpec("topics", other)])
    # generic labels with an explicit mapping onto the taxonomy
    generic = bert_dir(tmp_path, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, name="generic-topics")
    clf = Classifier.load(tiny_model_dir, topics=taxonomy, device="cpu", overrides=[OverrideSpec(
        "topics", generic, labels={"LABEL_0": "health", "LABEL_1": "water", "LABEL_2": "roads"})])
    scores = clf.topic_scores(TEXTS[:2])
    ref = _topic_reference(generic, TEXTS[:2], multi_label=False)  # columns: health, water, roads
    assert scores[0] == pytest.approx([float(ref[0, 1]), float(ref[0, 2]), float(ref[0, 0])], abs=1e-5)
