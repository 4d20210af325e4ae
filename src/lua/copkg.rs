//! The `copkg` Lua module: the core primitives scripts and hooks may call.
//! Errors raised to Lua read `copkg.fn: what went wrong`.

use std::ffi::OsString;
use std::path::PathBuf;

use mlua::{Lua, Table, Value};

use crate::platform::Platform;
use crate::service::{SpawnSpec, spawn_detached};
use crate::state::RecordedProcess;

/// Processes spawned through `copkg.spawn` in this Lua state, in order.
#[derive(Debug, Default)]
pub struct Spawned(pub Vec<RecordedProcess>);

fn fail(function: &str, message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("copkg.{function}: {message}"))
}

/// Reads a table's fields, refusing keys not in `known`.
pub(crate) fn check_keys(function: &str, table: &Table, known: &[&str]) -> mlua::Result<()> {
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

/// `copkg.log(message)`: a line on stderr.
fn log(_: &Lua, message: String) -> mlua::Result<()> {
    eprintln!("{message}");
    Ok(())
}

/// Registers the `copkg` module, with every function of every Lua module
/// file, as a global and as `require("copkg")`.
pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let module = lua.create_table()?;
    module.set("version", env!("CARGO_PKG_VERSION"))?;
    module.set("api_version", super::limits::API_VERSION)?;
    module.set(
        "require_api",
        lua.create_function(super::limits::require_api)?,
    )?;
    module.set("args", lua.create_table()?)?;
    module.set("spawn", lua.create_function(spawn)?)?;
    module.set("platform", lua.create_function(platform)?)?;
    module.set("log", lua.create_function(log)?)?;
    super::fs::register(lua, &module)?;
    super::store::register(lua, &module)?;
    super::service::register(lua, &module)?;
    lua.set_app_data(Spawned::default());
    let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
    loaded.set("copkg", module.clone())?;
    lua.globals().set("copkg", module.clone())?;
    as_plain_errors(lua, &module)?;
    add_try_variants(lua, &module)
}

/// Functions whose failure a script may want to handle as a value.
const TRY_VARIANTS: &[&str] = &[
    "install",
    "uninstall",
    "resolve",
    "fetch",
    "extract",
    "start",
    "stop",
    "restart",
    "upgrade",
    "read_file",
    "json_decode",
    "spawn",
    "status",
];

/// `copkg.try_NAME(...)` returns the result of `copkg.NAME(...)`, or `nil,
/// message` where `copkg.NAME` would raise.
fn add_try_variants(lua: &Lua, module: &Table) -> mlua::Result<()> {
    let names = lua.create_sequence_from(TRY_VARIANTS.iter().copied())?;
    lua.load(
        r#"
        local module, names = ...
        for _, name in ipairs(names) do
          local f = module[name]
          module["try_" .. name] = function(...)
            local outcome = table.pack(pcall(f, ...))
            if outcome[1] then
              -- A function that returns nothing gives true, so success is never nil.
              if outcome.n == 1 then
                return true
              end
              return outcome[2]
            end
            return nil, (tostring(outcome[2]):gsub("^[^:]*:%d+: ", ""))
          end
        end
        "#,
    )
    .set_name("=copkg")
    .call::<()>((module.clone(), names))
}

/// Wraps every function of `module` so that its errors reach Lua as plain
/// strings, `file:line: copkg.fn: what went wrong`, pointing at the caller.
pub(crate) fn as_plain_errors(lua: &Lua, module: &Table) -> mlua::Result<()> {
    lua.load(
        r#"
        local module = ...
        for name, f in pairs(module) do
          if type(f) == "function" then
            module[name] = function(...)
              local result = table.pack(pcall(f, ...))
              if result[1] then
                return table.unpack(result, 2, result.n)
              end
              local message = tostring(result[2])
                :gsub("^runtime error: ", "")
                :gsub("\nstack traceback:.*$", "")
              error(message, 2)
            end
          end
        end
        "#,
    )
    .set_name("=copkg")
    .call::<()>(module.clone())
}

