#!/usr/bin/env bash
# VS Code end-to-end test: code-server 4.96.4 + the packaged extension + headless Chromium,
# against the real `companion serve` and a loopback OpenAI-compatible endpoint.
# Works on a fresh Debian 12 machine with Node 20 and the project venv (make venv-test).
# Screenshots and timings land in test-artifacts/. Usage: bash scripts/e2e_vscode.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHON=${PYTHON:-$REPO/.venv/bin/python}
export ARTIFACTS=${ARTIFACTS:-$REPO/test-artifacts}
export CODE_SERVER=${CODE_SERVER:-$REPO/.cache/code-server/node_modules/.bin/code-server}
export VSIX=$REPO/editors/vscode/companion.vsix
"$PYTHON" -c 'import companion' || { echo "no companion in $PYTHON: run make venv-test" >&2; exit 1; }
mkdir -p "$ARTIFACTS"
now() { date +%s.%N; }
s=$(now)
bash "$REPO/scripts/install_code_server.sh"
i=$(now)
# Build only when the package is missing or older than its sources: `make e2e-vscode` has
# just built it through the `vscode` target, and building twice costs minutes.
EXT=$REPO/editors/vscode
if [ ! -f "$VSIX" ] || [ -n "$(find "$EXT/src" "$EXT/package.json" "$EXT/package-lock.json" -newer "$VSIX" -print -quit 2>/dev/null)" ]; then
  bash "$REPO/scripts/vscode_build.sh"
else
  echo "e2e-vscode: $VSIX is up to date; not rebuilding"
fi
b=$(now)
node "$REPO/tests/editors/vscode_e2e.mjs"
e=$(now)
awk -v s="$s" -v i="$i" -v b="$b" -v e="$e" 'BEGIN { printf "e2e-vscode timings: install %.1fs, build+unit+package %.1fs, e2e %.1fs, total %.1fs\n", i - s, b - i, e - b, e - s }'
