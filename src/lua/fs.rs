//! `copkg` filesystem and data helpers for scripts: list, glob, mkdir_p,
//! remove, rename, read/write, gzip, sha256, json.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use mlua::{Lua, LuaSerdeExt, Table, Value};
use sha2::{Digest, Sha256};

fn fail(function: &str, message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("copkg.{function}: {message}"))
}

fn entry_table(lua: &Lua, path: &Path) -> mlua::Result<Option<Table>> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(None);
    };
    let table = lua.create_table()?;
    table.set("path", path.display().to_string())?;
    table.set(
        "name",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )?;
    table.set("size", meta.len())?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    table.set("mtime", mtime)?;
    let kind = if meta.is_dir() {
        "dir"
    } else if meta.file_type().is_symlink() {
        "symlink"
    } else if meta.is_file() {
        "file"
    } else {
        "other"
    };
    table.set("type", kind)?;
    Ok(Some(table))
}

/// `copkg.list(dir)`: entries sorted by name, each {name, path, size, mtime, type}.
fn list(lua: &Lua, dir: String) -> mlua::Result<Table> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| fail("list", format!("{dir}: {e}")))?
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    paths.sort();
    let out = lua.create_table()?;
    for path in paths {
        if let Some(entry) = entry_table(lua, &path)? {
            out.push(entry)?;
        }
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
fn glob(lua: &Lua, pattern: String) -> mlua::Result<Table> {
    let absolute = pattern.starts_with('/');
    let mut current: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    }];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if component.contains(['*', '?']) {
                let Ok(entries) = std::fs::read_dir(base) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|name| {
                        (!name.starts_with('.') || component.starts_with('.'))
                            && matches(component, name)
                    })
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|name| base.join(name)));
            } else {
                let path = base.join(component);
                if std::fs::symlink_metadata(&path).is_ok() {
                    next.push(path);
                }
            }
        }
        current = next;
    }
    let out = lua.create_table()?;
    for path in current {
        let text = path.display().to_string();
        out.push(if absolute {
            text
        } else {
            text.trim_start_matches("./").to_owned()
        })?;
    }
    Ok(out)
}

/// `copkg.mkdir_p(path)`
fn mkdir_p(_: &Lua, path: String) -> mlua::Result<()> {
    std::fs::create_dir_all(&path).map_err(|e| fail("mkdir_p", format!("{path}: {e}")))
}

/// `copkg.remove(path)`: a file, a symlink, or a directory with everything in it; absent is fine.
fn remove(_: &Lua, path: String) -> mlua::Result<bool> {
    let result = match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
        Ok(_) => std::fs::remove_file(&path),
    };
    result
        .map(|()| true)
        .map_err(|e| fail("remove", format!("{path}: {e}")))
}

/// `copkg.rename(from, to)`
fn rename(_: &Lua, (from, to): (String, String)) -> mlua::Result<()> {
    std::fs::rename(&from, &to).map_err(|e| fail("rename", format!("{from} -> {to}: {e}")))
}

/// `copkg.exists(path)`
fn exists(_: &Lua, path: String) -> mlua::Result<bool> {
    Ok(std::fs::symlink_metadata(path).is_ok())
}

/// `copkg.is_file(path)`
fn is_file(_: &Lua, path: String) -> mlua::Result<bool> {
    Ok(Path::new(&path).is_file())
}

/// `copkg.stat(path)`: {name, path, size, mtime, type}, or nil when absent.
fn stat(lua: &Lua, path: String) -> mlua::Result<Option<Table>> {
    entry_table(lua, Path::new(&path))
}

/// `copkg.write_file(path, text)`: written to a temp file, then renamed.
fn write_file(_: &Lua, (path, text): (String, mlua::LuaString)) -> mlua::Result<()> {
    crate::runtime::write_atomically(Path::new(&path), &text.as_bytes())
        .map_err(|e| fail("write_file", crate::lua::chain(&e)))
}

/// `copkg.read_file(path)`
fn read_file(lua: &Lua, path: String) -> mlua::Result<mlua::LuaString> {
    let bytes = std::fs::read(&path).map_err(|e| fail("read_file", format!("{path}: {e}")))?;
    lua.create_string(bytes)
}

/// `copkg.gzip(path)`: compresses `path` into `path.gz` (temp file, then
/// rename, keeping the mtime) and removes `path`; returns the new path.
fn gzip(_: &Lua, path: String) -> mlua::Result<String> {
    let err = |e: std::io::Error| fail("gzip", format!("{path}: {e}"));
    let target = format!("{path}.gz");
    let mut input = std::fs::File::open(&path).map_err(err)?;
    let modified = input.metadata().and_then(|m| m.modified()).map_err(err)?;
    let dir = Path::new(&path).parent().unwrap_or(Path::new("."));
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    let mut encoder = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(temp),
        flate2::Compression::default(),
    );
    std::io::copy(&mut input, &mut encoder).map_err(err)?;
    let mut writer = encoder.finish().map_err(err)?;
    writer.flush().map_err(err)?;
    let temp = writer.into_inner().map_err(|e| err(e.into_error()))?;
    temp.as_file().set_modified(modified).map_err(err)?;
    temp.persist(&target).map_err(|e| err(e.error))?;
    std::fs::remove_file(&path).map_err(err)?;
    Ok(target)
}

/// `copkg.sha256(path)`: lowercase hex digest of a file.
fn sha256(_: &Lua, path: String) -> mlua::Result<String> {
    let mut file =
        std::fs::File::open(&path).map_err(|e| fail("sha256", format!("{path}: {e}")))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| fail("sha256", format!("{path}: {e}")))?;
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
    module.set("sha256", lua.create_function(sha256)?)?;
    module.set("json_encode", lua.create_function(json_encode)?)?;
    module.set("json_decode", lua.create_function(json_decode)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::matches;

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
