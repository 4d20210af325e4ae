//! The service lifecycle: start, stop, status, cleanup and log cleanup of
//! service instances, called alike by the commands and by the Lua module.
//! Site policy (runtime paths, package layouts, lifecycle hooks, log
//! cleanup, package Lua scripts) is reached through [`SitePolicy`], which
//! the Lua host implements; this module never imports the commands or the
//! Lua host, and never prints (notices go to a callback).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::account::Account;
use crate::cgroup::{Placing, ServiceCgroup};
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::declared::{SERVICE_LUA, ServiceSettings};
use crate::exit::{Coded, ExitCode};
use crate::platform::Platform;
use crate::ready::ReadyCheck;
use crate::repo::{Fetcher, ProxyError, ProxySettings};
use crate::runtime::{RuntimeDir, RuntimeError};
use crate::service::Launch;
use crate::service::{self, ScriptRun, ServiceError, ServiceState};
use crate::settings::Settings;
use crate::state::{RecordedProcess, STATE_DIR, ServiceRecord, StateDir, StateError};
use crate::store::{PackageLayout, PackageState, StoreError};

mod plan;
pub use plan::{
    Plan, fetch_source, plan_cleanup, plan_restart, plan_start, plan_stop, plan_upgrade,
};

/// How long a stop script's processes get to go away before the signal schedule.
const AFTER_STOP_SCRIPT: Duration = Duration::from_secs(5);

/// An error of the site policy (a hook, a package Lua script), with the
/// exit code its own type decided.
pub struct PolicyError(Box<dyn Coded>);

impl PolicyError {
    /// Wraps a policy implementation's error.
    pub fn new(err: impl Coded) -> Self {
        PolicyError(Box::new(err))
    }
}

impl std::fmt::Debug for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Coded for PolicyError {
    fn exit_code(&self) -> ExitCode {
        self.0.exit_code()
    }
}

/// The lifecycle hooks a site may override, called with the service context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleHook {
    /// Before a start script runs (after the runtime dir is made).
    BeforeStart,
    /// After a service started and was recorded.
    AfterStart,
    /// Before a running service is stopped.
    BeforeStop,
    /// After a service was stopped.
    AfterStop,
    /// Before a runtime dir is removed.
    BeforeCleanup,
    /// Before an upgrade stops the running version (snapshot data/ here).
    BeforeUpgrade,
    /// After an upgraded service is ready.
    AfterUpgrade,
}

impl LifecycleHook {
    /// The hook's name in Lua.
    pub fn name(self) -> &'static str {
        match self {
            LifecycleHook::BeforeStart => "before_start",
            LifecycleHook::AfterStart => "after_start",
            LifecycleHook::BeforeStop => "before_stop",
            LifecycleHook::AfterStop => "after_stop",
            LifecycleHook::BeforeCleanup => "before_cleanup",
            LifecycleHook::BeforeUpgrade => "before_upgrade",
            LifecycleHook::AfterUpgrade => "after_upgrade",
        }
    }
}

/// What lifecycle hooks and package scripts are told about a service.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// The package coordinate (unknown when cleaning up a service copkg has no record of).
    pub package: Option<PackageCoordinate>,
    /// Its install dir.
    pub package_dir: Option<PathBuf>,
    /// The service coordinate.
    pub service: ServiceCoordinate,
    /// Its runtime dir.
    pub runtime_dir: PathBuf,
    /// Arguments for the start script.
    pub args: Vec<String>,
    /// The platform.
    pub platform: Platform,
    /// Files the service's live processes hold open.
    pub open_files: Vec<PathBuf>,
    /// What the log policy needs to rotate files the service keeps open
    /// (filled for `clean_logs` only).
    pub logs: LogContext,
}

/// What the log policy needs to rotate the files a service keeps open.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogContext {
    /// The signal that makes the service reopen its logs (its settings'
    /// `reopen_logs`); none: rotate by copy and truncate.
    pub reopen_signal: Option<String>,
    /// The live processes to send it to (those leading their own process
    /// group, else all), with their start times.
    pub processes: Vec<RecordedProcess>,
    /// The log files its settings declare, relative to the runtime dir.
    pub files: Vec<String>,
}

/// What the `clean_logs` hook did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogCleanup {
    /// Files compressed.
    pub compressed: u64,
    /// Files deleted.
    pub deleted: u64,
    /// Files the service kept open that were rotated.
    #[serde(default)]
    pub rotated: u64,
    /// Bytes left in log/ (and console/, by the default policy).
    pub bytes: u64,
}

/// The options of the `clean_logs` hook as the config file sets them; an
/// option left unset is the hook's to default (see lua/policy.lua).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogCleanupOptions {
    /// Compress plain logs older than this many days.
    pub compress_after_days: Option<f64>,
    /// Delete compressed logs older than this many days.
    pub delete_after_days: Option<f64>,
    /// Keep log/ under this many bytes.
    pub max_bytes: Option<u64>,
}

/// Site policy as the lifecycle needs it. The Lua host implements it with
/// the built-in policy of `lua/policy.lua` and the site script's hooks.
pub trait SitePolicy {
    /// The runtime dir of a service, relative to the runtime root (validated).
    fn runtime_path(&self, service: &ServiceCoordinate) -> Result<String, PolicyError>;
    /// Where a package installs and where it is fetched from.
    fn layout(&self, package: &PackageCoordinate) -> Result<PackageLayout, PolicyError>;
    /// Calls a lifecycle hook; an error aborts the operation.
    fn lifecycle_hook(
        &self,
        hook: LifecycleHook,
        context: &ServiceContext,
    ) -> Result<(), PolicyError>;
    /// Cleans a service's log/ dir; as `account` when given (the dir is
    /// another user's and copkg runs as root), in a process of its own.
    fn clean_logs(
        &self,
        context: &ServiceContext,
        options: &LogCleanupOptions,
        account: Option<&Account>,
    ) -> Result<LogCleanup, PolicyError>;
    /// The signal `reload` sends when the package has no reload script.
    fn reload_signal(&self, context: &ServiceContext) -> Result<String, PolicyError>;
    /// The site's readiness check for a service, if it names one.
    fn ready(&self, context: &ServiceContext) -> Result<Option<String>, PolicyError>;
    /// The account the site names for a service (`NAME[:GROUP]`), if any.
    fn service_account(&self, context: &ServiceContext) -> Result<Option<String>, PolicyError>;
    /// The settings a package's `service.lua` declares, read in a process
    /// of its own as `account` (checked).
    fn declared_settings(
        &self,
        script: &Path,
        context: &ServiceContext,
        account: &Account,
    ) -> Result<ServiceSettings, PolicyError>;
    /// The site's `service_settings` hook: the declared settings as the site
    /// wants them (checked).
    fn service_settings(
        &self,
        context: &ServiceContext,
        declared: &ServiceSettings,
    ) -> Result<ServiceSettings, PolicyError>;
    /// Whether the site script defines `hook` itself.
    fn site_defines(&self, hook: &str) -> bool;
    /// Runs a package's Lua script (start.lua, stop.lua, reload.lua) with
    /// the service context, as `account` in a process of its own (SPEC §6).
    fn run_package_script(
        &self,
        script: &Path,
        context: &ServiceContext,
        account: &Account,
    ) -> Result<PackageScriptRan, PolicyError>;
}

/// What a package's Lua script did, as its process reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageScriptRan {
    /// What it says `copkg.spawn` started: a claim from a process the
    /// service's account controls, checked before anything is recorded.
    pub spawned: Vec<RecordedProcess>,
    /// What it printed (stdout and stderr), its tail.
    pub output: String,
    /// What the script returned (ready.lua says whether the service is ready).
    pub returned: ScriptValue,
}

