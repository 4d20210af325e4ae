//! Calls into the policy hooks and validates what they return.

use mlua::{Function, Lua, LuaSerdeExt, Table, Value};

use super::LuaError;
use crate::account::Account;
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::declared::ServiceSettings;
use crate::lifecycle::{
    LifecycleHook, LogCleanup, LogCleanupOptions, PackageScriptRan, PolicyError, ScriptValue,
    ServiceContext, SitePolicy,
};
use crate::platform::Platform;
use crate::state::RecordedProcess;
use crate::store::PackageLayout;

/// Every hook a site script may override.
pub const HOOKS: &[&str] = &[
    "install_path",
    "repository_paths",
    "runtime_path",
    "binary_path",
    "before_start",
    "after_start",
    "before_stop",
    "after_stop",
    "before_cleanup",
    "before_upgrade",
    "after_upgrade",
    "reload_signal",
    "service_account",
    "service_settings",
    "ready",
    "clean_logs",
];

/// Registers `copkg.binary(package_dir, name)`, which asks the `binary_path`
/// hook and checks its answer.
pub(super) fn register_binary(lua: &Lua, hooks: &Table) -> mlua::Result<()> {
    let hooks = hooks.clone();
    let binary = lua.create_function(move |lua, (package_dir, name): (String, String)| {
        let fail = |message: String| mlua::Error::RuntimeError(format!("copkg.binary: {message}"));
        let hook: Function = hooks.get("binary_path")?;
        let platform = Platform::current();
        let table = lua.create_table()?;
        table.set("os", platform.os.as_str())?;
        table.set("arch", platform.arch.as_str())?;
        table.set("libc", platform.libc.as_str())?;
        let found: Value = hook.call((package_dir.as_str(), name.as_str(), table))?;
        if found.is_nil() {
            return Err(fail(format!(
                "no binary `{name}` for {} in {package_dir}",
                platform.tag()
            )));
        }
        let relative =
            relative_path("binary_path", "result", found).map_err(|e| fail(e.to_string()))?;
        Ok(format!("{package_dir}/{relative}"))
    })?;
    let wrapper = lua.create_table()?;
    wrapper.set("binary", binary)?;
    super::copkg::as_plain_errors(lua, &wrapper)?;
    lua.globals()
        .get::<Table>("copkg")?
        .set("binary", wrapper.get::<Function>("binary")?)
}

/// The policy hooks of one Lua state.
pub struct Policy<'a> {
    lua: &'a Lua,
    hooks: &'a Table,
}

impl<'a> Policy<'a> {
    pub(crate) fn new(lua: &'a Lua, hooks: &'a Table) -> Self {
        Policy { lua, hooks }
    }

    fn hook(&self, name: &'static str) -> Result<Function, LuaError> {
        Ok(self.hooks.get::<Function>(name)?)
    }

    /// Calls a hook under the time and memory limits.
    fn call_hook<R: mlua::FromLuaMulti>(
        &self,
        name: &'static str,
        args: impl mlua::IntoLuaMulti,
    ) -> Result<R, LuaError> {
        super::limits::limited(self.lua, format!("hook `{name}`"), None, || {
            Ok(self.hook(name)?.call(args)?)
        })
    }

    fn package_table(&self, coordinate: &PackageCoordinate) -> Result<Table, LuaError> {
        let pkg = self.lua.create_table()?;
        pkg.set("group", coordinate.group.as_str())?;
        pkg.set("artifact", coordinate.artifact.as_str())?;
        pkg.set("version", coordinate.version.as_str())?;
        pkg.set("coordinate", coordinate.id())?;
        pkg.set("group_path", coordinate.group.replace('.', "/"))?;
        Ok(pkg)
    }

