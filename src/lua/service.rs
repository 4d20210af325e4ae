//! `copkg` service functions for scripts: runtime_dir, status, alive, kill.

use mlua::{Lua, Table};

use super::policy::Policy;
use super::store::Hooks;
use crate::coordinate::ServiceCoordinate;
use crate::journal::Outcome;
use crate::lifecycle;
use crate::process::{self, Signalled};
use crate::runtime::RuntimeDir;
use crate::service::ServiceState;
use crate::settings::Settings;

fn fail(function: &str, message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("copkg.{function}: {message}"))
}

/// The settings and the policy hooks of this state, which service functions act by.
fn settings_and_hooks(lua: &Lua, function: &str) -> mlua::Result<(Settings, mlua::Table)> {
    let settings = lua
        .app_data_ref::<Settings>()
        .map(|s| s.clone())
        .ok_or_else(|| {
            fail(
                function,
                "not available here (no settings in this Lua state)",
            )
        })?;
    let hooks = lua
        .app_data_ref::<Hooks>()
        .map(|h| h.0.clone())
        .ok_or_else(|| fail(function, "no policy in this Lua state"))?;
    Ok((settings, hooks))
}

fn runtime(lua: &Lua, function: &str, text: &str) -> mlua::Result<RuntimeDir> {
    let service: ServiceCoordinate = text.parse().map_err(|e| fail(function, e))?;
    let (settings, hooks) = settings_and_hooks(lua, function)?;
    lifecycle::runtime_dir(&settings, &Policy::new(lua, &hooks), &service)
        .map_err(|e| super::raise_error(lua, function, &e))
}

/// `copkg.runtime_dir(service)`: the runtime dir path the policy gives.
fn runtime_dir(lua: &Lua, service: String) -> mlua::Result<String> {
    Ok(runtime(lua, "runtime_dir", &service)?
        .path()
        .display()
        .to_string())
}

/// `copkg.prepare_runtime(service)`: creates the runtime dir and its subdirectories.
fn prepare_runtime(lua: &Lua, service: String) -> mlua::Result<String> {
    let dir = runtime(lua, "prepare_runtime", &service)?;
    dir.prepare()
        .map_err(|e| fail("prepare_runtime", super::chain(&e)))?;
    Ok(dir.path().display().to_string())
}

/// `copkg.status(service)`: {state, pids, package, runtime_dir}.
fn status(lua: &Lua, service: String) -> mlua::Result<Table> {
    const F: &str = "status";
    let service: ServiceCoordinate = service.parse().map_err(|e| fail(F, e))?;
    let (settings, hooks) = settings_and_hooks(lua, F)?;
    let status = lifecycle::status(&settings, &Policy::new(lua, &hooks), &service)
        .map_err(|e| super::raise_error(lua, F, &e))?;
    let table = lua.create_table()?;
    table.set("state", status.state.name())?;
    let pids = match &status.state {
        ServiceState::Running { pids } => pids.clone(),
        _ => Vec::new(),
    };
    table.set("pids", lua.create_sequence_from(pids)?)?;
    status_fields(&table, &status)?;
    table.set("package", status.package)?;
    table.set("runtime_dir", status.runtime_dir.display().to_string())?;
    Ok(table)
}

/// The fields `copkg.status` and `copkg.services` add to state and pids.
fn status_fields(table: &Table, status: &lifecycle::ServiceStatus) -> mlua::Result<()> {
    table.set("user", status.user.clone())?;
    table.set("started_at", status.started_at)?;
    table.set("memory", status.memory)?;
    table.set("failed", status.failed.clone())?;
    table.set("enabled", status.supervised.enabled == Some(true))?;
    table.set("restarts", status.supervised.restarts)?;
    table.set("last_crashed_at", status.supervised.last_crashed_at)?;
    Ok(())
}

/// `copkg.alive(pid, start_time?)`: whether the process lives (and, when
/// given, started at `start_time`); zombies are not alive.
fn alive(_: &Lua, (pid, start_time): (i32, Option<u64>)) -> mlua::Result<bool> {
    Ok(match start_time {
        Some(start_time) => process::is_running(pid, start_time),
        None => process::stat(pid).is_some_and(|s| s.is_alive()),
    })
}

