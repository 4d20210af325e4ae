-- A rolling upgrade, as `copkg run` runs it:
--
--   copkg --repo REPO run packages-example/upgrade-rollout.lua FROM TO PORT...
--
-- moves every service that runs package FROM to package TO, one at a time,
-- each checked for readiness on its port (the services are given in the
-- order of PORT...: 1.web.demo.local on the first, 2.web.demo.local on the
-- second, …), and stops at the first one that rolls back: the rest keep
-- running FROM. Exits 0 when all moved, else with copkg's code (12: the
-- failed one runs FROM again; 15: it could not be brought back).
copkg.require_api(1)
local from, to = copkg.args[1], copkg.args[2]
if not from or not to then
  error("usage: upgrade-rollout.lua FROM_COORD TO_COORD PORT...")
end

local ports = {}
for i = 3, #copkg.args do
  ports[#ports + 1] = copkg.args[i]
end

local moved = 0
for i, port in ipairs(ports) do
  local service = i .. ".web.demo.local"
  local current = copkg.try_status(service)
  if current and current.state == "running" and current.package == from then
    local done, err = copkg.try_upgrade(service, to, { ready = "tcp:127.0.0.1:" .. port, ready_timeout = 10 })
    if not done then
      copkg.log(service .. ": " .. err)
      -- Raised again, the error keeps copkg's exit code (12 or 15).
      error("rollout stopped at " .. service .. " after " .. moved .. " upgrade(s): " .. err)
    end
    print(string.format("%s: %s -> %s (down %.0f ms)", service, done.from, done.to, done.downtime * 1000))
    moved = moved + 1
  else
    print(service .. ": not running " .. from .. ", skipped")
  end
end
print(moved .. " service(s) upgraded")
