//! `copkg uninstall [--force] COORD…`

use super::{Context, Error, Result, ResultExt, layouts, out, parse_coordinates};
use crate::cli::UninstallArgs;
use crate::journal::Outcome;
use crate::lifecycle;

/// Uninstalls each coordinate; one that is not installed is reported, not
/// an error. Each coordinate reached is journaled, the first failure ends
/// the command.
pub fn run(ctx: &Context, args: &UninstallArgs) -> Result<bool> {
    let coordinates = parse_coordinates(&args.coordinates)?;
    let host = ctx.host()?;
    let layouts = layouts(&host, &coordinates)?;
    let store = ctx.store();
    for (coordinate, layout) in coordinates.iter().zip(&layouts) {
        let id = coordinate.id();
        if ctx.settings.dry_run {
            lifecycle::ensure_unused(&ctx.settings, &store.install_dir(layout), &id, args.force)?;
            let dir = store.install_dir(layout);
            let mut plan = lifecycle::Plan::default();
            if let crate::store::PackageState::Installed(_) = store.state(layout)? {
                plan.step(format!("uninstall {id} from {}", dir.display()));
            }
            let fields = serde_json::json!({"coordinate": id, "dir": dir});
            super::report_plan(ctx, fields, &id, &plan)?;
            continue;
        }
        let result =
            lifecycle::ensure_unused(&ctx.settings, &store.install_dir(layout), &id, args.force)
                .map_err(Error::from)
                .and_then(|()| {
                    let mut notice = ctx.lock_wait_notice(&id);
                    store
                        .uninstall(coordinate, layout, &mut notice)
                        .with_context(|| format!("cannot uninstall {id}"))
                });
        ctx.journal("uninstall", &id, &Outcome::of(&result, |removed| *removed));
        let removed = result?;
        let dir = store.install_dir(layout);
        if ctx.settings.json {
            let status = if removed {
                "uninstalled"
            } else {
                "not-installed"
            };
            out(&serde_json::json!({
                "coordinate": id, "status": status, "dir": dir, "changed": removed,
            })
            .to_string())?;
        } else if removed {
            out(&format!("uninstalled {id} from {}", dir.display()))?;
        } else {
            out(&format!("{id} is not installed"))?;
        }
    }
    Ok(true)
}
