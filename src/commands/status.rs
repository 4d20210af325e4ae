//! `copkg status [SERVICE…]`

use std::io::IsTerminal;

use super::{Context, Result, out};
use crate::cli::StatusArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lifecycle::{self, LifecycleError};
use crate::service::{ServiceError, ServiceState};

/// Reports services; with names given, exits "not running" unless all run.
pub fn run(ctx: &Context, args: &StatusArgs) -> Result {
    let rows = if args.services.is_empty() {
        lifecycle::status_all(&ctx.settings)?
    } else {
        let host = ctx.host_even_if_site_is_broken()?;
        let policy = host.policy();
        let mut rows = Vec::new();
        for text in &args.services {
            let service: ServiceCoordinate = text.parse()?;
            rows.push(lifecycle::status(&ctx.settings, &policy, &service)?);
        }
        rows
    };
    let mut not_running = Vec::new();
    let table = args.table || (!ctx.settings.json && std::io::stdout().is_terminal());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut lines = Vec::new();
    for row in &rows {
        let pids = match &row.state {
            ServiceState::Running { pids } => pids.clone(),
            _ => {
                not_running.push(row.service.clone());
                Vec::new()
            }
        };
        let running = !pids.is_empty();
        let package = row.package.clone().unwrap_or_default();
        let supervised = &row.supervised;
        if ctx.settings.json {
            out(&serde_json::json!({
                "service": row.service, "state": row.state.name(), "pids": pids,
                "processes": pids.len(),
                "package": package, "args": row.args, "runtime_dir": row.runtime_dir,
                "user": row.user,
                "started_at": row.started_at.map(utc),
                "uptime_secs": row.started_at.filter(|_| running).map(|s| now.saturating_sub(s)),
                "memory_bytes": row.memory,
                "failed": row.failed,
                "enabled": supervised.enabled == Some(true),
                "restarts": supervised.restarts,
                "last_crashed_at": supervised.last_crashed_at.map(utc),
                "changed": false,
            })
            .to_string())?;
        } else if table {
            let shown_pids = match pids.len() {
                0 => "-".to_owned(),
                1..=3 => pids
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                n => format!(
                    "{},… ({n})",
                    pids[..3]
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            };
            lines.push(vec![
                row.service.clone(),
                row.state.name().to_owned(),
                shown_pids,
                if package.is_empty() {
                    "-".to_owned()
                } else {
                    package
                },
                row.user.clone().unwrap_or_else(|| "-".to_owned()),
                row.started_at.map_or_else(|| "-".to_owned(), utc),
                row.started_at
                    .filter(|_| running)
                    .map_or_else(|| "-".to_owned(), |s| duration(now.saturating_sub(s))),
                row.memory.map_or_else(|| "-".to_owned(), size),
                match supervised.enabled {
                    Some(true) => "yes".to_owned(),
                    _ => "no".to_owned(),
                },
                supervised.restarts.to_string(),
                supervised
                    .last_crashed_at
                    .map_or_else(|| "-".to_owned(), utc),
            ]);
        } else {
            let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
            let pids = if pids.is_empty() {
                "-".to_owned()
            } else {
                pids.join(",")
            };
            // Services ever enabled get three more columns; the first four
            // stay as they were for scripts that read them.
            let supervised = match row.supervised.enabled {
                None => String::new(),
                Some(enabled) => format!(
                    "\t{}\trestarts={}\tlast-crash={}",
                    if enabled { "enabled" } else { "disabled" },
                    row.supervised.restarts,
                    row.supervised
                        .last_crashed_at
                        .map_or_else(|| "-".to_owned(), utc)
                ),
            };
            out(&format!(
                "{}\t{}\t{pids}\t{package}{supervised}",
                row.service,
                row.state.name()
            ))?;
        }
    }
    if table {
        let header = [
            "SERVICE",
            "STATE",
            "PIDS",
            "PACKAGE",
            "USER",
            "STARTED",
            "UPTIME",
            "MEMORY",
            "ENABLED",
            "RESTARTS",
            "LAST CRASH",
        ];
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let render = |cells: Vec<String>| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            text
        };
        out(&render(header.iter().map(|h| (*h).to_owned()).collect()))?;
        for line in lines {
            out(&render(line))?;
        }
    }
    if args.console && !ctx.settings.json {
        for row in &rows {
            let Ok(service) = row.service.parse::<ServiceCoordinate>() else {
                continue;
            };
            if let Ok(runtime) = lifecycle::recorded_runtime(&ctx.settings, &service) {
                let tail = runtime.console_tail(2048);
                if !tail.is_empty() {
                    out(&format!("== {} ==\n{}", row.service, tail.trim_end()))?;
                }
            }
        }
    }
    match not_running.into_iter().next() {
        Some(service) if !args.services.is_empty() => {
            Err(LifecycleError::from(ServiceError::NotRunning { service }).into())
        }
        _ => Ok(()),
    }
}

/// A duration for people: `45s`, `12m 5s`, `3h 20m`, `2d 4h`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d {}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// Bytes for people: `512 B`, `12.3 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Seconds since the epoch as UTC, `2024-05-01T12:00:00Z`.
fn utc(secs: u64) -> String {
    crate::journal::rfc3339(secs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_and_sizes() {
        assert_eq!(super::duration(45), "45s");
        assert_eq!(super::duration(725), "12m 5s");
        assert_eq!(super::duration(12_000), "3h 20m");
        assert_eq!(super::duration(187_200), "2d 4h");
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(12_900_000), "12.3 MiB");
        assert_eq!(super::size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn utc_times() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_714_564_800, "2024-05-01T12:00:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(super::utc(secs), want);
        }
    }
}
