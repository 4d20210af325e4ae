//! `copkg cleanup SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::CleanupArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle::{self, Cleanup};

/// Removes the runtime dir of a service that is not running.
pub fn run(ctx: &Context, args: &CleanupArgs) -> Result {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    match lifecycle::cleanup(
        &ctx.settings,
        &host.policy(),
        &service,
        args.keep_data,
        &notices(ctx),
    )? {
        Cleanup::Removed(dir) => out(&format!("removed {}", dir.display()))?,
        Cleanup::Kept { dir, package } => out(&format!(
            "removed {} but data/ and etc/ (kept for {package})",
            dir.display()
        ))?,
        Cleanup::Absent => out(&format!("{service} has no runtime dir"))?,
    }
    Ok(())
}
