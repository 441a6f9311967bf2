// The notification window: pops ringing calls, sends directives, shows the
// caller's context, the call history and a chat per call. Plain JS; every
// text from the server goes through textContent.
"use strict";

const state = { me: null, calls: new Map(), chatCall: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { showSignIn(); throw new Error("not signed in"); }
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

function showSignIn() {
  $("signin").hidden = false;
  for (const s of document.querySelectorAll("section")) s.hidden = true;
}

const when = (t) => new Date(t).toLocaleString();
const userName = (id) => {
  if (!state.me) return id;
  const u = [state.me.user, ...state.me.attends, state.me.attendant].find((u) => u && u.id === id);
  return u ? (u.display_name || u.id) : id;
};
const byName = (by) => {
  if (!by) return "";
  if (by.startsWith("attendant:")) return "attendant " + userName(by.slice(10));
  return userName(by);
};

function journalText(events) {
  return (events || []).map((e) => {
    if (e.event === "directive") return `${e.action}${e.target ? " " + e.target : ""} (${byName(e.by)})`;
    if (e.event === "chat") return `chat ${byName(e.by)}: ${e.text}`;
    if (e.event === "forwarded") return `forwarded ${e.to}`;
    return e.event;
  }).join("; ");
}

// ---- notification cards ----------------------------------------------------

function card(call) {
  const mine = call.user === state.me.user.id;
  const act = (action, extra) => () => sendDirective(call, action, extra);
  const typed = el("input", { class: "typed", placeholder: "other number", type: "tel" });
  const forwards = call.forward.map((t) =>
    el("button", { class: "fwd", type: "button", "data-number": t.number, onclick: act("forward", { to: t.number }) },
      `${t.label} ${t.number}`));
  const c = el("article", { class: "card", "data-call": call.call_id, "data-user": call.user },
    el("h2", { class: "caller-name" }, call.caller_name || "Unknown caller"),
    el("div", { class: "company" }, call.company || ""),
    el("div", { class: "number" }, call.cli),
    el("div", { class: "meta" },
      el("span", { class: `tag code code-${call.handling_code}` }, `code: ${call.handling_code}`),
      el("span", { class: "tag status" }, `status: ${call.status}`),
      el("span", { class: "tag method" }, `handling: ${call.method}${call.target ? " " + call.target : ""}`),
      mine ? null : el("span", { class: "tag for" }, `for ${call.user_name || call.user}`),
      el("span", { class: "tag at" }, when(call.at))),
    el("div", { class: "actions" },
      ...forwards,
      typed,
      el("button", { type: "button", class: "fwd-typed", onclick: () => sendDirective(call, "forward", { to: typed.value }) }, "Forward"),
      el("button", { type: "button", class: "accept", onclick: act("accept") }, "Accept"),
      el("button", { type: "button", class: "voicemail", onclick: act("voicemail") }, "Voicemail"),
      el("button", { type: "button", class: "reject danger", onclick: act("reject") }, "Reject"),
      el("button", { type: "button", class: "block danger", onclick: () => {
        if (confirm(`Always block ${call.cli}?`)) sendDirective(call, "block");
      } }, "Always block"),
      el("button", { type: "button", class: "open-contact", onclick: () => openContact(call) }, "Open contact"),
      el("button", { type: "button", class: "open-chat", onclick: () => openChat(call) }, "Chat"),
      el("button", { type: "button", class: "dismiss", onclick: () => c.remove() }, "Dismiss")),
    el("div", { class: "state" }));
  return c;
}

// After a reload: calls of the last two minutes that nobody has dealt with yet may still ring.
async function restoreRinging() {
  const done = new Set(["directive", "answered", "forwarded", "missed", "ended"]);
  const since = Date.now() - 120000;
  for (const u of [state.me.user, ...state.me.attends]) {
    const rows = await api("GET", `/api/history?${new URLSearchParams({ user: u.id, days: 1, limit: 20 })}`);
    for (const c of rows.reverse()) {
      if (new Date(c.at) >= since && !c.events.some((e) => done.has(e.event)) && !state.calls.has(c.call_id)) {
        showCall(c, false);
      }
    }
  }
}

function showCall(call, live = true) {
  state.calls.set(call.call_id, call);
  const mine = call.user === state.me.user.id;
  // The user's window pops for "notify"; the attendant view shows every call of the users attended.
  if (mine && call.method !== "notify") { if (live) addHistoryRow(call); return; }
  const box = mine ? $("notifications") : $("attendant-calls");
  if (box.querySelector(`.card[data-call="${CSS.escape(call.call_id)}"]`)) return;
  box.closest("section").querySelector(".empty").hidden = true;
  box.prepend(card(call));
  if (!live) return;
  addHistoryRow(call);
  if (mine && "Notification" in window && Notification.permission === "granted") {
    new Notification(call.caller_name || call.cli, { body: `${call.company || ""} ${call.cli}`.trim() });
  }
}

// Whether a directive reached a phone system: `delivered` counts the phone systems that received it.
const NOT_DELIVERED = "not delivered — no phone system connected";
const deliveryText = (delivered) => delivered > 0 ? `sent to the phone system (${delivered})` : NOT_DELIVERED;

function showDelivery(card, delivered) {
  card.classList.toggle("undelivered", !(delivered > 0));
}

async function sendDirective(call, action, extra) {
  const cards = document.querySelectorAll(`.card[data-call="${call.call_id}"]`);
  try {
    const r = await api("POST", `/api/calls/${encodeURIComponent(call.call_id)}/directive`, { action, ...(extra || {}) });
    for (const c of cards) {
      c.querySelector(".state").textContent = `${action === "block" ? "blocked and rejected" : r.action}${r.target ? " " + r.target : ""} — ${deliveryText(r.delivered)}`;
      showDelivery(c, r.delivered);
    }
  } catch (e) {
    const states = [...cards].map((c) => c.querySelector(".state"));
    for (const s of states) s.textContent = `failed: ${e.message}`;
  }
}

let historyTimer = null;
function refreshHistorySoon() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => loadHistory().catch(() => {}), 300);
}

