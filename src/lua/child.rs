//! Lua hooks that act on a service's files, and every package Lua script
//! (start.lua, stop.lua, reload.lua), run as the service's account. copkg
//! re-executes itself (`copkg __lua-hook`) as the account, with a clean
//! environment and the caller's Lua limits; the site script's source, the
//! package script's and the arguments go in on stdin as JSON, and only a
//! result the caller checks comes back. No Lua runs in a forked copy of
//! copkg, and nothing the hook does has more than the account's rights.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mlua::Lua;
use serde::{Deserialize, Serialize};

use super::limits::CallLimits;
use super::{Host, LuaError, read_script};
use crate::account::Account;
use crate::lifecycle::{
    LogCleanup, LogCleanupOptions, LogContext, PackageScriptRan, ScriptValue, ServiceContext,
};
use crate::platform::Platform;
use crate::service::{CapturedRun, Launch, run_captured};
use crate::state::RecordedProcess;

/// How long past its own limit a hook process may run before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(5);
/// Largest answer read from the child.
const ANSWER_LIMIT: usize = 1 << 20;
/// Largest request the child reads.
pub const REQUEST_LIMIT: u64 = 16 << 20;

/// The site script a state was loaded with, passed on to child processes
/// (the account may not be able to read the file itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SiteSource {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its source.
    pub source: String,
}

impl SiteSource {
    /// Reads a site script.
    pub fn read(path: &std::path::Path) -> Result<SiteSource, LuaError> {
        let bytes = read_script(path).map_err(|source| LuaError::Read {
            path: path.to_owned(),
            source,
        })?;
        let source = String::from_utf8(bytes).map_err(|_| LuaError::Script {
            message: format!("{}: a site script must be UTF-8", path.display()),
            code: None,
        })?;
        Ok(SiteSource {
            path: path.to_owned(),
            source,
        })
    }
}

/// The service context as it crosses the process boundary.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextJson {
    package: Option<String>,
    package_dir: Option<PathBuf>,
    service: String,
    runtime_dir: PathBuf,
    args: Vec<String>,
    open_files: Vec<PathBuf>,
    #[serde(default)]
    logs: LogContext,
}

impl ContextJson {
    fn from_context(context: &ServiceContext) -> ContextJson {
        ContextJson {
            package: context.package.as_ref().map(|p| p.id()),
            package_dir: context.package_dir.clone(),
            service: context.service.to_string(),
            runtime_dir: context.runtime_dir.clone(),
            args: context.args.clone(),
            open_files: context.open_files.clone(),
            logs: context.logs.clone(),
        }
    }

    fn into_context(self) -> Result<ServiceContext, String> {
        Ok(ServiceContext {
            package: self
                .package
                .map(|p| p.parse())
                .transpose()
                .map_err(|e| format!("{e}"))?,
            package_dir: self.package_dir,
            service: self.service.parse().map_err(|e| format!("{e}"))?,
            runtime_dir: self.runtime_dir,
            args: self.args,
            platform: Platform::current(),
            open_files: self.open_files,
            logs: self.logs,
        })
    }
}

/// What the child is asked to do.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Task {
    /// The policy's `clean_logs` hook.
    CleanLogs(LogCleanupOptions),
    /// A package's Lua script (start.lua, stop.lua, reload.lua), read by copkg.
    PackageScript { path: PathBuf, source: String },
    /// A package's service.lua: the settings it declares, its functions
    /// called with the service context.
    ServiceSettings { path: PathBuf, source: String },
}

/// A request: the site script, the service context, the limits, the task.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookRequest {
    site: Option<SiteSource>,
    context: ContextJson,
    limits: CallLimits,
    /// The environment and limits the service's settings add.
    launch: Launch,
    task: Task,
}

/// What the child answers. Nothing in it is trusted: the parent checks it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HookAnswer {
    CleanedLogs(LogCleanup),
    Ran {
        spawned: Vec<RecordedProcess>,
        returned: ScriptValue,
    },
    Declared(serde_json::Value),
    Failed(String),
}

/// Runs a task in `copkg __lua-hook` as `account` (switching to it when
/// copkg runs as root), with the account's clean environment, inside the
/// cgroup a placing guard names; returns the answer and what it printed.
fn run_child(
    lua: &Lua,
    account: &Account,
    context: &ServiceContext,
    task: Task,
    what: &str,
) -> Result<(HookAnswer, String), LuaError> {
    let fail = |message: String| LuaError::Script {
        message: format!("{what} as uid {}: {message}", account.uid),
        code: None,
    };
    let limits = CallLimits::of(lua);
    let request = HookRequest {
        site: lua.app_data_ref::<SiteSource>().map(|s| s.clone()),
        context: ContextJson::from_context(context),
        limits,
        launch: Launch::current(),
        task,
    };
    let stdin = serde_json::to_vec(&request).map_err(|e| fail(e.to_string()))?;
    let program = std::env::current_exe().map_err(|e| fail(format!("cannot find copkg: {e}")))?;
    let captured = run_captured(&CapturedRun {
        program,
        args: vec!["__lua-hook".into()],
        env: account.environment(),
        cwd: PathBuf::from("/"),
        account: account.needs_switch().then(|| account.clone()),
        stdin,
        // The child ends the script at its own limit, with a clear message;
        // this only catches a child that cannot.
        timeout: limits.timeout + CHILD_GRACE,
        stdout_limit: ANSWER_LIMIT,
    })
    .map_err(|e| fail(crate::exit::one_line(&e)))?;
    let answer: HookAnswer = serde_json::from_slice(&captured.stdout).map_err(|_| {
        fail(format!(
            "the hook process gave no answer (exit {}): {}",
            if captured.success { "0" } else { "non-zero" },
            captured.stderr.trim_end()
        ))
    })?;
    Ok((answer, captured.stderr))
}

