"""The inference API the worker and `yuqing classify` use.

    clf = Classifier.load(model_dir, topics=settings.topics, device="auto", threads=None, batch_size=32)
    clf.model_id                      # "<name>@<version>", or "<name>@<version>+sentiment=<name>@<sha8>"
    clf.classify(items)               # list[yuqing.records.Classification], same order
    clf.predict(items)                # list[Prediction]: id, lang (ISO 639-1) and classification

Why it is shaped like this: the worker drains the inbox in batches, so the unit of work is a list;
one forward pass per post yields sentiment, rumour and the embedding the topic matcher needs.
Rows are sorted by token length into batches (padding is wasted time) and put back in order.
Every input gets an answer: empty or binary text gets the defined "no content" answer (neutral,
no topics, rumour from the context alone), over-long text is cut head+tail.

Streams (ONNX Runtime on a CPU): with `threads` N the classifier runs N streams, each one thread
running the session with one intra-op thread, instead of one stream with N intra-op threads. Why:
beside the encoder, each post costs ~0.75 ms of single-threaded Python (language detection, n-gram
blend, tokenising); with N intra-op threads the other cores idle through it, with N streams one
stream's Python runs while another's encoder does (ONNX Runtime releases the GIL). `predict` deals a
large batch into N interleaved parts classified at once (the worker's claimed batches);
`predict_batches` gives each stream whole batches of a long input (`yuqing classify`), so no stream
waits for another. Measured on the 2-core machine: docs/decisions.md. The torch backend keeps N
intra-op threads (torch's thread count is process-wide, and training shares it).

`overrides` (`nlp.single_task`): a deployer's standard sequence-classification model answers one
task (sentiment, rumour or topics) instead of our head; the other answers still come from the main
model. The n-gram blend of that task is then skipped (its stacker was fitted on our encoder's
outputs), and `model_id` names both, so every answer says which bytes produced it. A topics model
replaces the keyword + prototype matcher: its labels are the configured taxonomy's names, and the
topics it lists are those scoring at least the matcher's floor (`nlp.topics.TOPIC_FLOOR`).
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from nlp.encoding import encode, length_buckets, pad
from nlp.errors import ModelError
from nlp.langid import detect
from nlp.modeldir import LoadedModel, load
from nlp.modeling import PackedInference, YuqingMultiTask
from nlp.normalize import clean, normalize
from nlp.rumor_features import features as rumor_features
from nlp.single_task import OverrideSpec, SingleTask, load_single_task
from nlp.topic_corpus import TopicCorpus
from nlp.topics import TOPIC_FLOOR, matcher_for_model
from yuqing.config import TopicConfig
from yuqing.records import SENTIMENTS, Classification, TopicScore

K = TypeVar("K")


@dataclass
class ClassifyInput:
    """One post to classify. The rumour context (`time`, `user`, `pics`, `has_url`, `reposts`,
    `reposts_count`) has the shape of `../shared/data/rumor/ced` rows and is cut by the caller
    to the moment of observation; None means "not observed", not zero."""

    id: str
    text: str | bytes | None
    lang: str | None = None
    time: Any = None
    user: dict[str, Any] | None = None
    pics: Any = None
    has_url: Any = None
    reposts: list[dict[str, Any]] | None = None
    reposts_count: Any = None

    def context(self) -> dict[str, Any]:
        return {"time": self.time, "user": self.user, "pics": self.pics, "has_url": self.has_url,
                "reposts": self.reposts, "reposts_count": self.reposts_count}


@dataclass
class Prediction:
    id: str
    lang: str | None
    classification: Classification
    extra: dict[str, Any] = field(default_factory=dict)


def pick_device(device: str = "auto") -> torch.device:
    """CUDA when asked or when `auto` finds one, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(device)


def _lang_code(lang: str | None) -> str | None:
    if not lang or not isinstance(lang, str):
        return None
    code = lang.strip().replace("_", "-").split("-")[0].lower()
    return code or None


