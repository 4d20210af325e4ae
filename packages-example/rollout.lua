-- A scripted rollout, as `copkg run` runs it:
--
--   copkg --repo REPO run packages-example/rollout.lua WEB_PORT
--
-- bulk-installs every example package in parallel, then starts the HTTP
-- example on WEB_PORT and the ticker, and reports each step. Safe to run
-- again: installed packages are no-ops, running services are left running.
local web_port = copkg.args[1] or "8080"
local packages = {
  "com.example:hello:1.0.0",
  "com.example:webapp:1.0.0",
  "com.example:ticker:1.0.0",
}

local failed = 0
for _, result in ipairs(copkg.install_many(packages, { jobs = 3 })) do
  print(string.format("%-26s %s", result.coordinate, result.status))
  if result.status == "failed" then
    copkg.log(result.coordinate .. ": " .. result.error)
    failed = failed + 1
  end
end
if failed > 0 then
  error(failed .. " of " .. #packages .. " installs failed")
end

local services = {
  { package = "com.example:webapp:1.0.0", service = "1.web.demo.local", args = { "--port=" .. web_port } },
  { package = "com.example:ticker:1.0.0", service = "1.ticker.demo.local", args = { "0.2" } },
}
for _, s in ipairs(services) do
  -- try_status: a service never started here is "no such service".
  local current = copkg.try_status(s.service)
  if current and current.state == "running" then
    print(s.service .. " already runs")
  else
    local started = copkg.start(s.package, s.service, s.args)
    print(string.format("started %s (pid %d)", started.service, started.pids[1]))
  end
end
