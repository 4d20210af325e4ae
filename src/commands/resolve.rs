//! `copkg resolve COORD`: install dir, URLs and state, as the policy sees them.

use super::{Context, Result, layouts, out};
use crate::cli::ResolveArgs;
use crate::coordinate::PackageCoordinate;
use crate::store::PackageState;

/// Shows where a coordinate installs, where it is fetched from, and its state.
pub fn run(ctx: &Context, args: &ResolveArgs) -> Result {
    let coordinate: PackageCoordinate = args.coordinate.parse()?;
    let host = ctx.host()?;
    let layout = layouts(&host, std::slice::from_ref(&coordinate))?.remove(0);
    let store = ctx.store();
    let dir = store.install_dir(&layout);
    let state = store.state(&layout)?;
    let repositories = &ctx.settings.repositories;
    if ctx.settings.json {
        let (state_name, record) = match &state {
            PackageState::Installed(record) => ("installed", Some(record)),
            PackageState::Absent => ("absent", None),
            PackageState::Foreign => ("foreign", None),
        };
        let urls: Vec<_> = repositories
            .iter()
            .map(|r| {
                serde_json::json!({
                    "archive": r.address(&layout.archive), "sha256": r.address(&layout.sha256),
                    "zip": layout.zip.as_ref().map(|zip| r.address(zip)),
                    "zip_sha256": layout.zip_sha256().map(|sidecar| r.address(&sidecar)),
                })
            })
            .collect();
        let value = serde_json::json!({
            "coordinate": coordinate.id(), "dir": dir, "state": state_name,
            "sha256": record.and_then(|r| r.sha256.as_ref()),
            "verified": record.map(|r| r.verified),
            "source": record.map(|r| &r.source),
            "repositories": urls, "changed": false,
        });
        return Ok(out(&value.to_string())?);
    }
    out(&format!("coordinate: {}", coordinate.id()))?;
    out(&format!("install dir: {}", dir.display()))?;
    out(&match &state {
        PackageState::Installed(record) => match &record.sha256 {
            Some(sha256) => format!(
                "state: installed (sha256 {sha256}{}, from {})",
                if record.verified { "" } else { ", unverified" },
                record.source
            ),
            None => format!("state: installed ({}, unverified)", record.source),
        },
        PackageState::Absent => "state: not installed".to_owned(),
        PackageState::Foreign => "state: occupied by something copkg did not install".to_owned(),
    })?;
    if repositories.is_empty() {
        out("repositories: none configured")?;
    }
    for repo in repositories {
        out(&format!("archive: {}", repo.address(&layout.archive)))?;
        out(&format!("sha256: {}", repo.address(&layout.sha256)))?;
        if let (Some(zip), Some(sidecar)) = (&layout.zip, layout.zip_sha256()) {
            out(&format!("zip: {}", repo.address(zip)))?;
            out(&format!("zip sha256: {}", repo.address(&sidecar)))?;
        }
    }
    Ok(())
}
