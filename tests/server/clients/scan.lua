-- Headless Neovim 0.7 (built-in LSP client): start companion, open a file, run workspace.scan.
-- Env: COMPANION_CMD (JSON list), WS (workspace folder), OUT (result file).
local function main()
  local cmd = vim.fn.json_decode(os.getenv('COMPANION_CMD'))
  local ws = os.getenv('WS')
  vim.cmd('edit ' .. ws .. '/ckpt/config.json')
  vim.bo.filetype = 'json'
  local id = vim.lsp.start_client({ name = 'companion', cmd = cmd, root_dir = ws,
    workspace_folders = { { uri = vim.uri_from_fname(ws), name = 'ws' } } })
  assert(id, 'start_client failed')
  vim.lsp.buf_attach_client(0, id)
  assert(vim.wait(15000, function()
    local c = vim.lsp.get_client_by_id(id)
    return c ~= nil and c.initialized
  end, 50), 'server did not initialize')
  local res = vim.lsp.buf_request_sync(0, 'workspace/executeCommand',
    { command = 'companion.workspace.scan', arguments = { { max_files = 1000 } } }, 15000)
  assert(res and res[id], 'no reply')
  assert(res[id].err == nil, vim.inspect(res[id].err))
  local f = io.open(os.getenv('OUT'), 'w')
  f:write(vim.fn.json_encode(res[id].result))
  f:close()
  vim.lsp.stop_client(id)
end
local ok, err = pcall(main)
if not ok then
  io.stderr:write('FAIL: ' .. tostring(err) .. '\n')
  vim.cmd('cquit! 3')
end
vim.cmd('qall!')
