#!/bin/sh
# Install axe-core (npm) for the accessibility tests (tests/study/test_accessibility.py), which inject
# it into the study pages with Playwright. Goes to .cache/axe (git-ignored); does nothing when it is
# already there. Without npm it says so and exits 0: those tests then skip with the same message.
set -eu
DEST=${AXE_DIR:-.cache/axe}
if [ -f "$DEST/node_modules/axe-core/axe.min.js" ]; then
    echo "axe-core: found $DEST/node_modules/axe-core"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "axe-core: npm is missing, the accessibility tests will skip (install nodejs and npm to run them)"
    exit 0
fi
mkdir -p "$DEST"
npm install --silent --no-audit --no-fund --prefix "$DEST" axe-core@4
echo "axe-core: installed $(cd "$DEST" && node -p "require('axe-core/package.json').version" 2>/dev/null || echo '?') in $DEST"
