//! `copkg prune --keep N`: removes old versions of each installed artifact.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Context, Error, Result, ResultExt, layouts, out};
use crate::cli::PruneArgs;
use crate::coordinate::PackageCoordinate;
use crate::exit::{Coded, describe, one_line};
use crate::journal::Outcome;
use crate::lifecycle::{self, LifecycleError};

/// What prune decided for one installed version.
enum Decision {
    /// Among the newest N.
    Newest,
    /// Listed under `pinned` in the config.
    Pinned,
    /// Named by a registered service.
    Used { service: String, state: String },
    /// Removed (or, under --dry-run, would be).
    Removed { dir: PathBuf },
    /// Gone before prune got to it (another copkg removed it).
    Vanished,
    /// The removal failed.
    Failed(Error),
}

/// Keeps the newest `--keep` versions of each group:artifact and removes
/// the rest, except those pinned or used by a registered service. Returns
/// whether anything was removed.
pub fn run(ctx: &Context, args: &PruneArgs) -> Result<bool> {
    let dry_run = ctx.settings.dry_run;
    let store = ctx.store();
    let mut artifacts: BTreeMap<(String, String), Vec<PackageCoordinate>> = BTreeMap::new();
    for (dir, record) in store.list()? {
        match record.coordinate.parse::<PackageCoordinate>() {
            Ok(coordinate) => artifacts
                .entry((coordinate.group.clone(), coordinate.artifact.clone()))
                .or_default()
                .push(coordinate),
            Err(err) => ctx.progress(&format!(
                "warning: skipping {}: its install record names {}",
                dir.display(),
                one_line(&err)
            )),
        }
    }
    let host = ctx.host()?;
    let keep = args.keep as usize;
    let mut decisions = Vec::new();
    for versions in artifacts.values_mut() {
        // Newest first; versions Maven counts as equal (1.0, 1.0.0) by text.
        versions.sort_by(|a, b| newest_first(&a.version, &b.version));
        for (n, coordinate) in versions.iter().enumerate() {
            let decision = if n < keep {
                Decision::Newest
            } else {
                decide(ctx, &host, coordinate, dry_run)
            };
            report(ctx, coordinate, &decision)?;
            decisions.push((coordinate.id(), decision));
        }
    }
    let removed = decisions
        .iter()
        .filter(|(_, d)| matches!(d, Decision::Removed { .. }))
        .count();
    if ctx.settings.json {
        let entries = |wanted: fn(&Decision) -> bool| {
            decisions
                .iter()
                .filter(|(_, d)| wanted(d))
                .map(|(id, d)| json_of(id, d))
                .collect::<Vec<_>>()
        };
        out(&serde_json::json!({
            "changed": removed > 0,
            "dry_run": dry_run,
            "keep": keep,
            "removed": entries(|d| matches!(d, Decision::Removed { .. })),
            "kept": entries(|d| matches!(d, Decision::Newest | Decision::Pinned | Decision::Used { .. })),
            "failed": entries(|d| matches!(d, Decision::Failed(_))),
        })
        .to_string())?;
    } else if removed == 0
        && !decisions
            .iter()
            .any(|(_, d)| matches!(d, Decision::Failed(_)))
    {
        ctx.progress("nothing to prune");
    }
    let failures: Vec<&Error> = decisions
        .iter()
        .filter_map(|(_, d)| match d {
            Decision::Failed(err) => Some(err),
            _ => None,
        })
        .collect();
    match failures.first() {
        None => Ok(removed > 0 && !dry_run),
        Some(first) => Err(Error::Partial {
            failed: failures.len(),
            total: failures.len() + removed,
            what: "removals",
            code: first.exit_code(),
        }),
    }
}

/// Orders versions newest first, as Maven does; equal ones by their text.
fn newest_first(a: &str, b: &str) -> Ordering {
    crate::version::compare(b, a).then_with(|| b.cmp(a))
}

