/**
 * The demo's single HTML page: a native `EventSource` on the events route, the live events with the
 * time each arrived, the connection state, the last event id, reconnect / reset counts, the server's
 * counters from `/stats` (published, delivered, ends and resets by reason, the log's epoch), a
 * ticker switch, and a form that publishes over `POST`. The last id is kept in `sessionStorage`, so
 * a reload resumes with `?lastEventId=` (the browser itself sends `Last-Event-ID` on its own
 * reconnects). Plain inline CSS and JS, no build step, nothing fetched from elsewhere, usable at
 * 390 px. Event data is only ever written with `textContent`.
 */

/** Paths the page talks to (the route's configured paths, the demo's ticker switch and burst). */
export interface PagePaths {
  readonly events: string
  /** `undefined` when the stats route is turned off. */
  readonly stats: string | undefined
  readonly ticker: string
  readonly burst: string
}

/** JSON that is safe inside an inline `<script>` (no `</script>`, no HTML comment openers). */
const scriptJson = (value: unknown): string =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026")

const STYLE = `
  *, *::before, *::after { box-sizing: border-box; }
  :root { font-family: system-ui, sans-serif; color: #1d2430; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 60rem; padding: 0.75rem 0.75rem 3rem; }
  h1 { font-size: 1.4rem; margin: 0.5rem 0 0.2rem; }
  h2 { font-size: 1rem; margin: 0 0 0.6rem; }
  p.lead { margin: 0 0 1rem; color: #556; }
  section { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 0.8rem;
    margin-bottom: 1rem; min-width: 0; }
  form { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: end; }
  label { display: flex; flex-direction: column; font-size: 0.8rem; color: #556; gap: 0.2rem;
    flex: 1 1 12rem; min-width: 0; }
  input, textarea { font: inherit; font-size: 0.9rem; padding: 0.3rem 0.4rem; border: 1px solid #c5cbd3;
    border-radius: 4px; width: 100%; min-width: 0; }
  textarea { min-height: 2.2rem; font-family: ui-monospace, monospace; }
  button { font: inherit; font-size: 0.9rem; padding: 0.35rem 0.8rem; border-radius: 4px; border: 1px solid #2f6fde;
    background: #2f6fde; color: #fff; cursor: pointer; }
  button.secondary { background: #fff; color: #2f6fde; }
  dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(8.5rem, 1fr)); gap: 0.4rem 1rem;
    margin: 0.8rem 0 0; }
  dl > div { min-width: 0; }
  dt { font-size: 0.75rem; color: #667; }
  dd { margin: 0; font-family: ui-monospace, monospace; font-size: 0.9rem; overflow-wrap: anywhere; }
  .state { display: inline-block; padding: 0 0.5rem; border-radius: 999px; font-family: system-ui, sans-serif; }
  .state.connecting { background: #fff1c2; }
  .state.open { background: #cdf3d6; }
  .state.closed { background: #f6d0d0; }
  #result { font-family: ui-monospace, monospace; font-size: 0.85rem; margin-top: 0.5rem; min-height: 1.2em;
    overflow-wrap: anywhere; }
  table { width: 100%; border-collapse: collapse; font-size: 0.85rem; table-layout: fixed; }
  col.time { width: 7.6rem; }
  col.id { width: 11rem; }
  col.type { width: 6rem; }
  td:first-child { white-space: nowrap; color: #667; }
  #ticker { white-space: nowrap; font-size: 0.8rem; padding: 0.15rem 0.5rem; }
  /* Narrow screens: each row is time, id and type on one line, its data under them, full width. */
  @media (max-width: 36rem) {
    thead { display: none; }
    table, tbody { display: block; }
    tr { display: grid; grid-template-columns: auto auto minmax(0, 1fr); border-bottom: 1px solid #eef0f3; }
    td { border-bottom: 0; padding: 0.15rem 0.3rem; }
    td:nth-child(3) { text-align: right; }
    td:nth-child(4) { grid-column: 1 / -1; }
  }
  th, td { text-align: left; padding: 0.25rem 0.3rem; border-bottom: 1px solid #eef0f3; vertical-align: top; }
  td { font-family: ui-monospace, monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
  th { color: #667; font-weight: 600; }
  tr.reset td, tr.end td { background: #fff7e0; }
  tr.note td { color: #778; font-style: italic; }
  .hint { font-size: 0.8rem; color: #778; }
`

