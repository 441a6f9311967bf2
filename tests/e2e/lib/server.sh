# Shared by the end-to-end scripts (sourced, not run): a temporary directory,
# free loopback ports, and a server process that is always stopped on exit.
# Expects $py (a Python with the standard library) and $e2e_name (for messages).

tmp="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready COMMAND...: runs COMMAND every 0.2 s (at most 20 s) until it succeeds;
# fails with the server's stderr ($tmp/server.err) if the server ($pid) exits first.
wait_ready() {
  for _ in $(seq 1 100); do
    if "$@" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$e2e_name: the server exited:" >&2
      cat "$tmp/server.err" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "$e2e_name: the server did not become ready in 20 s" >&2
  exit 1
}