    /// Runs a package's Lua script from its source, in this state: the chunk
    /// is called with the service context as its argument. Only the hook
    /// child does this, as the service's account; copkg itself runs package
    /// scripts through [`super::child::run_package_script_as`].
    pub(crate) fn run_package_source(
        &self,
        path: &std::path::Path,
        source: &str,
        context: &ServiceContext,
    ) -> Result<ScriptValue, LuaError> {
        let chunk = self
            .lua
            .load(source)
            .set_name(format!("@{}", path.display()))
            .into_function()?;
        let context = self.context_table(context)?;
        let returned = super::limits::limited(self.lua, path.display().to_string(), None, || {
            Ok(chunk.call::<Value>(context)?)
        })?;
        Ok(match returned {
            Value::Nil => ScriptValue::Nil,
            Value::Boolean(b) => ScriptValue::Boolean(b),
            Value::String(s) => ScriptValue::String(s.to_string_lossy()),
            other => ScriptValue::Other(other.type_name().to_owned()),
        })
    }

    /// Evaluates a package's `service.lua` from its source in this state:
    /// the table it returns, with any function in it (at the top or one
    /// level down) called with the service context, as JSON. Only the hook
    /// child does this.
    pub(crate) fn declared_settings_source(
        &self,
        path: &std::path::Path,
        source: &str,
        context: &ServiceContext,
    ) -> Result<serde_json::Value, LuaError> {
        let what = path.display().to_string();
        let chunk = self
            .lua
            .load(source)
            .set_name(format!("@{what}"))
            .into_function()?;
        let ctx = self.context_table(context)?;
        super::limits::limited(self.lua, what.clone(), None, || {
            let returned = chunk.call::<Value>(ctx.clone())?;
            self.settings_json(returned, &ctx)
                .map_err(|problem| LuaError::Script {
                    message: format!("{what}: {problem}"),
                    code: None,
                })
        })
    }

