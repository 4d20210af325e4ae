//! `copkg export`: this machine's packages and services, as JSON on stdout.

use super::{Context, Result, out};
use crate::inventory;

/// Writes the inventory of this machine.
pub fn run(ctx: &Context) -> Result {
    let inventory = inventory::read(&ctx.settings)?;
    let text = serde_json::to_string_pretty(&inventory).map_err(std::io::Error::other)?;
    out(&text)?;
    ctx.progress(&format!(
        "exported {} packages and {} services",
        inventory.packages.len(),
        inventory.services.len()
    ));
    Ok(())
}
