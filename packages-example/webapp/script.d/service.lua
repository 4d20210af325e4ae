-- How the webapp service runs (docs/service-lua.md): ready once it answers
-- HTTP on the port given as --port=N (8080 by default), its access log for
-- log rotation, and a TERM that lets it finish what it serves.
local function port(ctx)
  for _, arg in ipairs(ctx.args) do
    local n = arg:match("^%-%-port=(%d+)$")
    if n then
      return n
    end
  end
  return "8080"
end

return {
  stop = { signal = "TERM", timeout = 10 },
  ready = function(ctx)
    return "http:http://127.0.0.1:" .. port(ctx) .. "/"
  end,
  limits = { nofile = 4096 },
  logs = { "log/access.log" },
}