#[cfg(test)]
mod tests {
    use crate::lua::Host;

    /// Evaluates a Lua expression in a fresh host and returns it as a string.
    fn eval(code: &str) -> String {
        let host = Host::new(None).unwrap();
        host.lua.load(code).eval::<String>().unwrap()
    }

    #[test]
    fn spawn_validates_its_table() {
        let cases = [
            ("{program = '/bin/true'}", "copkg.spawn: `cwd` is required"),
            (
                "{program = '/bin/true', cwd = '/', stdout = '/dev/null', stderr = '/dev/null', colour = 1}",
                "copkg.spawn: unknown field `colour` (known: program, args, env, cwd, stdout, stderr)",
            ),
            (
                "{program = '/bin/true', cwd = '/', stdout = '/dev/null', stderr = '/dev/null', args = {{}}}",
                "copkg.spawn: `args` items must be strings, found a table",
            ),
            (
                "{program = '/nonexistent/x', cwd = '/', stdout = '/dev/null', stderr = '/dev/null'}",
                "copkg.spawn: cannot start /nonexistent/x: No such file or directory (os error 2)",
            ),
        ];
        for (spec, want) in cases {
            let got = eval(&format!(
                "local ok, err = pcall(copkg.spawn, {spec}); assert(not ok); return tostring(err)"
            ));
            assert!(got.starts_with(want), "{spec}: {got}");
        }
    }

    #[test]
    fn spawn_starts_a_detached_process_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(None).unwrap();
        let code = format!(
            "local p = copkg.spawn({{program = '/bin/sh', args = {{'-c', 'echo $PPID; exec sleep 30'}}, cwd = '{0}', stdout = '{0}/out', stderr = '{0}/err'}}); return p.pid",
            dir.path().display()
        );
        let pid: i32 = host.lua.load(&code).eval().unwrap();
        assert_eq!(
            host.policy()
                .spawned()
                .iter()
                .map(|p| p.pid)
                .collect::<Vec<_>>(),
            [pid]
        );
        let stat = crate::process::stat(pid).unwrap();
        assert_eq!((stat.pgrp, stat.session), (pid, pid));
        assert_ne!(stat.ppid, std::process::id() as i32);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    #[test]
    fn binary_follows_the_platform_policy() {
        let dir = tempfile::tempdir().unwrap();
        let platform = super::Platform::current();
        let specific = dir.path().join(format!("bin/{}", platform.tag()));
        std::fs::create_dir_all(&specific).unwrap();
        std::fs::write(dir.path().join("bin/tool"), "").unwrap();
        let lookup = format!("return copkg.binary('{}', 'tool')", dir.path().display());
        assert_eq!(eval(&lookup), format!("{}/bin/tool", dir.path().display()));
        std::fs::write(specific.join("tool"), "").unwrap();
        assert_eq!(
            eval(&lookup),
            format!("{}/bin/{}/tool", dir.path().display(), platform.tag())
        );
        let missing = format!(
            "local ok, err = pcall(copkg.binary, '{}', 'nope'); return tostring(err)",
            dir.path().display()
        );
        assert!(eval(&missing).contains(&format!(
            "copkg.binary: no binary `nope` for {} in",
            platform.tag()
        )));
    }

    #[test]
    fn files_and_platform() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let code = format!(
            "copkg.write_file('{0}', 'abc'); return copkg.read_file('{0}') .. tostring(copkg.is_file('{0}')) .. tostring(copkg.exists('{0}.no'))",
            path.display()
        );
        assert_eq!(eval(&code), "abctruefalse");
        let err =
            eval("local ok, err = pcall(copkg.read_file, '/nonexistent/f'); return tostring(err)");
        assert!(
            err.starts_with("copkg.read_file: cannot open /nonexistent/f: No such file"),
            "{err}"
        );
        assert_eq!(
            eval("local p = copkg.platform(); return p.os .. '-' .. p.arch"),
            super::Platform::current().tag()
        );
    }
}
