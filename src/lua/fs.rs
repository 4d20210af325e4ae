//! `copkg` filesystem and data helpers for scripts: list, glob, mkdir_p,
//! remove, rename, read/write, gzip, sha256, json.
//!
//! Hooks run as root on paths that cross dirs service accounts write, so
//! every path goes through [`crate::safepath`]: walked by descriptor,
//! following a symlink only where it sits in a dir no other user can write.

use std::ffi::OsString;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use mlua::{Lua, LuaSerdeExt, Table, Value};
use nix::sys::stat::{FileStat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use sha2::{Digest, Sha256};

use crate::rundir::{self, FileKind};
use crate::safepath::{self, Resolved, SafePathError};

/// The largest file `copkg.read_file` reads whole.
const READ_LIMIT: u64 = 256 * 1024 * 1024;

fn fail(function: &str, message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("copkg.{function}: {message}"))
}

/// The error `copkg.FUNCTION` raises for a path it could not use.
fn raise(lua: &Lua, function: &str, err: &SafePathError) -> mlua::Error {
    super::raise_error(lua, function, err)
}

/// The table `list` and `stat` give for one entry.
fn entry_table(
    lua: &Lua,
    name: &str,
    path: &Path,
    kind: FileKind,
    size: u64,
    mtime: i64,
) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("path", path.display().to_string())?;
    table.set("name", name)?;
    table.set("size", size)?;
    table.set("mtime", mtime.max(0))?;
    let kind = match kind {
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::File => "file",
        FileKind::Other => "other",
    };
    table.set("type", kind)?;
    Ok(table)
}

fn stat_table(lua: &Lua, path: &Path, stat: &FileStat) -> mlua::Result<Table> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    entry_table(
        lua,
        &name,
        path,
        FileKind::of(stat.st_mode),
        u64::try_from(stat.st_size).unwrap_or(0),
        stat.st_mtime,
    )
}

/// `copkg.list(dir)`: entries sorted by name, each {name, path, size, mtime,
/// type}, as `lstat` sees them: a symlink is listed as one, never entered.
fn list(lua: &Lua, dir: String) -> mlua::Result<Table> {
    const F: &str = "list";
    let path = Path::new(&dir);
    let fd = safepath::open_dir(path, false).map_err(|e| raise(lua, F, &e))?;
    let entries = rundir::list_entries(fd.as_fd(), path)
        .map_err(|e| raise(lua, F, &SafePathError::from(e)))?;
    let out = lua.create_table()?;
    for entry in entries {
        out.push(entry_table(
            lua,
            &entry.name.to_string_lossy(),
            &path.join(&entry.name),
            entry.kind,
            entry.size,
            entry.mtime,
        )?)?;
    }
    Ok(out)
}

/// Whether `name` matches a shell-style pattern with `*`, `?` (no `/`).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `copkg.glob(pattern)`: paths matching `*`/`?` in any component, sorted.
/// Each dir is opened as `copkg.list` opens it; one that cannot be (missing,
/// or a symlink not followed) matches nothing, like an unreadable dir in a
/// shell glob.
fn glob(lua: &Lua, pattern: String) -> mlua::Result<Table> {
    let mut current: Vec<PathBuf> = vec![if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for base in &current {
            let at = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            if component.contains(['*', '?']) {
                let Ok(dir) = safepath::open_dir(at, false) else {
                    continue;
                };
                let Ok(entries) = rundir::list_entries(dir.as_fd(), at) else {
                    continue;
                };
                next.extend(
                    entries
                        .into_iter()
                        .filter_map(|entry| entry.name.into_string().ok())
                        .filter(|name| {
                            (!name.starts_with('.') || component.starts_with('.'))
                                && matches(component, name)
                        })
                        .map(|name| base.join(name)),
                );
            } else {
                let path = base.join(component);
                let found = safepath::parent_of(&path).and_then(|entry| entry.lstat());
                if matches!(found, Ok(Some(_))) {
                    next.push(path);
                }
            }
        }
        current = next;
    }
    let out = lua.create_table()?;
    for path in current {
        if path.as_os_str().is_empty() {
            out.push(".")?;
        } else {
            out.push(path.display().to_string())?;
        }
    }
    Ok(out)
}

