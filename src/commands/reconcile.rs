//! `copkg reconcile` and `copkg reset-failed SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::settings::Verbosity;
use crate::supervise;

/// Restarts enabled services that crashed, within the start limit.
pub fn run(ctx: &Context) -> Result {
    let host = ctx.host()?;
    let verbose = ctx.settings.verbosity >= Verbosity::Verbose;
    let acted = supervise::reconcile(&ctx.settings, &host.policy(), &notices(ctx), &mut |acted| {
        super::boot::report(ctx, "reconcile", acted, verbose)
    })?;
    super::boot::outcome(&acted, "restarts")
}

/// Forgets a service's start-limit count.
pub fn reset_failed(ctx: &Context, args: &ServiceArgs) -> Result {
    let service: ServiceCoordinate = args.service.parse()?;
    let reset = supervise::reset_failed(&ctx.settings, &service, &notices(ctx))?;
    if ctx.settings.json {
        out(&serde_json::json!({
            "service": service.to_string(), "was_failed": reset.was_failed,
            "changed": reset.changed,
        })
        .to_string())?;
    } else if reset.was_failed {
        out(&format!(
            "{service} is no longer failed; reconcile brings it back"
        ))?;
    } else if reset.changed {
        out(&format!("forgot the failures counted for {service}"))?;
    } else {
        out(&format!("{service} has no failures counted"))?;
    }
    Ok(())
}
