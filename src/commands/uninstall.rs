//! `copkg uninstall [--force] COORD…`

use super::{Context, Result, ResultExt, layouts, out, parse_coordinates};
use crate::cli::UninstallArgs;
use crate::lifecycle;

/// Uninstalls each coordinate; one that is not installed is reported, not an error.
pub fn run(ctx: &Context, args: &UninstallArgs) -> Result {
    let coordinates = parse_coordinates(&args.coordinates)?;
    let host = ctx.host()?;
    let layouts = layouts(&host, &coordinates)?;
    let store = ctx.store();
    for (coordinate, layout) in coordinates.iter().zip(&layouts) {
        let id = coordinate.id();
        lifecycle::ensure_unused(&ctx.settings, &store.install_dir(layout), &id, args.force)?;
        let mut notice = ctx.lock_wait_notice(&id);
        let removed = store
            .uninstall(coordinate, layout, &mut notice)
            .with_context(|| format!("cannot uninstall {id}"))?;
        let dir = store.install_dir(layout);
        if ctx.settings.json {
            let status = if removed {
                "uninstalled"
            } else {
                "not-installed"
            };
            out(&serde_json::json!({"coordinate": id, "status": status, "dir": dir}).to_string())?;
        } else if removed {
            out(&format!("uninstalled {id} from {}", dir.display()))?;
        } else {
            out(&format!("{id} is not installed"))?;
        }
    }
    Ok(())
}