function showDirective(d) {
  refreshHistorySoon();
  for (const c of document.querySelectorAll(`.card[data-call="${d.call_id}"]`)) {
    c.classList.add("done");
    c.querySelector(".state").textContent = `${d.action}${d.target ? " " + d.target : ""} by ${byName(d.by)} — ${deliveryText(d.delivered)}`;
    showDelivery(c, d.delivered);
  }
}

// ---- context ---------------------------------------------------------------

function fill(id, items, text) {
  const ul = $(id);
  ul.replaceChildren(...(items.length ? items.map((i) => el("li", {}, text(i))) : [el("li", { class: "empty" }, "none")]));
}

// The next occurrence of a meeting, else its last one.
function meetingTime(e) {
  const starts = (e.occurrences || []).map((o) => new Date(o.start)).sort((a, b) => a - b);
  if (!starts.length) return "";
  const now = new Date();
  const next = starts.find((s) => s >= now);
  return next ? `next ${next.toLocaleString()} — ` : `${starts[starts.length - 1].toLocaleString()} — `;
}

async function openContact(call) {
  const ctx = await api("GET", `/api/calls/${encodeURIComponent(call.call_id)}/context`);
  $("context").hidden = false;
  $("ctx-name").textContent = ctx.contact ? ctx.contact.name : call.cli;
  $("ctx-company").textContent = ctx.contact && ctx.contact.company ? ctx.contact.company : "";
  $("ctx-code").textContent = ctx.contact && ctx.contact.code_write_back ? "Handling code " + ctx.contact.code_write_back : "";
  $("ctx-details").textContent = ctx.contact ? [...ctx.contact.emails, ...ctx.contact.phones].join(" · ") : "no contact matches this number";
  fill("ctx-mail-received", ctx.mail_received, (m) => `${when(m.date)} — ${m.subject}`);
  fill("ctx-mail-sent", ctx.mail_sent, (m) => `${when(m.date)} — ${m.subject}`);
  fill("ctx-events", ctx.events, (e) => `${meetingTime(e)}${e.subject}`);
  fill("ctx-documents", ctx.documents, (d) => `${d.name} (${when(d.modified)})`);
  fill("ctx-calls", ctx.calls, (c) => `${when(c.at)} — ${c.method.method || c.method}${c.events.length ? " — " + journalText(c.events) : ""}`);
  $("context").scrollIntoView({ behavior: "smooth" });
}

// ---- chat ------------------------------------------------------------------

function openChat(call) {
  state.chatCall = call;
  $("chat").hidden = false;
  $("chat-caller").textContent = `${call.caller_name || call.cli} (for ${call.user_name || call.user})`;
  $("chat-messages").replaceChildren();
  for (const e of (call.events || []).filter((e) => e.event === "chat")) addChat(e.by, e.text);
  $("chat-text").focus();
}

