//! `copkg start PACKAGE SERVICE [-- ARGS…]`

use super::{Context, Result, notices, out};
use crate::cli::StartArgs;
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::lifecycle::{self, StartRequest};

/// Starts a service; whether it was started (not already running).
pub fn run(ctx: &Context, args: &StartArgs) -> Result<bool> {
    let package: PackageCoordinate = args.package.parse()?;
    let service: ServiceCoordinate = args.service.parse()?;
    let (ready, ready_timeout) = super::ready_of(&args.ready)?;
    let account = args
        .user
        .as_deref()
        .map(crate::account::Account::parse)
        .transpose()?;
    let host = ctx.host()?;
    let request = StartRequest {
        package: &package,
        service: &service,
        args: &args.args,
        install: args.install,
        ready: ready.as_ref(),
        ready_timeout,
        account: account.as_ref(),
    };
    if ctx.settings.dry_run {
        let plan = lifecycle::plan_start(&ctx.settings, &host.policy(), &request)?;
        let fields = serde_json::json!({"service": service.to_string(), "package": package.id()});
        return super::report_plan(ctx, fields, &args.service, &plan);
    }
    let started = lifecycle::start(&ctx.settings, &host.policy(), &request, &notices(ctx))?;
    report(ctx, &started)?;
    Ok(started.changed)
}

/// Prints what a start or restart did.
pub fn report(ctx: &Context, started: &lifecycle::Started) -> Result {
    if !started.output.trim().is_empty() {
        ctx.detail(&format!(
            "--- start script output ---\n{}",
            crate::runtime::escape_controls(started.output.trim_end())
        ));
    }
    if ctx.settings.json {
        out(&serde_json::json!({
            "service": started.service, "status": "running", "pids": started.pids,
            "package": started.package, "runtime_dir": started.runtime_dir,
            "changed": started.changed,
        })
        .to_string())?;
        return Ok(());
    }
    let pids: Vec<String> = started.pids.iter().map(i32::to_string).collect();
    if started.changed {
        out(&format!(
            "started {} (pid {}) from {} in {}",
            started.service,
            pids.join(", "),
            started.package,
            started.runtime_dir.display()
        ))?;
    } else {
        out(&format!(
            "{} already runs {} (pid {})",
            started.service,
            started.package,
            pids.join(", ")
        ))?;
    }
    Ok(())
}
