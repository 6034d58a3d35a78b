// VS Code adapter for `companion serve`: the server does the work, this file only wires it in.
import * as vscode from 'vscode';
import {
  CancellationTokenSource, ExecuteCommandRequest, LanguageClient, LanguageClientOptions,
  ServerOptions, State, TransportKind, WorkDoneProgress,
} from 'vscode-languageclient/node';
import { Progress, Transport } from './chat';
import { keyEnvName } from './keyenv';
import { openChat } from './panel';
import { parseQuery } from './query';

const SECRET = 'companion.apiKey';
const SELECTOR = ['**/config.json', '**/*.safetensors.index.json', '**/*.chat.md', '**/*.log',
  '**/*.jsonl', '**/trainer_state.json', '**/wandb-summary.json'];
let client: LanguageClient | undefined;
let status: vscode.StatusBarItem;
let output: vscode.OutputChannel;

/** The settings the server reads, nested as `from_editor` accepts; empty values are left out. */
export function serverSettings(cfg = vscode.workspace.getConfiguration('companion')): object {
  const llm: Record<string, string> = {};
  for (const key of ['baseUrl', 'model', 'apiKeyEnv']) {
    const value = cfg.get<string>(`llm.${key}`, '').trim();
    if (value) llm[key] = value;
  }
  return { llm };
}

/** Command line from settings: `python -m companion serve` when a Python path is set. */
function serverCommand(cfg: vscode.WorkspaceConfiguration): { command: string; args: string[] } {
  const python = cfg.get<string>('server.pythonPath', '').trim();
  if (python) return { command: python, args: ['-m', 'companion', 'serve'] };
  const argv = cfg.get<string[]>('server.command', ['companion', 'serve']).filter((s) => s.trim());
  return argv.length ? { command: argv[0], args: argv.slice(1) } : { command: 'companion', args: ['serve'] };
}

function setStatus(text: string, tooltip: string): void {
  status.text = `$(beaker) ${text}`;
  status.tooltip = tooltip;
}

async function start(context: vscode.ExtensionContext): Promise<LanguageClient> {
  const cfg = vscode.workspace.getConfiguration('companion');
  const { command, args } = serverCommand(cfg);
  const env: Record<string, string | undefined> = { ...process.env };
  const key = await context.secrets.get(SECRET);
  // The key travels only in the child's environment, under the name the server is told to read.
  // A workspace may pick the variable's name, but never one that is not a key variable (PATH...).
  if (key) env[keyEnvName(cfg.get<string>('llm.apiKeyEnv'))] = key;
  const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio, options: { env } };
  const clientOptions: LanguageClientOptions = {
    documentSelector: SELECTOR.map((pattern) => ({ scheme: 'file', pattern })),
    initializationOptions: serverSettings(cfg),
    outputChannel: output,
  };
  const lc = new LanguageClient('companion', 'Companion', serverOptions, clientOptions);
  lc.onDidChangeState((e) => {
    if (e.newState === State.Running) setStatus('Companion', `companion server running (${command} ${args.join(' ')})`);
    else if (e.newState === State.Starting) setStatus('Companion: starting', 'starting companion serve');
    else setStatus('Companion: stopped', 'companion server stopped; click for the log');
  });
  client = lc;
  try {
    await lc.start();
  } catch (err) {
    setStatus('Companion: failed', String(err));
    void vscode.window.showErrorMessage(`Companion server failed to start (${command}): ${err}. Set companion.server.pythonPath or companion.server.command.`);
  }
  return lc;
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  const old = client;
  client = undefined;
  if (old) await old.dispose().catch(() => undefined);
  await start(context);
}

/** Adapt the running client to the chat session's transport. */
function transport(): Transport {
  const lc = client;
  if (!lc) throw new Error('The companion server is not running: run "Companion: Restart Server".');
  return {
    request(params) {
      const cts = new CancellationTokenSource();
      return { result: lc.sendRequest('companion/chat', params, cts.token), cancel: () => cts.cancel() };
    },
    onProgress: (token, handler) => lc.onProgress(WorkDoneProgress.type, token, (v) => handler(v as unknown as Progress)),
  };
}

