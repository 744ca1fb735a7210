// doozerfs web view: browses the tree through /v1/data, follows it live
// through /v1/watch/** (server-sent events read with fetch, so that the
// token can be sent), and polls /v1/status and /v1/members.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "doozerfs-token";

const state = {
  path: "/",          // what the hash selects
  dir: "/",           // the directory listed
  node: null,         // the selected node as /v1/data answered it
  listing: null,      // the listed directory
  rev: 0,             // newest revision known
  next: 0,            // the watch resumes from here
  status: null,
  editing: false,
  loadedRev: 0,       // events up to here are history, shown but not reloaded
  flash: new Set(),   // paths to highlight at the next render
  bodyChanged: false,
};

// ---- HTTP -------------------------------------------------------------

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = sessionStorage.getItem(TOKEN_KEY);
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || ("HTTP " + status));
    this.status = status;
    this.kind = body && body.kind;
  }
}

async function api(method, url, body) {
  const resp = await fetch(url, { method, headers: headers(), body, cache: "no-store" });
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    if (resp.status === 401) askToken();
    throw new APIError(resp.status, data);
  }
  return data;
}

const enc = (p) => p.split("/").map(encodeURIComponent).join("/");
const dataURL = (p, q) => "/v1/data" + (p === "/" ? "/" : enc(p)) + (q ? "?" + q : "");
const parentOf = (p) => (p === "/" ? "/" : p.slice(0, p.lastIndexOf("/")) || "/");
const nameOf = (p) => p.slice(p.lastIndexOf("/") + 1);
const joinPath = (d, n) => (d === "/" ? "/" + n : d + "/" + n);

// ---- formatting -------------------------------------------------------

