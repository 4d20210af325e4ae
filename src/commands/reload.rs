//! `copkg reload SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle::{self, Reloaded};

/// Asks a running service to reload its configuration.
pub fn run(ctx: &Context, args: &ServiceArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    let how = match lifecycle::reload(&ctx.settings, &host.policy(), &service, &notices(ctx))? {
        Reloaded::Script(script) => script.display().to_string(),
        Reloaded::Signal(name) => format!("SIG{}", name.trim_start_matches("SIG")),
    };
    if ctx.settings.json {
        out(&serde_json::json!({"service": service.to_string(), "reloaded_by": how, "changed": true})
            .to_string())?;
    } else {
        out(&format!("reloaded {service} ({how})"))?;
    }
    Ok(true)
}
