//! Services that come back without a resident daemon: which services
//! should run and after which others (`enable`, `disable`), starting them
//! at boot in that order (`boot`), bringing back the ones that crashed with
//! a back-off and a start limit (`reconcile`, run every minute), and
//! handing one service to systemd instead (`systemd_unit`).
//!
//! The desired state lives in `units/SERVICE.json` and reconcile's counts
//! in `supervision/SERVICE.json`, both in copkg's state dir, apart from the
//! record each start rewrites. Neither boot nor reconcile waits for a
//! service: each takes a service's lock only if it is free, and only while
//! acting on that service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::lifecycle::{
    self, LifecycleError, Notify, SitePolicy, StartRequest, Started, no_such_service,
    recorded_account,
};
use crate::runtime::RuntimeDir;
use crate::service::{self, ServiceState};
use crate::settings::Settings;
use crate::state::{ServiceRecord, StateDir, StateError, Supervision, UnitFile};

/// How long a service boot or reconcile starts has to become ready (as
/// `start` without `--ready-timeout`).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest back-off between two restarts (unless `restartBackoffSecs`
/// alone is longer).
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What `enable` or `disable` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitChange {
    /// The service.
    pub service: String,
    /// Whether it is enabled now.
    pub enabled: bool,
    /// The services it starts after.
    pub after: Vec<String>,
    /// Whether anything changed (false: it was so already).
    pub changed: bool,
}

/// Refuses a service copkg has no record of: boot could not start it, not
/// knowing its package, arguments or account.
fn known(state: &StateDir, service: &str) -> Result<ServiceRecord, LifecycleError> {
    state
        .read(service)?
        .ok_or_else(|| no_such_service(state, service.to_owned()))
}

/// The state dir for enable and disable; under `--dry-run`, only one that
/// exists (none: copkg knows no service here) and nothing is made.
fn state_dir(settings: &Settings, service: &ServiceCoordinate) -> Result<StateDir, LifecycleError> {
    if !settings.dry_run {
        return Ok(StateDir::open(&settings.runtime_root)?);
    }
    StateDir::peek(&settings.runtime_root)?.ok_or_else(|| LifecycleError::NoSuchService {
        service: service.to_string(),
        suggestions: Vec::new(),
    })
}

/// The lock on the unit files, but for `--dry-run`, which writes none.
fn lock_units(
    settings: &Settings,
    state: &StateDir,
    notify: Notify<'_>,
) -> Result<Option<crate::lock::FileLock>, LifecycleError> {
    if settings.dry_run {
        return Ok(None);
    }
    Ok(Some(state.lock_units(
        settings.lock_timeout,
        &mut lifecycle::lock_notice(notify, "the unit files".to_owned()),
    )?))
}

