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
            out(&serde_json::json!({
                "service": row.service, "state": row.state.name(), "pids": pids,
                "package": package, "runtime_dir": row.runtime_dir, "user": row.user,
            })
            .to_string())?;
        } else {
            let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
            let pids = if pids.is_empty() {
                "-".to_owned()
            } else {
                pids.join(",")
            };
            out(&format!(
                "{}\t{}\t{pids}\t{package}",
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
