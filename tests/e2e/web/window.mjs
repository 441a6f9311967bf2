// The notification window in one headless Chromium (Debian's chromium, driven
// by playwright-core), three signed-in pages with their own cookies: the demo
// user (1280 px), her attendant `desk` (a 400-px side panel) and `visitor`, a
// user of the same tenant who may see none of it. phone.py plays the phone
// system over gRPC. Checked: a call pops (focus on the card), the context
// links where things live and shows a meeting in progress as now, chat
// crosses, a click forwards (WatchDirectives gets it), the keyboard sends to
// voicemail, gRPC SendDirective and ReportCallEvent update every open window
// that may see the call (timed) and no other, a reload shows no ended call as
// ringing, search and "call" (a DIAL directive), hostile search and dial
// input, not-delivered clicks, the manifest, and axe-core finds no serious or
// critical violation (light and dark). Screenshots go to $SHOTS.
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import readline from "node:readline";

const env = (k) => {
  if (!process.env[k]) throw new Error(`window.mjs: ${k} is not set`);
  return process.env[k];
};
const require = createRequire(join(env("TOOLS"), "node", "package.json"));
const { chromium } = require("playwright-core");
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const shots = env("SHOTS");
const children = [];
let browser = null;
const figures = [];

function fail(msg) { throw new Error(`window.mjs: ${msg}`); }

async function open(link, who, width) {
  const ctx = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error(`[${who}] page error: ${e.message}`));
  page.on("dialog", (d) => fail(`[${who}] unexpected dialog: ${d.message()}`));
  await page.goto(link);
  await page.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
  console.log(`${who}: signed in as ${await page.textContent("#who")}, live`);
  return page;
}

/** phone.py: send a command, wait for lines. */
function phone() {
  const child = spawn(env("PY"), [join(env("ROOT"), "tests/e2e/web/phone.py"), "--addr", env("GRPC_ADDR")],
    { stdio: ["pipe", "pipe", "inherit"] });
  children.push(child);
  const lines = [];
  const waiters = [];
  readline.createInterface({ input: child.stdout }).on("line", (l) => {
    console.log(`phone: ${l}`);
    lines.push(JSON.parse(l));
    while (waiters.length) waiters.shift()();
  });
  const next = async (pred, what, ms = 30000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = lines.findIndex(pred);
      if (i >= 0) return lines.splice(i, 1)[0];
      if (child.exitCode !== null) fail(`phone.py exited (${child.exitCode}) before ${what}`);
      if (Date.now() > deadline) fail(`no ${what} from phone.py within ${ms} ms`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
    }
  };
  const send = async (cmd) => {
    child.stdin.write(JSON.stringify(cmd) + "\n");
    return next((l) => l.op === cmd.op, cmd.op);
  };
  return { send, next, ready: next((l) => l.ready, "start") };
}

async function expectText(page, selector, text) {
  await page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(t)),
    [selector, text], { timeout: 10000 }).catch(async () => {
    const seen = await page.$$eval(selector, (es) => es.map((e) => e.textContent)).catch(() => []);
    fail(`"${text}" not found in ${selector} (it shows ${JSON.stringify(seen).slice(0, 500)})`);
  });
}

/** Starts watching `selector`'s text in the page; resolves with Date.now() when it contains `text`. */
function whenText(page, selector, text) {
  return page.evaluate(([s, t]) => new Promise((resolve, reject) => {
    const hit = () => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(t));
    if (hit()) return resolve(Date.now());
    const mo = new MutationObserver(() => { if (hit()) { mo.disconnect(); resolve(Date.now()); } });
    mo.observe(document.body, { subtree: true, childList: true, characterData: true });
    setTimeout(() => { mo.disconnect(); reject(new Error(`"${t}" not in ${s}`)); }, 10000);
  }), [selector, text]);
}

/** Runs `act` (an RPC through phone.py) and times how long until every page shows `text` in the call's card. */
async function timed(what, pages, callId, text, act) {
  const sel = `.card[data-call="${callId}"] .phase`;
  const seen = pages.map((p) => whenText(p, sel, text));
  const r = await act();
  if (r.error) fail(`${what}: ${r.error} ${r.message}`);
  const at = await Promise.all(seen);
  const ms = at.map((t) => Math.round(t - r.sent_ms));
  figures.push(`${what}: ${ms.join(" / ")} ms (RPC sent -> card shows "${text}" in each window)`);
  for (const m of ms) if (m > 2000) fail(`${what} took ${m} ms to reach a window`);
  return ms;
}

