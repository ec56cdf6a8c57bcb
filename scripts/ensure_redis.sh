#!/usr/bin/env bash
# Make sure Debian's redis-server binary is installed, for the tests of the Redis cache path
# (DJANGO_CACHE_URL=redis://...). Idempotent: where it is installed this only checks.
#
# Only the binary is needed: the test suite starts its own redis-server on 127.0.0.1 on a
# free port, with no persistence, and stops it at the end (tests/redis_server.py). The
# package's own service is never started here (no systemd in these containers anyway).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

log() { printf 'ensure_redis: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

if command -v redis-server >/dev/null; then
    log "$(redis-server --version | head -n 1)"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    die "redis-server is missing: install Debian's redis-server package (needs root)"
fi

log "installing redis-server (apt-get install redis-server)"
# apt-get update only when the package lists don't know the package yet, or when an install
# from stale lists fails (as scripts/ensure_postgres.sh does).
if ! apt-cache show redis-server >/dev/null 2>&1; then
    apt-get update -q
fi
apt-get install -y -q --no-install-recommends redis-server || {
    apt-get update -q
    apt-get install -y -q --no-install-recommends redis-server
}
# Without systemd the package's own service stays stopped; the suite needs only the binary.
command -v redis-server >/dev/null || die "redis-server is still missing after apt-get install"
log "$(redis-server --version | head -n 1)"
