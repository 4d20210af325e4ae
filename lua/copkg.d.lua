---@meta copkg
-- LuaCATS annotations for the `copkg` module that copkg gives every Lua
-- state (site scripts, start.lua/stop.lua). Editors with lua-language-server
-- read these through .luarc.json. A test fails when a function copkg
-- registers is missing here.

---@class copkg
---@field version string  copkg's version
---@field api_version integer  the version of this Lua API (see copkg.require_api)
---@field args string[]   arguments after the script in `copkg run SCRIPT [ARGS…]`
copkg = {}

--- Refuses to go on (raises) under a copkg whose Lua API is older than
--- `version`, so that a later script fails clearly on an older copkg.
---@param version integer
function copkg.require_api(version) end

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
--- a child of copkg. Inside start.lua, the processes spawned are recorded
--- as the service's (run/start.pid is read only when it spawned nothing).
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

--- Whether a path exists (a symlink exists, whatever it points at).
---
--- Like every file function, it walks the path by descriptor and follows a
--- symlink only where it sits in a directory no other user can write (owned
--- by copkg's user or root, not group/other-writable); a link elsewhere (a
--- runtime dir, /tmp) is never followed, and a function that would have to
--- follow one raises, naming it.
---@param path string
---@return boolean
function copkg.exists(path) end

--- Whether a path is a regular file (a final symlink followed only where
--- its directory no other user can write).
---@param path string
---@return boolean
function copkg.is_file(path) end

--- Writes a line to stderr.
---@param message string
function copkg.log(message) end

--- Writes a file atomically (temp file in the same dir, mode 0644, synced,
--- then renamed): readers see the old or the new content, and a symlink at
--- `path` is replaced, never written through.
---@param path string
---@param content string
function copkg.write_file(path, content) end

--- Reads a whole regular file, of at most 256 MiB. A FIFO, socket or device
--- is refused without blocking, and so is a file with more than one hard
--- link in a directory other users can write.
---@param path string
---@return string
function copkg.read_file(path) end

---@class copkg.Entry
---@field name string
---@field path string
---@field size integer
---@field mtime integer   seconds since the Unix epoch
---@field type "file"|"dir"|"symlink"|"other"

--- The entries of a directory, sorted by name; a symlink is listed as
--- `"symlink"`, never as what it points at.
---@param dir string
---@return copkg.Entry[]
function copkg.list(dir) end

--- One path's entry, or nil when it does not exist; a symlink is reported
--- as one, never followed.
---@param path string
---@return copkg.Entry|nil
function copkg.stat(path) end

--- Paths matching a pattern with `*` and `?` in any component, sorted;
--- hidden names match only patterns that start with a dot. A dir behind a
--- symlink that is not followed matches nothing.
---@param pattern string
---@return string[]
function copkg.glob(pattern) end

--- Creates a directory and its missing parents (0755, less the umask).
---@param path string
function copkg.mkdir_p(path) end

--- Removes a file, a symlink (never what it points at), or a directory with
--- everything in it (by descriptor: links inside are removed as links).
--- Returns false when there was nothing to remove.
---@param path string
---@return boolean
function copkg.remove(path) end

--- Renames a path; a symlink at either end is renamed or replaced, not followed.
---@param from string
---@param to string
function copkg.rename(from, to) end

--- Compresses the regular file `path` into `path.gz`, which keeps its
--- permission bits, times and (when copkg runs as root) owner and group,
--- then removes `path`.
---@param path string
---@return string  the new path
function copkg.gzip(path) end

--- Copies the regular file `path` (a log its service keeps open and has no
--- reopen signal for) to `name` beside it, with its mode, owner and times,
--- then empties `path`, by descriptor. What the service appends between the
--- copy and the truncation is lost, as with logrotate's copytruncate.
---@param path string
---@param name string  a name in the same dir
---@return string  the copy's path
function copkg.copy_truncate(path, name) end

--- The lowercase hex sha256 of a regular file (read as `read_file` reads).
---@param path string
---@return string
function copkg.sha256(path) end

--- Encodes a Lua value as JSON.
---@param value any
---@return string
function copkg.json_encode(value) end

--- Decodes JSON; null becomes nil.
---@param text string
---@return any
function copkg.json_decode(text) end

---@class copkg.InstallResult
---@field coordinate string
---@field status "installed"|"already-installed"|"failed"
---@field dir? string
---@field sha256? string
---@field error? string      why it failed
---@field exit_code? integer the exit code copkg would give

--- Installs a package (verified, atomic); a no-op when installed. Raises on failure.
---@param coordinate string  group:artifact:version[@sha256:HEX]
---@return copkg.InstallResult
function copkg.install(coordinate) end

--- Installs many packages, `jobs` at a time (default 8); never raises for
--- one package's failure: each result says how it went.
---@param coordinates string[]
---@param options? {jobs?: integer}
---@return copkg.InstallResult[]
function copkg.install_many(coordinates, options) end

--- Uninstalls a package; false when it was not installed. Raises while a
--- running service uses it.
---@param coordinate string
---@return boolean
function copkg.uninstall(coordinate) end

--- Every installed package, sorted by coordinate.
--- `sha256` is nil for a package `copkg adopt` took over (no archive), whose
--- `source` is "adopted".
---@class copkg.Installed
---@field coordinate string
---@field dir string
---@field sha256? string
---@field verified boolean
---@field source string
---@field signed_by? string  id of the key whose signature was checked at install
---@field installed_at integer