/// `copkg.kill(pid, start_time, signal)`: signals the process only if it
/// started at `start_time`; returns whether it was signalled.
fn kill(_: &Lua, (pid, start_time, signal): (i32, u64, Option<String>)) -> mlua::Result<bool> {
    const F: &str = "kill";
    let name = signal
        .unwrap_or_else(|| "TERM".to_owned())
        .to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    let signal: nix::sys::signal::Signal = name
        .parse()
        .map_err(|_| fail(F, format!("unknown signal `{name}`")))?;
    match process::signal_exact(pid, start_time, signal) {
        Ok(Signalled::Sent) => Ok(true),
        Ok(Signalled::Gone) => Ok(false),
        Err(e) => Err(fail(F, format!("pid {pid}: {e}"))),
    }
}

/// `copkg.start(package, service, args?, {install = bool, user = "NAME[:GROUP]"}?)`: starts a service
/// as `copkg start` does; returns {service, package, pids, runtime_dir}.
fn start(
    lua: &Lua,
    (package, service, args, options): (String, String, Option<Vec<String>>, Option<Table>),
) -> mlua::Result<Table> {
    const F: &str = "start";
    let (settings, hooks) = settings_and_hooks(lua, F)?;
    let mut install = false;
    let mut account = None;
    if let Some(options) = options {
        for pair in options.pairs::<String, mlua::Value>() {
            let (key, value) = pair?;
            match (key.as_str(), value) {
                ("install", mlua::Value::Boolean(b)) => install = b,
                ("user", mlua::Value::String(spec)) => {
                    account = Some(
                        crate::account::Account::parse(&spec.to_str()?)
                            .map_err(|e| super::raise_error(lua, F, &e))?,
                    );
                }
                (key, _) => {
                    return Err(fail(
                        F,
                        format!(
                            "unknown or mistyped option `{key}` (known: install = boolean, user = \"NAME[:GROUP]\")"
                        ),
                    ));
                }
            }
        }
    }
    let package = package.parse().map_err(|e| fail(F, e))?;
    let service = service.parse().map_err(|e| fail(F, e))?;
    let args = args.unwrap_or_default();
    let request = lifecycle::StartRequest {
        package: &package,
        service: &service,
        args: &args,
        install,
        ready: None,
        ready_timeout: crate::ready::DEFAULT_TIMEOUT,
        account: account.as_ref(),
    };
    let started = lifecycle::start(&settings, &Policy::new(lua, &hooks), &request, &|message| {
        eprintln!("{message}")
    });
    let target = service.to_string();
    super::journal(&settings, F, &target, &Outcome::of(&started, |s| s.changed));
    let started = started.map_err(|e| super::raise_error(lua, F, &e))?;
    started_table(lua, started)
}

fn started_table(lua: &Lua, started: lifecycle::Started) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("service", started.service)?;
    table.set("package", started.package)?;
    table.set("pids", lua.create_sequence_from(started.pids)?)?;
    table.set("runtime_dir", started.runtime_dir.display().to_string())?;
    table.set("changed", started.changed)?;
    Ok(table)
}

/// `copkg.stop(service)`: stops a service as `copkg stop` does.
fn stop(lua: &Lua, service: String) -> mlua::Result<Table> {
    const F: &str = "stop";
    let (settings, hooks) = settings_and_hooks(lua, F)?;
    let service = service.parse().map_err(|e| fail(F, e))?;
    let stopped = lifecycle::stop(&settings, &Policy::new(lua, &hooks), &service, &|message| {
        eprintln!("{message}")
    });
    let target = service.to_string();
    super::journal(&settings, F, &target, &Outcome::of(&stopped, |s| s.changed));
    let stopped = stopped.map_err(|e| super::raise_error(lua, F, &e))?;
    let table = lua.create_table()?;
    table.set("service", service.to_string())?;
    table.set("changed", stopped.changed)?;
    Ok(table)
}

/// `copkg.restart(service)`: restarts a service as `copkg restart` does;
/// returns what `copkg.start` returns.
fn restart(lua: &Lua, service: String) -> mlua::Result<Table> {
    const F: &str = "restart";
    let (settings, hooks) = settings_and_hooks(lua, F)?;
    let service = service.parse().map_err(|e| fail(F, e))?;
    let started = lifecycle::restart(
        &settings,
        &Policy::new(lua, &hooks),
        &service,
        (None, crate::ready::DEFAULT_TIMEOUT),
        &|message| eprintln!("{message}"),
    );
    let target = service.to_string();
    super::journal(&settings, F, &target, &Outcome::of(&started, |_| true));
    let started = started.map_err(|e| super::raise_error(lua, F, &e))?;
    started_table(lua, started)
}

