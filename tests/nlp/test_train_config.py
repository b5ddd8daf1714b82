"""`yuqing train --config train.yaml`: the YAML and the flags fill one validated model; masked-LM
pretraining, LoRA on a pretrained encoder and the agency's own labelled posts, each in a short real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from nlp.data import add_labelled, load_shared
from nlp.encoding import encode, pad
from nlp.manifest import read_manifest
from nlp.modeldir import load
from nlp.normalize import normalize
from nlp.single_task import verify_sums
from nlp.train import load_train_config, main, train
from yuqing.config import ConfigError

TINY = {"vocab_size": 400, "hidden": 32, "layers": 1, "heads": 2, "max_length": 64, "batch_size": 16,
        "warmup_steps": 5, "minutes": 5.0, "tokenizer_unlabelled": 200, "weights_dtype": "float32", "threads": 1,
        "eval_limit": 30, "topics_eval": False}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _yaml(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


# -- the configuration ------------------------------------------------------------------------
def test_yaml_and_flags_fill_one_model(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    y = _yaml(tmp_path / "cfg/train.yaml", f"data: {shared_data}\nout: ../out/m1\nlabelled: [corr.jsonl]\nhidden: 64\n"
              "heads: 2\nlr: 0.001\npretrain:\n  texts: [unl.txt]\n  steps: 5\n")
    c = load_train_config(y, {"lr": 0.002, "max_steps": 7})
    assert c.out == (tmp_path / "out/m1").resolve() and c.name == "m1"  # relative to the YAML file
    assert c.labelled == [(tmp_path / "cfg/corr.jsonl").resolve()]
    assert c.pretrain is not None and c.pretrain.texts == [(tmp_path / "cfg/unl.txt").resolve()]
    assert (c.hidden, c.lr, c.max_steps, c.data) == (64, 0.002, 7, shared_data)  # flags win over the file
    assert load_train_config(None, {"out": tmp_path / "x"}).vocab_size == 11000  # flags alone, as before


@pytest.mark.parametrize("body,flags,expected", [
    ("out: m\nhidden: big\n", {}, r"train.yaml:2: hidden: Input should be a valid integer"),
    ("out: m\nepochs: 3\n", {}, r"train.yaml:2: epochs: Extra inputs are not permitted"),
    ("out: m\nlora:\n  r: 0\n", {}, r"train.yaml:3: lora.r: Input should be greater than or equal to 1"),
    ("out: m\nlora: {r: 4}\n", {}, r"lora adapts a pretrained encoder"),
    ("out: m\ntasks: [zh, fr]\n", {}, r"train.yaml:2: tasks\[1\]"),
    ("out: m\n", {"lr": -1.0}, r"--lr: lr: Input should be greater than 0"),
    ("out: [m\n", {}, r"train.yaml:2:1: invalid YAML"),
    ("- out\n", {}, r"expected a mapping"),
    ("hidden: 32\n", {}, r"train.yaml:1: out: Field required"),
])
def test_bad_configuration_names_file_line_and_key(tmp_path: Path, body: str, flags: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_train_config(_yaml(tmp_path / "train.yaml", body), flags)


def test_cli_reports_bad_config_and_bad_labelled_file(tmp_path: Path, shared_data: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from yuqing.cli import main as yuqing_main

    # `yuqing train` is routed to nlp.train
    assert yuqing_main(["train", "--config", str(_yaml(tmp_path / "train.yaml", "out: m\nbatch_size: 0\n"))]) == 2
    assert "train.yaml:2: batch_size" in capsys.readouterr().err
    bad = tmp_path / "corr.jsonl"
    bad.write_text('{"id": "1", "lang": "en", "text": "ok", "sentiment": "positive"}\n'
                   '{"id": "2", "lang": "en", "text": "x", "sentiment": "angry"}\n', encoding="utf-8")
    assert main(["--data", str(shared_data), "--out", str(tmp_path / "m"), "--labelled", str(bad), "--max-steps", "2"]) == 2
    assert f"{bad}:2: 'sentiment' must be one of negative, neutral, positive" in capsys.readouterr().err


# -- the agency's labelled posts ----------------------------------------------------------------
def _export_rows(shared_data: Path) -> list[dict[str, Any]]:
    """Rows in the exact format of `yuqing export-labels` (api/corrections.py export_rows)."""
    dev_text = json.loads((shared_data / "sentiment/en/dev.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
    train_text = json.loads((shared_data / "sentiment/en/train.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
    meta = {"source": "analyst_correction", "corrected_by": "ana"}
    rows: list[dict[str, Any]] = []
    words = {"negative": "flood outage angry complaint", "neutral": "notice meeting schedule office",
             "positive": "thanks great repaired quickly"}
    for i in range(30):
        lab = ["negative", "neutral", "positive"][i % 3]
        rows.append({"id": f"p{i}", "lang": "fr", "text": f"{words[lab]} rue {i}", "sentiment": lab, **meta,
                     "corrected_at": f"2025-03-01T10:{i:02d}:00+00:00"})
    # the same post corrected twice: the newest label is the one in force
    rows.append({"id": "p0b", "lang": "fr", "text": "flood outage angry complaint rue 0", "sentiment": "neutral", **meta,
                 "corrected_at": "2025-03-02T00:00:00+00:00"})
    rows.append({"id": "dev", "lang": "en", "text": dev_text, "sentiment": "positive", **meta, "corrected_at": "2025-03-01T00:00:00+00:00"})
    rows.append({"id": "tr", "lang": "en", "text": train_text, "sentiment": "neutral", **meta, "corrected_at": "2025-03-01T00:00:00+00:00"})
    for i in range(10):
        rows.append({"id": f"r{i}", "lang": "zh", "text": f"{'紧急扩散' if i % 2 else '官方通报'}消息{i}", "rumor": i % 2,
                     "time": 1_700_000_000 + i * 60, "user": {"verified": False, "followers": 10}, "reposts_count": 0,
                     "comments_count": 0, "reposts": [], **meta, "corrected_at": "2025-03-01T00:00:00+00:00"})
    rows.append({"id": "t1", "lang": "zh", "text": "停水", "topics": ["water"], **meta, "corrected_at": "2025-03-01T00:00:00+00:00"})
    return rows


def test_labelled_posts_dedup_then_split(shared_data: Path, tmp_path: Path) -> None:
    f = tmp_path / "labels.jsonl"
    rows = _export_rows(shared_data)
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    data = load_shared(shared_data)
    en_before = len(data.train["en"])
    info = add_labelled(data, [f], dev_fraction=0.2, seed=1)
    assert info["rows_read"] == len(rows) - 1 and info["topic_rows_ignored"] == 1
    assert info["kept_after_dedup"] == 30 + 1 + 10  # fr 30 (one relabelled), the train-text row; the dev-text row dropped
    fr = data.train["fr"] + data.dev["agency_fr"]
    assert len(fr) == 30 and len({e.text for e in fr}) == 30
    assert next(e for e in fr if e.text.endswith("rue 0")).label == "neutral"  # newest correction wins
    assert len(data.dev["agency_fr"]) == 6 and {e.label for e in data.dev["agency_fr"]} == {"negative", "neutral", "positive"}
    # the analyst's label replaces the shared row with the same text
    assert len(data.train["en"]) == en_before  # one shared row out, the corrected one in
    assert sum(e.source == "analyst_correction" for e in data.train["en"]) == 1
    # rumour: chronological split, the newest posts held out
    dev_t = [e.row["time"] for e in data.dev["agency_rumor"]]
    agency_train_t = [e.row["time"] for e in data.train["rumor"] if e.source == "analyst_correction"]
    assert len(dev_t) == 2 and min(dev_t) > max(agency_train_t)


def test_training_on_labelled_posts_only(shared_data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    f = tmp_path / "labels.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _export_rows(shared_data)), encoding="utf-8")
    y = _yaml(tmp_path / "train.yaml", "data: null\nout: agency\nlabelled: [labels.jsonl]\nlabelled_dev_fraction: 0.2\n"
              "max_steps: 60\nlr: 0.003\nseed: 2\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items()))
    assert main(["--config", str(y)]) == 0
    m = read_manifest(tmp_path / "agency")
    assert m.training["labelled"]["split"]["fr"] == {"train": 24, "dev": 6}
    assert set(m.languages) >= {"fr", "zh"}
    assert m.evaluation["sentiment"]["agency_fr"]["n"] == 6
    assert m.evaluation["agency_rumor"]["publish_time"]["n"] == 2
    assert load(tmp_path / "agency").manifest.model_id == "agency@0.1.0"


# -- masked-LM pretraining, then fine-tuning on the pretrained encoder ---------------------------
@pytest.fixture(scope="module")
def pretrained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pretrain")
    unl = root / "unlabelled.txt"
    unl.write_text("\n".join(["停水三天了 物业 没有 通知", "the bus is late again today", "الماء مقطوع في المدينة"] * 40),
                   encoding="utf-8")
    y = _yaml(root / "train.yaml", f"data: {shared_data}\nout: model\nmax_steps: 20\nlr: 0.0005\n"
              + "".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items())
              + "pretrain:\n  texts: [unlabelled.txt]\n  steps: 300\n  batch_size: 16\n  lr: 0.005\n  warmup_steps: 5\n"
                "  save: encoder\n")
    cfg = load_train_config(y)
    summary = train(cfg, log=lambda s: None)
    return {"summary": summary, "root": root, "encoder": root / "encoder", "out": root / "model"}


def test_mlm_loss_falls_and_the_encoder_is_fine_tuned(pretrained: dict[str, Any]) -> None:
    from transformers import BertForMaskedLM

    losses = pretrained["summary"]["pretrain_losses"]
    assert len(losses) == 300
    assert _mean(losses[-20:]) < 0.8 * _mean(losses[:20]), (losses[:20], losses[-20:])
    verify_sums(pretrained["encoder"])  # the saved encoder is a checksummed plain directory
    mlm = BertForMaskedLM.from_pretrained(pretrained["encoder"], local_files_only=True)
    fine = load(pretrained["out"]).model
    a = mlm.bert.embeddings.word_embeddings.weight
    b = fine.bert.embeddings.word_embeddings.weight
    assert a.shape == b.shape
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).mean().item()
    assert cos > 0.9, cos  # 20 steps at a low rate moved the pretrained encoder only a little
    fresh = torch.nn.functional.cosine_similarity(a, torch.randn_like(a) * a.std(), dim=1).mean().item()
    assert abs(fresh) < 0.2
    m = read_manifest(pretrained["out"])
    assert m.training["pretrain"]["steps"] == 300 and m.training["pretrain"]["last_loss"] < m.training["pretrain"]["first_loss"]


@pytest.fixture(scope="module")
def encoder_dir(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained encoder as a plain `save_pretrained` BertModel directory (no heads): the
    encoder of the session's tiny trained model, which has learned the synthetic vocabulary."""
    d = tmp_path_factory.mktemp("encoder") / "bert"
    loaded = load(trained["dir"])
    loaded.model.bert.save_pretrained(d, safe_serialization=True)
    loaded.tokenizer.save_pretrained(d)
    return d


