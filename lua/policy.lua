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
--- `<group as path>/<artifact>/<version>/<artifact>-<version>-copkg.tar.gz`.
---@param pkg copkg.Package
---@return copkg.RepositoryPaths
function policy.repository_paths(pkg)
  local dir = pkg.group_path .. "/" .. pkg.artifact .. "/" .. pkg.version
  local archive = dir .. "/" .. pkg.artifact .. "-" .. pkg.version .. "-copkg.tar.gz"
  return { archive = archive, sha256 = archive .. ".sha256" }
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
function policy.before_start(ctx) end ---@diagnostic disable-line: unused-local
---@param ctx copkg.ServiceContext
function policy.after_start(ctx) end ---@diagnostic disable-line: unused-local
---@param ctx copkg.ServiceContext
function policy.before_stop(ctx) end ---@diagnostic disable-line: unused-local
---@param ctx copkg.ServiceContext
function policy.after_stop(ctx) end ---@diagnostic disable-line: unused-local
---@param ctx copkg.ServiceContext
function policy.before_cleanup(ctx) end ---@diagnostic disable-line: unused-local

return policy
