-- Starts the ticker service in-process: picks the binary for this platform
-- from bin/<os>-<arch>/ through the platform policy (copkg.binary) and
-- spawns it detached. copkg records the pid; no stop.lua is needed: copkg
-- stops it by its signal schedule.
local ctx = ...
local program = copkg.binary(ctx.package_dir, "ticker")
local interval = ctx.args[1] or "1"
copkg.spawn({
  program = program,
  args = { ctx.runtime_dir .. "/log/ticker.log", interval },
  cwd = ctx.runtime_dir,
  stdout = ctx.runtime_dir .. "/console/stdout.log",
  stderr = ctx.runtime_dir .. "/console/stderr.log",
})