class Classifier:
    """A loaded, verified model plus the topic taxonomy; thread-compatible for reading."""

    def __init__(self, loaded: LoadedModel, topics: Sequence[TopicConfig] | None, device: torch.device,
                 batch_size: int = 32, backend: str = "auto", overrides: Sequence[SingleTask] = (),
                 topic_corpus: TopicCorpus | None = None, threads: int | None = None) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.manifest = loaded.manifest
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.max_length = min(self.manifest.max_length, self.model.config.max_position_embeddings - self.model.position_offset)
        # fp16/bf16 on CUDA halves memory traffic; CPU stays fp32 (CPU half matmuls are slower)
        self.autocast_dtype = None
        if device.type == "cuda":
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        cores = int(threads or torch.get_num_threads())
        self.ort = _onnx_session(loaded, device, backend, intra_op_threads=1)
        self.backend = "onnx" if self.ort is not None else "torch"
        #: batches classified at once (see the module's docstring); 1 = one after another
        self.streams = max(1, cores) if self.ort is not None else 1
        self._pool: ThreadPoolExecutor | None = None  # started on first use
        self._pool_lock = threading.Lock()
        # CPU fp32: the packed path (same function, no padded positions in the position-wise layers)
        self.packed = None
        if self.ort is None and device.type == "cpu" and type(self.model) is YuqingMultiTask:
            try:
                self.packed = PackedInference(self.model)
            except ValueError:  # a configuration it does not cover: the module itself answers
                self.packed = None
        # the default model's n-gram blend (nlp.hybrid), when the manifest declares one
        self.hybrid = None
        if getattr(self.manifest, "hybrid", None):
            from nlp.hybrid import Hybrid

            self.hybrid = Hybrid.load(loaded.path, set(self.manifest.files))
        self.overrides: dict[str, SingleTask] = {}
        for o in overrides:
            if o.task in self.overrides:
                raise ModelError(f"two override models for {o.task!r}: {self.overrides[o.task].path} and {o.path}")
            self.overrides[o.task] = o
        self.topic_matcher = None
        if "topics" in self.overrides:
            names = tuple(t.name for t in topics or ())
            if self.overrides["topics"].labels != names:
                raise ModelError(f"{self.overrides['topics'].path}: its topics {list(self.overrides['topics'].labels)} "
                                 f"are not the configured taxonomy {list(names)}")
        else:
            self.topic_matcher = matcher_for_model(loaded.path, set(self.manifest.files), topics, self._embed_texts,
                                                   self.manifest.heads.topics, corpus=topic_corpus)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: Path | str, topics: Sequence[TopicConfig] | None = None, device: str = "auto",
             threads: int | None = None, batch_size: int = 32, backend: str = "auto",
             overrides: Sequence[OverrideSpec] = (), topic_corpus: Path | str | None = None) -> Classifier:
        """Verify and load `model_dir` (offline). Raises ModelError naming the file at fault.

        `threads`: the cores to use (None: torch's default, all cores); a worker sharing the machine
        with crawlers and the API should pass fewer. ONNX Runtime uses them as that many streams of
        one thread each, torch as its intra-op threads (module docstring).
        `backend`: "auto" uses the directory's int8 `model.onnx` on CPU when onnxruntime is
        installed, else torch; "torch" or "onnx" force one.
        `overrides`: standard sequence-classification directories answering one task each
        (`nlp.single_task`), verified and loaded like the main model.
        `topic_corpus`: a directory written by `yuqing topic-corpus` from the deployment's own posts
        (config `nlp.topic_corpus`); the topics learn words their examples never used from it.
        """
        if threads:
            torch.set_num_threads(int(threads))
        dev = pick_device(device)
        loaded = load(model_dir, dev)
        names = [t.name for t in topics or ()]
        singles = [load_single_task(o, dev, batch_size, topics=names) for o in overrides]
        corpus = TopicCorpus.load(Path(topic_corpus)) if topic_corpus is not None and topics else None
        return cls(loaded, topics, dev, batch_size, backend, singles, corpus, threads)

    @property
    def model_id(self) -> str:
        """`<name>@<version>`, then `+<task>=<name>@<sha8>` for each task answered by an override
        (in a fixed order), e.g. `default@1.0.0+sentiment=cardiff@3f2a9c1b`."""
        parts = [self.manifest.model_id]
        parts += [f"{t}={self.overrides[t].model_id}" for t in ("sentiment", "rumor", "topics") if t in self.overrides]
        return "+".join(parts)

    # -- core -----------------------------------------------------------------------------
    def _forward(self, ids: list[list[int]], feats: list[list[float]] | None) -> dict[str, torch.Tensor]:
        """Run batches sorted by length; returns CPU tensors in input order."""
        n = len(ids)
        sent = torch.zeros((n, len(SENTIMENTS)))
        rumor = torch.zeros(n)
        emb = torch.zeros((n, self.model.config.hidden_size))
        pad_id = self.tokenizer.pad_token_id
        feat_arr = np.asarray(feats, dtype=np.float32) if feats is not None else None
        with torch.inference_mode():
            for batch in length_buckets([len(r) for r in ids], self.batch_size):
                x, m = pad([ids[i] for i in batch], pad_id)
                f = torch.from_numpy(feat_arr[batch]) if feat_arr is not None else None
                if self.ort is not None:
                    if f is None:
                        f = torch.zeros((x.shape[0], self._n_feat()), dtype=torch.float32)
                    s_log, r_log, e_vec = self.ort.run(None, {"input_ids": x.numpy(), "attention_mask": m.numpy(),
                                                             "rumor_features": f.numpy()})
                    idx = torch.tensor(batch)
                    sent[idx] = torch.softmax(torch.from_numpy(s_log).float(), dim=-1)
                    rumor[idx] = torch.sigmoid(torch.from_numpy(r_log).float())
                    emb[idx] = torch.from_numpy(e_vec).float()
                    continue
                x, m = x.to(self.device), m.to(self.device)
                f = f.to(self.device) if f is not None else None
                if self.autocast_dtype is not None:
                    with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                        out = self.model(x, m, f)
                else:
                    out = (self.packed or self.model)(x, m, f)
                idx = torch.tensor(batch)
                sent[idx] = torch.softmax(out.sentiment_logits.float(), dim=-1).cpu()
                rumor[idx] = torch.sigmoid(out.rumor_logit.float()).cpu()
                emb[idx] = out.embedding.float().cpu()
        return {"sentiment": sent, "rumor": rumor, "embedding": emb}

    def _n_feat(self) -> int:
        return self.model.rumor_head[0].in_features - self.model.config.hidden_size

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Centred mean-pooled embeddings of raw texts (used for topic prototypes)."""
        ids = encode(self.tokenizer, [normalize(t) for t in texts], self.max_length)
        return self._forward(ids, None)["embedding"]

    def predict(self, items: Sequence[ClassifyInput]) -> list[Prediction]:
        """Classify a batch; one Prediction per item, same order. Never raises on odd text.

        With several streams, a batch of at least one encoder batch per stream is dealt into
        interleaved parts (every stream gets the same mix of lengths and languages) classified at
        once; the answers are those of classifying each part alone. Larger batches waste less on
        padding: each part is sorted by length before it is cut into encoder batches."""
        n, k = len(items), self.streams
        if k < 2 or n < k * self.batch_size:
            return self._predict(items)
        parts = [range(j, n, k) for j in range(k)]
        futures = [self._executor().submit(self._predict, [items[i] for i in part]) for part in parts]
        out: list[Prediction | None] = [None] * n
        for part, fut in zip(parts, futures):
            for i, p in zip(part, fut.result()):
                out[i] = p
        return out  # type: ignore[return-value]

    def predict_batches(self, batches: Iterable[tuple[K, Sequence[ClassifyInput]]]
                        ) -> Iterator[tuple[K, list[Prediction | str]]]:
        """Classify a stream of `(key, items)` batches; yields `(key, answers)` in input order.

        For a caller with many batches (`yuqing classify`): each stream takes whole batches, so no
        stream waits for another and the caller reads the next batch meanwhile (at most one
        batch per stream, plus one, in flight). An answer is a Prediction, or a string saying why
        that item failed: a batch that raises is retried item by item, so one odd post does not
        lose the others."""
        if self.streams < 2:
            for key, items in batches:
                yield key, self._answer_each(items)
            return
        inflight: deque[tuple[K, Future[list[Prediction | str]]]] = deque()
        for key, items in batches:
            inflight.append((key, self._executor().submit(self._answer_each, list(items))))
            # a finished batch is answered at once (a slow trickle of input is not held back)
            while inflight and (len(inflight) > self.streams or inflight[0][1].done()):
                k, fut = inflight.popleft()
                yield k, fut.result()
        while inflight:
            k, fut = inflight.popleft()
            yield k, fut.result()

    def _answer_each(self, items: Sequence[ClassifyInput]) -> list[Prediction | str]:
        try:
            return list(self._predict(items))
        except Exception:  # noqa: BLE001 - retry singly: only the item at fault gets an error
            out: list[Prediction | str] = []
            for it in items:
                try:
                    out.append(self._predict([it])[0])
                except Exception as e:  # noqa: BLE001
                    out.append(f"classification failed: {type(e).__name__}: {e}")
            return out

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:  # API threads may classify at once: one pool per classifier
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.streams, thread_name_prefix="yuqing-classify")
            return self._pool

    def _predict(self, items: Sequence[ClassifyInput]) -> list[Prediction]:
        """`predict` on one stream."""
        if not items:
            return []
        texts = [normalize(it.text) for it in items]
        ids = encode(self.tokenizer, texts, self.max_length)
        feats = [rumor_features(**it.context()) for it in items]
        out = self._forward(ids, feats)
        topics = self.topic_matcher.match(texts, out["embedding"], TOPIC_FLOOR) if self.topic_matcher else None
        langs = [_lang_code(it.lang) or (None if not texts[i] else detect(clean(it.text))) for i, it in enumerate(items)]
        sent = out["sentiment"].double().numpy()
        rum = out["rumor"].double().numpy()
        if self.hybrid is not None:
            if "sentiment" not in self.overrides:
                sent = self.hybrid.sentiment(texts, langs, sent)
            if "rumor" not in self.overrides:
                rum = self.hybrid.rumor(texts, [it.reposts for it in items], rum, np.asarray(feats, dtype=np.float64))
        if self.overrides:
            sel = [i for i, t in enumerate(texts) if t]
            raw = [normalize(items[i].text, fold_text=False) for i in sel]
            if sel and "sentiment" in self.overrides:
                sent = np.array(sent, dtype=np.float64, copy=True)
                sent[sel] = self.overrides["sentiment"].probabilities(raw)
            if sel and "rumor" in self.overrides:
                rum = np.array(rum, dtype=np.float64, copy=True)
                rum[sel] = self.overrides["rumor"].probabilities(raw)
            if "topics" in self.overrides:
                topics = [[] for _ in items]
                if sel:
                    for i, row in zip(sel, self.overrides["topics"].probabilities(raw)):
                        topics[i] = _ranked(self.overrides["topics"].labels, row)
        preds = []
        model_id = self.model_id
        for i, it in enumerate(items):
            empty = not texts[i]
            lang = langs[i]
            if empty:
                scores = {"negative": 0.0, "neutral": 1.0, "positive": 0.0}
            else:
                scores = {lab: round(float(p), 6) for lab, p in zip(SENTIMENTS, sent[i].tolist())}
            label = max(SENTIMENTS, key=lambda k: scores[k])
            r = float(rum[i])
            r = 0.5 if not math.isfinite(r) else min(max(r, 0.0), 1.0)
            preds.append(Prediction(
                id=str(it.id),
                lang=lang,
                classification=Classification(
                    sentiment=label,
                    sentiment_scores=scores,
                    topics=(topics[i] if topics and not empty else []),
                    rumor=round(r, 6),
                    model=model_id,
                ),
            ))
        return preds

    def classify(self, items: Sequence[ClassifyInput]) -> list[Classification]:
        """The worker's entry point: classifications in input order."""
        return [p.classification for p in self.predict(items)]

    def topic_scores(self, texts: Sequence[str]) -> list[list[float]]:
        """Raw per-topic scores (taxonomy order) for evaluation of the topic mechanism."""
        if "topics" in self.overrides:
            raw = [normalize(t, fold_text=False) for t in texts]
            return self.overrides["topics"].probabilities(raw).tolist()
        if self.topic_matcher is None:
            raise ValueError("no topics were given to Classifier.load")
        norm = [normalize(t) for t in texts]
        emb = self._forward(encode(self.tokenizer, norm, self.max_length), None)["embedding"]
        return self.topic_matcher.scores(norm, emb)


