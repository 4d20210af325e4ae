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

return policy
