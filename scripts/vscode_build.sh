#!/usr/bin/env bash
# Build, lint, unit-test and package the VS Code extension (editors/vscode) on a fresh machine.
# Needs Node 20 + npm. Output: editors/vscode/companion.vsix. Usage: bash scripts/vscode_build.sh
set -euo pipefail
cd "$(dirname "$0")/../editors/vscode"
# Reproducible install from package-lock.json (skipped when node_modules matches the lock file).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run lint      # tsc --noEmit with strict + unused/implicit-return checks
npm test          # tsc to out/, then node --test (message handling of the chat panel)
npm run package   # esbuild bundle -> dist/extension.js, then vsce package -> companion.vsix
