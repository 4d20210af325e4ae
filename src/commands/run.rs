//! `copkg run SCRIPT.lua [ARGS…]`

use super::{Context, Result};
use crate::cli::RunArgs;

/// Runs a Lua script with the copkg module and `copkg.args`.
pub fn run(ctx: &Context, args: &RunArgs) -> Result {
    let host = ctx.host()?;
    host.run_script(&args.script, &args.args)?;
    Ok(())
}
