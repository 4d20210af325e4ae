//! `copkg run SCRIPT.lua [ARGS…]`

use super::{Context, Result};
use crate::cli::RunArgs;

/// Runs a Lua script with the copkg module and `copkg.args`.
pub fn run(ctx: &Context, args: &RunArgs) -> Result {
    let timeout = match args.timeout {
        None => None,
        Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 7.0 * 86_400.0 => {
            Some(std::time::Duration::from_secs_f64(secs))
        }
        Some(_) => {
            return Err(super::usage(
                "--timeout takes seconds above 0, at most a week",
            ));
        }
    };
    let host = ctx.host()?;
    host.run_script(&args.script, &args.args, timeout)?;
    Ok(())
}
