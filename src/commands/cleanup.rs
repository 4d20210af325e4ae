//! `copkg cleanup SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle::{self, Cleanup};

/// Removes the runtime dir of a service that is not running; whether there was one.
pub fn run(ctx: &Context, args: &ServiceArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    match lifecycle::cleanup(&ctx.settings, &host.policy(), &service, &notices(ctx))? {
        Cleanup::Removed(dir) => {
            out(&format!("removed {}", dir.display()))?;
            Ok(true)
        }
        Cleanup::Absent => {
            out(&format!("{service} has no runtime dir"))?;
            Ok(false)
        }
    }
}
