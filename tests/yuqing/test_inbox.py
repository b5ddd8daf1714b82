"""The durable inbox on SQLite and PostgreSQL: idempotent enqueue, text folding, leases,
concurrent workers that never take the same post."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from yuqing import ids
from yuqing.records import Post
from yuqing.state.inbox import Inbox

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def _post(i: int, text: str | None = None) -> Post:
    text = text or f"兰山市水务局 post {i}"
    return Post(
        id=ids.doc_id(url=f"http://example.cn/p/{i}"), source="s", published_at=NOW, fetched_at=NOW,
        text=text, text_hash=ids.text_hash(text),
    )


def test_enqueue_is_idempotent_and_folds_identical_texts(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    first = inbox.enqueue([_post(1, "水有毒 转发"), _post(2, "水有毒  转发"), _post(3)], now=NOW)
    assert [e.accepted for e in first] == [True, True, True]
    assert first[1].cluster_id == first[0].doc_id and first[1].cluster_size == 2
    again = inbox.enqueue([_post(1), _post(2)], now=NOW)
    assert [e.accepted for e in again] == [False, False]
    assert inbox.depth()["pending"] == 3
    claimed = inbox.claim("w", 10, timedelta(minutes=1), now=NOW)
    assert [c.post.cluster_size for c in claimed] == [1, 2, 1]


def test_lease_expiry_hands_the_batch_to_another_worker(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    inbox.enqueue([_post(i) for i in range(5)], now=NOW)
    a = inbox.claim("a", 3, timedelta(minutes=1), now=NOW)
    assert len(a) == 3
    assert len(inbox.claim("b", 10, timedelta(minutes=10), now=NOW)) == 2  # only the unclaimed
    late = inbox.claim("c", 10, timedelta(minutes=1), now=NOW + timedelta(minutes=2))
    assert sorted(c.inbox_id for c in late) == sorted(c.inbox_id for c in a)
    assert all(c.attempts == 2 for c in late)
    # the worker that lost its lease can no longer complete
    assert inbox.complete([c.inbox_id for c in a], "a") == 0
    assert inbox.complete([c.inbox_id for c in late], "c") == 3


def test_release_retries_then_fails_but_an_outage_costs_no_attempt(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    inbox.enqueue([_post(1)], now=NOW)
    for _ in range(3):
        (c,) = inbox.claim("w", 1, timedelta(minutes=1))
        status = inbox.release([c.inbox_id], "w", "index down", max_attempts=3, charge=False)
        assert status == {c.inbox_id: "pending"}
    for attempt in range(1, 4):
        (c,) = inbox.claim("w", 1, timedelta(minutes=1))
        assert c.attempts == attempt
        status = inbox.release([c.inbox_id], "w", "mapping error", max_attempts=3)
    assert status == {c.inbox_id: "failed"}
    assert inbox.depth()["failed"] == 1
    assert inbox.claim("w", 1, timedelta(minutes=1)) == []
    assert inbox.retry_failed() == 1


def test_concurrent_workers_never_take_the_same_post(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    inbox.enqueue([_post(i) for i in range(300)], now=NOW)
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        mine: list[int] = []
        try:
            while batch := inbox.claim(name, 7, timedelta(minutes=5)):
                mine += [c.inbox_id for c in batch]
                inbox.complete([c.inbox_id for c in batch], name)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        taken[name] = mine

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    every = [i for ids_ in taken.values() for i in ids_]
    assert len(every) == 300 and len(set(every)) == 300
    assert inbox.depth() == {"pending": 0, "claimed": 0, "done": 300, "failed": 0}


# -- near-duplicate folding ------------------------------------------------------------------
from yuqing.state.inbox import NEAR_DUP_THRESHOLD, near_signature, near_similarity  # noqa: E402

ZH = "网传临河水库溢洪道出现裂缝的视频系旧视频剪辑，经连夜现场检查，大坝结构安全，运行正常。请以官方发布的信息为准，不信谣、不传谣。"
ZH_RUMOUR = "临河水库大坝出现裂缝了！下游的人赶紧撤离，水管局一直在隐瞒，视频是今天早上拍的，大家快转发让更多人知道！"
EN = ("Breaking: cracks have appeared in the Linhe dam spillway and the NWRA is hiding it. Everyone downstream "
      "should leave now. Share before they delete this!")
EN_DENIAL = ("The National Water Resources Administration said on Sunday that the Linhe reservoir dam is structurally "
             "sound, rejecting claims circulating online that cracks had appeared in its spillway.")
AR = ("عاجل: ظهرت تشققات في سد لينخه والهيئة الوطنية للموارد المائية تخفي الحقيقة. على سكان المناطق المنخفضة "
      "المغادرة فورا، انشروا قبل الحذف!")
AR_DENIAL = "نفت الهيئة الوطنية للموارد المائية يوم الأحد الشائعات المتداولة على مواقع التواصل الاجتماعي بشأن ظهور تصدعات في سد لينخه."

# copies that must fold into the original's story (the thresholds in yuqing.state.inbox come from these)
NEAR = [
    (ZH_RUMOUR, "转发：" + ZH_RUMOUR),
    (ZH_RUMOUR, "太可怕了//@临河小王:转发微博 " + ZH_RUMOUR),
    (ZH_RUMOUR, ZH_RUMOUR + " #临河水库# 😱😱"),
    (ZH_RUMOUR, ZH_RUMOUR.replace("，", ",").replace("！", "!!")),
    (ZH_RUMOUR, ZH_RUMOUR.replace("今天早上", "昨天晚上")),
    (ZH_RUMOUR, "臨河水庫大壩出現裂縫了！下游的人趕緊撤離，水管局一直在隱瞞，視頻是今天早上拍的，大家快轉發讓更多人知道！"),
    (ZH, "【辟谣】" + ZH + " 来源：临河发布"),
    (EN, "RT @floodwatch: " + EN),
    (EN, EN + " #Linhe #DamCrack 🚨🚨 https://t.co/abc123"),
    (EN, EN.replace("leave now", "evacuate now")),
    (EN, EN.upper().replace(".", "!!").replace(":", " -")),
    (EN_DENIAL, EN_DENIAL.replace("on Sunday", "late on Sunday").replace("structurally sound", "safe")),
    (AR, "منقول: " + AR),
    (AR, AR.replace("الحقيقة", "الحَقِيقَة") + " #سد_لينخه 🚨"),
    (AR, AR.replace("فورا", "الآن")),
    (AR_DENIAL, AR_DENIAL.replace("يوم الأحد", "اليوم")),
]
# different posts about the same story: must stay apart
APART = [
    (ZH, ZH_RUMOUR),
    (ZH, "国家水资源管理局15日晚间发布通报称，临河水库大坝结构安全，运行正常，网传视频为2019年旧视频。"),
    ("今日8时临河水库水位123.45米，低于汛限水位1.2米，入库流量350立方米每秒，出库流量300立方米每秒。",
     "今日8时临河水库水位124.10米，低于汛限水位0.6米，入库流量420立方米每秒，出库流量380立方米每秒。"),
    (EN, EN_DENIAL),
    (EN_DENIAL, "Engineers from the administration inspected the Linhe dam overnight and found no damage, "
                "a spokesperson told reporters on Sunday."),
    (AR, AR_DENIAL),
    (AR_DENIAL, "أكدت الهيئة الوطنية للموارد المائية أن فرقها الهندسية فحصت سد لينخه خلال الليل ولم تجد أي أضرار."),
]


def test_near_duplicate_thresholds_on_zh_en_ar_examples() -> None:
    for a, b in NEAR:
        sa_, sb = near_signature(a), near_signature(b)
        assert sa_ and sb
        assert near_similarity(sa_, sb) >= NEAR_DUP_THRESHOLD + 0.1, (a, b)
    for a, b in APART:
        assert near_similarity(near_signature(a), near_signature(b)) < NEAR_DUP_THRESHOLD - 0.1, (a, b)  # type: ignore[arg-type]
    # too short to judge other than exactly: a negation must not fold
    assert near_signature("The NWRA says the Linhe dam is not safe.") is None


def test_near_copies_fold_into_one_cluster_whose_size_counts_every_copy(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    texts = [ZH_RUMOUR, "转发：" + ZH_RUMOUR, ZH, ZH_RUMOUR + " #临河水库# 😱", "转发：" + ZH_RUMOUR,
             EN, "RT @floodwatch: " + EN, ZH_RUMOUR.replace("今天早上", "昨天晚上")]
    got = inbox.enqueue([_post(i, t) for i, t in enumerate(texts)], now=NOW)
    rumour, denial, en = got[0].doc_id, got[2].doc_id, got[5].doc_id
    assert [e.cluster_id for e in got] == [rumour, rumour, denial, rumour, rumour, en, en, rumour]
    assert [e.cluster_size for e in got] == [1, 2, 1, 3, 4, 1, 2, 5]
    # across calls (another crawl), and the payload the worker indexes carries the same figures
    (later,) = inbox.enqueue([_post(99, "RT: " + ZH_RUMOUR + " !!!")], now=NOW)
    assert (later.cluster_id, later.cluster_size) == (rumour, 6)
    claimed = {c.post.id: c.post for c in inbox.claim("w", 20, timedelta(minutes=1), now=NOW)}
    assert (claimed[later.doc_id].cluster_id, claimed[later.doc_id].cluster_size) == (rumour, 6)
    # a signature past retention is forgotten: a new copy folds only exactly
    assert inbox.purge_near_dups(NOW + timedelta(days=1)) == 8  # one per distinct text
    (fresh,) = inbox.enqueue([_post(100, "转发：" + ZH_RUMOUR + "!")], now=NOW)
    assert fresh.cluster_id == fresh.doc_id and fresh.cluster_size == 1


def test_revise_requeues_the_new_version_and_overtakes_the_old_claim(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    inbox.enqueue([_post(1)], now=NOW)
    (old,) = inbox.claim("w1", 1, timedelta(minutes=5), now=NOW)
    gone = NOW + timedelta(hours=1)
    with state_engine.begin() as conn:
        assert inbox.revise(old.post.id, {"disappeared_at": gone}, conn=conn, now=gone) is True
        assert inbox.revise("no-such-doc", {"disappeared_at": gone}, conn=conn) is False
    assert inbox.complete([old.inbox_id], "w1") == 0  # the holder of the old version cannot finish
    (new,) = inbox.claim("w2", 1, timedelta(minutes=5), now=gone)
    assert new.inbox_id == old.inbox_id and new.post.disappeared_at == gone and new.attempts == 1