/// `copkg.mkdir_p(path)`: missing dirs made (0755) as the walk goes.
fn mkdir_p(lua: &Lua, path: String) -> mlua::Result<()> {
    safepath::open_dir(Path::new(&path), true)
        .map(drop)
        .map_err(|e| raise(lua, "mkdir_p", &e))
}

/// `copkg.remove(path)`: a file, a symlink (never its target), or a
/// directory with everything in it, by descriptor; absent is fine.
fn remove(lua: &Lua, path: String) -> mlua::Result<bool> {
    match safepath::parent_of(Path::new(&path)).and_then(|entry| entry.remove()) {
        Ok(removed) => Ok(removed),
        Err(e) if e.is_missing() => Ok(false),
        Err(e) => Err(raise(lua, "remove", &e)),
    }
}

/// `copkg.rename(from, to)`: names renamed, links never followed.
fn rename(lua: &Lua, (from, to): (String, String)) -> mlua::Result<()> {
    let renamed = safepath::parent_of(Path::new(&from)).and_then(|from| {
        let to = safepath::parent_of(Path::new(&to))?;
        from.rename_to(&to)
    });
    renamed.map_err(|e| raise(lua, "rename", &e))
}

/// `lstat` of `path`, `None` when it or a dir on the way is missing.
fn lstat(path: &Path) -> Result<Option<FileStat>, SafePathError> {
    match safepath::parent_of(path).and_then(|entry| entry.lstat()) {
        Err(e) if e.is_missing() => Ok(None),
        other => other,
    }
}

/// `copkg.exists(path)`: a symlink exists, whatever it points at.
fn exists(lua: &Lua, path: String) -> mlua::Result<bool> {
    lstat(Path::new(&path))
        .map(|stat| stat.is_some())
        .map_err(|e| raise(lua, "exists", &e))
}

/// `copkg.is_file(path)`: a final symlink is followed by the trusted-dir rule.
fn is_file(lua: &Lua, path: String) -> mlua::Result<bool> {
    let found = safepath::resolve(Path::new(&path)).and_then(|entry| entry.lstat());
    match found {
        Ok(stat) => Ok(stat.is_some_and(|s| FileKind::of(s.st_mode) == FileKind::File)),
        Err(e) if e.is_missing() => Ok(false),
        Err(e) => Err(raise(lua, "is_file", &e)),
    }
}

/// `copkg.stat(path)`: {name, path, size, mtime, type}, or nil when absent;
/// a symlink is reported as one.
fn stat(lua: &Lua, path: String) -> mlua::Result<Option<Table>> {
    match lstat(Path::new(&path)) {
        Ok(Some(stat)) => Ok(Some(stat_table(lua, Path::new(&path), &stat)?)),
        Ok(None) => Ok(None),
        Err(e) => Err(raise(lua, "stat", &e)),
    }
}

/// `copkg.write_file(path, text)`: written to a temp file in the same dir,
/// synced, then renamed over the name (a link there is replaced).
fn write_file(lua: &Lua, (path, text): (String, mlua::LuaString)) -> mlua::Result<()> {
    safepath::parent_of(Path::new(&path))
        .and_then(|entry| entry.write_atomically(&text.as_bytes()))
        .map_err(|e| raise(lua, "write_file", &e))
}

/// `copkg.read_file(path)`: a regular file of at most 256 MiB.
fn read_file(lua: &Lua, path: String) -> mlua::Result<mlua::LuaString> {
    let bytes = safepath::resolve(Path::new(&path))
        .and_then(|entry| entry.read(READ_LIMIT))
        .map_err(|e| raise(lua, "read_file", &e))?;
    lua.create_string(bytes)
}

/// `copkg.gzip(path)`: compresses `path` into `path.gz` (a temp file with
/// its mode, owner and times, then renamed) and removes `path`; returns the
/// new path.
fn gzip(lua: &Lua, path: String) -> mlua::Result<String> {
    safepath::resolve(Path::new(&path))
        .and_then(|source| compress(&source))
        .map(|gz| gz.display().to_string())
        .map_err(|e| raise(lua, "gzip", &e))
}