/// The value a package's Lua script returned, as it crosses back to copkg.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptValue {
    /// Nothing, or nil.
    Nil,
    /// A boolean.
    Boolean(bool),
    /// A string.
    String(String),
    /// Any other value: its Lua type name.
    Other(String),
}

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The runtime dir keeps data of another package.
    #[error("{} keeps the data/ and etc/ of {package} (cleanup --keep-data): start that package on it, or `copkg cleanup {service}` first", dir.display())]
    KeptForOther {
        /// The service.
        service: String,
        /// The package the data belongs to.
        package: String,
        /// The runtime dir.
        dir: PathBuf,
    },
    /// A declared memory limit cannot be enforced here.
    #[error("cannot limit the memory of {service}: {reason}")]
    MemoryLimit {
        /// The service.
        service: String,
        /// Why not.
        reason: String,
    },
    /// A declared open-file limit is above a hard limit copkg cannot raise.
    #[error(
        "cannot give {service} `limits.nofile` = {nofile} open files: the hard limit here is {hard}, and raising it needs root with CAP_SYS_RESOURCE"
    )]
    NofileLimit {
        /// The service.
        service: String,
        /// The declared limit.
        nofile: u64,
        /// The hard limit copkg has.
        hard: u64,
    },
    /// A package's service.lua named root, which only the site may.
    #[error(
        "{package}: script.d/service.lua names root as the account; only the site's service_settings hook or --user may"
    )]
    PackageNamesRoot {
        /// The package.
        package: String,
    },
    /// The account a service is to run as cannot be used.
    #[error("the account {from} names: {source}")]
    Account {
        /// Who named it (`--user`, the `service_account` hook, `defaultUser`).
        from: &'static str,
        /// Why it cannot be used.
        #[source]
        source: crate::account::AccountError,
    },
    /// The package is not installed.
    #[error("{0} is not installed (install it first, or use start --install)")]
    NotInstalled(String),
    /// The package has no start script.
    #[error("{package} has neither script.d/start.lua nor script.d/start.py in {}", dir.display())]
    NoStartScript {
        /// The package.
        package: String,
        /// Its install dir.
        dir: PathBuf,
    },
    /// A site policy hook failed.
    #[error("site policy failed for {what}")]
    Policy {
        /// The service or package it was asked about, or the hook.
        what: String,
        /// The policy's error.
        #[source]
        source: PolicyError,
    },
    /// A lifecycle hook failed (which aborts the operation).
    #[error("hook `{hook}` failed for {service}")]
    Hook {
        /// The hook.
        hook: &'static str,
        /// The service.
        service: String,
        /// The policy's error.
        #[source]
        source: PolicyError,
    },
    /// A package's Lua script failed.
    #[error("{} failed", script.display())]
    PackageScript {
        /// The script.
        script: PathBuf,
        /// The policy's error.
        #[source]
        source: PolicyError,
    },
    /// Installing the package for `start --install` failed.
    #[error("cannot install {package}")]
    Install {
        /// The package.
        package: String,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
    /// The start script or start.lua failed, or left no live process.
    #[error("{service} did not start")]
    StartFailed {
        /// The service.
        service: String,
        /// Why.
        #[source]
        source: Box<LifecycleError>,
    },
    /// The stop script failed.
    #[error("cannot stop {service}")]
    StopFailed {
        /// The service.
        service: String,
        /// Why.
        #[source]
        source: Box<LifecycleError>,
    },
    /// The log cleanup policy failed.
    #[error("cannot clean the logs of {service}")]
    CleanLogs {
        /// The service.
        service: String,
        /// The policy's error.
        #[source]
        source: PolicyError,
    },
    /// The service runs something else than what a start asked for.
    #[error(
        "{service} already runs {package} with arguments {args:?} (pid {}); use `copkg restart` for new arguments or `copkg upgrade` for another package",
        pids.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
    )]
    RunsOther {
        /// The service.
        service: String,
        /// What it runs.
        package: String,
        /// With which arguments.
        args: Vec<String>,
        /// Its live pids.
        pids: Vec<i32>,
    },
    /// The service started but never became ready (and was stopped).
    #[error("{service} did not become ready ({check}): {reason}{}", if console.trim().is_empty() { String::new() } else { format!("; its console ends with:\n{}", console.trim_end()) })]
    NeverReady {
        /// The service.
        service: String,
        /// The check.
        check: String,
        /// What the last attempt found.
        reason: String,
        /// The tail of console/.
        console: String,
    },
    /// An upgrade failed and the old version runs again.
    #[error("upgrade of {service} to {to} failed; rolled back to {back_to}, which runs again")]
    RolledBack {
        /// The service.
        service: String,
        /// The version that failed.
        to: String,
        /// The version that runs again.
        back_to: String,
        /// Why the new version failed.
        #[source]
        source: Box<LifecycleError>,
    },
    /// An upgrade failed and the old version did not come back either.
    #[error(
        "upgrade of {service} to {to} failed ({reason}), and {back_to} did not start again either; the service is stopped"
    )]
    RollbackFailed {
        /// The service.
        service: String,
        /// The version that failed.
        to: String,
        /// The version that did not come back.
        back_to: String,
        /// Why the new version failed.
        reason: String,
        /// Why the old one did not start.
        #[source]
        source: Box<LifecycleError>,
    },
    /// A package cannot be uninstalled while a registered service uses it.
    #[error("{package} is used by {state} service {service}; {}", if *force_helps { "clean it up first, or use --force" } else { "stop it first (--force never removes the package of a running service)" })]
    InUse {
        /// The package.
        package: String,
        /// The first service found using it.
        service: String,
        /// Its state.
        state: String,
        /// Whether `--force` would let the uninstall go on.
        force_helps: bool,
    },
    /// The proxy settings are unusable.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A process operation failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A runtime-dir operation failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// copkg's state dir failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// No service by that name is known here.
    #[error("no such service: {service}{}", suggest(suggestions))]
    NoSuchService {
        /// The name asked for.
        service: String,
        /// Known services with close names.
        suggestions: Vec<String>,
    },
    /// The runtime path the policy gives is not usable.
    #[error("runtime_path of {service} is `{path}`: {reason}")]
    RuntimePath {
        /// The service.
        service: String,
        /// The path the policy gave.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// Two services would share one runtime dir.
    #[error("{service} and {other} both map to the runtime dir {}; give each service its own (runtime_path)", dir.display())]
    SharedRuntimeDir {
        /// The service asked for.
        service: String,
        /// The service recorded there.
        other: String,
        /// The dir.
        dir: PathBuf,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// `enable --after` would make services wait for each other in a loop.
    #[error("{service} cannot start after that: the order would loop ({})", cycle.join(" after "))]
    AfterCycle {
        /// The service being enabled.
        service: String,
        /// The loop, from the service back to it.
        cycle: Vec<String>,
    },
}

impl From<StoreError> for LifecycleError {
    fn from(err: StoreError) -> Self {
        LifecycleError::Store(Box::new(err))
    }
}

impl Coded for LifecycleError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LifecycleError::NotInstalled(_) => ExitCode::NotFound,
            LifecycleError::NoStartScript { .. } => ExitCode::ScriptFailed,
            LifecycleError::InUse { .. }
            | LifecycleError::RunsOther { .. }
            | LifecycleError::KeptForOther { .. } => ExitCode::InUse,
            LifecycleError::NeverReady { .. } => ExitCode::NeverReady,
            LifecycleError::RolledBack { .. } => ExitCode::RolledBack,
            LifecycleError::RollbackFailed { .. } => ExitCode::RollbackFailed,
            LifecycleError::Policy { source, .. }
            | LifecycleError::Hook { source, .. }
            | LifecycleError::PackageScript { source, .. }
            | LifecycleError::CleanLogs { source, .. } => source.exit_code(),
            LifecycleError::Install { source, .. } => source.exit_code(),
            LifecycleError::StartFailed { source, .. }
            | LifecycleError::StopFailed { source, .. } => source.exit_code(),
            LifecycleError::Proxy(source) => source.exit_code(),
            LifecycleError::Service(source) => source.exit_code(),
            LifecycleError::Runtime(source) => source.exit_code(),
            LifecycleError::State(source) => source.exit_code(),
            LifecycleError::NoSuchService { .. } => ExitCode::NoSuchService,
            LifecycleError::RuntimePath { .. }
            | LifecycleError::SharedRuntimeDir { .. }
            | LifecycleError::AfterCycle { .. } => ExitCode::Usage,
            LifecycleError::Store(source) => source.exit_code(),
            LifecycleError::Account { source, .. } => source.exit_code(),
            LifecycleError::PackageNamesRoot { .. }
            | LifecycleError::MemoryLimit { .. }
            | LifecycleError::NofileLimit { .. } => ExitCode::Usage,
        }
    }
}

fn suggest(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!(" (did you mean {one}?)"),
        more => format!(" (did you mean one of {}?)", more.join(", ")),
    }
}

/// Where lifecycle operations send notices (lock waits, what was cleared).
pub type Notify<'a> = &'a dyn Fn(&str);

fn policy_err(what: impl std::fmt::Display) -> impl FnOnce(PolicyError) -> LifecycleError {
    move |source| LifecycleError::Policy {
        what: what.to_string(),
        source,
    }
}

/// Calls a lifecycle hook; its failure names the hook and the service.
fn call_hook(
    policy: &dyn SitePolicy,
    hook: LifecycleHook,
    context: &ServiceContext,
) -> Result<(), LifecycleError> {
    policy
        .lifecycle_hook(hook, context)
        .map_err(|source| LifecycleError::Hook {
            hook: hook.name(),
            service: context.service.to_string(),
            source,
        })
}

fn package_script_err(script: &Path) -> impl FnOnce(PolicyError) -> LifecycleError + '_ {
    move |source| LifecycleError::PackageScript {
        script: script.to_owned(),
        source,
    }
}

