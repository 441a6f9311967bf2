// The notification window: pops ringing calls, shows what happens to them
// (every change arrives live), sends directives, looks anyone up, shows the
// caller's context, the call history and a chat per call. Plain JS; every
// text from the server goes through textContent, links only with http(s).
"use strict";

const state = { me: null, calls: new Map(), chatCall: null, title: document.title, flash: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "tabindex") e.setAttribute(k, v);
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
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

function showSignIn() {
  $("signin").hidden = false;
  for (const s of document.querySelectorAll("section")) s.hidden = true;
}

const when = (t) => new Date(t).toLocaleString();
const allUsers = () => state.me ? [state.me.user, ...state.me.attends] : [];
const userName = (id) => {
  if (!state.me) return id;
  const u = [...allUsers(), state.me.attendant].find((u) => u && u.id === id);
  return u ? (u.display_name || u.id) : id;
};
const byName = (by) => {
  if (!by) return "";
  if (by.startsWith("attendant:")) return "attendant " + userName(by.slice(10));
  return userName(by);
};
// A link only to where things live on the web (never javascript: or data:).
const safeUrl = (u) => { try { const x = new URL(u); return ["https:", "http:"].includes(x.protocol) ? x.href : null; } catch { return null; } };

function journalText(events) {
  return (events || []).map((e) => {
    if (e.event === "directive") return `${e.action}${e.target ? " " + e.target : ""} (${byName(e.by)})`;
    if (e.event === "chat") return `chat ${byName(e.by)}: ${e.text}`;
    if (e.event === "forwarded") return `forwarded ${e.to}${e.by ? " (" + byName(e.by) + ")" : ""}`;
    if (e.event === "answered") return `answered${e.by ? " by " + byName(e.by) : ""}`;
    return e.event;
  }).join("; ");
}

// Where a call stands, in words.
function phaseText(p) {
  if (!p) return "ringing";
  const by = (b) => b ? ` by ${byName(b)}` : "";
  switch (p.phase) {
    case "ringing": return "ringing";
    case "answered": return `answered${by(p.by)}`;
    case "forwarded": return `forwarded to ${p.to}${by(p.by)}`;
    case "voicemail": return `sent to voicemail${by(p.by)}`;
    case "rejected": return `rejected${by(p.by)}`;
    case "missed": return "missed";
    case "ended": return p.answered_by ? `ended (answered by ${byName(p.answered_by)})` : "ended";
    default: return p.phase;
  }
}
const isRinging = (p) => !p || p.phase === "ringing";

// ---- ringing: title flash, sound -------------------------------------------

function ringingCount() { return document.querySelectorAll(".card.ringing").length; }

function updateRinging() {
  const n = ringingCount();
  if (n && !state.flash) {
    let on = false;
    state.flash = setInterval(() => {
      on = !on;
      const c = document.querySelector(".card.ringing .caller-name");
      document.title = on ? `☎ ${c ? c.textContent : "Call"} — ringing` : state.title;
    }, 800);
  } else if (!n && state.flash) {
    clearInterval(state.flash);
    state.flash = null;
    document.title = state.title;
  }
}

const soundOn = () => localStorage.getItem("cb.ringSound") === "1";
// One audio context, unlocked by the user's first click or key (browsers refuse sound before that).
let audio = null;
function unlockAudio() {
  if (!soundOn()) return;
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
  } catch { audio = null; }
}
function ringSound() {
  if (!soundOn()) return;
  unlockAudio();
  if (!audio) return; // no audio: the title still flashes
  for (const [i, f] of [[0, 880], [1, 660], [2, 880]]) {
    const o = audio.createOscillator(); const g = audio.createGain();
    o.frequency.value = f; g.gain.value = 0.08;
    o.connect(g).connect(audio.destination);
    o.start(audio.currentTime + i * 0.25); o.stop(audio.currentTime + i * 0.25 + 0.2);
  }
}

