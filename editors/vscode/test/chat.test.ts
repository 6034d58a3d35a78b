// Message handling of the chat panel, driven through node's test runner with a scripted transport.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChatParams, ChatResult, ChatSession, HISTORY_KEY, Outbound, Progress, Transport, footerFor } from '../src/chat';

class MemoryStore {
  data = new Map<string, unknown>();
  get<T>(key: string): T | undefined { return this.data.get(key) as T | undefined; }
  async update(key: string, value: unknown): Promise<void> { this.data.set(key, JSON.parse(JSON.stringify(value))); }
}

/** A transport whose requests are settled by the test, recording params, progress handlers and cancels. */
class ScriptedTransport implements Transport {
  requests: ChatParams[] = [];
  cancels = 0;
  handlers = new Map<string, (v: Progress) => void>();
  disposed: string[] = [];
  settle: { resolve(r: ChatResult): void; reject(e: unknown): void }[] = [];
  request(params: ChatParams) {
    this.requests.push(params);
    const result = new Promise<ChatResult | undefined>((resolve, reject) => this.settle.push({ resolve, reject }));
    return { result, cancel: () => { this.cancels += 1; } };
  }
  onProgress(token: string, handler: (v: Progress) => void) {
    this.handlers.set(token, handler);
    return { dispose: () => { this.disposed.push(token); } };
  }
  emit(value: Progress): void { this.handlers.get(this.requests.at(-1)!.workDoneToken)!(value); }
}

const render = (s: string) => `<p>${s}</p>`;
const tick = () => new Promise((r) => setImmediate(r));

function setup(store = new MemoryStore(), context = () => ({ uri: 'file:///w/config.json' })) {
  const transport = new ScriptedTransport();
  const posted: Outbound[] = [];
  const session = new ChatSession(transport, (m) => posted.push(m), render, store, context);
  return { transport, posted, session, store };
}

test('a turn streams deltas as re-rendered markdown and ends with usage and tools', async () => {
  const { transport, posted, session, store } = setup();
  const done = session.handle({ type: 'send', text: '  was B derived from A?  ' });
  await tick();
  const params = transport.requests[0];
  assert.equal(params.message, 'was B derived from A?');
  assert.deepEqual(params.context, { uri: 'file:///w/config.json' });
  assert.equal(params.conversationId, undefined);
  assert.match(params.workDoneToken, /^companion-chat-/);
  assert.ok(session.busy);
  transport.emit({ kind: 'begin', title: 'chat' });
  transport.emit({ kind: 'report', delta: 'No: ' });
  transport.emit({ kind: 'report', message: 'tool running' });
  transport.emit({ kind: 'report', delta: 'independent.' });
  transport.settle[0].resolve({ conversationId: 'c1', text: 'No: independent.', toolCalls: [{ name: 'audit.query' }], usage: { promptTokens: 10, completionTokens: 2, totalTokens: 12 }, notes: [] });
  await done;
  assert.deepEqual(posted.map((m) => m.type), ['user', 'begin', 'delta', 'status', 'delta', 'end']);
  assert.deepEqual(posted[3], { type: 'status', message: 'tool running' });
  assert.deepEqual(posted.filter((m) => m.type === 'delta').map((m) => (m as { html: string }).html), ['<p>No: </p>', '<p>No: independent.</p>']);
  assert.deepEqual(posted.at(-1), { type: 'end', html: '<p>No: independent.</p>', footer: '12 tokens · tools: audit.query' });
  assert.deepEqual(transport.disposed, [params.workDoneToken]);
  assert.equal(session.busy, false);
  const saved = store.get<{ conversationId: string; turns: unknown[] }>(HISTORY_KEY)!;
  assert.equal(saved.conversationId, 'c1');
  assert.equal(saved.turns.length, 2);
});

test('the next turn continues the conversation the server named', async () => {
  const { transport, session } = setup();
  const first = session.handle({ type: 'send', text: 'one' });
  await tick();
  transport.settle[0].resolve({ conversationId: 'conv-7', text: 'a' });
  await first;
  const second = session.handle({ type: 'send', text: 'two' });
  await tick();
  assert.equal(transport.requests[1].conversationId, 'conv-7');
  assert.notEqual(transport.requests[1].workDoneToken, transport.requests[0].workDoneToken);
  transport.settle[1].resolve({ conversationId: 'conv-7', text: 'b' });
  await second;
});

