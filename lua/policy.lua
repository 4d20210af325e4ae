-- copkg built-in default policy.
--
-- This file is embedded in the copkg binary and is what applies when no site
-- script is given. A site script overrides any of these hooks by returning a
-- table of functions with the same names; it can call the defaults through
-- `require("copkg.policy")`. Copy this file as a starting point.

---@class copkg.Package
---@field group string        dot-separated group, e.g. "com.comoyo"
---@field artifact string     e.g. "id-cassandra"
---@field version string      e.g. "2.1.1"
---@field coordinate string   "group:artifact:version"
---@field group_path string   the group with dots as slashes, e.g. "com/comoyo"

---@class copkg.RepositoryPaths
---@field archive string  archive path relative to a repository base
---@field sha256 string   checksum sidecar path relative to a repository base
---@field zip? string     a .zip installed where a repository has no `archive`
---                         (the original copkg's format); its sidecar is this
---                         path with ".sha256" added

local policy = {}

--- Where a package is installed, relative to the software root.
--- Default: `<group as path>/<artifact>/<version>`.
---@param pkg copkg.Package
---@return string
function policy.install_path(pkg)
  return pkg.group_path .. "/" .. pkg.artifact .. "/" .. pkg.version
end

--- Where a package's archive and checksum sidecar are in a repository,
--- relative to its base URL. Default: the Maven layout
--- `<group as path>/<artifact>/<version>/<artifact>-<version>-copkg.tar.gz`,
--- and, for repositories of the original copkg (which answer "not found"
--- for the .tar.gz), `<artifact>-<version>-copkg.zip` in the same dir.
---@param pkg copkg.Package
---@return copkg.RepositoryPaths
function policy.repository_paths(pkg)
  local dir = pkg.group_path .. "/" .. pkg.artifact .. "/" .. pkg.version
  local base = dir .. "/" .. pkg.artifact .. "-" .. pkg.version .. "-copkg"
  local archive = base .. ".tar.gz"
  return { archive = archive, sha256 = archive .. ".sha256", zip = base .. ".zip" }
end

---@class copkg.Service
---@field instance string     e.g. "1"
---@field service string      e.g. "idee"
---@field user string         e.g. "prod"
---@field cell string         e.g. "trd"
---@field coordinate string   "instance.service.user.cell"

--- Where a service instance's runtime dir is, relative to the runtime root.
--- Default: flat, named after the service coordinate (`1.idee.prod.trd`).
---@param svc copkg.Service
---@return string
function policy.runtime_path(svc)
  return svc.coordinate
end

--- The hierarchical convention some sites pick: `trd/prod/idee/1`
--- (cell/user/service/instance). Use it from a site script:
--- `runtime_path = require("copkg.policy").runtime_path_hierarchical`.
---@param svc copkg.Service
---@return string
function policy.runtime_path_hierarchical(svc)
  return svc.cell .. "/" .. svc.user .. "/" .. svc.service .. "/" .. svc.instance
end

--- Which file of a package is the binary `name` for this platform, relative
--- to the package dir, or nil if there is none. Default: the most specific
--- of bin/<os>-<arch>-<libc>/, bin/<os>-<arch>/, bin/<os>/, bin/.
---@param package_dir string
---@param name string
---@param platform {os: string, arch: string, libc: string}
---@return string|nil
function policy.binary_path(package_dir, name, platform)
  local candidates = {}
  if platform.libc ~= "" then
    candidates[#candidates + 1] = "bin/" .. platform.os .. "-" .. platform.arch .. "-" .. platform.libc .. "/" .. name
  end
  candidates[#candidates + 1] = "bin/" .. platform.os .. "-" .. platform.arch .. "/" .. name
  candidates[#candidates + 1] = "bin/" .. platform.os .. "/" .. name
  candidates[#candidates + 1] = "bin/" .. name
  for _, candidate in ipairs(candidates) do
    if copkg.is_file(package_dir .. "/" .. candidate) then
      return candidate
    end
  end
  return nil
end

---@class copkg.ServiceContext
---@field package string       package coordinate
---@field package_dir string   install dir of the package
---@field service string       service coordinate
---@field instance string
---@field service_name string
---@field user string
---@field cell string
---@field runtime_dir string
---@field args string[]        arguments for the start script
---@field platform {os: string, arch: string, libc: string}

--- Lifecycle hooks: called around start, stop and cleanup with the service
--- context. Raise an error to abort the operation. Defaults do nothing.
---@param ctx copkg.ServiceContext
function policy.before_start(ctx) end
---@param ctx copkg.ServiceContext
function policy.after_start(ctx) end
---@param ctx copkg.ServiceContext
function policy.before_stop(ctx) end
---@param ctx copkg.ServiceContext
function policy.after_stop(ctx) end
---@param ctx copkg.ServiceContext
function policy.before_cleanup(ctx) end

--- Around `copkg upgrade`: before_upgrade runs before the running version
--- is stopped (ctx describes it: snapshot data/ here, since a rollback runs
--- the old version on whatever data the new one left); after_upgrade runs
--- once the new version is ready (ctx describes the new one).
---@param ctx copkg.ServiceContext
function policy.before_upgrade(ctx) end
---@param ctx copkg.ServiceContext
function policy.after_upgrade(ctx) end

--- The signal `copkg reload` sends a service whose package has no
--- script.d/reload.lua or reload.py. Default: HUP.
---@param ctx copkg.ServiceContext
---@return string
function policy.reload_signal(ctx) -- luacheck: no unused args
  return "HUP"
end

--- The settings a service runs with: what its package declares in
--- script.d/service.lua (`declared`, {} when it has none), as the site wants
--- them. Return the table to use (fields: stop = {signal, timeout},
--- reload = {signal}, reopen_logs = {signal}, ready, user, env, limits =
--- {nofile, memory}, logs); it is checked like service.lua. A package may
--- name an account but never root, unless this hook returns it. Flags
--- (--user, --ready) and the package's scripts for an action (stop.py,
--- reload.lua, ready.py, …) still win. Default: `declared` as it is.
---@param ctx copkg.ServiceContext
---@param declared table
---@return table
function policy.service_settings(ctx, declared) -- luacheck: no unused args
  return declared
end

--- The account a service runs as, "NAME" or "NAME:GROUP", unless
--- `copkg start --user` names one; nil leaves it to the config's
--- `defaultUser` (unset: copkg's own user). Only root may name another user.
--- Default: nil.
---@param ctx copkg.ServiceContext
---@return string|nil
function policy.service_account(ctx) -- luacheck: no unused args
  return nil
end

--- When a started service counts as ready, unless `--ready` says:
--- "tcp:HOST:PORT", "http:URL" or "exec:PROGRAM [ARGS]", or nil to leave it
--- to the package (its script.d/ready.py, if any). Default: nil.
---@param ctx copkg.ServiceContext
---@return string|nil
function policy.ready(ctx) -- luacheck: no unused args
  return nil
end

---@class copkg.LogCleanupOptions
---@field compress_after_days? number  gzip plain log files older than this (default 1)
---@field delete_after_days? number    delete compressed logs older than this (default 30)
---@field max_bytes? integer           then delete oldest files until log/ is under this (default 1 GiB)

---@class copkg.LogCleanupResult
---@field compressed integer
---@field deleted integer
---@field rotated integer
---@field bytes integer  bytes left in log/ and console/

--- A rotated log's name: `NAME.YYYYMMDDTHHMMSSZ`, or `NAME.YYYYMMDDTHHMMSSZ-N`
--- for the Nth more rotation of it in that second.
local ROTATED = "%.%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ"

local function is_rotated(name)
  return name:find(ROTATED .. "$") ~= nil or name:find(ROTATED .. "%-%d+$") ~= nil
end

--- A name for a rotation of the file `name` at `path` that neither a plain
--- nor a compressed file beside it has yet: rotating twice in one second
--- must not replace the first rotation.
local function rotation_name(path, name, stamp)
  local dir = path:sub(1, #path - #name)
  local candidate = name .. "." .. stamp
  local n = 0
  while copkg.exists(dir .. candidate) or copkg.exists(dir .. candidate .. ".gz") do
    n = n + 1
    candidate = name .. "." .. stamp .. "-" .. n
  end
  return candidate
end

--- Cleans a service's log/ and console/ dirs. `options` holds what the
--- config file's `logCleanup` sets; the defaults for the rest are here.
--- Default:
--- 1. a file the service keeps open that has grown past `max_bytes / 8` is
---    rotated: a file in log/ (or, when the package declares `logs`, one of
---    those) is renamed to `NAME.<UTC time>` and the service sent its
---    `reopen_logs` signal (`ctx.reopen_signal`); any other (console/, or
---    with no such signal) is copied to that name and truncated
---    (`copkg.copy_truncate`);
--- 2. rotated files the service no longer holds are compressed at once,
---    other plain files older than `compress_after_days`;
--- 3. `.gz` files older than `delete_after_days` are deleted;
--- 4. then the oldest files (compressed first) until log/ and console/
---    together hold less than `max_bytes`.
--- Never deletes or compresses a file a running process of the service
--- holds open (`ctx.open_files`).
---@param ctx copkg.ServiceContext
---@param options copkg.LogCleanupOptions
---@return copkg.LogCleanupResult
function policy.clean_logs(ctx, options)
  local compress_after_days = options.compress_after_days or 1
  local delete_after_days = options.delete_after_days or 30
  local max_bytes = options.max_bytes or 1024 * 1024 * 1024
  local rotate_bytes = math.max(max_bytes // 8, 1)
  local now = os.time()
  local day = 24 * 60 * 60
  local result = { compressed = 0, deleted = 0, rotated = 0, bytes = 0 }
  local dirs = { ctx.runtime_dir .. "/log", ctx.runtime_dir .. "/console" }
  local function inside(path)
    for _, dir in ipairs(dirs) do
      if path:sub(1, #dir + 1) == dir .. "/" then
        return true
      end
    end
    return false
  end

  -- 1. Rotate what the service keeps open once it is too big.
  local stamp = os.date("!%Y%m%dT%H%M%SZ", now)
  local still_open = {}
  local renamed = false
  -- The reopen signal serves log/ (the files the package declares, when it
  -- declares any); console/ is copkg's, opened O_APPEND: copied and truncated.
  local reopens = {}
  for _, file in ipairs(ctx.logs) do
    reopens[ctx.runtime_dir .. "/" .. file] = true
  end
  local log_dir = dirs[1] .. "/"
  local function reopened(path)
    if not ctx.reopen_signal then
      return false
    end
    if #ctx.logs > 0 then
      return reopens[path] == true
    end
    return path:sub(1, #log_dir) == log_dir
  end
  for _, path in ipairs(ctx.open_list) do
    local entry = inside(path) and copkg.stat(path)
    if entry and entry.type == "file" and entry.size > rotate_bytes then
      local name = rotation_name(path, entry.name, stamp)
      if reopened(path) then
        local to = path:sub(1, #path - #entry.name) .. name
        copkg.rename(path, to)
        -- Written to until the service reopens its logs: compressed next time.
        still_open[to] = true
        renamed = true
      else
        copkg.copy_truncate(path, name)
      end
      result.rotated = result.rotated + 1
    end
  end
  if renamed then
    for _, process in ipairs(ctx.processes) do
      copkg.kill(process.pid, process.start_time, ctx.reopen_signal)
    end
  end

  local files = {}
  local function walk(dir)
    for _, entry in ipairs(copkg.list(dir)) do
      if entry.type == "dir" then
        walk(entry.path)
      elseif entry.type == "file" and not ctx.open_files[entry.path] and not still_open[entry.path] then
        files[#files + 1] = entry
      end
    end
  end
  for _, dir in ipairs(dirs) do
    if copkg.exists(dir) then
      walk(dir)
    end
  end

  local kept = {}
  for _, file in ipairs(files) do
    local age = now - file.mtime
    local compressed = file.name:sub(-3) == ".gz"
    if compressed and age > delete_after_days * day then
      copkg.remove(file.path)
      result.deleted = result.deleted + 1
    elseif not compressed and (is_rotated(file.name) or age > compress_after_days * day) then
      local path = copkg.gzip(file.path)
      result.compressed = result.compressed + 1
      kept[#kept + 1] = copkg.stat(path)
    else
      kept[#kept + 1] = file
    end
  end

  -- Over the size budget: oldest compressed files go first, then oldest plain ones.
  table.sort(kept, function(a, b)
    local a_gz, b_gz = a.name:sub(-3) == ".gz", b.name:sub(-3) == ".gz"
    if a_gz ~= b_gz then
      return a_gz
    end
    return a.mtime < b.mtime
  end)
  local total = 0
  for _, file in ipairs(kept) do
    total = total + file.size
  end
  for _, file in ipairs(ctx.open_list) do
    local entry = inside(file) and copkg.stat(file)
    if entry then
      total = total + entry.size
    end
  end
  for path in pairs(still_open) do
    local entry = copkg.stat(path)
    if entry then
      total = total + entry.size
    end
  end
  local i = 1
  while total > max_bytes and i <= #kept do
    copkg.remove(kept[i].path)
    total = total - kept[i].size
    result.deleted = result.deleted + 1
    i = i + 1
  end
  result.bytes = total
  return result
end

return policy
