//! `copkg adopt COORD`: take over a package dir the original copkg
//! installed, so that `list`, `verify`, `uninstall` and `start` treat it as
//! copkg's own.

use super::{Context, Result, ResultExt, layouts, out};
use crate::cli::AdoptArgs;
use crate::coordinate::PackageCoordinate;
use crate::store::Adopted;

/// Adopts one package dir; one copkg already installed is a no-op.
pub fn run(ctx: &Context, args: &AdoptArgs) -> Result<bool> {
    let coordinate: PackageCoordinate = args.coordinate.parse()?;
    let host = ctx.host()?;
    let layout = layouts(&host, std::slice::from_ref(&coordinate))?.remove(0);
    let id = coordinate.id();
    let mut notice = ctx.lock_wait_notice(&id);
    let adopted = ctx
        .store()
        .adopt(&coordinate, &layout, &mut notice)
        .with_context(|| format!("cannot adopt {id}"))?;
    if ctx.settings.json {
        let value = match &adopted {
            Adopted::Fresh { dir, record } => serde_json::json!({
                "coordinate": id, "status": "adopted", "dir": dir,
                "verified": record.verified, "source": record.source,
                "entries": record.entries, "unpacked_bytes": record.unpacked_bytes,
                "changed": true,
            }),
            Adopted::Already { dir } => serde_json::json!({
                "coordinate": id, "status": "already-installed", "dir": dir, "changed": false,
            }),
        };
        out(&value.to_string())?;
        return Ok(matches!(adopted, Adopted::Fresh { .. }));
    }
    match &adopted {
        Adopted::Fresh { dir, record } => {
            ctx.progress(&format!(
                "warning: {id} was adopted without an archive or checksum to verify it against; `copkg verify` checks it against what is there now"
            ));
            out(&format!(
                "adopted {id} in {} ({} entries)",
                dir.display(),
                record.entries
            ))?;
        }
        Adopted::Already { dir } => {
            out(&format!("{id} is already installed in {}", dir.display()))?;
        }
    }
    Ok(matches!(adopted, Adopted::Fresh { .. }))
}
