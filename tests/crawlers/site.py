"""A small public web site about a fictional agency, served on 127.0.0.1 for the crawler tests.

The agency is the National Water Resources Administration (国家水资源管理局 / 國家水資源管理局 /
الهيئة الوطنية للموارد المائية, "NWRA"). The site has what real sources have: an English RSS 2.0
feed (full-text entries, teaser entries whose article must be fetched, an off-topic entry, an
entry whose article answers 500, one behind robots.txt), a Chinese RSS 2.0 feed in GBK with
Chinese dates whose articles are GBK, mis-declared UTF-8 and Big5 (Traditional Chinese), an
Arabic Atom feed, an RSS 1.0 feed, an empty feed, a news listing with pagination read by CSS
selectors, and a blog read by trafilatura with no selectors.

`FixtureSite` serves it with ETag / Last-Modified and 304 answers, records every request, and
lets a test change a page between crawls.
"""

from __future__ import annotations

import gzip

import hashlib
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

LAST_MODIFIED = "Sun, 15 Dec 2024 08:00:00 GMT"


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    validators: bool = True  # send ETag / Last-Modified and answer 304 to a matching request
    delay: float = 0.0  # seconds before answering (a slow server)
    location: str | None = None  # a redirect target (with status 302)
    length: int | None = None  # a Content-Length that lies (the connection drops early)


def _html(title: str, body: str, *, lang: str, charset: str = "utf-8", head: str = "") -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="{charset}"><title>{title}</title>{head}</head>'
        f"<body><header><nav><a href='/'>Home</a> | <a href='/about.html'>About</a></nav></header>"
        f"<main>{body}</main><footer><p>(c) 2024 Example Daily. All rights reserved.</p></footer></body></html>"
    )


# -- English --------------------------------------------------------------------------------
EN_FULL_TEXT = (
    "<p>The National Water Resources Administration said on Sunday that the Linhe reservoir dam is "
    "structurally sound, rejecting claims circulating online that cracks had appeared in its spillway.</p>"
    "<p>Engineers from the administration inspected the dam overnight and found no damage, a spokesperson "
    "told reporters. Water levels remain below the warning line and releases are proceeding as planned.</p>"
    "<p>Residents downstream were urged to rely on official notices and not to share unverified videos.</p>"
)
EN_FLOOD_ARTICLE = _html(
    "NWRA opens flood relief centres",
    "<article><h1>NWRA opens flood relief centres in three counties</h1>"
    "<p class='byline'>By Jane Doe</p>"
    "<p>The NWRA opened emergency relief centres in three counties on Sunday after two days of heavy rain "
    "pushed the Linhe river above its seasonal average. Officials said drinking water supplies were "
    "stable and that mobile pumping units had been sent to low-lying villages.</p>"
    "<p>Volunteers distributed sandbags and bottled water while engineers monitored the embankments. "
    "The administration will publish water level readings every six hours until the rain eases.</p>"
    "</article>",
    lang="en",
    head='<meta property="article:published_time" content="2024-12-15T07:05:00+08:00">',
)
EN_FEED_ITEMS = {
    "dam": f"""<item><title>Water administration rejects dam crack rumours</title>
<link>{{base}}/en/articles/dam-statement.html?utm_source=rss</link>
<guid isPermaLink="false">en-dam-1</guid>
<pubDate>Sun, 15 Dec 2024 09:30:00 +0800</pubDate>
<author>press@example.org (Li Wei)</author>
<description>Officials say the Linhe dam is sound.</description>
<content:encoded><![CDATA[{EN_FULL_TEXT}]]></content:encoded>
<slash:comments>42</slash:comments>
</item>""",
    "football": """<item><title>Local football results</title>
<link>{base}/en/articles/football.html</link>
<guid>en-football</guid>
<pubDate>Sun, 15 Dec 2024 10:00:00 +0800</pubDate>
<content:encoded><![CDATA[<p>Linhe United beat Riverside 3-1 on Saturday evening in front of a record crowd at the
municipal stadium. The home side scored twice in the first half and held on after the break, with
their goalkeeper making several saves late in the game. The coach praised the young squad.</p>
<p>Next week the team travels north for the cup semi-final, the club's first in a decade.</p>]]></content:encoded>
</item>""",
    "flood": """<item><title>Relief centres open as river rises</title>
<link>{base}/en/articles/flood-relief.html</link>
<guid>en-flood</guid>
<description>Three counties get help.</description>
</item>""",
    "broken": """<item><title>National Water Resources Administration briefing moved</title>
<link>{base}/en/articles/broken.html</link>
<guid>en-broken</guid>
<pubDate>Sun, 15 Dec 2024 11:00:00 +0800</pubDate>
<description>The National Water Resources Administration moved its weekly briefing to Monday.</description>
</item>""",
    "private": """<item><title>Internal memo</title>
<link>{base}/private/memo.html</link>
<guid>en-private</guid>
<description>NWRA memo.</description>
</item>""",
}
EN_NEW_ITEM = """<item><title>NWRA publishes reservoir levels</title>
<link>{base}/en/articles/levels.html</link>
<guid>en-levels</guid>
<pubDate>Mon, 16 Dec 2024 08:00:00 +0800</pubDate>
<description>Daily levels.</description>
</item>"""
EN_LEVELS_ARTICLE = _html(
    "Reservoir levels",
    "<article><h1>NWRA publishes daily reservoir levels</h1><p>From today the National Water Resources "
    "Administration publishes the level of every large reservoir each morning at eight, so that residents "
    "and journalists can check the figures themselves instead of relying on rumours shared online.</p>"
    "<p>The first table shows all reservoirs below their flood control limits.</p></article>",
    lang="en",
)


