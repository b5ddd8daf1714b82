"""The model directory format and its strict, offline loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nlp.classifier import Classifier
from nlp.errors import ModelError
from nlp.manifest import MANIFEST, read_manifest, sha256_file, write_manifest
from nlp.modeldir import load


def test_directory_holds_hf_files_and_a_complete_manifest(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MANIFEST, "README.md"} <= names
    m = read_manifest(tiny_model_dir)
    assert m.model_id == "tiny@0.0.1"
    assert m.heads.sentiment.labels == ["negative", "neutral", "positive"]
    assert m.heads.sentiment.two_class_languages == ["zh"]
    assert set(m.languages) == {"zh", "en", "ar"}
    assert m.training["data_files_sha256"] and m.training["steps"] == 120
    # every file but the manifest is listed with its real checksum
    assert set(m.files) == names - {MANIFEST}
    for rel, digest in m.files.items():
        assert sha256_file(tiny_model_dir / rel) == digest
    ev = m.evaluation
    assert set(ev["sentiment"]) == {"zh", "en", "ar", "ar_sarcasm"}
    assert set(ev["rumor"]) == {"publish_time", "first_hour", "text_only"}


def test_loader_gives_an_eval_mode_model(tiny_model_dir: Path) -> None:
    lm = load(tiny_model_dir)
    assert not lm.model.training
    assert lm.manifest.model_id == "tiny@0.0.1"
    assert Classifier.load(tiny_model_dir, device="cpu").model_id == "tiny@0.0.1"


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model directory not found"):
        Classifier.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"manifest\.json: missing"):
        Classifier.load(tmp_path / "empty")


def test_checksum_mismatch_is_rejected(model_copy: Path) -> None:
    f = model_copy / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model\.safetensors: sha256 .* does not match"):
        load(model_copy)


def test_missing_listed_file_is_rejected(model_copy: Path) -> None:
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"tokenizer\.json: listed in manifest\.json but missing"):
        load(model_copy)


def test_wrong_label_set_is_rejected(model_copy: Path) -> None:
    path = model_copy / MANIFEST
    data = json.loads(path.read_text())
    data["heads"]["sentiment"]["labels"] = ["positive", "negative", "neutral"]
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"heads\.sentiment\.labels .* expected \['negative', 'neutral', 'positive'\]"):
        load(model_copy)


def test_config_labels_must_match_even_with_fresh_checksums(model_copy: Path) -> None:
    cfg = json.loads((model_copy / "config.json").read_text())
    cfg["id2label"] = {"0": "neg", "1": "neu", "2": "pos"}
    (model_copy / "config.json").write_text(json.dumps(cfg))
    write_manifest(model_copy, read_manifest(model_copy))  # someone re-signs a hand-edited config
    with pytest.raises(ModelError, match=r"config\.json: id2label"):
        load(model_copy)


def test_missing_weights_are_never_served_as_random(model_copy: Path) -> None:
    from safetensors.torch import load_file, save_file

    f = model_copy / "model.safetensors"
    tensors = load_file(f)
    dropped = next(k for k in tensors if k.startswith("classifier."))
    del tensors[dropped]
    save_file(tensors, f, metadata={"format": "pt"})
    write_manifest(model_copy, read_manifest(model_copy))
    with pytest.raises(ModelError, match="weights missing .*refusing to serve randomly initialised"):
        load(model_copy)


def test_not_json_manifest(model_copy: Path) -> None:
    (model_copy / MANIFEST).write_text("{not json")
    with pytest.raises(ModelError, match=r"manifest\.json: not valid JSON"):
        load(model_copy)


def test_loaded_weights_equal_saved(trained: dict) -> None:
    from safetensors.torch import load_file

    lm = load(trained["dir"])
    saved = load_file(trained["dir"] / "model.safetensors")
    state = lm.model.state_dict()
    for k, v in saved.items():
        assert torch.equal(state[k].float(), v.float()), k