/// Records that `service` should run, after the services `after` (each of
/// which copkg must know). Refused, naming the cycle, when the order would
/// loop.
pub fn enable(
    settings: &Settings,
    service: &ServiceCoordinate,
    after: &[ServiceCoordinate],
    notify: Notify<'_>,
) -> Result<UnitChange, LifecycleError> {
    let state = state_dir(settings, service)?;
    let name = service.to_string();
    known(&state, &name)?;
    let after: Vec<String> = after
        .iter()
        .map(ServiceCoordinate::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for other in &after {
        known(&state, other)?;
    }
    let _lock = lock_units(settings, &state, notify)?;
    let mut graph = after_graph(&state)?;
    graph.insert(name.clone(), after.clone());
    if let Some(cycle) = cycle_through(&graph, &name) {
        return Err(LifecycleError::AfterCycle {
            service: name,
            cycle,
        });
    }
    let unit = UnitFile {
        service: name.clone(),
        enabled: true,
        after,
    };
    let changed = state.read_unit(&name)?.as_ref() != Some(&unit);
    if changed && !settings.dry_run {
        state.write_unit(&unit)?;
    }
    Ok(UnitChange {
        service: name,
        enabled: true,
        after: unit.after,
        changed,
    })
}

/// Records that `service` should no longer be started at boot or brought
/// back by reconcile (it is not stopped: `copkg stop` does that).
pub fn disable(
    settings: &Settings,
    service: &ServiceCoordinate,
    notify: Notify<'_>,
) -> Result<UnitChange, LifecycleError> {
    let state = state_dir(settings, service)?;
    let name = service.to_string();
    let _lock = lock_units(settings, &state, notify)?;
    let unit = state.read_unit(&name)?;
    if unit.is_none() {
        known(&state, &name)?;
    }
    let after = unit.as_ref().map(|u| u.after.clone()).unwrap_or_default();
    let changed = match unit {
        Some(mut unit) if unit.enabled => {
            unit.enabled = false;
            if !settings.dry_run {
                state.write_unit(&unit)?;
            }
            true
        }
        _ => false,
    };
    Ok(UnitChange {
        service: name,
        enabled: false,
        after,
        changed,
    })
}

/// Every unit's `after` list, enabled or not (a disabled unit enabled
/// again must not close a cycle either).
fn after_graph(state: &StateDir) -> Result<BTreeMap<String, Vec<String>>, StateError> {
    let mut graph = BTreeMap::new();
    for name in state.units()? {
        if let Some(unit) = state.read_unit(&name)? {
            graph.insert(name, unit.after);
        }
    }
    Ok(graph)
}

/// A cycle of `after` edges through `start`, as `[start, …, start]`.
fn cycle_through(graph: &BTreeMap<String, Vec<String>>, start: &str) -> Option<Vec<String>> {
    // Depth first from `start`, remembering the path; every node is
    // expanded once, so this ends on any graph.
    let mut seen = BTreeSet::new();
    let mut path = vec![start.to_owned()];
    fn walk(
        graph: &BTreeMap<String, Vec<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let node = path.last().cloned().unwrap_or_default();
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(graph, start, &mut path, &mut seen).then_some(path)
}

/// The enabled services in an order where each comes after those it is
/// `after` (ties by name), and those that cannot be ordered because they
/// are in a cycle (only a unit file edited by hand has one) or after one.
fn boot_order(units: &BTreeMap<String, UnitFile>) -> (Vec<String>, Vec<String>) {
    let enabled: BTreeSet<&String> = units
        .iter()
        .filter(|(_, u)| u.enabled)
        .map(|(name, _)| name)
        .collect();
    let deps = |name: &String| -> Vec<&String> {
        units[name]
            .after
            .iter()
            .filter(|d| enabled.contains(d) && *d != name)
            .collect()
    };
    let mut waiting: BTreeMap<&String, usize> = enabled
        .iter()
        .map(|name| (*name, deps(name).len()))
        .collect();
    let mut order = Vec::new();
    while let Some(next) = waiting
        .iter()
        .find(|(_, count)| **count == 0)
        .map(|(name, _)| *name)
    {
        waiting.remove(next);
        for (name, count) in waiting.iter_mut() {
            if deps(name).contains(&next) {
                *count -= 1;
            }
        }
        order.push(next.clone());
    }
    let stuck = waiting.keys().map(|name| (*name).clone()).collect();
    (order, stuck)
}

fn read_units(state: &StateDir) -> Result<BTreeMap<String, UnitFile>, StateError> {
    let mut units = BTreeMap::new();
    for name in state.units()? {
        if name.parse::<ServiceCoordinate>().is_err() {
            continue;
        }
        if let Some(unit) = state.read_unit(&name)? {
            units.insert(name, unit);
        }
    }
    Ok(units)
}

/// Starts a service from its record: its package, arguments and account,
/// as `restart` does; the service's lock is held by the caller.
fn start_from_record(
    settings: &Settings,
    state: &StateDir,
    policy: &dyn SitePolicy,
    record: &ServiceRecord,
    notify: Notify<'_>,
) -> Result<Started, LifecycleError> {
    let package: PackageCoordinate = record
        .package
        .parse()
        .map_err(|_| LifecycleError::NotInstalled(record.package.clone()))?;
    let service: ServiceCoordinate = record
        .service
        .parse()
        .map_err(|_| no_such_service(state, record.service.clone()))?;
    let account = Some(recorded_account(record));
    let request = StartRequest {
        package: &package,
        service: &service,
        args: &record.args,
        install: false,
        ready: None,
        ready_timeout: READY_TIMEOUT,
        account: account.as_ref(),
    };
    lifecycle::start_locked(settings, state, policy, &request, notify)
}

/// Whether a record says `copkg stop` stopped the service in this boot.
fn stopped_on_purpose(record: &ServiceRecord) -> bool {
    !record.from_another_boot()
        && record.stopped_at.is_some()
        && record.failed.is_none()
        && !record.starting
}

/// What reconcile kept of a service in this boot (another boot's counts
/// count for nothing).
fn kept(state: &StateDir, service: &str) -> Result<Supervision, StateError> {
    let boot = crate::process::boot_id().map(str::to_owned);
    Ok(match state.read_supervision(service)? {
        Some(kept) if kept.boot_id == boot => kept,
        _ => Supervision {
            service: service.to_owned(),
            boot_id: boot,
            ..Supervision::default()
        },
    })
}

/// Whether the start limit gave `service` up in this boot, and how many
/// failures it counted then.
fn gave_up(state: &StateDir, service: &str) -> Result<Option<usize>, StateError> {
    let kept = kept(state, service)?;
    Ok(kept.failed_at.map(|_| kept.failures.len()))
}

/// Forgets the start limit's count of `service` (a `start`, `restart` or
/// `reset-failed`): it is no longer `failed`, and reconcile counts afresh.
/// The restarts made and the last crash stay, for status. Whether there
/// was anything to forget.
pub(crate) fn forget_failures(state: &StateDir, service: &str) -> Result<bool, StateError> {
    let Some(mut kept) = state.read_supervision(service)? else {
        return Ok(false);
    };
    let had = kept.failed_at.is_some() || !kept.failures.is_empty() || !kept.attempts.is_empty();
    if had {
        kept.failures.clear();
        kept.attempts.clear();
        kept.failed_at = None;
        state.write_supervision(&kept)?;
    }
    Ok(had)
}

/// What `reset-failed` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetFailed {
    /// Whether the service was past its start limit.
    pub was_failed: bool,
    /// Whether anything was forgotten.
    pub changed: bool,
}

/// Forgets the start limit's count of a service, so that reconcile brings
/// it back again.
pub fn reset_failed(
    settings: &Settings,
    service: &ServiceCoordinate,
    notify: Notify<'_>,
) -> Result<ResetFailed, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let name = service.to_string();
    known(&state, &name)?;
    let _lock = state.lock(
        &name,
        settings.lock_timeout,
        &mut lifecycle::lock_notice(notify, name.clone()),
    )?;
    let was_failed = gave_up(&state, &name)?.is_some();
    let changed = forget_failures(&state, &name)?;
    Ok(ResetFailed {
        was_failed,
        changed,
    })
}

