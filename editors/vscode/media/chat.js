// Webview side of the chat panel: renders HTML produced by the extension (markdown-it, raw HTML off).
(function () {
  const vscode = acquireVsCodeApi();
  const log = document.getElementById('log');
  const input = document.getElementById('input');
  const send = document.getElementById('send');
  const stop = document.getElementById('stop');
  let live = null;

  function bubble(role, html, footer) {
    const div = document.createElement('div');
    div.className = 'turn ' + role;
    div.innerHTML = html;
    addFooter(div, footer);
    log.appendChild(div);
    div.scrollIntoView({ block: 'end' });
    return div;
  }
  function addFooter(div, footer) {
    if (!footer) return;
    const f = document.createElement('div');
    f.className = 'footer';
    f.textContent = footer;
    div.appendChild(f);
  }
  function setBusy(busy) {
    if (!busy) document.getElementById('status').textContent = '';
    send.disabled = busy;
    stop.disabled = !busy;
    document.body.dataset.busy = busy ? 'true' : 'false';
  }
  function finish(html, footer, cls) {
    if (!live) live = bubble('assistant', '');
    live.innerHTML = html;
    live.classList.remove('streaming');
    if (cls) live.classList.add(cls);
    addFooter(live, footer);
    live = null;
    setBusy(false);
  }
  window.addEventListener('message', (event) => {
    const m = event.data;
    if (m.type === 'history') {
      log.textContent = '';
      for (const t of m.turns) bubble(t.role, t.html, t.footer);
      setBusy(m.busy);
    } else if (m.type === 'user') bubble('user', m.html);
    else if (m.type === 'begin') { live = bubble('assistant streaming', ''); setBusy(true); }
    else if (m.type === 'delta') { if (live) { live.innerHTML = m.html; live.scrollIntoView({ block: 'end' }); } }
    else if (m.type === 'status') document.getElementById('status').textContent = m.message;
    else if (m.type === 'end') finish(m.html, m.footer, 'done');
    else if (m.type === 'stopped') finish(m.html, 'stopped', 'stopped');
    else if (m.type === 'error') {
      if (live) { live.classList.add('failed'); live = null; }
      bubble('error', '', m.message);
      setBusy(false);
    }
  });
  function submit() {
    const text = input.value.trim();
    if (!text || send.disabled) return;
    vscode.postMessage({ type: 'send', text });
    input.value = '';
  }
  send.addEventListener('click', submit);
  stop.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
  document.getElementById('clear').addEventListener('click', () => vscode.postMessage({ type: 'clear' }));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); submit(); }
  });
  setBusy(false);
  vscode.postMessage({ type: 'ready' });
})();
