"""The classify-and-index worker: drains the inbox in batches.

It knows the inbox (where work comes from), a classifier and a store; it does not know who
filled the inbox or who reads the index. Run one or many (`yuqing worker`); they never take the
same post (see `yuqing.state.inbox`). A batch is completed in the inbox only after the store has
accepted it, so a crash at any point re-processes the batch and, as indexing is an idempotent
upsert by document id, every post ends up indexed exactly once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from yuqing.records import Classification, Post
from yuqing.state.inbox import Claimed, Inbox

if TYPE_CHECKING:
    from index.base import Store
    from yuqing.config import Settings

log = logging.getLogger("yuqing.worker")


class Classifies(Protocol):
    model_id: str

    def classify(self, items: list) -> list[Classification]: ...  # noqa: ANN401


@dataclass
class BatchReport:
    claimed: int = 0
    indexed: int = 0
    retried: int = 0
    failed: int = 0
    store_down: bool = False
    errors: list[str] = field(default_factory=list)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _classify_inputs(claimed: list[Claimed]) -> list:
    from nlp.classifier import ClassifyInput

    out = []
    for c in claimed:
        p = c.post
        text = f"{p.title}\n{p.text}" if p.title and p.title not in p.text else p.text
        out.append(ClassifyInput(id=p.id, text=text, lang=p.lang))
    return out


def _with_language(post: Post) -> Post:
    if post.lang:
        return post
    from nlp.langid import detect

    return post.model_copy(update={"lang": detect(f"{post.title or ''} {post.text}")})


def process_batch(
    inbox: Inbox, classifier: Classifies, store: "Store", settings: "Settings", worker: str
) -> BatchReport:
    """Claim, classify, index, complete one batch. Never raises for bad posts or a down index:
    the report says what happened and the inbox keeps whatever was not indexed."""
    from index.base import StoreUnavailable

    wc = settings.worker
    report = BatchReport()
    claimed = inbox.claim(worker, wc.batch_size, wc.lease)
    report.claimed = len(claimed)
    if not claimed:
        return report
    ids = [c.inbox_id for c in claimed]
    try:
        claimed = [Claimed(c.inbox_id, c.attempts, _with_language(c.post)) for c in claimed]
        results = classifier.classify(_classify_inputs(claimed))
    except Exception as e:  # noqa: BLE001 - a model failure must not lose the batch
        msg = f"classification failed: {type(e).__name__}: {e}"
        log.exception(msg)
        statuses = inbox.release(ids, worker, msg, wc.max_attempts)
        report.retried = sum(s == "pending" for s in statuses.values())
        report.failed = sum(s == "failed" for s in statuses.values())
        report.errors.append(msg)
        return report
    posts = [c.post.model_copy(update={"classification": r}) for c, r in zip(claimed, results, strict=True)]
    try:
        outcomes = store.bulk_index(posts)
    except StoreUnavailable as e:
        inbox.release(ids, worker, f"index unavailable: {e}", wc.max_attempts, charge=False)
        report.store_down = True
        report.retried = len(ids)
        report.errors.append(f"index unavailable: {e}")
        return report
    by_id = {c.post.id: c.inbox_id for c in claimed}
    done = [by_id[o.id] for o in outcomes if o.ok]
    inbox.complete(done, worker)
    report.indexed = len(done)
    for o in outcomes:
        if not o.ok:
            status = inbox.release([by_id[o.id]], worker, o.error or "index error", wc.max_attempts, charge=o.retryable)
            report.failed += list(status.values()).count("failed")
            report.retried += list(status.values()).count("pending")
            report.errors.append(f"{o.id}: {o.error}")
    return report


def _wait_for_index(store: "Store", stop: threading.Event) -> None:
    """An index that is down at start is waited for, not fatal: posts wait in the inbox."""
    from index.base import StoreUnavailable

    delay = 1.0
    while not stop.is_set():
        try:
            store.ensure_schema()
            return
        except StoreUnavailable as e:
            log.warning("index unavailable at start (%s); retrying in %.0fs", e, delay)
            stop.wait(delay)
            delay = min(delay * 2, 60.0)


def run_worker(settings: "Settings", stop: threading.Event | None = None, once: bool = False) -> None:
    """Drain the inbox until `stop` is set (or, with `once`, until it is empty)."""
    from index import open_store
    from nlp.classifier import Classifier
    from nlp.single_task import specs_from_settings
    from yuqing.state.db import connect, migrate

    stop = stop or threading.Event()
    engine = connect(settings.state_url)
    migrate(engine)
    store = open_store(settings)
    _wait_for_index(store, stop)
    classifier = Classifier.load(
        settings.model_path,
        topics=settings.topics,
        device=settings.nlp.device,
        threads=settings.nlp.threads,
        batch_size=settings.nlp.batch_size,
        overrides=specs_from_settings(settings),
        topic_corpus=settings.topic_corpus_path,
    )
    inbox = Inbox(engine)
    me = worker_name()
    log.info("worker %s ready: model %s, index %s", me, classifier.model_id, settings.index.backend)
    backoff = settings.worker.poll.total_seconds()
    try:
        while not stop.is_set():
            report = process_batch(inbox, classifier, store, settings, me)
            if report.claimed:
                log.info(
                    "batch: %d claimed, %d indexed, %d retried, %d failed",
                    report.claimed, report.indexed, report.retried, report.failed,
                )
            if report.store_down:
                backoff = min(backoff * 2, 60.0)
                log.warning("index unavailable; posts stay in the inbox; retrying in %.0fs", backoff)
                stop.wait(backoff)
                continue
            backoff = settings.worker.poll.total_seconds()
            if not report.claimed:
                if once:
                    break
                stop.wait(backoff)
    finally:
        store.close()
        engine.dispose()
