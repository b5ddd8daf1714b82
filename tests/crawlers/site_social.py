"""Forum, social-API and Telegram pages of the fixture site, shaped like the real software's
output (phpBB 3.x prosilver and 3.0 markup, Discuz! X3, Discourse JSON, Mastodon v2 search,
Reddit search JSON, Weibo mobile search and comments JSON, Telegram's t.me/s preview)."""

from __future__ import annotations

import json
from typing import Any

from tests.crawlers.site import Page, _html


def _j(data: Any) -> Page:
    return Page(json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8", validators=False)


# -- phpBB: a board, one thread over three pages (the third in phpBB 3.0 markup) ---------------
def _phpbb_post(pid: int, user: str, uid: int, subject: str, text: str, when_iso: str | None, when_text: str,
                first: bool = False) -> str:
    time_html = f'<time datetime="{when_iso}">{when_text}</time>' if when_iso else f" &raquo; {when_text}"
    by = (f'<span class="responsive-hide">by <strong><a href="./memberlist.php?mode=viewprofile&amp;u={uid}" '
          f'class="username">{user}</a></strong> &raquo; </span>{time_html}') if when_iso else (
        f'by <strong><a href="./memberlist.php?mode=viewprofile&amp;u={uid}">{user}</a></strong>{time_html}')
    h3 = '<h3 class="first">' if first else "<h3>"
    return (
        f'<div id="p{pid}" class="post has-profile bg2"><div class="inner">'
        f'<dl class="postprofile"><dt><a href="./memberlist.php?mode=viewprofile&amp;u={uid}" class="username">{user}</a></dt>'
        f'<dd class="profile-posts"><strong>Posts:</strong> 12</dd></dl>'
        f'<div class="postbody"><div id="post_content{pid}">{h3}'
        f'<a href="#p{pid}">{subject}</a></h3>'
        f'<p class="author"><a class="unread" href="./viewtopic.php?p={pid}#p{pid}" title="Post"></a>{by}</p>'
        f'<div class="content">{text}</div></div></div></div></div>'
    )


def _phpbb_page(posts: list[str], prev: str | None, nxt: str | None) -> str:
    pager = '<div class="pagination">8 posts <ul>'
    if prev:
        pager += f'<li class="arrow previous"><a class="button" href="{prev}" rel="prev">Previous</a></li>'
    if nxt:
        pager += f'<li class="arrow next"><a class="button" href="{nxt}" rel="next">Next</a></li>'
    pager += "</ul></div>"
    body = ('<h2 class="topic-title"><a href="./viewtopic.php?t=77">Is the Linhe dam really cracked?</a></h2>'
            + pager + "".join(posts) + pager)
    return _html("Linhe forum", body, lang="en-gb")


PHPBB_POSTS = [
    (1001, "riverwatcher", 52, "Is the Linhe dam really cracked?",
     "Saw a video of cracks in the Linhe dam spillway. Has the NWRA said anything?", "2024-12-15T07:05:00+00:00",
     "Sun Dec 15, 2024 7:05 am"),
    (1002, "lao_zhang", 53, "Re: Is the Linhe dam really cracked?", "That clip is from 2019, I remember it.",
     "2024-12-15T07:20:00+00:00", "Sun Dec 15, 2024 7:20 am"),
    (1003, "hydro_eng", 54, "Re: Is the Linhe dam really cracked?",
     "Spillway cracks like that would be a big deal. Wait for the official statement.",
     "2024-12-15T07:41:00+00:00", "Sun Dec 15, 2024 7:41 am"),
    (1004, "riverwatcher", 52, "Re: Is the Linhe dam really cracked?",
     "The National Water Resources Administration just posted: dam is sound.", "2024-12-15T09:02:00+00:00",
     "Sun Dec 15, 2024 9:02 am"),
    (1005, "mod_anna", 2, "Re: Is the Linhe dam really cracked?", "Locking soon, please keep it civil.",
     "2024-12-15T09:30:00+00:00", "Sun Dec 15, 2024 9:30 am"),
    (1006, "lao_zhang", 53, "Re: Is the Linhe dam really cracked?", "Told you.", "2024-12-15T10:00:00+00:00",
     "Sun Dec 15, 2024 10:00 am"),
    # page 3: phpBB 3.0 markup, no <time>; board time zone (the source's) applies
    (1007, "newbie", 77, "Re: Is the Linhe dam really cracked?", "Where is the statement? Link please.",
     None, "Sun Dec 15, 2024 6:15 pm"),
    (1008, "riverwatcher", 52, "Re: Is the Linhe dam really cracked?", "On the NWRA website, news section.",
     None, "Sun Dec 15, 2024 6:40 pm"),
]


def phpbb_pages() -> dict[str, Page]:
    p = [_phpbb_post(*args, first=(i == 0)) for i, args in enumerate(PHPBB_POSTS)]
    board = _html("Linhe forum - News", '<ul class="topiclist topics">'
                  '<li class="row"><a href="./viewtopic.php?t=77" class="topictitle">Is the Linhe dam really cracked?</a></li>'
                  '<li class="row"><a href="./viewtopic.php?t=78" class="topictitle">Fishing season</a></li></ul>',
                  lang="en-gb")
    return {
        "/phpbb/viewforum.php": Page(board.encode()),
        "/phpbb/viewtopic.php?t=77": Page(_phpbb_page(p[0:3], None, "./viewtopic.php?t=77&start=3").encode()),
        "/phpbb/viewtopic.php?t=77&start=3": Page(_phpbb_page(p[3:6], "./viewtopic.php?t=77",
                                                              "./viewtopic.php?t=77&start=6").encode()),
        "/phpbb/viewtopic.php?t=77&start=6": Page(_phpbb_page(p[6:8], "./viewtopic.php?t=77&start=3", None).encode()),
        "/phpbb/viewtopic.php?t=78": Page(_phpbb_page([_phpbb_post(2001, "angler", 60, "Fishing season",
                                                                   "Season opens next week.", "2024-12-14T08:00:00+00:00",
                                                                   "Sat Dec 14, 2024 8:00 am", first=True)],
                                                      None, None).encode()),
    }


# -- Discuz! X3: one thread, GBK, relative dates with the absolute time in a title ------------
def discuz_pages() -> dict[str, Page]:
    def post(pid: int, user: str, uid: int, when: str, text: str) -> str:
        return (f'<div id="post_{pid}"><table id="pid{pid}"><tr><td class="pls"><div class="pi"><div class="authi">'
                f'<a href="home.php?mod=space&amp;uid={uid}" target="_blank" class="xw1">{user}</a></div></div></td>'
                f'<td class="plc"><div class="pi"><div class="pti"><div class="authi">'
                f'<em id="authorposton{pid}">{when}</em></div></div></div>'
                f'<div class="pct"><div class="t_fsz"><table><tr><td class="t_f" id="postmessage_{pid}">{text}</td>'
                f"</tr></table></div></div></td></tr></table></div>")

    body = ('<h1 class="ts"><span id="thread_subject">水管局到底回应了没有？</span></h1><div id="postlist" class="pl bm">'
            + post(5001, "临河老张", 42, '发表于 <span title="2024-12-15 07:05:12">3&nbsp;小时前</span>',
                   "听说临河水库出现裂缝，国家水资源管理局到现在还没有回应？<br />大家有消息吗")
            + post(5002, "水利人", 43, "发表于 2024-12-15 08:30", "管理局已经发了通报，视频是旧的。")
            + post(5003, "吃瓜群众", 44, "发表于 2024-12-15 09:10", "坐等后续")
            + '</div><div class="pg"><strong>1</strong></div>')
    html = _html("水管局到底回应了没有？ - 临河论坛", body, lang="zh-CN", charset="gbk")
    return {"/discuz/forum.php": Page(html.encode("gbk"), "text/html; charset=gbk")}


# -- Discourse: latest topics, one topic whose third post comes from posts.json ---------------
def discourse_pages() -> dict[str, Page]:
    def post(pid: int, n: int, user: str, name: str, cooked: str, at: str, reply_to: int | None = None,
             likes: int = 0) -> dict[str, Any]:
        return {"id": pid, "post_number": n, "username": user, "name": name, "user_id": 100 + n,
                "created_at": at, "cooked": cooked, "reply_to_post_number": reply_to, "reads": 40 - n,
                "reply_count": 1 if n == 1 else 0, "actions_summary": [{"id": 2, "count": likes}] if likes else [],
                "topic_id": 123}
    p1 = post(9001, 1, "river_w", "River Watcher", "<p>The NWRA says the Linhe dam is sound. Anyone seen the report?</p>",
              "2024-12-15T09:00:00.000Z", likes=5)
    p2 = post(9002, 2, "eng_li", "Li Engineer", "<p>Yes, they published inspection photos.</p>",
              "2024-12-15T09:12:00.000Z", reply_to=1)
    p3 = post(9003, 3, "skeptic", "", "<p>Photos can be old too.</p>", "2024-12-15T09:30:00.000Z", reply_to=2, likes=1)
    return {
        "/latest.json": _j({"topic_list": {"topics": [{"id": 123, "slug": "linhe-dam", "title": "NWRA on the Linhe dam"}]}}),
        "/t/linhe-dam/123.json": _j({"id": 123, "slug": "linhe-dam", "title": "NWRA on the Linhe dam",
                                     "post_stream": {"posts": [p1, p2], "stream": [9001, 9002, 9003]}}),
        "/t/123/posts.json": _j({"post_stream": {"posts": [p3]}}),
    }


# -- Mastodon v2 search, Reddit search, Weibo mobile search + comments --------------------------
def api_pages() -> dict[str, Page]:
    acct = {"id": "1091", "acct": "linhe_news@social.example", "display_name": "Linhe News", "followers_count": 2300}
    mastodon = {"statuses": [
        {"id": "113650000000000002", "uri": "https://social.example/users/linhe_news/statuses/113650000000000002",
         "url": "https://social.example/@linhe_news/113650000000000002", "created_at": "2024-12-15T09:40:00.000Z",
         "content": "<p>The <a href=\"https://social.example/tags/NWRA\">#NWRA</a> says the Linhe dam video is old.</p>",
         "language": "en", "account": acct, "favourites_count": 12, "reblogs_count": 30, "replies_count": 4,
         "in_reply_to_id": None, "reblog": None},
        {"id": "113650000000000001", "uri": "x", "url": "https://social.example/@cat/113650000000000001",
         "created_at": "2024-12-15T09:00:00.000Z", "content": "<p>My cat is asleep.</p>", "language": "en",
         "account": {"id": "7", "acct": "cat", "display_name": "Cat", "followers_count": 3},
         "favourites_count": 1, "reblogs_count": 0, "replies_count": 0, "in_reply_to_id": None, "reblog": None},
    ]}
    reddit = {"data": {"after": "t3_zzz", "children": [
        {"kind": "t3", "data": {"name": "t3_abc1", "permalink": "/r/china/comments/abc1/nwra_denies_dam_crack/",
                                "title": "NWRA denies Linhe dam crack rumours", "selftext": "",
                                "created_utc": 1734253200.0, "author": "throwaway_h2o", "author_fullname": "t2_h2o",
                                "ups": 321, "num_comments": 45, "subreddit": "china"}},
        {"kind": "t3", "data": {"name": "t3_abc2", "permalink": "/r/china/comments/abc2/food/", "title": "Best noodles",
                                "selftext": "Where to eat in Linhe?", "created_utc": 1734253300.0,
                                "author": "foodie", "author_fullname": "t2_food", "ups": 3, "num_comments": 1}},
    ]}}
    weibo = {"ok": 1, "data": {"cardlistInfo": {"page": 2}, "cards": [
        {"card_type": 11, "card_group": []},
        {"card_type": 9, "mblog": {
            "id": "5112233445566", "created_at": "Sun Dec 15 07:05:00 +0800 2024",
            "text": "国家水资源管理局回应临河水库裂缝传言：视频为旧视频。<a href='/search?q=%23临河水库%23'>#临河水库#</a>",
            "user": {"id": 2803301701, "screen_name": "临河发布", "followers_count": 1500000, "verified": True},
            "reposts_count": 880, "comments_count": 2, "attitudes_count": 3400}},
        {"card_type": 9, "mblog": {
            "id": "5112233445567", "created_at": "3分钟前", "text": "转发微博",
            "user": {"id": 99, "screen_name": "路人甲", "followers_count": 12, "verified": False},
            "reposts_count": 0, "comments_count": 0, "attitudes_count": 0,
            "retweeted_status": {"id": "5112233445566", "text": "国家水资源管理局回应临河水库裂缝传言：视频为旧视频。"}}},
    ]}}
    comments = {"ok": 1, "data": {"max_id": 0, "data": [
        {"id": "5112233440001", "created_at": "Sun Dec 15 07:30:00 +0800 2024", "text": "终于回应了",
         "user": {"id": 501, "screen_name": "网友A", "followers_count": 20, "verified": False}, "like_count": 56},
        {"id": "5112233440002", "created_at": "Sun Dec 15 07:45:00 +0800 2024", "text": "早就该澄清",
         "user": {"id": 502, "screen_name": "网友B", "followers_count": 8, "verified": False}, "like_count": 3},
    ]}}
    return {
        "/api/v2/search": _j(mastodon),
        "/search.json": _j(reddit),
        "/api/container/getIndex": _j(weibo),
        "/comments/hotflow": _j(comments),
    }


# -- Telegram channel preview, two pages ------------------------------------------------------
def _tg_message(channel: str, mid: int, when: str, text: str, views: str, reply: str | None = None,
                fwd: str | None = None) -> str:
    reply_html = (f'<a class="tgme_widget_message_reply" href="https://t.me/{reply}"><div class="tgme_widget_message_text">'
                  f"...</div></a>") if reply else ""
    fwd_html = (f'<div class="tgme_widget_message_forwarded_from accent_color">Forwarded from '
                f'<a class="tgme_widget_message_forwarded_from_name" href="https://t.me/{fwd}">Other</a></div>') if fwd else ""
    return (f'<div class="tgme_widget_message_wrap js-widget_message_wrap"><div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{channel}/{mid}">'
            f'<div class="tgme_widget_message_bubble">{fwd_html}<div class="tgme_widget_message_author accent_color">'
            f'<a class="tgme_widget_message_owner_name" href="https://t.me/{channel}"><span dir="auto">أخبار المياه</span></a></div>'
            f'{reply_html}<div class="tgme_widget_message_text js-message_text" dir="auto">{text}</div>'
            f'<div class="tgme_widget_message_footer compact js-message_footer"><div class="tgme_widget_message_info short js-message_info">'
            f'<span class="tgme_widget_message_views">{views}</span><span class="copyonly"> views</span>'
            f'<span class="tgme_widget_message_meta"><a class="tgme_widget_message_date" href="https://t.me/{channel}/{mid}">'
            f'<time datetime="{when}" class="time">10:30</time></a></span></div></div></div></div></div>')


def telegram_pages() -> dict[str, Page]:
    ch = "water_news_ar"
    newest = [
        _tg_message(ch, 101, "2024-12-15T07:30:00+00:00",
                    "نفت الهيئة الوطنية للموارد المائية<br/>شائعات تصدع سد لينخه.", "1.2K"),
        _tg_message(ch, 102, "2024-12-15T08:00:00+00:00", "بيان الهيئة الكامل حول سد لينخه", "815", reply=f"{ch}/101"),
        _tg_message(ch, 103, "2024-12-15T08:10:00+00:00", "نشرة الطقس لهذا اليوم", "2.5K"),
    ]
    older = [
        _tg_message(ch, 99, "2024-12-14T20:00:00+00:00", "الهيئة الوطنية للموارد المائية تعقد مؤتمرا صحفيا", "3.4K",
                    fwd="official_nwra/55"),
    ]

    def page(msgs: list[str], more: str | None) -> str:
        more_html = f'<a class="tme_messages_more js-messages_more" data-before="99" href="{more}"></a>' if more else ""
        return _html("أخبار المياه – Telegram",
                     '<div class="tgme_channel_info_header_title"><span dir="auto">أخبار المياه</span></div>'
                     f'<section class="tgme_channel_history js-message_history">{more_html}{"".join(msgs)}</section>',
                     lang="ar")
    return {
        f"/s/{ch}": Page(page(newest, f"/s/{ch}?before=101").encode()),
        f"/s/{ch}?before=101": Page(page(older, None).encode()),
    }


def social_pages(base: str) -> dict[str, Page]:
    pages: dict[str, Page] = {}
    for part in (phpbb_pages(), discuz_pages(), discourse_pages(), api_pages(), telegram_pages()):
        pages.update(part)
    return pages
