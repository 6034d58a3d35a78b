// End-to-end test of editors/vscode in a real VS Code (code-server) driven by headless Chromium.
// Run through scripts/e2e_vscode.sh, which installs code-server and builds the .vsix first.
// Env: CODE_SERVER (binary), VSIX, PYTHON (with companion installed), ARTIFACTS (screenshots).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import assert from 'node:assert/strict';
import { ARTIFACTS, PYTHON, REPO, children, commandPalette, makeWorkspace, runE2E, startVsCode, until } from './vscode_harness.mjs';

const REPLY = 'The mean-centred correlation of the RMSNorm gains is about zero, so the models look **independent**; ' +
  Array.from({ length: 40 }, (_, i) => `point${i}`).join(' ') + ' END.';
const KEY = 'sk-e2e-secret-key';

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

async function main(lap, setPage) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'companion-e2e-'));
  const ws = makeWorkspace(tmp);
  const requestLog = path.join(tmp, 'requests.jsonl');
  const baseUrl = await startEndpoint(requestLog);
  const env = { ...process.env, COMPANION_HOME: path.join(tmp, 'home') };
  delete env.OPENAI_API_KEY; // the key must come from SecretStorage only
  const { page, settingsFile } = await startVsCode({ tmp, ws, env, lap,
    settings: { 'companion.llm.baseUrl': baseUrl, 'companion.llm.model': 'test-model' } });
  setPage(page);

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
  for (const f of [settingsFile, path.join(path.dirname(settingsFile), '../Machine/settings.json')]) assert.ok(!fs.readFileSync(f, 'utf8').includes(KEY), `the key never reaches ${f}`);
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
  // The restored layout depends on when the workbench last saved its state: config.json may be
  // a background tab. Bring it to the front (a lens only renders in a visible editor), then wait.
  const configTab = page.locator('.tabs-container .tab', { hasText: 'config.json' }).first();
  if (await configTab.count()) await configTab.click();
  else {
    await page.keyboard.press('Control+P');
    await page.keyboard.type('config.json');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'config.json' }).first().click();
  }
  await page.locator('.tabs-container .tab.active', { hasText: 'config.json' }).first().waitFor({ timeout: 30000 });
  await until('the server after the reload', () => page.locator('.codelens-decoration a', { hasText: /param/i }).first().isVisible(), 90000)
    .catch(async (err) => { throw new Error(`${err.message}; tabs: ${(await page.locator('.tabs-container .tab').allInnerTexts()).join(' | ')}`); });
  await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-e2e.png') });
  lap('history_restored');

  // After "Set API Key" the endpoint saw the key from SecretStorage, and the config.json context.
  const requests = chatRequests().slice(before.length);
  assert.equal(requests.length, 2, `chat requests: ${requests.length}`);
  for (const r of requests) assert.equal(r.headers.authorization, `Bearer ${KEY}`);
  assert.ok(JSON.stringify(requests[0].body.messages).includes('LlamaForCausalLM'), 'config.json went along as context');
}

await runE2E('vscode-e2e', main);