/// What status adds about a service from its unit file and reconcile's counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Supervised {
    /// Whether it is enabled (none: never enabled or disabled).
    pub enabled: Option<bool>,
    /// Restarts reconcile made in this boot.
    pub restarts: u32,
    /// When reconcile last found it crashed (seconds since the epoch).
    pub last_crashed_at: Option<u64>,
}

/// The state status shows (`failed` past the start limit, while nothing
/// of it runs) and what it adds from the unit file and reconcile's counts.
pub(crate) fn supervised(
    state: &StateDir,
    service: &str,
    base: ServiceState,
    settings: &Settings,
) -> Result<(ServiceState, Supervised), StateError> {
    let unit = state.read_unit(service)?;
    let kept = kept(state, service)?;
    let shown = match (&base, kept.failed_at) {
        (ServiceState::Running { .. }, _) | (_, None) => base,
        (_, Some(_)) => ServiceState::Failed {
            reason: format!(
                "start limit hit: {} failures within {} s; `copkg reset-failed {service}` or `copkg start` to try again",
                kept.failures.len(),
                settings.start_limit_interval.as_secs_f64()
            ),
        },
    };
    Ok((
        shown,
        Supervised {
            enabled: unit.map(|u| u.enabled),
            restarts: kept.restarts,
            last_crashed_at: kept.last_crashed_at,
        },
    ))
}