function fmtSize(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

function fmtAgo(ns) {
  if (!ns) return "";
  const s = Math.max(0, (Date.now() - ns / 1e6) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

function fmtTime(ns) {
  if (!ns) return "";
  const d = new Date(ns / 1e6);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function decodeBody(n) {
  if (n.body === undefined || n.body === null) return { text: "", binary: false };
  if (n.encoding === "base64") return { text: n.body, binary: true };
  return { text: n.body, binary: false };
}

// ---- loading ----------------------------------------------------------

function pathFromHash() {
  let h = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (!h.startsWith("/")) h = "/" + h;
  if (h.length > 1 && h.endsWith("/")) h = h.slice(0, -1);
  return h;
}

let loadSeq = 0;

// load fetches the selected node and the directory to list, then renders.
async function load() {
  const seq = ++loadSeq;
  const path = state.path;
  let node = null, listing = null, err = null;
  try {
    node = await api("GET", dataURL(path));
    listing = node.type === "dir" ? node : await api("GET", dataURL(parentOf(path)));
  } catch (e) {
    err = e;
    // Show the nearest directory that still exists.
    let d = parentOf(path);
    for (;;) {
      try { listing = await api("GET", dataURL(d)); break; } catch (e2) {
        if (d === "/") break;
        d = parentOf(d);
      }
    }
  }
  if (seq !== loadSeq) return; // a newer load has started
  state.node = node;
  state.listing = listing;
  state.dir = listing ? listing.path : "/";
  if (node) noteRev(node.read_rev);
  render(err);
}

let reloadTimer = null;
function scheduleReload() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 40);
}

function noteRev(r) {
  if (r > state.rev) {
    state.rev = r;
    $("rev").textContent = r;
  }
}

// ---- rendering --------------------------------------------------------

function render(err) {
  renderCrumbs();
  renderListing();
  renderDetail(err);
  state.flash.clear();
  state.bodyChanged = false;
}

function renderCrumbs() {
  const nav = $("crumbs");
  nav.replaceChildren();
  nav.append(el("a", { href: "#/", text: "/" }));
  const parts = state.path.split("/").filter(Boolean);
  let acc = "";
  parts.forEach((p, i) => {
    acc += "/" + p;
    if (i > 0) nav.append(el("span", { class: "sep", text: "/" }));
    nav.append(el("a", { href: "#" + enc(acc), text: p }));
  });
}

function renderListing() {
  const tbody = $("listing").querySelector("tbody");
  tbody.replaceChildren();
  const l = state.listing;
  const entries = (l && l.entries) || [];
  const f = $("filter").value.trim().toLowerCase();
  const shown = f ? entries.filter((e) => e.name.toLowerCase().includes(f)) : entries;
  if (state.dir !== "/") {
    const up = parentOf(state.dir);
    tbody.append(el("tr", { onclick: () => go(up) },
      el("td", {}, el("span", { class: "icon", text: "↰" }), el("a", { href: "#" + enc(up), text: ".." })),
      el("td"), el("td"), el("td")));
  }
  const max = 2000;
  for (const e of shown.slice(0, max)) {
    const isDir = e.type === "dir";
    const tr = el("tr", {
      class: [isDir ? "dir" : "file", e.path === state.path ? "selected" : "", state.flash.has(e.path) ? "flash" : ""].join(" ").trim(),
      "data-path": e.path,
      onclick: (ev) => { if (ev.target.tagName !== "A") go(e.path); },
    },
      el("td", {}, el("span", { class: "icon", text: isDir ? "▸" : "·" }), el("a", { href: "#" + enc(e.path), text: e.name + (isDir ? "/" : "") })),
      el("td", { class: "num muted", text: isDir ? e.size + (e.size === 1 ? " entry" : " entries") : fmtSize(e.size) }),
      el("td", { class: "num", text: e.rev }),
      el("td", { class: "muted", title: fmtTime(e.time_ns), text: fmtAgo(e.time_ns) }));
    tbody.append(tr);
  }
  $("empty").hidden = !l || entries.length !== 0;
  $("count").textContent = entries.length === 0 ? "" :
    (f ? shown.length + " of " + entries.length : entries.length + (entries.length === 1 ? " entry" : " entries")) +
    (shown.length > max ? " (first " + max + " shown)" : "");
}

function metaRow(dl, k, v, title) {
  dl.append(el("dt", { text: k }), el("dd", { text: v, title }));
}

function renderDetail(err) {
  const n = state.node;
  $("detail-path").textContent = state.path;
  const meta = $("meta");
  meta.replaceChildren();
  const msg = $("detail-msg");
  msg.hidden = true;
  $("file-view").hidden = true;
  $("edit-btn").hidden = true;
  $("delete-btn").hidden = true;
  if (!state.editing) $("editor").hidden = true;
  if (!n) {
    if (state.editing) return; // a new file being written
    msg.hidden = false;
    msg.className = "error";
    msg.textContent = err && err.kind === "NOENT" ? "No such file or directory (it may just have been deleted)." :
      (err ? err.message : "");
    return;
  }
  metaRow(meta, "type", n.type === "dir" ? "directory" : "file");
  metaRow(meta, "rev", String(n.rev));
  if (n.time_ns) metaRow(meta, "modified", fmtTime(n.time_ns) + "  (" + fmtAgo(n.time_ns) + ")", n.time);
  if (n.type === "dir") {
    metaRow(meta, "entries", String(n.size));
    $("delete-btn").hidden = n.path === "/" || n.size > 0;
    return;
  }
  metaRow(meta, "size", fmtSize(n.size));
  if (n.lease) metaRow(meta, "lease", String(n.lease) + " (ephemeral)");
  const b = decodeBody(n);
  const pre = $("file-body");
  pre.classList.toggle("empty", b.text === "");
  pre.textContent = b.text === "" ? "(empty)" : b.text;
  if (state.bodyChanged) {
    pre.classList.remove("flash");
    void pre.offsetWidth; // restart the animation
    pre.classList.add("flash");
  }
  $("body-info").textContent = b.binary ? "binary body, shown as base64" : "";
  $("file-view").hidden = state.editing;
  $("edit-btn").hidden = state.editing || b.binary;
  $("delete-btn").hidden = state.editing;
}

// ---- status and members ----------------------------------------------

async function refreshStatus() {
  try {
    const [st, ms] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/members")]);
    state.status = st;
    $("cluster").textContent = st.cluster;
    $("self").textContent = st.name;
    $("leader").textContent = st.leader || "none";
    $("leader").classList.toggle("error", !st.leader);
    noteRev(st.rev);
    const w = $("writable");
    w.hidden = false;
    if (!st.writable) { w.className = "pill bad"; w.textContent = "read-only: no quorum"; }
    else if (st.access !== "rw") { w.className = "pill warn"; w.textContent = "read-only token"; }
    else { w.className = "pill ok"; w.textContent = "writable"; }
    renderMembers(ms);
    $("banner").hidden = true;
    return st;
  } catch (e) {
    if (e.status !== 401) showBanner("Cannot reach the replica: " + e.message);
    return null;
  }
}

function renderMembers(ms) {
  const tbody = $("members").querySelector("tbody");
  tbody.replaceChildren();
  for (const m of ms.members) {
    tbody.append(el("tr", {},
      el("td", {},
        m.leader ? el("span", { class: "star", title: "leader", text: "★ " }) : null,
        el("strong", { text: m.name }),
        m.self ? el("span", { class: "muted", text: " (this replica)" }) : null,
        el("span", { class: "addr", text: m.addr || "" })),
      el("td", { text: m.role }),
      el("td", { class: "state-" + m.state, text: m.state }),
      el("td", { class: "num", text: m.applied || "" })));
  }
}

function showBanner(text) {
  const b = $("banner");
  b.textContent = text;
  b.hidden = false;
}

// ---- live updates -----------------------------------------------------

function setLive(on, text) {
  const l = $("live");
  l.className = "live " + (on ? "on" : "off");
  $("live-text").textContent = text;
}

function onEvent(ev) {
  noteRev(ev.rev);
  state.next = Math.max(state.next, ev.rev + 1);
  addEventRow(ev, ev.rev > state.loadedRev);
  if (ev.rev <= state.loadedRev) return; // history, already in what was loaded
  const p = ev.path;
  let reload = false;
  if (p === state.path || state.path.startsWith(p + "/")) {
    reload = true;
    if (p === state.path) state.bodyChanged = true;
  }
  if (parentOf(p) === state.dir || p === state.dir) {
    reload = true;
    state.flash.add(p);
  }
  refreshStatusSoon(); // the members' applied revisions, and /ctl changes
  if (reload) scheduleReload();
}

let statusTimer = null;
function refreshStatusSoon() {
  if (statusTimer) return;
  statusTimer = setTimeout(() => { statusTimer = null; refreshStatus(); }, 300);
}

function addEventRow(ev, fresh) {
  const ol = $("events");
  const li = el("li", { class: fresh ? "flash" : "" },
    el("span", { class: "num muted", text: ev.rev }),
    el("span", { class: "kind-" + ev.kind, text: ev.kind }),
    el("a", { class: "p", href: "#" + enc(ev.path), text: ev.path, title: fmtTime(ev.time_ns) }));
  ol.prepend(li);
  while (ol.children.length > 60) ol.lastChild.remove();
  $("events-empty").hidden = true;
}

// watch follows /v1/watch/** from state.next for as long as the page
// lives, reconnecting with a growing delay.
async function watch() {
  let delay = 500;
  for (;;) {
    try {
      const url = "/v1/watch/**" + (state.next > 0 ? "?rev=" + state.next : "");
      const resp = await fetch(url, { headers: headers({ "Accept": "text/event-stream" }), cache: "no-store" });
      if (resp.status === 410) {
        // Too far behind: start again from now, and reload what is shown.
        state.next = 0;
        load();
        continue;
      }
      if (resp.status === 401) { askToken(); throw new Error("a token is needed"); }
      if (!resp.ok || !resp.body) throw new Error("HTTP " + resp.status);
      setLive(true, "live");
      delay = 500;
      await readStream(resp.body);
      setLive(false, "reconnecting");
    } catch (e) {
      setLive(false, "reconnecting");
    }
    await new Promise((r) => { wakeWatch = r; setTimeout(r, delay); });
    wakeWatch = null;
    delay = Math.min(delay * 2, 8000);
  }
}

// wakeWatch, while the watch waits to reconnect, cuts the wait short.
let wakeWatch = null;

async function readStream(body) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  let ev = { type: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, "");
      buf = buf.slice(i + 1);
      if (line === "") {
        if (ev.data.length) dispatch(ev);
        ev = { type: "message", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue;
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
      if (field === "data") ev.data.push(val);
      else if (field === "event") ev.type = val;
      else if (field === "id") ev.id = val;
    }
  }
}

function dispatch(ev) {
  let data;
  try { data = JSON.parse(ev.data.join("\n")); } catch (e) { return; }
  if (ev.id !== null && /^\d+$/.test(ev.id)) state.next = Math.max(state.next, Number(ev.id) + 1);
  switch (ev.type) {
    case "message": onEvent(data); break;
    case "progress": noteRev(data.rev); break;
    case "failed":
      if (data.kind === "TOO_LATE") { state.next = 0; load(); }
      break;
  }
}

// ---- actions ----------------------------------------------------------

function go(p) {
  if (state.editing && !confirm("Discard your changes?")) return;
  state.editing = false;
  location.hash = "#" + enc(p);
}

function startEdit(text, note) {
  // The write is a compare-and-set on what is shown now: the file's rev,
  // or 0 (create only) for a new file.
  const n = state.node;
  state.editRev = n && n.type === "file" ? n.rev : 0;
  state.editPath = n && n.type === "file" ? n.path : state.path;
  state.editing = true;
  $("editor").hidden = false;
  $("file-view").hidden = true;
  $("edit-btn").hidden = true;
  $("delete-btn").hidden = true;
  $("editor-text").value = text;
  $("editor-note").textContent = note || "";
  $("editor-note").className = "muted";
  $("editor-text").focus();
}

function stopEdit() {
  state.editing = false;
  $("editor").hidden = true;
  render();
}

async function save(ev) {
  ev.preventDefault();
  const rev = state.editRev;
  const path = state.editPath;
  $("editor-save").disabled = true;
  try {
    const r = await api("PUT", dataURL(path, "rev=" + rev), $("editor-text").value);
    noteRev(r.rev);
    state.editing = false;
    $("editor").hidden = true;
    state.path = path;
    if (location.hash !== "#" + enc(path)) location.hash = "#" + enc(path);
    await load();
  } catch (e) {
    const note = $("editor-note");
    note.className = "error";
    note.textContent = e.kind === "REV_MISMATCH" ?
      "Someone changed this file since you opened it (or it exists already): nothing was written." : e.message;
  } finally {
    $("editor-save").disabled = false;
  }
}

async function remove() {
  const n = state.node;
  if (!n || !confirm("Delete " + n.path + "?")) return;
  try {
    const r = await api("DELETE", dataURL(n.path, "rev=" + n.rev));
    noteRev(r.rev);
    go(parentOf(n.path));
  } catch (e) {
    const msg = $("detail-msg");
    msg.hidden = false;
    msg.className = "error";
    msg.textContent = e.message;
  }
}

function newFile() {
  const name = prompt("Name of the new file in " + state.dir);
  if (!name) return;
  if (name.includes("/")) { alert("A name has no '/'."); return; }
  state.path = joinPath(state.dir, name);
  state.node = null;
  history.replaceState(null, "", "#" + enc(state.path));
  renderCrumbs();
  $("detail-path").textContent = state.path;
  $("meta").replaceChildren();
  $("detail-msg").hidden = true;
  startEdit("", "New file: created only if nothing is there yet.");
}

// ---- token ------------------------------------------------------------

let asking = false;
function askToken() {
  const d = $("token-dialog");
  if (asking || d.open) return;
  asking = true;
  $("token-input").value = sessionStorage.getItem(TOKEN_KEY) || "";
  d.showModal();
}

function setupToken() {
  $("token-btn").addEventListener("click", askToken);
  $("token-dialog").addEventListener("close", async () => {
    asking = false;
    if ($("token-dialog").returnValue === "ok") {
      const t = $("token-input").value.trim();
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
      const st = await refreshStatus();
      if (st && state.next === 0) state.next = st.rev + 1; // nothing after the load is missed
      load();
      if (wakeWatch) wakeWatch();
    }
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token-input").value = "";
  });
}

// ---- start ------------------------------------------------------------

async function start() {
  setupToken();
  $("filter").addEventListener("input", renderListing);
  $("edit-btn").addEventListener("click", () => startEdit(decodeBody(state.node).text, "Saves only if nobody changed the file since rev " + state.node.rev + "."));
  $("delete-btn").addEventListener("click", remove);
  $("editor").addEventListener("submit", save);
  $("editor-cancel").addEventListener("click", stopEdit);
  $("new-file").addEventListener("click", newFile);
  window.addEventListener("hashchange", () => {
    state.path = pathFromHash();
    state.editing = false;
    $("filter").value = "";
    load();
  });
  state.path = pathFromHash();
  const st = await refreshStatus();
  if (st) {
    // Watch from a little before now, to fill "Recent changes" from the
    // history window; nothing after the load below is missed.
    state.next = Math.max(st.rev - 24, st.oldest + 1, 1);
    state.loadedRev = st.rev;
  }
  watch();
  await load();
  setInterval(refreshStatus, 2000);
  setInterval(() => { if (!state.editing) { renderListing(); } }, 15000); // keep "x min ago" fresh
}

start();
