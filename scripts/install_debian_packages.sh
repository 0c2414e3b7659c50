#!/bin/sh
# Install the Debian packages the test suite drives: chromium for the browser tests (Playwright
# drives it; no browser download) and pdflatex for the test that compiles the analysis's LaTeX tables.
#
# Works as root (apt-get directly), as a user with sudo (sudo apt-get), and does nothing when
# both are already there. DEBIAN_FRONTEND goes through `env`: a variable assignment after
# "$SUDO" would be taken for the command name when SUDO is empty (the bug this script replaced).
# CHROMIUM and PDFLATEX override the paths checked (the install-script test uses them with fake commands).
set -eu
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PDFLATEX=${PDFLATEX:-/usr/bin/pdflatex}

missing=""
[ -x "$CHROMIUM" ] || missing="$missing chromium"
[ -x "$PDFLATEX" ] || missing="$missing texlive-latex-base texlive-latex-recommended"
if [ -z "$missing" ]; then
    echo "debian packages: found $CHROMIUM and $PDFLATEX"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: the tests need Debian packages:$missing; installing them needs root or sudo: run 'apt-get install$missing' as root" >&2
    exit 2
fi
echo "installing Debian packages for the tests:$missing${SUDO:+ (with sudo)}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# $missing is a list of package names: split on purpose.
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
for path in "$CHROMIUM" "$PDFLATEX"; do
    if [ ! -x "$path" ]; then
        echo "error: apt-get finished but $path is still missing" >&2
        exit 1
    fi
done
echo "debian packages: installed$missing"