/// What boot or reconcile did with one enabled service.
#[derive(Debug)]
pub enum Action {
    /// It runs, and nothing was done.
    Running {
        /// Its live pids.
        pids: Vec<i32>,
    },
    /// It was started (boot) or restarted (reconcile).
    Started(Started),
    /// It was left alone, for the reason given.
    LeftAlone {
        /// Why.
        reason: String,
    },
    /// Reconcile waits before restarting it again.
    BackingOff {
        /// How long until it may.
        wait: Duration,
    },
    /// It is past its start limit (`failed`), now or before.
    Failed {
        /// The failures counted in the window.
        failures: usize,
        /// Whether this run gave it up.
        now: bool,
    },
    /// Starting it failed.
    Error(LifecycleError),
}

impl Action {
    /// Whether the service runs after this action.
    pub fn runs(&self) -> bool {
        matches!(self, Action::Running { .. } | Action::Started(_))
    }

    /// Its name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Running { .. } => "running",
            Action::Started(_) => "started",
            Action::LeftAlone { .. } => "left-alone",
            Action::BackingOff { .. } => "backing-off",
            Action::Failed { .. } => "failed",
            Action::Error(_) => "error",
        }
    }
}

/// One enabled service and what was done with it.
#[derive(Debug)]
pub struct Acted {
    /// The service.
    pub service: String,
    /// What was done.
    pub action: Action,
}

/// Runs `act` on `service` with its lock held, if nobody holds it.
fn with_lock_if_free(state: &StateDir, service: &str, act: impl FnOnce() -> Action) -> Action {
    match state.try_lock(service) {
        Ok(Some(_lock)) => act(),
        Ok(None) => Action::LeftAlone {
            reason: "another copkg is working on it".to_owned(),
        },
        Err(err) => Action::Error(err.into()),
    }
}

/// `copkg boot`: starts every enabled service that does not run, each
/// after the enabled services it is `after`, with its recorded package,
/// arguments and account. One that fails does not stop the others, except
/// those after it, which are left alone saying why. Left alone too: a
/// service `copkg stop` stopped in this boot, and one past its start limit
/// in this boot (a boot run again must not undo them). `report` gets each
/// service as it is done.
pub fn boot(
    settings: &Settings,
    policy: &dyn SitePolicy,
    notify: Notify<'_>,
    report: &mut dyn FnMut(&Acted),
) -> Result<Vec<Acted>, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let units = read_units(&state)?;
    let (order, stuck) = boot_order(&units);
    let mut done: Vec<Acted> = Vec::new();
    for name in order {
        let blocker = units[&name].after.iter().find_map(|dep| {
            let acted = done.iter().find(|a| &a.service == dep)?;
            (!acted.action.runs())
                .then(|| format!("after {dep}, which does not run ({})", acted.action.name()))
        });
        let action = match blocker {
            Some(reason) => Action::LeftAlone { reason },
            None => with_lock_if_free(&state, &name, || {
                boot_one(settings, &state, policy, &name, notify)
            }),
        };
        let acted = Acted {
            service: name,
            action,
        };
        report(&acted);
        done.push(acted);
    }
    for name in stuck {
        let acted = Acted {
            action: Action::LeftAlone {
                reason: format!(
                    "its --after order has a cycle: {}",
                    cycle_of(&units, &name).join(" after ")
                ),
            },
            service: name,
        };
        report(&acted);
        done.push(acted);
    }
    Ok(done)
}

