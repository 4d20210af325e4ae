//! `copkg upgrade SERVICE NEW_COORD [--ready CHECK] [-- ARGS…]`

use super::{Context, Result, notices, out};
use crate::cli::UpgradeArgs;
use crate::coordinate::{PackageCoordinate, ServiceCoordinate};
use crate::lifecycle::{self, UpgradeRequest};

/// Moves a service to another package version, rolling back on failure.
pub fn run(ctx: &Context, args: &UpgradeArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let package: PackageCoordinate = args.package.parse()?;
    let (ready, ready_timeout) = super::ready_of(&args.ready)?;
    let host = ctx.host()?;
    let request = UpgradeRequest {
        service: &service,
        package: &package,
        args: (!args.args.is_empty()).then_some(args.args.as_slice()),
        ready: ready.as_ref(),
        ready_timeout,
    };
    if ctx.settings.dry_run {
        let plan = lifecycle::plan_upgrade(&ctx.settings, &host.policy(), &request)?;
        let fields = serde_json::json!({"service": service.to_string(), "to": package.id()});
        return super::report_plan(ctx, fields, &args.service, &plan);
    }
    let upgraded = lifecycle::upgrade(&ctx.settings, &host.policy(), &request, &notices(ctx))?;
    if ctx.settings.json {
        out(&serde_json::json!({
            "service": service.to_string(), "from": upgraded.from, "to": upgraded.started.package,
            "pids": upgraded.started.pids, "steps": upgraded.steps,
            "downtime_ms": upgraded.downtime.as_millis() as u64, "changed": true,
        })
        .to_string())?;
    } else {
        out(&format!(
            "upgraded {service} from {} to {} (pid {}; down {:.3} s)",
            upgraded.from,
            upgraded.started.package,
            upgraded
                .started
                .pids
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            upgraded.downtime.as_secs_f64()
        ))?;
    }
    Ok(true)
}