function addChat(by, text) {
  $("chat-messages").append(el("li", { class: "msg" }, el("span", { class: "by" }, byName(by) + ":"), el("span", { class: "text" }, text)));
}

async function onChatEvent(m) {
  refreshHistorySoon();
  if (!state.chatCall || state.chatCall.call_id !== m.call_id) {
    // A message about a call: open its chat (fetch the call if this window has not seen it).
    const call = state.calls.get(m.call_id) || await api("GET", `/api/calls/${encodeURIComponent(m.call_id)}`);
    call.events = (call.events || []).filter((e) => !(e.event === "chat" && e.at === m.at));
    openChat(call);
  }
  addChat(m.by, m.text);
}

// ---- history ---------------------------------------------------------------

function historyRow(c) {
  return el("tr", { "data-call": c.call_id, title: "open contact", onclick: () => openContact(c) },
    el("td", {}, when(c.at)), el("td", {}, c.user_name || c.user),
    el("td", {}, `${c.caller_name ? c.caller_name + " " : ""}${c.cli}`),
    el("td", {}, c.handling_code), el("td", {}, c.status),
    el("td", {}, c.method), el("td", { class: "journal" }, journalText(c.events)));
}

function addHistoryRow(call) { $("history-rows").prepend(historyRow(call)); }

async function loadHistory() {
  const user = $("history-user").value;
  const caller = $("history-caller").value.trim();
  const q = new URLSearchParams({ user });
  if (caller) q.set("caller", caller);
  const rows = await api("GET", `/api/history?${q}`);
  $("history-filter").textContent = caller ? `from ${caller}` : "";
  $("history-rows").replaceChildren(...rows.map(historyRow));
}

// ---- criteria --------------------------------------------------------------

function showCriteria(c) {
  for (const [k, v] of Object.entries(c)) { const i = $("criteria").elements[k]; if (i) i.value = v; }
}

async function saveCriteria(ev) {
  ev.preventDefault();
  const f = $("criteria").elements;
  const c = {};
  for (const k of ["days_back", "days_ahead", "max_mail", "max_events", "max_documents", "max_calls"]) c[k] = Number(f[k].value);
  try {
    showCriteria(await api("PUT", "/api/criteria", c));
    $("criteria-saved").textContent = "saved";
  } catch (e) { $("criteria-saved").textContent = `not saved: ${e.message}`; }
}

// ---- start -----------------------------------------------------------------

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("ready", () => { $("live").dataset.state = "on"; $("live").textContent = "live"; });
  es.addEventListener("call", (e) => showCall(JSON.parse(e.data)));
  es.addEventListener("directive", (e) => showDirective(JSON.parse(e.data)));
  es.addEventListener("chat", (e) => onChatEvent(JSON.parse(e.data)));
  es.onerror = () => {
    $("live").dataset.state = "off";
    $("live").textContent = "reconnecting";
    // The server ends the stream when the session ends; the browser gives up when
    // reconnecting is refused (401): ask who we are (shows sign-in), else retry.
    if (es.readyState === EventSource.CLOSED) {
      api("GET", "/api/me").then(() => setTimeout(connect, 3000), () => {});
    }
  };
}

async function start() {
  try { state.me = await api("GET", "/api/me"); } catch { return; }
  const me = state.me;
  $("who").textContent = `${me.user.display_name || me.user.id} (${me.user.id})`;
  $("logout").hidden = false;
  if ("Notification" in window && Notification.permission === "default") {
    $("desktop").hidden = false;
    $("desktop").onclick = async () => { await Notification.requestPermission(); $("desktop").hidden = true; };
  }
  $("logout").onclick = async () => { await api("POST", "/logout"); location.reload(); };
  if (me.attends.length) {
    $("attendant").hidden = false;
    $("attended").textContent = me.attends.map((u) => u.display_name || u.id).join(", ");
  }
  for (const u of [me.user, ...me.attends]) $("history-user").append(el("option", { value: u.id }, u.display_name || u.id));
  showCriteria(me.criteria);
  $("criteria").addEventListener("submit", saveCriteria);
  $("history-form").addEventListener("submit", (e) => { e.preventDefault(); loadHistory(); });
  $("chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("chat-text").value.trim();
    if (!text || !state.chatCall) return;
    $("chat-text").value = "";
    await api("POST", `/api/calls/${encodeURIComponent(state.chatCall.call_id)}/chat`, { text });
  });
  $("chat-close").onclick = () => { $("chat").hidden = true; state.chatCall = null; };
  connect();
  loadHistory();
  restoreRinging().catch(() => {});
}

start();