async function axe(page, who) {
  await page.evaluate(AXE);
  const r = await page.evaluate(() => window.axe.run(document));
  const bad = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of r.violations) console.log(`axe ${who}: ${v.impact} ${v.id} (${v.nodes.length})`);
  if (bad.length) {
    fail(`axe-core, ${who}: ${bad.map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`).join("; ")}`);
  }
  figures.push(`axe-core ${who}: ${r.passes.length} rules passed, ${r.violations.length} violations, none serious or critical`);
}

async function main() {
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: FLAGS });
  const user = await open(env("DEMO_LINK"), "user", 1280);
  const desk = await open(env("DESK_LINK"), "attendant", 400);
  const visitor = await open(env("VISITOR_LINK"), "visitor", 800);
  if (!(await desk.isVisible("#attendant"))) fail("the attendant view is not shown to the attendant");
  if (await user.isVisible("#attendant")) fail("the user sees an attendant view");
  await expectText(desk, '.attended-user[data-user="demo"] h2', "Dana Demo");
  await expectText(desk, '.attended-user[data-user="demo"] .ustatus', "busy");
  await expectText(desk, '.attended-user[data-user="demo"] .sreason', "Delivery call with ACME, until");
  // 400 px: nothing sticks out sideways (the page does not scroll horizontally).
  const overflow = await desk.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) fail(`the 400-px window is ${overflow} px too wide`);

  const ph = phone();
  await ph.ready;
  await ph.send({ op: "watch" });
  const placed = await ph.send({ op: "resolve", cli: "+49 30 1234567", tsps_call_id: "e2e-web-1" });
  const card = `#notifications .card[data-call="${placed.call_id}"]`;
  await user.waitForSelector(card, { timeout: 10000 });
  console.log(`the window popped ${Date.now() - placed.sent_ms} ms after ResolveCall was sent`);
  for (const t of ["Erika Mustermann", "ACME GmbH", "code: vip", "status:", "ringing", "Mobile +49 170 1234567", "Reception +49 30 901829"]) {
    await expectText(user, card, t);
  }
  // A pop takes the focus; the title flashes while it rings.
  if (!(await user.evaluate((s) => document.activeElement === document.querySelector(s), card))) fail("the pop did not take the focus");
  await user.waitForFunction(() => document.title.includes("ringing"), null, { timeout: 5000 })
    .catch(() => fail("the title does not flash while the call rings"));
  await user.screenshot({ path: join(shots, "notification.png") });

  const deskCard = `#attendant-users .attended-user[data-user="demo"] .card[data-call="${placed.call_id}"]`;
  await desk.waitForSelector(deskCard, { timeout: 10000 });
  await desk.reload();
  await desk.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
  await desk.waitForSelector(deskCard, { timeout: 10000 });
  if ((await desk.locator(deskCard).count()) !== 1) fail("the reloaded attendant view shows the call twice");
  await expectText(desk, deskCard, "for Dana Demo");
  console.log("the attendant sees the call");

  await user.click(`${card} .open-contact`);
  await expectText(user, "#ctx-mail-received li", "Order 4711: delivery date");
  await expectText(user, "#ctx-mail-received li", "from erika.mustermann@acme.example");
  await expectText(user, "#ctx-mail-received li .preview", "can we move the delivery");
  await expectText(user, "#ctx-mail-sent li", "Re: Order 4711");
  await expectText(user, "#ctx-events li", "Weekly purchasing sync with ACME");
  await expectText(user, "#ctx-events li .now", "now (until");
  await expectText(user, "#ctx-documents li", "ACME framework agreement 2026.docx");
  const links = await user.$$eval("#context a", (as) => as.map((a) => a.href));
  for (const l of ["https://mail.demo.example/owa/?ItemID=m1", "https://files.demo.example/sites/purchasing/"]) {
    if (!links.some((h) => h.startsWith(l))) fail(`no link to ${l} in the context (${links.join(", ")})`);
  }
  // The hostile mail: its markup is text, its javascript: link is no link.
  await expectText(user, "#ctx-mail-received li", "<img src=x onerror=alert(1)>Invoice");
  if (links.some((h) => !h.startsWith("https:"))) fail(`a link that is not https: ${links.join(", ")}`);
  if (await user.locator("#context img, #context script").count()) fail("markup from a mail became an element");
  console.log("the context links mail and documents where they live and shows the meeting in progress as now");
  await user.locator("#context").screenshot({ path: join(shots, "context.png") });

  // Chat: the user writes, the attendant's window shows it and answers.
  await user.click(`${card} .open-chat`);
  await user.fill("#chat-text", "In a meeting until 3, please take a message");
  await user.click("#chat-form button[type=submit]");
  await expectText(desk, "#chat-messages li", "In a meeting until 3, please take a message");
  await desk.fill("#chat-text", "Will do, I'll tell Erika");
  await desk.click("#chat-form button[type=submit]");
  await expectText(user, "#chat-messages li", "Will do, I'll tell Erika");
  console.log("chat messages crossed between the two windows");
  // The attendant's 400-px side panel while the call rings: the user's status, the card, the chat.
  await desk.screenshot({ path: join(shots, "attendant-400px.png"), fullPage: true });

  // Forward to the mobile: the phone system's stream receives the directive; both cards say so.
  const clicked = Date.now();
  await user.click(`${card} button.fwd[data-number="+49 170 1234567"]`);
  const d = await ph.next((l) => l.directive, "directive", 10000);
  if (d.directive !== "forward" || d.target !== "+49 170 1234567" || d.by !== "demo" || d.call_id !== placed.call_id
      || d.tsps_call_id !== "e2e-web-1") {
    fail(`unexpected directive ${JSON.stringify(d)}`);
  }
  figures.push(`click -> WatchDirectives: ${Math.round(d.received_ms - clicked)} ms`);
  await expectText(user, `${card} .state`, "forward +49 170 1234567");
  await expectText(desk, `${deskCard} .state`, "forward +49 170 1234567 by Dana Demo");
  await expectText(desk, `${deskCard} .phase`, "forwarded to +49 170 1234567 by Dana Demo");
  if (await desk.isVisible(`${deskCard} button.accept`)) fail("a forwarded call still offers Accept");

  // The keyboard: a second call pops with the focus on its card; V sends it to voicemail.
  const second = await ph.send({ op: "resolve", cli: "+49 30 1234567", tsps_call_id: "e2e-web-2" });
  const card2 = `#notifications .card[data-call="${second.call_id}"]`;
  await user.waitForSelector(card2, { timeout: 10000 });
  await user.waitForFunction((s) => document.activeElement === document.querySelector(s), card2, { timeout: 5000 })
    .catch(() => fail("the second pop did not take the focus"));
  await user.keyboard.press("v");
  const vm = await ph.next((l) => l.directive === "voicemail", "voicemail directive", 10000);
  if (vm.call_id !== second.call_id) fail(`voicemail for the wrong call ${JSON.stringify(vm)}`);
  const deskCard2 = `.card[data-call="${second.call_id}"]`;
  await expectText(desk, `${deskCard2} .phase`, "sent to voicemail by Dana Demo");
  // After a reload, the attendant does not see it (or the forwarded one) as ringing with an Accept button.
  await desk.reload();
  await desk.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
  await desk.waitForTimeout(500);
  if (await desk.locator(`${deskCard2}, ${deskCard}`).count()) fail("the reloaded attendant view shows a dealt-with call as ringing");
  console.log("the keyboard sent a call to voicemail; the reloaded attendant view does not show it as ringing");

  // gRPC SendDirective and ReportCallEvent update every window that may see the call, and no other.
  const third = await ph.send({ op: "resolve", cli: "+49 30 1234567", tsps_call_id: "e2e-web-3" });
  const card3 = `.card[data-call="${third.call_id}"]`;
  await user.waitForSelector(card3, { timeout: 10000 });
  await desk.waitForSelector(card3, { timeout: 10000 });
  await timed("gRPC SendDirective forward", [user, desk], third.call_id, "forwarded to +49 30 901829",
    () => ph.send({ op: "directive", call_id: third.call_id, action: "forward", target: "+49 30 901829", by: "attendant:desk" }));
  await timed("gRPC ReportCallEvent answered", [user, desk], third.call_id, "answered by attendant Front Desk",
    () => ph.send({ op: "report", call_id: third.call_id, kind: "answered", by: "attendant:desk" }));
  await timed("gRPC ReportCallEvent ended", [user, desk], third.call_id, "ended (answered by attendant Front Desk)",
    () => ph.send({ op: "report", call_id: third.call_id, kind: "ended" }));
  if (await visitor.locator(".card").count()) fail("a user of the same tenant who attends nobody sees a card");
  if ((await visitor.textContent("#history-rows")).includes("Erika")) fail("the visitor's history shows the demo user's calls");
  await expectText(user, `#history-rows tr[data-call="${third.call_id}"] .outcome`, "ended (answered by attendant Front Desk)");
  await expectText(desk, `#history-rows tr[data-call="${third.call_id}"] .outcome`, "ended");
  console.log("SendDirective and ReportCallEvent reached both windows, not the visitor's");

  // The history opens from the keyboard.
  await user.focus(`#history-rows tr[data-call="${placed.call_id}"]`);
  await user.evaluate(() => { document.getElementById("ctx-name").textContent = ""; });
  await user.keyboard.press("Enter");
  await expectText(user, "#ctx-name", "Erika Mustermann");
  await expectText(user, `#history-rows tr[data-call="${placed.call_id}"] .journal`, "forward +49 170 1234567 (Dana Demo)");
  await expectText(user, `#history-rows tr[data-call="${placed.call_id}"] .journal`, "chat attendant Front Desk: Will do");

  // Search (name, company, number, email), open, call: a DIAL directive reaches the phone system.
  for (const q of ["acme", "030 1234567", "erika.mustermann@", "Mustermann Erika"]) {
    await user.fill("#search-text", q);
    await user.press("#search-text", "Enter");
    await expectText(user, "#search-results li.hit", "Erika Mustermann");
  }
  await user.evaluate(() => { document.getElementById("ctx-name").textContent = ""; document.getElementById("ctx-actions").replaceChildren(); });
  await user.focus("#search-results li.hit");
  await user.keyboard.press("Enter");
  await expectText(user, "#ctx-name", "Erika Mustermann");
  await user.click('#ctx-actions button.dial');
  const dial = await ph.next((l) => l.directive === "dial", "dial directive", 10000);
  if (dial.call_id !== "" || dial.user !== "demo" || !dial.target.replace(/\D/g, "").endsWith("1234567")) fail(`unexpected dial ${JSON.stringify(dial)}`);
  await expectText(user, "#search-status", "sent to the phone system (1)");
  // A handling code set on the contact in the window (the demo account does not write codes back:
  // kept in the bridge, and the window says so), then removed again.
  for (const code of ["vip", ""]) {
    await user.evaluate(() => { document.getElementById("ctx-code").textContent = ""; });
    await user.fill("#ctx-actions form.code input", code);
    await user.click("#ctx-actions form.code button");
    await expectText(user, "#ctx-code", "does not write codes back");
  }
  // The same over gRPC (SendDirective DIAL); a number that is none is INVALID_ARGUMENT.
  const g = await ph.send({ op: "dial", user_id: "demo", target: "+49 30 1234567" });
  if (g.error || g.delivered !== 1) fail(`gRPC DIAL: ${JSON.stringify(g)}`);
  await ph.next((l) => l.directive === "dial" && l.target === "+49 30 1234567", "gRPC dial directive", 10000);
  const gbad = await ph.send({ op: "dial", user_id: "demo", target: "sip:evil@example.com" });
  if (gbad.error !== "INVALID_ARGUMENT") fail(`gRPC DIAL to a SIP URI: ${JSON.stringify(gbad)}`);
  // Hostile: markup finds nothing and is shown as text; a number that is none is refused with a clear error.
  await user.fill("#search-text", '<img src=x onerror="document.title=1">');
  await user.press("#search-text", "Enter");
  await expectText(user, "#search-status", "no contact found");
  if (await user.locator("#search-results img").count()) fail("search markup became an element");
  const bad = await user.evaluate(async () => {
    const r = await fetch("/api/dial", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ to: "sip:evil@example.com;<script>" }) });
    return [r.status, (await r.json()).error];
  });
  if (bad[0] !== 400 || !bad[1].includes("is not a phone number to dial")) fail(`a hostile dial got ${bad}`);
  const other = await visitor.evaluate(async () => (await fetch("/api/search?q=Erika")).json());
  if (other.length) fail("the visitor's search finds the demo user's contacts");
  console.log("search and dial work; hostile input is refused; another user's contacts are not found");

  // axe-core on every page, light and dark.
  await axe(user, "user 1280 px");
  await axe(desk, "attendant 400 px");
  await user.emulateMedia({ colorScheme: "dark" });
  await axe(user, "user, dark");
  await user.screenshot({ path: join(shots, "window-dark.png") });
  await user.emulateMedia({ colorScheme: "light" });

  // Installable: the manifest and its icon.
  const manifest = await user.evaluate(async () => {
    const link = document.querySelector('link[rel="manifest"]').href;
    const m = await (await fetch(link)).json();
    const icon = await fetch(m.icons[0].src);
    return { ...m, iconStatus: icon.status };
  });
  if (manifest.display !== "standalone" || manifest.start_url !== "/" || manifest.iconStatus !== 200) fail(`manifest ${JSON.stringify(manifest)}`);

  // The phone system is gone: a click reaches nobody, and the window says so.
  await ph.send({ op: "unwatch" });
  await user.click('#ctx-actions button.dial');
  await expectText(user, "#search-status", "not delivered — no phone system connected");
  console.log("a click that reached no phone system shows as not delivered");
  await user.screenshot({ path: join(shots, "window.png"), fullPage: true });
  for (const f of figures) console.log(`figure: ${f}`);
  console.log("web_window: all checks passed");
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill();
  if (browser) await browser.close().catch(() => {});
}