/** Run a registry tool on the server and let it open the markdown result (`companion.show`). */
async function show(tool: string, args: object, title: string): Promise<void> {
  if (!client) { void vscode.window.showErrorMessage('The companion server is not running.'); return; }
  try {
    await client.sendRequest(ExecuteCommandRequest.type, { command: 'companion.show', arguments: [{ tool, args, title }] });
  } catch (err) {
    void vscode.window.showErrorMessage(`${title}: ${err instanceof Error ? err.message : err}`);
  }
}

async function pickPaths(title: string, many: boolean): Promise<string[] | undefined> {
  const uris = await vscode.window.showOpenDialog({ title, canSelectFiles: true, canSelectFolders: true, canSelectMany: many });
  return uris?.map((u) => u.fsPath);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('Companion');
  status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 10);
  status.command = 'companion.showOutput';
  setStatus('Companion: starting', 'starting companion serve');
  status.show();
  const reg = (id: string, fn: (...a: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  reg('companion.showOutput', () => output.show());
  reg('companion.restartServer', () => restart(context));
  reg('companion.openChat', () => { openChat(context, transport); });
  context.subscriptions.push(vscode.window.registerWebviewPanelSerializer('companion.chat', {
    deserializeWebviewPanel: async (panel) => { openChat(context, transport, panel); },
  }));
  reg('companion.setApiKey', async () => {
    const key = await vscode.window.showInputBox({ title: 'Companion: API key for the LLM endpoint', password: true, ignoreFocusOut: true });
    if (key === undefined) return;
    await context.secrets.store(SECRET, key.trim());
    await restart(context);
    void vscode.window.showInformationMessage('Companion: API key stored in VS Code secret storage.');
  });
  reg('companion.clearApiKey', async () => { await context.secrets.delete(SECRET); await restart(context); });
  // From the explorer: (clicked, selected[]); from the palette: the active file or a picker.
  reg('companion.evidence', async (uri?: unknown, selected?: unknown) => {
    const picked = Array.isArray(selected) && selected.length ? selected : [uri ?? vscode.window.activeTextEditor?.document.uri];
    const files = picked.filter((u): u is vscode.Uri => u instanceof vscode.Uri && u.scheme === 'file').map((u) => u.fsPath);
    const paths = files.length ? files : await pickPaths('Training logs or run directory', true);
    if (paths?.length) await show('evidence.summarize', { paths }, 'Training-log evidence');
  });
  reg('companion.audit', async (uri?: unknown, selected?: unknown) => {
    const chosen = (Array.isArray(selected) ? selected : [uri]).filter((u): u is vscode.Uri => u instanceof vscode.Uri).map((u) => u.fsPath);
    const a = chosen.length ? [chosen[0]] : await pickPaths('Checkpoint A (the suspected base)', false);
    const b = chosen.length > 1 ? [chosen[1]] : a && (await pickPaths('Checkpoint B (the suspect)', false));
    if (a?.length && b?.length) await show('audit.compare', { a: a[0], b: b[0] }, `Audit ${a[0]} vs ${b[0]}`);
  });
  reg('companion.query', async () => {
    const text = await vscode.window.showInputBox({ title: 'Query audit results', prompt: 'Models and filters, e.g. llama verdict=derived where=pearson>0.5 (empty: everything recorded)' });
    if (text !== undefined) await show('audit.query', parseQuery(text), 'Audit results');
  });
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration('companion.server') || e.affectsConfiguration('companion.llm.apiKeyEnv')) void restart(context);
    else if (e.affectsConfiguration('companion.llm')) void client?.sendNotification('workspace/didChangeConfiguration', { settings: serverSettings() });
  }));
  context.subscriptions.push(output, status); // the client itself is stopped in deactivate()
  await start(context);
}

export async function deactivate(): Promise<void> {
  await client?.dispose();
}
