//! `copkg list`: one coordinate a line, pipeable into `copkg install -`.

use super::{Context, Result, out};

/// Lists installed packages.
pub fn run(ctx: &Context) -> Result {
    for (dir, record) in ctx.store().list()? {
        if ctx.settings.json {
            out(&serde_json::json!({
                "coordinate": record.coordinate, "dir": dir, "sha256": record.sha256,
                "verified": record.verified, "source": record.source, "signed_by": record.signed_by,
                "installed_at": record.installed_at, "unpacked_bytes": record.unpacked_bytes,
                "changed": false,
            })
            .to_string())?;
        } else {
            out(&record.coordinate)?;
        }
    }
    Ok(())
}
