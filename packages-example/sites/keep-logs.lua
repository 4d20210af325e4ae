-- Site policy for a site that keeps every service's logs: cleanup copies
-- log/ to an archive dir before the runtime dir goes, logs are compressed
-- after a few hours and kept a year, and stops are recorded in log/.
--
-- Set COPKG_LOG_ARCHIVE to choose the archive dir (default
-- /var/lib/copkg/log-archive). It must be a dir only root can write, up to
-- /: a service account that could write on the way could plant a link
-- there (copkg follows none in such a dir, so the archive would fail).
--
-- The copy reads the service's files through copkg.list/read_file, which
-- follow no link the account planted and read only regular files: links,
-- FIFOs and the like are left out, and a file that cannot be read safely
-- (swapped for a link meanwhile, hard-linked from elsewhere) is named on
-- stderr and skipped.
local default = require("copkg.policy")
local archive_root = os.getenv("COPKG_LOG_ARCHIVE") or "/var/lib/copkg/log-archive"

-- The account chose the names: no control character reaches the terminal.
local function printable(text)
  return (text:gsub("%c", function(c)
    return string.format("\\%03d", c:byte())
  end))
end

local function copy_tree(from, to)
  copkg.mkdir_p(to)
  for _, entry in ipairs(copkg.list(from)) do
    if entry.type == "dir" then
      copy_tree(entry.path, to .. "/" .. entry.name)
    elseif entry.type == "file" then
      local content, err = copkg.try_read_file(entry.path)
      if content then
        copkg.write_file(to .. "/" .. entry.name, content)
      else
        copkg.log("keep-logs: not archived: " .. printable(err))
      end
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
      copkg.mkdir_p(archive_root)
      copy_tree(log_dir, archive_root .. "/" .. ctx.service .. "/" .. os.date("!%Y%m%dT%H%M%SZ"))
    end
  end,

  clean_logs = function(ctx, options)
    options.compress_after_days = 0.25
    options.delete_after_days = 365
    return default.clean_logs(ctx, options)
  end,
}
