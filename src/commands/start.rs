//! `copkg start PACKAGE SERVICE [-- ARGS…]`

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use super::{Context, layouts, out, runtime_dir_for};
use crate::cli::StartArgs;
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::lua::{Platform, ServiceContext};
use crate::repo::{Fetcher, ProxySettings};
use crate::runtime::{RuntimeDir, ServiceRecord};
use crate::service::{self, ScriptRun, ServiceError, ServiceState};
use crate::store::PackageState;

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

/// Starts a service.
pub fn run(ctx: &Context, args: &StartArgs) -> anyhow::Result<()> {
    let package: PackageCoordinate = args.package.parse()?;
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    let layout = layouts(&host, std::slice::from_ref(&package))?.remove(0);
    let store = ctx.store();
    if args.install {
        let fetcher = Fetcher::new(ctx.settings.http.clone(), ProxySettings::from_env())
            .context("invalid proxy setting in the environment")?;
        let request = ctx.settings.install_request(&package, &layout);
        let mut notice = ctx.lock_wait_notice(&args.package);
        store
            .install(&fetcher, &request, &mut notice)
            .with_context(|| format!("cannot install {}", package.id()))?;
    }
    if !matches!(store.state(&layout)?, PackageState::Installed(_)) {
        return Err(StartError::NotInstalled(package.id()).into());
    }
    let package_dir = store.install_dir(&layout);
    let runtime = runtime_dir_for(ctx, &host, &service)?;

    let what = service.to_string();
    let _lock = runtime.lock(&mut ctx.lock_wait_notice(&what))?;
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
        args: args.args.clone(),
        platform: Platform::current(),
        open_files: Vec::new(),
    };
    let policy = host.policy();
    policy.lifecycle("before_start", &context)?;
    runtime.clear_pidfile()?;

    let script_output = run_start_script(ctx, &host, &runtime, &context)?;
    let processes = service::processes_from_pidfile(&runtime, &script_output)
        .with_context(|| format!("{what} did not start"))?;
    let record = ServiceRecord {
        package: package.id(),
        package_dir,
        service: what.clone(),
        args: args.args.clone(),
        started_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        processes: processes.clone(),
        stopped_at: None,
    };
    runtime.write_record(&record)?;
    policy.lifecycle("after_start", &context)?;

    let pids: Vec<i32> = processes.iter().map(|p| p.pid).collect();
    if ctx.settings.json {
        out(&serde_json::json!({
            "service": what, "status": "started", "pids": pids,
            "package": package.id(), "runtime_dir": runtime.path(),
        })
        .to_string())?;
    } else {
        let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
        out(&format!(
            "started {what} (pid {}) from {} in {}",
            pids.join(", "),
            package.id(),
            runtime.path().display()
        ))?;
    }
    Ok(())
}

/// Runs `start.lua` in-process, or `start.py` by the contract; returns the
/// script's captured output.
fn run_start_script(
    ctx: &Context,
    host: &crate::lua::Host,
    runtime: &RuntimeDir,
    context: &ServiceContext,
) -> anyhow::Result<String> {
    let package_dir = context.package_dir.as_deref().unwrap_or(Path::new("."));
    let start_lua = package_dir.join("script.d/start.lua");
    let start_py = package_dir.join("script.d/start.py");
    if start_lua.is_file() {
        host.run_package_script(&start_lua, context)?;
        // A start.lua that spawned through copkg.spawn need not write the pid file.
        if runtime.read_pidfile()?.is_none() {
            let pids: String = host
                .spawned()
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
            timeout: ctx.settings.script_timeout,
            output_limit: ctx.settings.script_output_bytes,
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
