-- companion.nvim: thin adapter from Neovim's built-in LSP client (>= 0.7) to `companion serve`.
local M = {}

M.config = {
  cmd = { 'companion', 'serve' }, -- or set `python` to run `python -m companion serve`
  python = nil,
  settings = {}, -- sent as initializationOptions, e.g. { llm = { baseUrl = '...', model = '...' } }
  cmd_env = nil, -- extra environment for the server (the API key normally comes from your shell)
  patterns = {
    'config.json', '*.safetensors.index.json', '*.chat.md', '*.log', '*.jsonl',
    'trainer_state.json', 'wandb-summary.json',
  },
  -- A model or investigation folder, never the enclosing repository: with '.git' a whole
  -- repository became the workspace and its own data files were scanned as model configs.
  root_markers = { '.companion' },
}

local clients = {} -- root dir -> client id
local augroup = nil

local function notify(msg, level)
  vim.notify('companion: ' .. msg, level or vim.log.levels.INFO)
end
M.notify = notify

local function root_for(path)
  local dir = path ~= '' and vim.fn.fnamemodify(path, ':p:h') or vim.fn.getcwd()
  for _, marker in ipairs(M.config.root_markers) do
    local found = vim.fn.finddir(marker, dir .. ';')
    if found == '' then found = vim.fn.findfile(marker, dir .. ';') end
    if found ~= '' then return (vim.fn.fnamemodify(found, ':p'):gsub('/$', '')):match('^(.*)/[^/]*$') end
  end
  return dir
end

--- Open a file:// URI in a split unless a window already shows it.
function M.open_uri(uri)
  local bufnr = vim.uri_to_bufnr(uri)
  local win = vim.fn.bufwinid(bufnr)
  if win ~= -1 then
    vim.api.nvim_set_current_win(win)
  else
    vim.cmd('split')
    vim.api.nvim_win_set_buf(0, bufnr)
  end
  vim.fn.bufload(bufnr)
  return bufnr
end

local function handlers()
  local default_progress = vim.lsp.handlers['$/progress']
  return {
    -- Chat streams arrive on tokens we created; everything else goes to Neovim's default.
    ['$/progress'] = function(err, result, ctx, config)
      if result and require('companion.chat').on_progress(result.token, result.value) then
        return vim.NIL
      end
      return default_progress(err, result, ctx, config)
    end,
    ['window/showDocument'] = function(_, result)
      M.open_uri(result.uri)
      return { success = true }
    end,
  }
end

--- Start (or reuse) the server for the root of `path`; returns the client id.
function M.start(path)
  local root = root_for(path or vim.api.nvim_buf_get_name(0))
  local id = clients[root]
  if id and vim.lsp.get_client_by_id(id) and not vim.lsp.client_is_stopped(id) then return id end
  local cfg = M.config
  local cmd = cfg.python and { cfg.python, '-m', 'companion', 'serve' } or cfg.cmd
  id = vim.lsp.start_client({
    name = 'companion',
    cmd = cmd,
    cmd_env = cfg.cmd_env,
    root_dir = root,
    init_options = cfg.settings,
    settings = cfg.settings,
    handlers = handlers(),
    on_exit = function() clients[root] = nil end,
  })
  if not id then
    notify('could not start ' .. table.concat(cmd, ' ') .. ' (set `cmd` or `python` in setup{})', vim.log.levels.ERROR)
    return nil
  end
  clients[root] = id
  return id
end

--- The client attached to the current buffer, else any running companion client, else a new one.
function M.client()
  for _, c in ipairs(vim.lsp.buf_get_clients(0)) do
    if c.name == 'companion' then return c end
  end
  for _, id in pairs(clients) do
    local c = vim.lsp.get_client_by_id(id)
    if c and not c.is_stopped() then return c end
  end
  local name = vim.api.nvim_buf_get_name(0)
  local id = M.start(vim.fn.filereadable(name) == 1 and name or vim.fn.getcwd() .. '/')
  return id and vim.lsp.get_client_by_id(id) or nil
end

local function attach(bufnr)
  local id = M.start(vim.api.nvim_buf_get_name(bufnr))
  if id then vim.lsp.buf_attach_client(bufnr, id) end
end

--- Run a registry tool through `companion.show`; the server writes markdown that we open.
function M.show(tool, args, title)
  local client = M.client()
  if not client then return end
  local params = { command = 'companion.show', arguments = { { tool = tool, args = args, title = title } } }
  client.request('workspace/executeCommand', params, function(err, result)
    if err then
      notify(title .. ': ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif result and result.uri then
      M.open_uri(result.uri)
    end
  end, 0)
end

local function abs(p) return vim.fn.fnamemodify(vim.fn.expand(p), ':p') end

--- `key=value` words become audit.query arguments; bare words are model names.
function M.parse_query(words)
  local args = {}
  for _, word in ipairs(words) do
    local key, value = word:match('^([^=]+)=(.*)$')
    if not key then key, value = 'model', word end
    args[key] = args[key] and (args[key] .. ',' .. value) or value
  end
  return args
end

local function commands()
  local cmd = vim.api.nvim_create_user_command
  local chat = require('companion.chat')
  cmd('CompanionChat', function(o) chat.ask(o.args ~= '' and o.args or nil) end, { nargs = '*' })
  cmd('CompanionChatStop', function() chat.stop() end, {})
  cmd('CompanionChatNew', function() chat.reset() end, {})
  cmd('CompanionEvidence', function(o)
    local paths = vim.tbl_map(abs, o.fargs)
    if #paths == 0 then paths = { vim.api.nvim_buf_get_name(0) } end
    M.show('evidence.summarize', { paths = paths }, 'Training-log evidence')
  end, { nargs = '*', complete = 'file' })
  cmd('CompanionAudit', function(o)
    local a, b = abs(o.fargs[1]), abs(o.fargs[2])
    M.show('audit.compare', { a = a, b = b }, 'Audit ' .. a .. ' vs ' .. b)
  end, { nargs = '+', complete = 'file' })
  cmd('CompanionQuery', function(o)
    M.show('audit.query', M.parse_query(o.fargs), 'Audit results')
  end, { nargs = '*' })
end

--- Configure the plugin: start the server for matching files and define the :Companion* commands.
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', M.config, opts or {})
  if M.config.llm then M.config.settings = vim.tbl_deep_extend('force', M.config.settings, { llm = M.config.llm }) end
  augroup = vim.api.nvim_create_augroup('companion', { clear = true })
  vim.api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile' }, {
    group = augroup,
    pattern = M.config.patterns,
    callback = function(ev) attach(ev.buf) end,
  })
  commands()
  return M
end

return M
