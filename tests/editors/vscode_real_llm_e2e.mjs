// The VS Code chat panel against a real model: code-server + the packaged extension, with
// companion.llm.baseUrl aimed at a running llama.cpp server (SmolLM2-135M). Run by
// tests/llm_real/test_vscode_chat.py, which starts that server (make test-llm).
// Env: COMPANION_E2E_LLM_URL (the endpoint's /v1 URL), COMPANION_E2E_LLM_MODEL, plus the
// harness's CODE_SERVER, VSIX, PYTHON and ARTIFACTS. Saves test-artifacts/vscode-chat-real-llm.png.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { ARTIFACTS, commandPalette, makeWorkspace, runE2E, startVsCode, until } from './vscode_harness.mjs';

const BASE_URL = process.env.COMPANION_E2E_LLM_URL;
const MODEL = process.env.COMPANION_E2E_LLM_MODEL ?? 'smollm2-135m';
// One llama thread on a loaded 2-core machine: first tokens can take 60 s and more. Generous, bounded.
const ANSWER_MS = 600_000;
const QUESTION = 'In one sentence: what does a training log tell us about a model?';

async function main(lap, setPage) {
  assert.ok(BASE_URL && new URL(BASE_URL).hostname === '127.0.0.1', `COMPANION_E2E_LLM_URL on 127.0.0.1: ${BASE_URL}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'companion-e2e-llm-'));
  const ws = makeWorkspace(tmp);
  const env = {
    ...process.env, COMPANION_HOME: path.join(tmp, 'home'),
    // The server reads these (the extension passes only baseUrl and model): a short answer,
    // the real window (llama.cpp does not report n_ctx), and reads as slow as a busy machine.
    COMPANION_LLM_MAX_OUTPUT_TOKENS: '96', COMPANION_LLM_CONTEXT_LENGTH: '4096',
    COMPANION_LLM_TIMEOUT_S: String(ANSWER_MS / 1000), COMPANION_LLM_MAX_ANSWER_S: String(ANSWER_MS / 1000),
  };
  delete env.OPENAI_API_KEY;
  const { page } = await startVsCode({ tmp, ws, env, lap,
    settings: { 'companion.llm.baseUrl': BASE_URL, 'companion.llm.model': MODEL } });
  setPage(page);
  await until('the companion server', () => page.locator('.statusbar-item', { hasText: 'Companion' }).first().isVisible(), 120000);

  await commandPalette(page, 'Companion: Open Chat');
  const chat = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
  await chat.locator('#input').waitFor({ timeout: 60000 });
  await chat.locator('#input').fill(QUESTION);
  await chat.locator('#send').click();
  lap('asked');

  // Wait for the turn to end, either way; note whether text was seen while it streamed.
  let partial = '';
  const ended = await until('the real model to answer', async () => {
    if (!partial) partial = (await chat.locator('.turn.assistant.streaming').first().innerText({ timeout: 500 }).catch(() => '')).trim();
    if (await chat.locator('.turn.error').count()) return 'error';
    return (await chat.locator('.turn.assistant.done').count()) ? 'done' : null;
  }, ANSWER_MS);
  lap('answered');
  await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-chat-real-llm.png') });

  const errors = await chat.locator('.turn.error, .turn.assistant.failed').allInnerTexts();
  assert.equal(ended, 'done', `the chat ended in an error: ${errors.join(' | ')}`);
  assert.deepEqual(errors, [], 'no error bubble');
  const done = chat.locator('.turn.assistant.done').first();
  const footer = (await done.locator('.footer').allInnerTexts()).join(' ');
  const answer = (await done.innerText()).replace(footer, '').trim();
  console.log(`[e2e] real answer (${answer.length} chars, seen streaming: ${partial.length > 0}): ${answer.slice(0, 200)}`);
  console.log(`[e2e] footer: ${footer}`);
  assert.ok(answer.length > 0, 'the answer has text');
  assert.doesNotMatch(footer, /^error/i, 'the footer is not an error');
  assert.doesNotMatch(answer, /^companion:|context_length_exceeded|Requested tokens|endpoint (error|failed)/i, 'not an error message');
  assert.ok(!(await chat.locator('#send').isDisabled()), 'the panel is ready for the next turn');
}

await runE2E('vscode-real-llm', main);
