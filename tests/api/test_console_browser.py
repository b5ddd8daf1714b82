"""The duty-officer console in a real headless Chromium (Debian's, driven by Playwright).

Logs in with a token, sees an alert arrive live over the stream, opens it (representative
posts, countdown), acknowledges it, searches and sees highlights — and checks that script and
HTML payloads in post text are shown as text and never run. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
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
    # from the alert's evidence to the post itself (labels, corrections)
    cand.locator(".open-post").click()
    page.wait_for_selector("#post-view:not([hidden]) #post-main")
    assert page.inner_text("#post-detail").count("id p0002") == 1

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#alert-detail img").count() == 0
    assert page_errors == []
    context.close()


def expect(locator: Any) -> Any:
    """Playwright's polling assertions: they need no eval in the page (the CSP forbids it, so
    `page.wait_for_function` cannot run here)."""
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def _login(browser: Any, world: World, role: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(15_000)
    page.goto(world.url + "/")
    page.fill("#token", world.tokens[role])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#live.on")
    return context, page, errors


def test_console_saved_searches_post_view_and_corrections(world: World, browser: Any) -> None:
    """An analyst saves the current search, runs it again, deletes it; opens a post from the
    results, corrects its labels and sees the correction (who, when) on the post. The analyst
    sees the configuration read-only and no token screen."""
    ARTIFACTS.mkdir(exist_ok=True)
    context, page, errors = _login(browser, world, "analyst")
    assert page.locator('.tab[data-tab="tokens"]').is_hidden()

    page.click("button[data-tab=search]")
    page.wait_for_selector("#saved-searches:not([hidden])")
    page.fill("#q", "泄漏")
    page.select_option("#f-lang", "zh")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li[data-post-id='p0001'] mark")
    name = "浏览器检索 <b>browser</b>"
    page.fill("#save-name", name)
    page.click("#save-search-form button[type=submit]")
    saved = page.locator("#saved-list li", has_text="browser")
    saved.wait_for()
    assert saved.locator(".run-search").inner_text() == name  # shown as text
    stored = [s for s in world.client("analyst").get("/api/v1/searches").json() if s["name"] == name]
    assert stored and stored[0]["params"]["q"] == "泄漏" and stored[0]["params"]["lang"] == ["zh"]
    # the same name twice: the API's 409 is shown
    page.fill("#save-name", name)
    page.click("#save-search-form button[type=submit]")
    page.wait_for_selector("#saved-error:has-text('already have')")
    # another search, then the saved one brings its query and filters back
    page.fill("#q", "bureau")
    page.select_option("#f-lang", "")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li[data-post-id='p0001']", state="detached")
    saved.locator(".run-search").click()
    page.wait_for_selector("#results li[data-post-id='p0001'] mark")
    assert page.input_value("#q") == "泄漏" and page.input_value("#f-lang") == "zh"

    # a post from the results, corrected
    page.click("#results li[data-post-id='p0001'] .post-text")
    page.wait_for_selector("#post-view:not([hidden]) #post-main")
    assert "泄漏" in page.inner_text("#post-main .post-text")
    page.select_option("#corr-sentiment", "positive")
    page.fill("#corr-topics", "no-such-topic")
    page.click("#correction-form button[type=submit]")
    page.wait_for_selector("#corr-error:has-text('not topics of the configured taxonomy')")
    page.fill("#corr-topics", "pollution, air")
    page.fill("#corr-note", "官方通报证实 <i>confirmed</i>")
    page.click("#correction-form button[type=submit]")
    page.wait_for_selector("#corrections li:has-text('confirmed')")
    first = page.locator("#corrections li").first
    assert "test-analyst" in first.inner_text()
    assert page.locator("#corrections i").count() == 0  # the note is text
    label = page.locator('#post-labels [data-field="sentiment"]')
    assert "corrected" in label.inner_text() and "positive" in label.inner_text()
    assert "air, pollution" in page.inner_text('#post-labels [data-field="topics"]')
    api_view = world.client("viewer").get("/api/v1/posts/p0001").json()
    assert api_view["corrected"]["sentiment"] == "positive"
    assert any(c["actor"] == "test-analyst" and c["note"] == "官方通报证实 <i>confirmed</i>" for c in api_view["corrections"])
    page.screenshot(path=str(ARTIFACTS / "console-post.png"), full_page=True)
    page.click("#post-back")
    page.wait_for_selector("#search-view:not([hidden])")

    # delete the saved search
    saved.locator(".delete-search").click()
    saved.wait_for(state="detached")
    assert not [s for s in world.client("analyst").get("/api/v1/searches").json() if s["name"] == name]

    # configuration: read-only for an analyst, secrets redacted
    page.click("button[data-tab=config]")
    expect(page.locator("#config-text")).to_have_value(re.compile("环保局"))
    assert page.locator("#config-save").is_hidden()
    assert page.get_attribute("#config-text", "readonly") is not None
    page.select_option("#config-section", "channels")
    expect(page.locator("#config-text")).to_have_value(re.compile("duty-wecom"))
    assert "s3cr3t" not in page.input_value("#config-text")
    assert errors == []
    context.close()


def test_console_configuration_and_tokens_for_an_admin(world: World, browser: Any) -> None:
    """An admin edits a section: an invalid one is refused with the validation message shown and
    the file untouched; a valid one is written and in force. Tokens: create (shown once, works),
    revoke (two clicks; the token stops working)."""
    ARTIFACTS.mkdir(exist_ok=True)
    before = world.config_path.read_bytes()
    context, page, errors = _login(browser, world, "admin")
    try:
        page.click("button[data-tab=config]")
        expect(page.locator("#config-text")).to_have_value(re.compile("环保局"))
        assert page.locator("#config-save").is_visible()
        current = json.loads(page.input_value("#config-text"))
        page.fill("#config-text", json.dumps(current + [{"name": current[0]["name"], "terms": ["x"]}], ensure_ascii=False))
        page.click("#config-save")
        page.wait_for_selector("#config-error:has-text('used twice')")
        assert world.config_path.read_bytes() == before
        page.fill("#config-text", "[{not json")
        page.click("#config-save")
        page.wait_for_selector("#config-error:has-text('not valid JSON')")
        added = {"name": "browser-watch", "terms": ["水库", "dam <script>"]}
        page.fill("#config-text", json.dumps(current + [added], ensure_ascii=False))
        page.click("#config-save")
        page.wait_for_selector("#config-status:has-text('saved')")
        assert "browser-watch" in world.config_path.read_text(encoding="utf-8")
        names = [w["name"] for w in world.client("analyst").get("/api/v1/config/watchlists").json()]
        assert "browser-watch" in names
        page.screenshot(path=str(ARTIFACTS / "console-config.png"), full_page=True)
    finally:
        world.config_path.write_bytes(before)
        world.app.state.config.force_check()

    page.click("button[data-tab=tokens]")
    page.wait_for_selector("#tokens-table tr:has-text('test-viewer')")
    page.fill("#token-name", "大屏 dashboard <b>x</b>")
    page.select_option("#token-role", "viewer")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#token-new:not([hidden])")
    token = page.inner_text("#token-new-value").strip()
    assert token.startswith("yq_")
    assert world.client(token=token).get("/api/v1/me").json()["role"] == "viewer"
    row = page.locator("#tokens-table tr", has_text="大屏 dashboard <b>x</b>")
    row.wait_for()
    row.locator("button.revoke").click()
    assert world.client(token=token).get("/api/v1/me").status_code == 200  # the first click only arms it
    row.locator("button.revoke").click()
    row.wait_for(state="detached")
    assert world.client(token=token).get("/api/v1/me").status_code == 401
    page.check("#tokens-revoked")
    page.wait_for_selector("#tokens-table tr.revoked:has-text('dashboard')")
    page.screenshot(path=str(ARTIFACTS / "console-tokens.png"), full_page=True)
    assert errors == []
    context.close()
