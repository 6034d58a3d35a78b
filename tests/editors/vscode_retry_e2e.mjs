// A failed server launch is retried with the settings read afresh: the first launch finds no
// interpreter at companion.server.pythonPath (as when VS Code restores a chat panel before the
// user settings reach the extension host); once it exists, the retry starts the server and the
// code lens appears. Run through scripts/e2e_vscode.sh.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PYTHON, makeWorkspace, runE2E, startVsCode, until } from './vscode_harness.mjs';

async function main(lap, setPage) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'companion-retry-'));
  const ws = makeWorkspace(tmp);
  const late = path.join(tmp, 'late-python');
  const { page } = await startVsCode({ tmp, ws, env: { ...process.env }, lap, settings: { 'companion.server.pythonPath': late } });
  setPage(page);
  const logDir = path.join(tmp, 'user-data/logs');
  const log = () => fs.readdirSync(logDir, { recursive: true }).map(String).filter((f) => f.endsWith('1-Companion.log'))
    .map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('');
  await until('a failed launch and its retry notice', () => log().includes('trying again'), 60000);
  fs.writeFileSync(late, `#!/bin/sh\nexec ${PYTHON} "$@"\n`, { mode: 0o755 });
  await page.keyboard.press('Control+P');
  await page.keyboard.type('config.json');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'config.json' }).first().click();
  await until('the code lens from the retried server', () => page.locator('.codelens-decoration a', { hasText: /param/i }).first().isVisible(), 90000);
  lap('lens_after_retry');
}

await runE2E('vscode-retry', main);
