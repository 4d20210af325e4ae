//! `copkg install [-j N] COORD… | -`

use std::io::BufRead;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;

use super::{Context, PartialFailure, layouts, out, usage};
use crate::cli::InstallArgs;
use crate::coordinate::PackageCoordinate;
use crate::exit::code_for;
use crate::repo::{Fetcher, ProxySettings};
use crate::store::{InstallRequest, Installed};

/// Reads the coordinates: the arguments, with `-` meaning one a line from
/// stdin (blank lines and `#` comments skipped). Duplicates are dropped.
fn read_coordinates(args: &[String]) -> anyhow::Result<Vec<PackageCoordinate>> {
    let mut texts = Vec::new();
    for arg in args {
        if arg == "-" {
            for (number, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("cannot read coordinates from stdin")?;
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let coordinate = line
                    .parse::<PackageCoordinate>()
                    .with_context(|| format!("stdin line {}", number + 1))?;
                texts.push(coordinate);
            }
        } else {
            texts.push(arg.parse::<PackageCoordinate>()?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    texts.retain(|c| seen.insert(c.to_string()));
    if texts.is_empty() {
        return Err(usage("no coordinates given"));
    }
    Ok(texts)
}

/// Installs every coordinate, `jobs` at a time.
pub fn run(ctx: &Context, args: &InstallArgs) -> anyhow::Result<()> {
    let coordinates = read_coordinates(&args.coordinates)?;
    let host = ctx.host()?;
    let layouts = layouts(&host, &coordinates)?;
    let settings = &ctx.settings;
    let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())
        .context("invalid proxy setting in the environment")?;
    let store = ctx.store();

    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let single = coordinates.len() == 1;
    let jobs = usize::from(args.jobs).min(coordinates.len());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let (Some(coordinate), Some(layout)) =
                        (coordinates.get(index), layouts.get(index))
                    else {
                        break;
                    };
                    let request = InstallRequest {
                        coordinate,
                        layout,
                        repositories: &settings.repositories,
                        checksum: settings.checksum,
                        max_unpacked_bytes: settings.max_unpacked_bytes,
                        max_entries: settings.max_entries,
                    };
                    let what = coordinate.id();
                    ctx.detail(&format!("installing {what}"));
                    let mut notice = ctx.lock_wait_notice(&what);
                    let result = store
                        .install(&fetcher, &request, &mut notice)
                        .with_context(|| format!("cannot install {what}"));
                    let printed = report(ctx, coordinate, &result);
                    match result {
                        Ok(_) if printed.is_ok() => {}
                        Ok(_) => failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(anyhow::Error::from(printed.unwrap_err())),
                        Err(err) => {
                            if !single {
                                crate::exit::print_error(&err);
                            }
                            failures.lock().unwrap_or_else(|e| e.into_inner()).push(err);
                        }
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    match failures.len() {
        0 => Ok(()),
        _ if single => Err(failures.remove(0)),
        failed => Err(PartialFailure {
            failed,
            total: coordinates.len(),
            what: "installs",
            code: code_for(&failures[0]),
        }
        .into()),
    }
}

fn report(
    ctx: &Context,
    coordinate: &PackageCoordinate,
    result: &anyhow::Result<Installed>,
) -> std::io::Result<()> {
    let id = coordinate.id();
    if ctx.settings.json {
        let value = match result {
            Ok(Installed::Fresh { dir, record }) => serde_json::json!({
                "coordinate": id, "status": "installed", "dir": dir,
                "sha256": record.sha256, "verified": record.verified, "source": record.source,
            }),
            Ok(Installed::Already { dir }) => serde_json::json!({
                "coordinate": id, "status": "already-installed", "dir": dir,
            }),
            Err(err) => serde_json::json!({
                "coordinate": id, "status": "failed", "error": format!("{err:#}"),
                "exit_code": code_for(err) as u8,
            }),
        };
        return out(&value.to_string());
    }
    match result {
        Ok(Installed::Fresh { dir, record }) => {
            if !record.verified {
                ctx.progress(&format!(
                    "warning: {id} was installed without a checksum to verify it against"
                ));
            }
            out(&format!("installed {id} in {}", dir.display()))
        }
        Ok(Installed::Already { dir }) => {
            out(&format!("{id} is already installed in {}", dir.display()))
        }
        Err(_) => Ok(()),
    }
}
