//! `copkg cleanup SERVICE`

use super::{Context, out, runtime_dir_for};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lua::{Platform, ServiceContext};
use crate::service::{self, ServiceError, ServiceState};

/// Removes the runtime dir of a service that is not running.
pub fn run(ctx: &Context, args: &ServiceArgs) -> anyhow::Result<()> {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    let runtime = runtime_dir_for(ctx, &host, &service)?;
    let what = service.to_string();
    if !runtime.exists() {
        out(&format!("{what} has no runtime dir"))?;
        return Ok(());
    }
    {
        let _lock = runtime.lock(&mut ctx.lock_wait_notice(&what))?;
        if let ServiceState::Running { pids } = service::status(&runtime)? {
            return Err(anyhow::Error::from(ServiceError::AlreadyRunning {
                service: what,
                pids,
            })
            .context("stop it before cleaning up"));
        }
        let record = runtime.read_record()?;
        let context = ServiceContext {
            package: record.as_ref().and_then(|r| r.package.parse().ok()),
            package_dir: record.as_ref().map(|r| r.package_dir.clone()),
            service,
            runtime_dir: runtime.path().to_owned(),
            args: record.map(|r| r.args).unwrap_or_default(),
            platform: Platform::current(),
            open_files: Vec::new(),
        };
        host.policy().lifecycle("before_cleanup", &context)?;
    }
    runtime.remove()?;
    out(&format!("removed {}", runtime.path().display()))?;
    Ok(())
}
