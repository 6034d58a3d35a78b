-- Headless Neovim session driven by tests/editors/test_editors_neovim.py.
-- Env: PLUGIN (editors/neovim), COMPANION_CMD (JSON argv), LLM_BASE_URL, WS, OUT, GO (a file the
-- test creates once it has seen the upstream stream close after our cancel).
local out = {}
local function wait(ms, cond, what)
  if not vim.wait(ms, cond, 20) then error('timed out waiting for ' .. what) end
end
local function buffer_text(buf) return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n') end

local ok, err = pcall(function()
  vim.opt.runtimepath:prepend(os.getenv('PLUGIN'))
  local companion = require('companion').setup({
    cmd = vim.fn.json_decode(os.getenv('COMPANION_CMD')),
    llm = { baseUrl = os.getenv('LLM_BASE_URL'), model = 'test-model' },
  })
  local chat = require('companion.chat')
  local ws = os.getenv('WS')
  vim.cmd('edit ' .. ws .. '/config.json')
  local config_buf = vim.api.nvim_get_current_buf()
  wait(15000, function()
    local c = vim.lsp.get_active_clients()[1]
    return c ~= nil and c.initialized and vim.lsp.buf_is_attached(config_buf, c.id)
  end, 'the companion client to attach')

  -- :CompanionEvidence, :CompanionAudit and :CompanionQuery run tools through companion.show;
  -- the server writes markdown that the plugin opens in a split.
  local seen = {}
  local function result_of(cmd)
    vim.cmd(cmd)
    wait(30000, function()
      local name = vim.api.nvim_buf_get_name(0)
      return name:match('%.md$') ~= nil and not seen[name]
    end, 'the result of ' .. cmd)
    local name = vim.api.nvim_buf_get_name(0)
    seen[name] = true
    local text = buffer_text(0)
    vim.api.nvim_set_current_buf(config_buf)
    return name, text
  end
  _, out.evidence_text = result_of('CompanionEvidence ' .. ws .. '/train.log ' .. ws .. '/config.json')
  _, out.audit_text = result_of('CompanionAudit ' .. ws .. '/a.safetensors ' .. ws .. '/b.safetensors')
  out.query_file, out.query_text = result_of('CompanionQuery verdict=derived')

  -- Chat in a file (what Helix uses): the "Ask companion" code action streams into notes.chat.md
  -- through workspace/applyEdit, which Neovim's own handler applies.
  vim.cmd('edit ' .. ws .. '/notes.chat.md')
  local file_buf = vim.api.nvim_get_current_buf()
  wait(15000, function() return next(vim.lsp.buf_get_clients(file_buf)) ~= nil end, 'the chat file to attach')
  local range = { start = { line = 0, character = 0 }, ['end'] = { line = 2, character = 0 } }
  local responses = vim.lsp.buf_request_sync(file_buf, 'textDocument/codeAction', {
    textDocument = { uri = vim.uri_from_bufnr(file_buf) }, range = range, context = { diagnostics = {} },
  }, 10000)
  local ask
  for _, r in pairs(responses or {}) do
    for _, a in ipairs(r.result or {}) do
      if a.title == 'Ask companion' then ask = a end
    end
  end
  assert(ask, 'no "Ask companion" code action')
  local command = type(ask.command) == 'table' and ask.command or ask
  local answered = false
  local _, file_client = next(vim.lsp.buf_get_clients(file_buf))
  file_client.request('workspace/executeCommand', { command = command.command, arguments = command.arguments },
    function(err) answered = err or true end, file_buf)
  wait(30000, function() return answered end, 'the chat-file answer')
  assert(answered == true, vim.inspect(answered))
  out.chat_file_text = buffer_text(file_buf)
  vim.api.nvim_set_current_buf(config_buf)

  -- :CompanionChat streams into the chat buffer.
  local deltas = 0
  local orig = chat.on_progress
  chat.on_progress = function(token, value)
    if value and value.kind == 'report' and value.delta then deltas = deltas + 1 end
    return orig(token, value)
  end
  vim.cmd('CompanionChat Was B derived from A?')
  wait(30000, function() return chat.state.current == nil and deltas > 0 end, 'the first answer')
  out.deltas = deltas
  out.conversation = chat.state.conversation
  out.chat_after_first = buffer_text(chat.state.buf)

  -- A second, slow turn: stop it after the first delta.
  deltas = 0
  vim.cmd('CompanionChat And the second model?')
  local turn = chat.state.current
  wait(30000, function() return deltas > 0 end, 'the first delta of the slow answer')
  vim.cmd('CompanionChatStop')
  out.stopped_text = buffer_text(chat.state.buf)
  out.deltas_before_stop = deltas
  -- The server answers the cancelled request; Neovim mutes RequestCancelled (-32800), so a
  -- finished request whose callback never ran was acknowledged as cancelled.
  wait(15000, function() return turn.client.requests[turn.id] == nil end, 'the reply to the cancel')
  out.cancel_acknowledged = turn.reply == nil
  local go = os.getenv('GO')
  wait(30000, function() return vim.loop.fs_stat(go) ~= nil end, 'the test to see the upstream close')
  out.deltas_after_stop = deltas
  out.final_text = buffer_text(chat.state.buf)
end)
out.ok = ok
local cbuf = require('companion.chat').state.buf
if not ok and cbuf then out.chat_text = buffer_text(cbuf) end
out.error = err and tostring(err) or nil
local f = io.open(os.getenv('OUT'), 'w')
f:write(vim.fn.json_encode(out))
f:close()
for _, c in ipairs(vim.lsp.get_active_clients()) do c.stop(true) end
vim.cmd(ok and 'qall!' or 'cquit! 3')
