#!/usr/bin/env bash
# The Debian package: builds it with cargo-deb (dev profile, so the test command
# does not need a release build; `cargo deb` alone builds the release package),
# checks its control data, unpacks it into a temporary root, verifies the systemd
# unit with systemd-analyze, loads the packaged config, and runs
# `serve --demo` from the unpacked binary: the demo data must be found beside it,
# not in this source tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
tools="${CONTACTBRIDGE_TOOLS:-$root/.tools}"
py="$tools/venv/bin/python"
export PATH="$tools/cargo/bin:$PATH"
e2e_name=package
. tests/e2e/lib/server.sh

fail() { echo "package: $*" >&2; exit 1; }

# Built as tests/run builds (`--workspace` with a dev target): the dependencies' features are then
# the test build's, and nothing is compiled again. `--bin contactbridge` alone resolves them without
# the dev-dependencies (tokio without test-util, ...) and rebuilds tokio and all that stands on it.
cargo build --quiet --workspace --bin contactbridge --example tsps_simulator
cargo deb --no-build --profile dev --fast --output "$tmp/contactbridge.deb" >"$tmp/deb.out" 2>&1 || { cat "$tmp/deb.out" >&2; fail "cargo deb failed"; }
deb="$tmp/contactbridge.deb"

dpkg-deb --info "$deb" >"$tmp/info"
grep -q "^ Package: contactbridge" "$tmp/info" || fail "no package name: $(cat "$tmp/info")"
grep -q "^ Depends: .*libc6" "$tmp/info" || fail "no shared-library dependencies: $(cat "$tmp/info")"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$tmp/conffiles"
grep -qx "/etc/contactbridge/contactbridge.toml" "$tmp/conffiles" || fail "the config is not a conffile"

pkg="$tmp/root"
dpkg-deb -x "$deb" "$pkg"
for f in usr/bin/contactbridge usr/share/contactbridge/demo/user.toml usr/share/contactbridge/demo/contacts.vcf \
         etc/contactbridge/contactbridge.toml usr/share/doc/contactbridge/config.md \
         usr/lib/systemd/system/contactbridge.service; do
  [ -e "$pkg/$f" ] || { find "$pkg" >&2; fail "$f is missing from the package"; }
done

# The unit as installed, with ExecStart pointing into the unpacked root: any
# warning (unknown key, bad value, missing binary) fails.
unit="$tmp/unit/contactbridge.service"
mkdir -p "$tmp/unit"
sed "s|/usr/bin/contactbridge|$pkg/usr/bin/contactbridge|" "$pkg/usr/lib/systemd/system/contactbridge.service" >"$unit"
grep -q "^DynamicUser=yes" "$unit" && grep -q "^ProtectSystem=strict" "$unit" && grep -q "^NoNewPrivileges=yes" "$unit" \
  && grep -q "^StateDirectory=contactbridge" "$unit" || fail "the unit lost its sandboxing"
if ! systemd-analyze verify "$unit" >"$tmp/verify" 2>&1 || [ -s "$tmp/verify" ]; then
  cat "$tmp/verify" >&2
  fail "systemd-analyze verify found problems in the unit"
fi

# The installed binary, the packaged config (its data_dir is the unit's state
# directory: overridden here), the demo from /usr/share beside the binary. Run
# from another directory, with the source tree's demo out of reach of a relative path.
port="$(free_port)"; wport="$(free_port)"; mport="$(free_port)"
cd "$tmp"
CONTACTBRIDGE_GRPC__LISTEN="127.0.0.1:$port" CONTACTBRIDGE_WEB__LISTEN="127.0.0.1:$wport" \
CONTACTBRIDGE_METRICS__LISTEN="127.0.0.1:$mport" \
  "$pkg/usr/bin/contactbridge" --config "$pkg/etc/contactbridge/contactbridge.toml" --data-dir "$tmp/data" \
  serve --demo >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
resolves() {
  "$py" "$root/examples/python/resolve_call.py" --addr "127.0.0.1:$port" --key demo-tsps-key \
    --called "+49 30 901820" --cli "+49 30 1234567" >"$tmp/py.out" 2>&1
}
wait_ready resolves
grep -qF "caller: Erika Mustermann; handling code: vip" "$tmp/py.out" || { cat "$tmp/py.out" >&2; fail "the demo lookup did not answer"; }
grep -qF "rejected (from $pkg/usr/share/contactbridge/demo)" "$tmp/server.out" || { cat "$tmp/server.out" >&2; fail "serve --demo did not read the packaged demo"; }
kill -TERM "$pid"; wait "$pid"; pid=""
echo "package: ok ($(du -h "$deb" | cut -f1) package, unit verified, serve --demo ran from the unpacked root)"
