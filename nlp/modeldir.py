"""Save and load a model directory: HF `save_pretrained` files + our `manifest.json`.

Why the loader is strict: the service must never answer from random or mismatched weights. A
directory is accepted only when its manifest parses, every file matches its sha256, the label sets
are the contract's, the rumour feature list is the code's, and transformers reports no missing
weight (a missing weight would be freshly initialised, i.e. random). Loading never touches the
network (`local_files_only=True`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from nlp.errors import ModelError
from nlp.manifest import MANIFEST, SENTIMENT_LABELS, Manifest, read_manifest, verify, write_manifest
from nlp.modeling import ARCHITECTURES, YuqingMultiTask
from nlp.rumor_features import FEATURES

REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def _quiet_transformers() -> None:
    """Load reports and progress bars from transformers would go to the contract's stderr."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


@dataclass
class LoadedModel:
    model: YuqingMultiTask
    tokenizer: PreTrainedTokenizerFast
    manifest: Manifest
    path: Path


def save(model: YuqingMultiTask, tokenizer: PreTrainedTokenizerFast, manifest: Manifest, out_dir: Path,
         dtype: torch.dtype = torch.float32) -> Manifest:
    """Write weights (in `dtype`; float16 halves the file, and loading upcasts to float32),
    tokenizer and manifest with checksums. Writes into a fresh temporary sibling and renames it
    into place, so a crash never leaves a half-written model that looks complete."""
    _quiet_transformers()
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model_cpu = model.to("cpu")
    was = next(model_cpu.parameters()).dtype
    try:
        model_cpu.to(dtype).save_pretrained(tmp, safe_serialization=True)
    finally:
        model_cpu.to(was)
    tokenizer.save_pretrained(tmp)
    manifest = manifest.model_copy(deep=True)
    manifest.architecture = type(model).__name__
    manifest.max_length = min(manifest.max_length, model.config.max_position_embeddings - model.position_offset)
    manifest.heads.rumor.features = list(FEATURES)
    manifest = write_manifest(tmp, manifest)
    replace_dir(tmp, out_dir)
    return manifest


def replace_dir(staged: Path, out_dir: Path) -> None:
    """Put a fully written model directory in place of `out_dir` by renames, so a reader never
    sees a half-written model (and a crash leaves either the old or the new one)."""
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        out_dir.rename(old)
        staged.rename(out_dir)
        shutil.rmtree(old)
    else:
        staged.rename(out_dir)


def _check_config(model_dir: Path, manifest: Manifest) -> dict:
    path = model_dir / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: cannot read ({e})") from None
    archs = cfg.get("architectures") or []
    if manifest.architecture not in archs:
        raise ModelError(f"{path}: architectures {archs} does not include {manifest.architecture!r} "
                         f"named in {MANIFEST}")
    id2label = cfg.get("id2label") or {}
    labels = [id2label.get(str(i)) for i in range(len(id2label))]
    if labels != SENTIMENT_LABELS:
        raise ModelError(f"{path}: id2label gives {labels}, expected {SENTIMENT_LABELS}")
    if manifest.heads.rumor.features != FEATURES or cfg.get("yuqing_rumor_features") != len(FEATURES):
        raise ModelError(f"{model_dir / MANIFEST}: rumour features {manifest.heads.rumor.features} differ from "
                         f"this code's {FEATURES}; retrain or use the code version the model was built with")
    return cfg


def load(model_dir: Path | str, device: torch.device | str = "cpu") -> LoadedModel:
    """Verify and load a model directory for inference (eval mode, float32 on CPU)."""
    _quiet_transformers()
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    verify(model_dir, manifest, REQUIRED)
    _check_config(model_dir, manifest)
    cls = ARCHITECTURES.get(manifest.architecture)
    if cls is None:
        raise ModelError(f"{model_dir / MANIFEST}: architecture {manifest.architecture!r} is not one this code serves "
                         f"({', '.join(ARCHITECTURES)})")
    try:
        model, info = cls.from_pretrained(  # type: ignore[attr-defined]
            model_dir, local_files_only=True, output_loading_info=True, dtype=torch.float32
        )
    except Exception as e:  # noqa: BLE001 - any failure here is "this directory is unusable"
        raise ModelError(f"{model_dir / 'model.safetensors'}: cannot load weights ({type(e).__name__}: {e})") from None
    refuse_partial_load(model_dir / "model.safetensors", info)
    try:
        tok = PreTrainedTokenizerFast.from_pretrained(model_dir, local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{model_dir / 'tokenizer.json'}: cannot load tokenizer ({type(e).__name__}: {e})") from None
    if len(tok) > model.config.vocab_size:
        raise ModelError(f"{model_dir / 'tokenizer.json'}: {len(tok)} tokens but the model's embedding has "
                         f"{model.config.vocab_size}")
    for special in ("cls_token_id", "sep_token_id", "pad_token_id"):
        if getattr(tok, special) is None:
            raise ModelError(f"{model_dir / 'tokenizer.json'}: no {special.removesuffix('_id')} defined")
    model.eval().to(device)
    return LoadedModel(model=model, tokenizer=tok, manifest=manifest, path=model_dir)


def refuse_partial_load(weights: Path, info: dict[str, Any]) -> None:
    """transformers fills weights a checkpoint lacks with random values and only warns; a
    classifier answering from random layers must never serve, so any gap is an error."""
    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        raise ModelError(f"{weights}: weights missing for {missing[:5]} (mismatched: {list(mismatched)[:5]}); "
                         "refusing to serve randomly initialised layers")
