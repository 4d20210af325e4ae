-- Site policy for a site that keeps every service's logs: cleanup copies
-- log/ to an archive dir before the runtime dir goes, logs are compressed
-- after a few hours and kept a year, and stops are recorded in log/.
-- Set COPKG_LOG_ARCHIVE to choose the archive dir (default /var/tmp/copkg-logs).
local default = require("copkg.policy")
local archive_root = os.getenv("COPKG_LOG_ARCHIVE") or "/var/tmp/copkg-logs"

local function copy_tree(from, to)
  copkg.mkdir_p(to)
  for _, entry in ipairs(copkg.list(from)) do
    if entry.type == "dir" then
      copy_tree(entry.path, to .. "/" .. entry.name)
    elseif entry.type == "file" then
      copkg.write_file(to .. "/" .. entry.name, copkg.read_file(entry.path))
    end
  end
end

return {
  after_stop = function(ctx)
    copkg.write_file(ctx.runtime_dir .. "/log/stopped-at", os.date("!%Y-%m-%dT%H:%M:%SZ") .. "\n")
  end,

  before_cleanup = function(ctx)
    local log_dir = ctx.runtime_dir .. "/log"
    if copkg.exists(log_dir) then
      copy_tree(log_dir, archive_root .. "/" .. ctx.service .. "/" .. os.date("!%Y%m%dT%H%M%SZ"))
    end
  end,

  clean_logs = function(ctx, options)
    options.compress_after_days = 0.25
    options.delete_after_days = 365
    return default.clean_logs(ctx, options)
  end,
}