def rss2(base: str, items: list[str], *, title: str = "Example Daily", lang: str = "en-us", encoding: str = "utf-8") -> str:
    body = "\n".join(i.format(base=base) for i in items)
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:slash="http://purl.org/rss/1.0/modules/slash/">\n'
        f"<channel><title>{title}</title><link>{base}/</link><description>News</description>"
        f"<language>{lang}</language>\n{body}\n</channel></rss>\n"
    )


# -- Traditional Chinese feed in Big5 (XML prolog only), one entry with a date nobody can read --
TW_FEED_ITEMS = [
    """<item><title>國家水資源管理局澄清臨河水庫傳言</title>
<link>{base}/tw/articles/1.html</link><guid>tw-1</guid>
<pubDate>2024年12月15日 上午9:30</pubDate>
<description>國家水資源管理局今日表示，網傳臨河水庫潰堤影片為舊影片，水庫運作正常。</description>
</item>""",
    """<item><title>水資源管理局發布枯水期供水公告</title>
<link>{base}/tw/articles/2.html</link><guid>tw-2</guid>
<pubDate>2024年13月45日 25:61</pubDate>
<description>水資源管理局公告，枯水期各地供水將分區調度，請民眾節約用水。</description>
</item>""",
]

# -- Chinese (GBK feed; GBK, mis-declared and Big5 articles) --------------------------------
ZH_FEED_ITEMS = [
    """<item><title>国家水资源管理局回应水库裂缝传言</title>
<link>{base}/zh/articles/1.html</link><guid>zh-1</guid>
<pubDate>2024年12月15日 07:05</pubDate><author>新华网</author>
<description>管理局表示大坝安全。</description></item>""",
    """<item><title>临河县启动防汛应急响应</title>
<link>{base}/zh/articles/2.html</link><guid>zh-2</guid>
<pubDate>2024年12月15日 09:20</pubDate>
<description>县里启动响应。</description></item>""",
    """<item><title>臺灣媒體關注臨河水庫</title>
<link>{base}/zh/articles/3.html</link><guid>zh-3</guid>
<pubDate>2024-12-15 10:00</pubDate>
<description>境外媒體報道。</description></item>""",
    """<item><title>本地美食节开幕</title>
<link>{base}/zh/articles/4.html</link><guid>zh-4</guid>
<pubDate>2024年12月15日 12:00</pubDate>
<description>美食节今天开幕，吸引大批市民。</description></item>""",
]
ZH_ARTICLE_1 = _html(
    "国家水资源管理局回应水库裂缝传言",
    "<article><h1>国家水资源管理局回应水库裂缝传言</h1>"
    "<p>国家水资源管理局15日晚间发布通报称，网传临河水库溢洪道出现裂缝的视频系旧视频剪辑，"
    "经连夜现场检查，大坝结构安全，运行正常。</p>"
    "<p>管理局提醒广大群众，以官方发布的信息为准，不信谣、不传谣。下游各县已加强巡查，"
    "目前水位低于警戒线，泄洪按计划进行。</p></article>",
    lang="zh-CN",
    charset="gbk",
)
ZH_ARTICLE_2 = _html(
    "临河县启动防汛应急响应",
    "<article><h1>临河县启动防汛IV级应急响应</h1>"
    "<p>受持续强降雨影响，临河县于15日上午启动防汛IV级应急响应。县防汛指挥部表示，"
    "已按照国家水资源管理局的部署，组织力量对沿河堤坝开展拉网式排查。</p>"
    "<p>目前全县转移群众三百余人，暂无人员伤亡报告。</p></article>",
    lang="zh-CN",
    charset="utf-8",  # declared; the bytes are GB18030 (a classic misconfigured server)
)
ZH_ARTICLE_3_BIG5 = _html(
    "臺灣媒體關注臨河水庫",
    "<article><h1>臺灣媒體關注臨河水庫</h1>"
    "<p>多家臺灣媒體十五日報導，國家水資源管理局已就臨河水庫裂縫傳言作出澄清，"
    "表示大壩結構安全。報導引述專家意見指出，相關影片為舊片剪輯。</p>"
    "<p>管理局發言人呼籲民眾以官方消息為準，切勿轉發未經證實的影片。</p></article>",
    lang="zh-TW",
    charset="big5",
)
ZH_ARTICLE_4 = _html(
    "本地美食节开幕",
    "<article><h1>本地美食节开幕</h1><p>一年一度的临河美食节今天在滨江广场开幕，"
    "来自全国各地的两百多家摊位参展，吸引了大批市民前往品尝。主办方表示，本届美食节将持续一周，"
    "每天晚上还有文艺演出。</p></article>",
    lang="zh-CN",
)

