-- :CompanionChat — a scratch markdown buffer fed by `companion/chat`, streamed through $/progress.
local M = {}

local state = {
  buf = nil,
  conversation = nil,
  streams = {}, -- workDoneToken -> function(value), or false once the turn finished
  current = nil, -- { client, id, token, stopped }
  seq = 0,
}
M.state = state

local function chat_buffer()
  if state.buf and vim.api.nvim_buf_is_valid(state.buf) then return state.buf end
  local buf = vim.api.nvim_create_buf(true, true)
  vim.api.nvim_buf_set_name(buf, 'companion://chat')
  vim.bo[buf].filetype = 'markdown'
  vim.bo[buf].bufhidden = 'hide'
  local map = function(lhs, fn) vim.keymap.set('n', lhs, fn, { buffer = buf, silent = true }) end
  map('<CR>', function() M.ask() end)
  map('<C-c>', function() M.stop() end)
  state.buf = buf
  return buf
end

local function show(buf)
  if vim.fn.bufwinid(buf) == -1 then
    vim.cmd('vsplit')
    vim.api.nvim_win_set_buf(0, buf)
  end
end

--- Append text at the end of the buffer (continuing its last line) and keep it in view.
local function append(buf, text)
  local last = vim.api.nvim_buf_line_count(buf)
  local tail = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ''
  vim.api.nvim_buf_set_lines(buf, last - 1, last, false, vim.split(tail .. text, '\n', { plain = true }))
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 then vim.api.nvim_win_set_cursor(win, { vim.api.nvim_buf_line_count(buf), 0 }) end
end
M.append = append

--- Called by the $/progress handler; returns true when the token belongs to a chat turn.
function M.on_progress(token, value)
  local stream = state.streams[token]
  if stream == nil then return false end
  if stream then stream(value or {}) end -- false: a finished turn whose `end` may still arrive
  return true
end

local function footer(result)
  local parts = {}
  local usage = result.usage or {}
  if usage.totalTokens then table.insert(parts, usage.totalTokens .. ' tokens') end
  local tools = {}
  for _, call in ipairs(result.toolCalls or {}) do
    if call.name then table.insert(tools, call.name) end
  end
  if #tools > 0 then table.insert(parts, 'tools: ' .. table.concat(tools, ', ')) end
  for _, note in ipairs(result.notes or {}) do table.insert(parts, tostring(note)) end
  return table.concat(parts, ' · ')
end

local function finish(turn, line)
  state.streams[turn.token] = false
  if state.current == turn then state.current = nil end
  append(state.buf, '\n\n' .. line .. '\n\n')
end

--- Send one question (prompting when `message` is nil); the answer streams into the chat buffer.
function M.ask(message)
  if not message then
    vim.ui.input({ prompt = 'Ask companion: ' }, function(text)
      if text and text:match('%S') then M.ask(text) end
    end)
    return
  end
  if state.current then
    require('companion').notify('a turn is still streaming (:CompanionChatStop)', vim.log.levels.WARN)
    return
  end
  local client = require('companion').client()
  if not client then return end
  -- The file the question is about: the buffer we were called from (or the last such buffer).
  -- The server only reads files inside the workspace, so other buffers are not sent as context.
  local here = vim.api.nvim_get_current_buf()
  local path = vim.api.nvim_buf_get_name(here)
  local root = client.config.root_dir and (client.config.root_dir:gsub('/$', '') .. '/') or ''
  if here ~= state.buf and vim.fn.filereadable(path) == 1 and path:sub(1, #root) == root then
    state.origin = vim.uri_from_bufnr(here)
  end
  local context = state.origin and { uri = state.origin } or nil
  local buf = chat_buffer()
  show(buf)
  state.seq = state.seq + 1
  local token = ('companion-nvim-%d-%d'):format(vim.fn.getpid(), state.seq)
  local turn = { client = client, token = token, stopped = false, text = '' }
  local prefix = vim.api.nvim_buf_line_count(buf) > 1 and '\n' or ''
  append(buf, prefix .. '## You\n\n' .. message .. '\n\n## Companion\n\n')
  state.streams[token] = function(value)
    if value.kind ~= 'report' or turn.stopped then return end
    if type(value.delta) == 'string' then
      turn.text = turn.text .. value.delta
      append(buf, value.delta)
    elseif type(value.message) == 'string' then
      vim.api.nvim_echo({ { 'companion: ' .. value.message } }, false, {}) -- e.g. which tool runs
    end
  end
  local params = { message = message, workDoneToken = token, conversationId = state.conversation, context = context }
  local ok, id = client.request('companion/chat', params, function(err, result)
    turn.reply = { err = err, result = result }
    if turn.stopped then return end
    if err then
      finish(turn, '_error: ' .. (err.message or vim.inspect(err)) .. '_')
      return
    end
    result = result or {}
    state.conversation = result.conversationId or state.conversation
    if turn.text == '' and type(result.text) == 'string' then append(buf, result.text) end
    local f = footer(result)
    finish(turn, f ~= '' and ('_' .. f .. '_') or '')
  end, buf)
  if not ok then
    finish(turn, '_error: the companion server is not running_')
    return
  end
  turn.id = id
  state.current = turn
end

--- Cancel the streaming turn ($/cancelRequest); the partial answer stays in the buffer.
function M.stop()
  local turn = state.current
  if not turn then return false end
  turn.stopped = true
  turn.client.cancel_request(turn.id)
  finish(turn, '_[stopped]_')
  return true
end

--- Forget the conversation and clear the buffer.
function M.reset()
  M.stop()
  state.conversation = nil
  if state.buf and vim.api.nvim_buf_is_valid(state.buf) then
    vim.api.nvim_buf_set_lines(state.buf, 0, -1, false, {})
  end
end

return M
