//! `copkg enable SERVICE [--after OTHER…]` and `copkg disable SERVICE`

use super::{Context, Result, notices, out};
use crate::cli::{EnableArgs, ServiceArgs};
use crate::coordinate::ServiceCoordinate;
use crate::supervise::{self, UnitChange};

/// Records that a service should run, after the services given; whether
/// that changed anything.
pub fn enable(ctx: &Context, args: &EnableArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let after = args
        .after
        .iter()
        .map(|text| text.parse::<ServiceCoordinate>())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let change = supervise::enable(&ctx.settings, &service, &after, &notices(ctx))?;
    report(ctx, &change)?;
    Ok(change.changed)
}

/// Records that a service should no longer run at boot or come back;
/// whether that changed anything.
pub fn disable(ctx: &Context, args: &ServiceArgs) -> Result<bool> {
    let service: ServiceCoordinate = args.service.parse()?;
    let change = supervise::disable(&ctx.settings, &service, &notices(ctx))?;
    report(ctx, &change)?;
    Ok(change.changed)
}

/// Prints what an enable or disable did.
pub(super) fn report(ctx: &Context, change: &UnitChange) -> Result {
    if ctx.settings.json {
        let mut value = serde_json::json!({
            "service": change.service, "enabled": change.enabled,
            "after": change.after, "changed": change.changed,
        });
        if ctx.settings.dry_run {
            value["dry_run"] = true.into();
        }
        out(&value.to_string())?;
        return Ok(());
    }
    let (enabled, disabled) = if ctx.settings.dry_run {
        ("would enable", "would disable")
    } else {
        ("enabled", "disabled")
    };
    let after = if change.after.is_empty() {
        String::new()
    } else {
        format!(" (after {})", change.after.join(", "))
    };
    let line = match (change.enabled, change.changed) {
        (true, true) => format!("{enabled} {}{after}", change.service),
        (true, false) => format!("{} is already enabled{after}", change.service),
        (false, true) => format!("{disabled} {}", change.service),
        (false, false) => format!("{} is not enabled", change.service),
    };
    out(&line)?;
    Ok(())
}
