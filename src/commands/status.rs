//! `copkg status [SERVICE…]`

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
    for row in &rows {
        let pids = match &row.state {
            ServiceState::Running { pids } => pids.clone(),
            _ => {
                not_running.push(row.service.clone());
                Vec::new()
            }
        };
        let package = row.package.clone().unwrap_or_default();
        if ctx.settings.json {
            let supervised = &row.supervised;
            out(&serde_json::json!({
                "service": row.service, "state": row.state.name(), "pids": pids,
                "package": package, "runtime_dir": row.runtime_dir, "user": row.user,
                "enabled": supervised.enabled == Some(true),
                "restarts": supervised.restarts,
                "last_crashed_at": supervised.last_crashed_at.map(utc),
            })
            .to_string())?;
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
    match not_running.into_iter().next() {
        Some(service) if !args.services.is_empty() => {
            Err(LifecycleError::from(ServiceError::NotRunning { service }).into())
        }
        _ => Ok(()),
    }
}

/// Seconds since the epoch as UTC, `2024-05-01T12:00:00Z`.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
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
