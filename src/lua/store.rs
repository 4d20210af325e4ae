//! `copkg` package-store functions for scripts: install, install_many,
//! uninstall, installed, resolve.

use mlua::{Lua, Table};

use super::policy::Policy;
use crate::coordinate::PackageCoordinate;
use crate::repo::{Fetcher, ProxySettings};
use crate::settings::Settings;
use crate::store::{Installed, PackageState, Store, StoreError};

/// The hooks table of the state, for functions that need the policy.
pub(crate) struct Hooks(pub Table);

fn fail(function: &str, message: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("copkg.{function}: {message}"))
}

fn settings(lua: &Lua, function: &str) -> mlua::Result<Settings> {
    lua.app_data_ref::<Settings>()
        .map(|s| s.clone())
        .ok_or_else(|| {
            fail(
                function,
                "not available here (no settings in this Lua state)",
            )
        })
}

fn policy_layout(
    lua: &Lua,
    function: &str,
    coordinate: &PackageCoordinate,
) -> mlua::Result<crate::store::PackageLayout> {
    let hooks = lua
        .app_data_ref::<Hooks>()
        .map(|h| h.0.clone())
        .ok_or_else(|| fail(function, "no policy in this Lua state"))?;
    Policy::new(lua, &hooks)
        .layout(coordinate)
        .map_err(|e| fail(function, e))
}

fn parse(function: &str, text: &str) -> mlua::Result<PackageCoordinate> {
    text.parse().map_err(|e| fail(function, e))
}

fn fetcher(function: &str, settings: &Settings) -> mlua::Result<Fetcher> {
    Fetcher::new(settings.http.clone(), ProxySettings::from_env()).map_err(|e| fail(function, e))
}

fn result_table(
    lua: &Lua,
    coordinate: &PackageCoordinate,
    result: &Result<Installed, StoreError>,
) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("coordinate", coordinate.id())?;
    match result {
        Ok(Installed::Fresh { dir, record }) => {
            table.set("status", "installed")?;
            table.set("dir", dir.display().to_string())?;
            table.set("sha256", record.sha256.as_str())?;
        }
        Ok(Installed::Already { dir }) => {
            table.set("status", "already-installed")?;
            table.set("dir", dir.display().to_string())?;
        }
        Err(err) => {
            table.set("status", "failed")?;
            table.set("error", super::chain(err))?;
            table.set("exit_code", crate::exit::code_for_error(err) as u8)?;
        }
    }
    Ok(table)
}

/// `copkg.install(coordinate)`: {coordinate, status, dir, sha256?}; raises on failure.
fn install(lua: &Lua, text: String) -> mlua::Result<Table> {
    const F: &str = "install";
    let settings = settings(lua, F)?;
    let coordinate = parse(F, &text)?;
    let layout = policy_layout(lua, F, &coordinate)?;
    let request = settings.install_request(&coordinate, &layout);
    let result =
        Store::new(&settings.software_root).install(&fetcher(F, &settings)?, &request, &mut |_| {});
    if let Err(err) = &result {
        return Err(fail(
            F,
            format!("cannot install {}: {}", coordinate.id(), super::chain(err)),
        ));
    }
    result_table(lua, &coordinate, &result)
}

/// `copkg.install_many(coordinates, {jobs = N})`: one result table per
/// coordinate, in order, with `status = "failed"` and `error` for failures.
fn install_many(lua: &Lua, (list, options): (Vec<String>, Option<Table>)) -> mlua::Result<Table> {
    const F: &str = "install_many";
    let settings = settings(lua, F)?;
    let jobs: usize = match &options {
        Some(table) => {
            for pair in table.pairs::<String, mlua::Value>() {
                let (key, _) = pair?;
                if key != "jobs" {
                    return Err(fail(F, format!("unknown option `{key}` (known: jobs)")));
                }
            }
            table.get::<Option<usize>>("jobs")?.unwrap_or(4)
        }
        None => 4,
    };
    let coordinates = list
        .iter()
        .map(|t| parse(F, t))
        .collect::<mlua::Result<Vec<_>>>()?;
    let layouts = coordinates
        .iter()
        .map(|c| policy_layout(lua, F, c))
        .collect::<mlua::Result<Vec<_>>>()?;
    let requests: Vec<_> = coordinates
        .iter()
        .zip(&layouts)
        .map(|(c, l)| settings.install_request(c, l))
        .collect();
    let fetcher = fetcher(F, &settings)?;
    let results = Store::new(&settings.software_root).install_parallel(
        &fetcher,
        &requests,
        jobs.max(1),
        &|_, _| {},
        &|_, _| {},
    );
    let out = lua.create_table()?;
    for (coordinate, result) in coordinates.iter().zip(&results) {
        out.push(result_table(lua, coordinate, result)?)?;
    }
    Ok(out)
}