# -- Arabic (Atom; articles read by trafilatura) --------------------------------------------
AR_ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ar">
<title>أخبار المياه</title><id>urn:example:ar</id><updated>2024-12-15T10:30:00+03:00</updated>
<link href="{base}/ar/"/>
<entry><title>الهيئة تنفي شائعات تصدع السد</title><id>urn:example:ar:1</id>
<link href="{base}/ar/articles/1.html"/><updated>2024-12-15T10:30:00+03:00</updated>
<author><name>مراسل الأخبار</name><uri>{base}/ar/authors/7</uri></author>
<summary>نفت الهيئة الشائعات.</summary></entry>
<entry><title>مهرجان الكتاب يفتتح أبوابه</title><id>urn:example:ar:2</id>
<link href="{base}/ar/articles/2.html"/><updated>2024-12-15T11:00:00+03:00</updated>
<summary>افتتح مهرجان الكتاب السنوي أبوابه اليوم.</summary></entry>
</feed>
"""
AR_ARTICLE_1 = _html(
    "الهيئة تنفي شائعات تصدع السد",
    # the agency's name with tashkeel and a bare alef / ha in place of ta marbuta, as typed online
    "<article><h1>الهيئة تنفي شائعات تصدع السد</h1>"
    "<p>نفت الهيئةُ الوطنيه للموارد المائيه يوم الأحد الشائعات المتداولة على مواقع التواصل الاجتماعي "
    "بشأن ظهور تصدعات في سد لينخه، مؤكدة أن فرقها الهندسية فحصت السد خلال الليل ولم تجد أي أضرار.</p>"
    "<p>ودعت الهيئة المواطنين إلى الاعتماد على البيانات الرسمية وعدم تداول مقاطع الفيديو غير الموثقة، "
    "مشيرة إلى أن منسوب المياه لا يزال دون خط الإنذار.</p></article>",
    lang="ar",
    head='<meta property="article:published_time" content="2024-12-15T10:30:00+03:00">',
)
AR_ARTICLE_2 = _html(
    "مهرجان الكتاب",
    "<article><h1>مهرجان الكتاب يفتتح أبوابه</h1><p>افتتح مهرجان الكتاب السنوي أبوابه اليوم بمشاركة "
    "أكثر من مئتي دار نشر من مختلف الدول العربية، ويستمر المهرجان أسبوعا كاملا مع ندوات وأمسيات شعرية.</p>"
    "</article>",
    lang="ar",
)

# -- RSS 1.0 ---------------------------------------------------------------------------------
RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="{base}/rdf.xml"><title>Gazette</title><link>{base}/</link><description>d</description>
<dc:language>en</dc:language>
<items><rdf:Seq><rdf:li resource="{base}/gazette/1.html"/></rdf:Seq></items></channel>
<item rdf:about="{base}/gazette/1.html"><title>NWRA notice on water fees</title>
<link>{base}/gazette/1.html</link><dc:date>2024-12-14T16:00:00Z</dc:date><dc:creator>Gazette desk</dc:creator>
<description>The National Water Resources Administration announced that household water fees stay
unchanged next year, after a public consultation that drew more than twelve thousand comments from
residents, businesses and farmers across the province. The notice also extends the discount for
low-income households and asks utilities to publish their maintenance budgets online every quarter.</description>
</item>
</rdf:RDF>
"""

