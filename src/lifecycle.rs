//! The service lifecycle: start, stop, status, cleanup and log cleanup of
//! service instances, called alike by the commands and by the Lua module.
//! Site policy (runtime paths, package layouts, lifecycle hooks, log
//! cleanup, package Lua scripts) is reached through [`SitePolicy`], which
//! the Lua host implements; this module never imports the commands or the
//! Lua host, and never prints (notices go to a callback).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::account::Account;
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::exit::{Coded, ExitCode};
use crate::platform::Platform;
use crate::repo::{Fetcher, ProxyError, ProxySettings};
use crate::runtime::{RuntimeDir, RuntimeError};
use crate::service::{self, ScriptRun, ServiceError, ServiceState};
use crate::settings::Settings;
use crate::state::{RecordedProcess, STATE_DIR, ServiceRecord, StateDir, StateError};
use crate::store::{PackageLayout, PackageState, StoreError};

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
}

/// What the `clean_logs` hook did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogCleanup {
    /// Files compressed.
    pub compressed: u64,
    /// Files deleted.
    pub deleted: u64,
    /// Bytes left in log/.
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
    /// Runs a package's `start.lua`/`stop.lua` with the service context and
    /// returns the processes it spawned.
    fn run_package_script(
        &self,
        script: &Path,
        context: &ServiceContext,
    ) -> Result<Vec<RecordedProcess>, PolicyError>;
}

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
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
    /// A package cannot be uninstalled while a service runs from it.
    #[error("{package} is used by running service {service}; stop it first, or use --force")]
    InUse {
        /// The package.
        package: String,
        /// The first running service found using it.
        service: String,
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
            LifecycleError::InUse { .. } => ExitCode::InUse,
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
            LifecycleError::RuntimePath { .. } | LifecycleError::SharedRuntimeDir { .. } => {
                ExitCode::Usage
            }
            LifecycleError::Store(source) => source.exit_code(),
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

fn lock_notice(notify: Notify<'_>, what: String) -> impl FnMut(&Path) + '_ {
    move |lock: &Path| {
        notify(&format!(
            "waiting for another copkg working on {what} (lock {})",
            lock.display()
        ))
    }
}

fn now() -> u64 {
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

/// "No such service", with the known names closest to the one asked for.
fn no_such_service(state: &StateDir, service: String) -> LifecycleError {
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
    let StartRequest {
        package,
        service,
        args,
        install,
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
    let state = StateDir::open(&settings.runtime_root)?;
    let runtime = runtime_dir(settings, policy, service)?;

    let what = service.to_string();
    let _lock = state.lock(
        &what,
        settings.lock_timeout,
        &mut lock_notice(notify, what.clone()),
    )?;
    ensure_own_runtime_dir(&state, &what, &runtime)?;
    let record = state.read(&what)?;
    if let ServiceState::Running { pids } = service::status(record.as_ref(), &runtime) {
        return Err(ServiceError::AlreadyRunning {
            service: what,
            pids,
        }
        .into());
    }
    runtime.prepare()?;
    let context = ServiceContext {
        package: Some(package.clone()),
        package_dir: Some(package_dir.clone()),
        service: service.clone(),
        runtime_dir: runtime.path().to_owned(),
        args: args.to_vec(),
        platform: Platform::current(),
        open_files: Vec::new(),
    };
    call_hook(policy, LifecycleHook::BeforeStart, &context)?;
    runtime.clear_pidfile()?;

    let started =
        run_start_script(settings, policy, &runtime, &context).and_then(|(output, spawned)| {
            if spawned.is_empty() {
                Ok(service::processes_from_pidfile(&runtime, &output)?)
            } else {
                Ok(spawned)
            }
        });
    let processes = started.map_err(|source| LifecycleError::StartFailed {
        service: what.clone(),
        source: Box::new(source),
    })?;
    let record = ServiceRecord {
        service: what.clone(),
        runtime_path: runtime.relative().to_owned(),
        package: package.id(),
        package_dir,
        args: args.to_vec(),
        started_at: now(),
        processes: processes.clone(),
        stopped_at: None,
    };
    state.write(&record)?;
    call_hook(policy, LifecycleHook::AfterStart, &context)?;
    Ok(Started {
        service: what,
        package: package.id(),
        pids: processes.iter().map(|p| p.pid).collect(),
        runtime_dir: runtime.path().to_owned(),
    })
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
        let spawned = policy
            .run_package_script(&start_lua, context)
            .map_err(package_script_err(&start_lua))?;
        let live = spawned
            .into_iter()
            .filter(|p| crate::process::is_running(p.pid, p.start_time))
            .collect();
        return Ok((String::new(), live));
    }
    if start_py.is_file() {
        let mut script_args: Vec<OsString> = vec![
            format!("--runtime-dir={}", runtime.path().display()).into(),
            format!("--coordinate={}", context.service).into(),
        ];
        script_args.extend(context.args.iter().map(OsString::from));
        let (program, args) = script_command(&start_py, script_args);
        let output = service::run_script(&ScriptRun {
            program,
            args,
            env: script_env(context),
            cwd: runtime.path().to_owned(),
            timeout: settings.script_timeout,
            output_limit: settings.script_output_bytes,
        })?;
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
) -> Result<(), LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let what = service.to_string();
    let _lock = state.lock(
        &what,
        settings.lock_timeout,
        &mut lock_notice(notify, what.clone()),
    )?;
    let Known { runtime, record } = find(settings, &state, policy, service)?;
    let not_running = || {
        LifecycleError::from(ServiceError::NotRunning {
            service: what.clone(),
        })
    };
    let status = service::status(record.as_ref(), &runtime);
    let (ServiceState::Running { .. }, Some(mut record)) = (&status, record.clone()) else {
        // Dead pids are never signalled; copkg clears what they left.
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
        return Err(not_running());
    };
    let context = context_from_record(service, &runtime, Some(&record));
    call_hook(policy, LifecycleHook::BeforeStop, &context)?;

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
        match service::stop_by_signals(&record, &settings.stop_schedule) {
            Ok(()) | Err(ServiceError::NotRunning { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    record.stopped_at = Some(now());
    state.write(&record)?;
    runtime.clear_pidfile()?;
    call_hook(policy, LifecycleHook::AfterStop, &context)?;
    Ok(())
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
            .run_package_script(&stop_lua, context)
            .map_err(package_script_err(&stop_lua))?;
        return Ok(true);
    }
    if stop_py.is_file() {
        let (program, args) = script_command(
            &stop_py,
            vec![OsString::from(format!(
                "--runtime-dir={}",
                runtime.path().display()
            ))],
        );
        service::run_script(&ScriptRun {
            program,
            args,
            env: script_env(context),
            cwd: runtime.path().to_owned(),
            timeout: settings.script_timeout,
            output_limit: settings.script_output_bytes,
        })?;
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
    /// Its runtime dir.
    pub runtime_dir: PathBuf,
}

/// The status of one service.
pub fn status(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<ServiceStatus, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let Known { runtime, record } = find(settings, &state, policy, service)?;
    Ok(ServiceStatus {
        service: service.to_string(),
        state: service::status(record.as_ref(), &runtime),
        package: record.map(|r| r.package),
        runtime_dir: runtime.path().to_owned(),
    })
}

/// The status of every service in copkg's registry, sorted by name. One
/// unreadable record is reported as such and hides no other service.
pub fn status_all(settings: &Settings) -> Result<Vec<ServiceStatus>, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let mut rows = Vec::new();
    for name in state.services()? {
        rows.push(match state.read(&name) {
            Ok(Some(record)) => {
                let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
                ServiceStatus {
                    state: service::status(Some(&record), &runtime),
                    runtime_dir: runtime.path().to_owned(),
                    package: Some(record.package),
                    service: name,
                }
            }
            Ok(None) => continue,
            Err(err) => ServiceStatus {
                state: ServiceState::BadRecord {
                    reason: crate::exit::one_line(&err),
                },
                runtime_dir: PathBuf::new(),
                package: None,
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
    /// There was no runtime dir.
    Absent,
}

/// Removes the runtime dir of a service that is not running, after the
/// `before_cleanup` hook, and copkg's record of it.
pub fn cleanup(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
    notify: Notify<'_>,
) -> Result<Cleanup, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let what = service.to_string();
    let _lock = state.lock(
        &what,
        settings.lock_timeout,
        &mut lock_notice(notify, what.clone()),
    )?;
    let Known { runtime, record } = match find(settings, &state, policy, service) {
        Ok(known) => known,
        Err(LifecycleError::NoSuchService { .. }) => return Ok(Cleanup::Absent),
        Err(err) => return Err(err),
    };
    if let ServiceState::Running { pids } = service::status(record.as_ref(), &runtime) {
        return Err(ServiceError::AlreadyRunning {
            service: what,
            pids,
        }
        .into());
    }
    let context = context_from_record(service, &runtime, record.as_ref());
    call_hook(policy, LifecycleHook::BeforeCleanup, &context)?;
    if runtime.exists() {
        runtime.remove()?;
    }
    state.remove(&what)?;
    Ok(Cleanup::Removed(runtime.path().to_owned()))
}

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
    // Files the service's account owns are handled with its privileges,
    // as logrotate's `su` does, never root's.
    let account = runtime
        .owner_of("log")?
        .map(|(uid, gid)| Account::from_ids(uid, gid))
        .filter(Account::needs_switch);
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

/// Refuses when a running service uses `package`.
pub fn ensure_unused(
    settings: &Settings,
    package: &PackageCoordinate,
) -> Result<(), LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let id = package.id();
    for name in state.services()? {
        let Ok(Some(record)) = state.read(&name) else {
            continue;
        };
        let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
        if record.package == id
            && matches!(
                service::status(Some(&record), &runtime),
                ServiceState::Running { .. }
            )
        {
            return Err(LifecycleError::InUse {
                package: id,
                service: record.service,
            });
        }
    }
    Ok(())
}
