//! `copkg verify [COORD… | --all]`: installed files against the manifest
//! recorded at install, like `dpkg --verify` or `rpm -V`.

use std::path::PathBuf;

use super::{Context, Error, Result, layouts, out, parse_coordinates};
use crate::cli::VerifyArgs;
use crate::coordinate::PackageCoordinate;
use crate::exit::{Coded, describe, one_line};
use crate::store::{
    Difference, DifferenceKind, PackageLayout, StoreError, Verification, VerifyOutcome, mode_text,
};

/// What to verify: a coordinate named on the command line (its dir from the
/// layout policy), or an install `Store::list` found.
enum Target {
    Named(PackageCoordinate, PackageLayout),
    Listed(String, PathBuf),
}

/// Verifies each package, printing every difference; exits 13 when any
/// package differs from its manifest or has none.
pub fn run(ctx: &Context, args: &VerifyArgs) -> Result {
    let store = ctx.store();
    let targets: Vec<Target> = if args.all {
        store
            .list()?
            .into_iter()
            .map(|(dir, record)| Target::Listed(record.coordinate, dir))
            .collect()
    } else {
        let coordinates = parse_coordinates(&args.coordinates)?;
        let host = ctx.host()?;
        let layouts = layouts(&host, &coordinates)?;
        coordinates
            .into_iter()
            .zip(layouts)
            .map(|(coordinate, layout)| Target::Named(coordinate, layout))
            .collect()
    };
    let single = !args.all && targets.len() == 1;
    let mut differing = 0;
    let mut failures = Vec::new();
    for target in &targets {
        let (id, result) = match target {
            Target::Named(coordinate, layout) => {
                (coordinate.id(), store.verify(coordinate, layout))
            }
            Target::Listed(id, dir) => (id.clone(), store.verify_dir(dir)),
        };
        match result {
            Ok(verification) => {
                if !verification.is_clean() {
                    differing += 1;
                }
                report(ctx, &id, &verification)?;
            }
            Err(err) => {
                report_failure(ctx, &id, &err, single)?;
                failures.push(Error::Context {
                    message: format!("cannot verify {id}"),
                    source: Box::new(err.into()),
                });
            }
        }
    }
    match failures.len() {
        0 if differing == 0 => Ok(()),
        0 => Err(Error::VerifyDiffers {
            differing,
            total: targets.len(),
        }),
        _ if single => Err(failures.remove(0)),
        failed => Err(Error::Partial {
            failed,
            total: targets.len(),
            what: "verifications",
            code: failures[0].exit_code(),
        }),
    }
}

fn report(ctx: &Context, id: &str, verification: &Verification) -> std::io::Result<()> {
    let checked = match &verification.outcome {
        VerifyOutcome::Checked(checked) => Some(checked),
        VerifyOutcome::NoManifest => None,
    };
    if ctx.settings.json {
        let differences: Vec<_> = checked
            .iter()
            .flat_map(|c| &c.differences)
            .map(difference_json)
            .collect();
        return out(&serde_json::json!({
            "coordinate": id, "dir": verification.dir, "ok": verification.is_clean(),
            "manifest": checked.is_some(), "files": checked.map(|c| c.files),
            "differences": differences, "changed": false,
        })
        .to_string());
    }
    match checked {
        None => out(&format!(
            "{id}: no manifest (installed before copkg recorded one)"
        )),
        Some(checked) if checked.differences.is_empty() => {
            let files = checked.files;
            out(&format!(
                "{id}: ok ({files} {})",
                if files == 1 { "file" } else { "files" }
            ))
        }
        Some(checked) => {
            for difference in &checked.differences {
                out(&format!("{id}: {}", difference_text(difference)))?;
            }
            Ok(())
        }
    }
}

fn report_failure(ctx: &Context, id: &str, err: &StoreError, single: bool) -> std::io::Result<()> {
    if ctx.settings.json {
        out(&serde_json::json!({
            "coordinate": id, "ok": false, "error": one_line(err),
            "exit_code": err.exit_code().code(), "changed": false,
        })
        .to_string())?;
    }
    // A single failure is the command's error, which main prints.
    if !single {
        eprintln!(
            "error: cannot verify {id}\n  caused by: {}",
            describe(err).trim_start_matches("error: ")
        );
    }
    Ok(())
}

/// `modified bin/hello`, `mode bin/hello (0755 → 0777)`, …
fn difference_text(difference: &Difference) -> String {
    let path = printable(&difference.path);
    let kind = difference.kind.name();
    match &difference.kind {
        DifferenceKind::Modified | DifferenceKind::Missing | DifferenceKind::Extra => {
            format!("{kind} {path}")
        }
        DifferenceKind::Mode { expected, actual } => format!(
            "{kind} {path} ({} → {})",
            mode_text(*expected),
            mode_text(*actual)
        ),
        DifferenceKind::Target { expected, actual } => format!(
            "{kind} {path} ({} → {})",
            printable(expected),
            printable(actual)
        ),
    }
}

fn difference_json(difference: &Difference) -> serde_json::Value {
    let mut value = serde_json::json!({
        "path": difference.path, "kind": difference.kind.name(),
    });
    let (expected, actual) = match &difference.kind {
        DifferenceKind::Modified | DifferenceKind::Missing | DifferenceKind::Extra => {
            return value;
        }
        DifferenceKind::Mode { expected, actual } => (mode_text(*expected), mode_text(*actual)),
        DifferenceKind::Target { expected, actual } => (expected.clone(), actual.clone()),
    };
    value["expected"] = expected.into();
    value["actual"] = actual.into();
    value
}

/// A name found on disk with its control characters escaped, so that it
/// cannot forge or break an output line.
fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}