// ---- notification cards ----------------------------------------------------

function card(call) {
  const mine = call.user === state.me.user.id;
  const act = (action, extra) => () => sendDirective(call, action, extra);
  const typed = el("input", { class: "typed live-action", placeholder: "other number", type: "tel", "aria-label": "other number to forward to" });
  const forwards = call.forward.map((t) =>
    el("button", { class: "fwd live-action", type: "button", "data-number": t.number, onclick: act("forward", { to: t.number }) },
      `${t.label} ${t.number}`));
  const name = call.caller_name || "Unknown caller";
  const c = el("article", { class: "card", "data-call": call.call_id, "data-user": call.user, tabindex: "-1",
    "aria-label": `Call from ${name} ${call.cli}${mine ? "" : " for " + (call.user_name || call.user)}` },
    el("h2", { class: "caller-name" }, name),
    el("div", { class: "company" }, call.company || ""),
    el("div", { class: "number" }, call.cli),
    el("div", { class: "meta" },
      el("span", { class: "phase", role: "status" }, phaseText(call.phase)),
      el("span", { class: `tag code code-${call.handling_code}` }, `code: ${call.handling_code}`),
      el("span", { class: "tag status" }, `status: ${call.status}`),
      el("span", { class: "tag method" }, `handling: ${call.method}${call.target ? " " + call.target : ""}`),
      mine ? null : el("span", { class: "tag for" }, `for ${call.user_name || call.user}`),
      el("span", { class: "tag at" }, when(call.at))),
    el("div", { class: "actions" },
      ...forwards,
      typed,
      el("button", { type: "button", class: "fwd-typed live-action", onclick: () => sendDirective(call, "forward", { to: typed.value }) }, "Forward"),
      el("button", { type: "button", class: "accept primary live-action", "aria-keyshortcuts": "A", onclick: act("accept") }, "Accept"),
      el("button", { type: "button", class: "voicemail live-action", "aria-keyshortcuts": "V", onclick: act("voicemail") }, "Voicemail"),
      el("button", { type: "button", class: "reject danger live-action", onclick: act("reject") }, "Reject"),
      el("button", { type: "button", class: "block danger live-action", onclick: () => {
        if (confirm(`Always block ${call.cli}?`)) sendDirective(call, "block");
      } }, "Always block"),
      el("button", { type: "button", class: "open-contact", "aria-keyshortcuts": "O", onclick: () => openContact(call) }, "Open contact"),
      el("button", { type: "button", class: "open-chat", "aria-keyshortcuts": "C", onclick: () => openChat(call) }, "Chat"),
      el("button", { type: "button", class: "dismiss", onclick: () => { c.remove(); updateRinging(); } }, "Dismiss")),
    el("div", { class: "state", role: "status" }));
  setPhase(c, call.phase);
  return c;
}

function setPhase(c, phase) {
  c.querySelector(".phase").textContent = phaseText(phase);
  c.dataset.phase = phase ? phase.phase : "ringing";
  c.classList.toggle("ringing", isRinging(phase));
  c.classList.toggle("done", !isRinging(phase));
}

// The box a call's card goes in: the user's own, or the attended user's group.
function boxFor(call) {
  if (call.user === state.me.user.id) return $("notifications");
  return document.querySelector(`.attended-user[data-user="${CSS.escape(call.user)}"] .calls`);
}

// After a reload: calls of the last two minutes that still ring (by their journal) come back.
async function restoreRinging() {
  const since = Date.now() - 120000;
  const rows = await api("GET", `/api/history?${new URLSearchParams({ days: 1, limit: 50 })}`);
  for (const c of rows.reverse()) {
    if (new Date(c.at) >= since && isRinging(c.phase) && !state.calls.has(c.call_id)) showCall(c, false);
  }
}

