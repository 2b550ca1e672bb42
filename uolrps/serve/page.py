"""The browser page: every stream live with its boxes (and track ids), its counters refreshed once a second,
and, for a run that makes events, the recent events with a thumbnail of each object.

Plain HTML and a little JavaScript, no build step and nothing fetched from elsewhere. Video is MJPEG in an
``<img>`` (no encoder, no player). A browser keeps at most 6 HTTP/1.1 connections per server, so with more
than :data:`MJPEG_MAX` streams the page switches to fetching one JPEG after another per stream
(``/streams/NAME.jpg``, which waits for the next new frame), leaving connections for the counters.
"""

MJPEG_MAX = 4

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>uolrps live</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }
header { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
h1 { font-size: 1.3rem; margin: 0; }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1rem; margin-top: 1rem; }
figure { margin: 0; background: #222; padding: .5rem; border-radius: 6px; }
figure img { width: 100%; display: block; background: #000; min-height: 120px; }
figcaption { font-size: .85rem; margin: .4rem 0; display: flex; flex-wrap: wrap; gap: .2rem .9rem; }
.name { font-weight: bold; }
.running { color: #7e7; } .failed { color: #f77; } .ended { color: #aaa; } .opening, .reopening { color: #fc6; }
input, button { background: #333; color: #eee; border: 1px solid #555; border-radius: 4px; padding: .25rem .5rem; }
#msg { font-size: .85rem; }
#events h2 { font-size: 1.05rem; margin: 1rem 0 .4rem; }
#evlist { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: .5rem; }
#evlist li { background: #222; border-radius: 6px; padding: .3rem; width: 170px; font-size: .8rem; }
#evlist img.thumb { display: block; max-width: 160px; max-height: 160px; margin: 0 auto .2rem; background: #000; }
#evlist .start { color: #7e7; } #evlist .end { color: #aaa; } #evlist .enter, #evlist .leave { color: #fc6; }
</style>
</head>
<body>
<header>
  <h1>uolrps</h1>
  <label><input type="checkbox" id="heatmap"> heatmap</label>
  <form id="add">
    <input name="name" placeholder="name (optional)" size="10">
    <input name="source" placeholder="source (file, camera, URL)" size="28" required>
    <input name="token" type="password" placeholder="token (if the server has one)" size="14">
    <button>add stream</button>
  </form>
  <span id="msg"></span>
</header>
<main id="grid"></main>
<section id="events" hidden>
  <h2>recent events</h2>
  <ol id="evlist"></ol>
</section>
<script>
"use strict";
const MJPEG_MAX = %MJPEG_MAX%;
const grid = document.getElementById("grid");
const msg = document.getElementById("msg");
const heat = document.getElementById("heatmap");
const form = document.getElementById("add");
const cards = new Map();

function url(name, mode) {
  const base = "/streams/" + encodeURIComponent(name) + (mode === "mjpeg" ? ".mjpg" : ".jpg");
  return base + "?heatmap=" + (heat.checked ? "1" : "0") + (mode === "mjpeg" ? "" : "&t=" + Date.now());
}

function show(c) {
  if (!cards.has(c.name)) return;
  c.img.src = url(c.name, c.mode);
}

function makeCard(name) {
  const fig = document.createElement("figure");
  fig.dataset.stream = name;
  const img = document.createElement("img");
  img.className = "live";
  img.alt = "stream " + name;
  const cap = document.createElement("figcaption");
  const del = document.createElement("button");
  del.textContent = "remove";
  del.onclick = () => change("DELETE", "/api/streams/" + encodeURIComponent(name), null);
  fig.append(img, cap, del);
  grid.append(fig);
  const c = {name, fig, img, cap, mode: null};
  img.onload = () => { if (c.mode === "snapshot") setTimeout(() => show(c), 0); };
  img.onerror = () => setTimeout(() => show(c), 1000);
  cards.set(name, c);
  return c;
}

function field(text, cls, title) {
  const s = document.createElement("span");
  s.textContent = text;
  if (cls) s.className = cls;
  if (title) s.title = title;
  return s;
}

function ms(v) { return v === null || v === undefined ? "-" : v.toFixed(v < 10 ? 1 : 0) + " ms"; }

function caption(c, st) {
  const drops = Object.entries(st.drops);
  const total = drops.reduce((a, kv) => a + kv[1], 0);
  const parts = [
    field(st.name, "name", st.source),
    field(st.state, st.state, st.reason || ""),
    field(st.fps.toFixed(1) + " FPS", "fps"),
    field("latency p50 " + ms(st.latency_p50_ms) + " / p95 " + ms(st.latency_p95_ms), "latency"),
    field(st.frames + " frames", "frames"),
    field(total + " dropped", "drops", drops.map(kv => kv[0] + ": " + kv[1]).join(", ")),
  ];
  if (st.reopens) parts.push(field(st.reopens + " reopens", "reopens"));
  if (st.reason) parts.push(field(st.reason, "reason"));
  c.cap.replaceChildren(...parts);
}

async function poll() {
  try {
    const r = await fetch("/api/streams", {cache: "no-store"});
    if (r.status === 401) { location.reload(); return; }  // the session ended: the login page
    const data = await r.json();
    const mode = data.streams.length <= MJPEG_MAX ? "mjpeg" : "snapshot";
    const seen = new Set();
    for (const st of data.streams) {
      seen.add(st.name);
      const c = cards.get(st.name) || makeCard(st.name);
      caption(c, st);
      if (c.mode !== mode) { c.mode = mode; show(c); }
    }
    for (const [name, c] of cards) {
      if (!seen.has(name)) { cards.delete(name); c.img.removeAttribute("src"); c.fig.remove(); }
    }
  } catch (e) {
    msg.textContent = "cannot reach the server: " + e;
  }
  setTimeout(poll, 1000);
}

async function change(method, path, body) {
  const headers = {};
  const token = form.elements.token.value;
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== null) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method, headers, body: body === null ? undefined : JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  msg.textContent = r.ok ? (method === "DELETE" ? "removed " + data.removed : "added " + data.name)
                         : "error " + r.status + ": " + (data.error || r.statusText);
}

form.onsubmit = (ev) => {
  ev.preventDefault();
  const name = form.elements.name.value.trim();
  const body = {source: form.elements.source.value.trim()};
  if (name) body.name = name;
  change("POST", "/api/streams", body);
};
heat.onchange = () => { for (const c of cards.values()) show(c); };

const EVENTS_SHOWN = 30;
const evbox = document.getElementById("events");
const evlist = document.getElementById("evlist");
let evLast = null;

function eventImage(ev, kind) {
  return "/api/events/" + encodeURIComponent(ev.id) + "/" + kind + ".jpg";
}

function addEvent(ev) {
  const li = document.createElement("li");
  li.className = "event";
  li.dataset.id = ev.id;
  li.dataset.seq = ev.seq;
  li.dataset.stream = ev.stream;
  const link = document.createElement("a");
  link.href = eventImage(ev, "frame");
  link.target = "_blank";
  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = "object " + ev.id;
  let tries = 0;  // the thumbnail is made off the inference thread: it may come a moment after the event
  const retry = () => { img.src = eventImage(ev, "crop") + "?t=" + Date.now(); };
  img.onerror = () => { if (++tries <= 5) setTimeout(retry, 1000); };
  img.src = eventImage(ev, "crop") + "?seq=" + ev.seq;
  link.append(img);
  const when = new Date(ev.wall * 1000).toLocaleTimeString();
  const text = field(ev.stream + " #" + ev.track + " " + ev.type + (ev.zone ? " " + ev.zone : ""), ev.type,
                     "object " + ev.id + ", seen " + ev.duration.toFixed(1) + " s, peak " + ev.peak.toFixed(2));
  li.append(link, text, document.createElement("br"), field(when + " (" + ev.duration.toFixed(1) + " s)", "when"));
  evlist.prepend(li);
  while (evlist.children.length > EVENTS_SHOWN) evlist.lastElementChild.remove();
}

async function pollEvents() {
  let wait = 1000;
  try {
    const q = evLast === null ? "?limit=" + EVENTS_SHOWN : "?since=" + evLast + "&limit=100";
    const r = await fetch("/api/events" + q, {cache: "no-store"});
    if (r.status === 404) { evbox.hidden = true; wait = 5000; }  // this run makes no events
    else if (r.ok) {
      const data = await r.json();
      evbox.hidden = false;
      for (const ev of data.events) addEvent(ev);
      if (data.last !== null && data.last !== undefined) evLast = data.last;
    }
  } catch (e) { wait = 2000; }
  setTimeout(pollEvents, wait);
}

poll();
pollEvents();
</script>
</body>
</html>
""".replace("%MJPEG_MAX%", str(MJPEG_MAX))

LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>uolrps: log in</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; background: #111; color: #eee; }
input, button { background: #333; color: #eee; border: 1px solid #555; border-radius: 4px; padding: .25rem .5rem; }
</style>
</head>
<body>
<h1>uolrps</h1>
<p>This server needs its token (<code>--serve-token</code> or <code>UOLRPS_SERVE_TOKEN</code>).</p>
<form id="login">
  <input name="token" type="password" placeholder="token" size="30" required autofocus>
  <button>log in</button>
  <span id="msg"></span>
</form>
<script>
"use strict";
const form = document.getElementById("login");
form.onsubmit = async (ev) => {
  ev.preventDefault();
  const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify({token: form.elements.token.value})});
  if (r.ok) { location.reload(); return; }
  const data = await r.json().catch(() => ({}));
  document.getElementById("msg").textContent = "error " + r.status + ": " + (data.error || r.statusText);
};
</script>
</body>
</html>
"""
