#!/usr/bin/env bash
# Install the real MCP clients the slow MCP tests drive: the MCP Inspector CLI 0.15.0 (the last
# release for Node 20) and the Cline CLI 3.0.65, from npm into .cache/mcp-clients (gitignored).
# Also strace (Debian), for the network check. Idempotent: a second run only checks.
# Usage: bash scripts/install_mcp_clients.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEST=${MCP_CLIENTS_DIR:-$REPO/.cache/mcp-clients}
INSPECTOR=0.15.0
CLINE=3.0.65
STAMP="$DEST/.installed-inspector-$INSPECTOR-cline-$CLINE"

# The Cline test checks every connection with `strace -f -e connect`.
if ! command -v strace >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends strace
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "the MCP clients need Node >= 20 (found $(node --version))" >&2; exit 1; }

if [ -f "$STAMP" ] && [ -x "$DEST/node_modules/.bin/mcp-inspector" ] && [ -x "$DEST/node_modules/.bin/cline" ]; then
  echo "MCP Inspector $INSPECTOR and Cline $CLINE already in $DEST"
  exit 0
fi
mkdir -p "$DEST"
cd "$DEST"
[ -f package.json ] || echo '{"name": "companion-mcp-clients", "private": true}' > package.json
# Cline's postinstall would try to update itself; its binary ships inside the package.
export CLINE_NO_AUTO_UPDATE=1 DO_NOT_TRACK=1
npm install --no-audit --no-fund --loglevel=error \
  "@modelcontextprotocol/inspector@$INSPECTOR" "cline@$CLINE"
"$DEST/node_modules/.bin/mcp-inspector" --help >/dev/null 2>&1 || true
touch "$STAMP"
echo "installed into $DEST"
