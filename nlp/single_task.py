"""A deployer's standard sequence-classification model answering one task instead of our head.

    spec = OverrideSpec(task="sentiment", path=Path("models/cardiff"), labels=None)
    single = load_single_task(spec, device)          # verified, offline, eval mode
    single.model_id                                   # "cardiff@3f2a9c1b"
    single.probabilities(texts)                       # (n, 3) in SENTIMENT_LABELS order, or (n,) for rumour

Why: a deployer may hold a better model for one task than ours (e.g. a copy of
`cardiffnlp/twitter-xlm-roberta-base-sentiment`, or a topic classifier trained on the agency's
own labelled posts), while the other answers still come from the default model. Such a directory
is plain `AutoModelForSequenceClassification` output: it has no manifest of ours, so the loader
checks what can be checked and refuses the rest:

- the directory has `config.json` (readable JSON), `model.safetensors` (never pickle weights) and a
  fast tokenizer that loads offline (`local_files_only=True`);
- `sha256sums` (the format of coreutils `sha256sum`, written on the machine that downloaded the
  model: `yuqing models checksum DIR`) lists config.json and model.safetensors, and every listed
  file matches. Without it the bytes on disk could be anything, so the loader refuses;
- `config.id2label` maps onto the task's labels, by name (negative/neutral/positive, with the usual
  abbreviations; not_rumor/rumor; for topics the configured taxonomy's topic names) or by an
  explicit `labels` mapping in the configuration for models whose labels are generic (`LABEL_0`,
  …). Every one of our labels must be covered exactly once: a topic model trained on another
  taxonomy is refused rather than answering some topics and silently never others;
- transformers reports no missing or mismatched weight (which would be random).

The model id is `<directory name>@<first 8 hex of model.safetensors' sha256>`, so the output's
"model" field says which bytes answered.

Topic scores: a model whose `config.problem_type` is `multi_label_classification` (the
transformers convention for a multi-label head, as `Trainer` fine-tuning writes it) gives each
topic its own sigmoid probability; any other gives a softmax over the topics (one best topic).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlp.encoding import encode, length_buckets, pad
from nlp.errors import ModelError
from nlp.manifest import RUMOR_LABELS, SENTIMENT_LABELS, check_files, sha256_file
from nlp.modeldir import refuse_partial_load

SUMS = "sha256sums"
TASKS = {"sentiment": SENTIMENT_LABELS, "rumor": RUMOR_LABELS, "topics": []}  # topics: the configured taxonomy
SYNONYMS = {
    "negative": "negative", "neg": "negative", "neg.": "negative",
    "neutral": "neutral", "neu": "neutral", "neut": "neutral",
    "positive": "positive", "pos": "positive", "pos.": "positive",
    "not_rumor": "not_rumor", "not_rumour": "not_rumor", "non-rumor": "not_rumor", "non_rumor": "not_rumor",
    "nonrumor": "not_rumor", "non-rumour": "not_rumor", "non_rumour": "not_rumor",
    "rumor": "rumor", "rumour": "rumor",
}
_GENERIC = re.compile(r"^label_\d+$")


@dataclass
class OverrideSpec:
    task: str  # "sentiment" | "rumor" | "topics"
    path: Path
    labels: dict[str, str] | None = None  # the model's label name -> ours (a topic name for topics)


# -- checksums -------------------------------------------------------------------------------
def write_sums(model_dir: Path) -> Path:
    """Write `sha256sums` (coreutils format) for every file in the directory except itself."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: not a directory")
    lines = [f"{sha256_file(p)}  {p.relative_to(model_dir).as_posix()}"
             for p in sorted(model_dir.rglob("*"))
             if p.is_file() and p.name not in (SUMS, SUMS + ".tmp") and ".cache" not in p.relative_to(model_dir).parts]
    tmp = model_dir / (SUMS + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(model_dir / SUMS)
    return model_dir / SUMS


def read_sums(model_dir: Path) -> dict[str, str]:
    path = Path(model_dir) / SUMS
    if not path.is_file():
        raise ModelError(f"{path}: missing; a model without our manifest needs a checksum list written where it "
                         f"was downloaded (`yuqing models checksum DIR`, or `sha256sum` of each file); see models/README.md")
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.strip())
        if not m:
            raise ModelError(f"{path}:{n}: expected '<sha256>  <file>', got {line[:80]!r}")
        out[m.group(2).removeprefix("./")] = m.group(1).lower()
    return out


