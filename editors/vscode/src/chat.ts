// Chat panel logic without any `vscode` import, so node's test runner can drive it directly.

export interface ChatContext { uri?: string; range?: unknown; text?: string }
export interface ChatParams {
  conversationId?: string; message: string; context?: ChatContext; workDoneToken: string;
}
export interface ChatResult {
  conversationId?: string; text?: string; toolCalls?: { name?: string }[];
  usage?: { promptTokens?: number; completionTokens?: number; totalTokens?: number };
  notes?: string[];
}
export type Progress = { kind: 'begin'; title?: string } | { kind: 'report'; delta?: string; message?: string } | { kind: 'end' };
export interface Pending { result: Promise<ChatResult | undefined>; cancel(): void }
/** What the session needs from the language client (the extension adapts vscode-languageclient). */
export interface Transport {
  request(params: ChatParams): Pending;
  onProgress(token: string, handler: (value: Progress) => void): { dispose(): void };
}
/** Subset of vscode.Memento used for per-workspace history. */
export interface Store { get<T>(key: string): T | undefined; update(key: string, value: unknown): Thenable<void> | Promise<void> }
export interface Turn { role: 'user' | 'assistant'; text: string; footer?: string }
export type Inbound = { type: 'ready' } | { type: 'send'; text: string } | { type: 'stop' } | { type: 'clear' };
export type Outbound =
  | { type: 'history'; turns: { role: string; html: string; footer?: string }[]; busy: boolean }
  | { type: 'user'; html: string }
  | { type: 'begin' }
  | { type: 'delta'; html: string }
  | { type: 'status'; message: string }
  | { type: 'end'; html: string; footer: string }
  | { type: 'stopped'; html: string }
  | { type: 'error'; message: string };

export const HISTORY_KEY = 'companion.chat.history';
const MAX_TURNS = 200;
let counter = 0;

/** Footer line under an answer: token usage, tools used and server notes. */
export function footerFor(result: ChatResult): string {
  const parts: string[] = [];
  const total = result.usage?.totalTokens;
  if (typeof total === 'number') parts.push(`${total} tokens`);
  const tools = (result.toolCalls ?? []).map((t) => t.name).filter((n): n is string => !!n);
  if (tools.length) parts.push(`tools: ${tools.join(', ')}`);
  for (const note of result.notes ?? []) parts.push(String(note));
  return parts.join(' · ');
}

/** One chat panel: turns webview messages into `companion/chat` requests and streams answers back. */
export class ChatSession {
  private turns: Turn[];
  private conversationId: string | undefined;
  private current: { pending: Pending; text: string; stopped: boolean } | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly post: (msg: Outbound) => void,
    private readonly render: (markdown: string) => string,
    private readonly store: Store,
    private readonly context: () => ChatContext | undefined = () => undefined,
  ) {
    const saved = store.get<{ conversationId?: string; turns?: Turn[] }>(HISTORY_KEY);
    this.turns = Array.isArray(saved?.turns) ? saved.turns : [];
    this.conversationId = saved?.conversationId;
  }

  get busy(): boolean { return this.current !== undefined; }

  /** Dispatch one message from the webview; unknown messages are ignored. */
  async handle(msg: Inbound): Promise<void> {
    switch (msg?.type) {
      case 'ready':
        this.post({ type: 'history', busy: this.busy, turns: this.turns.map((t) => ({ role: t.role, html: this.render(t.text), footer: t.footer })) });
        return;
      case 'send': return this.send(String(msg.text ?? ''));
      case 'stop': return this.stop();
      case 'clear':
        this.stop();
        this.turns = [];
        this.conversationId = undefined;
        await this.save();
        return this.handle({ type: 'ready' });
    }
  }

  private async send(text: string): Promise<void> {
    const message = text.trim();
    if (!message) return;
    if (this.current) { this.post({ type: 'error', message: 'A turn is still streaming: press Stop first.' }); return; }
    this.turns.push({ role: 'user', text: message });
    this.post({ type: 'user', html: this.render(message) });
    const token = `companion-chat-${process.pid}-${Date.now()}-${++counter}`;
    const params: ChatParams = { message, workDoneToken: token };
    if (this.conversationId) params.conversationId = this.conversationId;
    const ctx = this.context();
    if (ctx) params.context = ctx;
    const state = { text: '', stopped: false, pending: undefined as unknown as Pending };
    const progress = this.transport.onProgress(token, (value) => {
      if (value?.kind !== 'report' || state.stopped) return;
      if (typeof value.delta === 'string') {
        state.text += value.delta;
        this.post({ type: 'delta', html: this.render(state.text) });
      } else if (typeof value.message === 'string') {
        this.post({ type: 'status', message: value.message }); // e.g. which tool runs
      }
    });
    this.post({ type: 'begin' });
    try {
      state.pending = this.transport.request(params);
      this.current = state;
      const result = await state.pending.result;
      if (state.stopped) return;
      if (result?.conversationId) this.conversationId = result.conversationId;
      const answer = typeof result?.text === 'string' ? result.text : state.text;
      const footer = result ? footerFor(result) : '';
      this.turns.push({ role: 'assistant', text: answer, footer });
      this.post({ type: 'end', html: this.render(answer), footer });
    } catch (err) {
      if (state.stopped) return;
      const message = err instanceof Error ? err.message : String(err);
      this.turns.push({ role: 'assistant', text: state.text, footer: `error: ${message}` });
      this.post({ type: 'error', message });
    } finally {
      progress.dispose();
      if (this.current === state) this.current = undefined;
      await this.save();
    }
  }

  /** Cancel the streaming turn: the client sends $/cancelRequest, the partial answer is kept. */
  private stop(): void {
    const state = this.current;
    if (!state) return;
    state.stopped = true;
    this.current = undefined;
    state.pending.cancel();
    this.turns.push({ role: 'assistant', text: state.text, footer: 'stopped' });
    this.post({ type: 'stopped', html: this.render(state.text) });
    void this.save();
  }

  private async save(): Promise<void> {
    await this.store.update(HISTORY_KEY, { conversationId: this.conversationId, turns: this.turns.slice(-MAX_TURNS) });
  }
}
