//! `copkg stop SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle;

/// Stops a service.
pub fn run(ctx: &Context, args: &ServiceArgs) -> Result {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    lifecycle::stop(&ctx.settings, &host.policy(), &service, &notices(ctx))?;
    if ctx.settings.json {
        out(&serde_json::json!({"service": service.to_string(), "status": "stopped"}).to_string())?;
    } else {
        out(&format!("stopped {service}"))?;
    }
    Ok(())
}