function showCall(call, live = true) {
  state.calls.set(call.call_id, call);
  const mine = call.user === state.me.user.id;
  if (live) addHistoryRow(call);
  // The user's window pops for "notify"; the attendant view shows every call of the users attended.
  if (mine && call.method !== "notify") return;
  const box = boxFor(call);
  if (!box || box.querySelector(`.card[data-call="${CSS.escape(call.call_id)}"]`)) return;
  const empty = box.parentElement.querySelector(".empty");
  if (empty) empty.hidden = true;
  const c = card(call);
  box.prepend(c);
  updateRinging();
  if (!live || !isRinging(call.phase)) return;
  // A pop takes the focus unless the user is typing somewhere.
  const a = document.activeElement;
  if (!a || !["INPUT", "TEXTAREA", "SELECT"].includes(a.tagName)) c.focus({ preventScroll: false });
  ringSound();
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

const cardsOf = (id) => document.querySelectorAll(`.card[data-call="${CSS.escape(id)}"]`);

async function sendDirective(call, action, extra) {
  try {
    const r = await api("POST", `/api/calls/${encodeURIComponent(call.call_id)}/directive`, { action, ...(extra || {}) });
    for (const c of cardsOf(call.call_id)) {
      c.querySelector(".state").textContent = `${action === "block" ? "blocked and rejected" : r.action}${r.target ? " " + r.target : ""} — ${deliveryText(r.delivered)}`;
      showDelivery(c, r.delivered);
    }
  } catch (e) {
    for (const c of cardsOf(call.call_id)) c.querySelector(".state").textContent = `failed: ${e.message}`;
  }
}

let historyTimer = null;
function refreshHistorySoon() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => loadHistory().catch(() => {}), 300);
}

// Any change of a call (this window, another, the phone system): every card of it follows.
function applyPhase(callId, phase) {
  const known = state.calls.get(callId);
  if (known) known.phase = phase;
  for (const c of cardsOf(callId)) setPhase(c, phase);
  updateRinging();
  refreshHistorySoon();
}

function showDirective(d) {
  for (const c of cardsOf(d.call_id)) {
    c.querySelector(".state").textContent = `${d.action}${d.target ? " " + d.target : ""} by ${byName(d.by)} — ${deliveryText(d.delivered)}`;
    showDelivery(c, d.delivered);
  }
  applyPhase(d.call_id, d.phase);
}

function showUpdate(u) {
  for (const c of cardsOf(u.call_id)) {
    c.querySelector(".state").textContent = `${u.event.event} — reported by the phone system at ${new Date(u.event.at).toLocaleTimeString()}`;
    c.classList.remove("undelivered");
  }
  applyPhase(u.call_id, u.phase);
}

