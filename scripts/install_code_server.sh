#!/usr/bin/env bash
# Install what the VS Code end-to-end test needs, offline-safe: Debian packages (Chromium, ripgrep,
# native-module headers) and code-server 4.96.4 from npm into .cache/code-server (gitignored).
# Idempotent: a second run only checks. Usage: bash scripts/install_code_server.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEST=${CODE_SERVER_DIR:-$REPO/.cache/code-server}
VERSION=4.96.4
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

missing=""
for pkg in libkrb5-dev libxkbfile-dev libsecret-1-dev ripgrep chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" = 20 ] || { echo "code-server $VERSION needs Node 20 (found $(node --version))" >&2; exit 1; }

BIN="$DEST/node_modules/.bin/code-server"
if [ -x "$BIN" ] && [ -f "$DEST/.installed-$VERSION" ]; then
  echo "code-server $VERSION already in $DEST"
  exit 0
fi
mkdir -p "$DEST"
cd "$DEST"
[ -f package.json ] || echo '{"name": "code-server-host", "private": true}' > package.json
# 1. Scripts must run as root with unsafe-perm; first install without them so we can patch.
export npm_config_unsafe_perm=true
npm install --ignore-scripts --no-audit --no-fund "code-server@$VERSION"
# 2. The shrinkwrap pins @vscode/proxy-agent to a git+ssh address; the registry's 0.27.0
#    tarball has the same sha512 (npm verifies the integrity field).
WRAP=node_modules/code-server/lib/vscode/npm-shrinkwrap.json
sed -i 's#"resolved": "git+ssh://git@github.com/microsoft/vscode-proxy-agent.git\#[0-9a-f]*"#"resolved": "https://registry.npmjs.org/@vscode/proxy-agent/-/proxy-agent-0.27.0.tgz"#' "$WRAP"
! grep -q 'git+ssh://' "$WRAP"  # (npm may rewrite the file later without resolved fields)
# 3. @vscode/ripgrep downloads rg from GitHub unless its cache holds the tarball: seed it with
#    Debian's rg.
CACHE="${TMPDIR:-/tmp}/vscode-ripgrep-cache-1.15.9"
mkdir -p "$CACHE"
tar czf "$CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg
npm rebuild --foreground-scripts
"$BIN" --version
touch ".installed-$VERSION"
