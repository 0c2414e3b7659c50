#!/bin/sh
# Install Debian's chromium for the browser tests (Playwright drives it; no browser download).
#
# Works as root (apt-get directly), as a user with sudo (sudo apt-get), and does nothing when
# chromium is already there. DEBIAN_FRONTEND goes through `env`: a variable assignment after
# "$SUDO" would be taken for the command name when SUDO is empty (the bug this script replaces).
# CHROMIUM overrides the path checked (the install-script test uses it with fake commands).
set -eu
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    echo "chromium: found $CHROMIUM"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: chromium is missing and installing it needs root or sudo: run 'apt-get install chromium' as root" >&2
    exit 2
fi
echo "installing Debian chromium for the browser tests${SUDO:+ (with sudo)}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
if [ ! -x "$CHROMIUM" ]; then
    echo "error: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "chromium: installed $CHROMIUM"