    /// Settings a script or hook returned, as JSON: a table (nil: none),
    /// whose functions are called with `ctx` for their values.
    fn settings_json(&self, value: Value, ctx: &Table) -> Result<serde_json::Value, String> {
        let table = match value {
            Value::Nil => return Ok(serde_json::json!({})),
            Value::Table(table) => table,
            other => {
                return Err(format!(
                    "expected a table of settings, got a {}",
                    other.type_name()
                ));
            }
        };
        let resolve = |table: &Table| -> Result<(), String> {
            let mut calls = Vec::new();
            for pair in table.pairs::<Value, Value>() {
                let (key, value) = pair.map_err(|e| e.to_string())?;
                if let Value::Function(f) = value {
                    calls.push((key, f));
                }
            }
            for (key, f) in calls {
                let value: Value = f.call(ctx.clone()).map_err(|e| super::describe(&e))?;
                table.set(key, value).map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        resolve(&table)?;
        for pair in table.pairs::<Value, Value>() {
            let (_, value) = pair.map_err(|e| e.to_string())?;
            if let Value::Table(inner) = value {
                resolve(&inner)?;
            }
        }
        self.lua
            .from_value::<serde_json::Value>(Value::Table(table))
            .map_err(|e| e.to_string())
    }

    /// Calls `service_settings(ctx, declared)` and checks what it returns.
    pub fn service_settings(
        &self,
        context: &ServiceContext,
        declared: &ServiceSettings,
    ) -> Result<ServiceSettings, LuaError> {
        const HOOK: &str = "service_settings";
        let ctx = self.context_table(context)?;
        let declared = self.lua.to_value(declared)?;
        let returned: Value = self.call_hook(HOOK, (ctx.clone(), declared))?;
        let bad = |problem: String| LuaError::BadResult {
            hook: HOOK,
            problem,
        };
        let json = self.settings_json(returned, &ctx).map_err(bad)?;
        ServiceSettings::from_json(json, "the result").map_err(bad)
    }

    /// Whether the site script replaced the built-in `hook`.
    pub fn site_defines(&self, hook: &str) -> bool {
        let Ok(default) = self
            .lua
            .globals()
            .get::<Table>("package")
            .and_then(|p| p.get::<Table>("loaded"))
            .and_then(|l| l.get::<Table>("copkg.policy"))
        else {
            return false;
        };
        let ours: Value = default.get(hook).unwrap_or(Value::Nil);
        let theirs: Value = self.hooks.get(hook).unwrap_or(Value::Nil);
        ours != theirs
    }

    /// Processes spawned through `copkg.spawn` in this state so far.
    pub fn spawned(&self) -> Vec<RecordedProcess> {
        self.lua
            .app_data_ref::<super::Spawned>()
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }

    /// The service context as a Lua table.
    pub fn context_table(&self, context: &ServiceContext) -> Result<Table, LuaError> {
        let lua = self.lua;
        let ctx = lua.create_table()?;
        ctx.set(
            "package",
            context.package.as_ref().map(PackageCoordinate::id),
        )?;
        ctx.set(
            "package_dir",
            context
                .package_dir
                .as_ref()
                .map(|d| d.display().to_string()),
        )?;
        ctx.set("service", context.service.to_string())?;
        ctx.set("instance", context.service.instance.as_str())?;
        ctx.set("service_name", context.service.service.as_str())?;
        ctx.set("user", context.service.user.as_str())?;
        ctx.set("cell", context.service.cell.as_str())?;
        ctx.set("runtime_dir", context.runtime_dir.display().to_string())?;
        ctx.set(
            "args",
            lua.create_sequence_from(context.args.iter().map(String::as_str))?,
        )?;
        let platform = lua.create_table()?;
        platform.set("os", context.platform.os.as_str())?;
        platform.set("arch", context.platform.arch.as_str())?;
        platform.set("libc", context.platform.libc.as_str())?;
        ctx.set("platform", platform)?;
        let open = lua.create_table()?;
        for path in &context.open_files {
            open.set(path.display().to_string(), true)?;
        }
        ctx.set("open_files", open)?;
        ctx.set("reopen_signal", context.logs.reopen_signal.as_deref())?;
        let processes = lua.create_table()?;
        for process in &context.logs.processes {
            let p = lua.create_table()?;
            p.set("pid", process.pid)?;
            p.set("start_time", process.start_time)?;
            processes.push(p)?;
        }
        ctx.set("processes", processes)?;
        ctx.set(
            "logs",
            lua.create_sequence_from(context.logs.files.iter().map(String::as_str))?,
        )?;
        ctx.set(
            "open_list",
            lua.create_sequence_from(context.open_files.iter().map(|p| p.display().to_string()))?,
        )?;
        Ok(ctx)
    }

    /// Calls `clean_logs` and validates what it returns.
    pub fn clean_logs(
        &self,
        context: &ServiceContext,
        options: &LogCleanupOptions,
    ) -> Result<LogCleanup, LuaError> {
        const HOOK: &str = "clean_logs";
        let ctx = self.context_table(context)?;
        let opts = self.lua.create_table()?;
        opts.set("compress_after_days", options.compress_after_days)?;
        opts.set("delete_after_days", options.delete_after_days)?;
        opts.set("max_bytes", options.max_bytes)?;
        let returned: Value = self.call_hook(HOOK, (ctx, opts))?;
        let bad = |problem: String| LuaError::BadResult {
            hook: HOOK,
            problem,
        };
        let Value::Table(table) = returned else {
            return Err(bad(format!(
                "expected a table {{compressed=, deleted=, bytes=}}, got a {}",
                returned.type_name()
            )));
        };
        let mut result = LogCleanup {
            compressed: 0,
            deleted: 0,
            rotated: 0,
            bytes: 0,
        };
        for pair in table.pairs::<Value, Value>() {
            let (key, value) = pair?;
            let key = match &key {
                Value::String(s) => s.to_str()?.to_owned(),
                other => other.type_name().to_owned(),
            };
            let number = match value {
                Value::Integer(n) if n >= 0 => n as u64,
                Value::Number(n) if n >= 0.0 && n.fract() == 0.0 => n as u64,
                other => {
                    return Err(bad(format!(
                        "`{key}` must be a non-negative integer, got a {}",
                        other.type_name()
                    )));
                }
            };
            match key.as_str() {
                "compressed" => result.compressed = number,
                "deleted" => result.deleted = number,
                "rotated" => result.rotated = number,
                "bytes" => result.bytes = number,
                _ => return Err(bad(format!("unknown field `{key}`"))),
            }
        }
        Ok(result)
    }

    /// Calls a lifecycle hook (`before_start`, …) with the service context.
    pub fn lifecycle(&self, hook: LifecycleHook, context: &ServiceContext) -> Result<(), LuaError> {
        let hook = hook.name();
        let ctx = self.context_table(context)?;
        let returned: Value = self.call_hook(hook, ctx)?;
        if !returned.is_nil() {
            return Err(LuaError::BadResult {
                hook,
                problem: format!("expected nothing, got a {}", returned.type_name()),
            });
        }
        Ok(())
    }

    /// The signal `copkg reload` sends a service whose package has no
    /// reload script (`HUP`, `USR1`, …).
    pub fn reload_signal(&self, context: &ServiceContext) -> Result<String, LuaError> {
        const HOOK: &str = "reload_signal";
        let ctx = self.context_table(context)?;
        match self.call_hook::<Value>(HOOK, ctx)? {
            Value::String(name) => Ok(name.to_str()?.to_owned()),
            other => Err(LuaError::BadResult {
                hook: HOOK,
                problem: format!("expected a signal name, got a {}", other.type_name()),
            }),
        }
    }

    /// The account the site names for a service (`NAME[:GROUP]`), if any.
    pub fn service_account(&self, context: &ServiceContext) -> Result<Option<String>, LuaError> {
        const HOOK: &str = "service_account";
        let ctx = self.context_table(context)?;
        match self.call_hook::<Value>(HOOK, ctx)? {
            Value::Nil => Ok(None),
            Value::String(name) => {
                let name = name.to_str()?.to_owned();
                if name.is_empty() || name.chars().any(char::is_control) {
                    return Err(LuaError::BadResult {
                        hook: HOOK,
                        problem: format!("`{}` is not NAME or NAME:GROUP", name.escape_debug()),
                    });
                }
                Ok(Some(name))
            }
            other => Err(LuaError::BadResult {
                hook: HOOK,
                problem: format!(
                    "expected \"NAME[:GROUP]\" or nil, got a {}",
                    other.type_name()
                ),
            }),
        }
    }

    /// The site's readiness check for a service (`tcp:…`, `http:…`,
    /// `exec:…`), or `None` to leave it to the package.
    pub fn ready(&self, context: &ServiceContext) -> Result<Option<String>, LuaError> {
        const HOOK: &str = "ready";
        let ctx = self.context_table(context)?;
        match self.call_hook::<Value>(HOOK, ctx)? {
            Value::Nil => Ok(None),
            Value::String(check) => Ok(Some(check.to_str()?.to_owned())),
            other => Err(LuaError::BadResult {
                hook: HOOK,
                problem: format!(
                    "expected a check string or nil, got a {}",
                    other.type_name()
                ),
            }),
        }
    }

    /// The runtime dir of a service, relative to the runtime root.
    pub fn runtime_path(&self, service: &ServiceCoordinate) -> Result<String, LuaError> {
        let table = self.lua.create_table()?;
        table.set("instance", service.instance.as_str())?;
        table.set("service", service.service.as_str())?;
        table.set("user", service.user.as_str())?;
        table.set("cell", service.cell.as_str())?;
        table.set("coordinate", service.to_string())?;
        let path: Value = self.call_hook("runtime_path", table)?;
        relative_path("runtime_path", "result", path)
    }

    /// Evaluates `install_path` and `repository_paths` for a coordinate.
    pub fn layout(&self, coordinate: &PackageCoordinate) -> Result<PackageLayout, LuaError> {
        let pkg = self.package_table(coordinate)?;
        let install: Value = self.call_hook("install_path", pkg.clone())?;
        let install_path = relative_path("install_path", "result", install)?;
        if install_path.split('/').next() == Some(".copkg") {
            return Err(LuaError::BadResult {
                hook: "install_path",
                problem: "`.copkg` at the top of the software root is copkg's own".to_owned(),
            });
        }
        if install_path
            .split('/')
            .any(|name| name == crate::store::MOUNT_TEMP_DIR)
        {
            return Err(LuaError::BadResult {
                hook: "install_path",
                problem: format!(
                    "`{}` is copkg's own (temp dirs at the top of a mount)",
                    crate::store::MOUNT_TEMP_DIR
                ),
            });
        }
        let paths: Value = self.call_hook("repository_paths", pkg)?;
        let Value::Table(paths) = paths else {
            return Err(LuaError::BadResult {
                hook: "repository_paths",
                problem: format!(
                    "expected a table {{archive=, sha256=, zip=}}, got a {}",
                    paths.type_name()
                ),
            });
        };
        let mut archive = None;
        let mut sha256 = None;
        let mut zip = None;
        for pair in paths.pairs::<Value, Value>() {
            let (key, value) = pair?;
            let key = match &key {
                Value::String(s) => s.to_str()?.to_owned(),
                other => other.type_name().to_owned(),
            };
            match key.as_str() {
                "archive" => archive = Some(relative_path("repository_paths", "archive", value)?),
                "sha256" => sha256 = Some(relative_path("repository_paths", "sha256", value)?),
                "zip" => zip = Some(relative_path("repository_paths", "zip", value)?),
                _ => {
                    return Err(LuaError::BadResult {
                        hook: "repository_paths",
                        problem: format!("unknown field `{key}`"),
                    });
                }
            }
        }
        let missing = |field: &str| LuaError::BadResult {
            hook: "repository_paths",
            problem: format!("field `{field}` is missing"),
        };
        Ok(PackageLayout {
            install_path,
            archive: archive.ok_or_else(|| missing("archive"))?,
            sha256: sha256.ok_or_else(|| missing("sha256"))?,
            zip,
        })
    }
}

impl SitePolicy for Policy<'_> {
    fn runtime_path(&self, service: &ServiceCoordinate) -> Result<String, PolicyError> {
        Policy::runtime_path(self, service).map_err(PolicyError::new)
    }

    fn layout(&self, package: &PackageCoordinate) -> Result<PackageLayout, PolicyError> {
        Policy::layout(self, package).map_err(PolicyError::new)
    }

    fn lifecycle_hook(
        &self,
        hook: LifecycleHook,
        context: &ServiceContext,
    ) -> Result<(), PolicyError> {
        self.lifecycle(hook, context).map_err(PolicyError::new)
    }

    fn clean_logs(
        &self,
        context: &ServiceContext,
        options: &LogCleanupOptions,
        account: Option<&Account>,
    ) -> Result<LogCleanup, PolicyError> {
        match account {
            Some(account) => super::child::clean_logs_as(self.lua, account, context, options),
            None => Policy::clean_logs(self, context, options),
        }
        .map_err(PolicyError::new)
    }

    fn reload_signal(&self, context: &ServiceContext) -> Result<String, PolicyError> {
        Policy::reload_signal(self, context).map_err(PolicyError::new)
    }

    fn ready(&self, context: &ServiceContext) -> Result<Option<String>, PolicyError> {
        Policy::ready(self, context).map_err(PolicyError::new)
    }

    fn service_account(&self, context: &ServiceContext) -> Result<Option<String>, PolicyError> {
        Policy::service_account(self, context).map_err(PolicyError::new)
    }

    fn declared_settings(
        &self,
        script: &std::path::Path,
        context: &ServiceContext,
        account: &Account,
    ) -> Result<ServiceSettings, PolicyError> {
        super::child::declared_settings_as(self.lua, account, script, context)
            .map_err(PolicyError::new)
    }

    fn service_settings(
        &self,
        context: &ServiceContext,
        declared: &ServiceSettings,
    ) -> Result<ServiceSettings, PolicyError> {
        Policy::service_settings(self, context, declared).map_err(PolicyError::new)
    }

    fn site_defines(&self, hook: &str) -> bool {
        Policy::site_defines(self, hook)
    }

    fn run_package_script(
        &self,
        script: &std::path::Path,
        context: &ServiceContext,
        account: &Account,
    ) -> Result<PackageScriptRan, PolicyError> {
        super::child::run_package_script_as(self.lua, account, script, context)
            .map_err(PolicyError::new)
    }
}

/// A hook's path result: a non-empty relative `/`-separated path with no
/// empty, `.` or `..` components and no control characters.
fn relative_path(hook: &'static str, field: &str, value: Value) -> Result<String, LuaError> {
    let bad = |problem: String| LuaError::BadResult { hook, problem };
    let Value::String(text) = value else {
        return Err(bad(format!(
            "`{field}` must be a string, got a {}",
            value.type_name()
        )));
    };
    let text = text
        .to_str()
        .map_err(|_| bad(format!("`{field}` is not UTF-8")))?
        .to_owned();
    if text.starts_with('/') {
        return Err(bad(format!("`{field}` = `{text}` must be relative")));
    }
    if text.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad(format!(
            "`{field}` = `{}` holds a control character or backslash",
            text.escape_debug()
        )));
    }
    if text
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad(format!(
            "`{field}` = `{text}` must not have empty, `.` or `..` components"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use crate::exit::Coded;
    use crate::lua::Host;
    use std::io::Write;

    fn coordinate() -> crate::coordinate::PackageCoordinate {
        "com.comoyo:id-cassandra:2.1.1".parse().unwrap()
    }

    fn site(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn every_registered_function_is_annotated() {
        let annotations = include_str!("../../lua/copkg.d.lua");
        let annotated: Vec<String> = annotations
            .lines()
            .filter_map(|l| l.strip_prefix("function copkg."))
            .filter_map(|l| l.split('(').next())
            .map(str::to_owned)
            .collect();
        let host = Host::new(None).unwrap();
        let registered = host.module_functions().unwrap();
        assert!(registered.len() >= 8, "{registered:?}");
        for name in &registered {
            assert!(
                annotated.contains(name),
                "copkg.{name} is registered but not in lua/copkg.d.lua"
            );
        }
        for name in &annotated {
            assert!(
                registered.contains(name),
                "lua/copkg.d.lua annotates copkg.{name}, which is not registered"
            );
        }
        let docs = include_str!("../../docs/lua-api.md");
        for name in registered.iter().filter(|n| !n.starts_with("try_")) {
            let documented = docs.contains(&format!("`copkg.{name}("))
                || docs.contains(&format!("`copkg.{name}{{"));
            assert!(documented, "docs/lua-api.md does not document copkg.{name}");
        }
        let site_docs = include_str!("../../docs/site-policy.md");
        for hook in super::HOOKS {
            assert!(
                site_docs
                    .lines()
                    .any(|l| l.starts_with("### ") && l.contains(&format!("`{hook}("))),
                "docs/site-policy.md does not document the {hook} hook"
            );
        }
    }

    #[test]
    fn default_layout_is_maven_like() {
        let host = Host::new(None).unwrap();
        let layout = host.policy().layout(&coordinate()).unwrap();
        assert_eq!(layout.install_path, "com/comoyo/id-cassandra/2.1.1");
        assert_eq!(
            layout.archive,
            "com/comoyo/id-cassandra/2.1.1/id-cassandra-2.1.1-copkg.tar.gz"
        );
        assert_eq!(layout.sha256, format!("{}.sha256", layout.archive));
        assert_eq!(
            layout.zip.as_deref(),
            Some("com/comoyo/id-cassandra/2.1.1/id-cassandra-2.1.1-copkg.zip")
        );
        assert_eq!(
            layout.zip_sha256().as_deref(),
            Some("com/comoyo/id-cassandra/2.1.1/id-cassandra-2.1.1-copkg.zip.sha256")
        );
        assert!(host.overridden().is_empty());
    }

    #[test]
    fn a_site_without_a_zip_field_has_no_zip() {
        let file = site(
            r#"
            return {
              repository_paths = function(pkg)
                return { archive = "a.tgz", sha256 = "a.tgz.sha256" }
              end,
            }"#,
        );
        let host = Host::new(Some(file.path())).unwrap();
        let layout = host.policy().layout(&coordinate()).unwrap();
        assert_eq!(layout.zip, None);
        assert_eq!(layout.zip_sha256(), None);
    }

    #[test]
    fn site_overrides_one_hook_and_reuses_defaults() {
        let file = site(
            r#"
            local default = require("copkg.policy")
            return {
              install_path = function(pkg)
                return "pkgs/" .. default.install_path(pkg)
              end,
            }"#,
        );
        let host = Host::new(Some(file.path())).unwrap();
        let layout = host.policy().layout(&coordinate()).unwrap();
        assert_eq!(layout.install_path, "pkgs/com/comoyo/id-cassandra/2.1.1");
        assert_eq!(host.overridden(), ["install_path"]);
    }

    #[test]
    fn bad_hook_results_are_refused_naming_hook_and_field() {
        let cases = [
            (
                "install_path = function() return 42 end",
                "hook `install_path` returned an invalid result: `result` must be a string, got a integer",
            ),
            (
                "install_path = function() return '../../etc' end",
                "hook `install_path` returned an invalid result: `result` = `../../etc` must not have empty, `.` or `..` components",
            ),
            (
                "install_path = function() return '/abs' end",
                "hook `install_path` returned an invalid result: `result` = `/abs` must be relative",
            ),
            (
                "install_path = function() return '.copkg/x' end",
                "hook `install_path` returned an invalid result: `.copkg` at the top of the software root is copkg's own",
            ),
            (
                "install_path = function() return 'mnt/.copkg-tmp/x' end",
                "hook `install_path` returned an invalid result: `.copkg-tmp` is copkg's own (temp dirs at the top of a mount)",
            ),
            (
                "repository_paths = function() return {archive='a', sha256='b', url='c'} end",
                "hook `repository_paths` returned an invalid result: unknown field `url`",
            ),
            (
                "repository_paths = function() return {archive='a'} end",
                "hook `repository_paths` returned an invalid result: field `sha256` is missing",
            ),
            (
                "repository_paths = function() return 'a' end",
                "hook `repository_paths` returned an invalid result: expected a table {archive=, sha256=, zip=}, got a string",
            ),
            (
                "repository_paths = function() return {archive='a', sha256='b', zip='/abs.zip'} end",
                "hook `repository_paths` returned an invalid result: `zip` = `/abs.zip` must be relative",
            ),
            (
                "repository_paths = function() return {archive='a', sha256='b', zip=false} end",
                "hook `repository_paths` returned an invalid result: `zip` must be a string, got a boolean",
            ),
            (
                "repository_paths = function() return {archive='a/../../b', sha256='x'} end",
                "hook `repository_paths` returned an invalid result: `archive` = `a/../../b` must not have empty, `.` or `..` components",
            ),
        ];
        for (hooks, want) in cases {
            let file = site(&format!("return {{ {hooks} }}"));
            let host = Host::new(Some(file.path())).unwrap();
            let err = host.policy().layout(&coordinate()).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn site_errors_name_file_and_line() {
        let file =
            site("return {\n  install_path = function(pkg)\n    return pkg.nope.x\n  end,\n}\n");
        let host = Host::new(Some(file.path())).unwrap();
        let err = host.policy().layout(&coordinate()).unwrap_err().to_string();
        let want = format!(
            "{}:3: attempt to index a nil value (field 'nope')",
            file.path().display()
        );
        assert!(err.starts_with(&want), "{err}");

        let file = site("return {\n  install_path = function(pkg\n}\n");
        let err = Host::new(Some(file.path())).err().unwrap();
        assert_eq!(err.exit_code(), crate::exit::ExitCode::Usage);
        let err = err.to_string();
        assert!(
            err.starts_with(&format!(
                "site script refused: {}:3:",
                file.path().display()
            )),
            "{err}"
        );

        let file = site("return { instal_path = function() end }");
        let err = Host::new(Some(file.path())).err().unwrap().to_string();
        assert!(err.contains("unknown hook `instal_path`"), "{err}");
    }
}
