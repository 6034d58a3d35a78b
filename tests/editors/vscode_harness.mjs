// What the VS Code end-to-end tests share: a real code-server with the packaged extension,
// driven by headless Chromium (playwright-core), plus bounded waits and clean-up.
// Env: CODE_SERVER (binary), VSIX, PYTHON (with companion installed), ARTIFACTS (screenshots).
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import assert from 'node:assert/strict';

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const require = createRequire(path.join(REPO, 'editors/vscode/package.json'));
const { chromium } = require('playwright-core');
const CODE_SERVER = process.env.CODE_SERVER ?? path.join(REPO, '.cache/code-server/node_modules/.bin/code-server');
const VSIX = process.env.VSIX ?? path.join(REPO, 'editors/vscode/companion.vsix');
export const PYTHON = process.env.PYTHON ?? path.join(REPO, '.venv/bin/python');
export const ARTIFACTS = process.env.ARTIFACTS ?? path.join(REPO, 'test-artifacts');
export const children = []; // stop functions, run in reverse order at the end

export function freePort() {
  return new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
}

export async function until(what, fn, ms = 60000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

// A workspace with a real config.json and training log.
export function makeWorkspace(root) {
  const ws = path.join(root, 'ws');
  fs.mkdirSync(ws, { recursive: true });
  // Llama-3.1-8B hyperparameters (published facts) as a real config.json.
  fs.writeFileSync(path.join(ws, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 14336,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256,
    max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000.0, tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
  }, null, 2) + '\n');
  // An llm.c-style log whose first loss (11.85) is close to ln(128256) = 11.76: from scratch.
  fs.writeFileSync(path.join(ws, 'train.log'), Array.from({ length: 39 }, (_, i) => `step ${i + 1}/100 | loss ${(11.9 - 0.05 * (i + 1)).toFixed(4)}\n`).join(''));
  return ws;
}

// Run a command from the palette. A toast or a closing quick pick can swallow F1 on a busy
// machine, so close whatever is open and try again (bounded).
export async function commandPalette(page, title) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await page.keyboard.press('Escape');
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget .quick-input-box input').first();
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(`>${title}`);
      const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
      await row.waitFor({ state: 'visible', timeout: 15000 });
      await row.click();
      return;
    } catch (err) {
      if (attempt >= 4) throw err;
      console.log(`[e2e] command palette retry ${attempt} for ${title}: ${err.message.split('\n')[0]}`);
    }
  }
}

// The extension's settings declared `"scope": "machine"` in its package.json.
const MACHINE_SCOPED = Object.entries(JSON.parse(fs.readFileSync(path.join(REPO, 'editors/vscode/package.json'), 'utf8'))
  .contributes.configuration.properties ?? {}).filter(([, v]) => v.scope === 'machine').map(([k]) => k);

// Install the .vsix into a fresh profile under tmp, start code-server on loopback with the given
// companion settings and environment, open `ws` in Chromium. Returns the page and settings file.
export async function startVsCode({ tmp, ws, settings, env, lap }) {
  const userData = path.join(tmp, 'user-data');
  const extensions = path.join(tmp, 'extensions');
  // code-server is a remote window: VS Code takes machine-scoped settings (the server command,
  // Python path and endpoint) from the remote's Machine/settings.json and ignores them in User
  // settings, as a user sees in the "Remote" settings tab. Read from User, the path only held
  // until the extension's scopes were known (a reload that restored the chat panel lost it).
  const all = { 'companion.server.pythonPath': PYTHON, ...settings };
  const machine = Object.fromEntries(Object.entries(all).filter(([k]) => MACHINE_SCOPED.includes(k)));
  fs.mkdirSync(path.join(userData, 'Machine'), { recursive: true });
  fs.writeFileSync(path.join(userData, 'Machine', 'settings.json'), JSON.stringify(machine, null, 2));
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  const settingsFile = path.join(userData, 'User', 'settings.json');
  fs.writeFileSync(settingsFile, JSON.stringify({
    ...Object.fromEntries(Object.entries(all).filter(([k]) => !MACHINE_SCOPED.includes(k))),
    'workbench.startupEditor': 'none', 'security.workspace.trust.enabled': false, 'workbench.tips.enabled': false,
    'extensions.autoCheckUpdates': false, 'extensions.autoUpdate': false, 'telemetry.telemetryLevel': 'off',
    'editor.codeLens': true, 'window.commandCenter': false,
  }, null, 2));
  const install = spawnSync(CODE_SERVER, ['--install-extension', VSIX, '--force', '--user-data-dir', userData, '--extensions-dir', extensions], { encoding: 'utf8' });
  assert.equal(install.status, 0, install.stdout + install.stderr);
  lap('install_extension');

  const port = await freePort();
  const cs = spawn(CODE_SERVER, ['--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--user-data-dir', userData,
    '--extensions-dir', extensions, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', ws],
    { env, detached: true, stdio: ['ignore', fs.openSync(path.join(ARTIFACTS, 'code-server.log'), 'w'), 'inherit'] });
  // The extension host outlives the tab: kill the whole process group.
  children.push(() => { try { process.kill(-cs.pid, 'SIGKILL'); } catch { /* gone */ } });
  await until('code-server', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  children.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
  lap('start_code_server');
  return { page, settingsFile };
}

// Run main(lap, setPage) once: a failure screenshot, clean-up, a timings file, exit code.
export async function runE2E(name, main) {
  const timings = {};
  let page;
  let t0 = Date.now();
  const lap = (step) => { timings[step] = (Date.now() - t0) / 1000; t0 = Date.now(); console.log(`[e2e] ${step}: ${timings[step]}s`); };
  const started = Date.now();
  let failed = null;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.rmSync(path.join(ARTIFACTS, `${name}-failure.png`), { force: true });
  try {
    await main(lap, (p) => { page = p; });
  } catch (err) {
    failed = err;
    console.error(err);
    if (page) await page.screenshot({ path: path.join(ARTIFACTS, `${name}-failure.png`) }).catch(() => undefined);
  } finally {
    for (const stop of children.reverse()) { try { await stop(); } catch { /* already gone */ } }
  }
  timings.total = (Date.now() - started) / 1000;
  fs.writeFileSync(path.join(ARTIFACTS, `${name}-timings.json`), JSON.stringify(timings, null, 2));
  console.log(failed ? '0 passed, 1 failed' : '1 passed, 0 failed');
  process.exit(failed ? 1 : 0);
}
