#!/usr/bin/env bash
# Installs what the test suite needs into ./.tools (idempotent, no root needed
# except for Debian packages): Radicale and Xandikos (PyPI, in a venv) and
# oauth2-mock-server (npm). Tests find them through $CONTACTBRIDGE_TOOLS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${CONTACTBRIDGE_TOOLS:-$root/.tools}"
mkdir -p "$tools"

if [ ! -x "$tools/venv/bin/radicale" ] || [ ! -x "$tools/venv/bin/xandikos" ]; then
  echo "setup-tools: installing Radicale and Xandikos into $tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "radicale==3.*" "xandikos"
fi

if [ ! -f "$tools/node/node_modules/oauth2-mock-server/package.json" ]; then
  echo "setup-tools: installing oauth2-mock-server into $tools/node" >&2
  mkdir -p "$tools/node"
  (cd "$tools/node" && { [ -f package.json ] || echo '{"private":true}' > package.json; } \
    && npm install --silent --no-audit --no-fund "oauth2-mock-server@7" >/dev/null)
fi

# The Python gRPC client example (examples/python) and tests/e2e/grpc_examples.sh.
if ! "$tools/venv/bin/python" -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
  echo "setup-tools: installing grpcio and grpcio-tools into $tools/venv" >&2
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/examples/python/requirements.txt"
fi

# The notification window's end-to-end test (tests/e2e/web_window.sh): Debian's
# chromium (never a browser download) driven by playwright-core.
if [ ! -x /usr/bin/chromium ]; then
  echo "setup-tools: installing Debian chromium (apt-get)" >&2
  apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null
fi
if [ ! -f "$tools/node/node_modules/playwright-core/package.json" ]; then
  echo "setup-tools: installing playwright-core into $tools/node" >&2
  mkdir -p "$tools/node"
  (cd "$tools/node" && { [ -f package.json ] || echo '{"private":true}' > package.json; } \
    && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund "playwright-core@1" >/dev/null)
fi
# The window's accessibility check (tests/e2e/web/window.mjs): axe-core, injected into the page.
if [ ! -f "$tools/node/node_modules/axe-core/axe.min.js" ]; then
  echo "setup-tools: installing axe-core into $tools/node" >&2
  mkdir -p "$tools/node"
  (cd "$tools/node" && { [ -f package.json ] || echo '{"private":true}' > package.json; } \
    && npm install --silent --no-audit --no-fund "axe-core@4" >/dev/null)
fi

# Coverage-guided fuzzing (fuzz/run, FUZZING.md): cargo-fuzz from crates.io, built
# by the stable toolchain into $tools/cargo (libFuzzer itself comes with the
# libfuzzer-sys crate and is compiled by the fuzz build).
if ! PATH="$tools/cargo/bin:$PATH" cargo fuzz --version >/dev/null 2>&1; then
  echo "setup-tools: installing cargo-fuzz into $tools/cargo" >&2
  cargo install --quiet --locked --root "$tools/cargo" cargo-fuzz@0.13.2
fi

# The Debian package (tests/e2e/package.sh): cargo-deb from crates.io, and Debian's
# systemd-analyze to verify the unit.
if ! PATH="$tools/cargo/bin:$PATH" cargo deb --version >/dev/null 2>&1; then
  echo "setup-tools: installing cargo-deb into $tools/cargo" >&2
  cargo install --quiet --locked --root "$tools/cargo" cargo-deb@3.8.0
fi
if ! command -v systemd-analyze >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "setup-tools: installing Debian systemd and dpkg (apt-get)" >&2
  apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y systemd dpkg >/dev/null
fi

# The HTTP lookup and LDAP directory tests (tests/http_lookup.rs, tests/ldap_directory.rs):
# Debian's curl and ldapsearch, and the Python ldap3 client in the venv.
if ! command -v curl >/dev/null || ! command -v ldapsearch >/dev/null; then
  echo "setup-tools: installing Debian curl and ldap-utils (apt-get)" >&2
  apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y curl ldap-utils >/dev/null
fi
# Kamailio in the loop (tests/kamailio_redirect.rs, tests/kamailio_calls.rs): Debian's
# kamailio with its JSON and http_client modules, sipsak to send single INVITEs, and
# baresip as the user agents that place and answer real calls; app_python3 for the gRPC
# variant that examples/kamailio/bench.py --grpc measures.
if ! command -v kamailio >/dev/null || ! command -v sipsak >/dev/null || ! command -v baresip >/dev/null \
  || [ ! -f /usr/lib/x86_64-linux-gnu/kamailio/modules/http_client.so ] \
  || [ ! -f /usr/lib/x86_64-linux-gnu/kamailio/modules/app_python3.so ]; then
  echo "setup-tools: installing Debian kamailio, sipsak and baresip (apt-get)" >&2
  apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y \
    kamailio kamailio-json-modules kamailio-utils-modules kamailio-python3-modules sipsak baresip >/dev/null
fi
if ! "$tools/venv/bin/python" -c 'import ldap3' >/dev/null 2>&1; then
  echo "setup-tools: installing ldap3 into $tools/venv" >&2
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "ldap3==2.*"
fi

echo "setup-tools: ready in $tools" >&2

# The PostgreSQL backend's tests (src/store/postgres/testing.rs): Debian's
# postgresql server, started by the tests in a temporary directory. It refuses
# to run as root, so as root the tests run it as the unprivileged user cbtest.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "setup-tools: installing Debian postgresql (apt-get)" >&2
  apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >/dev/null
fi
if [ "$(id -u)" = 0 ] && ! id cbtest >/dev/null 2>&1; then
  echo "setup-tools: creating the system user cbtest (runs the tests' PostgreSQL servers)" >&2
  useradd --system --no-create-home --shell /usr/sbin/nologin cbtest
fi