/// Whether to keep or remove one version beyond the newest N, and the
/// removal itself (journaled) unless `dry_run`.
fn decide(
    ctx: &Context,
    host: &crate::lua::Host,
    coordinate: &PackageCoordinate,
    dry_run: bool,
) -> Decision {
    let id = coordinate.id();
    if ctx.settings.pinned.iter().any(|pin| pin.id() == id) {
        return Decision::Pinned;
    }
    let layout = match layouts(host, std::slice::from_ref(coordinate)) {
        Ok(mut layouts) => match layouts.pop() {
            Some(layout) => layout,
            None => return Decision::Vanished,
        },
        Err(err) => return Decision::Failed(err),
    };
    let store = ctx.store();
    let dir = store.install_dir(&layout);
    // The rule uninstall follows: any registered service naming the
    // package keeps it, whatever its state.
    match lifecycle::ensure_unused(&ctx.settings, &dir, &id, false) {
        Ok(()) => {}
        Err(LifecycleError::InUse { service, state, .. }) => {
            return Decision::Used { service, state };
        }
        Err(err) => {
            return Decision::Failed(Error::Context {
                message: format!("cannot tell whether {id} is in use"),
                source: Box::new(err.into()),
            });
        }
    }
    if dry_run {
        return Decision::Removed { dir };
    }
    let mut notice = ctx.lock_wait_notice(&id);
    let result = store
        .uninstall(coordinate, &layout, &mut notice)
        .with_context(|| format!("cannot remove {id}"));
    ctx.journal("prune", &id, &Outcome::of(&result, |removed| *removed));
    match result {
        Ok(true) => Decision::Removed { dir },
        Ok(false) => Decision::Vanished,
        Err(err) => Decision::Failed(err),
    }
}

/// Reports one decision as it is made: removals and versions kept for a
/// reason on stdout (unless --json), failures on stderr, the newest only
/// with -v.
fn report(ctx: &Context, coordinate: &PackageCoordinate, decision: &Decision) -> Result {
    let id = coordinate.id();
    if let Decision::Failed(err) = decision {
        eprintln!("{}", describe(err));
        return Ok(());
    }
    if ctx.settings.json {
        return Ok(());
    }
    match decision {
        Decision::Newest => ctx.detail(&format!("kept {id}: among the newest")),
        Decision::Pinned => out(&format!("kept {id}: pinned in the config"))?,
        Decision::Used { service, state } => {
            out(&format!("kept {id}: used by {state} service {service}"))?
        }
        Decision::Removed { dir } if ctx.settings.dry_run => {
            out(&format!("would remove {id} from {}", dir.display()))?
        }
        Decision::Removed { dir } => out(&format!("removed {id} from {}", dir.display()))?,
        Decision::Vanished => ctx.progress(&format!("{id} was removed meanwhile")),
        Decision::Failed(_) => {}
    }
    Ok(())
}

/// One decision as JSON.
fn json_of(id: &str, decision: &Decision) -> serde_json::Value {
    match decision {
        Decision::Newest => serde_json::json!({"coordinate": id, "reason": "newest"}),
        Decision::Pinned => serde_json::json!({"coordinate": id, "reason": "pinned"}),
        Decision::Used { service, state } => serde_json::json!({
            "coordinate": id, "reason": "used", "service": service, "state": state,
        }),
        Decision::Removed { dir } => serde_json::json!({"coordinate": id, "dir": dir}),
        Decision::Vanished => serde_json::json!({"coordinate": id}),
        Decision::Failed(err) => serde_json::json!({
            "coordinate": id,
            "error": one_line(err),
            "exit_code": err.exit_code().code(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_orders_by_maven_version_then_text() {
        let mut versions = vec!["1.9", "1.10", "1.0-rc1", "1.0", "1.0.0", "2.0-beta"];
        versions.sort_by(|a, b| newest_first(a, b));
        assert_eq!(
            versions,
            ["2.0-beta", "1.10", "1.9", "1.0.0", "1.0", "1.0-rc1"]
        );
    }
}