/// The cycle a service is in or after, for a report.
fn cycle_of(units: &BTreeMap<String, UnitFile>, name: &str) -> Vec<String> {
    let graph: BTreeMap<String, Vec<String>> = units
        .iter()
        .filter(|(_, u)| u.enabled)
        .map(|(n, u)| (n.clone(), u.after.clone()))
        .collect();
    if let Some(cycle) = cycle_through(&graph, name) {
        return cycle;
    }
    // After a cycle without being in it: the first member reached.
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(node) = todo.pop() {
        if node != name
            && let Some(cycle) = cycle_through(&graph, &node)
        {
            return cycle;
        }
        for next in graph.get(&node).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    vec![name.to_owned()]
}

fn boot_one(
    settings: &Settings,
    state: &StateDir,
    policy: &dyn SitePolicy,
    name: &str,
    notify: Notify<'_>,
) -> Action {
    let record = match known(state, name) {
        Ok(record) => record,
        Err(err) => return Action::Error(err),
    };
    let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
    if let ServiceState::Running { pids } = service::status(Some(&record), &runtime) {
        return Action::Running { pids };
    }
    if stopped_on_purpose(&record) {
        return Action::LeftAlone {
            reason: "stopped with `copkg stop` in this boot".to_owned(),
        };
    }
    match gave_up(state, name) {
        Ok(Some(failures)) => {
            return Action::Failed {
                failures,
                now: false,
            };
        }
        Ok(None) => {}
        Err(err) => return Action::Error(err.into()),
    }
    match start_from_record(settings, state, policy, &record, notify) {
        Ok(started) => Action::Started(started),
        Err(err) => Action::Error(err),
    }
}

/// `copkg reconcile`: restarts every enabled service found crashed (dead
/// without a `copkg stop` in this boot, or whose last start failed), with
/// a back-off between restarts and a start limit: a crash or a failed
/// start counts as a failure, and a service with `startLimitBurst`
/// failures within `startLimitIntervalSecs` is given up as `failed`.
/// Left alone: what `copkg stop` stopped, what has not run since the last
/// boot (`copkg boot` starts it), and what another copkg works on.
pub fn reconcile(
    settings: &Settings,
    policy: &dyn SitePolicy,
    notify: Notify<'_>,
    report: &mut dyn FnMut(&Acted),
) -> Result<Vec<Acted>, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let units = read_units(&state)?;
    let (mut order, stuck) = boot_order(&units);
    order.extend(stuck);
    let mut done = Vec::new();
    for name in order {
        let action = with_lock_if_free(&state, &name, || {
            reconcile_one(settings, &state, policy, &name, notify).unwrap_or_else(Action::Error)
        });
        let acted = Acted {
            service: name,
            action,
        };
        report(&acted);
        done.push(acted);
    }
    Ok(done)
}

/// The wait before a restart, when `attempts` restarts were made within
/// the window: none before the first, then `restartBackoffSecs`, doubling
/// for each further one, up to a minute.
fn backoff(base: Duration, attempts: usize) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (attempts - 1).min(16);
    base.saturating_mul(factor).min(MAX_BACKOFF.max(base))
}

/// Which start of a service a record describes, so one end counts once.
fn start_key(record: &ServiceRecord) -> (u64, u64) {
    (
        record.started_at,
        record.processes.first().map_or(0, |p| p.start_time),
    )
}

