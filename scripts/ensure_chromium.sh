#!/usr/bin/env bash
# Make sure Debian's Chromium is installed at /usr/bin/chromium (used headless by
# the e2e tests through Playwright's executable_path). Idempotent; never runs
# `playwright install` (no browser downloads).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=(chromium fonts-dejavu-core fonts-liberation)

export DEBIAN_FRONTEND=noninteractive

log() { printf 'ensure_chromium: %s\n' "$*" >&2; }

missing=()
[[ -x "$CHROMIUM" ]] || missing+=(chromium)
for pkg in "${PACKAGES[@]:1}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    log "$("$CHROMIUM" --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    log "ERROR: missing ${missing[*]}; run as root (apt-get install ${missing[*]})"
    exit 1
fi

log "installing ${missing[*]}"
# apt-get update only when the package lists don't know the packages yet (fresh
# machine), or when installing from stale lists fails.
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q
fi
# Recommends (upower, notification-daemon, mesa, ...) are not needed headless.
apt-get install -y -q --no-install-recommends "${missing[@]}" || {
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

[[ -x "$CHROMIUM" ]] || {
    log "ERROR: $CHROMIUM still missing after install"
    exit 1
}
log "$("$CHROMIUM" --version) ready"
