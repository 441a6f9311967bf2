// The notification window in two headless Chromium browsers (Debian's chromium,
// driven by playwright-core): the demo user and her attendant sign in with
// login links, a call placed by the phone-system script (tsps.py) pops the
// window, the context shows the seeded mail, meeting and document, a chat
// message crosses between the browsers, a click forwards the call and the
// phone system's WatchDirectives stream receives it; once the phone system is
// gone, a click shows as not delivered. Screenshots go to $SHOTS.
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import readline from "node:readline";

const env = (k) => {
  if (!process.env[k]) throw new Error(`window.mjs: ${k} is not set`);
  return process.env[k];
};
const require = createRequire(join(env("TOOLS"), "node", "package.json"));
const { chromium } = require("playwright-core");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const shots = env("SHOTS");
const dirs = [];
const contexts = [];
const children = [];

function fail(msg) { throw new Error(`window.mjs: ${msg}`); }

async function open(link, who) {
  const dir = mkdtempSync(join(tmpdir(), "cb-chromium-"));
  dirs.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: "/usr/bin/chromium", headless: true, args: FLAGS, viewport: { width: 1280, height: 900 },
  });
  contexts.push(ctx);
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on("pageerror", (e) => console.error(`[${who}] page error: ${e.message}`));
  await page.goto(link);
  await page.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
  console.log(`${who}: signed in as ${await page.textContent("#who")}, live`);
  return page;
}

/** Runs tsps.py; resolves lines as they come. */
function tsps() {
  const child = spawn(env("PY"), [join(env("ROOT"), "tests/e2e/web/tsps.py"), "--addr", env("GRPC_ADDR")],
    { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const lines = [];
  const waiters = [];
  readline.createInterface({ input: child.stdout }).on("line", (l) => {
    console.log(`tsps: ${l}`);
    lines.push(JSON.parse(l));
    while (waiters.length) waiters.shift()();
  });
  const exited = new Promise((res) => child.on("exit", (code) => { while (waiters.length) waiters.shift()(); res(code); }));
  const next = async (pred, what, ms = 30000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = lines.find(pred);
      if (hit) return hit;
      if (child.exitCode !== null) fail(`tsps.py exited (${child.exitCode}) before ${what}`);
      if (Date.now() > deadline) fail(`no ${what} from tsps.py within ${ms} ms`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
    }
  };
  return { child, next, exited };
}

async function expectText(page, selector, text) {
  await page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(t)),
    [selector, text], { timeout: 10000 }).catch(() => fail(`"${text}" not found in ${selector}`));
}

async function main() {
  const user = await open(env("DEMO_LINK"), "user");
  const desk = await open(env("DESK_LINK"), "attendant");
  if (!(await desk.isVisible("#attendant"))) fail("the attendant view is not shown to the attendant");
  if (await user.isVisible("#attendant")) fail("the user sees an attendant view");

  const sim = tsps();
  const placed = await sim.next((l) => l.call_id && !l.directive, "call");
  const t0 = Date.now();
  const card = `#notifications .card[data-call="${placed.call_id}"]`;
  await user.waitForSelector(card, { timeout: 10000 });
  console.log(`the window popped ${Date.now() - t0} ms after ResolveCall returned`);
  for (const t of ["Erika Mustermann", "ACME GmbH", "code: vip", "status:", "Mobile +49 170 1234567", "Reception +49 30 901829"]) {
    await expectText(user, card, t);
  }
  await user.screenshot({ path: join(shots, "notification.png") });

  const deskCard = `#attendant-calls .card[data-call="${placed.call_id}"]`;
  await desk.waitForSelector(deskCard, { timeout: 10000 });
  // A reload while the call rings brings its card back (from the history).
  await desk.reload();
  await desk.waitForSelector('#live[data-state="on"]', { timeout: 15000 });
  await desk.waitForSelector(deskCard, { timeout: 10000 });
  if ((await desk.locator(deskCard).count()) !== 1) fail("the reloaded attendant view shows the call twice");
  await expectText(desk, deskCard, "for Dana Demo");
  console.log("the attendant sees the call");

  await user.click(`${card} .open-contact`);
  await expectText(user, "#ctx-mail-received li", "Order 4711: delivery date");
  await expectText(user, "#ctx-mail-sent li", "Re: Order 4711");
  await expectText(user, "#ctx-events li", "Weekly purchasing sync with ACME");
  await expectText(user, "#ctx-documents li", "ACME framework agreement 2026.docx");
  console.log("the context shows the seeded mail, meeting and document");
  await user.locator("#context").screenshot({ path: join(shots, "context.png") });

  // Chat: the user writes, the attendant's browser shows it and answers.
  await user.click(`${card} .open-chat`);
  await user.fill("#chat-text", "In a meeting until 3, please take a message");
  await user.click("#chat-form button[type=submit]");
  await expectText(desk, "#chat-messages li", "In a meeting until 3, please take a message");
  await desk.fill("#chat-text", "Will do, I'll tell Erika");
  await desk.click("#chat-form button[type=submit]");
  await expectText(user, "#chat-messages li", "Will do, I'll tell Erika");
  console.log("chat messages crossed between the two browsers");
  await desk.screenshot({ path: join(shots, "attendant.png") });

  // Forward to the mobile: the phone system's stream receives the directive.
  const clicked = Date.now();
  await user.click(`${card} button.fwd[data-number="+49 170 1234567"]`);
  const d = await sim.next((l) => l.directive, "directive", 10000);
  if (d.directive !== "forward" || d.target !== "+49 170 1234567" || d.by !== "demo" || d.call_id !== placed.call_id
      || d.tsps_call_id !== "e2e-web-1") {
    fail(`unexpected directive ${JSON.stringify(d)}`);
  }
  console.log(`click to WatchDirectives: ${Math.round(d.received_ms - clicked)} ms (browser click, HTTP, journal write, gRPC stream)`);
  await expectText(user, `${card} .state`, "forward +49 170 1234567");
  await expectText(desk, `${deskCard} .state`, "forward +49 170 1234567 by Dana Demo");
  if ((await sim.exited) !== 0) fail("tsps.py failed");

  // The history shows the call with its journal (directive and chat).
  await user.click("#history-form button");
  await expectText(user, `#history-rows tr[data-call="${placed.call_id}"] .journal`, "forward +49 170 1234567 (Dana Demo)");
  await expectText(user, `#history-rows tr[data-call="${placed.call_id}"] .journal`, "chat attendant Front Desk: Will do");
  await user.screenshot({ path: join(shots, "window.png"), fullPage: true });

  // The phone system is gone (tsps.py ended its stream): a click reaches nobody, and the cards say so.
  await user.click(`${card} button.voicemail`);
  await expectText(user, `${card} .state`, "not delivered — no phone system connected");
  await expectText(desk, `${deskCard} .state`, "not delivered — no phone system connected");
  console.log("a click that reached no phone system shows as not delivered");
  console.log("web_window: all checks passed");
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill();
  for (const c of contexts) await c.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
