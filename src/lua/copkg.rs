//! The `copkg` Lua module: the core primitives scripts and hooks may call.
//! Errors raised to Lua read `copkg.fn: what went wrong`.

use std::ffi::OsString;
use std::path::PathBuf;

use mlua::{Lua, Table, Value};

use crate::runtime::RecordedProcess;
use crate::service::{SpawnSpec, spawn_detached};

/// Processes spawned through `copkg.spawn` in this Lua state, in order.
#[derive(Debug, Default)]
pub struct Spawned(pub Vec<RecordedProcess>);

/// The platform copkg runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `macos`, …
    pub os: String,
    /// `x86_64`, `aarch64`, …
    pub arch: String,
    /// `gnu` or `musl` on Linux, empty elsewhere.
    pub libc: String,
}

impl Platform {
    /// The platform of this machine.
    pub fn current() -> Self {
        let os = std::env::consts::OS.to_owned();
        let arch = std::env::consts::ARCH.to_owned();
        let libc = if os != "linux" {
            String::new()
        } else if std::fs::read_dir("/lib")
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("ld-musl-"))
            })
            .unwrap_or(false)
        {
            "musl".to_owned()
        } else {
            "gnu".to_owned()
        };
        Platform { os, arch, libc }
    }

    /// `os-arch`, as in `bin/<os>-<arch>/`.
    pub fn tag(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }
}

fn fail(function: &str, message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("copkg.{function}: {message}"))
}

/// Reads a table's fields, refusing keys not in `known`.
fn check_keys(function: &str, table: &Table, known: &[&str]) -> mlua::Result<()> {
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair?;
        let name = match &key {
            Value::String(s) => s.to_str()?.to_owned(),
            other => {
                return Err(fail(
                    function,
                    format!("unexpected {} key", other.type_name()),
                ));
            }
        };
        if !known.contains(&name.as_str()) {
            return Err(fail(
                function,
                format!("unknown field `{name}` (known: {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn string_list(function: &str, field: &str, value: Option<Table>) -> mlua::Result<Vec<OsString>> {
    let Some(table) = value else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in table.sequence_values::<Value>() {
        match item? {
            Value::String(s) => out.push(OsString::from(s.to_str()?.to_owned())),
            Value::Integer(i) => out.push(OsString::from(i.to_string())),
            Value::Number(n) => out.push(OsString::from(n.to_string())),
            other => {
                return Err(fail(
                    function,
                    format!(
                        "`{field}` items must be strings, found a {}",
                        other.type_name()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// `copkg.spawn{program=, args=, env=, cwd=, stdout=, stderr=}`
fn spawn(lua: &Lua, spec: Table) -> mlua::Result<Table> {
    const F: &str = "spawn";
    check_keys(
        F,
        &spec,
        &["program", "args", "env", "cwd", "stdout", "stderr"],
    )?;
    let path = |field: &str| -> mlua::Result<PathBuf> {
        match spec.get::<Option<String>>(field)? {
            Some(text) if !text.is_empty() => Ok(PathBuf::from(text)),
            _ => Err(fail(F, format!("`{field}` is required"))),
        }
    };
    let program = path("program")?;
    let cwd = path("cwd")?;
    let stdout = path("stdout")?;
    let stderr = path("stderr")?;
    let args = string_list(F, "args", spec.get("args")?)?;
    let mut env = Vec::new();
    if let Some(table) = spec.get::<Option<Table>>("env")? {
        for pair in table.pairs::<String, String>() {
            let (k, v) = pair.map_err(|_| fail(F, "`env` must map strings to strings"))?;
            env.push((OsString::from(k), OsString::from(v)));
        }
    }
    let spec = SpawnSpec {
        program,
        args,
        env,
        cwd,
        stdout,
        stderr,
    };
    let process = spawn_detached(&spec).map_err(|e| fail(F, crate::lua::chain(&e)))?;
    if let Some(mut spawned) = lua.app_data_mut::<Spawned>() {
        spawned.0.push(process);
    }
    let result = lua.create_table()?;
    result.set("pid", process.pid)?;
    result.set("start_time", process.start_time)?;
    result.set("pgrp", process.pgrp)?;
    Ok(result)
}

/// `copkg.platform()`
fn platform(lua: &Lua, (): ()) -> mlua::Result<Table> {
    let platform = Platform::current();
    let table = lua.create_table()?;
    table.set("os", platform.os)?;
    table.set("arch", platform.arch)?;
    table.set("libc", platform.libc)?;
    Ok(table)
}

/// `copkg.exists(path)`
fn exists(_: &Lua, path: String) -> mlua::Result<bool> {
    Ok(std::path::Path::new(&path).exists())
}

/// `copkg.is_file(path)`
fn is_file(_: &Lua, path: String) -> mlua::Result<bool> {
    Ok(std::path::Path::new(&path).is_file())
}

/// `copkg.log(message)`: a line on stderr.
fn log(_: &Lua, message: String) -> mlua::Result<()> {
    eprintln!("{message}");
    Ok(())
}

/// `copkg.write_file(path, text)`: written to a temp file, synced, renamed.
fn write_file(_: &Lua, (path, text): (String, mlua::LuaString)) -> mlua::Result<()> {
    crate::runtime::write_atomically(std::path::Path::new(&path), &text.as_bytes())
        .map_err(|e| fail("write_file", crate::lua::chain(&e)))
}

/// `copkg.read_file(path)`
fn read_file(lua: &Lua, path: String) -> mlua::Result<mlua::LuaString> {
    let bytes = std::fs::read(&path).map_err(|e| fail("read_file", format!("{path}: {e}")))?;
    lua.create_string(bytes)
}

/// Registers the `copkg` module as a global and as `require("copkg")`.
pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let module = lua.create_table()?;
    module.set("version", env!("CARGO_PKG_VERSION"))?;
    module.set("spawn", lua.create_function(spawn)?)?;
    module.set("platform", lua.create_function(platform)?)?;
    module.set("exists", lua.create_function(exists)?)?;
    module.set("is_file", lua.create_function(is_file)?)?;
    module.set("log", lua.create_function(log)?)?;
    module.set("write_file", lua.create_function(write_file)?)?;
    module.set("read_file", lua.create_function(read_file)?)?;
    lua.set_app_data(Spawned::default());
    let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
    loaded.set("copkg", module.clone())?;
    lua.globals().set("copkg", module)
}
