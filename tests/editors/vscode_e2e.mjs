// End-to-end test of editors/vscode in a real VS Code (code-server) driven by headless Chromium.
// Run through scripts/e2e_vscode.sh, which installs code-server and builds the .vsix first.
// Env: CODE_SERVER (binary), VSIX, PYTHON (with companion installed), ARTIFACTS (screenshots).
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import assert from 'node:assert/strict';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const require = createRequire(path.join(REPO, 'editors/vscode/package.json'));
const { chromium } = require('playwright-core');
const CODE_SERVER = process.env.CODE_SERVER ?? path.join(REPO, '.cache/code-server/node_modules/.bin/code-server');
const VSIX = process.env.VSIX ?? path.join(REPO, 'editors/vscode/companion.vsix');
const PYTHON = process.env.PYTHON ?? path.join(REPO, '.venv/bin/python');
const ARTIFACTS = process.env.ARTIFACTS ?? path.join(REPO, 'test-artifacts');
const REPLY = 'The mean-centred correlation of the RMSNorm gains is about zero, so the models look **independent**; ' +
  Array.from({ length: 40 }, (_, i) => `point${i}`).join(' ') + ' END.';
const KEY = 'sk-e2e-secret-key';
const timings = {};
const children = [];
let page; // kept for a failure screenshot
let t0 = Date.now();
const lap = (name) => { timings[name] = (Date.now() - t0) / 1000; t0 = Date.now(); console.log(`[e2e] ${name}: ${timings[name]}s`); };