/// `copkg.copy_truncate(path, name)`: copies the regular file `path` (a log
/// its service keeps open and has no reopen signal for) to `name` beside
/// it, with its mode, owner and times, then truncates it to nothing, by
/// descriptor. What the service appends between the last copy and the
/// truncation is lost, as with logrotate's copytruncate; the service must
/// write with O_APPEND (copkg opens console/ so). Returns the copy's path.
fn copy_truncate(lua: &Lua, (path, name): (String, String)) -> mlua::Result<String> {
    const F: &str = "copy_truncate";
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(fail(F, format!("`{name}` must be a name in the same dir")));
    }
    let source = safepath::resolve(Path::new(&path)).map_err(|e| raise(lua, F, &e))?;
    let (mut file, stat) = source.open_file_rw().map_err(|e| raise(lua, F, &e))?;
    let copy_path = source.path().with_file_name(&name);
    let failed = |action: &'static str| {
        let path = copy_path.clone();
        move |source: io::Error| SafePathError::Io {
            action,
            path,
            source,
        }
    };
    let copied = (|| {
        let temp = source.create_temp(0o600)?;
        let mut out = BufWriter::new(temp.file());
        io::copy(&mut file, &mut out).map_err(failed("cannot write"))?;
        // What came in meanwhile goes to the copy too; then the file is
        // emptied at once.
        io::copy(&mut file, &mut out).map_err(failed("cannot write"))?;
        out.flush().map_err(failed("cannot write"))?;
        drop(out);
        keep_attributes(temp.file(), &stat, &copy_path)?;
        temp.persist_beside(std::ffi::OsStr::new(&name), &copy_path)?;
        file.set_len(0).map_err(failed("cannot truncate"))
    })();
    copied.map_err(|e| raise(lua, F, &e))?;
    Ok(copy_path.display().to_string())
}

/// Gives `file` the mode, owner (as root) and times of `stat`.
fn keep_attributes(
    file: &std::fs::File,
    stat: &FileStat,
    path: &Path,
) -> Result<(), SafePathError> {
    let failed = |action: &'static str| {
        let path = path.to_owned();
        move |errno: nix::Error| SafePathError::Io {
            action,
            path,
            source: errno.into(),
        }
    };
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = (Uid::from_raw(stat.st_uid), Gid::from_raw(stat.st_gid));
        nix::unistd::fchown(file, Some(uid), Some(gid))
            .map_err(failed("cannot set the owner of"))?;
    }
    nix::sys::stat::fchmod(file, Mode::from_bits_truncate(stat.st_mode & 0o777))
        .map_err(failed("cannot set the mode of"))?;
    let atime = TimeSpec::new(stat.st_atime, stat.st_atime_nsec);
    let mtime = TimeSpec::new(stat.st_mtime, stat.st_mtime_nsec);
    nix::sys::stat::futimens(file, &atime, &mtime).map_err(failed("cannot set the times of"))
}

/// Compresses the regular file `source` into `NAME.gz` beside it, keeping
/// its permission bits, its owner and group (when copkg is root, the only
/// user that can give a file away) and its times, then removes it.
fn compress(source: &Resolved) -> Result<PathBuf, SafePathError> {
    let (mut input, stat) = source.open_file()?;
    let mut gz_name = source.name().to_owned();
    gz_name.push(".gz");
    let mut gz_path = OsString::from(source.path());
    gz_path.push(".gz");
    let gz_path = PathBuf::from(gz_path);
    let temp = source.create_temp(0o600)?;
    let failed = |action: &'static str| {
        let path = gz_path.clone();
        move |source: io::Error| SafePathError::Io {
            action,
            path,
            source,
        }
    };
    let mut encoder = GzEncoder::new(BufWriter::new(temp.file()), Compression::default());
    io::copy(&mut input, &mut encoder).map_err(failed("cannot write"))?;
    encoder
        .finish()
        .and_then(|mut writer| writer.flush())
        .map_err(failed("cannot write"))?;
    let file = temp.file();
    keep_attributes(file, &stat, &gz_path)?;
    file.sync_all().map_err(failed("cannot write"))?;
    temp.persist_beside(&gz_name, &gz_path)?;
    source.unlink()?;
    Ok(gz_path)
}

