//! `copkg clean-logs [SERVICE…]`: the `clean_logs` policy over runtime dirs.

use super::{Context, Result, out};
use crate::cli::ServicesArgs;
use crate::coordinate::ServiceCoordinate;
use crate::journal::Outcome;
use crate::lifecycle;

/// Cleans the log dirs of the named services, or of every service.
pub fn run(ctx: &Context, args: &ServicesArgs) -> Result {
    let host = ctx.host()?;
    let services = if args.services.is_empty() {
        lifecycle::recorded_services(&ctx.settings)?
    } else {
        args.services
            .iter()
            .map(|text| text.parse::<ServiceCoordinate>())
            .collect::<std::result::Result<_, _>>()?
    };
    let policy = host.policy();
    for service in services {
        let result = lifecycle::clean_logs(&ctx.settings, &policy, &service);
        // Run from cron, it mostly finds nothing to do: only what it
        // changed, or failed to, is journaled.
        let outcome = Outcome::of(&result, |c| {
            c.done.compressed + c.done.deleted + c.done.rotated > 0
        });
        if outcome != (Outcome::Done { changed: false }) {
            ctx.journal("clean-logs", &service.to_string(), &outcome);
        }
        let cleaned = result?;
        let done = cleaned.done;
        if ctx.settings.json {
            out(&serde_json::json!({
                "service": service.to_string(), "compressed": done.compressed,
                "deleted": done.deleted, "rotated": done.rotated, "bytes": done.bytes,
                "changed": done.compressed + done.deleted + done.rotated > 0,
            })
            .to_string())?;
        } else {
            let rotated = if done.rotated > 0 {
                format!("rotated {}, ", done.rotated)
            } else {
                String::new()
            };
            out(&format!(
                "{service}: {rotated}compressed {}, deleted {}, {} bytes left in {}",
                done.compressed,
                done.deleted,
                done.bytes,
                cleaned.log_dir.display()
            ))?;
        }
    }
    Ok(())
}
