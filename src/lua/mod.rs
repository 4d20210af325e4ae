//! The embedded Lua 5.4 host: one state per command, the built-in default
//! policy from `lua/`, and the optional site script that overrides its hooks.

mod copkg;
mod fs;
mod policy;
mod service;
mod store;

pub use copkg::{Platform, Spawned};
pub use policy::{HOOKS, LogCleanup, LogCleanupOptions, Policy, ServiceContext};

use std::path::{Path, PathBuf};

use mlua::{Lua, Table};

/// The built-in default policy, embedded in the binary.
pub const DEFAULT_POLICY: &str = include_str!("../../lua/policy.lua");

/// Why Lua code failed.
#[derive(Debug, thiserror::Error)]
pub enum LuaError {
    /// The site script could not be read.
    #[error("cannot read Lua script {}", path.display())]
    Read {
        /// The script.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A script failed to load or run; the message carries file and line.
    #[error("{0}")]
    Script(String),
    /// A hook returned something it may not.
    #[error("hook `{hook}` returned an invalid result: {problem}")]
    BadResult {
        /// The hook.
        hook: &'static str,
        /// What was wrong, naming the field.
        problem: String,
    },
}

impl From<mlua::Error> for LuaError {
    fn from(err: mlua::Error) -> Self {
        LuaError::Script(describe(&err))
    }
}

/// A Lua error as one readable message: the innermost runtime message with
/// its `file:line:` prefix, followed by the traceback when there is one.
fn describe(err: &mlua::Error) -> String {
    match err {
        mlua::Error::CallbackError { traceback, cause } => {
            format!("{}\n{}", describe(cause), traceback)
        }
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// An error and its causes on one line, for messages raised into Lua.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One Lua state with the policy loaded.
pub struct Host {
    pub(crate) lua: Lua,
    hooks: Table,
    overridden: Vec<String>,
    site: Option<PathBuf>,
}

impl Host {
    /// A state with the default policy, overridden by `site` when given.
    pub fn new(site: Option<&Path>) -> Result<Self, LuaError> {
        let lua = Lua::new();
        copkg::register(&lua)?;
        let default: Table = lua
            .load(DEFAULT_POLICY)
            .set_name("@<builtin>/lua/policy.lua")
            .eval()?;
        let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
        loaded.set("copkg.policy", default.clone())?;

        let hooks = lua.create_table()?;
        for pair in default.pairs::<String, mlua::Value>() {
            let (name, value) = pair?;
            hooks.set(name, value)?;
        }
        let mut overridden = Vec::new();
        if let Some(path) = site {
            let source = std::fs::read(path).map_err(|source| LuaError::Read {
                path: path.to_owned(),
                source,
            })?;
            let returned: mlua::Value = lua
                .load(source)
                .set_name(format!("@{}", path.display()))
                .eval()?;
            let table = match returned {
                mlua::Value::Table(table) => table,
                mlua::Value::Nil => lua.create_table()?,
                other => {
                    return Err(LuaError::Script(format!(
                        "{}: a site script must return a table of hooks, not a {}",
                        path.display(),
                        other.type_name()
                    )));
                }
            };
            for pair in table.pairs::<mlua::Value, mlua::Value>() {
                let (key, value) = pair?;
                let name = match &key {
                    mlua::Value::String(s) => s.to_str()?.to_owned(),
                    other => {
                        return Err(LuaError::Script(format!(
                            "{}: hook names must be strings, found a {}",
                            path.display(),
                            other.type_name()
                        )));
                    }
                };
                if !HOOKS.contains(&name.as_str()) {
                    return Err(LuaError::Script(format!(
                        "{}: unknown hook `{name}` (known hooks: {})",
                        path.display(),
                        HOOKS.join(", ")
                    )));
                }
                if !matches!(value, mlua::Value::Function(_)) {
                    return Err(LuaError::Script(format!(
                        "{}: hook `{name}` must be a function, not a {}",
                        path.display(),
                        value.type_name()
                    )));
                }
                hooks.set(name.as_str(), value)?;
                overridden.push(name);
            }
            overridden.sort();
        }
        policy::register_binary(&lua, &hooks)?;
        lua.set_app_data(store::Hooks(hooks.clone()));
        Ok(Host {
            lua,
            hooks,
            overridden,
            site: site.map(Path::to_owned),
        })
    }

    /// Gives the `copkg` store and service functions the settings they act on.
    pub fn attach_settings(&self, settings: crate::settings::Settings) {
        self.lua.set_app_data(settings);
    }

    /// Runs a script file with `copkg.args` set to `args`.
    pub fn run_script(&self, path: &Path, args: &[String]) -> Result<(), LuaError> {
        let source = std::fs::read(path).map_err(|source| LuaError::Read {
            path: path.to_owned(),
            source,
        })?;
        let module: Table = self.lua.globals().get("copkg")?;
        module.set(
            "args",
            self.lua
                .create_sequence_from(args.iter().map(String::as_str))?,
        )?;
        self.lua
            .load(source)
            .set_name(format!("@{}", path.display()))
            .exec()?;
        Ok(())
    }

    /// Every hook name with whether the site script overrides it, in hook order.
    pub fn hook_sources(&self) -> Vec<(&'static str, bool)> {
        HOOKS
            .iter()
            .map(|&hook| (hook, self.overridden.iter().any(|o| o == hook)))
            .collect()
    }

    /// The hooks the site script overrides, sorted.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    /// The site script, if one is loaded.
    pub fn site(&self) -> Option<&Path> {
        self.site.as_deref()
    }

    /// The policy hooks of this state.
    pub fn policy(&self) -> Policy<'_> {
        Policy::new(&self.lua, &self.hooks)
    }

    /// Names of every function of the `copkg` module, sorted.
    pub fn module_functions(&self) -> Result<Vec<String>, LuaError> {
        let module: Table = self.lua.globals().get("copkg")?;
        let mut names = Vec::new();
        for pair in module.pairs::<String, mlua::Value>() {
            let (name, value) = pair?;
            if matches!(value, mlua::Value::Function(_)) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}
