//! `copkg install [-j N] COORD… | -`

use std::io::{BufRead, IsTerminal};
use std::sync::Mutex;

use super::{Context, Error, Result, ResultExt, layouts, out, usage};
use crate::cli::InstallArgs;
use crate::coordinate::PackageCoordinate;
use crate::exit::{Coded, describe, one_line};
use crate::repo::{Fetcher, ProxySettings};
use crate::settings::Verbosity;
use crate::store::{InstallRequest, Installed, Progress, StoreError};

/// Reads the coordinates: the arguments, with `-` meaning one a line from
/// stdin (blank lines and `#` comments skipped). Duplicates are dropped.
fn read_coordinates(args: &[String]) -> Result<Vec<PackageCoordinate>> {
    let mut texts = Vec::new();
    for arg in args {
        if arg == "-" {
            for (number, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.map_err(|source| Error::Io {
                    action: "cannot read coordinates from stdin",
                    source,
                })?;
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
pub fn run(ctx: &Context, args: &InstallArgs) -> Result {
    let coordinates = read_coordinates(&args.coordinates)?;
    let host = ctx.host()?;
    let layouts = layouts(&host, &coordinates)?;
    let settings = &ctx.settings;
    let fetcher = Fetcher::new(settings.http.clone(), ProxySettings::from_env())?;
    let single = coordinates.len() == 1;
    // One install on a terminal shows a progress line; pipes and logs get none.
    let show_progress = single
        && settings.verbosity >= Verbosity::Normal
        && !settings.json
        && std::io::stderr().is_terminal();
    let progress_line = |read: u64, total: Option<u64>| {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let line = match total {
            Some(total) if total > 0 => format!(
                "{}: {:.1} / {:.1} MiB ({:.0}%)",
                coordinates[0].id(),
                mib(read),
                mib(total),
                100.0 * read as f64 / total as f64
            ),
            _ => format!("{}: {:.1} MiB", coordinates[0].id(), mib(read)),
        };
        eprint!("\r\x1b[K{line}");
    };
    let requests: Vec<InstallRequest<'_>> = coordinates
        .iter()
        .zip(&layouts)
        .map(|(coordinate, layout)| InstallRequest {
            progress: show_progress.then_some(Progress(&progress_line)),
            ..settings.install_request(coordinate, layout)
        })
        .collect();
    let report_failures = Mutex::new(Vec::new());
    let results = ctx.store().install_parallel(
        &fetcher,
        &requests,
        usize::from(args.jobs),
        &|coordinate, lock| ctx.lock_wait_notice(&coordinate.id())(lock),
        &|index, result| {
            if show_progress {
                eprint!("\r\x1b[K");
            }
            let coordinate = &coordinates[index];
            if let Err(err) = result
                && !single
            {
                eprintln!(
                    "error: cannot install {}\n  caused by: {}",
                    coordinate.id(),
                    describe(err).trim_start_matches("error: ")
                );
            }
            if let Err(err) = report(ctx, coordinate, result) {
                report_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(err);
            }
        },
    );
    if let Some(err) = report_failures
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
    {
        return Err(err.into());
    }
    let mut failures: Vec<Error> = results
        .into_iter()
        .zip(&coordinates)
        .filter_map(|(result, coordinate)| {
            result
                .with_context(|| format!("cannot install {}", coordinate.id()))
                .err()
        })
        .collect();
    match failures.len() {
        0 => Ok(()),
        _ if single => Err(failures.remove(0)),
        failed => Err(Error::Partial {
            failed,
            total: coordinates.len(),
            what: "installs",
            code: failures[0].exit_code(),
        }),
    }
}

fn report(
    ctx: &Context,
    coordinate: &PackageCoordinate,
    result: &std::result::Result<Installed, StoreError>,
) -> std::io::Result<()> {
    let id = coordinate.id();
    if ctx.settings.json {
        let value = match result {
            Ok(Installed::Fresh { dir, record, .. }) => serde_json::json!({
                "coordinate": id, "status": "installed", "dir": dir,
                "sha256": record.sha256, "verified": record.verified, "source": record.source,
            }),
            Ok(Installed::Already { dir }) => serde_json::json!({
                "coordinate": id, "status": "already-installed", "dir": dir,
            }),
            Err(err) => serde_json::json!({
                "coordinate": id, "status": "failed",
                "error": one_line(err),
                "exit_code": err.exit_code().code(),
            }),
        };
        return out(&value.to_string());
    }
    match result {
        Ok(Installed::Fresh {
            dir,
            record,
            unreadable,
        }) => {
            super::warn_unreadable(ctx, &id, unreadable);
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
