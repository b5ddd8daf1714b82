/* Yuqing duty console.
 *
 * Rules this file keeps, because post text is written by the public and is hostile:
 *  - no innerHTML / insertAdjacentHTML / document.write with data: every value goes in through
 *    textContent or a DOM attribute set with setAttribute on a fixed attribute name;
 *  - highlights arrive as escaped text with <em>…</em> around hits; they are split on exactly
 *    those markers and every piece becomes a text node, so any other markup stays visible text;
 *  - links from posts are shown only when they are http(s).
 * The Content-Security-Policy (script-src 'self', no inline) is the second wall.
 *
 * The alert stream is read with fetch() rather than EventSource because EventSource cannot
 * send an Authorization header, and a token in the URL would end up in access logs. The
 * reconnect logic EventSource would give us (Last-Event-ID, retry) is done by hand below.
 */
(function () {
  "use strict";

  const API = "/api/v1";
  const TOKEN_KEY = "yuqing.token";
  const LEVEL_NAME = { blue: "蓝 BLUE", yellow: "黄 YELLOW", orange: "橙 ORANGE", red: "红 RED" };
  const LEVEL_RANK = { blue: 1, yellow: 2, orange: 3, red: 4 };
  const STATE_NAME = { open: "待处置 open", acknowledged: "已确认 acknowledged", resolved: "已处置 resolved" };
  const SENT_NAME = { negative: "负面 negative", neutral: "中性 neutral", positive: "正面 positive" };

  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  };

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    alerts: new Map(), // id -> alert summary
    selected: null,
    lastEventId: null,
    streamAbort: null,
    cursor: null,
    searchParams: null,
    searchSeq: 0,
    volumeChart: null,
  };

  // ---- API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || "HTTP " + status);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(path, opts) {
    const o = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, o.headers || {});
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (o.body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(API + path, {
      method: o.method || "GET",
      headers,
      body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
      cache: "no-store",
      credentials: "omit",
    });
    if (res.status === 401 && state.me) {
      logout("令牌已失效 The token is no longer valid.");
      throw new ApiError(401, null);
    }
    if (o.meta) o.meta.etag = res.headers.get("etag");
    const type = res.headers.get("content-type") || "";
    const body = type.includes("json") ? await res.json() : await res.text();
    if (!res.ok) throw new ApiError(res.status, typeof body === "object" ? body : null);
    return body;
  }

  const qs = (params) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v === null || v === undefined || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
      else u.append(k, v);
    }
    const s = u.toString();
    return s ? "?" + s : "";
  };

  // ---- formatting ----------------------------------------------------------------------------
  const tz = document.body.dataset.timezone || undefined;
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    try {
      return d.toLocaleString("zh-CN", { timeZone: tz, hour12: false, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return d.toISOString();
    }
  }
  function fmtDuration(ms) {
    const s = Math.floor(Math.abs(ms) / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return (h ? h + "h " : "") + pad(m) + "m " + pad(sec) + "s";
  }
  function safeUrl(u) {
    try {
      const url = new URL(u);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  /* Highlight fragments come from the index as HTML-escaped text with <em>…</em> around hits
   * (Elasticsearch's default; the SQLite store produces the same). They are never parsed as
   * HTML: split on exactly those markers, the five entities html.escape produces are decoded,
   * and each piece becomes a text node (hits inside <mark>). Any other markup stays text. */
  const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };
  const decodeEntities = (s) => s.replace(/&(?:amp|lt|gt|quot|#x27|#39);/g, (m) => ENTITIES[m]);
  function appendHighlighted(node, fragment) {
    const parts = String(fragment).split(/(<em>|<\/em>)/);
    let inHit = false;
    for (const p of parts) {
      if (p === "<em>") { inHit = true; continue; }
      if (p === "</em>") { inHit = false; continue; }
      if (!p) continue;
      const text = decodeEntities(p);
      node.append(inHit ? el("mark", { text }) : document.createTextNode(text));
    }
  }

  function levelBadge(level) {
    return el("span", { class: "badge " + level, text: LEVEL_NAME[level] || level });
  }

  function countdown(alert) {
    const span = el("span", { class: "countdown" });
    if (alert.deadline_at && alert.state !== "resolved") span.dataset.deadline = alert.deadline_at;
    tickOne(span);
    return span;
  }
  function tickOne(span) {
    const dl = span.dataset.deadline;
    if (!dl) { span.textContent = ""; return; }
    const left = new Date(dl).getTime() - Date.now();
    span.classList.toggle("overdue", left < 0);
    span.classList.toggle("soon", left >= 0 && left < 30 * 60 * 1000);
    span.textContent = left < 0 ? "首次发声已超时 statement overdue " + fmtDuration(left) : "首次发声 statement due in " + fmtDuration(left);
  }
  setInterval(() => document.querySelectorAll(".countdown[data-deadline]").forEach(tickOne), 1000);

  // ---- login -------------------------------------------------------------------------------
  async function login(token) {
    state.token = token;
    try {
      state.me = await api("/me");
    } catch (e) {
      state.token = null;
      state.me = null;
      sessionStorage.removeItem(TOKEN_KEY);
      throw e;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#whoami").textContent = state.me.name + " · " + state.me.role;
    $("#login-view").hidden = true;
    $("#tabs").hidden = false;
    $("#logout").hidden = false;
    $('.tab[data-tab="config"]').hidden = !may("GET", "/config");
    $('.tab[data-tab="tokens"]').hidden = !may("GET", "/tokens");
    $("#saved-searches").hidden = !may("GET", "/searches");
    showTab("alerts");
    startStream();
    // a link from a notification: /?alert=<id> opens that alert
    const wanted = Number(new URLSearchParams(window.location.search).get("alert"));
    if (Number.isInteger(wanted) && wanted > 0) selectAlert(wanted);
  }

  function logout(message) {
    if (state.streamAbort) state.streamAbort.abort();
    state.streamAbort = null;
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.me = null;
    state.alerts.clear();
    state.selected = null;
    state.drafts = null;
    state.renderedAlert = null;
    state.lastEventId = null;
    $("#feed").replaceChildren();
    $("#alert-detail").replaceChildren(el("p", { class: "muted", text: "选择一条预警 Select an alert." }));
    $("#whoami").textContent = "";
    $("#tabs").hidden = true;
    $("#logout").hidden = true;
    $("#token-new").hidden = true;
    $("#token-new-value").textContent = "";
    $("#config-text").value = "";
    state.searchParams = null;
    document.querySelectorAll(".view").forEach((v) => (v.hidden = true));
    $("#login-view").hidden = false;
    $("#login-error").textContent = message || "";
    setLive("off", "● offline");
  }

  function may(method, path) {
    return !!state.me && state.me.allowed.includes(method + " " + API + path);
  }

  function showTab(name) {
    const tab = name === "post" ? "search" : name; // a post is opened from the search results
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.tab === tab));
    document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== name + "-view"));
    if (name === "sources") loadSources();
    if (name === "search" && !state.searchParams) runSearch();
    if (name === "search" && may("GET", "/searches")) loadSaved();
    if (name === "config") loadConfig();
    if (name === "tokens") loadTokens();
  }

  // ---- alert feed and stream ---------------------------------------------------------------
  function setLive(cls, text) {
    const live = $("#live");
    live.className = "live " + cls;
    live.textContent = text;
  }

  async function loadAlerts() {
    const rows = await api("/alerts" + qs({ limit: 200 }));
    for (const a of rows) state.alerts.set(a.id, a);
    renderFeed();
  }

  function renderFeed() {
    const showResolved = $("#show-resolved").checked;
    const items = [...state.alerts.values()]
      .filter((a) => showResolved || a.state !== "resolved")
      .sort((a, b) => (a.state === "resolved") - (b.state === "resolved") || LEVEL_RANK[b.level] - LEVEL_RANK[a.level] || (b.updated_at > a.updated_at ? 1 : -1));
    const feed = $("#feed");
    feed.replaceChildren(...items.map(feedItem));
    $("#feed-empty").hidden = items.length > 0;
  }

  function feedItem(a) {
    const li = el(
      "li",
      {
        class: "alert-item level-" + a.level + " " + a.state + (a.id === state.selected ? " selected" : "") + (a._fresh ? " fresh" : ""),
        tabindex: "0",
        "data-alert-id": a.id,
        "data-level": a.level,
        "data-state": a.state,
        onclick: () => selectAlert(a.id),
        onkeydown: (e) => { if (e.key === "Enter") selectAlert(a.id); },
      },
      el("div", { class: "row" }, levelBadge(a.level), el("span", { class: "badge state", text: STATE_NAME[a.state] || a.state })),
      el("div", { class: "title", dir: "auto", text: a.title }),
      el("div", { class: "row muted" }, el("span", { text: (a.watchlist || "") + " · " + fmtTime(a.opened_at) }), countdown(a))
    );
    a._fresh = false;
    return li;
  }

  function parseSSE(buffer, onEvent) {
    // events are separated by a blank line; returns the unparsed tail
    const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
    const tail = blocks.pop();
    for (const block of blocks) {
      const ev = { id: null, event: "message", data: [] };
      for (const line of block.split(/\r\n|\n|\r/)) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? "" : line.slice(i + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "id") ev.id = value;
        else if (field === "event") ev.event = value;
        else if (field === "data") ev.data.push(value);
      }
      if (ev.data.length || ev.id !== null) onEvent(ev);
    }
    return tail;
  }

  async function startStream() {
    if (state.streamAbort) state.streamAbort.abort();
    const ctrl = new AbortController();
    state.streamAbort = ctrl;
    let delay = 1000;
    let listLoaded = false;
    while (!ctrl.signal.aborted && state.token) {
      setLive("wait", "● connecting…");
      try {
        const headers = { Authorization: "Bearer " + state.token, Accept: "text/event-stream" };
        if (state.lastEventId !== null) headers["Last-Event-ID"] = state.lastEventId;
        const res = await fetch(API + "/alerts/stream", { headers, signal: ctrl.signal, cache: "no-store", credentials: "omit" });
        if (res.status === 401) { logout("令牌已失效 The token is no longer valid."); return; }
        if (!res.ok || !res.body) throw new Error("stream HTTP " + res.status);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf = parseSSE(buf + value, (ev) => {
            if (ev.id !== null && ev.id !== "") state.lastEventId = ev.id;
            if (ev.event === "hello") {
              setLive("on", "● 实时 live");
              delay = 1000;
              // the list is loaded after the stream holds its position, so nothing falls between
              if (!listLoaded) { listLoaded = true; loadAlerts().catch(showError); }
              return;
            }
            onAlertEvent(ev.event, JSON.parse(ev.data.join("\n")));
          });
        }
      } catch (e) {
        if (ctrl.signal.aborted) return;
      }
      setLive("off", "● 重连中 reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  function onAlertEvent(kind, data) {
    const a = data.alert;
    if (!a) return;
    const known = state.alerts.has(a.id);
    a._fresh = !known || kind === "escalated" || kind === "reopened";
    state.alerts.set(a.id, a);
    renderFeed();
    if (state.selected === a.id) selectAlert(a.id, true);
  }

  // ---- alert view --------------------------------------------------------------------------
  async function selectAlert(id, quiet) {
    if (state.selected !== id) state.drafts = null;
    state.selected = id;
    if (!quiet) {
      const u = new URL(window.location.href);
      u.searchParams.set("alert", String(id));
      history.replaceState(null, "", u.pathname + u.search);
    }
    document.querySelectorAll(".alert-item").forEach((n) => n.classList.toggle("selected", Number(n.dataset.alertId) === id));
    const box = $("#alert-detail");
    if (!quiet) box.replaceChildren(el("p", { class: "muted", text: "…" }));
    try {
      const a = await api("/alerts/" + id);
      if (state.selected === id) renderAlert(a);
    } catch (e) {
      box.replaceChildren(el("p", { class: "error", text: e.message }));
    }
  }

  function fact(label, value) {
    return el("div", { class: "fact" }, el("b", { text: value }), el("span", { class: "muted", text: label }));
  }

  function renderAlert(a) {
    const box = $("#alert-detail");
    const f = a.figures || {};
    const ev = a.evidence || {};
    const num = (x, d) => (x === null || x === undefined ? "—" : Number(x).toFixed(d === undefined ? 0 : d));
    const actions = el("div", { class: "actions" });
    if (a.state === "open" && may("POST", "/alerts/{alert_id}/acknowledge")) {
      actions.append(el("button", { type: "button", class: "primary", id: "ack", "data-action": "acknowledge", onclick: () => act(a.id, "acknowledge") }, "确认接手 Acknowledge"));
    }
    if (a.state !== "resolved" && may("POST", "/alerts/{alert_id}/resolve")) {
      const reason = el("input", { type: "text", id: "resolve-reason", placeholder: "处置说明 reason for resolving", dir: "auto", maxlength: "2000" });
      const fp = el("input", { type: "checkbox", id: "resolve-fp" });
      const snooze = el("select", { id: "resolve-snooze", "aria-label": "snooze" },
        el("option", { value: "" }, "不静默 no snooze"), el("option", { value: "6h" }, "静默 6h"),
        el("option", { value: "1d" }, "静默 1d"), el("option", { value: "7d" }, "静默 7d"));
      actions.append(reason, el("label", { class: "inline" }, fp, "误报 false positive"), snooze,
        el("button", { type: "button", class: "danger", "data-action": "resolve", onclick: () => {
          if (!reason.value.trim()) { reason.focus(); return; }
          act(a.id, "resolve", { reason: reason.value.trim(), false_positive: fp.checked, snooze: snooze.value || null });
        } }, "处置完毕 Resolve"));
    }
    const children = [
      el("div", { class: "row" }, levelBadge(a.level), " ", el("span", { class: "badge state", text: STATE_NAME[a.state] || a.state }), " ", countdown(a)),
      el("h2", { dir: "auto", text: a.title }),
      el("p", { class: "explain", text: f.explain || "" }),
      el("div", { class: "facts" },
        fact("observed 窗口内", num(f.observed)),
        fact("expected 基线", num(f.expected, 1)),
        fact("ratio 倍数", num(f.ratio, 1) + "×"),
        fact("negative 负面占比", f.negative_share === null || f.negative_share === undefined ? "—" : Math.round(f.negative_share * 100) + "%"),
        fact("opened 首次", fmtTime(a.opened_at)),
        fact("acknowledged 确认", a.acknowledged_by ? a.acknowledged_by + " " + fmtTime(a.acknowledged_at) : "—"),
        fact("published 已发声", a.published_at ? (a.published_by || "") + " " + fmtTime(a.published_at) : "—"),
        fact("next update 下次通报", a.next_update_at ? fmtTime(a.next_update_at) : "—")
      ),
      a.statement_url && safeUrl(a.statement_url)
        ? el("p", {}, el("a", { href: safeUrl(a.statement_url), rel: "noopener noreferrer nofollow", target: "_blank", id: "statement-link", text: safeUrl(a.statement_url) }))
        : null,
      actions,
      el("p", { id: "action-error", class: "error", role: "alert" }),
    ];
    if (ev.series && ev.series.length) {
      const chart = el("div", { class: "chart", id: "spike-chart" });
      children.push(el("h3", { text: "走势 Volume vs baseline" }), chart);
      requestAnimationFrame(() => drawSpike(chart, ev));
    }
    if (ev.posts && ev.posts.length) {
      children.push(el("h3", { text: "代表性帖文 Representative posts" }), el("ol", { class: "posts" }, ...ev.posts.map(evidencePost)));
    }
    if (ev.rumor_candidates && ev.rumor_candidates.length) {
      const verdicts = claimVerdicts(a.events);
      const canJudge = may("POST", "/alerts/{alert_id}/claims");
      children.push(el("h3", { text: "疑似谣言 Rumour candidates (unverified until an officer decides)" }), el("ol", { class: "posts" },
        ...ev.rumor_candidates.map((p) => {
          const li = evidencePost(p);
          li.dataset.postId = p.id;
          const v = verdicts[p.id] || "unverified";
          const row = el("div", { class: "actions claim" }, el("span", { class: "badge state verdict", text: VERDICT_NAME[v] }));
          if (canJudge) {
            for (const k of ["false", "true", "unverified"]) {
              if (k !== v) row.append(el("button", { type: "button", "data-verdict": k, onclick: () => act(a.id, "claims", { post_id: p.id, verdict: k }) }, VERDICT_NAME[k]));
            }
          }
          li.append(row);
          return li;
        })));
    }
    if (may("GET", "/alerts/{alert_id}/drafts")) children.push(draftsPanel(a));
    if (may("POST", "/alerts/{alert_id}/published")) {
      const url = el("input", { type: "url", id: "published-url", placeholder: "声明链接 link to the published statement (https://…)", maxlength: "2000" });
      children.push(el("div", { class: "actions" }, url, el("button", { type: "button", id: "published-btn", onclick: () => {
        if (!safeUrl(url.value.trim())) { url.focus(); return; }
        act(a.id, "published", { url: url.value.trim() });
      } }, "已发布声明 Statement published")));
    }
    if (may("POST", "/alerts/{alert_id}/notes")) {
      const note = el("input", { type: "text", id: "note-text", placeholder: "备注 add a note", dir: "auto", maxlength: "5000" });
      children.push(el("div", { class: "actions" }, note, el("button", { type: "button", onclick: () => {
        if (note.value.trim()) act(a.id, "notes", { text: note.value.trim() });
      } }, "添加 Add note")));
    }
    if (a.events && a.events.length) {
      children.push(el("h3", { text: "处置记录 History" }), el("ol", { class: "events" }, ...a.events.map((e) => el("li", {},
        el("span", { class: "muted", text: fmtTime(e.at) + " · " + e.kind + (e.actor ? " · " + e.actor : "") }),
        e.payload && (e.payload.text || e.payload.reason) ? el("div", { dir: "auto", text: e.payload.text || e.payload.reason }) : null,
        e.kind === "claim" && e.payload ? el("div", { text: e.payload.post_id + " → " + (VERDICT_NAME[e.payload.verdict] || e.payload.verdict) }) : null,
        e.kind === "published" && e.payload && e.payload.url ? el("div", { dir: "auto", text: e.payload.url }) : null,
        e.kind === "resolved" && e.payload && e.payload.false_positive ? el("div", { text: "误报 false positive" + (e.payload.snooze_until ? " · snoozed until " + fmtTime(e.payload.snooze_until) : "") }) : null
      ))));
    }
    // the stream re-renders this view on every event of the alert: what the officer is typing
    // (reason, note, link) and where the cursor is survive it
    const kept = {};
    let focused = null;
    if (state.renderedAlert === a.id) {
      box.querySelectorAll("input[id], select[id]").forEach((n) => { kept[n.id] = n.type === "checkbox" ? n.checked : n.value; });
      if (document.activeElement && box.contains(document.activeElement)) focused = document.activeElement.id || null;
    }
    box.replaceChildren(...children);
    state.renderedAlert = a.id;
    for (const [id, v] of Object.entries(kept)) {
      const n = document.getElementById(id);
      if (!n) continue;
      if (n.type === "checkbox") n.checked = v; else n.value = v;
    }
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  }

  const VERDICT_NAME = { false: "不实 false", true: "属实 true", unverified: "未核实 unverified" };

  function claimVerdicts(events) {
    const out = {};
    for (const e of events || []) if (e.kind === "claim" && e.payload) out[e.payload.post_id] = e.payload.verdict;
    return out;
  }

  /* The draft statements. The panel is built once per alert and kept across re-renders (the
   * stream re-renders the alert view on every event): an officer's unsaved text is never lost. */
  function draftsPanel(a) {
    if (state.drafts && state.drafts.alertId === a.id) return state.drafts.node;
    const node = el("section", { id: "drafts", class: "drafts" }, el("h3", { text: "声明草稿 Draft holding statement" }), el("p", { class: "muted", text: "…" }));
    state.drafts = { alertId: a.id, node };
    loadDrafts(a.id, node);
    return node;
  }

  async function loadDrafts(id, node) {
    try {
      const r = await api("/alerts/" + id + "/drafts");
      if (!state.drafts || state.drafts.node !== node) return;
      node.replaceChildren(el("h3", { text: "声明草稿 Draft holding statement" }), ...r.drafts.map((d) => draftEditor(id, d)));
    } catch (e) {
      node.replaceChildren(el("h3", { text: "声明草稿 Draft holding statement" }), el("p", { class: "error", text: e.message }));
    }
  }

  function draftEditor(id, d) {
    const canEdit = may("PUT", "/alerts/{alert_id}/draft");
    let baseId = d.saved ? d.saved.id : null;
    const info = el("p", { class: "muted draft-info" });
    const showInfo = (saved) => {
      info.textContent = saved ? "已保存 saved by " + saved.actor + " · " + fmtTime(saved.at) + " · v" + saved.id : "自动生成，未保存 generated from the evidence, not saved yet";
    };
    showInfo(d.saved);
    const text = el("textarea", { class: "draft-text", "data-lang": d.lang, lang: d.lang, dir: d.direction, rows: "10", maxlength: "20000" });
    text.value = d.saved ? d.saved.text : d.generated;
    if (!canEdit) text.setAttribute("readonly", "");
    const err = el("p", { class: "error draft-error", role: "alert" });
    const box = el("div", { class: "draft", "data-lang": d.lang }, el("h4", { text: d.lang }), info, text);
    if (d.placeholders && d.placeholders.length) box.append(el("p", { class: "hint", text: "待填 to fill: " + d.placeholders.join(" · ") }));
    if (canEdit) {
      const save = el("button", { type: "button", class: "primary draft-save", onclick: async () => {
        err.textContent = "";
        if (!text.value.trim()) { text.focus(); return; }
        save.disabled = true;
        try {
          const saved = await api("/alerts/" + id + "/draft", { method: "PUT", body: { lang: d.lang, text: text.value, base_id: baseId } });
          baseId = saved.id;
          showInfo(saved);
        } catch (e) {
          err.textContent = e.message;
        } finally {
          save.disabled = false;
        }
      } }, "保存草稿 Save draft");
      // fetched afresh: an officer's claim verdict changes the generated wording
      const regen = el("button", { type: "button", class: "draft-regen", onclick: async () => {
        try {
          const r = await api("/alerts/" + id + "/drafts");
          const fresh = r.drafts.find((x) => x.lang === d.lang);
          text.value = fresh ? fresh.generated : d.generated;
        } catch (e) {
          err.textContent = e.message;
        }
      } }, "恢复生成稿 Use generated text");
      box.append(el("div", { class: "actions" }, save, regen), err);
    }
    return box;
  }

  async function act(id, action, body) {
    // the drafts panel survives re-renders: leave its buttons alone
    const buttons = [...document.querySelectorAll("#alert-detail button")].filter((b) => !b.closest("#drafts"));
    buttons.forEach((b) => (b.disabled = true));
    try {
      const a = await api("/alerts/" + id + "/" + action, { method: "POST", body: body || {} });
      const used = { notes: ["note-text"], resolve: ["resolve-reason"], published: ["published-url"] }[action] || [];
      used.forEach((i) => { const n = document.getElementById(i); if (n) n.value = ""; });
      const prev = state.alerts.get(id) || {};
      state.alerts.set(id, Object.assign(prev, a, { evidence: undefined, events: undefined }));
      renderFeed();
      await selectAlert(id, true);
    } catch (e) {
      const err = $("#action-error");
      if (err) err.textContent = e.message;
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function evidencePost(p) {
    const li = postNode({
      title: p.title, text: p.text, url: p.url, lang: p.lang, source: p.source, published_at: p.published_at,
      sentiment: p.sentiment, rumor: p.rumor, cluster_size: p.cluster_size, why: p.why, reach: p.reach,
    });
    // the post itself: its thread, its labels and the corrections analysts made
    li.append(el("button", { type: "button", class: "open-post", onclick: () => openPost(p.id) }, "帖文详情 Post details"));
    return li;
  }

  /* One post, every field through textContent. `hl` holds highlight fragments for title/text. */
  function postNode(p, hl) {
    const li = $("#tpl-post").content.firstElementChild.cloneNode(true);
    const lang = p.lang || "";
    $(".src", li).textContent = p.source || "";
    const t = $("time", li);
    t.textContent = fmtTime(p.published_at);
    if (p.published_at) t.setAttribute("datetime", p.published_at);
    $(".lang", li).textContent = lang;
    const badges = $(".badges", li);
    if (p.sentiment) badges.append(el("span", { class: "badge " + (p.sentiment === "negative" ? "neg" : p.sentiment === "positive" ? "pos" : "state"), text: SENT_NAME[p.sentiment] || p.sentiment }), " ");
    if (p.rumor !== null && p.rumor !== undefined && p.rumor >= 0.5) badges.append(el("span", { class: "badge rumor", text: "谣言? rumour " + Math.round(p.rumor * 100) + "%" }), " ");
    if (p.cluster_size > 1) badges.append(el("span", { class: "badge state", text: "×" + p.cluster_size }), " ");
    if (p.why && p.why.length) badges.append(el("span", { class: "muted", text: p.why.join(", ") }));
    const title = $(".post-title", li);
    const text = $(".post-text", li);
    if (lang) { title.setAttribute("lang", lang); text.setAttribute("lang", lang); }
    const htitle = hl && hl.title && hl.title[0];
    const htext = hl && hl.text && hl.text.length ? hl.text.join(" … ") : null;
    if (htitle) appendHighlighted(title, htitle); else if (p.title) title.textContent = p.title; else title.remove();
    if (htext) appendHighlighted(text, htext); else text.textContent = p.text || "";
    const url = p.url && safeUrl(p.url);
    const a = $(".post-url", li);
    if (url) { a.setAttribute("href", url); a.textContent = url; } else a.remove();
    return li;
  }

  // charts speak the configured zone, like every time printed on the page
  const tzDate = (ts) => (tz && window.uPlot.tzDate ? window.uPlot.tzDate(new Date(ts * 1e3), tz) : new Date(ts * 1e3));

  function drawSpike(container, ev) {
    if (!window.uPlot) return;
    const xs = ev.series.map((p) => new Date(p.t).getTime() / 1000);
    const data = [xs, ev.series.map((p) => p.total), ev.series.map((p) => p.negative), xs.map(() => ev.expected_per_interval)];
    const opts = {
      tzDate, width: Math.max(300, container.clientWidth - 10), height: 200,
      series: [{}, { label: "total 全部", stroke: "#60a5fa", width: 2 }, { label: "negative 负面", stroke: "#f87171", width: 2 },
        { label: "baseline 基线", stroke: "#9ca3af", dash: [6, 4], width: 1 }],
      axes: [{ stroke: "#9aa8b6", grid: { stroke: "#2c3947" } }, { stroke: "#9aa8b6", grid: { stroke: "#2c3947" } }],
    };
    container.replaceChildren();
    new window.uPlot(opts, data, container);
  }

  // ---- search ------------------------------------------------------------------------------
  function localToIso(v) {
    return v ? new Date(v).toISOString() : null; // datetime-local is the browser's zone
  }

  function searchParamsFromForm() {
    return {
      q: $("#q").value.trim() || null,
      lang: $("#f-lang").value || null,
      sentiment: $("#f-sentiment").value || null,
      sort: $("#f-sort").value,
      start: localToIso($("#f-start").value),
      end: localToIso($("#f-end").value),
    };
  }

  async function runSearch(more) {
    if (!more) { state.searchParams = searchParamsFromForm(); state.cursor = null; }
    const seq = ++state.searchSeq; // a slower, older answer must not replace a newer one
    const p = Object.assign({}, state.searchParams, { size: 20, cursor: more ? state.cursor : null, highlight: "true" });
    const results = $("#results");
    try {
      const page = await api("/posts" + qs(p));
      if (seq !== state.searchSeq) return;
      if (!more) results.replaceChildren();
      for (const h of page.hits) {
        const post = h.post;
        const c = post.classification || {};
        const li = postNode({
          title: post.title, text: post.text, url: post.url, lang: post.lang, source: post.source,
          published_at: post.published_at, sentiment: c.sentiment, rumor: c.rumor, cluster_size: post.cluster_size,
        }, h.highlights);
        li.dataset.postId = post.id;
        li.addEventListener("click", (e) => { if (!e.target.closest("a")) openPost(post.id); });
        results.append(li);
      }
      state.cursor = page.next_cursor;
      $("#more").hidden = !page.next_cursor;
      $("#result-count").textContent = "共 " + page.total + " 条 · " + page.total + " posts";
      if (!more) { loadFacets(); loadVolume(); }
    } catch (e) {
      showError(e);
    }
  }

  function filtersOnly() {
    const s = state.searchParams || {};
    return { q: s.q, lang: s.lang, sentiment: s.sentiment, start: s.start, end: s.end };
  }

  async function loadFacets() {
    const box = $("#facets");
    const fields = [["sentiment", "情感 sentiment"], ["lang", "语言 language"], ["source", "信源 source"], ["topic", "话题 topic"], ["term", "热词 terms"]];
    const blocks = await Promise.all(fields.map(async ([field, label]) => {
      try {
        const r = await api("/stats/terms" + qs(Object.assign(filtersOnly(), { field, size: 8 })));
        return el("div", {}, el("h4", { text: label }), el("ul", {}, ...r.buckets.map((b) => el("li", {}, el("span", { dir: "auto", text: b.value }), el("span", { class: "muted", text: b.count })))));
      } catch (e) {
        return null;
      }
    }));
    box.replaceChildren(...blocks.filter(Boolean));
  }

  async function loadVolume() {
    const box = $("#volume-chart");
    const f = filtersOnly();
    // the widest interval first; a story that lives within a day gets hours, then minutes
    let intervals = ["1d", "1h", "5m"];
    if (f.start && f.end) {
      const hours = (new Date(f.end) - new Date(f.start)) / 3600e3;
      intervals = [hours <= 6 ? "5m" : hours <= 72 ? "1h" : "1d"];
    }
    try {
      let v = null;
      for (const interval of intervals) {
        v = await api("/stats/volume" + qs(Object.assign({}, f, { interval, split_by: "sentiment" })));
        if (v.buckets.filter((b) => b.count).length >= 3) break;
      }
      if (!window.uPlot || !v.buckets.length) { box.replaceChildren(el("p", { class: "muted", text: "—" })); return; }
      const xs = v.buckets.map((b) => new Date(b.start).getTime() / 1000);
      const col = (k) => v.buckets.map((b) => (b.split && b.split[k]) || 0);
      const opts = {
        tzDate, width: Math.max(300, box.clientWidth - 20), height: 180,
        series: [{}, { label: "total 全部", stroke: "#60a5fa", width: 2 }, { label: "negative 负面", stroke: "#f87171", width: 2 }, { label: "positive 正面", stroke: "#4ade80", width: 1 }],
        axes: [{ stroke: "#9aa8b6", grid: { stroke: "#2c3947" } }, { stroke: "#9aa8b6", grid: { stroke: "#2c3947" } }],
      };
      box.replaceChildren();
      new window.uPlot(opts, [xs, v.buckets.map((b) => b.count), col("negative"), col("positive")], box);
    } catch (e) {
      box.replaceChildren(el("p", { class: "error", text: e.message }));
    }
  }

  // ---- sources -----------------------------------------------------------------------------
  async function loadSources() {
    const body = $("#sources-table tbody");
    try {
      const rows = await api("/sources/health");
      body.replaceChildren(...rows.map((s) => el("tr", {},
        el("td", { text: s.name }),
        el("td", { class: "st-" + s.status, text: s.status }),
        el("td", { text: fmtTime(s.last_success) || "—" }),
        el("td", { text: s.runs }), el("td", { text: s.errors }), el("td", { text: s.items_total }),
        el("td", { dir: "auto", text: s.last_error || "" })
      )));
    } catch (e) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "error", text: e.message })));
    }
  }

  function showError(e) {
    const err = $("#result-count");
    if (err) err.textContent = "错误 error: " + e.message;
  }

  /* Problem details as text: the detail, then one line per parameter it names. */
  function problemNodes(e) {
    const out = [el("p", { text: e.message })];
    const errs = (e.problem && e.problem.errors) || [];
    if (errs.length) out.push(el("ul", {}, ...errs.map((x) => el("li", { dir: "auto", text: x.param + " (" + x.location + "): " + x.message }))));
    return out;
  }

  // ---- one post, its corrections -------------------------------------------------------------
  const CORR_FIELD = { sentiment: "情感 sentiment", topics: "话题 topics", rumor: "谣言 rumour" };
  const fmtLabel = (field, v) => {
    if (v === null || v === undefined) return "—";
    if (field === "topics") return Array.isArray(v) && v.length ? v.join(", ") : "(none)";
    if (field === "rumor") return typeof v === "boolean" ? (v ? "谣言 rumour" : "非谣言 not a rumour") : Math.round(v * 100) + "%";
    return SENT_NAME[v] || String(v);
  };

  async function openPost(id) {
    state.postId = id;
    showTab("post");
    const box = $("#post-detail");
    box.replaceChildren(el("p", { class: "muted", text: "…" }));
    try {
      const ctx = await api("/posts/" + encodeURIComponent(id));
      if (state.postId === id) renderPost(ctx);
    } catch (e) {
      box.replaceChildren(...problemNodes(e));
    }
  }

  function postFromRecord(post) {
    const c = post.classification || {};
    return postNode({ title: post.title, text: post.text, url: post.url, lang: post.lang, source: post.source,
      published_at: post.published_at, sentiment: c.sentiment, rumor: c.rumor, cluster_size: post.cluster_size });
  }

  function renderPost(ctx) {
    const post = ctx.post;
    const c = post.classification || {};
    const model = { sentiment: c.sentiment, topics: (c.topics || []).map((t) => t.topic), rumor: c.rumor };
    const fixed = ctx.corrected || {};
    const main = postFromRecord(post);
    main.id = "post-main";
    const children = [el("ol", { class: "posts" }, main)];
    children.push(el("div", { class: "facts", id: "post-labels" }, ...["sentiment", "topics", "rumor"].map((f) => {
      const corrected = fixed[f] !== null && fixed[f] !== undefined;
      const node = fact(CORR_FIELD[f] + (corrected ? " · 已更正 corrected" : " · 模型 model"), fmtLabel(f, corrected ? fixed[f] : model[f]));
      node.dataset.field = f;
      if (corrected) node.classList.add("corrected");
      return node;
    })));
    children.push(el("p", { class: "muted", text: "id " + post.id + " · " + (post.platform || "") + " · " + (post.author && (post.author.name || post.author.id) || "") +
      (post.watchlists && post.watchlists.length ? " · " + post.watchlists.join(", ") : "") }));
    if (ctx.reply_to) children.push(el("h3", { text: "回复 In reply to" }), el("ol", { class: "posts" }, postFromRecord(ctx.reply_to)));
    if (ctx.repost_of) children.push(el("h3", { text: "转发自 Repost of" }), el("ol", { class: "posts" }, postFromRecord(ctx.repost_of)));
    children.push(el("h3", { text: "人工更正 Corrections" }));
    const list = ctx.corrections || [];
    children.push(list.length
      ? el("ol", { class: "corrections", id: "corrections" }, ...list.map((k) => el("li", { "data-field": k.field },
          el("div", { text: CORR_FIELD[k.field] + ": " + fmtLabel(k.field, k.previous) + " → " + fmtLabel(k.field, k.value) }),
          el("div", { class: "muted", text: k.actor + " · " + fmtTime(k.at) }),
          k.note ? el("div", { dir: "auto", text: k.note }) : null)))
      : el("p", { class: "muted", id: "corrections", text: "无 none" }));
    if (may("POST", "/posts/{post_id}/corrections")) children.push(correctionForm(post.id));
    $("#post-detail").replaceChildren(...children);
  }

  function correctionForm(id) {
    const sent = el("select", { id: "corr-sentiment", "aria-label": "sentiment" }, el("option", { value: "" }, "情感不变 sentiment unchanged"),
      ...Object.entries(SENT_NAME).map(([k, v]) => el("option", { value: k }, v)));
    const rumor = el("select", { id: "corr-rumor", "aria-label": "rumour" }, el("option", { value: "" }, "谣言不变 rumour unchanged"),
      el("option", { value: "true" }, "是谣言 is a rumour"), el("option", { value: "false" }, "不是谣言 not a rumour"));
    const topics = el("input", { type: "text", id: "corr-topics", placeholder: "话题 topics, comma-separated (blank: unchanged)", dir: "auto", maxlength: "2000" });
    const note = el("input", { type: "text", id: "corr-note", placeholder: "理由 why", dir: "auto", maxlength: "2000" });
    const err = el("div", { class: "error", id: "corr-error", role: "alert" });
    const form = el("form", { class: "inline-form", id: "correction-form" }, sent, rumor, topics, note,
      el("button", { type: "submit", class: "primary" }, "提交更正 Correct"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.replaceChildren();
      const body = {};
      if (sent.value) body.sentiment = sent.value;
      if (rumor.value) body.rumor = rumor.value === "true";
      if (topics.value.trim()) body.topics = topics.value.split(/[,，、]/).map((t) => t.trim()).filter(Boolean);
      if (note.value.trim()) body.note = note.value.trim();
      try {
        await api("/posts/" + encodeURIComponent(id) + "/corrections", { method: "POST", body });
        await openPost(id);
      } catch (ex) {
        err.replaceChildren(...problemNodes(ex));
      }
    });
    return el("section", { class: "correct" }, el("h3", { text: "更正标签 Correct the labels" }), form, err);
  }

  // ---- saved searches ------------------------------------------------------------------------
  const asList = (v) => (v ? [v] : undefined);
  function isoToLocal(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  async function loadSaved() {
    const list = $("#saved-list");
    try {
      const rows = await api("/searches");
      list.replaceChildren(...rows.map((s) => el("li", { "data-search-id": s.id },
        el("button", { type: "button", class: "run-search", title: JSON.stringify(s.params), onclick: () => runSaved(s) },
          el("span", { dir: "auto", text: s.name })),
        el("span", { class: "muted", text: s.owner + (s.shared ? " · 共享 shared" : "") }),
        s.owner === (state.me && state.me.name) || (state.me && state.me.role === "admin")
          ? el("button", { type: "button", class: "delete-search", "aria-label": "delete", onclick: () => deleteSaved(s.id) }, "✕")
          : null)));
    } catch (e) {
      $("#saved-error").replaceChildren(...problemNodes(e));
    }
  }

  function runSaved(s) {
    const p = s.params || {};
    $("#q").value = p.q || "";
    $("#f-lang").value = (p.lang && p.lang[0]) || "";
    $("#f-sentiment").value = (p.sentiment && p.sentiment[0]) || "";
    $("#f-sort").value = p.sort || "time";
    $("#f-start").value = isoToLocal(p.start);
    $("#f-end").value = isoToLocal(p.end);
    runSearch(false);
  }

  async function saveSearch() {
    const err = $("#saved-error");
    err.replaceChildren();
    const f = searchParamsFromForm();
    const params = { q: f.q || undefined, lang: asList(f.lang), sentiment: asList(f.sentiment), sort: f.sort,
      start: f.start || undefined, end: f.end || undefined };
    try {
      await api("/searches", { method: "POST", body: { name: $("#save-name").value.trim(), params, shared: $("#save-shared").checked } });
      $("#save-name").value = "";
      await loadSaved();
    } catch (e) {
      err.replaceChildren(...problemNodes(e));
    }
  }

  async function deleteSaved(id) {
    try {
      await api("/searches/" + id, { method: "DELETE" });
      await loadSaved();
    } catch (e) {
      $("#saved-error").replaceChildren(...problemNodes(e));
    }
  }

  // ---- configuration -------------------------------------------------------------------------
  async function loadConfig() {
    const section = $("#config-section").value;
    const canWrite = may("PUT", "/config/" + section);
    $("#config-save").hidden = !canWrite;
    const text = $("#config-text");
    text.readOnly = !canWrite;
    $("#config-error").replaceChildren();
    $("#config-status").textContent = "";
    try {
      const all = await api("/config");
      $("#config-meta").textContent = (all.file ? "文件 file " + all.file : "未从文件读取，只读 not read from a file (read-only)") +
        " · version " + (all.version || "—") + " · loaded " + fmtTime(all.loaded_at);
      $("#config-file-error").textContent = all.error ? "文件最新修改未生效 the file's latest change was not applied: " + all.error : "";
      const meta = {};
      const value = await api("/config/" + section, { meta });
      if ($("#config-section").value !== section) return;
      state.configEtag = meta.etag;
      text.value = JSON.stringify(value, null, 2);
    } catch (e) {
      $("#config-error").replaceChildren(...problemNodes(e));
    }
  }

  async function saveConfig() {
    const section = $("#config-section").value;
    const box = $("#config-error");
    box.replaceChildren();
    let body;
    try {
      body = JSON.parse($("#config-text").value);
    } catch (e) {
      box.replaceChildren(el("p", { text: "不是有效的 JSON not valid JSON: " + e.message }));
      return;
    }
    const meta = {};
    const headers = state.configEtag ? { "If-Match": state.configEtag } : {};
    $("#config-save").disabled = true;
    try {
      const saved = await api("/config/" + section, { method: "PUT", body, headers, meta });
      state.configEtag = meta.etag;
      $("#config-text").value = JSON.stringify(saved, null, 2);
      $("#config-status").textContent = "已保存并生效 saved and in force · " + fmtTime(new Date().toISOString());
    } catch (e) {
      box.replaceChildren(...problemNodes(e));
      if (e.status === 412) box.append(el("p", { text: "文件已被修改，请重新读取 The file changed since you read it: reload, then re-apply your edit." }));
    } finally {
      $("#config-save").disabled = false;
    }
  }

  // ---- tokens --------------------------------------------------------------------------------
  async function loadTokens() {
    const body = $("#tokens-table tbody");
    try {
      const rows = await api("/tokens" + qs({ include_revoked: $("#tokens-revoked").checked ? "true" : null }));
      body.replaceChildren(...rows.map((t) => {
        const revoke = t.revoked_at ? null : el("button", { type: "button", class: "danger revoke", onclick: async () => {
          if (revoke.dataset.armed !== "1") { revoke.dataset.armed = "1"; revoke.textContent = "确认吊销 Confirm revoke"; return; }
          try {
            await api("/tokens/" + t.id, { method: "DELETE" });
            await loadTokens();
          } catch (e) {
            $("#token-error").replaceChildren(...problemNodes(e));
          }
        } }, "吊销 Revoke");
        return el("tr", { "data-token-id": t.id, class: t.revoked_at ? "revoked" : "" },
          el("td", { text: t.id }), el("td", { dir: "auto", text: t.name }), el("td", { text: t.role }),
          el("td", { text: fmtTime(t.created_at) }), el("td", { text: t.revoked_at ? fmtTime(t.revoked_at) : "" }), el("td", {}, revoke));
      }));
    } catch (e) {
      $("#token-error").replaceChildren(...problemNodes(e));
    }
  }

  async function createToken() {
    $("#token-error").replaceChildren();
    try {
      const t = await api("/tokens", { method: "POST", body: { name: $("#token-name").value.trim(), role: $("#token-role").value } });
      $("#token-new-value").textContent = t.token;
      $("#token-new").hidden = false;
      $("#token-name").value = "";
      await loadTokens();
    } catch (e) {
      $("#token-error").replaceChildren(...problemNodes(e));
    }
  }

  // ---- wiring ------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("#login-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      $("#login-error").textContent = "";
      try {
        await login($("#token").value.trim());
        $("#token").value = "";
      } catch (err) {
        $("#login-error").textContent = err.status === 401 ? "令牌无效 Unknown or revoked token." : err.message;
      }
    });
    $("#logout").addEventListener("click", () => logout());
    document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showTab(t.dataset.tab)));
    $("#show-resolved").addEventListener("change", renderFeed);
    $("#search-form").addEventListener("submit", (e) => { e.preventDefault(); runSearch(false); });
    $("#more").addEventListener("click", () => runSearch(true));
    $("#post-back").addEventListener("click", () => showTab("search"));
    $("#save-search-form").addEventListener("submit", (e) => { e.preventDefault(); saveSearch(); });
    $("#config-section").addEventListener("change", loadConfig);
    $("#config-reload").addEventListener("click", loadConfig);
    $("#config-save").addEventListener("click", saveConfig);
    $("#token-form").addEventListener("submit", (e) => { e.preventDefault(); createToken(); });
    $("#tokens-revoked").addEventListener("change", loadTokens);
    if (state.token) login(state.token).catch(() => logout());
  });
})();
