---@meta copkg
-- LuaCATS annotations for the `copkg` module that copkg gives every Lua
-- state (site scripts, start.lua/stop.lua). Editors with lua-language-server
-- read these through .luarc.json. A test fails when a function copkg
-- registers is missing here.

---@class copkg
---@field version string  copkg's version
copkg = {}

---@class copkg.SpawnSpec
---@field program string     the program to run
---@field args? string[]     its arguments
---@field env? table<string, string>  variables added to copkg's environment
---@field cwd string         working directory
---@field stdout string      file stdout is appended to
---@field stderr string      file stderr is appended to

---@class copkg.Process
---@field pid integer
---@field start_time integer  clock ticks since boot (field 22 of /proc/PID/stat)
---@field pgrp integer

--- Starts a program fully detached: its own session, stdin /dev/null,
--- stdout/stderr appended to files, no inherited descriptors, umask 022, not
--- a child of copkg. Inside start.lua, spawned pids are recorded as the
--- service's when the script writes no run/start.pid itself.
---@param spec copkg.SpawnSpec
---@return copkg.Process
function copkg.spawn(spec) end

--- The platform copkg runs on.
---@return {os: string, arch: string, libc: string}
function copkg.platform() end

--- The path of binary `name` in a package for this platform, chosen by the
--- `binary_path` policy hook; raises an error when there is none.
---@param package_dir string
---@param name string
---@return string
function copkg.binary(package_dir, name) end

--- Whether a path exists.
---@param path string
---@return boolean
function copkg.exists(path) end

--- Whether a path is a regular file.
---@param path string
---@return boolean
function copkg.is_file(path) end

--- Writes a line to stderr.
---@param message string
function copkg.log(message) end

--- Writes a file atomically (temp file, then rename): readers see the old or the new content.
---@param path string
---@param content string
function copkg.write_file(path, content) end

--- Reads a whole file.
---@param path string
---@return string
function copkg.read_file(path) end
