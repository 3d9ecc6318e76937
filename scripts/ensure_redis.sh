#!/usr/bin/env bash
# Makes sure `redis-server` (the Redis the tests start on their own ports) is installed.
#
# Idempotent: when `redis-server` is on PATH it says so and does nothing. Otherwise it installs
# Debian's package, as root: `apt-get update`, then `apt-get install -y redis-server`. The
# package's post-install step would start a system service on port 6379; a temporary
# policy-rc.d (only when the machine has none of its own) keeps it from starting, and nothing
# depends on it anyway: every test starts its own `redis-server` on a free 127.0.0.1 port.
# When it cannot install (not root, no apt-get, the install failed) it prints one line saying
# why on stderr and exits 1.
#
# Called by the `test` task of deno.json, and so by .ci/run.
set -uo pipefail

say() { echo "ensure_redis: $*"; }
fail() {
  echo "ensure_redis: $* (install Debian's redis-server package, or put redis-server on PATH)" >&2
  exit 1
}

if command -v redis-server >/dev/null 2>&1; then
  say "redis-server found at $(command -v redis-server): nothing to install"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || fail "redis-server is missing and there is no apt-get"
[ "$(id -u)" -eq 0 ] || fail "redis-server is missing and installing it needs root"

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  # 101: "action forbidden", so the package does not start a system Redis.
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
say "redis-server is missing: running apt-get update"
apt-get update -q >/dev/null || fail "apt-get update failed"
say "installing Debian's redis-server package: apt-get install -y redis-server"
apt-get install -y -q redis-server >/dev/null || fail "apt-get install -y redis-server failed"
command -v redis-server >/dev/null 2>&1 || fail "redis-server is still not on PATH after the install"
say "installed $(redis-server --version)"
