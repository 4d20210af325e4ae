//! `copkg pack DIR --coordinate G:A:V --out REPO`

use super::{Context, Result, ResultExt, layouts, out, usage};
use crate::cli::PackArgs;
use crate::coordinate::PackageCoordinate;

/// Packs a directory into the repository layout the policy gives.
pub fn run(ctx: &Context, args: &PackArgs) -> Result {
    let coordinate: PackageCoordinate = args.coordinate.parse()?;
    if coordinate.digest.is_some() {
        return Err(usage(
            "pack takes group:artifact:version without a digest pin",
        ));
    }
    let host = ctx.host()?;
    let layout = layouts(&host, std::slice::from_ref(&coordinate))?.remove(0);
    let packed = crate::pack::pack(
        &args.dir,
        &args.out,
        &layout.archive,
        &layout.sha256,
        args.force,
    )
    .with_context(|| format!("cannot pack {coordinate}"))?;
    super::warn_unreadable(ctx, &coordinate.id(), &packed.unreadable);
    if ctx.settings.json {
        out(&serde_json::json!({
            "coordinate": coordinate.id(), "archive": packed.archive,
            "sha256_file": packed.sidecar, "sha256": packed.sha256, "unchanged": packed.unchanged,
        })
        .to_string())?;
    } else {
        out(&format!(
            "packed {} into {} (sha256 {})",
            coordinate.id(),
            packed.archive.display(),
            packed.sha256
        ))?;
    }
    Ok(())
}