fn unexpected(what: &str) -> LuaError {
    LuaError::Script {
        message: format!("{what}: the hook process answered another request"),
        code: None,
    }
}

/// Runs the `clean_logs` hook of the state's policy as `account`.
pub(crate) fn clean_logs_as(
    lua: &Lua,
    account: &Account,
    context: &ServiceContext,
    options: &LogCleanupOptions,
) -> Result<LogCleanup, LuaError> {
    const WHAT: &str = "clean_logs";
    match run_child(lua, account, context, Task::CleanLogs(*options), WHAT)?.0 {
        HookAnswer::CleanedLogs(done) => Ok(done),
        HookAnswer::Failed(message) => Err(LuaError::Script {
            message,
            code: None,
        }),
        HookAnswer::Ran { .. } | HookAnswer::Declared(_) => Err(unexpected(WHAT)),
    }
}

/// Runs a package's Lua script (SPEC §6) in a process of its own, as the
/// service's `account`, under the state's limits: package code never runs
/// in copkg's own state nor with more rights than the service has.
pub(crate) fn run_package_script_as(
    lua: &Lua,
    account: &Account,
    path: &Path,
    context: &ServiceContext,
) -> Result<PackageScriptRan, LuaError> {
    let source = package_source(path)?;
    let what = path.display().to_string();
    let task = Task::PackageScript {
        path: path.to_owned(),
        source,
    };
    let (answer, output) = run_child(lua, account, context, task, &what)?;
    match answer {
        HookAnswer::Ran { spawned, returned } => Ok(PackageScriptRan {
            spawned,
            output,
            returned,
        }),
        HookAnswer::Failed(message) => Err(LuaError::Script {
            message: if output.trim().is_empty() {
                message
            } else {
                format!("{message}\n--- script output ---\n{output}")
            },
            code: None,
        }),
        HookAnswer::CleanedLogs(_) | HookAnswer::Declared(_) => Err(unexpected(&what)),
    }
}

/// Reads the settings a package's `service.lua` declares, in a process of
/// its own as `account` (the service's account is not known yet, so copkg
/// runs it as nobody when it is root): its table, with any function in it
/// called with the service context, as checked settings.
pub(crate) fn declared_settings_as(
    lua: &Lua,
    account: &Account,
    path: &Path,
    context: &ServiceContext,
) -> Result<crate::declared::ServiceSettings, LuaError> {
    let source = package_source(path)?;
    let what = path.display().to_string();
    let task = Task::ServiceSettings {
        path: path.to_owned(),
        source,
    };
    let (answer, output) = run_child(lua, account, context, task, &what)?;
    match answer {
        HookAnswer::Declared(value) => crate::declared::ServiceSettings::from_json(value, &what)
            .map_err(|message| LuaError::Script {
                message,
                code: Some(crate::exit::ExitCode::ScriptFailed),
            }),
        HookAnswer::Failed(message) => Err(LuaError::Script {
            message: if output.trim().is_empty() {
                message
            } else {
                format!("{message}\n--- script output ---\n{output}")
            },
            code: None,
        }),
        HookAnswer::CleanedLogs(_) | HookAnswer::Ran { .. } => Err(unexpected(&what)),
    }
}

/// A package's Lua source, read bounded from a regular file.
fn package_source(path: &Path) -> Result<String, LuaError> {
    let bytes = read_script(path).map_err(|source| LuaError::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| LuaError::Script {
        message: format!("{}: a package script must be UTF-8", path.display()),
        code: None,
    })
}

/// The child's side: reads a request, runs it, returns the answer to print.
pub fn serve(input: &[u8]) -> Vec<u8> {
    let answer = run_request(input).unwrap_or_else(|err| HookAnswer::Failed(err.to_string()));
    serde_json::to_vec(&answer).unwrap_or_default()
}

fn run_request(input: &[u8]) -> Result<HookAnswer, LuaError> {
    let bad = |message: String| LuaError::Script {
        message: format!("invalid hook request: {message}"),
        code: None,
    };
    let request: HookRequest = serde_json::from_slice(input).map_err(|e| bad(e.to_string()))?;
    let host = Host::from_source(request.site)?;
    host.lua.set_app_data(request.limits);
    let _launch = request.launch.start();
    let context = request.context.into_context().map_err(bad)?;
    let policy = host.policy();
    match request.task {
        Task::CleanLogs(options) => policy
            .clean_logs(&context, &options)
            .map(HookAnswer::CleanedLogs),
        Task::ServiceSettings { path, source } => policy
            .declared_settings_source(&path, &source, &context)
            .map(HookAnswer::Declared),
        Task::PackageScript { path, source } => {
            let returned = policy.run_package_source(&path, &source, &context)?;
            Ok(HookAnswer::Ran {
                spawned: policy.spawned(),
                returned,
            })
        }
    }
}