// ---- keyboard --------------------------------------------------------------

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  const typing = t && (["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) || t.isContentEditable);
  if (typing) return;
  if (ev.key === "/") { ev.preventDefault(); $("search-text").focus(); return; }
  const c = t && t.closest && t.closest(".card");
  if (!c) return;
  const click = (sel) => { const b = c.querySelector(sel); if (b && b.offsetParent !== null) { ev.preventDefault(); b.click(); } };
  switch (ev.key.toLowerCase()) {
    case "a": click("button.accept"); break;
    case "f": click("button.fwd"); break;
    case "v": click("button.voicemail"); break;
    case "o": click("button.open-contact"); break;
    case "c": click("button.open-chat"); break;
  }
}

// ---- context ---------------------------------------------------------------

function fill(id, items, item) {
  const ul = $(id);
  ul.replaceChildren(...(items.length ? items.map((i) => el("li", {}, ...item(i))) : [el("li", { class: "empty" }, "none")]));
}

function linked(text, url) {
  const u = safeUrl(url || "");
  return u ? el("a", { href: u, target: "_blank", rel: "noopener noreferrer" }, text) : el("span", {}, text);
}

const person = (p) => p ? (p.name ? `${p.name} <${p.email}>` : p.email) : "";

function mailItem(m) {
  const who = m.direction === "sent" ? `to ${(m.to || []).map(person).join(", ")}` : `from ${person(m.from)}`;
  return [el("span", {}, `${when(m.date)} — `), linked(m.subject || "(no subject)", m.web_link), el("span", {}, ` ${who}`),
    m.preview ? el("span", { class: "preview" }, m.preview) : null];
}

// A meeting in progress is "now"; else the next occurrence, else the last one.
function meetingItem(e) {
  const occ = (e.occurrences || []).map((o) => ({ start: new Date(o.start), end: new Date(o.end) })).sort((a, b) => a.start - b.start);
  const now = new Date();
  const current = occ.find((o) => o.start <= now && now < o.end);
  const next = occ.find((o) => o.start > now);
  let label = null;
  if (current) label = el("span", { class: "now" }, `now (until ${current.end.toLocaleTimeString()}) — `);
  else if (next) label = el("span", {}, `next ${next.start.toLocaleString()} — `);
  else if (occ.length) label = el("span", {}, `${occ[occ.length - 1].start.toLocaleString()} — `);
  const people = [e.organizer, ...(e.attendees || [])].filter(Boolean);
  return [label, linked(e.subject || "(no subject)", e.web_link),
    el("span", { class: "preview" }, [e.location, people.length ? `with ${people.join(", ")}` : null].filter(Boolean).join(" · "))];
}

function documentItem(d) {
  const people = (d.people || []).map(person).filter(Boolean);
  return [linked(d.name, d.web_link), el("span", {}, ` (${when(d.modified)})`),
    people.length ? el("span", { class: "preview" }, people.join(", ")) : null];
}

function showContext(ctx, title, actions) {
  $("context").hidden = false;
  $("ctx-name").textContent = ctx.contact ? ctx.contact.name : title;
  $("ctx-company").textContent = ctx.contact && ctx.contact.company ? ctx.contact.company : "";
  $("ctx-code").textContent = ctx.contact && ctx.contact.code_write_back ? "Handling code " + ctx.contact.code_write_back : "";
  $("ctx-details").textContent = ctx.contact ? [ctx.contact.job_title, ...ctx.contact.emails, ...ctx.contact.phones].filter(Boolean).join(" · ") : "no contact matches this number";
  $("ctx-actions").replaceChildren(...actions);
  fill("ctx-mail-received", ctx.mail_received, mailItem);
  fill("ctx-mail-sent", ctx.mail_sent, mailItem);
  // A meeting in progress comes first.
  const inProgress = (e) => (e.occurrences || []).some((o) => new Date(o.start) <= new Date() && new Date() < new Date(o.end));
  fill("ctx-events", [...ctx.events.filter(inProgress), ...ctx.events.filter((e) => !inProgress(e))], meetingItem);
  fill("ctx-documents", ctx.documents, documentItem);
  fill("ctx-calls", ctx.calls, (c) => [`${when(c.at)} — ${c.method.method || c.method}${c.events.length ? " — " + journalText(c.events) : ""}`]);
  $("context").scrollIntoView({ behavior: "smooth" });
  $("context").focus({ preventScroll: true });
}

async function openContact(call) {
  const ctx = await api("GET", `/api/calls/${encodeURIComponent(call.call_id)}/context`);
  const phones = ctx.contact ? ctx.contact.phones : [];
  showContext(ctx, call.cli, dialButtons(call.user, phones.length ? phones : [call.cli]));
}

// "Call" buttons: a dial directive to the phone system from `user`'s phone.
function dialButtons(user, numbers) {
  return numbers.filter(Boolean).slice(0, 4).map((n) =>
    el("button", { type: "button", class: "dial", "data-number": n, onclick: () => dial(user, n) }, `Call ${n}`));
}

async function dial(user, number) {
  const status = $("search-status");
  try {
    const r = await api("POST", "/api/dial", { user, to: number });
    status.textContent = `Calling ${r.target} — ${deliveryText(r.delivered)}`;
  } catch (e) {
    status.textContent = `Not dialled: ${e.message}`;
  }
  status.scrollIntoView({ block: "nearest" });
}

// The viewer's handling code for one of their own contacts (written back to the source where the
// account allows it; the line under the name tells how far that got).
function codeForm(contact) {
  const input = el("input", { type: "text", maxLength: 40, placeholder: "handling code, e.g. vip", "aria-label": "Handling code" });
  const set = async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("PUT", "/api/contact/code", { contact, code: input.value.trim() || null });
      $("ctx-code").textContent = r.code_write_back ? "Handling code " + r.code_write_back : r.outcome;
    } catch (e) {
      $("ctx-code").textContent = `Code not set: ${e.message}`;
    }
  };
  return el("form", { class: "code", onsubmit: set }, input, el("button", { type: "submit" }, "Set code"));
}

