//! `copkg start PACKAGE SERVICE [-- ARGS…]`

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use super::{Context, out, runtime_dir_with};
use crate::cli::StartArgs;
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::lua::{Platform, Policy, ServiceContext};
use crate::repo::{Fetcher, ProxySettings};
use crate::runtime::{RuntimeDir, ServiceRecord};
use crate::service::{self, ScriptRun, ServiceError, ServiceState};
use crate::settings::Settings;
use crate::store::{PackageState, Store};

/// Why a package cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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

/// What [`start_service`] started.
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

/// Starts a service: all of `copkg start` except printing, for the command
/// and for `copkg.start` in Lua. `notify` gets lock-wait notices.
pub fn start_service(
    settings: &Settings,
    policy: &Policy<'_>,
    package: &PackageCoordinate,
    service: &ServiceCoordinate,
    args: &[String],
    install: bool,
    notify: &dyn Fn(&str),
) -> anyhow::Result<Started> {
    let layout = policy
        .layout(package)
        .with_context(|| format!("site policy failed for {package}"))?;
    let store = Store::new(&settings.software_root);
    let wait_notice = |what: String| {
        move |lock: &Path| {
            notify(&format!(
                "waiting for another copkg working on {what} (lock {})",
                lock.display()
            ))
        }
    };
    if install {
        let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())
            .context("invalid proxy setting in the environment")?;
        let request = settings.install_request(package, &layout);
        store
            .install(&fetcher, &request, &mut wait_notice(package.id()))
            .with_context(|| format!("cannot install {}", package.id()))?;
    }
    if !matches!(store.state(&layout)?, PackageState::Installed(_)) {
        return Err(StartError::NotInstalled(package.id()).into());
    }
    let package_dir = store.install_dir(&layout);
    let runtime = runtime_dir_with(settings, policy, service)?;

    let what = service.to_string();
    let _lock = runtime.lock(&mut wait_notice(what.clone()))?;
    if let ServiceState::Running { pids } = service::status(&runtime)? {
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
    policy.lifecycle("before_start", &context)?;
    runtime.clear_pidfile()?;

    let script_output = run_start_script(settings, policy, &runtime, &context)?;
    let processes = service::processes_from_pidfile(&runtime, &script_output)
        .with_context(|| format!("{what} did not start"))?;
    let record = ServiceRecord {
        package: package.id(),
        package_dir,
        service: what.clone(),
        args: args.to_vec(),
        started_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        processes: processes.clone(),
        stopped_at: None,
    };
    runtime.write_record(&record)?;
    policy.lifecycle("after_start", &context)?;
    Ok(Started {
        service: what,
        package: package.id(),
        pids: processes.iter().map(|p| p.pid).collect(),
        runtime_dir: runtime.path().to_owned(),
    })
}

/// Starts a service.
pub fn run(ctx: &Context, args: &StartArgs) -> anyhow::Result<()> {
    let package: PackageCoordinate = args.package.parse()?;
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    let started = start_service(
        &ctx.settings,
        &host.policy(),
        &package,
        &service,
        &args.args,
        args.install,
        &|message| ctx.progress(message),
    )?;
    if ctx.settings.json {
        out(&serde_json::json!({
            "service": started.service, "status": "started", "pids": started.pids,
            "package": started.package, "runtime_dir": started.runtime_dir,
        })
        .to_string())?;
    } else {
        let pids: Vec<String> = started.pids.iter().map(i32::to_string).collect();
        out(&format!(
            "started {} (pid {}) from {} in {}",
            started.service,
            pids.join(", "),
            started.package,
            started.runtime_dir.display()
        ))?;
    }
    Ok(())
}

/// Runs `start.lua` in-process, or `start.py` by the contract; returns the
/// script's captured output.
fn run_start_script(
    settings: &Settings,
    policy: &Policy<'_>,
    runtime: &RuntimeDir,
    context: &ServiceContext,
) -> anyhow::Result<String> {
    let package_dir = context.package_dir.as_deref().unwrap_or(Path::new("."));
    let start_lua = package_dir.join("script.d/start.lua");
    let start_py = package_dir.join("script.d/start.py");
    if start_lua.is_file() {
        let before = policy.spawned().len();
        policy.run_package_script(&start_lua, context)?;
        // A start.lua that spawned through copkg.spawn need not write the pid file.
        if runtime.read_pidfile()?.is_none() {
            let pids: String = policy.spawned()[before..]
                .iter()
                .map(|p| format!("{}\n", p.pid))
                .collect();
            if !pids.is_empty() {
                crate::runtime::write_atomically(
                    &runtime.path().join(crate::runtime::PIDFILE),
                    pids.as_bytes(),
                )?;
            }
        }
        return Ok(String::new());
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
        })
        .with_context(|| format!("{} did not start", context.service))?;
        return Ok(output);
    }
    Err(StartError::NoStartScript {
        package: context
            .package
            .as_ref()
            .map(PackageCoordinate::id)
            .unwrap_or_default(),
        dir: package_dir.to_owned(),
    }
    .into())
}