/// `copkg.upgrade(service, package, {args = {...}, ready = "tcp:…", ready_timeout = s}?)`:
/// upgrades as `copkg upgrade` does; returns {service, from, to, pids,
/// downtime}; raises (exit code 12 or 15) when it rolled back or could not.
fn upgrade(
    lua: &Lua,
    (service, package, options): (String, String, Option<Table>),
) -> mlua::Result<Table> {
    const F: &str = "upgrade";
    let (settings, hooks) = settings_and_hooks(lua, F)?;
    let service: ServiceCoordinate = service.parse().map_err(|e| fail(F, e))?;
    let package: crate::coordinate::PackageCoordinate = package.parse().map_err(|e| fail(F, e))?;
    let mut args = None;
    let mut ready = None;
    let mut ready_timeout = crate::ready::DEFAULT_TIMEOUT;
    if let Some(options) = options {
        super::copkg::check_keys(F, &options, &["args", "ready", "ready_timeout"])?;
        args = options.get::<Option<Vec<String>>>("args")?;
        if let Some(text) = options.get::<Option<String>>("ready")? {
            ready = Some(
                text.parse::<crate::ready::ReadyCheck>()
                    .map_err(|e| fail(F, e))?,
            );
        }
        if let Some(secs) = options.get::<Option<f64>>("ready_timeout")? {
            if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
                return Err(fail(
                    F,
                    "`ready_timeout` takes seconds above 0, at most a day",
                ));
            }
            ready_timeout = std::time::Duration::from_secs_f64(secs);
        }
    }
    let request = lifecycle::UpgradeRequest {
        service: &service,
        package: &package,
        args: args.as_deref(),
        ready: ready.as_ref(),
        ready_timeout,
    };
    let upgraded = lifecycle::upgrade(&settings, &Policy::new(lua, &hooks), &request, &|message| {
        eprintln!("{message}")
    });
    let target = service.to_string();
    super::journal(&settings, F, &target, &Outcome::of(&upgraded, |_| true));
    let upgraded = upgraded.map_err(|e| super::raise_error(lua, F, &e))?;
    let table = lua.create_table()?;
    table.set("service", service.to_string())?;
    table.set("from", upgraded.from)?;
    table.set("to", upgraded.started.package)?;
    table.set("pids", lua.create_sequence_from(upgraded.started.pids)?)?;
    table.set("downtime", upgraded.downtime.as_secs_f64())?;
    Ok(table)
}

/// `copkg.services()`: every service in copkg's registry, {service, state,
/// pids, package, runtime_dir}, sorted by name.
fn services(lua: &Lua, (): ()) -> mlua::Result<Table> {
    const F: &str = "services";
    let (settings, _) = settings_and_hooks(lua, F)?;
    let rows = lifecycle::status_all(&settings).map_err(|e| super::raise_error(lua, F, &e))?;
    let out = lua.create_table()?;
    for row in rows {
        let table = lua.create_table()?;
        table.set("service", row.service.as_str())?;
        table.set("state", row.state.name())?;
        let pids = match &row.state {
            ServiceState::Running { pids } => pids.clone(),
            _ => Vec::new(),
        };
        table.set("pids", lua.create_sequence_from(pids)?)?;
        status_fields(&table, &row)?;
        table.set("package", row.package)?;
        table.set("runtime_dir", row.runtime_dir.display().to_string())?;
        out.push(table)?;
    }
    Ok(out)
}

/// Adds these functions to the `copkg` table.
pub(crate) fn register(lua: &Lua, module: &Table) -> mlua::Result<()> {
    module.set("runtime_dir", lua.create_function(runtime_dir)?)?;
    module.set("prepare_runtime", lua.create_function(prepare_runtime)?)?;
    module.set("status", lua.create_function(status)?)?;
    module.set("alive", lua.create_function(alive)?)?;
    module.set("kill", lua.create_function(kill)?)?;
    module.set("start", lua.create_function(start)?)?;
    module.set("stop", lua.create_function(stop)?)?;
    module.set("restart", lua.create_function(restart)?)?;
    module.set("upgrade", lua.create_function(upgrade)?)?;
    module.set("services", lua.create_function(services)?)?;
    Ok(())
}
