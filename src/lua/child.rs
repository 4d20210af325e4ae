//! Lua hooks run as a service's account. copkg re-executes itself
//! (`copkg __lua-hook`) as the account, with a clean environment; the site
//! script's source and the hook's arguments go in on stdin as JSON, and
//! only the checked result comes back. No Lua runs in a forked copy of
//! copkg, and nothing the hook does has more than the account's rights.

use std::path::PathBuf;
use std::time::Duration;

use mlua::Lua;
use serde::{Deserialize, Serialize};

use super::{Host, LuaError, read_script};
use crate::account::Account;
use crate::lifecycle::{LogCleanup, LogCleanupOptions, ServiceContext};
use crate::platform::Platform;
use crate::service::{CapturedRun, run_captured};

/// How long a hook may run when no settings say otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);
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
struct ContextJson {
    package: Option<String>,
    package_dir: Option<PathBuf>,
    service: String,
    runtime_dir: PathBuf,
    args: Vec<String>,
    open_files: Vec<PathBuf>,
}

/// What the child is asked to do.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookRequest {
    site: Option<SiteSource>,
    context: ContextJson,
    options: LogCleanupOptions,
}

/// What the child answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HookAnswer {
    Done(LogCleanup),
    Failed(String),
}

/// Runs the `clean_logs` hook of the state's policy as `account`.
pub(crate) fn clean_logs_as(
    lua: &Lua,
    account: &Account,
    context: &ServiceContext,
    options: &LogCleanupOptions,
) -> Result<LogCleanup, LuaError> {
    let fail = |message: String| LuaError::Script {
        message: format!("clean_logs as uid {}: {message}", account.uid),
        code: None,
    };
    let request = HookRequest {
        site: lua.app_data_ref::<SiteSource>().map(|s| s.clone()),
        context: ContextJson {
            package: context.package.as_ref().map(|p| p.id()),
            package_dir: context.package_dir.clone(),
            service: context.service.to_string(),
            runtime_dir: context.runtime_dir.clone(),
            args: context.args.clone(),
            open_files: context.open_files.clone(),
        },
        options: *options,
    };
    let stdin = serde_json::to_vec(&request).map_err(|e| fail(e.to_string()))?;
    let program = std::env::current_exe().map_err(|e| fail(format!("cannot find copkg: {e}")))?;
    let timeout = lua
        .app_data_ref::<crate::settings::Settings>()
        .map_or(DEFAULT_TIMEOUT, |s| s.script_timeout);
    let captured = run_captured(&CapturedRun {
        program,
        args: vec!["__lua-hook".into()],
        env: account.environment(),
        cwd: PathBuf::from("/"),
        account: Some(account.clone()),
        stdin,
        timeout,
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
    match answer {
        HookAnswer::Done(done) => Ok(done),
        HookAnswer::Failed(message) => Err(LuaError::Script {
            message,
            code: None,
        }),
    }
}

/// The child's side: reads a request, runs the hook, returns the answer to print.
pub fn serve(input: &[u8]) -> Vec<u8> {
    let answer = match run_request(input) {
        Ok(done) => HookAnswer::Done(done),
        Err(err) => HookAnswer::Failed(err.to_string()),
    };
    serde_json::to_vec(&answer).unwrap_or_default()
}

fn run_request(input: &[u8]) -> Result<LogCleanup, LuaError> {
    let bad = |message: String| LuaError::Script {
        message: format!("invalid hook request: {message}"),
        code: None,
    };
    let request: HookRequest = serde_json::from_slice(input).map_err(|e| bad(e.to_string()))?;
    let host = Host::from_source(request.site)?;
    let context = ServiceContext {
        package: request
            .context
            .package
            .map(|p| p.parse())
            .transpose()
            .map_err(|e| bad(format!("{e}")))?,
        package_dir: request.context.package_dir,
        service: request
            .context
            .service
            .parse()
            .map_err(|e| bad(format!("{e}")))?,
        runtime_dir: request.context.runtime_dir,
        args: request.context.args,
        platform: Platform::current(),
        open_files: request.context.open_files,
    };
    host.policy().clean_logs(&context, &request.options)
}
