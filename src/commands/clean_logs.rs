//! `copkg clean-logs [SERVICE…]`: the `clean_logs` policy over runtime dirs.

use anyhow::Context as _;

use super::{Context, out, runtime_dir_for};
use crate::cli::StatusArgs;
use crate::coordinate::ServiceCoordinate;
use crate::lua::{Platform, ServiceContext};
use crate::runtime::{RuntimeDir, find_runtime_dirs};

/// Cleans the log dirs of the named services, or of every service.
pub fn run(ctx: &Context, args: &StatusArgs) -> anyhow::Result<()> {
    let host = ctx.host()?;
    let mut targets: Vec<(ServiceCoordinate, RuntimeDir)> = Vec::new();
    if args.services.is_empty() {
        for runtime in find_runtime_dirs(&ctx.settings.runtime_root) {
            let Some(record) = runtime.read_record()? else {
                continue;
            };
            let service: ServiceCoordinate = record.service.parse()?;
            targets.push((service, runtime));
        }
    } else {
        for text in &args.services {
            let service: ServiceCoordinate = text.parse()?;
            let runtime = runtime_dir_for(ctx, &host, &service)?;
            targets.push((service, runtime));
        }
    }
    let policy = host.policy();
    for (service, runtime) in targets {
        let record = runtime.read_record()?;
        let context = ServiceContext {
            package: record.as_ref().and_then(|r| r.package.parse().ok()),
            package_dir: record.as_ref().map(|r| r.package_dir.clone()),
            service: service.clone(),
            runtime_dir: runtime.path().to_owned(),
            args: record.as_ref().map(|r| r.args.clone()).unwrap_or_default(),
            platform: Platform::current(),
            open_files: record
                .as_ref()
                .map(crate::service::open_files)
                .unwrap_or_default(),
        };
        let done = policy
            .clean_logs(&context, &ctx.settings.log_cleanup)
            .with_context(|| format!("cannot clean the logs of {service}"))?;
        if ctx.settings.json {
            out(&serde_json::json!({
                "service": service.to_string(), "compressed": done.compressed,
                "deleted": done.deleted, "bytes": done.bytes,
            })
            .to_string())?;
        } else {
            out(&format!(
                "{service}: compressed {}, deleted {}, {} bytes left in {}",
                done.compressed,
                done.deleted,
                done.bytes,
                runtime.path().join("log").display()
            ))?;
        }
    }
    Ok(())
}
