"""Multi-task training of the shared encoder: `python -m nlp.train --data ../shared/data --out models/NAME`.

What it does, in order: reads `../shared/data` (`nlp.data`: dedup, held-out ArSarcasm slice),
normalises every text (`nlp.normalize`, exactly as inference does), trains a WordPiece tokenizer on
the labelled texts plus unlabelled Weibo reposts, builds a small BERT-shaped encoder from a config
(no pretrained weights exist here), trains it on three tasks at once, saves a model directory, then
*reloads it through the real loader* and measures it on the dev sets, so the card's figures are the
figures of the bytes that ship.

Why a plain torch loop and not `transformers.Trainer`: each step draws a batch from one task
(sentiment in zh/en/ar, rumour) with its own loss — the Chinese reviews have no neutral class and
are trained on the negative-vs-positive logits only, so they neither push nor starve the neutral
class of the tweets; rumour batches carry context features at a randomly chosen operating point
(publish time or the first hour). Expressing that in Trainer needs a custom sampler, collator and
compute_loss, and Trainer needs `accelerate`, which is not installed; the loop below is ~80 lines.
Training stops at `--minutes` of wall time or `--max-steps`, whichever first; the learning rate
decays linearly over that budget, so a bounded CPU run still ends at a low learning rate.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nlp.data import Example, SharedData, load_shared
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


@dataclass
class TrainConfig:
    data: Path
    out: Path
    name: str = "bootstrap"
    version: str = "0.1.0"
    description: str = ""
    bootstrap: bool = True
    vocab_size: int = 11000
    hidden: int = 192
    layers: int = 4
    heads: int = 4
    max_length: int = 128
    batch_size: int = 32
    lr: float = 7e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    minutes: float = 11.0
    max_steps: int | None = None
    task_weights: dict[str, float] = field(default_factory=lambda: {"zh": 0.3, "en": 0.25, "ar": 0.25, "rumor": 0.2})
    limit_per_task: int | None = None  # for quick runs and tests
    eval_limit: int | None = None
    tokenizer_unlabelled: int = 60000
    seed: int = 0
    threads: int | None = None
    weights_dtype: str = "float16"
    topics_eval: bool = True
    command: str | None = None  # the command line, recorded in the manifest
    topic_encoder_weight: float = 0.0  # see nlp.topics: 0 until the encoder separates topics


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


# -- training --------------------------------------------------------------------------------
def train(cfg: TrainConfig, data: SharedData | None = None, log=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Train, save, reload and evaluate. Returns a summary (losses, steps, seconds, evaluation)."""
    t0 = time.time()
    cfg.data, cfg.out = Path(cfg.data), Path(cfg.out)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    data = data or load_shared(cfg.data)
    train_rows = {k: _limit(v, cfg.limit_per_task, rng) for k, v in data.train.items()}
    log("data: " + ", ".join(f"{k}={len(v)}" for k, v in train_rows.items()))

    norm = {k: [normalize(e.text) for e in v] for k, v in train_rows.items()}
    unl = [normalize(t) for t in data.unlabelled_texts(cfg.tokenizer_unlabelled, cfg.seed)]
    tok_texts = [t for v in norm.values() for t in v] + unl
    tokenizer = train_tokenizer(tok_texts, vocab_size=cfg.vocab_size, max_length=cfg.max_length)
    log(f"tokenizer: {len(tokenizer)} tokens ({time.time() - t0:.0f}s)")

    pools: dict[str, TaskPool] = {}
    label_ix = {lab: i for i, lab in enumerate(SENTIMENT_LABELS)}
    for k, rows in train_rows.items():
        if not rows:
            continue
        ids = encode(tokenizer, norm[k], cfg.max_length)
        if k == "rumor":
            labels = [int(e.label) for e in rows]
            feats = [(features(**cut_to_window(e.row, None)), features(**cut_to_window(e.row, FIRST_HOUR))) for e in rows]
        else:
            labels = [label_ix[e.label] for e in rows]
            feats = None
        pools[k] = TaskPool(k, ids, labels, feats, random.Random(cfg.seed + len(pools)), cfg.batch_size)
    two_class = [k for k, p in pools.items() if k != "rumor" and label_ix["neutral"] not in set(p.labels)]
    weights = {k: _class_weights(p.labels, 2 if k == "rumor" else 3) for k, p in pools.items()}

    config = make_config(len(tokenizer), hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads,
                         max_position=cfg.max_length + 2, pad_token_id=tokenizer.pad_token_id)
    model = YuqingMultiTask(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters, two-class sources: {two_class}")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    tasks = [k for k in cfg.task_weights if k in pools]
    tw = [cfg.task_weights[k] for k in tasks]
    budget = cfg.minutes * 60.0
    t_train = time.time()
    losses: list[float] = []
    per_task: dict[str, list[float]] = {k: [] for k in tasks}
    step = 0
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
        x, m = pad([pool.ids[i] for i in idx], tokenizer.pad_token_id)
        y = torch.tensor([pool.labels[i] for i in idx])
        if k == "rumor":
            f = torch.tensor([pool.feats[i][rng.random() < 0.5] for i in idx])  # type: ignore[index]
            out = model(x, m, f)
            w = weights[k][y]
            loss = (F.binary_cross_entropy_with_logits(out.rumor_logit, y.float(), reduction="none") * w).mean()
        else:
            out = model(x, m)
            logits = out.sentiment_logits
            if k in two_class:  # negative vs positive only: the neutral logit gets no gradient
                sub = logits[:, [label_ix["negative"], label_ix["positive"]]]
                yy = (y == label_ix["positive"]).long()
                loss = F.cross_entropy(sub, yy, weight=weights[k][[label_ix["negative"], label_ix["positive"]]],
                                       label_smoothing=0.05)
            else:
                loss = F.cross_entropy(logits, y, weight=weights[k], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
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

    # centre of the embedding space (for topic prototypes), from a sample of training texts
    model.eval()
    sample = [ids for p in pools.values() for ids in p.ids[:500]]
    total, count = torch.zeros(config.hidden_size), 0
    with torch.inference_mode():
        for s in range(0, len(sample), 64):
            x, m = pad(sample[s : s + 64], tokenizer.pad_token_id)
            total += model(x, m).embedding.sum(0)
            count += x.shape[0]
    model.embed_center.copy_(total / max(count, 1))

    manifest = Manifest(
        name=cfg.name, version=cfg.version, bootstrap=cfg.bootstrap,
        description=cfg.description or (
            "Bootstrap model: a small encoder trained from scratch for a bounded time on CPU, so the "
            "pipeline runs end to end with real weights. Not accurate; replaced by the default model."
            if cfg.bootstrap else ""),
        languages=sorted({e.lang for v in train_rows.values() for e in v}),
        max_length=cfg.max_length,
        heads=Heads(sentiment=SentimentHead(two_class_languages=two_class), rumor=RumorHead(meaning=RUMOR_MEANING),
                    topics=TopicHead(encoder_weight=cfg.topic_encoder_weight)),
        training={
            "trainer": "plain torch loop (nlp.train); transformers.Trainer not used (multi-task sampling, no accelerate)",
            "command": cfg.command,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "data_root": "../shared/data",
            "data_files_sha256": data.files,
            "rows": {k: len(v) for k, v in train_rows.items()},
            "steps": step,
            "train_seconds": round(train_seconds, 1),
            "final_loss_last100": round(sum(losses[-100:]) / max(len(losses[-100:]), 1), 4),
            "parameters": n_params,
            "code_revision": _git_revision(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
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
            "evaluation": evaluation, "two_class": two_class, "model": model, "tokenizer": tokenizer}


def _parse_weights(s: str) -> dict[str, float]:
    out = {}
    for part in s.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = float(v)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nlp.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default=None, help="model name (default: the --out directory's name)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--not-bootstrap", action="store_true", help="do not mark the card as a bootstrap")
    for name, typ, default in [("vocab-size", int, 11000), ("hidden", int, 192), ("layers", int, 4),
                               ("heads", int, 4), ("max-length", int, 128), ("batch-size", int, 32),
                               ("lr", float, 7e-4), ("minutes", float, 11.0), ("max-steps", int, None),
                               ("limit-per-task", int, None), ("eval-limit", int, None), ("seed", int, 0),
                               ("threads", int, None), ("warmup-steps", int, 100)]:
        p.add_argument("--" + name, type=typ, default=default)
    p.add_argument("--task-weights", type=_parse_weights, default=None, help="e.g. zh=0.3,en=0.25,ar=0.25,rumor=0.2")
    p.add_argument("--weights-dtype", choices=["float16", "float32", "bfloat16"], default="float16")
    p.add_argument("--no-topics-eval", action="store_true")
    p.add_argument("--topic-encoder-weight", type=float, default=0.0)
    a = p.parse_args(argv)
    cfg = TrainConfig(
        data=a.data, out=a.out, name=a.name or a.out.name, version=a.version, bootstrap=not a.not_bootstrap,
        vocab_size=a.vocab_size, hidden=a.hidden, layers=a.layers, heads=a.heads, max_length=a.max_length,
        batch_size=a.batch_size, lr=a.lr, minutes=a.minutes, max_steps=a.max_steps,
        limit_per_task=a.limit_per_task, eval_limit=a.eval_limit, seed=a.seed, threads=a.threads,
        warmup_steps=a.warmup_steps, weights_dtype=a.weights_dtype, topics_eval=not a.no_topics_eval,
        topic_encoder_weight=a.topic_encoder_weight,
    )
    cfg.command = " ".join(["python -m nlp.train", *(argv if argv is not None else sys.argv[1:])])
    if a.task_weights:
        cfg.task_weights = a.task_weights
    train(cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
