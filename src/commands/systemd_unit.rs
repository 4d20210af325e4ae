//! `copkg systemd-unit SERVICE`

use super::{Context, Error, Result, notices, out};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::supervise;

/// Prints a systemd unit that hands the service to systemd.
pub fn run(ctx: &Context, args: &ServiceArgs) -> Result {
    let service: ServiceCoordinate = args.service.parse()?;
    let copkg = std::env::current_exe().map_err(|source| Error::Io {
        action: "cannot find copkg's own executable for ExecStart",
        source,
    })?;
    let unit = supervise::systemd_unit(&ctx.settings, &service, &copkg, &notices(ctx))?;
    if ctx.settings.json {
        out(&serde_json::json!({
            "service": service.to_string(), "unit": unit, "changed": false,
        })
        .to_string())?;
    } else {
        out(unit.trim_end())?;
    }
    Ok(())
}