def verify_sums(model_dir: Path, required: tuple[str, ...] = ("config.json", "model.safetensors")) -> dict[str, str]:
    """Check every file listed in `sha256sums`; the required files must be listed."""
    model_dir = Path(model_dir)
    sums = read_sums(model_dir)
    for name in required:
        if name not in sums:
            raise ModelError(f"{model_dir / SUMS}: does not list {name}, which this model needs")
    check_files(model_dir, sums, SUMS, "was changed after it was checked")
    return sums


# -- labels ----------------------------------------------------------------------------------
def map_labels(id2label: dict[Any, Any], task: str, explicit: dict[str, str] | None, where: str,
               ours: list[str] | None = None) -> list[int]:
    """For each of our labels (in order), the model's output index. ModelError when not exactly one
    each. `ours`: the labels when they are not fixed by the task (the topic taxonomy's names)."""
    ours = list(ours if ours is not None else TASKS[task])
    by_name = {lab.strip().casefold(): lab for lab in ours} if task == "topics" else SYNONYMS
    names = {int(k): str(v) for k, v in id2label.items()}
    mapped: dict[str, int] = {}
    for idx in sorted(names):
        name = names[idx]
        if explicit is not None:
            target = explicit.get(name)
            if target is None:
                raise ModelError(f"{where}: id2label[{idx}] = {name!r} is not in the configured labels mapping "
                                 f"{explicit}")
        else:
            target = by_name.get(name.strip().casefold() if task == "topics" else name.strip().lower())
            if target is None:
                hint = (" (generic names: give the mapping, e.g. nlp.overrides." + task + ".labels: "
                        + "{" + ", ".join(f"LABEL_{i}: {lab}" for i, lab in enumerate(ours)) + "}, as the model card says)"
                        if _GENERIC.match(name.strip().lower()) else "")
                raise ModelError(f"{where}: id2label[{idx}] = {name!r} cannot be mapped to the {task} labels "
                                 f"{ours}{hint}")
        if target not in ours:
            raise ModelError(f"{where}: id2label[{idx}] = {name!r} maps to {target!r}, not one of {ours}")
        if target in mapped:
            raise ModelError(f"{where}: two outputs ({mapped[target]} and {idx}) map to {target!r}")
        mapped[target] = idx
    missing = [lab for lab in ours if lab not in mapped]
    if missing or len(names) != len(ours):
        raise ModelError(f"{where}: id2label {names} does not cover the {task} labels {ours} exactly "
                         f"(missing: {missing or 'none'})")
    return [mapped[lab] for lab in ours]


