//! The embedded Lua 5.4 host: one state per command, the built-in default
//! policy from `lua/`, and the optional site script that overrides its hooks.

mod child;
mod copkg;
mod fs;
mod limits;
mod policy;
mod service;
mod store;

pub use child::{REQUEST_LIMIT, serve as serve_hook};
pub use copkg::Spawned;
pub use policy::{HOOKS, Policy};

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use mlua::{Lua, Table};

use crate::exit::{Coded, ExitCode};

/// The built-in default policy, embedded in the binary.
pub const DEFAULT_POLICY: &str = include_str!("../../lua/policy.lua");
/// Largest Lua source read from a file: a site script, a `copkg run`
/// script, a package's `start.lua`/`stop.lua`. It leaves room in a hook
/// request ([`REQUEST_LIMIT`]), which carries the site script.
pub const SCRIPT_LIMIT: u64 = 4 << 20;

/// Reads a Lua script whole: a regular file of at most [`SCRIPT_LIMIT`]
/// bytes.
fn read_script(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::bounded::read_file(path, SCRIPT_LIMIT)
}

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
    #[error("{message}")]
    Script {
        /// What Lua said, with file, line and traceback.
        message: String,
        /// The exit code of the copkg error that ended the script, when a
        /// `copkg.*` function raised it and the script let it through.
        code: Option<ExitCode>,
    },
    /// The site script was refused at load (it does not parse, fails, or
    /// returns something that is not a table of known hooks).
    #[error("site script refused: {}", crate::exit::one_line(.0.as_ref()))]
    Site(Box<LuaError>),
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
        LuaError::Script {
            message: describe(&err),
            code: None,
        }
    }
}

impl Coded for LuaError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LuaError::Site(_) => ExitCode::Usage,
            LuaError::Script { code, .. } => code.unwrap_or(ExitCode::ScriptFailed),
            LuaError::Read { .. } | LuaError::BadResult { .. } => ExitCode::ScriptFailed,
        }
    }
}

/// The last errors `copkg.*` functions raised into Lua, with their exit
/// codes, so that a script that ends with one ends with its code.
#[derive(Debug, Default)]
struct RaisedCodes(VecDeque<(String, ExitCode)>);

/// How many raised errors are remembered.
const RAISED_KEPT: usize = 32;

/// The error `copkg.FUNCTION` raises for a copkg error, `copkg.FUNCTION:
/// message`, remembered with the error's exit code.
pub(crate) fn raise(
    lua: &Lua,
    function: &str,
    message: impl std::fmt::Display,
    code: ExitCode,
) -> mlua::Error {
    let message = format!("copkg.{function}: {message}");
    if let Some(mut raised) = lua.app_data_mut::<RaisedCodes>() {
        if raised.0.len() == RAISED_KEPT {
            raised.0.pop_front();
        }
        raised.0.push_back((message.clone(), code));
    }
    mlua::Error::RuntimeError(message)
}

/// [`raise`] for an error with its causes on one line.
pub(crate) fn raise_error(lua: &Lua, function: &str, err: &dyn Coded) -> mlua::Error {
    raise(lua, function, crate::exit::one_line(err), err.exit_code())
}

/// A Lua error with the exit code of the copkg error it carries, if any:
/// the newest raised message the final message contains.
fn with_code(lua: &Lua, err: mlua::Error) -> LuaError {
    let message = describe(&err);
    let code = lua.app_data_ref::<RaisedCodes>().and_then(|raised| {
        raised
            .0
            .iter()
            .rev()
            .find(|(text, _)| message.contains(text.as_str()))
            .map(|(_, code)| *code)
    });
    LuaError::Script { message, code }
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
/// Journals a change a script made through a `copkg.*` function, as the
/// commands journal theirs; when the journal cannot be written, the script
/// goes on and one warning goes to stderr.
pub(crate) fn journal(
    settings: &crate::settings::Settings,
    action: &str,
    target: &str,
    outcome: &crate::journal::Outcome,
) {
    let recorder = crate::journal::Recorder::shared(&settings.runtime_root);
    if let Some(failure) = recorder.record(action, target, outcome)
        && settings.verbosity >= crate::settings::Verbosity::Normal
    {
        eprintln!("warning: copkg's journal is not written: {failure}");
    }
}

pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    crate::exit::one_line(err)
}

fn script_error(message: String) -> LuaError {
    LuaError::Script {
        message,
        code: None,
    }
}

/// One Lua state with the policy loaded.
pub struct Host {
    pub(crate) lua: Lua,
    hooks: Table,
    overridden: Vec<String>,
    site: Option<PathBuf>,
}

impl Host {
    /// A state with the default policy, overridden by `site` when given;
    /// a site script that cannot be loaded is refused ([`LuaError::Site`]).
    pub fn new(site: Option<&Path>) -> Result<Self, LuaError> {
        let source = site
            .map(child::SiteSource::read)
            .transpose()
            .map_err(|err| LuaError::Site(Box::new(err)))?;
        Self::from_source(source)
    }

    /// A state with the default policy, overridden by a site script's source.
    pub(crate) fn from_source(site: Option<child::SiteSource>) -> Result<Self, LuaError> {
        Self::load(site).map_err(|err| LuaError::Site(Box::new(err)))
    }

    fn load(site: Option<child::SiteSource>) -> Result<Self, LuaError> {
        let lua = Lua::new();
        lua.set_app_data(RaisedCodes::default());
        copkg::register(&lua)?;
        limits::install(&lua)?;
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
        let path = site.as_ref().map(|s| s.path.clone());
        if let Some(site) = &site {
            let path = &site.path;
            let returned: mlua::Value = lua
                .load(site.source.as_str())
                .set_name(format!("@{}", path.display()))
                .eval()?;
            let table = match returned {
                mlua::Value::Table(table) => table,
                mlua::Value::Nil => lua.create_table()?,
                other => {
                    return Err(script_error(format!(
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
                        return Err(script_error(format!(
                            "{}: hook names must be strings, found a {}",
                            path.display(),
                            other.type_name()
                        )));
                    }
                };
                if !HOOKS.contains(&name.as_str()) {
                    return Err(script_error(format!(
                        "{}: unknown hook `{name}` (known hooks: {})",
                        path.display(),
                        HOOKS.join(", ")
                    )));
                }
                if !matches!(value, mlua::Value::Function(_)) {
                    return Err(script_error(format!(
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
        if let Some(site) = site {
            lua.set_app_data(site);
        }
        Ok(Host {
            lua,
            hooks,
            overridden,
            site: path,
        })
    }

    /// Gives the `copkg` store and service functions the settings they act on.
    pub fn attach_settings(&self, settings: crate::settings::Settings) {
        self.lua.set_app_data(settings);
    }

    /// Runs a script file with `copkg.args` set to `args`; under a time
    /// limit only when `timeout` is given (a top-level script has none).
    pub fn run_script(
        &self,
        path: &Path,
        args: &[String],
        timeout: Option<std::time::Duration>,
    ) -> Result<(), LuaError> {
        let source = read_script(path).map_err(|source| LuaError::Read {
            path: path.to_owned(),
            source,
        })?;
        let module: Table = self.lua.globals().get("copkg")?;
        module.set(
            "args",
            self.lua
                .create_sequence_from(args.iter().map(String::as_str))?,
        )?;
        let run = || {
            self.lua
                .load(source)
                .set_name(format!("@{}", path.display()))
                .exec()
                .map_err(|err| with_code(&self.lua, err))
        };
        match timeout {
            Some(timeout) => {
                limits::limited(&self.lua, path.display().to_string(), Some(timeout), run)
            }
            None => run(),
        }
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
