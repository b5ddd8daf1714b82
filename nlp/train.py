"""Multi-task training of the shared encoder: `yuqing train --config train.yaml` (or flags; also
`python -m nlp.train --data ../shared/data --out models/NAME`).

What it does, in order: reads `../shared/data` (`nlp.data`: dedup, held-out ArSarcasm slice) for
the configured `tasks`, merges the agency's own labelled posts (`labelled`: `yuqing export-labels`
files, analysts' corrections; `nlp.data.add_labelled` dedups, then splits), normalises every text
(`nlp.normalize`, exactly as inference does), trains a WordPiece tokenizer (`tokenizers`) on the
labelled texts plus unlabelled Weibo reposts (and the pretraining texts), builds a BERT-shaped
encoder — from scratch, optionally masked-LM pretrained on unlabelled text first (`pretrain`,
transformers `Trainer` + `DataCollatorForLanguageModeling`), or from a pretrained BERT directory
(`base_model`, optionally adapted with PEFT LoRA: `lora`, merged before saving) — trains it on three
tasks at once, saves a model directory, then *reloads it through the real loader* and measures it
on the dev sets, so the card's figures are the figures of the bytes that ship.

Configuration: `TrainConfig` (pydantic). `train.yaml` and the flags fill the same model (flags
win); errors are `file:line: key: problem` like the app's configuration (models/README.md has an
example file).

Why a plain torch loop and not `transformers.Trainer` for the task training: each step draws a
batch from one task (sentiment per language, rumour) with its own loss — the Chinese reviews have
no neutral class and are trained on the negative-vs-positive logits only, so they neither push nor
starve the neutral class of the tweets; rumour batches carry context features at a randomly chosen
operating point (publish time or the first hour). Expressing that in Trainer needs a custom
sampler, collator and compute_loss; the loop below is ~80 lines. The single-objective MLM
pretraining is exactly what Trainer does well, so it uses Trainer.
Training stops at `minutes` of wall time or `max_steps`, whichever first; the learning rate
decays linearly over that budget, so a bounded CPU run still ends at a low learning rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerFast
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nlp.data import Example, SharedData, add_labelled, load_shared
from nlp.encoding import encode, pad
from nlp.manifest import SENTIMENT_LABELS, Heads, Manifest, RumorHead, SentimentHead, TopicHead
from nlp.modeldir import save
from nlp.modeling import YuqingMultiTask, make_config
from nlp.normalize import normalize
from nlp.rumor_features import cut_to_window, features
from nlp.tokenization import train_tokenizer

FIRST_HOUR = 3600.0
RUMOR_MEANING = (
    "Probability that a post is a rumour of the kind reported to Weibo's misinformation platform, "
    "learned from Chinese Weibo posts only (CED). For other languages it is the same text and context "
    "model applied without any training data in that language: treat it as an unvalidated signal."
)


class LoraSpec(BaseModel):
    """PEFT LoRA on a pretrained encoder: low-rank adapters on `target_modules`; the heads train
    fully. Merged into the base weights before saving, so the model directory stays plain."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=8, ge=1, le=1024)
    alpha: float = Field(default=16.0, gt=0)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "value"], min_length=1)


class PretrainSpec(BaseModel):
    """Masked-LM pretraining of the encoder on unlabelled text before the task training."""

    model_config = ConfigDict(extra="forbid")
    texts: list[Path] = Field(default_factory=list, description=".txt (a text per line) or .jsonl[.gz] with 'text'")
    shared_unlabelled: bool = True  # also the shared data's repost texts and the labelled texts (labels unused)
    max_texts: int = Field(default=200_000, ge=1)
    steps: int = Field(default=1000, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=5e-4, gt=0)
    warmup_steps: int = Field(default=50, ge=0)
    mlm_probability: float = Field(default=0.15, gt=0.0, lt=1.0)
    save: Path | None = None  # also write the pretrained encoder here (a base_model for later runs)