# -- the loaded model --------------------------------------------------------------------------
@dataclass
class SingleTask:
    task: str
    model: Any  # a transformers *ForSequenceClassification
    tokenizer: Any
    order: list[int]  # model output index of each of our labels
    max_length: int
    model_id: str
    path: Path
    batch_size: int = 32
    device: torch.device = torch.device("cpu")
    multi_label: bool = False  # topics: one sigmoid per topic instead of a softmax over them
    labels: tuple[str, ...] = ()  # our labels, in the order of `probabilities`' columns

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Probabilities reordered to our labels: (n, 3) for sentiment, (n, topics) for topics
        (sigmoids for a multi-label model, else a softmax); for rumour the probability of
        `rumor`, shape (n,). `texts` are already normalised."""
        ids = encode(self.tokenizer, texts, self.max_length)
        out = np.zeros((len(texts), len(self.order)), dtype=np.float64)
        pad_id = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for batch in length_buckets([len(r) for r in ids], self.batch_size):
                x, m = pad([ids[i] for i in batch], pad_id)
                logits = self.model(input_ids=x.to(self.device), attention_mask=m.to(self.device)).logits.float()
                p = (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1))
                p = p[:, self.order].cpu().double().numpy()
                out[batch] = p
        return out[:, 1] if self.task == "rumor" else out


def load_single_task(spec: OverrideSpec, device: torch.device | str = "cpu", batch_size: int = 32,
                     topics: list[str] | None = None) -> SingleTask:
    """Verify and load a standard sequence-classification directory for `spec.task` (offline).
    `topics`: the configured taxonomy's names, which a topics model's labels must match."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from nlp.modeldir import _quiet_transformers

    _quiet_transformers()
    if spec.task not in TASKS:
        raise ModelError(f"override for {spec.task!r}: only {', '.join(TASKS)} can come from a separate model")
    if spec.task == "topics" and not topics:
        raise ModelError(f"{spec.path}: a topics model needs the configured taxonomy (the config's `topics` or "
                         "--topics FILE) to map its labels onto")
    d = Path(spec.path)
    if not d.is_dir():
        raise ModelError(f"{d}: model directory for the {spec.task} override not found (see models/README.md)")
    cfg_path = d / "config.json"
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{cfg_path}: cannot read ({e})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{cfg_path}: expected a JSON object")
    if not (d / "model.safetensors").is_file():
        found = "pytorch_model.bin" if (d / "pytorch_model.bin").exists() else "no weights file"
        raise ModelError(f"{d / 'model.safetensors'}: missing ({found}); only safetensors weights are loaded "
                         "(fetch with `hf download … --include '*.safetensors'` or convert on the download machine)")
    sums = verify_sums(d)
    archs = [a for a in raw.get("architectures") or [] if isinstance(a, str)]
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ModelError(f"{cfg_path}: architectures {archs} is not a *ForSequenceClassification model")
    order = map_labels(raw.get("id2label") or {}, spec.task, spec.labels, str(cfg_path),
                       ours=list(topics or []) if spec.task == "topics" else None)
    try:
        config = AutoConfig.from_pretrained(d, local_files_only=True)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            d, config=config, local_files_only=True, output_loading_info=True, use_safetensors=True, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - any failure here is "this directory is unusable"
        raise ModelError(f"{d / 'model.safetensors'}: cannot load weights ({type(e).__name__}: {e})") from None
    refuse_partial_load(d / "model.safetensors", info)
    try:
        tok = AutoTokenizer.from_pretrained(d, local_files_only=True, use_fast=True)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{d}: cannot load the tokenizer offline ({type(e).__name__}: {e})") from None
    if not getattr(tok, "is_fast", False) or tok.cls_token_id is None or tok.sep_token_id is None or tok.pad_token_id is None:
        raise ModelError(f"{d}: the tokenizer must be a fast tokenizer with cls, sep and pad tokens")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model",
                 "vocab.txt", "spiece.model"):
        if (d / name).is_file() and name not in sums:
            raise ModelError(f"{d / SUMS}: does not list {name}, which the tokenizer reads")
    # RoBERTa-style position ids start after the padding index, so fewer positions are usable
    offset = (config.pad_token_id or 0) + 1 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
    limit = int(getattr(config, "max_position_embeddings", 512)) - offset
    tml = getattr(tok, "model_max_length", None)
    max_length = min(limit, 512, tml if isinstance(tml, int) and tml > 0 else 512)
    dev = torch.device(device)
    model.eval().to(dev)
    return SingleTask(task=spec.task, model=model, tokenizer=tok, order=order, max_length=max_length,
                      model_id=f"{d.name}@{sums['model.safetensors'][:8]}", path=d, batch_size=batch_size, device=dev,
                      multi_label=getattr(config, "problem_type", None) == "multi_label_classification",
                      labels=tuple(topics or []) if spec.task == "topics" else tuple(TASKS[spec.task]))


def specs_from_settings(settings: Any) -> list[OverrideSpec]:
    """The configuration's `nlp.overrides`, with directories resolved as `nlp.model` is (a bare
    name under `models_dir`, a path relative to the configuration file)."""
    out = []
    for task, o in settings.nlp.overrides.items():
        p = Path(o.model)
        path = p if p.is_absolute() or "/" in o.model else settings.path(settings.models_dir) / p
        out.append(OverrideSpec(task=task, path=settings.path(str(path)) if not path.is_absolute() else path,
                                labels=dict(o.labels) if o.labels else None))
    return out


def parse_override_arg(value: str) -> OverrideSpec:
    """`TASK=DIR` from the command line (labels come from the configuration)."""
    task, sep, path = value.partition("=")
    if not sep or task not in TASKS or not path:
        raise ValueError(f"--override {value!r}: expected TASK=DIR with TASK one of {', '.join(TASKS)}")
    return OverrideSpec(task=task, path=Path(path))
