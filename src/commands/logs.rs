//! `copkg logs SERVICE [-n N] [-f] [--file NAME]`: a service's console/
//! and log/ files, read by descriptor (no link followed, nothing but
//! regular files), with what the service wrote escaped.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Context, Result, out, usage};
use crate::cli::LogsArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle;
use crate::runtime::{RuntimeDir, escape_controls};

/// Most bytes read from the end of a file for its last lines.
const TAIL_BYTES: u64 = 1 << 20;
/// Most bytes read from a followed file per round.
const FOLLOW_CHUNK: u64 = 1 << 20;
/// How often a followed file is looked at.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Shows the last lines of a service's log files, and follows them.
pub fn run(ctx: &Context, args: &LogsArgs) -> Result {
    let service: ServiceCoordinate = args.service.parse()?;
    let runtime = lifecycle::recorded_runtime(&ctx.settings, &service)?;
    let files = match &args.file {
        Some(name) => vec![checked_name(name)?],
        None => runtime.log_files()?,
    };
    let headers = files.len() > 1;
    let mut positions = BTreeMap::new();
    for name in &files {
        let Some((bytes, size, inode)) = runtime.read_log(name, 0, 0)? else {
            if args.file.is_some() {
                return Err(usage(format!("{service} has no {name}")));
            }
            continue;
        };
        drop(bytes);
        let from = size.saturating_sub(TAIL_BYTES);
        let (tail, _, _) = runtime
            .read_log(name, from, TAIL_BYTES)?
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&tail);
        let mut lines: Vec<&str> = text.lines().collect();
        if from > 0 && !lines.is_empty() {
            // The first line read may be cut.
            lines.remove(0);
        }
        let shown = &lines[lines.len().saturating_sub(args.lines)..];
        if headers {
            out(&format!("==> {name} <=="))?;
        }
        for line in shown {
            out(&escape_controls(line))?;
        }
        positions.insert(name.clone(), (size, inode, String::new()));
    }
    if args.follow {
        follow(&runtime, &mut positions, headers)?;
    }
    Ok(())
}

/// A file named with `--file`: a plain path under console/ or log/.
fn checked_name(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('/').collect();
    let plain = parts.len() >= 2
        && matches!(parts[0], "console" | "log")
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != "..");
    if !plain {
        return Err(usage(format!(
            "--file {}: name a file under console/ or log/ (console/stdout.log, log/access.log)",
            escape_controls(name)
        )));
    }
    Ok(name.to_owned())
}

/// Prints what is appended to the files, as it comes, until interrupted. A
/// file renamed away (rotated) or truncated is read again from its start.
fn follow(
    runtime: &RuntimeDir,
    positions: &mut BTreeMap<String, (u64, u64, String)>,
    headers: bool,
) -> Result {
    let mut last_shown: Option<String> = None;
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        for (name, (offset, inode, partial)) in positions.iter_mut() {
            let Some((_, size, now_inode)) = runtime.read_log(name, 0, 0)? else {
                continue;
            };
            if now_inode != *inode || size < *offset {
                // Rotated (a new file under the name) or truncated.
                *offset = 0;
                *inode = now_inode;
                partial.clear();
            }
            let Some((bytes, _, _)) = runtime.read_log(name, *offset, FOLLOW_CHUNK)? else {
                continue;
            };
            if bytes.is_empty() {
                continue;
            }
            *offset += bytes.len() as u64;
            partial.push_str(&String::from_utf8_lossy(&bytes));
            // Whole lines only; the rest waits for its newline.
            let Some(end) = partial.rfind('\n') else {
                continue;
            };
            let complete: String = partial.drain(..=end).collect();
            if headers && last_shown.as_deref() != Some(name) {
                out(&format!("==> {name} <=="))?;
                last_shown = Some(name.clone());
            }
            for line in complete.lines() {
                out(&escape_controls(line))?;
            }
        }
    }
}