class TrainConfig(BaseModel):
    """Everything a training run reads: `train.yaml`, the command-line flags, or both (flags win).
    Paths in a YAML file are relative to that file."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data: Path | None = Path("../shared/data")  # the shared data root; null: the labelled files only
    out: Path
    tasks: list[Literal["zh", "en", "ar", "rumor"]] = Field(default_factory=lambda: ["zh", "en", "ar", "rumor"])
    labelled: list[Path] = Field(default_factory=list)  # `yuqing export-labels` files (analysts' corrections)
    labelled_dev_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    labelled_weight: float = Field(default=0.1, gt=0.0)  # task weight of a language only the agency's rows have
    name: str | None = None  # default: the `out` directory's name
    version: str = "0.1.0"
    description: str = ""
    bootstrap: bool = True
    base_model: Path | None = None  # a pretrained BERT or XLM-RoBERTa directory (tokenizer + encoder weights)
    vocab_size: int = Field(default=11000, ge=100)
    hidden: int = Field(default=192, ge=8)
    layers: int = Field(default=4, ge=1)
    heads: int = Field(default=4, ge=1)
    max_length: int = Field(default=128, ge=8, le=4096)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=7e-4, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=100, ge=0)
    minutes: float = Field(default=11.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    task_weights: dict[str, float] = Field(default_factory=lambda: {"zh": 0.3, "en": 0.25, "ar": 0.25, "rumor": 0.2})
    limit_per_task: int | None = Field(default=None, ge=1)  # for quick runs and tests
    eval_limit: int | None = Field(default=None, ge=1)
    tokenizer_unlabelled: int = Field(default=60000, ge=0)
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when torch sees one
    weights_dtype: Literal["float16", "float32", "bfloat16"] = "float16"
    topics_eval: bool = True
    command: str | None = None  # the command line, recorded in the manifest
    topic_encoder_weight: float = Field(default=0.0, ge=0)  # see nlp.topics: 0 until the encoder separates topics
    lora: LoraSpec | None = None
    pretrain: PretrainSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.name is None:
            self.name = Path(self.out).name
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.lora is not None and self.base_model is None and self.pretrain is None:
            raise ValueError("lora adapts a pretrained encoder: set base_model (or pretrain) as well")
        if self.base_model is not None and self.pretrain is not None:
            raise ValueError("give base_model or pretrain, not both (pretrain builds the encoder from scratch)")
        if self.data is None and not self.labelled:
            raise ValueError("no training data: set data (the shared data root) or labelled files")
        return self


#: keys of train.yaml whose values are paths (resolved against the YAML file's directory)
_PATH_KEYS = ("data", "out", "base_model")


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    def fix(v: Any) -> Any:
        if isinstance(v, str) and not Path(v).expanduser().is_absolute():
            return os.path.normpath(base / v)
        return v

    out = dict(raw)
    for k in _PATH_KEYS:
        if k in out:
            out[k] = fix(out[k])
    if isinstance(out.get("labelled"), list):
        out["labelled"] = [fix(v) for v in out["labelled"]]
    if isinstance(out.get("pretrain"), dict):
        pre = dict(out["pretrain"])
        if isinstance(pre.get("texts"), list):
            pre["texts"] = [fix(v) for v in pre["texts"]]
        if "save" in pre:
            pre["save"] = fix(pre["save"])
        out["pretrain"] = pre
    return out


def load_train_config(path: Path | None, flags: dict[str, Any] | None = None) -> TrainConfig:
    """Validate `train.yaml` (if given) with the flags on top. Raises ConfigError listing every
    problem as `file:line: key: what was expected` (flags as `--flag: ...`)."""
    from pydantic import ValidationError

    from yuqing.config import ConfigError, _format_loc, _line_of, read_yaml_mapping

    raw: dict[str, Any] = {}
    text, where = "", "<flags>"
    if path is not None:
        where = str(path)
        text, loaded = read_yaml_mapping(Path(path), "training configuration", "training settings")
        raw = _resolve_paths(loaded, Path(path).resolve().parent)
    flags = flags or {}
    try:
        return TrainConfig(**{**raw, **flags})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if loc and loc[0] in flags:
                at = "--" + str(loc[0]).replace("_", "-")
            else:
                line = _line_of(text, loc) if (text and loc) else None
                at = f"{where}:{line}" if line else where
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None or not loc else f" (got {got!r})"
            lines.append(f"{at}: {_format_loc(loc)}: {msg}{shown}")
        raise ConfigError("invalid training configuration:\n  " + "\n  ".join(lines)) from None


# -- batches ---------------------------------------------------------------------------------
@dataclass
class TaskPool:
    """One task's encoded rows and an endless stream of length-grouped, shuffled batches."""

    key: str
    ids: list[list[int]]
    labels: list[int]
    feats: list[tuple[list[float], list[float]]] | None  # (publish time, first hour) per row
    rng: random.Random
    batch_size: int
    _queue: list[list[int]] = field(default_factory=list)

    def _refill(self) -> None:
        order = list(range(len(self.ids)))
        self.rng.shuffle(order)
        batches = []
        chunk = self.batch_size * 50  # sort within chunks: little padding, still random
        for s in range(0, len(order), chunk):
            part = sorted(order[s : s + chunk], key=lambda i: len(self.ids[i]))
            batches += [part[j : j + self.batch_size] for j in range(0, len(part), self.batch_size)]
        self.rng.shuffle(batches)
        self._queue = batches

    def next(self) -> list[int]:
        if not self._queue:
            self._refill()
        return self._queue.pop()