def _ranked(names: Sequence[str], scores: Sequence[float], floor: float = TOPIC_FLOOR) -> list[TopicScore]:
    """Topics scoring at least `floor`, best first (the matcher's output shape)."""
    ranked = sorted(((float(p), n) for n, p in zip(names, scores) if p >= floor), key=lambda x: -x[0])
    return [TopicScore(topic=n, score=round(min(max(p, 0.0), 1.0), 6)) for p, n in ranked]


def _onnx_session(loaded: LoadedModel, device: torch.device, backend: str,  # type: ignore[no-untyped-def]
                  intra_op_threads: int = 1):
    """An ONNX Runtime session for the directory's verified `model.onnx`, or None for torch.
    Concurrent `run` calls on one session are safe; each uses `intra_op_threads` threads."""
    if backend not in ("auto", "torch", "onnx"):
        raise ModelError(f"unknown backend {backend!r} (expected auto, torch or onnx)")
    listed = "model.onnx" in loaded.manifest.files
    if backend == "torch" or (backend == "auto" and (not listed or device.type != "cpu")):
        return None
    if not listed:
        raise ModelError(f"{loaded.path / 'model.onnx'}: backend 'onnx' requested but the directory has no "
                         "ONNX export (run `yuqing models export-onnx`)")
    try:
        import onnxruntime as ort
    except ImportError:
        if backend == "onnx":
            raise ModelError("backend 'onnx' requested but onnxruntime is not installed") from None
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    # memory patterns are planned per input shape and every batch has its own sequence length: off,
    # the peak resident memory of `yuqing classify` fell ~50 MiB at the same speed (decisions.md)
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(loaded.path / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{loaded.path / 'model.onnx'}: ONNX Runtime cannot load it ({e})") from None


def default_threads() -> int | None:
    """`YUQING_NLP_THREADS` if set (deployments sharing cores), else None (torch's default)."""
    v = os.environ.get("YUQING_NLP_THREADS")
    return int(v) if v and v.isdigit() and int(v) > 0 else None