/// `copkg.uninstall(coordinate)`: true if it was installed.
fn uninstall(lua: &Lua, text: String) -> mlua::Result<bool> {
    const F: &str = "uninstall";
    let settings = settings(lua, F)?;
    let coordinate = parse(F, &text)?;
    let layout = policy_layout(lua, F, &coordinate)?;
    for runtime in crate::runtime::find_runtime_dirs(&settings.runtime_root) {
        let Ok(Some(record)) = runtime.read_record() else {
            continue;
        };
        if record.package == coordinate.id()
            && matches!(
                crate::service::status(&runtime),
                Ok(crate::service::ServiceState::Running { .. })
            )
        {
            return Err(fail(
                F,
                format!(
                    "{} is used by running service {}",
                    coordinate.id(),
                    record.service
                ),
            ));
        }
    }
    Store::new(&settings.software_root)
        .uninstall(&coordinate, &layout, &mut |_| {})
        .map_err(|e| fail(F, super::chain(&e)))
}

/// `copkg.installed()`: every installed package, sorted by coordinate.
fn installed(lua: &Lua, (): ()) -> mlua::Result<Table> {
    const F: &str = "installed";
    let settings = settings(lua, F)?;
    let out = lua.create_table()?;
    for (dir, record) in Store::new(&settings.software_root)
        .list()
        .map_err(|e| fail(F, super::chain(&e)))?
    {
        let table = lua.create_table()?;
        table.set("coordinate", record.coordinate)?;
        table.set("dir", dir.display().to_string())?;
        table.set("sha256", record.sha256)?;
        table.set("verified", record.verified)?;
        table.set("source", record.source)?;
        table.set("installed_at", record.installed_at)?;
        out.push(table)?;
    }
    Ok(out)
}

/// `copkg.resolve(coordinate)`: {coordinate, dir, state, archives = {...}, sidecars = {...}}.
fn resolve(lua: &Lua, text: String) -> mlua::Result<Table> {
    const F: &str = "resolve";
    let settings = settings(lua, F)?;
    let coordinate = parse(F, &text)?;
    let layout = policy_layout(lua, F, &coordinate)?;
    let store = Store::new(&settings.software_root);
    let table = lua.create_table()?;
    table.set("coordinate", coordinate.id())?;
    table.set("dir", store.install_dir(&layout).display().to_string())?;
    let state = match store
        .state(&layout)
        .map_err(|e| fail(F, super::chain(&e)))?
    {
        PackageState::Installed(_) => "installed",
        PackageState::Absent => "absent",
        PackageState::Foreign => "foreign",
    };
    table.set("state", state)?;
    let archives = lua.create_table()?;
    let sidecars = lua.create_table()?;
    for repo in &settings.repositories {
        archives.push(repo.address(&layout.archive))?;
        sidecars.push(repo.address(&layout.sha256))?;
    }
    table.set("archives", archives)?;
    table.set("sidecars", sidecars)?;
    Ok(table)
}

/// Adds these functions to the `copkg` table.
pub(crate) fn register(lua: &Lua, module: &Table) -> mlua::Result<()> {
    module.set("install", lua.create_function(install)?)?;
    module.set("install_many", lua.create_function(install_many)?)?;
    module.set("uninstall", lua.create_function(uninstall)?)?;
    module.set("installed", lua.create_function(installed)?)?;
    module.set("resolve", lua.create_function(resolve)?)?;
    Ok(())
}