const BODY = `
<h1>sluice demo</h1>
<p class="lead">Live events over Server-Sent Events with a native <code>EventSource</code>. Reconnects resume from the
last event id (a reload too); a cursor the server cannot serve answers <code>event: reset</code>; server-side ends send
<code>event: end</code> with the reason.</p>

<section>
  <h2>Subscription</h2>
  <form id="subscribe">
    <label>Topics (space separated, <code>orders/*</code> for a prefix, empty = all)
      <input id="topics" placeholder="demo/*">
    </label>
    <label>Extra event types to listen for
      <input id="types" placeholder="tick greeting">
    </label>
    <button type="submit">Connect</button>
    <button type="button" class="secondary" id="disconnect">Disconnect</button>
  </form>
  <dl>
    <div><dt>state</dt><dd><span id="state" class="state closed">closed</span></dd></div>
    <div><dt>last event id</dt><dd id="last-id">-</dd></div>
    <div><dt>resumed after</dt><dd id="resumed">-</dd></div>
    <div><dt>events</dt><dd id="count">0</dd></div>
    <div><dt>reconnects</dt><dd id="reconnects">0</dd></div>
    <div><dt>resets</dt><dd id="resets">0</dd></div>
    <div><dt>last reset reason</dt><dd id="reset-reason">-</dd></div>
    <div><dt>last end reason</dt><dd id="end-reason">-</dd></div>
  </dl>
</section>

<section>
  <h2>Server <span class="hint">(from /stats, every 2 s)</span></h2>
  <dl>
    <div><dt>subscribers</dt><dd id="subscribers">-</dd></div>
    <div><dt>published</dt><dd id="published">-</dd></div>
    <div><dt>delivered</dt><dd id="delivered">-</dd></div>
    <div><dt>epoch</dt><dd id="epoch">-</dd></div>
    <div><dt>ends by reason</dt><dd id="ends">-</dd></div>
    <div><dt>resets by reason</dt><dd id="reset-stats">-</dd></div>
    <div><dt>ticker</dt><dd><button type="button" class="secondary" id="ticker">?</button></dd></div>
  </dl>
</section>

<section>
  <h2>Publish</h2>
  <form id="publish">
    <label>Topic <input id="pub-topic" value="demo/chat" required></label>
    <label>Type (optional) <input id="pub-type" placeholder="message"></label>
    <label>Data <textarea id="pub-data">hello from the browser</textarea></label>
    <button type="submit">Publish</button>
    <button type="button" class="secondary" id="burst">Burst of 50</button>
  </form>
  <div id="result"></div>
  <p class="hint">A type other than <code>message</code> only reaches an <code>EventSource</code> listener
  registered for it: publishing here registers one on this page (kept only if the server accepts it).
  A burst publishes 50 events on the topic in one batch: with a connection buffer smaller than that
  (<code>SLUICE_SSE_MAX_EVENTS=10 npm start</code>) it ends the stream as <code>overflow</code>, and the
  browser resumes with no gap.</p>
</section>

<section>
  <h2>Events <span class="hint">(newest first, at most 200 rows)</span></h2>
  <table>
    <colgroup><col class="time"><col class="id"><col class="type"><col></colgroup>
    <thead><tr><th>time</th><th>id</th><th>type</th><th>data</th></tr></thead>
    <tbody id="log"></tbody>
  </table>
</section>
`

