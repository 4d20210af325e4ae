//! `copkg restart SERVICE`

use super::{Context, Result, notices};
use crate::cli::ServiceArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle;

/// Stops a service and starts it again with its recorded package and arguments.
pub fn run(ctx: &Context, args: &ServiceArgs) -> Result {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    let started = lifecycle::restart(&ctx.settings, &host.policy(), &service, &notices(ctx))?;
    super::start::report(ctx, &started)
}
