#!/usr/bin/env bash
# The notification window end to end: `contactbridge serve --demo` on free
# ports in a temporary data directory (the demo user attended by a `desk`
# user, a meeting with Erika in progress, a `visitor` of the same tenant who
# attends nobody), login links from `user login-link` and the Admin RPC
# IssueWebLogin, then tests/e2e/web/window.mjs drives one headless Chromium
# (a page per user) against it while tests/e2e/web/phone.py plays the phone
# system over gRPC; axe-core checks accessibility. Screenshots: see below
# (docs/screenshots/ on request).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
tools="${CONTACTBRIDGE_TOOLS:-$root/.tools}"
py="$tools/venv/bin/python"
if [ ! -x /usr/bin/chromium ] || [ ! -f "$tools/node/node_modules/playwright-core/package.json" ] \
  || [ ! -f "$tools/node/node_modules/axe-core/axe.min.js" ]; then
  echo "web_window: chromium, playwright-core or axe-core is missing: run tests/setup-tools.sh" >&2
  exit 1
fi
if ! "$py" -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
  echo "web_window: grpcio is missing in $tools/venv: run tests/setup-tools.sh" >&2
  exit 1
fi

# Built as tests/run builds (`--workspace` with a dev target): the dependencies' features are then
# the test build's, and nothing is compiled again. `--bin contactbridge` alone resolves them without
# the dev-dependencies (tokio without test-util, ...) and rebuilds tokio and all that stands on it.
cargo build --quiet --workspace --bin contactbridge --example tsps_simulator
bin="${CARGO_TARGET_DIR:-$root/target}/debug/contactbridge"

e2e_name=web_window
. tests/e2e/lib/server.sh
port="$(free_port)"
wport="$(free_port)"
export CONTACTBRIDGE_GRPC__LISTEN="127.0.0.1:$port" CONTACTBRIDGE_WEB__LISTEN="127.0.0.1:$wport"
cb() { "$bin" --data-dir "$tmp/data" "$@"; }

# The demo, with the attendant's own user id, so her attendant view shows Dana's calls.
cp -r examples/demo "$tmp/demo"
sed -i 's/^number = "+49 30 901829"$/&\nuser = "desk"/' "$tmp/demo/user.toml"
grep -q '^user = "desk"' "$tmp/demo/user.toml"
# A meeting with Erika in progress now: the context shows it as "now", Dana's status is busy.
start="$(date -u -d '-10 min' +%Y%m%dT%H%M%SZ)"
end="$(date -u -d '+50 min' +%Y%m%dT%H%M%SZ)"
sed -i "s/^END:VCALENDAR/BEGIN:VEVENT\nUID:demo-now\nDTSTAMP:$start\nDTSTART:$start\nDTEND:$end\nSUMMARY:Delivery call with ACME\nATTENDEE;CN=Erika Mustermann:mailto:erika.mustermann@acme.example\nEND:VEVENT\nEND:VCALENDAR/" "$tmp/demo/calendar.ics"
grep -q '^UID:demo-now' "$tmp/demo/calendar.ics"
# A hostile mail from Erika: a script link and markup in the subject (shown as text, never linked).
"$py" - "$tmp/demo/context.json" <<'PY'
import json, sys
p = sys.argv[1]
ctx = json.load(open(p))
ctx["mail"].append({"id": "m-hostile", "direction": "received", "from": "erika.mustermann@acme.example",
                    "to": ["dana@demo.example"], "subject": "<img src=x onerror=alert(1)>Invoice", "days_ago": 3,
                    "preview": "<script>alert(2)</script>", "web_link": "javascript:alert(3)"})
json.dump(ctx, open(p, "w"))
PY
cb demo --demo-dir "$tmp/demo" >/dev/null
cb user add desk --tenant demo --name "Front Desk" >/dev/null
cb user add visitor --tenant demo --name "Visitor" >/dev/null
visitor_link="$(cb user login-link visitor 2>/dev/null)"
# The user's link from the CLI (server stopped); the attendant's below from the running server (Admin RPC).
demo_link="$(cb user login-link demo 2>/dev/null)"

# The binary itself in the background (not a shell function), so $! is its pid.
"$bin" --data-dir "$tmp/data" serve --demo --demo-dir "$tmp/demo" --metrics-listen off >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
wait_ready "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$wport/', timeout=1)"

desk_link="$("$py" tests/e2e/web/issue_login.py --addr "127.0.0.1:$port" desk)"
case "$desk_link" in
  "http://127.0.0.1:$wport/login?token=cbw_"*) ;;
  *) echo "web_window: IssueWebLogin returned '$desk_link'" >&2; exit 1 ;;
esac

# Screenshots go to the temporary directory; CONTACTBRIDGE_UPDATE_SCREENSHOTS=1
# writes the README's copies in docs/screenshots instead.
shots="$tmp/screenshots"
[ "${CONTACTBRIDGE_UPDATE_SCREENSHOTS:-}" = 1 ] && shots="$root/docs/screenshots"
mkdir -p "$shots"
TOOLS="$tools" ROOT="$root" PY="$py" SHOTS="$shots" GRPC_ADDR="127.0.0.1:$port" \
  DEMO_LINK="$demo_link" DESK_LINK="$desk_link" VISITOR_LINK="$visitor_link" node tests/e2e/web/window.mjs

# A stranger's link does not exist: the login page refuses a made-up token.
code="$("$py" - "$wport" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/login?token=cbw_madeup", timeout=5)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code)
PY
)"
[ "$code" = 401 ] || { echo "web_window: a made-up login token got $code" >&2; exit 1; }

kill -TERM "$pid"
wait "$pid"
pid=""
grep -q "web server stopped" "$tmp/server.err" || { echo "web_window: no clean web shutdown" >&2; cat "$tmp/server.err" >&2; exit 1; }
echo "web_window: ok"
