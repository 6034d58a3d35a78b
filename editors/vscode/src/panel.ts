// The chat webview: one panel per window, wired to a ChatSession.
import * as vscode from 'vscode';
import MarkdownIt from 'markdown-it';
import { ChatContext, ChatSession, Inbound, Transport } from './chat';

const md = new MarkdownIt({ html: false, linkify: true, breaks: false });
let current: vscode.WebviewPanel | undefined;
let lastEditor: vscode.TextEditor | undefined; // focusing the panel clears activeTextEditor

/** The active editor's file and selection as chat context (the server reads only workspace files). */
function editorContext(): ChatContext | undefined {
  const editor = vscode.window.activeTextEditor ?? lastEditor;
  if (!editor || editor.document.isClosed || editor.document.uri.scheme !== 'file' || !vscode.workspace.getWorkspaceFolder(editor.document.uri)) return undefined;
  const sel = editor.selection;
  const ctx: ChatContext = { uri: editor.document.uri.toString() };
  if (!sel.isEmpty) {
    ctx.range = { start: { line: sel.start.line, character: sel.start.character }, end: { line: sel.end.line, character: sel.end.character } };
    ctx.text = editor.document.getText(sel);
  }
  return ctx;
}

/** Show the chat panel, creating it (and its session) on first use or reviving it after a reload. */
export function openChat(context: vscode.ExtensionContext, transport: () => Transport, revived?: vscode.WebviewPanel): vscode.WebviewPanel {
  if (current && !revived) { current.reveal(); return current; }
  lastEditor = vscode.window.activeTextEditor;
  const track = vscode.window.onDidChangeActiveTextEditor((e) => { if (e) lastEditor = e; });
  const media = vscode.Uri.joinPath(context.extensionUri, 'media');
  const options = { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: [media] };
  const panel = revived ?? vscode.window.createWebviewPanel('companion.chat', 'Companion Chat', vscode.ViewColumn.Beside, options);
  panel.webview.options = options;
  const lazy: Transport = {
    request: (p) => transport().request(p),
    onProgress: (t, h) => transport().onProgress(t, h),
  };
  const session = new ChatSession(lazy, (m) => void panel.webview.postMessage(m), (s) => md.render(s), context.workspaceState, editorContext);
  panel.webview.onDidReceiveMessage((m: Inbound) => session.handle(m), undefined, context.subscriptions);
  panel.onDidDispose(() => { void session.handle({ type: 'stop' }); track.dispose(); current = undefined; });
  const nonce = Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
  const script = panel.webview.asWebviewUri(vscode.Uri.joinPath(media, 'chat.js'));
  const style = panel.webview.asWebviewUri(vscode.Uri.joinPath(media, 'chat.css'));
  const csp = `default-src 'none'; img-src ${panel.webview.cspSource} https: data:; style-src ${panel.webview.cspSource}; script-src 'nonce-${nonce}';`;
  panel.webview.html = `<!DOCTYPE html><html><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<link rel="stylesheet" href="${style}"></head><body>
<div id="log" aria-live="polite"></div><div id="status" class="footer"></div>
<div id="bar"><textarea id="input" rows="3" placeholder="Ask about your checkpoints, logs and audits (Enter sends)"></textarea>
<div id="buttons"><button id="send">Send</button><button id="stop">Stop</button><button id="clear">Clear</button></div></div>
<script nonce="${nonce}" src="${script}"></script></body></html>`;
  current = panel;
  return panel;
}