---@return copkg.Installed[]
function copkg.installed() end

--- Where a package installs and is fetched from, and its state.
---@param coordinate string
---@return copkg.Resolved
function copkg.resolve(coordinate) end

---@class copkg.Resolved
---@field coordinate string
---@field dir string
---@field state "installed"|"absent"|"foreign"
---@field archives string[]  archive URL in each repository, in order
---@field sidecars string[]  checksum sidecar URL in each repository
---@field zips string[]      the .zip asked for where a repository has no archive (empty when the layout has none)
---@field zip_sidecars string[]  the .zip's checksum sidecar in each repository

--- Downloads a package's archive to `path` (temp file, renamed when
--- complete), checked against its sidecar or digest pin and, where the
--- repository's `signatures` ask for it, its minisign signature: its
--- .tar.gz, or its .zip where a repository has no .tar.gz (`format` says which).
---@param coordinate string
---@param path string
---@return {path: string, sha256: string, verified: boolean, signed_by?: string, source: string, format: "tar.gz"|"zip"}
function copkg.fetch(coordinate, path) end

--- Unpacks a .tar.gz or a .zip (told apart by their first bytes) safely
--- (every entry vetted, limits applied) into a fresh temp dir beside `dir`,
--- then renames it to `dir`, which must not exist.
---@param archive string
---@param dir string
---@return {dir: string, sha256: string, bytes: integer, entries: integer}
function copkg.extract(archive, dir) end

--- Starts a service as `copkg start` does (lock, runtime dir, hooks, start
--- script, pid check, record). Starting a service that already runs the same
--- package with the same arguments succeeds with `changed = false`; one that
--- runs anything else raises.
---@param package string   group:artifact:version
---@param service string   instance.service.user.cell
---@param args? string[]   arguments for the start script
---@param options? {install?: boolean, user?: string}  install the package first; the account (NAME[:GROUP])
---@return {service: string, package: string, pids: integer[], runtime_dir: string, changed: boolean}
function copkg.start(package, service, args, options) end

--- Stops a service as `copkg stop` does; a service that does not run is
--- success with `changed = false`.
---@param service string
---@return {service: string, changed: boolean}
function copkg.stop(service) end

--- Restarts a service as `copkg restart` does: stop, then start with the
--- recorded package and arguments.
---@param service string
---@return {service: string, package: string, pids: integer[], runtime_dir: string, changed: boolean}
function copkg.restart(service) end

--- Moves a service to another package as `copkg upgrade` does: installs it,
--- stops the service, starts the new version and waits for it to be ready;
--- on failure starts the old version again and raises (exit code 12, or 15
--- when the old version did not come back either).
---@param service string
---@param package string  group:artifact:version
---@param options? {args?: string[], ready?: string, ready_timeout?: number}
---@return {service: string, from: string, to: string, pids: integer[], downtime: number}
function copkg.upgrade(service, package, options) end

--- Every service in copkg's registry, with its state.
---@return (copkg.Status|{service: string})[]
function copkg.services() end

--- The runtime dir of a service, by the `runtime_path` policy.
---@param service string  instance.service.user.cell
---@return string
function copkg.runtime_dir(service) end

--- Creates a service's runtime dir with log/ etc/ console/ data/ run/.
---@param service string
---@return string  the runtime dir
function copkg.prepare_runtime(service) end

--- Whether a service runs.
---@param service string
---@return copkg.Status
function copkg.status(service) end

---@class copkg.Status
---@field state "running"|"stopped"|"crashed"|"failed"|"starting"|"stale-pidfile"
---@field pids integer[]
---@field package? string
---@field runtime_dir string
---@field user? string            the account it runs as
---@field started_at? integer     seconds since the epoch
---@field memory? integer         bytes, while it runs
---@field failed? string          why its last start failed
---@field enabled boolean
---@field restarts integer        reconcile's restarts in this boot
---@field last_crashed_at? integer

--- Whether a process lives (not a zombie), and started at `start_time` when given.
---@param pid integer
---@param start_time? integer
---@return boolean
function copkg.alive(pid, start_time) end

--- Signals a process only if it started at `start_time` (never a reused pid).
---@param pid integer
---@param start_time integer
---@param signal? string  "TERM" (default), "KILL", "HUP", …
---@return boolean  whether it was signalled
function copkg.kill(pid, start_time, signal) end

-- `try_` variants return the result, or nil and the error message where the
-- plain function would raise.

---@return copkg.InstallResult|nil, string?
function copkg.try_install(coordinate) end
---@return boolean|nil, string?
function copkg.try_uninstall(coordinate) end
---@return table|nil, string?
function copkg.try_resolve(coordinate) end
---@return string|nil, string?
function copkg.try_read_file(path) end
---@return any, string?
function copkg.try_json_decode(text) end
---@return copkg.Process|nil, string?
function copkg.try_spawn(spec) end
---@return table|nil, string?
function copkg.try_status(service) end
---@return table|nil, string?
function copkg.try_fetch(coordinate, path) end
---@return table|nil, string?
function copkg.try_extract(archive, dir) end
---@return table|nil, string?
function copkg.try_start(package, service, args, options) end
---@return table|nil, string?
function copkg.try_stop(service) end
---@return table|nil, string?
function copkg.try_restart(service) end
---@return table|nil, string?
function copkg.try_upgrade(service, package, options) end
