//! What a lifecycle command would do, worked out without doing it:
//! `--dry-run`. Each plan makes the checks its command makes before its
//! first change (the package installed, the runtime dir its own, the
//! service not running something else), so a refusal shows in the plan
//! with the exit code the real run would end with. Nothing is written, no
//! lock is taken, no hook or script runs: what a script would decide (a
//! failed start, a readiness timeout) cannot be foreseen.

use super::{
    Known, LifecycleError, PackageState, SitePolicy, StartRequest, UpgradeRequest, find,
    no_such_service, policy_err, runtime_dir,
};
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::repo::{Fetcher, ProxySettings};
use crate::runtime::RuntimeDir;
use crate::service::{self, ServiceState};
use crate::settings::Settings;
use crate::state::StateDir;
use crate::store::{InstallRequest, StoreError};

/// What a command would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Whether the real run would change anything.
    pub changed: bool,
    /// What it would do, in order, one step a line ("install …", "stop …").
    pub steps: Vec<String>,
}

impl Plan {
    /// Adds a step that changes something.
    pub fn step(&mut self, step: String) {
        self.changed = true;
        self.steps.push(step);
    }
}

/// The state dir, when there is one: none means nothing was ever started.
fn peek(settings: &Settings) -> Result<Option<StateDir>, LifecycleError> {
    Ok(StateDir::peek(&settings.runtime_root)?)
}

/// [`find`] without making the state dir.
fn peek_find(
    settings: &Settings,
    state: Option<&StateDir>,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<Known, LifecycleError> {
    match state {
        Some(state) => find(settings, state, policy, service),
        None => {
            let runtime = runtime_dir(settings, policy, service)?;
            if !runtime.exists() {
                return Err(LifecycleError::NoSuchService {
                    service: service.to_string(),
                    suggestions: Vec::new(),
                });
            }
            Ok(Known {
                runtime,
                record: None,
            })
        }
    }
}

/// The install a start or upgrade would make first, if any; a package that
/// is not installed and may not be is refused as the real run refuses it.
fn plan_install(
    settings: &Settings,
    policy: &dyn SitePolicy,
    package: &PackageCoordinate,
    install: bool,
    plan: &mut Plan,
) -> Result<(), LifecycleError> {
    let layout = policy.layout(package).map_err(policy_err(package))?;
    let store = settings.store();
    if matches!(store.state(&layout)?, PackageState::Installed(_)) {
        return Ok(());
    }
    if !install {
        return Err(LifecycleError::NotInstalled(package.id()));
    }
    let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())?;
    let from = fetch_source(
        settings,
        &fetcher,
        &settings.install_request(package, &layout),
    )
    .map_err(|source| LifecycleError::Install {
        package: package.id(),
        source: Box::new(source),
    })?;
    plan.step(format!(
        "install {} into {} from {from}",
        package.id(),
        store.install_dir(&layout).display(),
    ));
    Ok(())
}

/// Where an install would take the package's archive from, asking the
/// repositories as the install would (the checksum sidecar, the signature
/// a pinned key requires, whether the archive is there, the download
/// cache) and failing as it would: a package no repository has is not
/// found (exit 3), one that lacks a required signature is refused. Only
/// the archive's bytes are not read, so a digest that does not match its
/// sidecar shows only in the real run. Reads; writes nothing (the cache of
/// a dry run is read-only).
pub fn fetch_source(
    settings: &Settings,
    fetcher: &Fetcher,
    request: &InstallRequest<'_>,
) -> Result<String, StoreError> {
    let opened = settings.store().open_archive(fetcher, request)?;
    let mut from = match &opened.cached {
        Some(cached) if cached.hit => format!("the download cache (as {})", cached.url),
        _ => crate::repo::redact_url(&opened.download.url),
    };
    if let Some(digest) = &opened.expected {
        from.push_str(&format!(", sha256 {digest}"));
    }
    if let Some(signed) = &opened.signed {
        from.push_str(&format!(", signature by key {}", signed.key.id));
    }
    Ok(from)
}

/// What `start` would do.
pub fn plan_start(
    settings: &Settings,
    policy: &dyn SitePolicy,
    request: &StartRequest<'_>,
) -> Result<Plan, LifecycleError> {
    let mut plan = Plan::default();
    plan_install(
        settings,
        policy,
        request.package,
        request.install,
        &mut plan,
    )?;
    let runtime = runtime_dir(settings, policy, request.service)?;
    let what = request.service.to_string();
    let state = peek(settings)?;
    let record = match &state {
        Some(state) => {
            super::ensure_own_runtime_dir(state, &what, &runtime)?;
            if let Some(kept) = state.kept(&what)? {
                let artifact = |id: &str| id.rsplit_once(':').map(|(ga, _)| ga.to_owned());
                if artifact(&kept.package) != artifact(&request.package.id()) {
                    return Err(LifecycleError::KeptForOther {
                        service: what,
                        package: kept.package,
                        dir: runtime.path().to_owned(),
                    });
                }
            }
            state.read(&what)?
        }
        None => None,
    };
    if let ServiceState::Running { pids } = service::status(record.as_ref(), &runtime) {
        let record = record.expect("a running service has a record");
        if record.package == request.package.id() && record.args == request.args {
            return Ok(plan);
        }
        return Err(LifecycleError::RunsOther {
            service: what,
            package: record.package,
            args: record.args,
            pids,
        });
    }
    plan_launch(&mut plan, request, &runtime);
    Ok(plan)
}

