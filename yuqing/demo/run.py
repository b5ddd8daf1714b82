"""`yuqing demo`: the bundled incident, crawled and analysed by the real pipeline.

A fresh data directory, the demo site on 127.0.0.1, a configuration pointing the real sources
at it (short intervals, so the story unfolds in about a minute), then exactly `yuqing run`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from yuqing.demo.site import DemoSite, load_scenario

FORUM_SELECTORS = {
    "link": "a.post-link",
    "title": "article h1.title::text",
    "text": "article div.content",
    "author": "article .author::text",
    "date": "article time::attr(datetime)",
}


def demo_config(site_url: str, data_dir: Path, port: int, models_dir: Path) -> dict[str, Any]:
    sc = load_scenario()
    agency = sc["agency"]
    sources: list[dict[str, Any]] = [
        {"name": f"news-{lang}", "kind": "feed", "url": f"{site_url}/news/{lang}/rss.xml", "interval": "10s",
         "platform": "news", "tier": "local_media", "lang": lang, "timezone": "Asia/Shanghai"}
        for lang in ("zh", "en", "ar")
    ]
    sources.append({"name": "forum", "kind": "html", "url": f"{site_url}/forum/", "interval": "10s",
                    "platform": "forum", "tier": "public", "selectors": FORUM_SELECTORS, "max_pages": 500})
    sources.append({"name": "official", "kind": "html", "url": f"{site_url}/official/", "interval": "10s",
                    "platform": "web", "tier": "official", "selectors": FORUM_SELECTORS, "max_pages": 50})
    return {
        "agency": agency["en"],
        "timezone": "Asia/Shanghai",
        "data_dir": str(data_dir),
        "models_dir": str(models_dir),
        "sources": sources,
        "watchlists": [
            {"name": "agency", "priority": 1,
             "terms": [agency["zh"], "兰山水务局", agency["en"], "Lanshan water bureau", agency["ar"]]},
        ],
        "topics": [
            {"name": "water-supply", "description": "supply interruptions, pipes, repairs",
             "keywords": ["停水", "水管", "供水", "抢修", "water main", "pipe", "supply", "خط مياه", "صهاريج"],
             "examples": ["供水主管道破裂，正在抢修", "A water main burst and crews are repairing it"]},
            {"name": "water-quality", "description": "colour, smell, safety of tap water",
             "keywords": ["发黄", "水质", "异味", "有毒", "yellow", "brown", "safe", "poison", "ملوثة", "صفراء"],
             "examples": ["自来水发黄有异味，能不能喝", "Is the tap water safe to drink?"]},
            {"name": "public-service", "description": "hotline, bills, service halls",
             "keywords": ["热线", "缴费", "营业厅", "hotline", "bill", "service hall"],
             "examples": ["热线一直打不通", "The hotline is busy"]},
        ],
        "alerts": {"interval": "10s", "window": "5m", "baseline": "8h", "cooldown": "10m"},
        "api": {"host": "127.0.0.1", "port": port},
        "worker": {"batch_size": 32, "poll": "1s"},
    }


def main(*, port: int = 8080, speed: float = 60.0, data_dir: str = "data/demo", models_dir: str | None = None) -> int:
    from yuqing.config import load_settings
    from yuqing.runner import serve

    root = Path(data_dir).resolve()
    if root.exists():
        shutil.rmtree(root)  # a demo always starts from the quiet before the incident
    root.mkdir(parents=True)
    models = Path(models_dir).resolve() if models_dir else Path("models").resolve()
    site = DemoSite(speed=speed)
    site_url = site.start()
    cfg_path = root / "config.yaml"
    cfg_path.write_text(
        yaml.safe_dump(demo_config(site_url, root, port, models), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    settings = load_settings(cfg_path)
    try:
        serve(
            settings,
            str(cfg_path),
            banner=f"Yuqing demo: the Lanshan water incident, served at {site_url}, unfolding over about a minute.",
        )
    finally:
        site.stop()
    return 0