test('Stop cancels the request, keeps the partial answer and ignores late deltas and the late reply', async () => {
  const { transport, posted, session, store } = setup();
  const done = session.handle({ type: 'send', text: 'long question' });
  await tick();
  transport.emit({ kind: 'report', delta: 'partial' });
  await session.handle({ type: 'stop' });
  assert.equal(transport.cancels, 1);
  assert.equal(session.busy, false);
  assert.deepEqual(posted.at(-1), { type: 'stopped', html: '<p>partial</p>' });
  transport.emit({ kind: 'report', delta: ' more' });
  transport.settle[0].reject(Object.assign(new Error('cancelled'), { code: -32800 }));
  await done;
  assert.equal(posted.filter((m) => m.type === 'error' || m.type === 'end').length, 0);
  assert.equal(posted.filter((m) => m.type === 'delta').length, 1);
  const turns = store.get<{ turns: { text: string; footer?: string }[] }>(HISTORY_KEY)!.turns;
  assert.deepEqual(turns.at(-1), { role: 'assistant', text: 'partial', footer: 'stopped' });
});

test('a second send while streaming is refused, and stop when idle does nothing', async () => {
  const { transport, posted, session } = setup();
  await session.handle({ type: 'stop' });
  assert.equal(transport.cancels, 0);
  const done = session.handle({ type: 'send', text: 'first' });
  await tick();
  await session.handle({ type: 'send', text: 'second' });
  assert.equal(transport.requests.length, 1);
  assert.equal(posted.at(-1)?.type, 'error');
  transport.settle[0].resolve({ text: 'ok' });
  await done;
  await session.handle({ type: 'send', text: '   ' });
  assert.equal(transport.requests.length, 1);
});

test('a server error reaches the panel and frees the session', async () => {
  const { transport, posted, session } = setup();
  const done = session.handle({ type: 'send', text: 'q' });
  await tick();
  transport.settle[0].reject(new Error('No LLM endpoint is configured. Set companion.llm.baseUrl.'));
  await done;
  assert.deepEqual(posted.at(-1), { type: 'error', message: 'No LLM endpoint is configured. Set companion.llm.baseUrl.' });
  assert.equal(session.busy, false);
});

test('history survives a new panel in the same workspace, and Clear forgets it', async () => {
  const store = new MemoryStore();
  const a = setup(store);
  const done = a.session.handle({ type: 'send', text: '**bold** question' });
  await tick();
  a.transport.settle[0].resolve({ conversationId: 'c9', text: 'answer', usage: { totalTokens: 3 } });
  await done;
  const b = setup(store, () => ({ uri: 'file:///x' }));
  await b.session.handle({ type: 'ready' });
  assert.deepEqual(b.posted[0], {
    type: 'history', busy: false,
    turns: [{ role: 'user', html: '<p>**bold** question</p>', footer: undefined }, { role: 'assistant', html: '<p>answer</p>', footer: '3 tokens' }],
  });
  const next = b.session.handle({ type: 'send', text: 'again' });
  await tick();
  assert.equal(b.transport.requests[0].conversationId, 'c9');
  b.transport.settle[0].resolve({ text: 'x' });
  await next;
  await b.session.handle({ type: 'clear' });
  assert.deepEqual(store.get(HISTORY_KEY), { turns: [] });
  assert.deepEqual(b.posted.at(-1), { type: 'history', busy: false, turns: [] });
});

test('a reply without text falls back to the streamed text; footer lists notes', async () => {
  assert.equal(footerFor({ notes: ['context truncated'], toolCalls: [{}] }), 'context truncated');
  const { transport, posted, session } = setup();
  const done = session.handle({ type: 'send', text: 'q' });
  await tick();
  transport.emit({ kind: 'report', delta: 'streamed only' });
  transport.settle[0].resolve(undefined as unknown as ChatResult);
  await done;
  assert.deepEqual(posted.at(-1), { type: 'end', html: '<p>streamed only</p>', footer: '' });
});