/// The start itself and the wait for readiness.
fn plan_launch(plan: &mut Plan, request: &StartRequest<'_>, runtime: &RuntimeDir) {
    plan.step(format!(
        "start {} from {} in {}{}",
        request.service,
        request.package.id(),
        runtime.path().display(),
        if request.args.is_empty() {
            String::new()
        } else {
            format!(" with arguments {:?}", request.args)
        }
    ));
    if let Some(check) = request.ready {
        plan.steps.push(format!(
            "wait up to {:.0} s until {check}",
            request.ready_timeout.as_secs_f64()
        ));
    }
}

/// What `stop` would do.
pub fn plan_stop(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<Plan, LifecycleError> {
    let state = peek(settings)?;
    let Known { runtime, record } = peek_find(settings, state.as_ref(), policy, service)?;
    let mut plan = Plan::default();
    if let (ServiceState::Running { pids }, Some(record)) =
        (service::status(record.as_ref(), &runtime), &record)
    {
        plan.step(format!(
            "stop {service} (runs {}, pid {})",
            record.package,
            join_pids(&pids)
        ));
    }
    Ok(plan)
}

/// copkg's record of a service, which restart and upgrade start from.
fn recorded(
    settings: &Settings,
    service: &ServiceCoordinate,
) -> Result<crate::state::ServiceRecord, LifecycleError> {
    let what = service.to_string();
    match peek(settings)? {
        Some(state) => match state.read(&what)? {
            Some(record) => Ok(record),
            None => Err(no_such_service(&state, what)),
        },
        None => Err(LifecycleError::NoSuchService {
            service: what,
            suggestions: Vec::new(),
        }),
    }
}

/// What `restart` would do: stop the service if it runs, then start its
/// recorded package with its recorded arguments.
pub fn plan_restart(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
) -> Result<Plan, LifecycleError> {
    let record = recorded(settings, service)?;
    let package: PackageCoordinate = record
        .package
        .parse()
        .map_err(|_| LifecycleError::NotInstalled(record.package.clone()))?;
    let mut plan = plan_stop(settings, policy, service)?;
    plan_install(settings, policy, &package, false, &mut plan)?;
    let runtime = RuntimeDir::new(&settings.runtime_root, &record.runtime_path);
    let request = StartRequest {
        package: &package,
        service,
        args: &record.args,
        install: false,
        ready: None,
        ready_timeout: Default::default(),
        account: None,
    };
    plan_launch(&mut plan, &request, &runtime);
    Ok(plan)
}

/// What `upgrade` would do: install the new version, stop the old one,
/// start the new one and wait for it (and roll back if it fails).
pub fn plan_upgrade(
    settings: &Settings,
    policy: &dyn SitePolicy,
    request: &UpgradeRequest<'_>,
) -> Result<Plan, LifecycleError> {
    let old = recorded(settings, request.service)?;
    let mut plan = Plan::default();
    plan_install(settings, policy, request.package, true, &mut plan)?;
    plan.steps
        .extend(plan_stop(settings, policy, request.service)?.steps);
    let runtime = RuntimeDir::new(&settings.runtime_root, &old.runtime_path);
    let args = request.args.unwrap_or(&old.args);
    let new = StartRequest {
        package: request.package,
        service: request.service,
        args,
        install: false,
        ready: request.ready,
        ready_timeout: request.ready_timeout,
        account: None,
    };
    plan_launch(&mut plan, &new, &runtime);
    plan.steps.push(format!(
        "if it fails or never becomes ready: start {} again",
        old.package
    ));
    Ok(plan)
}

/// What `cleanup` would do.
pub fn plan_cleanup(
    settings: &Settings,
    policy: &dyn SitePolicy,
    service: &ServiceCoordinate,
    keep_data: bool,
) -> Result<Plan, LifecycleError> {
    let what = service.to_string();
    let state = peek(settings)?;
    let mut plan = Plan::default();
    // Only data kept by an earlier `cleanup --keep-data`: as cleanup does.
    if let Some(state) = &state
        && state.read(&what)?.is_none()
        && let Some(kept) = state.kept(&what)?
    {
        if !keep_data {
            let runtime = RuntimeDir::new(&settings.runtime_root, &kept.runtime_path);
            plan.step(format!(
                "remove {} (data kept for {})",
                runtime.path().display(),
                kept.package
            ));
        }
        return Ok(plan);
    }
    let Known { runtime, record } = match peek_find(settings, state.as_ref(), policy, service) {
        Ok(known) => known,
        Err(LifecycleError::NoSuchService { .. }) => {
            let kept = match &state {
                Some(state) => state.kept(&what)?,
                None => None,
            };
            if let Some(kept) = kept
                && !keep_data
            {
                let runtime = RuntimeDir::new(&settings.runtime_root, &kept.runtime_path);
                plan.step(format!(
                    "remove {} (data kept for {})",
                    runtime.path().display(),
                    kept.package
                ));
            }
            return Ok(plan);
        }
        Err(err) => return Err(err),
    };
    if let ServiceState::Running { pids } = service::status(record.as_ref(), &runtime) {
        return Err(service::ServiceError::AlreadyRunning {
            service: what,
            pids,
        }
        .into());
    }
    if keep_data && record.is_some() {
        plan.step(format!(
            "remove {} but data/ and etc/",
            runtime.path().display()
        ));
    } else {
        plan.step(format!("remove {}", runtime.path().display()));
    }
    Ok(plan)
}

fn join_pids(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