fn reconcile_one(
    settings: &Settings,
    state: &StateDir,
    policy: &dyn SitePolicy,
    name: &str,
    notify: Notify<'_>,
) -> Result<Action, LifecycleError> {
    let Some(record) = state.read(name)? else {
        return Ok(Action::LeftAlone {
            reason: "copkg has no record of it (start it once with `copkg start`)".to_owned(),
        });
    };
    if record.from_another_boot() {
        return Ok(Action::LeftAlone {
            reason: "it has not run since the last boot (`copkg boot` starts it)".to_owned(),
        });
    }
    let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
    let crashed = match service::status(Some(&record), &runtime) {
        ServiceState::Running { pids } => return Ok(Action::Running { pids }),
        ServiceState::Crashed => true,
        ServiceState::Failed { .. } => false,
        ServiceState::Stopped | ServiceState::StalePidfile | ServiceState::BadRecord { .. } => {
            return Ok(Action::LeftAlone {
                reason: "stopped with `copkg stop`".to_owned(),
            });
        }
    };
    let now = now_ms();
    let mut kept = kept(state, name)?;
    if kept.failed_at.is_some() {
        return Ok(Action::Failed {
            failures: kept.failures.len(),
            now: false,
        });
    }
    let key = start_key(&record);
    if kept.counted != Some(key) {
        kept.counted = Some(key);
        kept.failures.push(now);
        if crashed {
            kept.last_crashed_at = Some(now / 1000);
        }
    }
    let window = settings.start_limit_interval.as_millis() as u64;
    let since = now.saturating_sub(window);
    kept.failures.retain(|&t| t > since);
    kept.attempts.retain(|&t| t > since);
    if kept.failures.len() >= settings.start_limit_burst as usize {
        kept.failed_at = Some(now / 1000);
        state.write_supervision(&kept)?;
        return Ok(Action::Failed {
            failures: kept.failures.len(),
            now: true,
        });
    }
    let wait = backoff(settings.restart_backoff, kept.attempts.len()).as_millis() as u64;
    if let Some(&last) = kept.attempts.last()
        && now < last + wait
    {
        state.write_supervision(&kept)?;
        return Ok(Action::BackingOff {
            wait: Duration::from_millis(last + wait - now),
        });
    }
    // Counted before the start, so that a copkg killed during it has
    // still made the attempt.
    kept.attempts.push(now);
    kept.restarts += 1;
    state.write_supervision(&kept)?;
    match start_from_record(settings, state, policy, &record, notify) {
        Ok(started) => Ok(Action::Started(started)),
        Err(err) => {
            // A failed start is a failure at once, and counts once.
            if let Some(failed) = state.read(name)? {
                kept.counted = Some(start_key(&failed));
            }
            kept.failures.push(now_ms());
            if kept.failures.len() >= settings.start_limit_burst as usize {
                kept.failed_at = Some(now_ms() / 1000);
            }
            state.write_supervision(&kept)?;
            Ok(Action::Error(err))
        }
    }
}

