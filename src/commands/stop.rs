//! `copkg stop SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle;

/// Stops a service; whether it was running.
pub fn run(ctx: &Context, args: &ServiceArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host_even_if_site_is_broken()?;
    if ctx.settings.dry_run {
        let plan = lifecycle::plan_stop(&ctx.settings, &host.policy(), &service)?;
        let fields = serde_json::json!({"service": service.to_string()});
        return super::report_plan(ctx, fields, &args.service, &plan);
    }
    let stopped = lifecycle::stop(&ctx.settings, &host.policy(), &service, &notices(ctx))?;
    if ctx.settings.json {
        out(&serde_json::json!({
            "service": service.to_string(), "status": "stopped", "changed": stopped.changed,
        })
        .to_string())?;
    } else if stopped.changed {
        out(&format!("stopped {service}"))?;
    } else {
        out(&format!("{service} is not running"))?;
    }
    Ok(stopped.changed)
}