/// `copkg.sha256(path)`: lowercase hex digest of a regular file.
fn sha256(lua: &Lua, path: String) -> mlua::Result<String> {
    const F: &str = "sha256";
    let entry = safepath::resolve(Path::new(&path)).map_err(|e| raise(lua, F, &e))?;
    let (mut file, _) = entry.open_file().map_err(|e| raise(lua, F, &e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|source| {
            let err = SafePathError::Io {
                action: "cannot read",
                path: entry.path().to_owned(),
                source,
            };
            raise(lua, F, &err)
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::extract::hex(&hasher.finalize()))
}

/// `copkg.json_encode(value)`
fn json_encode(lua: &Lua, value: Value) -> mlua::Result<String> {
    let json: serde_json::Value = lua.from_value(value).map_err(|e| fail("json_encode", e))?;
    Ok(json.to_string())
}

/// `copkg.json_decode(text)`: JSON null becomes nil.
fn json_decode(lua: &Lua, text: String) -> mlua::Result<Value> {
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail("json_decode", e))?;
    let options = mlua::serde::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    lua.to_value_with(&json, options)
}

/// Adds these functions to the `copkg` table.
pub(crate) fn register(lua: &Lua, module: &Table) -> mlua::Result<()> {
    module.set("list", lua.create_function(list)?)?;
    module.set("glob", lua.create_function(glob)?)?;
    module.set("mkdir_p", lua.create_function(mkdir_p)?)?;
    module.set("remove", lua.create_function(remove)?)?;
    module.set("rename", lua.create_function(rename)?)?;
    module.set("exists", lua.create_function(exists)?)?;
    module.set("is_file", lua.create_function(is_file)?)?;
    module.set("stat", lua.create_function(stat)?)?;
    module.set("write_file", lua.create_function(write_file)?)?;
    module.set("read_file", lua.create_function(read_file)?)?;
    module.set("gzip", lua.create_function(gzip)?)?;
    module.set("copy_truncate", lua.create_function(copy_truncate)?)?;
    module.set("sha256", lua.create_function(sha256)?)?;
    module.set("json_encode", lua.create_function(json_encode)?)?;
    module.set("json_decode", lua.create_function(json_decode)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The helpers as scripts call them, on a "runtime dir" given to uid
    //! 65534 (the hostile service account) beside an `outside` dir that no
    //! call may read, change or leave anything in. These run as root.

    use super::matches;
    use crate::lua::Host;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::time::{Duration, SystemTime};

    const NOBODY: u32 = 65534;
    const REFUSED_LINK: &str = "is a symlink in a directory other users can write";

    struct Fixture {
        _temp: tempfile::TempDir,
        runtime: PathBuf,
        outside: PathBuf,
    }

    impl Fixture {
        /// `runtime/` (uid 65534, 0755) holding `sub/app.log`, and the
        /// account's links `evil -> outside` and `evil_file ->
        /// outside/secret`; `outside/` holding `secret` and `deep/`.
        fn new() -> Fixture {
            let temp = tempfile::tempdir().unwrap();
            let runtime = temp.path().join("runtime");
            let outside = temp.path().join("outside");
            fs::create_dir_all(outside.join("deep")).unwrap();
            fs::write(outside.join("secret"), "secret\n").unwrap();
            fs::create_dir_all(runtime.join("sub")).unwrap();
            fs::write(runtime.join("sub/app.log"), "log\n").unwrap();
            symlink(&outside, runtime.join("evil")).unwrap();
            symlink(outside.join("secret"), runtime.join("evil_file")).unwrap();
            std::os::unix::fs::chown(&runtime, Some(NOBODY), Some(NOBODY)).unwrap();
            fs::set_permissions(&runtime, fs::Permissions::from_mode(0o755)).unwrap();
            Fixture {
                _temp: temp,
                runtime,
                outside,
            }
        }

        /// Runs `code` with `R` and `O` set to the runtime and outside
        /// dirs; returns what it returns.
        fn lua(&self, code: &str) -> String {
            lua_in(&self.runtime, &self.outside, code)
        }

        /// Every path below `outside`, with its content and mode.
        fn outside_state(&self) -> Vec<(PathBuf, Vec<u8>, u32)> {
            let mut out = Vec::new();
            let mut dirs = vec![self.outside.clone()];
            while let Some(dir) = dirs.pop() {
                for entry in fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    let meta = fs::symlink_metadata(&path).unwrap();
                    if meta.is_dir() {
                        dirs.push(path.clone());
                    }
                    let content = if meta.is_file() {
                        fs::read(&path).unwrap()
                    } else {
                        Vec::new()
                    };
                    out.push((path, content, meta.mode()));
                }
            }
            out.sort();
            out
        }
    }

    fn lua_in(runtime: &Path, outside: &Path, code: &str) -> String {
        let host = Host::new(None).unwrap();
        let code = format!(
            "local R, O = [[{}]], [[{}]]\n{code}",
            runtime.display(),
            outside.display()
        );
        host.lua.load(&code).eval::<String>().unwrap()
    }

    /// Lua that calls `copkg.FN(ARGS)` under pcall and returns "ok" or the
    /// error.
    fn attempt(call: &str) -> String {
        format!(
            "local ok, err = pcall(function() return {call} end); return ok and 'ok' or tostring(err)"
        )
    }

    #[test]
    fn list_glob_and_stat_report_planted_links_and_never_enter_them() {
        let f = Fixture::new();
        let got = f.lua(
            r#"local out = {}
for _, e in ipairs(copkg.list(R)) do out[#out + 1] = e.name .. "=" .. e.type end
for _, p in ipairs(copkg.glob(R .. "/*/*")) do out[#out + 1] = p:sub(#R + 1) end
for _, p in ipairs(copkg.glob(R .. "/evil/*")) do out[#out + 1] = p end
for _, p in ipairs(copkg.glob(R .. "/evil*")) do out[#out + 1] = p:sub(#R + 1) end
out[#out + 1] = copkg.stat(R .. "/evil").type
out[#out + 1] = copkg.stat(R .. "/evil_file").type
out[#out + 1] = tostring(copkg.exists(R .. "/evil"))
return table.concat(out, " ")"#,
        );
        assert_eq!(
            got,
            "evil=symlink evil_file=symlink sub=dir /sub/app.log /evil /evil_file symlink symlink true"
        );
        let runtime = f.runtime.display();
        for call in [
            "copkg.list(R .. '/evil')",
            "copkg.stat(R .. '/evil/secret')",
            "copkg.exists(R .. '/evil/secret')",
        ] {
            let err = f.lua(&attempt(call));
            let function = call.split('(').next().unwrap();
            assert_eq!(
                err,
                format!(
                    "{function}: refusing {runtime}/evil: it {REFUSED_LINK} (owned by uid 65534); not followed"
                ),
                "{call}"
            );
        }
    }

    #[test]
    fn reads_through_planted_links_are_refused_and_change_nothing() {
        let f = Fixture::new();
        let before = f.outside_state();
        for function in ["read_file", "sha256", "gzip", "is_file"] {
            for path in ["/evil_file", "/evil/secret"] {
                let err = f.lua(&attempt(&format!("copkg.{function}(R .. '{path}')")));
                assert!(
                    err.starts_with(&format!("copkg.{function}: refusing "))
                        && err.contains(REFUSED_LINK),
                    "{function} {path}: {err}"
                );
            }
        }
        assert_eq!(f.outside_state(), before, "something outside changed");
        // The administrator's link, in a dir only root can write, is followed.
        let trusted = f.runtime.parent().unwrap().join("trusted");
        fs::create_dir(&trusted).unwrap();
        symlink(f.outside.join("secret"), trusted.join("link")).unwrap();
        let got = f.lua(&format!(
            "return copkg.read_file([[{0}/link]]) .. tostring(copkg.is_file([[{0}/link]]))",
            trusted.display()
        ));
        assert_eq!(got, "secret\ntrue");
    }

    #[test]
    fn writes_through_planted_links_are_refused_and_create_nothing_outside() {
        let f = Fixture::new();
        let before = f.outside_state();
        for call in [
            "copkg.write_file(R .. '/evil/new', 'x')",
            "copkg.mkdir_p(R .. '/evil/made/deeper')",
            "copkg.rename(R .. '/sub/app.log', R .. '/evil/app.log')",
            "copkg.remove(R .. '/evil/deep')",
        ] {
            let err = f.lua(&attempt(call));
            assert!(err.contains(REFUSED_LINK), "{call}: {err}");
        }
        assert_eq!(f.outside_state(), before, "something outside changed");
        // A link where the file goes is replaced, never written through.
        assert_eq!(
            f.lua(&attempt("copkg.write_file(R .. '/evil_file', 'mine')")),
            "ok"
        );
        let meta = fs::symlink_metadata(f.runtime.join("evil_file")).unwrap();
        assert!(meta.is_file() && meta.mode() & 0o777 == 0o644);
        assert_eq!(
            fs::read_to_string(f.runtime.join("evil_file")).unwrap(),
            "mine"
        );
        assert_eq!(f.outside_state(), before, "written through the link");
    }

    #[test]
    fn remove_of_a_planted_link_removes_only_the_link() {
        let f = Fixture::new();
        fs::create_dir_all(f.runtime.join("tree/a")).unwrap();
        symlink(&f.outside, f.runtime.join("tree/a/out")).unwrap();
        symlink(f.outside.join("secret"), f.runtime.join("tree/secret")).unwrap();
        let before = f.outside_state();
        // Through the link: refused, whatever is behind it.
        let err = f.lua(&attempt("copkg.remove(R .. '/evil/secret')"));
        assert!(err.contains(REFUSED_LINK), "{err}");
        let got = f.lua(
            "return tostring(copkg.remove(R .. '/evil')) .. tostring(copkg.remove(R .. '/evil_file'))
               .. tostring(copkg.remove(R .. '/tree')) .. tostring(copkg.remove(R .. '/tree'))",
        );
        assert_eq!(got, "truetruetruefalse");
        assert_eq!(f.outside_state(), before, "something outside changed");
        let mut left: Vec<_> = fs::read_dir(&f.runtime)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["sub"]);
    }

    #[test]
    fn gzip_keeps_the_mode_owner_and_times_of_the_original() {
        let f = Fixture::new();
        let when = SystemTime::now() - Duration::from_secs(3 * 86_400 + 1234);
        for (name, mode) in [("private.log", 0o600), ("group.log", 0o640)] {
            let path = f.runtime.join("sub").join(name);
            fs::write(&path, "line\n".repeat(1000)).unwrap();
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
                .unwrap();
            let got = f.lua(&format!("return copkg.gzip(R .. '/sub/{name}')"));
            let gz = f.runtime.join("sub").join(format!("{name}.gz"));
            assert_eq!(got, gz.display().to_string());
            assert!(!path.exists(), "{name}: the original is left");
            let meta = fs::symlink_metadata(&gz).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{name}: mode");
            assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{name}: owner");
            assert_eq!(meta.modified().unwrap(), when, "{name}: mtime");
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(fs::File::open(&gz).unwrap()),
                &mut text,
            )
            .unwrap();
            assert_eq!(text, "line\n".repeat(1000));
        }
    }

    #[test]
    fn fifos_are_refused_without_hanging() {
        let f = Fixture::new();
        nix::unistd::mkfifo(
            &f.runtime.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let (runtime, outside) = (f.runtime.clone(), f.outside.clone());
        let (done, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            let errors: Vec<String> = ["read_file", "sha256", "gzip"]
                .iter()
                .map(|function| {
                    lua_in(
                        &runtime,
                        &outside,
                        &attempt(&format!("copkg.{function}(R .. '/fifo')")),
                    )
                })
                .collect();
            done.send(errors).unwrap();
        });
        let errors = outcome
            .recv_timeout(Duration::from_secs(10))
            .expect("a helper blocked on a FIFO");
        let fifo = f.runtime.join("fifo");
        for (function, err) in ["read_file", "sha256", "gzip"].iter().zip(errors) {
            assert_eq!(
                err,
                format!(
                    "copkg.{function}: refusing {}: it is a FIFO, not a regular file",
                    fifo.display()
                )
            );
        }
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(!f.runtime.join("fifo.gz").exists());
    }

    #[test]
    fn a_hard_link_to_a_root_file_in_the_accounts_dir_is_refused() {
        let f = Fixture::new();
        fs::hard_link(f.outside.join("secret"), f.runtime.join("shadow")).unwrap();
        let before = f.outside_state();
        for function in ["read_file", "sha256", "gzip"] {
            let err = f.lua(&attempt(&format!("copkg.{function}(R .. '/shadow')")));
            assert_eq!(
                err,
                format!(
                    "copkg.{function}: refusing {}/shadow: it has 2 hard links in a directory other users can write (owned by uid 65534), so it may be a file from elsewhere linked in",
                    f.runtime.display()
                )
            );
        }
        assert_eq!(f.outside_state(), before);
        assert!(f.runtime.join("shadow").is_file());
    }

    #[test]
    fn glob_patterns() {
        for (pattern, name, want) in [
            ("*.log", "app.log", true),
            ("*.log", "app.log.gz", false),
            ("app-?.log", "app-1.log", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*", "", true),
            ("x", "y", false),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern} {name}");
        }
    }
}