ROUGH_ITEMS = [
    f"""<item><title>{name}</title><link>{{base}}/rough/{name}.html</link><guid>rough-{name}</guid>
<description>NWRA item {name}.</description></item>"""
    for name in ("slow", "loop-a", "huge", "dataloss", "cut")
]

EMPTY_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Quiet Bureau</title><link>{base}/</link><description>Nothing yet</description></channel></rss>
"""

# -- HTML listing with selectors (Chinese, two listing pages) -------------------------------
def _listing(links: list[tuple[str, str]], next_href: str | None) -> str:
    lis = "".join(f'<li><a class="title" href="{h}">{t}</a></li>' for h, t in links)
    nxt = f'<a class="next" href="{next_href}">下一页</a>' if next_href else ""
    return _html("新闻列表", f'<ul class="news">{lis}</ul><div class="pager">{nxt}</div>'
                 '<aside><a href="/about.html">关于我们</a></aside>', lang="zh-CN")


def _news(title: str, date: str, author: str, paras: list[str]) -> str:
    ps = "".join(f"<p>{p}</p>" for p in paras)
    return _html(title, f'<div class="article"><h1 class="headline">{title}</h1>'
                 f'<div class="meta"><span class="date">发布时间：{date}</span> <span class="author">{author}</span></div>'
                 f'<div class="content">{ps}</div></div>', lang="zh-CN")


NEWS = {
    "/news/list.html": _listing([("/news/a1.html", "管理局召开新闻发布会"), ("/news/a2.html", "城市绿化")], "/news/list2.html"),
    # the last link is an article another source (the Chinese feed) also carries: one document
    "/news/list2.html": _listing([("/news/a3.html", "水管局部署冬季供水"), ("/zh/articles/1.html", "回应传言")], None),
    "/news/a1.html": _news("管理局召开新闻发布会", "2019年8月7日 06:56", "记者 王芳",
                           ["国家水资源管理局7日召开新闻发布会，通报今年汛期水库安全情况。",
                            "发言人表示，全国大中型水库均安全度汛。"]),
    "/news/a2.html": _news("城市绿化再上新台阶", "2019年8月7日 08:00", "记者 李明",
                           ["今年我市新增绿地面积两百公顷，市民休闲空间进一步扩大。"]),
    "/news/a3.html": _news("水管局部署冬季供水", "3小时前", "记者 赵强",
                           ["水资源管理局部署今冬明春城乡供水保障工作，要求各地做好管网防冻。"]),
}

# -- blog read by trafilatura (no selectors) ------------------------------------------------
BLOG_INDEX = _html("Linhe Watch blog", "<h1>Linhe Watch</h1><ul>"
                   "<li><a href='/blog/posts/dam-video.html'>About that dam video</a></li>"
                   "<li><a href='/blog/posts/recipes.html'>Winter recipes</a></li></ul>", lang="en")
BLOG_POST = _html(
    "About that dam video",
    "<article><h1>About that dam video</h1><p class='meta'>Posted: Sun Dec 15, 2024 7:05 am by riverwatcher</p>"
    "<p>A video claiming to show cracks in the Linhe dam spillway has been shared thousands of times since "
    "Saturday. I compared it with footage from 2019 and it is the same clip, mirrored and cropped.</p>"
    "<p>The NWRA has since said the dam is sound. Whatever you think of the administration, this particular "
    "video is old, and sharing it only makes it harder for people downstream to know what is true.</p></article>",
    lang="en",
)
BLOG_RECIPES = _html(
    "Winter recipes",
    "<article><h1>Winter recipes</h1><p>Three soups for cold evenings: a slow-cooked lamb broth with "
    "radish, a spicy tofu stew, and a simple tomato and egg soup that takes ten minutes from start to "
    "finish. All three keep well in the fridge for a few days and taste better the next day.</p></article>",
    lang="en",
)


class FixtureSite:
    """The site on 127.0.0.1 (a free port), in a daemon thread; `stop()` shuts it down."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, int]] = []  # (path, status), in order
        self.full_requests: list[str] = []  # path with query, in order
        self.proxied: list[str] = []  # absolute URLs requested through the site as a proxy
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            pages: ClassVar[dict[str, Page]]

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("http://"):  # asked as a proxy: serve the path, note it
                    with site._lock:
                        site.proxied.append(self.path)
                    self.path = "/" + self.path.split("/", 3)[3] if self.path.count("/") >= 3 else "/"
                path = self.path.split("?")[0]
                with site._lock:
                    site.full_requests.append(self.path)
                # an exact "path?query" page wins (API pagination), else the path alone
                page = site.pages.get(self.path) or site.pages.get(path)
                if page is None:
                    self._send(404, b"not found", "text/plain", path)
                    return
                headers: dict[str, str] = {}
                if page.delay:
                    time.sleep(page.delay)
                if page.location:
                    self._send(302, b"", "text/plain", path, {"Location": page.location})
                    return
                if page.length is not None:
                    self._send(200, page.body, page.content_type, path, {"Content-Length": str(page.length)})
                    self.close_connection = True
                    return
                if page.validators and page.status == 200:
                    etag = '"' + hashlib.sha1(page.body).hexdigest()[:16] + '"'
                    headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
                    if self.headers.get("If-None-Match") == etag or (
                        self.headers.get("If-None-Match") is None
                        and self.headers.get("If-Modified-Since") == LAST_MODIFIED
                    ):
                        self._send(304, b"", None, path, headers)
                        return
                self._send(page.status, page.body, page.content_type, path, headers)

            def _send(self, status: int, body: bytes, ctype: str | None, path: str, extra: dict[str, str] | None = None) -> None:
                with site._lock:
                    site.requests.append((path, status))
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                extra = dict(extra or {})
                extra.setdefault("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up (e.g. a page over its size limit)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients hanging up on purpose (size limits, timeouts) are not failures

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fixture-site", daemon=True)
        self._build()

    def start(self) -> "FixtureSite":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def requested(self, path: str) -> list[int]:
        """Statuses served for `path`, in order."""
        with self._lock:
            return [s for p, s in self.requests if p == path]

    def set_en_feed(self, keys: list[str], extra: list[str] | None = None) -> None:
        items = [EN_FEED_ITEMS[k] for k in keys] + (extra or [])
        self.pages["/feeds/en.xml"] = Page(rss2(self.base, items).encode(), "application/rss+xml; charset=utf-8")

    def _build(self) -> None:
        b, P = self.base, self.pages
        P["/robots.txt"] = Page(b"User-agent: *\nDisallow: /private/\n", "text/plain", validators=False)
        # a sitemap index -> a gzipped urlset -> the news articles (no listing page involved)
        P["/sitemap.xml"] = Page(
            (f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             f"<sitemap><loc>{b}/sitemaps/news.xml.gz</loc></sitemap></sitemapindex>").encode(),
            "application/xml", validators=False)
        P["/sitemaps/news.xml.gz"] = Page(gzip.compress(
            ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             + "".join(f"<url><loc>{b}/news/{a}.html</loc><lastmod>2019-08-07</lastmod></url>" for a in ("a1", "a2", "a3"))
             + "</urlset>").encode()), "application/x-gzip", validators=False)
        P["/sitemaps/broken.xml"] = Page(b'<?xml version="1.0"?><urlset><url><loc>', "application/xml", validators=False)
        self.set_en_feed(list(EN_FEED_ITEMS))
        P["/en/articles/dam-statement.html"] = Page(_html("Dam", EN_FULL_TEXT, lang="en").encode())
        P["/en/articles/football.html"] = Page(_html("Football", "<p>football</p>", lang="en").encode())
        P["/en/articles/flood-relief.html"] = Page(EN_FLOOD_ARTICLE.encode())
        P["/en/articles/broken.html"] = Page(b"<h1>Internal Server Error</h1>", status=500, validators=False)
        P["/en/articles/levels.html"] = Page(EN_LEVELS_ARTICLE.encode())
        P["/private/memo.html"] = Page(_html("Memo", "<p>NWRA internal memo text.</p>", lang="en").encode())
        # GBK feed: declared in the XML prolog only (no charset in the HTTP header)
        P["/feeds/zh.xml"] = Page(rss2(b, ZH_FEED_ITEMS, title="临河日报", lang="zh-cn", encoding="GBK").encode("gbk"),
                                  "application/rss+xml")
        P["/zh/articles/1.html"] = Page(ZH_ARTICLE_1.encode("gbk"), "text/html; charset=GBK")
        P["/zh/articles/2.html"] = Page(ZH_ARTICLE_2.encode("gb18030"), "text/html; charset=utf-8")
        P["/zh/articles/3.html"] = Page(ZH_ARTICLE_3_BIG5.encode("big5"), "text/html; charset=big5")
        P["/zh/articles/4.html"] = Page(ZH_ARTICLE_4.encode("utf-8"))
        P["/feeds/tw.xml"] = Page(rss2(b, TW_FEED_ITEMS, title="臨河新聞", lang="zh-tw", encoding="Big5").encode("big5"),
                                  "application/rss+xml")
        P["/feeds/ar.atom"] = Page(AR_ATOM.format(base=b).encode(), "application/atom+xml")
        P["/ar/articles/1.html"] = Page(AR_ARTICLE_1.encode())
        P["/ar/articles/2.html"] = Page(AR_ARTICLE_2.encode())
        P["/feeds/rdf.xml"] = Page(RDF.format(base=b).encode(), "application/rdf+xml")
        P["/feeds/empty.xml"] = Page(EMPTY_FEED.format(base=b).encode(), "application/rss+xml")
        P["/feeds/not-a-feed.xml"] = Page(_html("Oops", "<p>This is a web page.</p>", lang="en").encode())
        for path, html in NEWS.items():
            P[path] = Page(html.encode())
        P["/blog/index.html"] = Page(BLOG_INDEX.encode())
        P["/blog/posts/dam-video.html"] = Page(BLOG_POST.encode())
        P["/blog/posts/recipes.html"] = Page(BLOG_RECIPES.encode())
        # rough edges, one feed: every entry's page fails differently except the last
        P["/feeds/rough.xml"] = Page(rss2(b, ROUGH_ITEMS).encode(), "application/rss+xml")
        P["/feeds/stall.xml"] = Page(rss2(b, [ROUGH_ITEMS[0].replace("/rough/slow.html", "/rough/stall.html")]).encode(),
                                     "application/rss+xml")
        P["/rough/stall.html"] = Page(b"<p>never in time</p>", delay=25)
        P["/rough/slow.html"] = Page(_html("slow", "<p>NWRA slow page</p>", lang="en").encode(), delay=2.5)
        P["/rough/loop-a.html"] = Page(b"", location="/rough/loop-b.html")
        P["/rough/loop-b.html"] = Page(b"", location="/rough/loop-a.html")
        P["/rough/huge.html"] = Page(b"<html><body>" + b"<p>NWRA filler text.</p>" * 900_000 + b"</body></html>")
        P["/rough/cut.html"] = Page(EN_FLOOD_ARTICLE.encode()[:-400])  # markup cut mid-way, HTTP intact
        P["/rough/dataloss.html"] = Page(EN_FLOOD_ARTICLE.encode()[:300], length=len(EN_FLOOD_ARTICLE.encode()))
        P["/about.html"] = Page(_html("About", "<p>About us.</p>", lang="en").encode())
        from tests.crawlers.site_social import social_pages

        P.update(social_pages(b))


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WATCHLISTS = [
    {
        "name": "agency",
        "priority": 5,
        "terms": [
            "国家水资源管理局",
            "水资源管理局",
            "水管局",
            "National Water Resources Administration",
            "NWRA",
            "الهيئة الوطنية للموارد المائية",
        ],
        "exclude": ["NWRA Football Club"],
    },
    {"name": "dam", "priority": 3, "terms": ["Linhe dam", "临河水库", "سد لينخه"]},
]
