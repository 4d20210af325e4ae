//! `copkg cleanup SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::CleanupArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle::{self, Cleanup};

/// Removes the runtime dir of a service that is not running (with
/// `--keep-data`, all of it but data/ and etc/); whether there was one.
pub fn run(ctx: &Context, args: &CleanupArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let host = ctx.host()?;
    if ctx.settings.dry_run {
        let plan =
            lifecycle::plan_cleanup(&ctx.settings, &host.policy(), &service, args.keep_data)?;
        let fields = serde_json::json!({"service": service.to_string()});
        return super::report_plan(ctx, fields, &args.service, &plan);
    }
    let cleaned = lifecycle::cleanup(
        &ctx.settings,
        &host.policy(),
        &service,
        args.keep_data,
        &notices(ctx),
    )?;
    let changed = !matches!(cleaned, Cleanup::Absent);
    if ctx.settings.json {
        let (status, dir, kept_for) = match &cleaned {
            Cleanup::Removed(dir) => ("removed", Some(dir), None),
            Cleanup::Kept { dir, package } => ("kept-data", Some(dir), Some(package)),
            Cleanup::Absent => ("absent", None, None),
        };
        out(&serde_json::json!({
            "service": service.to_string(), "status": status, "runtime_dir": dir,
            "kept_for": kept_for, "changed": changed,
        })
        .to_string())?;
        return Ok(changed);
    }
    match cleaned {
        Cleanup::Removed(dir) => out(&format!("removed {}", dir.display()))?,
        Cleanup::Kept { dir, package } => out(&format!(
            "removed {} but data/ and etc/ (kept for {package})",
            dir.display()
        ))?,
        Cleanup::Absent => out(&format!("{service} has no runtime dir"))?,
    }
    Ok(changed)
}
