#!/usr/bin/env bash
# The gRPC examples against a real server: starts `contactbridge serve --demo`
# in a temporary data directory on free ports, waits until grpc.health.v1 says
# SERVING, runs the Rust TSPS simulator and the Python client, checks what they
# print and the metrics endpoint, and always stops the server (SIGTERM, graceful).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
tools="${CONTACTBRIDGE_TOOLS:-$root/.tools}"
py="$tools/venv/bin/python"
if ! "$py" -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
  echo "grpc_examples: grpcio is missing in $tools/venv: run tests/setup-tools.sh" >&2
  exit 1
fi

# Built as tests/run builds (`--workspace` with a dev target): the dependencies' features are then
# the test build's, and nothing is compiled again. `--bin contactbridge` alone resolves them without
# the dev-dependencies (tokio without test-util, ...) and rebuilds tokio and all that stands on it.
cargo build --quiet --workspace --bin contactbridge --example tsps_simulator
target="${CARGO_TARGET_DIR:-$root/target}/debug"

e2e_name=grpc_examples
. tests/e2e/lib/server.sh
port="$(free_port)"
mport="$(free_port)"
wport="$(free_port)"

CONTACTBRIDGE_GRPC__LISTEN="127.0.0.1:$port" CONTACTBRIDGE_WEB__LISTEN="127.0.0.1:$wport" "$target/contactbridge" --data-dir "$tmp/data" \
  serve --demo --metrics-listen "127.0.0.1:$mport" >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!

# grpc.health.v1.Health/Check with an empty request; SERVING encodes as 08 01.
serving() {
  "$py" - "$port" <<'PY'
import sys, grpc
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as ch:
    check = ch.unary_unary("/grpc.health.v1.Health/Check")
    sys.exit(0 if check(b"", timeout=1) == b"\x08\x01" else 1)
PY
}
wait_ready serving

expect() { # expect FILE TEXT: the output contains TEXT
  if ! grep -qF -- "$2" "$1"; then
    echo "grpc_examples: expected '$2' in the output of $(basename "$1"):" >&2
    cat "$1" >&2
    exit 1
  fi
}

"$target/examples/tsps_simulator" --addr "http://127.0.0.1:$port" --key demo-tsps-key >"$tmp/sim.out"
cat "$tmp/sim.out"
expect "$tmp/sim.out" "-> Erika Mustermann (1 candidates), code vip"
expect "$tmp/sim.out" "call 1: directive from demo: forward +49 170 1234567 -> following it"
expect "$tmp/sim.out" "code blocked"
expect "$tmp/sim.out" "code withheld"
expect "$tmp/sim.out" "InvalidArgument"
expect "$tmp/sim.out" "done: 5 calls placed, 2 directives followed"

"$py" examples/python/resolve_call.py --addr "127.0.0.1:$port" --key demo-tsps-key \
  --called "+49 30 901820" --cli "+49 30 1234567" >"$tmp/py.out"
cat "$tmp/py.out"
expect "$tmp/py.out" "caller: Erika Mustermann; handling code: vip"
expect "$tmp/py.out" "mail: Order 4711: delivery date"

if "$py" examples/python/resolve_call.py --addr "127.0.0.1:$port" --key wrong-key >"$tmp/py_bad.out" 2>&1; then
  echo "grpc_examples: a wrong key was accepted" >&2
  exit 1
fi
expect "$tmp/py_bad.out" "UNAUTHENTICATED"

"$py" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "http://127.0.0.1:$mport/metrics" >"$tmp/metrics.out"
expect "$tmp/metrics.out" 'contactbridge_grpc_requests_total{method="/contactbridge.v1.CallHandling/ResolveCall",code="OK"}'

kill -TERM "$pid"
wait "$pid"
pid=""
expect "$tmp/server.err" "gRPC server stopped"
echo "grpc_examples: ok"
