//! `copkg resolve COORD`: install dir, URLs and state, as the policy sees them.

use super::{Context, Result, layouts, out};
use crate::cli::ResolveArgs;
use crate::coordinate::PackageCoordinate;
use crate::signature::{SIGNATURE_SUFFIX, SignatureMode};
use crate::store::PackageState;

/// Where an archive's signature is: beside it.
fn signature_of(archive: &str) -> String {
    format!("{archive}{SIGNATURE_SUFFIX}")
}

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
                let checks = r.signatures.mode != SignatureMode::Off;
                serde_json::json!({
                    "archive": r.address(&layout.archive), "sha256": r.address(&layout.sha256),
                    "signature": checks.then(|| r.address(&signature_of(&layout.archive))),
                    "signatures": r.signatures.mode.name(),
                    "public_keys": r.signatures.keys.iter().map(|k| k.id.to_string()).collect::<Vec<_>>(),
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
            "signed_by": record.and_then(|r| r.signed_by.as_ref()),
            "repositories": urls, "changed": false,
        });
        return Ok(out(&value.to_string())?);
    }
    out(&format!("coordinate: {}", coordinate.id()))?;
    out(&format!("install dir: {}", dir.display()))?;
    out(&match &state {
        PackageState::Installed(record) => match &record.sha256 {
            Some(sha256) => format!(
                "state: installed (sha256 {sha256}{}{}, from {})",
                if record.verified { "" } else { ", unverified" },
                record
                    .signed_by
                    .as_ref()
                    .map(|id| format!(", signed by key {id}"))
                    .unwrap_or_default(),
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
        if repo.signatures.mode != SignatureMode::Off {
            out(&format!(
                "signature: {} ({}, keys {})",
                repo.address(&signature_of(&layout.archive)),
                repo.signatures.mode.name(),
                repo.signatures.key_ids()
            ))?;
        }
        if let (Some(zip), Some(sidecar)) = (&layout.zip, layout.zip_sha256()) {
            out(&format!("zip: {}", repo.address(zip)))?;
            out(&format!("zip sha256: {}", repo.address(&sidecar)))?;
        }
    }
    Ok(())
}
