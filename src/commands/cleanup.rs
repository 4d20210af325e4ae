//! `copkg cleanup SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::CleanupArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle::{self, Cleanup};

/// Removes the runtime dir of a service that is not running (with
/// `--keep-data`, all of it but data/ and etc/); whether there was one.
pub fn run(ctx: &Context, args: &CleanupArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    match lifecycle::cleanup(
        &ctx.settings,
        &host.policy(),
        &service,
        args.keep_data,
        &notices(ctx),
    )? {
        Cleanup::Removed(dir) => {
            out(&format!("removed {}", dir.display()))?;
            Ok(true)
        }
        Cleanup::Kept { dir, package } => {
            out(&format!(
                "removed {} but data/ and etc/ (kept for {package})",
                dir.display()
            ))?;
            Ok(true)
        }
        Cleanup::Absent => {
            out(&format!("{service} has no runtime dir"))?;
            Ok(false)
        }
    }
}
