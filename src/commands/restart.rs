//! `copkg restart [--ready CHECK] SERVICE`

use super::{Context, Result, notices};
use crate::cli::RestartArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle;

/// Stops a service and starts it again with its recorded package and arguments.
pub fn run(ctx: &Context, args: &RestartArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let (ready, timeout) = super::ready_of(&args.ready)?;
    let host = ctx.host()?;
    if ctx.settings.dry_run {
        let plan = lifecycle::plan_restart(&ctx.settings, &host.policy(), &service)?;
        let fields = serde_json::json!({"service": service.to_string()});
        return super::report_plan(ctx, fields, &args.service, &plan);
    }
    let started = lifecycle::restart(
        &ctx.settings,
        &host.policy(),
        &service,
        (ready.as_ref(), timeout),
        &notices(ctx),
    )?;
    super::start::report(ctx, &started)?;
    Ok(true)
}