def test_lora_on_a_pretrained_encoder(encoder_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    from transformers import BertModel

    torch.set_num_threads(1)
    y = _yaml(tmp_path / "train.yaml", f"data: {shared_data}\nout: lora\nbase_model: {encoder_dir}\n"
              "max_steps: 120\nlr: 0.01\nseed: 3\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items())
              + "lora:\n  r: 8\n  alpha: 16\n  dropout: 0.0\n  target_modules: [query, value]\n")
    s = train(load_train_config(y), log=lambda _: None)
    # the loss on a fixed training batch (eval mode, before and after) falls for every task
    probe = s["probe_losses"]
    for task, (before, after) in probe.items():
        assert after < 0.7 * before, (task, probe)
    assert s["trainable_parameters"] < 0.5 * s["parameters"]
    out = tmp_path / "lora"
    assert not any(p.name.startswith("adapter") for p in out.iterdir())  # merged: a plain directory
    loaded = load(out)  # the strict loader: manifest, checksums, no missing weight
    base = BertModel.from_pretrained(encoder_dir, local_files_only=True)
    layer, blayer = loaded.model.bert.encoder.layer[0].attention.self, base.encoder.layer[0].attention.self
    torch.testing.assert_close(layer.key.weight, blayer.key.weight)  # not adapted: frozen
    torch.testing.assert_close(loaded.model.bert.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight)
    assert not torch.allclose(layer.query.weight, blayer.query.weight)  # adapted and merged
    # the reloaded model predicts what the trained (merged) one did
    tok = s["tokenizer"]
    x, msk = pad(encode(tok, [normalize(t) for t in ["酒店很好", "bad awful", "الخدمة رائعة", "紧急扩散"]], 64), tok.pad_token_id)
    f = torch.rand(4, s["model"].n_rumor_features)
    with torch.inference_mode():
        a, b = s["model"].eval()(x, msk, f), loaded.model(x, msk, f)
    torch.testing.assert_close(a.sentiment_logits, b.sentiment_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.rumor_logit, b.rumor_logit, atol=1e-5, rtol=1e-5)
    m = read_manifest(out)
    assert m.training["lora"]["r"] == 8 and m.training["base_model"]["path"] == str(encoder_dir)


XLMR_TOKENS = 40  # positions of the XLM-R base: fewer than the 64 tokens the training asks for


@pytest.fixture(scope="module")
def xlmr_dir(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained XLM-RoBERTa encoder directory, as `hf download xlm-roberta-base` would leave one
    but tiny: the session's trained BERT encoder moved into XLM-R's layout. The layers are the same;
    XLM-R's position ids start after the padding index, so BERT's first XLMR_TOKENS position rows
    move up by pad + 1 (as in xlm-roberta-base: 514 rows, 512 tokens). It has learned the synthetic
    vocabulary and computes the BERT encoder's function on texts that fit."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    loaded = load(trained["dir"])
    bert, pad_id = loaded.model.bert, loaded.tokenizer.pad_token_id
    bc = bert.config
    cfg = XLMRobertaConfig(vocab_size=bc.vocab_size, hidden_size=bc.hidden_size, num_hidden_layers=bc.num_hidden_layers,
                           num_attention_heads=bc.num_attention_heads, intermediate_size=bc.intermediate_size,
                           max_position_embeddings=XLMR_TOKENS + pad_id + 1, type_vocab_size=bc.type_vocab_size,
                           pad_token_id=pad_id, layer_norm_eps=bc.layer_norm_eps, hidden_act=bc.hidden_act)
    xlmr = XLMRobertaModel(cfg, add_pooling_layer=False)
    state = dict(bert.state_dict())
    pos = torch.zeros(cfg.max_position_embeddings, bc.hidden_size)
    pos[pad_id + 1:] = state["embeddings.position_embeddings.weight"][:XLMR_TOKENS]
    state["embeddings.position_embeddings.weight"] = pos
    result = xlmr.load_state_dict(state, strict=False)
    assert not [k for k in result.missing_keys if "position_ids" not in k] and not result.unexpected_keys
    d = tmp_path_factory.mktemp("xlmr") / "xlm-roberta-tiny"
    xlmr.save_pretrained(d, safe_serialization=True)
    loaded.tokenizer.save_pretrained(d)
    # the layout is right: the same hidden states as the BERT encoder on a right-padded batch
    x, msk = pad(encode(loaded.tokenizer, ["酒店很好", "bad awful service today"], 64), pad_id)
    with torch.inference_mode():
        torch.testing.assert_close(xlmr.eval()(input_ids=x, attention_mask=msk).last_hidden_state * msk[..., None],
                                   bert(input_ids=x, attention_mask=msk).last_hidden_state * msk[..., None],
                                   atol=1e-5, rtol=1e-5)
    return d


def test_lora_on_a_pretrained_xlm_roberta_encoder(xlmr_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    """The usual pretrained multilingual base (XLM-R family) as `base_model` with LoRA: trained,
    merged, saved as a plain directory whose manifest names the XLM-R architecture, reloaded by
    the strict loader, served by the Classifier with torch and as an int8 ONNX export."""
    from transformers import XLMRobertaModel

    from nlp.classifier import Classifier, ClassifyInput
    from nlp.modeling import YuqingMultiTaskXLMR
    from nlp.onnx_export import export_onnx

    torch.set_num_threads(1)
    y = _yaml(tmp_path / "train.yaml", f"data: {shared_data}\nout: lora\nbase_model: {xlmr_dir}\n"
              "max_steps: 120\nlr: 0.01\nseed: 3\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items())
              + "lora:\n  r: 8\n  alpha: 16\n  dropout: 0.0\n  target_modules: [query, value]\n")
    s = train(load_train_config(y), log=lambda _: None)
    for task, (before, after) in s["probe_losses"].items():
        assert after < 0.7 * before, (task, s["probe_losses"])
    out = tmp_path / "lora"
    m = read_manifest(out)
    assert m.architecture == "YuqingMultiTaskXLMR" and m.training["base_model"]["model_type"] == "xlm-roberta"
    assert m.max_length == XLMR_TOKENS  # the position rows minus RoBERTa's offset, not the 64 asked for
    loaded = load(out)
    assert type(loaded.model) is YuqingMultiTaskXLMR
    base = XLMRobertaModel.from_pretrained(xlmr_dir, local_files_only=True)
    layer, blayer = loaded.model.roberta.encoder.layer[0].attention.self, base.encoder.layer[0].attention.self
    torch.testing.assert_close(layer.key.weight, blayer.key.weight)  # not adapted: frozen
    assert not torch.allclose(layer.query.weight, blayer.query.weight)  # adapted and merged
    tok = s["tokenizer"]
    texts = ["酒店很好", "bad awful", "الخدمة رائعة", "紧急扩散"]
    x, msk = pad(encode(tok, [normalize(t) for t in texts], 64), tok.pad_token_id)
    f = torch.rand(4, s["model"].n_rumor_features)
    with torch.inference_mode():
        a, b = s["model"].eval()(x, msk, f), loaded.model(x, msk, f)
    torch.testing.assert_close(a.sentiment_logits, b.sentiment_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.rumor_logit, b.rumor_logit, atol=1e-5, rtol=1e-5)
    # served: torch (module path: the packed path is BERT-only) and the int8 ONNX export agree
    items = [ClassifyInput(id=str(i), text=t, time=1400000000, user={"followers": 10})
             for i, t in enumerate([*texts, "x" * 5000, ""])]
    torch_clf = Classifier.load(out, device="cpu", backend="torch")
    assert torch_clf.packed is None and torch_clf.max_length == XLMR_TOKENS  # the 5,000-char post is cut to fit
    export_onnx(out)
    onnx_clf = Classifier.load(out, device="cpu")
    assert onnx_clf.backend == "onnx"
    for p, q in zip(torch_clf.classify(items), onnx_clf.classify(items)):
        assert p.model == q.model
        assert max(abs(p.sentiment_scores[k] - q.sentiment_scores[k]) for k in p.sentiment_scores) < 0.1
        assert abs(p.rumor - q.rumor) < 0.1


def test_base_model_must_be_a_bert_encoder(tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / "notbert").mkdir()
    (tmp_path / "notbert/config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    cfg = load_train_config(None, {"data": shared_data, "out": tmp_path / "x", "base_model": tmp_path / "notbert",
                                   "max_steps": 2, **TINY})
    with pytest.raises(ValueError, match=r"notbert/config.json: .*BERT or XLM-RoBERTa"):
        train(cfg, log=lambda _: None)