def _class_weights(labels: Sequence[int], n: int) -> torch.Tensor:
    """Inverse-frequency weights (mean 1): the dev sets are balanced, the training files are not."""
    c = Counter(labels)
    w = torch.tensor([len(labels) / (n * c[i]) if c[i] else 0.0 for i in range(n)], dtype=torch.float32)
    return w / w[w > 0].mean()


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
        # the training code itself: uncommitted or modified files under nlp/ make the revision "+dirty"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "."], capture_output=True,
                               text=True, timeout=10, cwd=Path(__file__).resolve().parent).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) if rev else None
    except (OSError, subprocess.SubprocessError):
        return None


def _limit(rows: list[Example], n: int | None, rng: random.Random) -> list[Example]:
    if n is None or len(rows) <= n:
        return rows
    return rng.sample(rows, n)


# -- encoders: from scratch, from a pretrained directory, masked-LM pretraining, LoRA ----------
def read_texts(path: Path) -> list[str]:
    """Unlabelled texts: `.txt` (one per line) or `.jsonl[.gz]` rows with a `text` string."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: pretraining text file not found")
    if path.suffix == ".txt":
        return [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    from nlp.data import read_jsonl

    out = []
    try:
        for n, row in enumerate(read_jsonl(path), start=1):
            t = row.get("text") if isinstance(row, dict) else None
            if not isinstance(t, str):
                raise ValueError(f"{path}:{n}: expected a JSON object with a 'text' string")
            out.append(t)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON lines ({e.msg}, line {e.lineno} of the file's text)") from None
    return out


def from_base(base: Path, max_length: int) -> tuple[YuqingMultiTask, PreTrainedTokenizerFast]:
    """The multi-task network on a pretrained encoder of the BERT or XLM-RoBERTa family (e.g. the
    `pretrain.save` output of an earlier run, or a deployer's copy of `xlm-roberta-base` or a
    multilingual BERT), loaded offline. The encoder's weights must all be there; the heads start
    fresh."""
    from transformers import AutoConfig, AutoTokenizer

    from nlp.modeldir import _quiet_transformers
    from nlp.modeling import BASE_FAMILIES

    _quiet_transformers()
    base = Path(base)
    try:
        bc = AutoConfig.from_pretrained(base, local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{base / 'config.json'}: cannot read an encoder config ({type(e).__name__}: {e})") from None
    family = BASE_FAMILIES.get(bc.model_type)
    if family is None:
        raise ValueError(f"{base / 'config.json'}: model_type {bc.model_type!r}; base_model must be a BERT or "
                         f"XLM-RoBERTa encoder ({', '.join(BASE_FAMILIES)})")
    ref = make_config(bc.vocab_size, pad_token_id=bc.pad_token_id or 0)
    for k in ("id2label", "label2id", "problem_type", "architectures", "yuqing_rumor_features", "yuqing_rumor_hidden"):
        setattr(bc, k, getattr(ref, k))
    bc.architectures = [family.__name__]
    model, info = family.from_pretrained(base, config=bc, local_files_only=True, output_loading_info=True,  # type: ignore[attr-defined]
                                         dtype=torch.float32)
    prefix = model.base_model_prefix + "."
    missing = [k for k in info.get("missing_keys") or [] if k.startswith(prefix)]
    if missing or info.get("mismatched_keys"):
        raise ValueError(f"{base}: encoder weights missing or mismatched ({missing[:5]}); not a {bc.model_type} "
                         "encoder checkpoint")
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True, use_fast=True)
    if not isinstance(tok, PreTrainedTokenizerFast):
        raise ValueError(f"{base}: a fast tokenizer (tokenizer.json) is needed")
    tok.model_max_length = min(max_length, bc.max_position_embeddings - model.position_offset)
    return model, tok


def pretrain_mlm(config: Any, tokenizer: PreTrainedTokenizerFast, texts: list[str], spec: PretrainSpec,
                 max_length: int, seed: int, log=print, use_cpu: bool = True) -> tuple[Any, list[float]]:  # type: ignore[no-untyped-def]
    """Masked-LM pretraining (transformers `Trainer` + `DataCollatorForLanguageModeling`) of a
    fresh encoder of `config`'s shape on normalised unlabelled `texts`. Returns the BertForMaskedLM
    and its per-step losses. Why: no pretrained multilingual weights can be downloaded here, and
    the tweets/reviews alone are little text; MLM on unlabelled posts gives the encoder language
    before it sees labels."""
    import tempfile

    from transformers import (BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, PrinterCallback, Trainer,
                              TrainingArguments)

    mcfg = BertConfig(**{k: v for k, v in config.to_dict().items()
                         if k not in ("architectures", "id2label", "label2id", "problem_type")})
    mcfg.architectures = ["BertForMaskedLM"]
    torch.manual_seed(seed)
    mlm = BertForMaskedLM(mcfg)
    ids = [r for r in encode(tokenizer, texts, max_length) if len(r) > 2]
    if not ids:
        raise ValueError("pretrain: no non-empty texts to pretrain on")
    dataset = [{"input_ids": r} for r in ids]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=spec.mlm_probability)
    with tempfile.TemporaryDirectory() as td:
        args = TrainingArguments(
            output_dir=td, max_steps=spec.steps, per_device_train_batch_size=spec.batch_size, learning_rate=spec.lr,
            warmup_steps=spec.warmup_steps, weight_decay=0.01, lr_scheduler_type="linear", logging_steps=1,
            save_strategy="no", report_to=[], seed=seed, use_cpu=use_cpu,
            dataloader_num_workers=0, disable_tqdm=True, log_level="error")
        try:
            trainer = Trainer(model=mlm, args=args, train_dataset=dataset, data_collator=collator)  # type: ignore[arg-type]
        except ImportError as e:  # transformers.Trainer needs accelerate (installed with peft)
            raise ValueError(f"pretrain needs transformers.Trainer's extras ({e}): pip install 'yuqing[train]'") from None
        trainer.remove_callback(PrinterCallback)  # its per-step dicts would go to stdout; the losses are returned
        trainer.train()
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    log(f"pretrain: {len(ids)} texts, {spec.steps} MLM steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return mlm.cpu(), losses


def save_encoder(mlm: Any, tokenizer: PreTrainedTokenizerFast, out: Path) -> None:
    """Write a pretrained encoder as a plain save_pretrained directory with `sha256sums`, usable
    as `base_model` by later runs."""
    from nlp.modeldir import replace_dir
    from nlp.single_task import write_sums

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    mlm.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    write_sums(tmp)
    replace_dir(tmp, out)


def add_lora(model: YuqingMultiTask, spec: LoraSpec) -> Any:
    """Wrap with PEFT LoRA: adapters on the encoder's `target_modules`, heads fully trainable
    (`modules_to_save`), everything else frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ValueError("lora needs the `peft` package (pip install 'yuqing[train]')") from None
    names = {n.rsplit(".", 1)[-1] for n, _ in model.base_model.named_modules()}
    unknown = [t for t in spec.target_modules if t not in names]
    if unknown:
        raise ValueError(f"lora.target_modules: {unknown} are not modules of the encoder (e.g. query, key, value, dense)")
    cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=list(spec.target_modules),
                     modules_to_save=["classifier", "rumor_head"], bias="none")
    import warnings

    with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing for the user
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, cfg)