pub(crate) fn lock_notice(notify: Notify<'_>, what: String) -> impl FnMut(&Path) + '_ {
    move |lock: &Path| {
        notify(&format!(
            "waiting for another copkg working on {what} (lock {})",
            lock.display()
        ))
    }
}

/// Opens the state dir and takes the lock of `service` (named in notices).
fn lock_service(
    settings: &Settings,
    service: &ServiceCoordinate,
    notify: Notify<'_>,
) -> Result<(StateDir, String, crate::lock::FileLock), LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let what = service.to_string();
    let lock = state.lock(
        &what,
        settings.lock_timeout,
        &mut lock_notice(notify, what.clone()),
    )?;
    Ok((state, what, lock))
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The runtime dir of a service, by the `runtime_path` policy. A path into
/// copkg's state dir is refused.
pub fn runtime_dir(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<RuntimeDir, LifecycleError> {
    let relative = policy.runtime_path(service).map_err(policy_err(service))?;
    if relative.split('/').next() == Some(STATE_DIR) {
        return Err(LifecycleError::RuntimePath {
            service: service.to_string(),
            path: relative,
            reason: format!(
                "`{STATE_DIR}` at the top of the runtime root is copkg's own state dir"
            ),
        });
    }
    Ok(RuntimeDir::new(&settings.runtime_root, &relative))
}

/// A service as copkg knows it: its record and runtime dir.
struct Known {
    runtime: RuntimeDir,
    record: Option<ServiceRecord>,
}

/// Finds a service: by copkg's record (which says where it runs, whatever
/// the policy says now), else where the policy puts its runtime dir. A
/// service with neither is no such service.
fn find(
    settings: &Settings,
    state: &StateDir,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<Known, LifecycleError> {
    let name = service.to_string();
    let record = state.read(&name)?;
    let runtime = match &record {
        Some(record) => RuntimeDir::new(&settings.runtime_root, &record.runtime_path),
        None => runtime_dir(settings, policy, service)?,
    };
    if record.is_none() {
        if !runtime.exists() {
            return Err(no_such_service(state, name));
        }
        // A dir copkg has another service's record for is that service's.
        ensure_own_runtime_dir(state, &name, &runtime)?;
    }
    Ok(Known { runtime, record })
}

/// The runtime dir of a registered service, from its record (the site
/// script is not needed): for `copkg logs`.
pub fn recorded_runtime(
    settings: &Settings,
    service: &ServiceCoordinate,
) -> Result<RuntimeDir, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let name = service.to_string();
    match state.read(&name)? {
        Some(record) => Ok(RuntimeDir::new(
            &settings.runtime_root,
            &record.runtime_path,
        )),
        None => Err(no_such_service(&state, name)),
    }
}

/// "No such service", with the known names closest to the one asked for.
pub(crate) fn no_such_service(state: &StateDir, service: String) -> LifecycleError {
    let mut close: Vec<(usize, String)> = state
        .services()
        .unwrap_or_default()
        .into_iter()
        .map(|known| (edit_distance(&service, &known), known))
        .filter(|(distance, _)| *distance <= 3)
        .collect();
    close.sort();
    LifecycleError::NoSuchService {
        service,
        suggestions: close.into_iter().take(3).map(|(_, name)| name).collect(),
    }
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Refuses a runtime dir that is, contains or lies inside another
/// recorded service's (G6): one service could then stop or clean up the other.
fn ensure_own_runtime_dir(
    state: &StateDir,
    service: &str,
    runtime: &RuntimeDir,
) -> Result<(), LifecycleError> {
    let mine = runtime.relative();
    for other in state.services()? {
        if other == service {
            continue;
        }
        let Ok(Some(record)) = state.read(&other) else {
            continue;
        };
        let theirs = record.runtime_path.as_str();
        let nested = |outer: &str, inner: &str| {
            inner.len() > outer.len()
                && inner.starts_with(outer)
                && inner.as_bytes()[outer.len()] == b'/'
        };
        if theirs == mine || nested(theirs, mine) || nested(mine, theirs) {
            return Err(LifecycleError::SharedRuntimeDir {
                service: service.to_owned(),
                other,
                dir: runtime.path().to_owned(),
            });
        }
    }
    Ok(())
}

/// The service context hooks and scripts get, from copkg's record where there is one.
fn context_from_record(
    service: &ServiceCoordinate,
    runtime: &RuntimeDir,
    record: Option<&ServiceRecord>,
) -> ServiceContext {
    ServiceContext {
        package: record.and_then(|r| r.package.parse().ok()),
        package_dir: record.map(|r| r.package_dir.clone()),
        service: service.clone(),
        runtime_dir: runtime.path().to_owned(),
        args: record.map(|r| r.args.clone()).unwrap_or_default(),
        platform: Platform::current(),
        open_files: Vec::new(),
        logs: LogContext::default(),
    }
}

/// The environment a start or stop script gets, besides copkg's own.
pub fn script_env(context: &ServiceContext) -> Vec<(OsString, OsString)> {
    let mut env = vec![
        (
            "COPKG_RUNTIME_DIR".into(),
            context.runtime_dir.clone().into_os_string(),
        ),
        (
            "COPKG_COORDINATE".into(),
            context.service.to_string().into(),
        ),
        ("COPKG_PLATFORM".into(), context.platform.tag().into()),
    ];
    if let Some(package) = &context.package {
        env.push(("COPKG_PACKAGE".into(), package.id().into()));
    }
    if let Some(dir) = &context.package_dir {
        env.push(("COPKG_PACKAGE_DIR".into(), dir.clone().into_os_string()));
    }
    env
}

/// How to run a package's Python script: directly when it is executable
/// (its shebang decides), else with python3.
pub fn script_command(script: &Path, args: Vec<OsString>) -> (PathBuf, Vec<OsString>) {
    let executable = std::fs::metadata(script).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    if executable {
        (script.to_owned(), args)
    } else {
        let mut all = vec![script.as_os_str().to_owned()];
        all.extend(args);
        (PathBuf::from("python3"), all)
    }
}

/// Runs a package's Python script (start.py, stop.py, reload.py) by the
/// contract: in the runtime dir, with the contract's environment, bounded
/// in time and kept output; returns what it printed.
fn run_package_py(
    settings: &Settings,
    runtime: &RuntimeDir,
    context: &ServiceContext,
    script: &Path,
    args: Vec<OsString>,
) -> Result<String, ServiceError> {
    let (program, args) = script_command(script, args);
    service::run_script(&ScriptRun {
        program,
        args,
        env: script_env(context),
        cwd: runtime.path().to_owned(),
        timeout: settings.script_timeout,
        output_limit: settings.script_output_bytes,
    })
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StartRequest<'a> {
    /// The package.
    pub package: &'a PackageCoordinate,
    /// The service coordinate.
    pub service: &'a ServiceCoordinate,
    /// Arguments for the start script.
    pub args: &'a [String],
    /// Install the package first when it is not installed.
    pub install: bool,
    /// When the service counts as started (else the package's
    /// `script.d/ready.py`, if it has one).
    pub ready: Option<&'a ReadyCheck>,
    /// How long it has to become ready.
    pub ready_timeout: Duration,
    /// The account it runs as, when the caller names one (`--user`); else
    /// the `service_account` hook's, else `defaultUser`, else copkg's own.
    pub account: Option<&'a Account>,
}

/// What [`start`] started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The service coordinate.
    pub service: String,
    /// The package coordinate.
    pub package: String,
    /// The recorded pids.
    pub pids: Vec<i32>,
    /// The runtime dir.
    pub runtime_dir: PathBuf,
    /// Whether it was started (false: the same package with the same
    /// arguments already ran, which is success too).
    pub changed: bool,
    /// What the start script printed (stdout and stderr, in order, its tail).
    pub output: String,
}

/// Starts a service: installs the package when asked, takes the service's
/// lock, makes the runtime dir, runs the hooks and the start script, and
/// records what it started in copkg's state dir.
pub fn start(
    settings: &Settings,
    policy: &dyn SitePolicy,
    request: &StartRequest<'_>,
    notify: Notify<'_>,
) -> Result<Started, LifecycleError> {
    let (state, what, _lock) = lock_service(settings, request.service, notify)?;
    crate::supervise::forget_failures(&state, &what)?;
    start_locked(settings, &state, policy, request, notify)
}

/// [`start`] with the service's lock held.
pub(crate) fn start_locked(
    settings: &Settings,
    state: &StateDir,
    policy: &dyn SitePolicy,
    request: &StartRequest<'_>,
    notify: Notify<'_>,
) -> Result<Started, LifecycleError> {
    let StartRequest {
        package,
        service,
        args,
        install,
        ..
    } = *request;
    let layout = policy.layout(package).map_err(policy_err(package))?;
    let store = settings.store();
    if install {
        let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())?;
        let request = settings.install_request(package, &layout);
        store
            .install(&fetcher, &request, &mut lock_notice(notify, package.id()))
            .map_err(|source| LifecycleError::Install {
                package: package.id(),
                source: Box::new(source),
            })?;
    }
    if !matches!(store.state(&layout)?, PackageState::Installed(_)) {
        return Err(LifecycleError::NotInstalled(package.id()));
    }
    let package_dir = store.install_dir(&layout);
    let runtime = runtime_dir(settings, policy, service)?;

    let what = service.to_string();
    ensure_own_runtime_dir(state, &what, &runtime)?;
    // Data kept by `cleanup --keep-data` is its package's: any version of
    // it may start on it again, another package may not.
    let kept = state.kept(&what)?;
    if let Some(kept) = &kept {
        let artifact = |id: &str| id.rsplit_once(':').map(|(ga, _)| ga.to_owned());
        if artifact(&kept.package) != artifact(&package.id()) {
            return Err(LifecycleError::KeptForOther {
                service: what,
                package: kept.package.clone(),
                dir: runtime.path().to_owned(),
            });
        }
    }
    let record = state.read(&what)?;
    if let ServiceState::Running { pids } = service::status(record.as_ref(), &runtime) {
        let record = record.expect("a running service has a record");
        // The same start again is a no-op; anything else is refused.
        if record.package == package.id() && record.args == args {
            return Ok(Started {
                service: what,
                package: record.package,
                pids,
                runtime_dir: runtime.path().to_owned(),
                changed: false,
                output: String::new(),
            });
        }
        return Err(LifecycleError::RunsOther {
            service: what,
            package: record.package,
            args: record.args,
            pids,
        });
    }
    // What outlived a crashed start's main processes (an nginx master's
    // workers, holding its port) ends before the service starts again.
    if let Some(record) = &record {
        end_leftovers(settings, record, notify);
    }
    let context = ServiceContext {
        package: Some(package.clone()),
        package_dir: Some(package_dir.clone()),
        service: service.clone(),
        runtime_dir: runtime.path().to_owned(),
        args: args.to_vec(),
        platform: Platform::current(),
        open_files: Vec::new(),
        logs: LogContext::default(),
    };
    let service_settings = settings_for(policy, &context)?;
    let account = service_account(
        settings,
        policy,
        request,
        &context,
        &service_settings,
        notify,
    )?;
    // A declared open-file limit copkg cannot give is refused up front, not
    // found out as a failed exec.
    if let Some(nofile) = service_settings.limits.nofile
        && let Err(hard) = service::allow_nofile(nofile)
    {
        return Err(LifecycleError::NofileLimit {
            service: what,
            nofile,
            hard,
        });
    }
    runtime.prepare()?;
    let account = account.filter(Account::needs_switch);
    if let Some(account) = &account {
        runtime.give_to(account.uid, account.gid)?;
    }
    // Scripts, spawns and readiness checks run as the service's account.
    let _run_as = crate::account::RunAs::start(account.clone());
    let _launch = Launch::of(&service_settings).start();
    call_hook(policy, LifecycleHook::BeforeStart, &context)?;
    runtime.clear_pidfile()?;

    // Every process the start launches joins the service's cgroup, where
    // copkg may make one; the record says a start is under way before
    // anything runs, so that a copkg killed meanwhile leaves nothing the
    // next command cannot find.
    let cgroup = ServiceCgroup::for_service(state.path(), &what)
        .filter(|_| settings.service_cgroups)
        .filter(|cg| cg.create().is_ok());
    // A declared memory limit goes through the cgroup, or the start is refused.
    let limited = match (service_settings.limits.memory, &cgroup) {
        (Some(bytes), Some(cg)) => cg.limit_memory(bytes).map_err(|e| e.to_string()),
        (Some(_), None) => Err(
            "it needs a cgroup of the service's own (copkg as root, serviceCgroups on)".to_owned(),
        ),
        (None, Some(cg)) => {
            cg.clear_memory_limit();
            Ok(())
        }
        (None, None) => Ok(()),
    };
    if let Err(reason) = limited {
        if let Some(cg) = &cgroup {
            cg.remove();
        }
        return Err(LifecycleError::MemoryLimit {
            service: what,
            reason,
        });
    }
    let mut record = ServiceRecord {
        service: what.clone(),
        runtime_path: runtime.relative().to_owned(),
        package: package.id(),
        package_dir,
        args: args.to_vec(),
        started_at: now(),
        processes: Vec::new(),
        main: Vec::new(),
        stopped_at: None,
        cgroup: cgroup.as_ref().map(|cg| cg.path().to_owned()),
        starting: true,
        failed: None,
        account: account.as_ref().map(Account::record),
        settings: service_settings.clone(),
        boot_id: crate::process::boot_id().map(str::to_owned),
    };
    state.write(&record)?;
    let _interrupted = cgroup
        .as_ref()
        .map(|cg| crate::interrupt::Cleanup::kill_cgroup(cg.path()));
    let started = {
        let _placing = match &cgroup {
            Some(cg) => Some(Placing::start(cg).map_err(|source| RuntimeError::Io {
                action: "cannot open the cgroup of",
                path: cg.path().to_owned(),
                source,
            })?),
            None => None,
        };
        // Without a cgroup, copkg becomes a child subreaper while the script
        // runs: whatever it leaves behind, however it detached, is
        // reparented to copkg and found among its descendants.
        let reaper = cgroup.is_none() && nix::sys::prctl::set_child_subreaper(true).is_ok();
        // Interrupted meanwhile: all of it is ended with copkg.
        let _interrupted = reaper.then(crate::interrupt::Cleanup::kill_descendants);
        let result = run_start_script(settings, policy, &runtime, &context);
        let adopted = if reaper {
            let adopted = crate::process::descendants(std::process::id() as i32);
            let _ = nix::sys::prctl::set_child_subreaper(false);
            adopted
        } else {
            Vec::new()
        };
        let left = result.and_then(|(output, spawned)| {
            started_processes(&runtime, cgroup.as_ref(), &output, spawned, &adopted)
                .map(|processes| (processes, output))
        });
        if left.is_err() && cgroup.is_none() {
            // What a failed start left behind is ended: the processes copkg
            // adopted, never a pid the script merely named.
            for (pid, stat) in &adopted {
                let _ = crate::process::signal_exact(
                    *pid,
                    stat.start_time,
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        left
    };
    let (processes, script_output) = match started {
        Ok(processes) => processes,
        Err(source) => {
            // A failed start leaves nothing running and says why.
            if let Some(cg) = &cgroup {
                cg.kill_all(AFTER_STOP_SCRIPT);
                cg.remove();
            }
            let err = LifecycleError::StartFailed {
                service: what.clone(),
                source: Box::new(source),
            };
            record.starting = false;
            return Err(failed_start(state, &mut record, err, notify));
        }
    };
    let (processes, main) = processes;
    record.processes = processes.clone();
    record.main = main;
    record.starting = false;
    if let Err(err) = state.write(&record) {
        // What cannot be recorded (a full disk) is not left running.
        end_everything(settings, &record);
        let err = LifecycleError::StartFailed {
            service: what.clone(),
            source: Box::new(err.into()),
        };
        return Err(failed_start(state, &mut record, err, notify));
    }
    let _interrupted_after = cgroup
        .is_none()
        .then(|| crate::interrupt::Cleanup::kill_processes(processes.clone()));
    // From here on a failure (a hook, readiness) ends everything the start
    // launched, and the record says why.
    let finished = readiness(policy, request, &runtime, &record, &context)
        .and_then(|()| call_hook(policy, LifecycleHook::AfterStart, &context));
    if let Err(err) = finished {
        end_everything(settings, &record);
        return Err(failed_start(state, &mut record, err, notify));
    }
    if kept.is_some() {
        // The kept data is in use again, and the service registered.
        state.forget_kept(&what)?;
    }
    if let Some(main) = main_pid(&processes)
        && let Err(err) = state.write_pid(&what, main)
    {
        notify(&format!(
            "warning: cannot write the pid file of {what}: {}",
            crate::exit::one_line(&err)
        ));
    }
    Ok(Started {
        service: what,
        package: package.id(),
        pids: processes.iter().map(|p| p.pid).collect(),
        runtime_dir: runtime.path().to_owned(),
        changed: true,
        output: script_output,
    })
}

/// The service's main process, for a supervisor's `PIDFile=`: the one
/// started first (a daemon's workers come after it).
fn main_pid(processes: &[RecordedProcess]) -> Option<i32> {
    processes
        .iter()
        .min_by_key(|p| (p.start_time, p.pid))
        .map(|p| p.pid)
}

/// Records a start that failed (what it launched already ended) and returns
/// its error. When even that record cannot be written, the error still is
/// the start's, and the notice says the record is out of date.
fn failed_start(
    state: &StateDir,
    record: &mut ServiceRecord,
    err: LifecycleError,
    notify: Notify<'_>,
) -> LifecycleError {
    record.stopped_at = Some(now());
    record.failed = Some(crate::exit::one_line(&err));
    if let Err(write) = state.write(record) {
        notify(&format!(
            "warning: cannot record that {} failed: {}",
            record.service,
            crate::exit::one_line(&write)
        ));
    }
    err
}

/// How a started service shows it is ready.
enum Readiness {
    /// A check: `--ready`, the site's `ready` hook, or the package's ready.py.
    Check(ReadyCheck),
    /// The package's `script.d/ready.lua`, run as the service's account
    /// until it returns true.
    Lua(PathBuf),
}

/// Waits until the service is ready: by the check asked for, else the
/// site's, else the package's ready.lua or ready.py; none of them: at once.
fn readiness(
    policy: &dyn SitePolicy,
    request: &StartRequest<'_>,
    runtime: &RuntimeDir,
    record: &ServiceRecord,
    context: &ServiceContext,
) -> Result<(), LifecycleError> {
    let what = &record.service;
    let package_dir = &record.package_dir;
    let site_check = match request.ready {
        Some(_) => None,
        None => policy
            .ready(context)
            .map_err(policy_err("ready"))?
            .map(|text| {
                text.parse::<ReadyCheck>()
                    .map_err(|e| LifecycleError::Policy {
                        what: "ready".to_owned(),
                        source: PolicyError::new(e),
                    })
            })
            .transpose()?,
    };
    let ready_lua = package_dir.join("script.d/ready.lua");
    let ready_py = package_dir.join("script.d/ready.py");
    // Declared by the package (or the site's service_settings): checked
    // when the settings were read.
    let declared = record
        .settings
        .ready
        .as_deref()
        .and_then(|text| text.parse::<ReadyCheck>().ok());
    let check = match request.ready.cloned().or(site_check) {
        Some(check) => Readiness::Check(check),
        None if ready_lua.is_file() => Readiness::Lua(ready_lua),
        None if ready_py.is_file() => Readiness::Check(ReadyCheck::Exec(vec![
            ready_py.display().to_string(),
            format!("--runtime-dir={}", runtime.path().display()),
            format!("--coordinate={what}"),
        ])),
        None => match declared {
            Some(check) => Readiness::Check(check),
            None => return Ok(()),
        },
    };
    let alive = || !service::live_processes(record).is_empty();
    let _placing = place_in(record);
    let (shown, waited) = match &check {
        Readiness::Check(check) => (
            check.to_string(),
            check.wait(
                package_dir,
                &script_env(context),
                request.ready_timeout,
                &alive,
            ),
        ),
        Readiness::Lua(script) => {
            let account = crate::account::current();
            let waited = crate::ready::poll(request.ready_timeout, &alive, &mut |_| {
                let ran = policy
                    .run_package_script(script, context, &account)
                    .map_err(|e| crate::exit::one_line(&e))?;
                match ran.returned {
                    ScriptValue::Boolean(true) => Ok(()),
                    ScriptValue::String(why) => Err(why),
                    ScriptValue::Nil | ScriptValue::Boolean(false) => {
                        Err("ready.lua returned false".to_owned())
                    }
                    ScriptValue::Other(kind) => Err(format!(
                        "ready.lua returned a {kind} (it returns true when ready, else false or why not)"
                    )),
                }
            });
            (script.display().to_string(), waited)
        }
    };
    waited
        .map(|_| ())
        .map_err(|reason| LifecycleError::NeverReady {
            service: what.clone(),
            check: shown,
            reason,
            console: runtime.console_tail(4096),
        })
}

/// While it lives, every process copkg starts for the recorded service
/// (stop, reload and readiness scripts, hooks run as its account) joins the
/// service's cgroup, so that nothing the account runs ever leaves it.
fn place_in(record: &ServiceRecord) -> Option<Placing> {
    let cgroup = ServiceCgroup::at(record.cgroup.clone()?);
    Placing::start(&cgroup).ok()
}

/// The account a record says the service runs as (no account recorded:
/// copkg's own user, as it ran).
pub(crate) fn recorded_account(record: &ServiceRecord) -> Account {
    record
        .account
        .as_ref()
        .map_or_else(Account::own, |a| Account::from_ids(a.uid, a.gid))
}

/// Ends every process of a service at once, whatever its stop script would
/// do: a start that failed has nothing worth a graceful stop.
fn end_everything(settings: &Settings, record: &ServiceRecord) {
    match &record.cgroup {
        Some(path) => {
            let cgroup = ServiceCgroup::at(path.clone());
            cgroup.kill_all(AFTER_STOP_SCRIPT);
            cgroup.remove();
        }
        None => {
            let _ = service::stop_by_signals(record, &settings.stop_schedule);
        }
    }
}

/// Ends the processes of a service that is not running (its main processes
/// are gone) but left others behind, saying so.
fn end_leftovers(settings: &Settings, record: &ServiceRecord, notify: Notify<'_>) {
    let left = service::live_processes(record);
    if left.is_empty() {
        return;
    }
    notify(&format!(
        "{}: its main process is gone; ending what it left running (pid {})",
        record.service,
        left.iter()
            .map(|(pid, _)| pid.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    end_everything(settings, record);
}

/// The account a service starts as: the caller's (`--user`, a restart's
/// recorded one), else the `service_account` hook's, else `defaultUser`,
/// else copkg's own (as root, with a warning).
fn service_account(
    settings: &Settings,
    policy: &dyn SitePolicy,
    request: &StartRequest<'_>,
    context: &ServiceContext,
    declared: &ServiceSettings,
    notify: Notify<'_>,
) -> Result<Option<Account>, LifecycleError> {
    if let Some(account) = request.account {
        return Ok(Some(account.clone()));
    }
    // The site's service_settings (when it defines one), else its
    // service_account, else what the package declares.
    let site_settings = policy.site_defines("service_settings");
    let named = if site_settings {
        declared
            .user
            .clone()
            .map(|spec| ("the service_settings hook", spec))
    } else {
        match policy
            .service_account(context)
            .map_err(policy_err("service_account"))?
        {
            Some(spec) => Some(("the service_account hook", spec)),
            None => declared.user.clone().map(|spec| (SERVICE_LUA, spec)),
        }
    };
    let (from, spec) = match named {
        Some(named) => named,
        None => match &settings.default_user {
            Some(spec) => ("defaultUser", spec.clone()),
            None => {
                if nix::unistd::geteuid().is_root() {
                    notify(&format!(
                        "warning: {} runs as root (name an account with --user or defaultUser)",
                        context.service
                    ));
                }
                return Ok(None);
            }
        },
    };
    let account =
        Account::parse(&spec).map_err(|source| LifecycleError::Account { from, source })?;
    if account.uid == 0 && from == SERVICE_LUA {
        return Err(LifecycleError::PackageNamesRoot {
            package: context
                .package
                .as_ref()
                .map(PackageCoordinate::id)
                .unwrap_or_default(),
        });
    }
    Ok(Some(account))
}

/// The settings a service starts with: what its package's `service.lua`
/// declares (read as nobody when copkg is root: the account is not known
/// yet, and the file needs no rights), as the site's `service_settings`
/// hook wants them.
fn settings_for(
    policy: &dyn SitePolicy,
    context: &ServiceContext,
) -> Result<ServiceSettings, LifecycleError> {
    let package_dir = context.package_dir.as_deref().unwrap_or(Path::new("."));
    let script = package_dir.join(SERVICE_LUA);
    let declared = if script.is_file() {
        let reader = if nix::unistd::geteuid().is_root() {
            Account::nobody()
        } else {
            Account::own()
        };
        policy
            .declared_settings(&script, context, &reader)
            .map_err(package_script_err(&script))?
    } else {
        ServiceSettings::default()
    };
    policy
        .service_settings(context, &declared)
        .map_err(policy_err("service_settings"))
}

/// The processes a start left running, and of them the main ones, those
/// `run/start.pid` names. With a cgroup: every process in it, and a pid in
/// `run/start.pid` counts only if it is one of them (a pid file is a hint,
/// never trust: G4). Without: what start.lua spawned, or the live processes
/// the pid file names.
fn started_processes(
    runtime: &RuntimeDir,
    cgroup: Option<&ServiceCgroup>,
    output: &str,
    spawned: Vec<RecordedProcess>,
    adopted: &[(i32, crate::process::ProcStat)],
) -> Result<(Vec<RecordedProcess>, Vec<RecordedProcess>), LifecycleError> {
    let members: Vec<RecordedProcess> = match cgroup {
        Some(cgroup) => cgroup
            .members()
            .into_iter()
            .filter_map(|pid| {
                let stat = crate::process::stat(pid).filter(|s| s.is_alive())?;
                Some(RecordedProcess {
                    pid,
                    start_time: stat.start_time,
                    pgrp: stat.pgrp,
                })
            })
            .collect(),
        // Without a cgroup: what the script left behind (adopted as its
        // subreaper), still alive, start.lua's spawns first. What start.lua
        // says it spawned is a claim from the service's account: a pid
        // counts only if copkg adopted that very process.
        None => {
            let mut members: Vec<RecordedProcess> = spawned
                .into_iter()
                .filter(|p| {
                    adopted
                        .iter()
                        .any(|(pid, stat)| *pid == p.pid && stat.start_time == p.start_time)
                        && crate::process::is_running(p.pid, p.start_time)
                })
                .collect();
            for (pid, stat) in adopted {
                if !members.iter().any(|m| m.pid == *pid)
                    && crate::process::is_running(*pid, stat.start_time)
                {
                    members.push(RecordedProcess {
                        pid: *pid,
                        start_time: stat.start_time,
                        pgrp: stat.pgrp,
                    });
                }
            }
            members
        }
    };
    let console = || {
        let mut text = runtime.console_tail(4096);
        if !output.trim().is_empty() {
            text.push_str(&format!("--- start script output ---\n{output}"));
        }
        text
    };
    let pidfile = runtime.path().join(crate::runtime::PIDFILE);
    // Its owner and mode do not matter here: membership is the proof.
    let hinted = runtime.pidfile_hint()?;
    if let Some(pids) = &hinted
        && let Some(stranger) = pids
            .iter()
            .find(|pid| !members.iter().any(|m| m.pid == **pid))
    {
        let reason = if crate::process::stat(*stranger).is_some_and(|s| s.is_alive()) {
            format!(
                "{} names pid {stranger}, which is not a process the start script started",
                pidfile.display()
            )
        } else {
            format!(
                "{} names no live process (pid {})",
                pidfile.display(),
                pids.iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(ServiceError::NoLiveProcess {
            reason,
            console: console(),
        }
        .into());
    }
    if members.is_empty() {
        return Err(ServiceError::NoLiveProcess {
            reason: format!(
                "the start script exited without writing {} and left no process running",
                pidfile.display()
            ),
            console: console(),
        }
        .into());
    }
    let main = match &hinted {
        Some(pids) => members
            .iter()
            .filter(|m| pids.contains(&m.pid))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    Ok((members, main))
}

/// Runs `start.lua` through the policy, or `start.py` by the contract;
/// returns the script's captured output and the processes start.lua spawned.
fn run_start_script(
    settings: &Settings,
    policy: &dyn SitePolicy,
    runtime: &RuntimeDir,
    context: &ServiceContext,
) -> Result<(String, Vec<RecordedProcess>), LifecycleError> {
    let package_dir = context.package_dir.as_deref().unwrap_or(Path::new("."));
    let start_lua = package_dir.join("script.d/start.lua");
    let start_py = package_dir.join("script.d/start.py");
    if start_lua.is_file() {
        let ran = policy
            .run_package_script(&start_lua, context, &crate::account::current())
            .map_err(package_script_err(&start_lua))?;
        return Ok((ran.output, ran.spawned));
    }
    if start_py.is_file() {
        let mut script_args: Vec<OsString> = vec![
            format!("--runtime-dir={}", runtime.path().display()).into(),
            format!("--coordinate={}", context.service).into(),
        ];
        script_args.extend(context.args.iter().map(OsString::from));
        let output = run_package_py(settings, runtime, context, &start_py, script_args)?;
        return Ok((output, Vec::new()));
    }
    Err(LifecycleError::NoStartScript {
        package: context
            .package
            .as_ref()
            .map(PackageCoordinate::id)
            .unwrap_or_default(),
        dir: package_dir.to_owned(),
    })
}

/// Stops a service: runs its stop script (or signals it by the schedule),
/// never signalling a process whose start time differs from the recorded one.
pub fn stop(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
    notify: Notify<'_>,
) -> Result<Stopped, LifecycleError> {
    let (state, _, _lock) = lock_service(settings, service, notify)?;
    stop_locked(settings, &state, policy, service, notify)
}

/// What [`stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Whether a running service was stopped (false: it was not running,
    /// which is success too, as for `systemctl stop`).
    pub changed: bool,
}

/// [`stop`] with the service's lock held.
fn stop_locked(
    settings: &Settings,
    state: &StateDir,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
    notify: Notify<'_>,
) -> Result<Stopped, LifecycleError> {
    let what = service.to_string();
    let Known { runtime, record } = find(settings, state, policy, service)?;
    let status = service::status(record.as_ref(), &runtime);
    let (ServiceState::Running { .. }, Some(mut record)) = (&status, record.clone()) else {
        // Dead pids are never signalled; copkg clears what they left, and
        // ends what outlived the service's main processes.
        if let Some(record) = &record {
            end_leftovers(settings, record, notify);
        }
        state.remove_pid(&what)?;
        if matches!(status, ServiceState::Crashed | ServiceState::StalePidfile) {
            runtime.clear_pidfile()?;
            if let Some(mut record) = record {
                record.stopped_at.get_or_insert(now());
                state.write(&record)?;
            }
            notify(&format!(
                "{what} was {}; cleared its pid file",
                status.name()
            ));
        }
        return Ok(Stopped { changed: false });
    };
    let context = context_from_record(service, &runtime, Some(&record));
    call_hook(policy, LifecycleHook::BeforeStop, &context)?;
    let _run_as = crate::account::RunAs::start(Some(recorded_account(&record)));
    let _launch = Launch::of(&record.settings).start();
    let _placing = place_in(&record);

    let scripted =
        run_stop_script(settings, policy, &runtime, &record, &context).map_err(|source| {
            LifecycleError::StopFailed {
                service: what.clone(),
                source: Box::new(source),
            }
        })?;
    let gone = scripted && service::wait_until_gone(&record, AFTER_STOP_SCRIPT);
    if !gone {
        if scripted {
            notify(&format!(
                "{what} still runs after its stop script; signalling it"
            ));
        }
        let schedule = record
            .settings
            .stop_schedule()
            .unwrap_or_else(|| settings.stop_schedule.clone());
        match service::stop_by_signals(&record, &schedule) {
            Ok(ended) => {
                let (first, wait) = schedule.first();
                if ended != first {
                    notify(&format!(
                        "{what} did not stop on {} within {} s; it was sent {}",
                        first.as_str(),
                        wait.as_secs_f64(),
                        ended.as_str()
                    ));
                }
            }
            Err(ServiceError::NotRunning { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    if let Some(path) = &record.cgroup {
        // Whatever is still in the cgroup (a process that keeps forking
        // slips past a scan of its members) ends at once, atomically.
        let cgroup = ServiceCgroup::at(path.clone());
        let left = cgroup.members();
        if !left.is_empty() {
            notify(&format!(
                "{what} left {} process(es) running ({}); ended them with cgroup.kill",
                left.len(),
                left.iter()
                    .take(10)
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !cgroup.kill_all(AFTER_STOP_SCRIPT) {
            return Err(ServiceError::StillRunning {
                service: what.clone(),
                schedule: "cgroup.kill".to_owned(),
                pids: cgroup.members(),
            }
            .into());
        }
        cgroup.remove();
    }
    record.stopped_at = Some(now());
    state.write(&record)?;
    state.remove_pid(&what)?;
    runtime.clear_pidfile()?;
    call_hook(policy, LifecycleHook::AfterStop, &context)?;
    Ok(Stopped { changed: true })
}

/// Restarts a service: stops it (when it runs) and starts it again from
/// its recorded package with its recorded arguments, under one hold of its
/// lock, so no other start slips in between.
pub fn restart(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
    ready: (Option<&ReadyCheck>, Duration),
    notify: Notify<'_>,
) -> Result<Started, LifecycleError> {
    let (state, what, _lock) = lock_service(settings, service, notify)?;
    let Some(record) = state.read(&what)? else {
        return Err(no_such_service(&state, what));
    };
    let package: PackageCoordinate = record
        .package
        .parse()
        .map_err(|_| LifecycleError::NotInstalled(record.package.clone()))?;
    crate::supervise::forget_failures(&state, &what)?;
    stop_locked(settings, &state, policy, service, notify)?;
    let account = Some(recorded_account(&record));
    let request = StartRequest {
        package: &package,
        service,
        args: &record.args,
        install: false,
        ready: ready.0,
        ready_timeout: ready.1,
        account: account.as_ref(),
    };
    start_locked(settings, &state, policy, &request, notify)
}

/// What to upgrade.
#[derive(Debug, Clone)]
pub struct UpgradeRequest<'a> {
    /// The service.
    pub service: &'a ServiceCoordinate,
    /// The package to move it to.
    pub package: &'a PackageCoordinate,
    /// New arguments, or `None` for the recorded ones.
    pub args: Option<&'a [String]>,
    /// When a version counts as started.
    pub ready: Option<&'a ReadyCheck>,
    /// How long it has to become ready.
    pub ready_timeout: Duration,
}

/// What [`upgrade`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// The package it ran before.
    pub from: String,
    /// What runs now.
    pub started: Started,
    /// From the start of the stop to the new version being ready.
    pub downtime: Duration,
    /// What was done, in order.
    pub steps: Vec<String>,
}

/// Moves a service to another package: installs it before stopping
/// anything, stops the service, starts the new version (with the recorded
/// arguments, or new ones) and waits for it to be ready; if it fails to
/// start or become ready, ends it, starts the old version again and waits
/// for that, and says it rolled back (exit 12), or that the old version
/// did not come back either (exit 15). data/ and etc/ are the service's
/// and stay; a rollback runs the old version on whatever data the new one
/// left (the `before_upgrade` hook can snapshot it).
pub fn upgrade(
    settings: &Settings,
    policy: &dyn SitePolicy,
    request: &UpgradeRequest<'_>,
    notify: Notify<'_>,
) -> Result<Upgraded, LifecycleError> {
    let service = request.service;
    let state = StateDir::open(&settings.runtime_root)?;
    let what = service.to_string();
    let Some(old) = state.read(&what)? else {
        return Err(no_such_service(&state, what));
    };
    let old_package: PackageCoordinate = old
        .package
        .parse()
        .map_err(|_| LifecycleError::NotInstalled(old.package.clone()))?;
    let mut steps = Vec::new();
    // The new version is installed before anything is stopped.
    let layout = policy
        .layout(request.package)
        .map_err(policy_err(request.package))?;
    let store = settings.store();
    let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())?;
    store
        .install(
            &fetcher,
            &settings.install_request(request.package, &layout),
            &mut lock_notice(notify, request.package.id()),
        )
        .map_err(|source| LifecycleError::Install {
            package: request.package.id(),
            source: Box::new(source),
        })?;
    steps.push(format!("installed {}", request.package.id()));

    let _lock = state.lock(
        &what,
        settings.lock_timeout,
        &mut lock_notice(notify, what.clone()),
    )?;
    let runtime = RuntimeDir::new(&settings.runtime_root, &old.runtime_path);
    let context = context_from_record(service, &runtime, Some(&old));
    call_hook(policy, LifecycleHook::BeforeUpgrade, &context)?;
    let began = Instant::now();
    let stopped = stop_locked(settings, &state, policy, service, notify)?;
    steps.push(format!(
        "stopped {}{}",
        old.package,
        if stopped.changed {
            ""
        } else {
            " (it was not running)"
        }
    ));
    let args = request.args.unwrap_or(&old.args);
    let account = Some(recorded_account(&old));
    let new = StartRequest {
        package: request.package,
        service,
        args,
        install: false,
        ready: request.ready,
        ready_timeout: request.ready_timeout,
        account: account.as_ref(),
    };
    match start_locked(settings, &state, policy, &new, notify) {
        Ok(started) => {
            let downtime = began.elapsed();
            steps.push(format!("started {} and it is ready", request.package.id()));
            let context = context_from_record(service, &runtime, state.read(&what)?.as_ref());
            call_hook(policy, LifecycleHook::AfterUpgrade, &context)?;
            Ok(Upgraded {
                from: old.package,
                started,
                downtime,
                steps,
            })
        }
        Err(failure) => {
            steps.push(format!(
                "{} failed: {}",
                request.package.id(),
                crate::exit::one_line(&failure)
            ));
            let back = StartRequest {
                package: &old_package,
                service,
                args: &old.args,
                install: false,
                ready: request.ready,
                ready_timeout: request.ready_timeout,
                account: account.as_ref(),
            };
            match start_locked(settings, &state, policy, &back, notify) {
                Ok(_) => Err(LifecycleError::RolledBack {
                    service: what,
                    to: request.package.id(),
                    back_to: old.package,
                    source: Box::new(failure),
                }),
                Err(again) => Err(LifecycleError::RollbackFailed {
                    service: what,
                    to: request.package.id(),
                    back_to: old.package,
                    reason: crate::exit::one_line(&failure),
                    source: Box::new(again),
                }),
            }
        }
    }
}

/// How [`reload`] asked the service to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// By the package's reload script.
    Script(PathBuf),
    /// By a signal to its processes.
    Signal(String),
}

/// Asks a running service to reload its configuration: the package's
/// `script.d/reload.lua` or `reload.py --runtime-dir=… --coordinate=…`, run
/// as the service's account, else the signal the `reload_signal` hook names
/// (`HUP` by default) to the processes that lead their own process group
/// (the daemons, not their workers), or to all when none does.
pub fn reload(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
    notify: Notify<'_>,
) -> Result<Reloaded, LifecycleError> {
    let (state, what, _lock) = lock_service(settings, service, notify)?;
    let Known { runtime, record } = find(settings, &state, policy, service)?;
    let Some(record) = record else {
        return Err(ServiceError::NotRunning { service: what }.into());
    };
    if !matches!(
        service::status(Some(&record), &runtime),
        ServiceState::Running { .. }
    ) {
        return Err(ServiceError::NotRunning { service: what }.into());
    }
    let context = context_from_record(service, &runtime, Some(&record));
    let _run_as = crate::account::RunAs::start(Some(recorded_account(&record)));
    let _launch = Launch::of(&record.settings).start();
    let _placing = place_in(&record);
    let reload_lua = record.package_dir.join("script.d/reload.lua");
    let reload_py = record.package_dir.join("script.d/reload.py");
    if reload_lua.is_file() {
        policy
            .run_package_script(&reload_lua, &context, &crate::account::current())
            .map_err(package_script_err(&reload_lua))?;
        return Ok(Reloaded::Script(reload_lua));
    }
    if reload_py.is_file() {
        let args = vec![
            OsString::from(format!("--runtime-dir={}", runtime.path().display())),
            OsString::from(format!("--coordinate={what}")),
        ];
        run_package_py(settings, &runtime, &context, &reload_py, args)?;
        return Ok(Reloaded::Script(reload_py));
    }
    // The signal its settings name, else the site's reload_signal hook's.
    let name = match &record.settings.reload {
        Some(reload) => reload.signal.clone(),
        None => policy
            .reload_signal(&context)
            .map_err(policy_err("reload_signal"))?,
    };
    let signal = service::parse_signal(&name).ok_or_else(|| LifecycleError::Policy {
        what: "reload_signal".to_owned(),
        source: PolicyError::new(ServiceError::Schedule(format!("{name}/0"))),
    })?;
    for process in signal_targets(&record) {
        if let Err(source) = crate::process::signal_exact(process.pid, process.start_time, signal) {
            return Err(ServiceError::Signal {
                pid: process.pid,
                source,
            }
            .into());
        }
    }
    Ok(Reloaded::Signal(name))
}

/// The processes a reload or reopen signal goes to: the live ones that lead
/// their own process group (the daemons, not their workers), or all.
fn signal_targets(record: &ServiceRecord) -> Vec<RecordedProcess> {
    let live: Vec<RecordedProcess> = service::live_processes(record)
        .into_iter()
        .filter_map(|(pid, start_time)| {
            let stat = crate::process::stat(pid)?;
            Some(RecordedProcess {
                pid,
                start_time,
                pgrp: stat.pgrp,
            })
        })
        .collect();
    let leaders: Vec<RecordedProcess> = live.iter().filter(|p| p.pgrp == p.pid).cloned().collect();
    if leaders.is_empty() { live } else { leaders }
}

/// Runs `stop.lua` or `stop.py` when the package has one; whether it did.
fn run_stop_script(
    settings: &Settings,
    policy: &dyn SitePolicy,
    runtime: &RuntimeDir,
    record: &ServiceRecord,
    context: &ServiceContext,
) -> Result<bool, LifecycleError> {
    let stop_lua = record.package_dir.join("script.d/stop.lua");
    let stop_py = record.package_dir.join("script.d/stop.py");
    if stop_lua.is_file() {
        policy
            .run_package_script(&stop_lua, context, &crate::account::current())
            .map_err(package_script_err(&stop_lua))?;
        return Ok(true);
    }
    if stop_py.is_file() {
        let args = vec![OsString::from(format!(
            "--runtime-dir={}",
            runtime.path().display()
        ))];
        run_package_py(settings, runtime, context, &stop_py, args)?;
        return Ok(true);
    }
    Ok(false)
}

/// One service as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The service coordinate.
    pub service: String,
    /// Its state.
    pub state: ServiceState,
    /// The recorded package, if any.
    pub package: Option<String>,
    /// The arguments its start script was last given, when copkg has a
    /// record of it.
    pub args: Option<Vec<String>>,
    /// Its runtime dir.
    pub runtime_dir: PathBuf,
    /// The account it runs as, when copkg has a record of it.
    pub user: Option<String>,
    /// Whether it is enabled, what reconcile restarted, when it last crashed.
    pub supervised: crate::supervise::Supervised,
    /// When it was last started (seconds since the epoch).
    pub started_at: Option<u64>,
    /// The memory its processes use (the cgroup's count, else the sum of
    /// their resident sizes), while it runs.
    pub memory: Option<u64>,
    /// Why its last start failed, when it did.
    pub failed: Option<String>,
}

impl ServiceStatus {
    fn of(
        service: String,
        record: Option<ServiceRecord>,
        runtime: &RuntimeDir,
        state: ServiceState,
        supervised: crate::supervise::Supervised,
    ) -> ServiceStatus {
        let memory = match (&state, &record) {
            (ServiceState::Running { pids }, Some(record)) => memory_of(record, pids),
            _ => None,
        };
        ServiceStatus {
            service,
            state,
            supervised,
            runtime_dir: runtime.path().to_owned(),
            user: record.as_ref().map(user_of),
            started_at: record.as_ref().map(|r| r.started_at),
            failed: record.as_ref().and_then(|r| r.failed.clone()),
            args: record.as_ref().map(|r| r.args.clone()),
            package: record.map(|r| r.package),
            memory,
        }
    }
}

/// The memory a running service uses: its cgroup's count where one
/// accounts for it, else the sum of its processes' resident sizes.
fn memory_of(record: &ServiceRecord, pids: &[i32]) -> Option<u64> {
    if let Some(bytes) = record
        .cgroup
        .as_ref()
        .and_then(|path| ServiceCgroup::at(path.clone()).memory_current())
    {
        return Some(bytes);
    }
    // SAFETY: sysconf only reads a system value.
    let page = u64::try_from(unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) }).ok()?;
    let resident = |pid: &i32| -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        text.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some(pids.iter().filter_map(resident).sum::<u64>() * page)
}

/// The account a record names, for reports: its name, `root`, or its uid.
fn user_of(record: &ServiceRecord) -> String {
    match &record.account {
        Some(a) => Account::from_ids(a.uid, a.gid).display_name(),
        None => Account::own().display_name(),
    }
}

/// The status of one service.
pub fn status(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<ServiceStatus, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let Known { runtime, record } = find(settings, &state, policy, service)?;
    let name = service.to_string();
    let (shown, supervised) = crate::supervise::supervised(
        &state,
        &name,
        service::status(record.as_ref(), &runtime),
        settings,
    )?;
    Ok(ServiceStatus::of(name, record, &runtime, shown, supervised))
}

/// The status of every service in copkg's registry, sorted by name. One
/// unreadable record is reported as such and hides no other service.
pub fn status_all(settings: &Settings) -> Result<Vec<ServiceStatus>, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let groups = service::Groups::snapshot();
    let mut rows = Vec::new();
    for name in state.services()? {
        let read = state.read(&name).and_then(|record| {
            let Some(record) = record else {
                return Ok(None);
            };
            let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
            let base = service::status_in(Some(&record), &runtime, &groups);
            let (shown, supervised) = crate::supervise::supervised(&state, &name, base, settings)?;
            Ok(Some((record, runtime, shown, supervised)))
        });
        rows.push(match read {
            Ok(Some((record, runtime, shown, supervised))) => {
                ServiceStatus::of(name, Some(record), &runtime, shown, supervised)
            }
            Ok(None) => continue,
            Err(err) => ServiceStatus {
                state: ServiceState::BadRecord {
                    reason: crate::exit::one_line(&err),
                },
                runtime_dir: PathBuf::new(),
                package: None,
                args: None,
                user: None,
                supervised: Default::default(),
                started_at: None,
                memory: None,
                failed: None,
                service: name,
            },
        });
    }
    Ok(rows)
}

/// What [`cleanup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// The runtime dir was removed.
    Removed(PathBuf),
    /// All of it but data/ and etc/ was removed; the record of which
    /// package they belong to is kept, and the service is unregistered.
    Kept {
        /// The runtime dir.
        dir: PathBuf,
        /// The package the data belongs to.
        package: String,
    },
    /// There was no runtime dir.
    Absent,
}

/// Removes the runtime dir of a service that is not running, after the
/// `before_cleanup` hook, and copkg's record of it.
pub fn cleanup(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
    keep_data: bool,
    notify: Notify<'_>,
) -> Result<Cleanup, LifecycleError> {
    let (state, what, _lock) = lock_service(settings, service, notify)?;
    // Data kept by an earlier `cleanup --keep-data`, and nothing else of
    // the service: kept again, or removed with the record of it.
    if state.read(&what)?.is_none()
        && let Some(kept) = state.kept(&what)?
    {
        let runtime = RuntimeDir::new(&settings.runtime_root, &kept.runtime_path);
        if keep_data {
            return Ok(Cleanup::Absent);
        }
        runtime.remove()?;
        state.forget_kept(&what)?;
        return Ok(Cleanup::Removed(runtime.path().to_owned()));
    }
    let Known { runtime, record } = match find(settings, &state, policy, service) {
        Ok(known) => known,
        // Only data kept by an earlier `cleanup --keep-data` may be left.
        Err(LifecycleError::NoSuchService { .. }) => match state.kept(&what)? {
            Some(kept) if !keep_data => {
                let runtime = RuntimeDir::new(&settings.runtime_root, &kept.runtime_path);
                runtime.remove()?;
                state.forget_kept(&what)?;
                return Ok(Cleanup::Removed(runtime.path().to_owned()));
            }
            _ => return Ok(Cleanup::Absent),
        },
        Err(err) => return Err(err),
    };
    if let ServiceState::Running { pids } = service::status(record.as_ref(), &runtime) {
        return Err(ServiceError::AlreadyRunning {
            service: what,
            pids,
        }
        .into());
    }
    if let Some(record) = &record {
        end_leftovers(settings, record, notify);
    }
    let context = context_from_record(service, &runtime, record.as_ref());
    call_hook(policy, LifecycleHook::BeforeCleanup, &context)?;
    if let Some(path) = record.as_ref().and_then(|r| r.cgroup.clone()) {
        ServiceCgroup::at(path).remove();
    }
    state.remove_extras(&what)?;
    if keep_data && let Some(record) = &record {
        runtime.remove_all_but(KEPT_DIRS)?;
        state.keep(record)?;
        return Ok(Cleanup::Kept {
            dir: runtime.path().to_owned(),
            package: record.package.clone(),
        });
    }
    if runtime.exists() {
        runtime.remove()?;
    }
    state.remove(&what)?;
    Ok(Cleanup::Removed(runtime.path().to_owned()))
}

/// What `cleanup --keep-data` keeps of a runtime dir.
const KEPT_DIRS: &[&str] = &["data", "etc"];

/// Every service in copkg's registry.
pub fn recorded_services(settings: &Settings) -> Result<Vec<ServiceCoordinate>, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    Ok(state
        .services()?
        .into_iter()
        .filter_map(|name| name.parse().ok())
        .collect())
}

/// What [`clean_logs`] did for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsCleaned {
    /// The service.
    pub service: ServiceCoordinate,
    /// Its log dir.
    pub log_dir: PathBuf,
    /// What the policy did.
    pub done: LogCleanup,
}

/// Cleans the log dir of a service by the `clean_logs` policy, never
/// touching a file its live processes hold open.
pub fn clean_logs(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<LogsCleaned, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let Known { runtime, record } = find(settings, &state, policy, service)?;
    let mut context = context_from_record(service, &runtime, record.as_ref());
    context.open_files = record.as_ref().map(service::open_files).unwrap_or_default();
    if let Some(record) = &record {
        context.logs = LogContext {
            reopen_signal: record
                .settings
                .reopen_logs
                .as_ref()
                .map(|r| r.signal.clone()),
            // Only a reopen signal needs them.
            processes: if record.settings.reopen_logs.is_some() {
                signal_targets(record)
            } else {
                Vec::new()
            },
            files: record.settings.logs.clone(),
        };
    }
    // Files the service's account owns are handled with its privileges,
    // as logrotate's `su` does, never root's.
    let account = runtime
        .owner_of("log")?
        .map(|(uid, gid)| Account::from_ids(uid, gid))
        .filter(Account::needs_switch);
    let _placing = record.as_ref().and_then(place_in);
    let done = policy
        .clean_logs(&context, &settings.log_cleanup, account.as_ref())
        .map_err(|source| LifecycleError::CleanLogs {
            service: service.to_string(),
            source,
        })?;
    Ok(LogsCleaned {
        service: service.clone(),
        log_dir: runtime.path().join("log"),
        done,
    })
}

/// The first service that runs from the package at `package_dir`, if any.
pub fn running_user(
    settings: &Settings,
    package_dir: &Path,
) -> Result<Option<String>, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let groups = service::Groups::snapshot();
    for name in state.services()? {
        let Ok(Some(record)) = state.read(&name) else {
            continue;
        };
        let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
        if record.package_dir == package_dir
            && ((record.starting && !record.from_another_boot())
                || matches!(
                    service::status_in(Some(&record), &runtime, &groups),
                    ServiceState::Running { .. }
                ))
        {
            return Ok(Some(record.service));
        }
    }
    Ok(None)
}

/// Refuses when a registered service uses the package at `package_dir`
/// (SPEC §4): always while one runs or is starting; otherwise unless `force`.
pub fn ensure_unused(
    settings: &Settings,
    package_dir: &Path,
    package: &str,
    force: bool,
) -> Result<(), LifecycleError> {
    // No state dir: copkg never started anything here.
    let Some(state) = StateDir::peek(&settings.runtime_root)? else {
        return Ok(());
    };
    let groups = service::Groups::snapshot();
    for name in state.services()? {
        let Ok(Some(record)) = state.read(&name) else {
            continue;
        };
        // By install dir, not by spelling: `g:a:1@sha256:…` is `g:a:1`.
        if record.package_dir != package_dir {
            continue;
        }
        let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
        let state_now = service::status_in(Some(&record), &runtime, &groups);
        let running = (record.starting && !record.from_another_boot())
            || matches!(state_now, ServiceState::Running { .. });
        if running {
            return Err(LifecycleError::InUse {
                package: package.to_owned(),
                service: record.service,
                state: "running".to_owned(),
                force_helps: false,
            });
        }
        if !force {
            return Err(LifecycleError::InUse {
                package: package.to_owned(),
                service: record.service,
                state: state_now.name().to_owned(),
                force_helps: true,
            });
        }
    }
    Ok(())
}