// ---- search ----------------------------------------------------------------

const looksLikeNumber = (q) => /^[+0-9 ()./-]+$/.test(q) && (q.match(/[0-9]/g) || []).length >= 3;

async function search(ev) {
  ev.preventDefault();
  const q = $("search-text").value.trim();
  const status = $("search-status");
  const out = $("search-results");
  if (!q) return;
  try {
    const hits = await api("GET", `/api/search?${new URLSearchParams({ q })}`);
    const many = allUsers().length > 1;
    const items = hits.map((h) => {
      const open = async () => showContext(await api("GET", `/api/contact?${new URLSearchParams({ user: h.user, contact: h.contact })}`),
        h.name, [...dialButtons(h.user, h.phones), ...(h.user === state.me.user.id ? [codeForm(h.contact)] : [])]);
      return el("li", { class: "hit", tabindex: "0", role: "button", "data-user": h.user, onclick: open,
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
        el("span", { class: "who" }, h.name), h.company ? el("span", {}, ` — ${h.company}`) : null,
        el("span", { class: "preview" }, [...h.phones, ...h.emails].join(" · ") + (many ? ` (contact of ${h.user_name || h.user})` : "")));
    });
    if (looksLikeNumber(q)) {
      const open = async () => showContext(await api("GET", `/api/contact?${new URLSearchParams({ number: q })}`), q, dialButtons(state.me.user.id, [q]));
      items.push(el("li", { class: "hit number", tabindex: "0", role: "button", onclick: open,
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
        el("span", { class: "who" }, `The number ${q}`), el("span", { class: "preview" }, "its calls and context")));
    }
    out.replaceChildren(...items);
    status.textContent = hits.length ? `${hits.length} found` : "no contact found";
  } catch (e) {
    out.replaceChildren();
    status.textContent = `Search failed: ${e.message}`;
  }
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
  const open = () => openContact(c);
  const td = (label, text, cls) => el("td", { "data-label": label, class: cls || "" }, text);
  return el("tr", { "data-call": c.call_id, title: "open contact", tabindex: "0", onclick: open,
    onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); open(); } } },
    td("When", when(c.at)), td("For", c.user_name || c.user),
    td("Caller", `${c.caller_name ? c.caller_name + " " : ""}${c.cli}`),
    td("Code", c.handling_code), td("Status", c.status),
    td("Outcome", phaseText(c.phase), "outcome"), td("Journal", journalText(c.events), "journal"));
}

function addHistoryRow(call) {
  const sel = $("history-user").value;
  if (sel && sel !== call.user) return;
  if ($("history-rows").querySelector(`tr[data-call="${CSS.escape(call.call_id)}"]`)) return;
  $("history-rows").prepend(historyRow(call));
}