function freePort() {
  return new Promise((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
}

async function until(what, fn, ms = 60000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function workspace(root) {
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

async function startEndpoint(log) {
  const proc = spawn(PYTHON, [path.join(REPO, 'tests/helpers/openai_server.py'), '--port', '0', '--reply', REPLY,
    '--chunks', '50', '--delay', '0.12', '--log', log, '--exit-on-stdin-eof', '--lifetime', '600'], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(() => proc.kill());
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: proc.stdout }).once('line', resolve);
    proc.once('exit', (c) => reject(new Error(`endpoint exited ${c}`)));
  });
  return line.trim();
}

// Run a command from the palette. A toast or a closing quick pick can swallow F1 on a busy
// machine, so close whatever is open and try again (bounded).
async function commandPalette(page, title) {
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

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'companion-e2e-'));
  const ws = workspace(tmp);
  const userData = path.join(tmp, 'user-data');
  const extensions = path.join(tmp, 'extensions');
  const requestLog = path.join(tmp, 'requests.jsonl');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.rmSync(path.join(ARTIFACTS, 'vscode-e2e-failure.png'), { force: true });
  const baseUrl = await startEndpoint(requestLog);
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  const settingsFile = path.join(userData, 'User', 'settings.json');
  fs.writeFileSync(settingsFile, JSON.stringify({
    'companion.server.pythonPath': PYTHON, 'companion.llm.baseUrl': baseUrl, 'companion.llm.model': 'test-model',
    'workbench.startupEditor': 'none', 'security.workspace.trust.enabled': false, 'workbench.tips.enabled': false,
    'extensions.autoCheckUpdates': false, 'extensions.autoUpdate': false, 'telemetry.telemetryLevel': 'off',
    'editor.codeLens': true, 'window.commandCenter': false,
  }, null, 2));
  const install = spawnSync(CODE_SERVER, ['--install-extension', VSIX, '--force', '--user-data-dir', userData, '--extensions-dir', extensions], { encoding: 'utf8' });
  assert.equal(install.status, 0, install.stdout + install.stderr);
  lap('install_extension');

  const port = await freePort();
  const env = { ...process.env, COMPANION_HOME: path.join(tmp, 'home') };
  delete env.OPENAI_API_KEY; // the key must come from SecretStorage only
  const cs = spawn(CODE_SERVER, ['--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--user-data-dir', userData,
    '--extensions-dir', extensions, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', ws],
    { env, detached: true, stdio: ['ignore', fs.openSync(path.join(ARTIFACTS, 'code-server.log'), 'w'), 'inherit'] });
  // The extension host outlives the tab: kill the whole process group.
  children.push(() => { try { process.kill(-cs.pid, 'SIGKILL'); } catch { /* gone */ } });
  await until('code-server', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  children.push(() => browser.close());
  page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
  lap('start_code_server');

  // 1. Open config.json: the server's code lens (parameter count) appears above line 1.
  await page.locator('.monaco-workbench .part.editor').waitFor();
  await page.keyboard.press('Control+P');
  await page.keyboard.type('config.json');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'config.json' }).first().click();
  await page.locator('.monaco-editor .view-lines').first().waitFor();
  const lens = page.locator('.codelens-decoration a', { hasText: /param/i }).first();
  await until('the parameter code lens', () => lens.isVisible(), 90000);
  const lensText = await lens.innerText();
  assert.match(lensText, /\d/, `code lens shows a count: ${lensText}`);
  await until('the status bar item', () => page.locator('.statusbar-item', { hasText: 'Companion' }).first().isVisible());
  await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-codelens.png') });
  lap('code_lens');

  // 2. Run a code action: "Explain this architecture" asks the endpoint and opens a chat file.
  await page.locator('.monaco-editor .view-line').nth(1).click();
  const rows = page.locator('.action-widget .monaco-list-row.action');
  await until('the code action menu', async () => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+.');
    await rows.first().waitFor({ state: 'visible', timeout: 3000 });
    return (await rows.allInnerTexts()).some((t) => t.includes('Explain this architecture'));
  });
  // The menu swallows pointer events while it opens: pick the item with the keyboard.
  const titles = await rows.allInnerTexts();
  for (let i = 0; i < titles.findIndex((t) => t.includes('Explain this architecture')); i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  const resultTab = page.locator('.tabs-container .tab', { hasText: /explain-architecture.*chat\.md/ }).first();
  await until('the code action result', () => resultTab.isVisible(), 60000);
  await until('the explanation in the chat file', async () => (await page.locator('.monaco-editor .view-lines').first().innerText()).includes('END.'));
  await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-codeaction.png') });
  lap('code_action');

  // 2b. A tool command: Query Audit Results opens the server's markdown for the filters typed.
  await commandPalette(page, 'Companion: Query Audit Results');
  await page.locator('.quick-input-widget .quick-input-box input').first().waitFor({ state: 'visible' });
  await page.keyboard.type('kind=arch.* limit=5');
  await page.keyboard.press('Enter');
  await until('the query result', () => page.locator('.tabs-container .tab', { hasText: /audit-results.*\.md/ }).first().isVisible(), 30000);
  lap('query_command');

  // 2c. Evidence: with train.log active, the command summarizes it.
  await page.keyboard.press('Control+P');
  await page.keyboard.type('train.log');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'train.log' }).first().click();
  await page.locator('.tabs-container .tab.active', { hasText: 'train.log' }).waitFor();
  await commandPalette(page, 'Companion: Summarize Training-Log Evidence');
  await until('the evidence result', () => page.locator('.tabs-container .tab', { hasText: /training-log-evidence.*\.md/ }).first().isVisible(), 30000);
  await until('the evidence text', async () => /loss/i.test(await page.locator('.monaco-editor .view-lines').first().innerText()));
  lap('evidence_command');

  // 3. Store an API key in SecretStorage (the server restarts with it in its environment).
  const chatRequests = () => fs.readFileSync(requestLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((r) => r.method === 'POST' && r.path.endsWith('/chat/completions'));
  const before = chatRequests();
  assert.ok(before.every((r) => r.headers.authorization !== `Bearer ${KEY}`));
  await commandPalette(page, 'Companion: Set API Key');
  await page.locator('.quick-input-widget input[type="password"]').waitFor();
  await page.keyboard.type(KEY);
  await page.keyboard.press('Enter');
  await until('the key notification', () => page.locator('.notification-list-item', { hasText: 'API key stored' }).first().isVisible(), 30000);
  assert.ok(!fs.readFileSync(settingsFile, 'utf8').includes(KEY), 'the key never reaches settings.json');
  await commandPalette(page, 'Notifications: Clear All Notifications'); // toasts cover the panel
  lap('set_api_key');

  // 4. Chat: focus config.json (context), open the panel, send a turn, see the streamed answer.
  await page.locator('.tabs-container .tab', { hasText: 'config.json' }).first().click();
  await commandPalette(page, 'Companion: Open Chat');
  const chat = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
  await chat.locator('#input').waitFor({ timeout: 30000 });
  await chat.locator('#input').fill('Was B derived from A?');
  await chat.locator('#send').click();
  const streamed = await until('a partly streamed answer', async () => {
    const t = await chat.locator('.turn.assistant.streaming').first().innerText({ timeout: 500 });
    return t.length > 0 && !t.includes('END.') ? t : null;
  });
  const done = chat.locator('.turn.assistant.done').first();
  await until('the whole answer', async () => (await done.innerText({ timeout: 500 })).includes('END.'));
  const answer = await done.innerText();
  assert.ok(answer.includes('independent') && answer.includes('tokens'), answer);
  assert.ok(answer.startsWith(streamed.slice(0, 20)), 'the answer grew from the streamed text');
  await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-chat.png') });
  lap('chat_turn');

  // 5. A second turn, stopped mid-stream: the partial answer stays and stops growing.
  await chat.locator('#input').fill('And the second model?');
  await chat.locator('#send').click();
  const live = chat.locator('.turn.assistant.streaming').first();
  await until('the second answer to start', async () => (await live.innerText({ timeout: 500 })).length > 20);
  await chat.locator('#stop').click();
  const stopped = chat.locator('.turn.assistant.stopped').first();
  await stopped.waitFor({ timeout: 10000 });
  const partial = await stopped.innerText();
  assert.ok(partial.includes('stopped') && !partial.includes('END.'), partial);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await stopped.innerText(), partial, 'nothing streams in after Stop');
  assert.equal(await chat.locator('#send').isDisabled(), false);
  await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-chat-stopped.png') });
  lap('chat_stop');

  // 6. History is kept per workspace: after a reload the panel comes back with its turns.
  await page.reload();
  await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
  await page.locator('.tabs-container .tab', { hasText: 'Companion Chat' }).first().waitFor({ timeout: 60000 });
  const again = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
  await until('the restored history', async () => (await again.locator('.turn.user').count()) === 2, 60000);
  assert.match(await again.locator('#log').innerText(), /Was B derived from A\?[\s\S]*END\.[\s\S]*And the second model\?/);
  await until('the server after the reload', () => page.locator('.codelens-decoration a', { hasText: /param/i }).first().isVisible(), 60000);
  await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-e2e.png') });
  lap('history_restored');

  // After "Set API Key" the endpoint saw the key from SecretStorage, and the config.json context.
  const requests = chatRequests().slice(before.length);
  assert.equal(requests.length, 2, `chat requests: ${requests.length}`);
  for (const r of requests) assert.equal(r.headers.authorization, `Bearer ${KEY}`);
  assert.ok(JSON.stringify(requests[0].body.messages).includes('LlamaForCausalLM'), 'config.json went along as context');
}

const started = Date.now();
let failed = null;
try {
  await main();
} catch (err) {
  failed = err;
  console.error(err);
  if (page) await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-e2e-failure.png') }).catch(() => undefined);
} finally {
  for (const stop of children.reverse()) { try { await stop(); } catch { /* already gone */ } }
}
timings.total = (Date.now() - started) / 1000;
fs.mkdirSync(ARTIFACTS, { recursive: true });
fs.writeFileSync(path.join(ARTIFACTS, 'vscode-e2e-timings.json'), JSON.stringify(timings, null, 2));
console.log(failed ? '0 passed, 1 failed' : '1 passed, 0 failed');
process.exit(failed ? 1 : 0);