// The page's script. No template placeholders inside: everything it needs comes from PATHS.
const SCRIPT = `
(() => {
  const MAX_ROWS = 200;
  const STORE = "sluice-demo";
  const OWN_TYPES = new Set(["message", "reset", "end"]);
  const $ = (id) => document.getElementById(id);
  const counters = { count: 0, reconnects: 0, resets: 0 };
  let source = null;
  let opened = false;
  const listened = new Set();

  const load = () => {
    try {
      return JSON.parse(sessionStorage.getItem(STORE) || "{}") || {};
    } catch {
      return {};
    }
  };
  const saved = load();
  const save = (patch) => {
    try {
      sessionStorage.setItem(STORE, JSON.stringify(Object.assign(load(), patch)));
    } catch {}
  };

  const setState = (state) => {
    const el = $("state");
    el.textContent = state;
    el.className = "state " + state;
  };
  const bump = (name) => {
    counters[name] += 1;
    $(name).textContent = String(counters[name]);
  };
  const clock = () => {
    const d = new Date();
    const pad = (n, w) => String(n).padStart(w, "0");
    return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) + "." +
      pad(d.getMilliseconds(), 3);
  };
  const addRow = (id, type, data, kind) => {
    const tr = document.createElement("tr");
    tr.className = kind;
    for (const text of [clock(), id, type, data]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const log = $("log");
    log.insertBefore(tr, log.firstChild);
    while (log.childNodes.length > MAX_ROWS) log.removeChild(log.lastChild);
  };
  const reasonOf = (data) => {
    try {
      const parsed = JSON.parse(data);
      return parsed && typeof parsed.reason === "string" ? parsed.reason : "?";
    } catch {
      return "?";
    }
  };
  const setLastId = (id) => {
    if (!id) return;
    $("last-id").textContent = id;
    save({ lastId: id });
  };

  const onEvent = (event) => {
    setLastId(event.lastEventId);
    bump("count");
    addRow(event.lastEventId || "", event.type, event.data, "event");
  };
  const listen = (type) => {
    if (!type || OWN_TYPES.has(type) || listened.has(type)) return false;
    listened.add(type);
    if (source) source.addEventListener(type, onEvent);
    return true;
  };
  const unlisten = (type) => {
    listened.delete(type);
    if (source) source.removeEventListener(type, onEvent);
  };

  // resumeAfter: the last id of an earlier page (a reload), sent as ?lastEventId= on the first
  // request; the browser sends Last-Event-ID itself on every reconnect after that.
  const connect = (resumeAfter) => {
    disconnect();
    opened = false;
    const url = new URL(PATHS.events, location.href);
    for (const topic of $("topics").value.split(/\\s+/)) if (topic) url.searchParams.append("topic", topic);
    for (const type of $("types").value.split(/\\s+/)) if (type && !OWN_TYPES.has(type)) listened.add(type);
    if (resumeAfter) url.searchParams.set("lastEventId", resumeAfter);
    save({ topics: $("topics").value, types: $("types").value, lastId: resumeAfter || "" });
    $("resumed").textContent = resumeAfter || "-";
    const es = new EventSource(url);
    source = es;
    setState("connecting");
    addRow("", "", (resumeAfter ? "resuming after " + resumeAfter + ": " : "connecting to ") + url.pathname +
      url.search, "note");
    es.addEventListener("open", () => {
      if (opened) bump("reconnects");
      opened = true;
      setState("open");
    });
    es.addEventListener("error", () => {
      // CONNECTING: the browser retries by itself (with Last-Event-ID); CLOSED: it gave up.
      setState(es.readyState === EventSource.CLOSED ? "closed" : "connecting");
    });
    es.addEventListener("message", onEvent);
    for (const type of listened) es.addEventListener(type, onEvent);
    es.addEventListener("reset", (event) => {
      bump("resets");
      setLastId(event.lastEventId);
      $("reset-reason").textContent = reasonOf(event.data);
      addRow(event.lastEventId || "", "reset", event.data, "reset");
    });
    es.addEventListener("end", (event) => {
      $("end-reason").textContent = reasonOf(event.data);
      addRow("", "end", event.data, "end");
    });
  };
  const disconnect = () => {
    if (!source) return;
    source.close();
    source = null;
    setState("closed");
    addRow("", "", "disconnected", "note");
  };

  $("subscribe").addEventListener("submit", (e) => {
    e.preventDefault();
    connect("");
  });
  $("disconnect").addEventListener("click", disconnect);

  $("publish").addEventListener("submit", async (e) => {
    e.preventDefault();
    const type = $("pub-type").value.trim();
    const body = { topic: $("pub-topic").value.trim(), data: $("pub-data").value };
    if (type) body.type = type;
    // Listen before publishing (the event may arrive before the answer); drop it if refused.
    const added = listen(type);
    const result = $("result");
    try {
      const response = await fetch(PATHS.events, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body)
      });
      const text = await response.text();
      result.textContent = response.status + " " + text;
      if (added && response.status !== 201) unlisten(type);
    } catch (error) {
      result.textContent = "failed: " + String(error);
      if (added) unlisten(type);
    }
  });

  $("burst").addEventListener("click", async () => {
    const result = $("result");
    try {
      const response = await fetch(PATHS.burst, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ topic: $("pub-topic").value.trim(), count: 50 })
      });
      result.textContent = response.status + " " + (await response.text());
    } catch (error) {
      result.textContent = "failed: " + String(error);
    }
  });

  const byReason = (counts, skip) => {
    const parts = Object.keys(counts || {}).filter((k) => !skip.includes(k) && counts[k] > 0)
      .map((k) => k + " " + counts[k]);
    return parts.length ? parts.join(", ") : "none";
  };
  const pollStats = async () => {
    if (!PATHS.stats) return;
    try {
      const response = await fetch(PATHS.stats, { cache: "no-store" });
      const stats = await response.json();
      $("subscribers").textContent = String(stats.subscribers);
      $("published").textContent = String(stats.published);
      $("delivered").textContent = String(stats.delivered);
      $("epoch").textContent = stats.log ? String(stats.log.epoch) : "?";
      $("ends").textContent = byReason(stats.ends, []);
      $("reset-stats").textContent = byReason(stats.resumes, ["live", "resumed"]);
    } catch {
      $("subscribers").textContent = "?";
    }
  };
  setInterval(pollStats, 2000);
  pollStats();

  const showTicker = (on) => {
    const button = $("ticker");
    button.textContent = on ? "on (turn off)" : "off (turn on)";
    button.dataset.on = on ? "1" : "0";
  };
  const ticker = async (init) => {
    try {
      const response = await fetch(PATHS.ticker, init);
      showTicker((await response.json()).on === true);
    } catch {
      $("ticker").textContent = "?";
    }
  };
  $("ticker").addEventListener("click", () =>
    ticker({
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ on: $("ticker").dataset.on !== "1" })
    }));
  ticker({ cache: "no-store" });

  if (typeof saved.topics === "string") $("topics").value = saved.topics;
  if (typeof saved.types === "string") $("types").value = saved.types;
  listened.add("tick");
  connect(typeof saved.lastId === "string" ? saved.lastId : "");
})();
`

export const renderPage = (paths: PagePaths): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sluice demo</title>
<style>${STYLE}</style>
</head>
<body>${BODY}
<script>
"use strict";
const PATHS = ${scriptJson(paths)};
${SCRIPT}</script>
</body>
</html>
`
