//! `copkg stop SERVICE`

use std::ffi::OsString;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::start::{script_command, script_env};
use super::{Context, out, runtime_dir_with};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lua::{Platform, Policy, ServiceContext};
use crate::service::{self, ScriptRun, ServiceError, ServiceState};
use crate::settings::Settings;

/// How long a stop script's processes get to go away before the signal schedule.
const AFTER_STOP_SCRIPT: Duration = Duration::from_secs(5);

/// Stops a service: all of `copkg stop` except printing, for the command and
/// for `copkg.stop` in Lua. `notify` gets lock-wait and progress notices.
pub fn stop_service(
    settings: &Settings,
    policy: &Policy<'_>,
    service: &ServiceCoordinate,
    notify: &dyn Fn(&str),
) -> anyhow::Result<()> {
    let runtime = runtime_dir_with(settings, policy, service)?;
    let what = service.to_string();
    let not_running = || ServiceError::NotRunning {
        service: what.clone(),
    };
    if !runtime.exists() {
        return Err(not_running().into());
    }
    let _lock = runtime.lock(&mut |lock| {
        notify(&format!(
            "waiting for another copkg working on {what} (lock {})",
            lock.display()
        ))
    })?;
    let state = service::status(&runtime)?;
    let mut record = runtime.read_record()?;
    let ServiceState::Running { .. } = state else {
        // Dead pids are never signalled; copkg clears what they left.
        if matches!(state, ServiceState::Crashed | ServiceState::StalePidfile) {
            runtime.clear_pidfile()?;
            if let Some(record) = &mut record {
                record.stopped_at.get_or_insert(now());
                runtime.write_record(record)?;
            }
            notify(&format!(
                "{what} was {}; cleared its pid file",
                state.name()
            ));
        }
        return Err(not_running().into());
    };
    let Some(mut record) = record else {
        return Err(not_running().into());
    };
    let context = ServiceContext {
        package: record.package.parse().ok(),
        package_dir: Some(record.package_dir.clone()),
        service: service.clone(),
        runtime_dir: runtime.path().to_owned(),
        args: record.args.clone(),
        platform: Platform::current(),
        open_files: Vec::new(),
    };
    policy.lifecycle("before_stop", &context)?;

    let stop_lua = record.package_dir.join("script.d/stop.lua");
    let stop_py = record.package_dir.join("script.d/stop.py");
    let scripted = if stop_lua.is_file() {
        policy.run_package_script(&stop_lua, &context)?;
        true
    } else if stop_py.is_file() {
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
            env: script_env(&context),
            cwd: runtime.path().to_owned(),
            timeout: settings.script_timeout,
            output_limit: settings.script_output_bytes,
        })
        .with_context(|| format!("cannot stop {what}"))?;
        true
    } else {
        false
    };
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
    runtime.write_record(&record)?;
    runtime.clear_pidfile()?;
    policy.lifecycle("after_stop", &context)?;
    Ok(())
}

/// Stops a service.
pub fn run(ctx: &Context, args: &ServiceArgs) -> anyhow::Result<()> {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    stop_service(&ctx.settings, &host.policy(), &service, &|message| {
        ctx.progress(message)
    })?;
    if ctx.settings.json {
        out(&serde_json::json!({"service": service.to_string(), "status": "stopped"}).to_string())?;
    } else {
        out(&format!("stopped {service}"))?;
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
