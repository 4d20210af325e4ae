//! `copkg versions G:A`: what the repositories offer, from their
//! `maven-metadata.xml`.

use super::{Context, Result, out, usage};
use crate::cli::VersionsArgs;
use crate::metadata::{self, LATEST, LATEST_PRERELEASE};
use crate::repo::{Fetcher, ProxySettings};

/// Lists the versions of `group:artifact`, oldest first in Maven order.
pub fn run(ctx: &Context, args: &VersionsArgs) -> Result {
    let Some((group, artifact)) = args.artifact.split_once(':') else {
        return Err(usage(format!(
            "expected group:artifact, not `{}`",
            args.artifact
        )));
    };
    // The same rules as for a coordinate's group and artifact.
    let checked: crate::coordinate::PackageCoordinate = format!("{group}:{artifact}:0").parse()?;
    let settings = &ctx.settings;
    if settings.repositories.is_empty() {
        return Err(crate::store::StoreError::NoRepository.into());
    }
    let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())?;
    let offer = metadata::offered(
        &fetcher,
        &settings.repositories,
        &checked.group,
        &checked.artifact,
        settings.offline,
    )?;
    let latest = metadata::newest(&offer.versions, false);
    let latest_prerelease = metadata::newest(&offer.versions, true);
    if settings.json {
        let repositories: Vec<_> = offer
            .repositories
            .iter()
            .map(|r| match &r.versions {
                Ok(versions) => serde_json::json!({"url": r.repository, "versions": versions}),
                Err(why) => serde_json::json!({"url": r.repository, "error": why}),
            })
            .collect();
        out(&serde_json::json!({
            "group": checked.group, "artifact": checked.artifact,
            "versions": offer.versions,
            "latest": latest, "latest_prerelease": latest_prerelease,
            "repositories": repositories, "changed": false,
        })
        .to_string())?;
        return Ok(());
    }
    for version in &offer.versions {
        out(version)?;
    }
    for repo in &offer.repositories {
        if let Err(why) = &repo.versions {
            ctx.detail(&format!("{}: {why}", repo.repository));
        }
    }
    ctx.progress(&format!(
        "{LATEST}: {}, {LATEST_PRERELEASE}: {}",
        latest.map_or("none", String::as_str),
        latest_prerelease.map_or("none", String::as_str)
    ));
    Ok(())
}
