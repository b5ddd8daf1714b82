"""The duty-officer console in a real headless Chromium (Debian's, driven by Playwright).

Logs in with a token, sees an alert arrive live over the stream, opens it (representative
posts, countdown), acknowledges it, searches and sees highlights — and checks that script and
HTML payloads in post text are shown as text and never run. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore

from .conftest import XSS_TEXT, World

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; `make browser` does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_console_live_alert_acknowledge_search_and_no_script_runs(world: World, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 950}, locale="zh-CN")
    page = context.new_page()
    page_errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(15_000)

    page.goto(world.url + "/")
    page.fill("#token", "yq_wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('Unknown')")

    page.fill("#token", world.tokens["duty_officer"])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#live.on")
    assert "test-duty_officer" in page.inner_text("#whoami")
    # the token lives in sessionStorage only
    assert page.evaluate("sessionStorage.getItem('yuqing.token')") == world.tokens["duty_officer"]
    assert page.evaluate("localStorage.length") == 0

    # an alert raised after the page loaded arrives over the stream
    aid, _ = world.open_alert(level="red", title="红色预警：化工厂泄漏 <img src=x onerror=alert(1)>",
                              post_ids=("p0002", "p0007", "p0006"))
    item = page.locator(f'.alert-item[data-alert-id="{aid}"]')
    item.wait_for()
    assert item.get_attribute("data-level") == "red" and "level-red" in (item.get_attribute("class") or "")
    assert "<img src=x onerror=alert(1)>" in item.inner_text()  # the title is text, not markup
    assert "statement due in" in item.locator(".countdown").inner_text()

    item.click()
    page.wait_for_selector("#ack")
    detail = page.locator("#alert-detail")
    # representative posts, hostile one included, rendered as text
    texts = detail.locator(".post-text").all_inner_texts()
    assert XSS_TEXT in texts
    arabic = detail.locator('.post-text[lang="ar"]').first
    assert arabic.get_attribute("dir") == "auto"
    assert arabic.evaluate("el => getComputedStyle(el).direction") == "rtl"
    assert detail.locator("#spike-chart canvas").count() == 1  # uPlot drew the spike
    page.screenshot(path=str(ARTIFACTS / "console-alert.png"), full_page=True)

    page.click("#ack")
    item.and_(page.locator('[data-state="acknowledged"]')).wait_for()
    stored = AlertStore(world.engine).get(aid)
    assert stored is not None and stored["state"] == "acknowledged"
    assert stored["acknowledged_by"] == "test-duty_officer"
    page.wait_for_selector("#alert-detail:has-text('test-duty_officer')")

    # search with highlights
    page.click("button[data-tab=search]")
    page.fill("#q", "泄漏")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li[data-post-id='p0001'] mark")
    marks = page.locator("#results mark").all_inner_texts()
    assert marks and all(m == "泄漏" for m in marks)
    hostile = page.locator("#results li[data-post-id='p0007']")
    # the fragment around the hit, markup shown as the characters it is made of
    assert '<img src=x onerror="window.__pwned=2">泄漏' in hostile.locator(".post-text").inner_text()
    assert hostile.locator(".post-title").inner_text() == "<b>标题</b>"
    page.wait_for_selector("#facets li")
    page.wait_for_selector("#volume-chart canvas")
    page.screenshot(path=str(ARTIFACTS / "console-search.png"), full_page=True)

    # nothing injected ran, no element was created from post text
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#results img, #alert-detail img, .feed img, script:not([src])").count() == 0
    assert dialogs == []
    assert page_errors == []
    context.close()


def test_console_opens_alert_from_link_and_saves_a_draft(world: World, browser: Any) -> None:
    """`/?alert=<id>` (the link in every notification) opens that alert; the officer edits the
    draft statement, a stream event re-renders the view without losing the edit, and the save
    is stored with who and when; claim verdicts and "published" work from the view."""
    ARTIFACTS.mkdir(exist_ok=True)
    aid, _ = world.open_alert(level="orange", title="草稿测试 draft test", post_ids=("p0002", "p0007", "p0001"))
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, locale="zh-CN")
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.set_default_timeout(15_000)
    page.goto(world.url + f"/?alert={aid}")
    page.fill("#token", world.tokens["duty_officer"])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#alert-detail h2:has-text('草稿测试')")
    editor = page.locator('#drafts textarea[data-lang="zh"]')
    editor.wait_for()
    assert "市环保局 <Agency>" in editor.input_value()  # the generated draft, agency as text
    assert page.locator("#drafts .draft-info").first.inner_text().startswith("自动生成")

    edited = "【通报】" + XSS_TEXT + " 已派员核查。"
    editor.fill(edited)
    # an event on this alert re-renders the view while the officer types: the edit survives
    AlertStore(world.engine).add_note(aid, "someone-else", "记者来电 press call")
    page.wait_for_selector("#alert-detail .events:has-text('press call')")
    assert editor.input_value() == edited
    page.click("#drafts .draft-save")
    page.wait_for_selector("#drafts .draft-info:has-text('test-duty_officer')")
    r = world.client("analyst").get(f"/api/v1/alerts/{aid}/drafts").json()["drafts"][0]
    assert r["saved"]["text"] == edited and r["saved"]["actor"] == "test-duty_officer"

    # a verdict on a rumour candidate
    cand = page.locator('#alert-detail li[data-post-id="p0002"]')
    cand.locator('button[data-verdict="false"]').click()
    cand.locator(".verdict:has-text('false')").wait_for()
    # statement published, with its link; typing survives a stream event re-rendering the view
    page.fill("#published-url", "https://gov.example/statement/1")
    AlertStore(world.engine).add_note(aid, "someone-else", "第二条 second note")
    page.wait_for_selector("#alert-detail .events:has-text('second note')")
    assert page.input_value("#published-url") == "https://gov.example/statement/1"
    page.click("#published-btn")
    page.wait_for_selector("#statement-link")
    assert AlertStore(world.engine).get(aid)["statement_url"] == "https://gov.example/statement/1"  # type: ignore[index]
    page.screenshot(path=str(ARTIFACTS / "console-draft.png"), full_page=True)

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#alert-detail img").count() == 0
    assert page_errors == []
    context.close()