# -- training --------------------------------------------------------------------------------
_LABEL_IX = {lab: i for i, lab in enumerate(SENTIMENT_LABELS)}


def _task_loss(net: Any, pool: TaskPool, idx: list[int], late: list[bool], two_class: bool, weights: torch.Tensor,
               pad_id: int) -> torch.Tensor:
    """One task's loss on rows `idx`; rumour rows use the first-hour context where `late`, else
    publish time. Two-class sources compare the negative and positive logits only (the neutral
    logit gets no gradient)."""
    dev = next(net.parameters()).device
    x, m = pad([pool.ids[i] for i in idx], pad_id)
    x, m = x.to(dev), m.to(dev)
    y = torch.tensor([pool.labels[i] for i in idx], device=dev)
    weights = weights.to(dev)
    if pool.key == "rumor":
        f = torch.tensor([pool.feats[i][late[j]] for j, i in enumerate(idx)], device=dev)  # type: ignore[index]
        out = net(x, m, f)
        return (F.binary_cross_entropy_with_logits(out.rumor_logit, y.float(), reduction="none") * weights[y]).mean()
    logits = net(x, m).sentiment_logits
    if two_class:
        neg, pos = _LABEL_IX["negative"], _LABEL_IX["positive"]
        return F.cross_entropy(logits[:, [neg, pos]], (y == pos).long(), weight=weights[[neg, pos]], label_smoothing=0.05)
    return F.cross_entropy(logits, y, weight=weights, label_smoothing=0.05)