async function loadHistory() {
  const user = $("history-user").value;
  const caller = $("history-caller").value.trim();
  const q = new URLSearchParams();
  if (user) q.set("user", user);
  if (caller) q.set("caller", caller);
  const rows = await api("GET", `/api/history?${q}`);
  $("history-filter").textContent = caller ? `from ${caller}` : "";
  $("history-rows").replaceChildren(...rows.map(historyRow));
}

// ---- attendant -------------------------------------------------------------

function attendedGroups(me) {
  $("attendant-users").replaceChildren(...me.attends.map((u) =>
    el("div", { class: "attended-user", "data-user": u.id },
      el("h2", {}, el("span", {}, u.display_name || u.id),
        el("span", { class: "ustatus", "data-status": u.status || "" }, u.status ? u.status.replace(/_/g, " ") : "status unknown"),
        el("span", { class: "preview sreason" }, statusReason(u))),
      el("p", { class: "empty" }, "No calls waiting."),
      el("div", { class: "calls", "aria-live": "polite" }))));
}

const statusReason = (u) => [u.status_reason, u.status_until ? `until ${new Date(u.status_until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}` : null].filter(Boolean).join(", ");

// Statuses change with meetings and out-of-office: ask again every minute.
async function refreshStatuses() {
  const me = await api("GET", "/api/me");
  for (const u of me.attends) {
    const s = document.querySelector(`.attended-user[data-user="${CSS.escape(u.id)}"] .ustatus`);
    if (s) { s.dataset.status = u.status || ""; s.textContent = u.status ? u.status.replace(/_/g, " ") : "status unknown"; }
    const r = document.querySelector(`.attended-user[data-user="${CSS.escape(u.id)}"] .sreason`);
    if (r) r.textContent = statusReason(u);
  }
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

// After a reconnect (network, server restart, a lagging stream), changes may have been missed:
// every card asks where its call stands now.
async function resync() {
  for (const id of new Set([...document.querySelectorAll(".card")].map((c) => c.dataset.call))) {
    const call = await api("GET", `/api/calls/${encodeURIComponent(id)}`).catch(() => null);
    if (call) applyPhase(id, call.phase);
  }
  restoreRinging().catch(() => {});
}

let connectedBefore = false;
function connect() {
  const es = new EventSource("/events");
  es.addEventListener("ready", () => {
    $("live").dataset.state = "on"; $("live").textContent = "live";
    if (connectedBefore) resync().catch(() => {});
    connectedBefore = true;
  });
  es.addEventListener("call", (e) => showCall(JSON.parse(e.data)));
  es.addEventListener("directive", (e) => showDirective(JSON.parse(e.data)));
  es.addEventListener("update", (e) => showUpdate(JSON.parse(e.data)));
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
    attendedGroups(me);
    setInterval(() => refreshStatuses().catch(() => {}), 60000);
    $("history-user").append(el("option", { value: "" }, "Everyone I see"));
  }
  for (const u of allUsers()) $("history-user").append(el("option", { value: u.id }, u.display_name || u.id));
  showCriteria(me.criteria);
  $("ring-sound").checked = soundOn();
  $("ring-sound").addEventListener("change", (e) => { localStorage.setItem("cb.ringSound", e.target.checked ? "1" : "0"); unlockAudio(); });
  for (const ev of ["pointerdown", "keydown"]) document.addEventListener(ev, unlockAudio, { once: true });
  $("criteria").addEventListener("submit", saveCriteria);
  $("search-form").addEventListener("submit", search);
  $("history-form").addEventListener("submit", (e) => { e.preventDefault(); loadHistory(); });
  $("chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("chat-text").value.trim();
    if (!text || !state.chatCall) return;
    $("chat-text").value = "";
    await api("POST", `/api/calls/${encodeURIComponent(state.chatCall.call_id)}/chat`, { text });
  });
  $("chat-close").onclick = () => { $("chat").hidden = true; state.chatCall = null; };
  document.addEventListener("keydown", onKey);
  connect();
  loadHistory();
  restoreRinging().catch(() => {});
}

start();