/// A systemd unit that hands `service` to systemd: `Type=forking` with
/// copkg's pid file of the service, and start, stop and reload through
/// copkg with the settings given to this copkg (roots, config, site).
pub fn systemd_unit(
    settings: &Settings,
    service: &ServiceCoordinate,
    copkg: &Path,
    notify: Notify<'_>,
) -> Result<String, LifecycleError> {
    let state = StateDir::open(&settings.runtime_root)?;
    let name = service.to_string();
    let record = known(&state, &name)?;
    if state.read_unit(&name)?.is_some_and(|u| u.enabled) {
        notify(&format!(
            "warning: {name} is enabled in copkg too; `copkg disable {name}` before handing it to systemd, or both will restart it"
        ));
    }
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut global = vec![copkg.display().to_string()];
    if let Some(config) = &settings.config_file {
        global.extend([
            "--config".to_owned(),
            absolute(config).display().to_string(),
        ]);
    }
    if let Some(site) = &settings.site {
        global.extend(["--site".to_owned(), absolute(site).display().to_string()]);
    }
    global.extend([
        "--software-root".to_owned(),
        absolute(&settings.software_root).display().to_string(),
        "--runtime-root".to_owned(),
        absolute(&settings.runtime_root).display().to_string(),
        "--quiet".to_owned(),
    ]);
    let command = |args: &[String]| -> String {
        global
            .iter()
            .chain(args)
            .map(|a| systemd_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let account = recorded_account(&record);
    let mut start = vec![
        "start".to_owned(),
        "--user".to_owned(),
        format!("{}:{}", account.display_name(), account.gid),
        record.package.clone(),
        name.clone(),
        "--".to_owned(),
    ];
    start.extend(record.args.iter().cloned());
    let pid_file = absolute(&state.pid_file(&name));
    // A stop and a start each get what copkg itself may take: a script's
    // time limit, readiness, and the stop schedule.
    let timeout = settings.script_timeout.as_secs() + READY_TIMEOUT.as_secs() + 60;
    Ok(format!(
        "# Hands {name} to systemd; written by `copkg systemd-unit {name}`.\n\
         # Install as /etc/systemd/system/copkg-{name}.service, then\n\
         # `systemctl daemon-reload && systemctl enable --now copkg-{name}`.\n\
         # Do not also `copkg enable` it: one supervisor per service.\n\
         [Unit]\n\
         Description=copkg service {name} ({package})\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         StartLimitBurst={burst}\n\
         StartLimitIntervalSec={interval}\n\
         \n\
         [Service]\n\
         Type=forking\n\
         PIDFile={pid_file}\n\
         ExecStart={start}\n\
         ExecStop={stop}\n\
         ExecReload={reload}\n\
         Restart=on-failure\n\
         RestartSec={backoff}\n\
         TimeoutStartSec={timeout}\n\
         TimeoutStopSec={timeout}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        package = record.package,
        burst = settings.start_limit_burst,
        interval = settings.start_limit_interval.as_secs().max(1),
        pid_file = systemd_quote_path(&pid_file),
        start = command(&start),
        stop = command(&["stop".to_owned(), name.clone()]),
        reload = command(&["reload".to_owned(), name.clone()]),
        backoff = settings.restart_backoff.as_secs_f64().max(0.1),
    ))
}

/// One word of a systemd `Exec…=` line: as it is when plain, else in
/// double quotes with `\`, `"` and control characters escaped; `%` and `$`
/// doubled so that systemd expands neither specifiers nor variables.
fn systemd_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@".contains(c));
    let doubled = word.replace('%', "%%").replace('$', "$$");
    if plain {
        return doubled;
    }
    let mut quoted = String::from("\"");
    for c in doubled.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", c as u32 & 0xff)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A path in a unit setting that takes one path (`PIDFile=`): `%` doubled.
fn systemd_quote_path(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, enabled: bool, after: &[&str]) -> (String, UnitFile) {
        (
            name.to_owned(),
            UnitFile {
                service: name.to_owned(),
                enabled,
                after: after.iter().map(|s| (*s).to_owned()).collect(),
            },
        )
    }

    #[test]
    fn boot_order_puts_each_after_what_it_is_after() {
        let units: BTreeMap<_, _> = [
            unit("a", true, &["c"]),
            unit("b", true, &[]),
            unit("c", true, &["b", "x"]),
            unit("d", false, &["a"]),
            unit("e", true, &["d"]),
        ]
        .into_iter()
        .collect();
        let (order, stuck) = boot_order(&units);
        assert_eq!(order, ["b", "c", "a", "e"]);
        assert!(stuck.is_empty());
    }

    #[test]
    fn a_cycle_is_found_and_named() {
        let units: BTreeMap<_, _> = [
            unit("a", true, &["b"]),
            unit("b", true, &["c"]),
            unit("c", true, &["a"]),
            unit("d", true, &["c"]),
            unit("e", true, &[]),
        ]
        .into_iter()
        .collect();
        let (order, stuck) = boot_order(&units);
        assert_eq!(order, ["e"]);
        assert_eq!(stuck, ["a", "b", "c", "d"]);
        let graph: BTreeMap<String, Vec<String>> = units
            .iter()
            .map(|(n, u)| (n.clone(), u.after.clone()))
            .collect();
        assert_eq!(cycle_through(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
        assert_eq!(cycle_through(&graph, "d"), None);
        assert_eq!(cycle_of(&units, "d"), ["c", "a", "b", "c"]);
        let own: BTreeMap<String, Vec<String>> = [("s".to_owned(), vec!["s".to_owned()])].into();
        assert_eq!(cycle_through(&own, "s").unwrap(), ["s", "s"]);
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let second = Duration::from_secs(1);
        let cases = [(0, 0), (1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)];
        for (attempts, secs) in cases {
            assert_eq!(
                backoff(second, attempts),
                Duration::from_secs(secs),
                "{attempts}"
            );
        }
        assert_eq!(backoff(Duration::ZERO, 5), Duration::ZERO);
        let long = Duration::from_secs(100);
        assert_eq!(backoff(long, 3), long);
    }

    #[test]
    fn systemd_words_are_quoted_only_when_needed() {
        let cases = [
            ("start", "start"),
            ("com.example:web:1.0.0", "com.example:web:1.0.0"),
            ("--port=8080", "--port=8080"),
            ("two words", "\"two words\""),
            ("100%", "\"100%%\""),
            ("$HOME", "\"$$HOME\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("", "\"\""),
        ];
        for (word, want) in cases {
            assert_eq!(systemd_quote(word), want, "{word:?}");
        }
    }
}
