//! `copkg status [SERVICE…]`

use super::{Context, out, runtime_dir_for};
use crate::cli::StatusArgs;
use crate::coordinate::ServiceCoordinate;
use crate::runtime::{RuntimeDir, find_runtime_dirs};
use crate::service::{self, ServiceError, ServiceState};

/// Reports services; with names given, exits "not running" unless all run.
pub fn run(ctx: &Context, args: &StatusArgs) -> anyhow::Result<()> {
    let mut rows: Vec<(String, RuntimeDir)> = Vec::new();
    if args.services.is_empty() {
        for runtime in find_runtime_dirs(&ctx.settings.runtime_root) {
            let name = runtime
                .read_record()
                .ok()
                .flatten()
                .map_or_else(|| runtime.path().display().to_string(), |r| r.service);
            rows.push((name, runtime));
        }
    } else {
        let host = ctx.host()?;
        for text in &args.services {
            let service: ServiceCoordinate = text.parse()?;
            rows.push((service.to_string(), runtime_dir_for(ctx, &host, &service)?));
        }
    }
    let mut not_running = Vec::new();
    let mut lines = Vec::new();
    for (name, runtime) in &rows {
        let state = service::status(runtime)?;
        let package = runtime
            .read_record()
            .ok()
            .flatten()
            .map(|r| r.package)
            .unwrap_or_default();
        let pids = match &state {
            ServiceState::Running { pids } => pids.clone(),
            _ => {
                not_running.push(name.clone());
                Vec::new()
            }
        };
        if ctx.settings.json {
            lines.push(
                serde_json::json!({
                    "service": name, "state": state.name(), "pids": pids,
                    "package": package, "runtime_dir": runtime.path(),
                })
                .to_string(),
            );
        } else {
            let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
            let pids = if pids.is_empty() {
                "-".to_owned()
            } else {
                pids.join(",")
            };
            lines.push(format!("{name}\t{}\t{pids}\t{package}", state.name()));
        }
    }
    for line in lines {
        out(&line)?;
    }
    match not_running.first() {
        Some(service) if !args.services.is_empty() => Err(ServiceError::NotRunning {
            service: service.clone(),
        }
        .into()),
        _ => Ok(()),
    }
}