def _probe_loss(net: Any, pool: TaskPool, two_class: bool, weights: torch.Tensor, pad_id: int, n: int = 64) -> float:
    """The loss on a fixed batch of the task's first `n` training rows, in eval mode: a
    noise-free before/after figure (the per-step losses mix tasks and random batches)."""
    net.eval()
    idx = list(range(min(n, len(pool.ids))))
    with torch.no_grad():
        return round(float(_task_loss(net, pool, idx, [False] * len(idx), two_class, weights, pad_id)), 5)


def train(cfg: TrainConfig, data: SharedData | None = None, log=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Train, save, reload and evaluate. Returns a summary (losses, steps, seconds, evaluation)."""
    t0 = time.time()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    if data is None:
        data = load_shared(cfg.data) if cfg.data is not None else SharedData(root=None, train={}, dev={}, files={})  # type: ignore[arg-type]
    # a private copy: the configured shared tasks, then the agency's labelled posts merged in
    data = replace(data, train={k: list(v) for k, v in data.train.items() if k in cfg.tasks}, dev=dict(data.dev),
                   files=dict(data.files))
    labelled_info = add_labelled(data, list(cfg.labelled), cfg.labelled_dev_fraction, cfg.seed) if cfg.labelled else None
    if labelled_info:
        log(f"labelled: {labelled_info['kept_after_dedup']} of {labelled_info['rows_read']} rows after dedup; "
            f"split {labelled_info['split']}")
    train_rows = {k: _limit(v, cfg.limit_per_task, rng) for k, v in data.train.items() if v}
    if not train_rows:
        raise ValueError("no training rows (check tasks, data and labelled)")
    log("data: " + ", ".join(f"{k}={len(v)}" for k, v in train_rows.items()))

    norm = {k: [normalize(e.text) for e in v] for k, v in train_rows.items()}
    unl = [normalize(t) for t in data.unlabelled_texts(cfg.tokenizer_unlabelled, cfg.seed)]
    pre_texts: list[str] = []
    if cfg.pretrain is not None:
        for f in cfg.pretrain.texts:
            pre_texts += [normalize(t) for t in read_texts(f)]
        if cfg.pretrain.shared_unlabelled:
            pre_texts += unl + [t for v in norm.values() for t in v]
        pre_texts = [t for t in pre_texts if t]
        if len(pre_texts) > cfg.pretrain.max_texts:
            pre_texts = random.Random(cfg.seed).sample(pre_texts, cfg.pretrain.max_texts)
    max_length = cfg.max_length
    base_info: dict[str, Any] | None = None
    if cfg.base_model is not None:
        model, tokenizer = from_base(cfg.base_model, cfg.max_length)
        max_length = min(cfg.max_length, model.config.max_position_embeddings - model.position_offset)
        base_info = {"path": str(cfg.base_model), "model_type": model.config.model_type, "vocab": len(tokenizer),
                     "hidden": model.config.hidden_size,
                     "layers": model.config.num_hidden_layers}
        log(f"base model: {cfg.base_model} ({len(tokenizer)} tokens)")
    else:
        tok_texts = [t for v in norm.values() for t in v] + unl + pre_texts
        tokenizer = train_tokenizer(tok_texts, vocab_size=cfg.vocab_size, max_length=cfg.max_length)
        log(f"tokenizer: {len(tokenizer)} tokens ({time.time() - t0:.0f}s)")

    pools: dict[str, TaskPool] = {}
    label_ix = {lab: i for i, lab in enumerate(SENTIMENT_LABELS)}
    for k, rows in train_rows.items():
        if not rows:
            continue
        ids = encode(tokenizer, norm[k], max_length)
        if k == "rumor":
            labels = [int(e.label) for e in rows]
            feats = [(features(**cut_to_window(e.row, None)), features(**cut_to_window(e.row, FIRST_HOUR))) for e in rows]
        else:
            labels = [label_ix[e.label] for e in rows]
            feats = None
        pools[k] = TaskPool(k, ids, labels, feats, random.Random(cfg.seed + len(pools)), cfg.batch_size)
    two_class = [k for k, p in pools.items() if k != "rumor" and label_ix["neutral"] not in set(p.labels)]
    weights = {k: _class_weights(p.labels, 2 if k == "rumor" else 3) for k, p in pools.items()}

    pre_losses: list[float] = []
    if cfg.base_model is None:
        config = make_config(len(tokenizer), hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads,
                             max_position=cfg.max_length + 2, pad_token_id=tokenizer.pad_token_id)
        model = YuqingMultiTask(config)
        if cfg.pretrain is not None:
            mlm, pre_losses = pretrain_mlm(config, tokenizer, pre_texts, cfg.pretrain, max_length, cfg.seed, log,
                                           use_cpu=device.type == "cpu")
            model.bert.load_state_dict(mlm.bert.state_dict())  # the fine-tuning starts from the MLM encoder
            if cfg.pretrain.save is not None:
                save_encoder(mlm, tokenizer, cfg.pretrain.save)
                log(f"saved the pretrained encoder to {cfg.pretrain.save}")
            del mlm
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    net: Any = add_lora(model, cfg.lora) if cfg.lora is not None else model
    net.to(device)
    net.train()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for _, p in trainable)
    log(f"model: {n_params / 1e6:.2f}M parameters ({n_trainable / 1e6:.2f}M trained{', LoRA' if cfg.lora else ''}), "
        f"two-class sources: {two_class}")
    decay = [p for n, p in trainable if p.ndim >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in trainable if not (p.ndim >= 2 and "embeddings" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    tasks = [k for k in cfg.task_weights if k in pools] + [k for k in pools if k not in cfg.task_weights]
    tw = [cfg.task_weights.get(k, cfg.labelled_weight) for k in tasks]
    budget = cfg.minutes * 60.0
    t_train = time.time()
    losses: list[float] = []
    per_task: dict[str, list[float]] = {k: [] for k in tasks}
    step = 0
    probe = {k: [_probe_loss(net, p, k in two_class, weights[k], tokenizer.pad_token_id)] for k, p in pools.items()}
    net.train()
    from tqdm import tqdm

    bar = tqdm(total=cfg.max_steps, unit="step", file=sys.stderr, mininterval=5.0, desc="train")
    while True:
        elapsed = time.time() - t_train
        frac = max(elapsed / budget if budget > 0 else 0.0, step / cfg.max_steps if cfg.max_steps else 0.0)
        if frac >= 1.0:
            break
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1)) * max(0.02, 1.0 - frac)
        for g in opt.param_groups:
            g["lr"] = lr
        k = rng.choices(tasks, weights=tw)[0]
        pool = pools[k]
        idx = pool.next()
        late = [rng.random() < 0.5 for _ in idx] if k == "rumor" else []
        loss = _task_loss(net, pool, idx, late, k in two_class, weights[k],
                          tokenizer.pad_token_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
        opt.step()
        lv = loss.item()
        losses.append(lv)
        per_task[k].append(lv)
        step += 1
        bar.update(1)
        if step % 50 == 0:
            recent = {t: round(sum(v[-20:]) / max(len(v[-20:]), 1), 3) for t, v in per_task.items() if v}
            bar.set_postfix(lr=f"{lr:.1e}", **recent)
    bar.close()
    train_seconds = time.time() - t_train
    log(f"trained {step} steps in {train_seconds:.0f}s")
    for k, p in pools.items():
        probe[k].append(_probe_loss(net, p, k in two_class, weights[k], tokenizer.pad_token_id))
    log("loss on a fixed training batch, before -> after: "
        + ", ".join(f"{k} {v[0]:.3f} -> {v[1]:.3f}" for k, v in probe.items()))
    if cfg.lora is not None:  # adapters folded into the base weights: a plain save_pretrained directory
        model = net.merge_and_unload()

    # centre of the embedding space (for topic prototypes), from a sample of training texts
    model.eval()
    sample = [ids for p in pools.values() for ids in p.ids[:500]]
    total, count = torch.zeros(config.hidden_size), 0
    with torch.inference_mode():
        for s in range(0, len(sample), 64):
            x, m = pad(sample[s : s + 64], tokenizer.pad_token_id)
            total += model(x.to(device), m.to(device)).embedding.float().sum(0).cpu()
            count += x.shape[0]
    model.embed_center.copy_((total / max(count, 1)).to(model.embed_center.device))

    manifest = Manifest(
        name=cfg.name, version=cfg.version, bootstrap=cfg.bootstrap,
        description=cfg.description or (
            "Bootstrap model: a small encoder trained from scratch for a bounded time on CPU, so the "
            "pipeline runs end to end with real weights. Not accurate; replaced by the default model."
            if cfg.bootstrap else ""),
        languages=sorted({e.lang for v in train_rows.values() for e in v}),
        max_length=max_length,
        heads=Heads(sentiment=SentimentHead(two_class_languages=two_class), rumor=RumorHead(meaning=RUMOR_MEANING),
                    topics=TopicHead(encoder_weight=cfg.topic_encoder_weight)),
        training={
            "trainer": "plain torch loop (nlp.train: multi-task sampling); masked-LM pretraining with transformers.Trainer",
            "command": cfg.command,
            "config": cfg.model_dump(mode="json"),
            "data_root": str(cfg.data) if cfg.data is not None else None,
            "labelled": labelled_info,
            "base_model": base_info,
            "pretrain": ({"texts": len(pre_texts), "steps": len(pre_losses), "first_loss": round(pre_losses[0], 4),
                          "last_loss": round(pre_losses[-1], 4)} if pre_losses else None),
            "lora": cfg.lora.model_dump() if cfg.lora else None,
            "trainable_parameters": n_trainable,
            "data_files_sha256": data.files,
            "rows": {k: len(v) for k, v in train_rows.items()},
            "steps": step,
            "train_seconds": round(train_seconds, 1),
            "final_loss_last100": round(sum(losses[-100:]) / max(len(losses[-100:]), 1), 4),
            "fixed_batch_loss_before_after": probe,
            "parameters": n_params,
            "code_revision": _git_revision(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        licence={
            "code": "Apache-2.0",
            "weights": "Research and evaluation use, following the licences of the training data",
            "training_data": ["ChnSentiCorp_htl_all, waimai_10k, online_shopping_10_cats (SophonPlus/ChineseNlpCorpus)",
                              "UMSAB / SemEval-2017 (cardiffnlp/xlm-t)", "TweetEval (cardiffnlp/tweeteval)",
                              "ArSarcasm-v2 (iabufarha/ArSarcasm-v2)", "CED (thunlp/Chinese_Rumor_Dataset)"],
        },
    )
    dtype = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.weights_dtype]
    save(model, tokenizer, manifest, cfg.out, dtype=dtype)
    log(f"saved {cfg.out}")

    from nlp.evaluate import evaluate, write_card

    evaluation = evaluate(cfg.out, data, limit=cfg.eval_limit, topics=cfg.topics_eval, log=log)
    write_card(cfg.out, evaluation)
    log(f"evaluated and wrote the card ({time.time() - t0:.0f}s in all)")
    return {"losses": losses, "per_task": per_task, "steps": step, "train_seconds": train_seconds,
            "evaluation": evaluation, "two_class": two_class, "model": model, "tokenizer": tokenizer,
            "pretrain_losses": pre_losses, "trainable_parameters": n_trainable, "probe_losses": probe, "parameters": n_params,
            "labelled": labelled_info}


def _parse_weights(s: str) -> dict[str, float]:
    out = {}
    for part in s.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = float(v)
    return out


def _parser() -> argparse.ArgumentParser:
    """Every flag fills the TrainConfig field of the same name (dashes for underscores); a flag not
    given leaves the YAML's value (or the default) alone."""
    S = argparse.SUPPRESS
    p = argparse.ArgumentParser(prog="yuqing train", description=__doc__.split("\n\n")[0], argument_default=S)
    p.add_argument("--config", type=Path, default=None, help="train.yaml (see models/README.md); flags override it")
    p.add_argument("--data", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--name", help="model name (default: the --out directory's name)")
    p.add_argument("--version")
    p.add_argument("--not-bootstrap", dest="bootstrap", action="store_false", help="do not mark the card as a bootstrap")
    p.add_argument("--tasks", type=lambda v: [t.strip() for t in v.split(",") if t.strip()], help="e.g. zh,en,ar,rumor")
    p.add_argument("--labelled", type=Path, action="append", help="a `yuqing export-labels` file (repeatable)")
    p.add_argument("--base-model", type=Path, help="a pretrained BERT or XLM-RoBERTa encoder directory")
    for name, typ in [("vocab-size", int), ("hidden", int), ("layers", int), ("heads", int), ("max-length", int),
                      ("batch-size", int), ("lr", float), ("minutes", float), ("max-steps", int),
                      ("limit-per-task", int), ("eval-limit", int), ("seed", int), ("threads", int),
                      ("warmup-steps", int)]:
        p.add_argument("--" + name, type=typ)
    p.add_argument("--task-weights", type=_parse_weights, help="e.g. zh=0.3,en=0.25,ar=0.25,rumor=0.2")
    p.add_argument("--weights-dtype", choices=["float16", "float32", "bfloat16"])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-topics-eval", dest="topics_eval", action="store_false")
    p.add_argument("--topic-encoder-weight", type=float)
    return p


def main(argv: list[str] | None = None) -> int:
    """`yuqing train [--config train.yaml] [flags]` (also `python -m nlp.train`). Exit 2 with
    `file:line: key: problem` when the configuration is invalid."""
    from yuqing.config import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    a = vars(_parser().parse_args(argv))
    path = a.pop("config")
    a["command"] = " ".join(["yuqing train", *argv])
    try:
        cfg = load_train_config(path, a)
    except ConfigError as e:
        print(f"yuqing train: {e}", file=sys.stderr)
        return 2
    try:
        train(cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError) as e:  # bad input files (labelled, pretraining texts, base model): say where
        print(f"yuqing train: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
