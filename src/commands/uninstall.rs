//! `copkg uninstall [--force] COORD…`

use anyhow::Context as _;

use super::{Context, layouts, out, parse_coordinates};
use crate::cli::UninstallArgs;
use crate::runtime::find_runtime_dirs;
use crate::service::{self, ServiceState};

/// A package cannot be uninstalled while a service runs from it.
#[derive(Debug, thiserror::Error)]
#[error("{package} is used by running service {service}; stop it first, or use --force")]
pub struct InUse {
    /// The package.
    pub package: String,
    /// The first running service found using it.
    pub service: String,
}

/// Uninstalls each coordinate; one that is not installed is reported, not an error.
pub fn run(ctx: &Context, args: &UninstallArgs) -> anyhow::Result<()> {
    let coordinates = parse_coordinates(&args.coordinates)?;
    let host = ctx.host()?;
    let layouts = layouts(&host, &coordinates)?;
    let store = ctx.store();
    let runtimes = if args.force {
        Vec::new()
    } else {
        find_runtime_dirs(&ctx.settings.runtime_root)
    };
    for (coordinate, layout) in coordinates.iter().zip(&layouts) {
        let id = coordinate.id();
        for runtime in &runtimes {
            let Ok(Some(record)) = runtime.read_record() else {
                continue;
            };
            if record.package == id
                && matches!(service::status(runtime), Ok(ServiceState::Running { .. }))
            {
                return Err(InUse {
                    package: id,
                    service: record.service,
                }
                .into());
            }
        }
        let mut notice = ctx.lock_wait_notice(&id);
        let removed = store
            .uninstall(coordinate, layout, &mut notice)
            .with_context(|| format!("cannot uninstall {id}"))?;
        let dir = store.install_dir(layout);
        if ctx.settings.json {
            let status = if removed {
                "uninstalled"
            } else {
                "not-installed"
            };
            out(&serde_json::json!({"coordinate": id, "status": status, "dir": dir}).to_string())?;
        } else if removed {
            out(&format!("uninstalled {id} from {}", dir.display()))?;
        } else {
            out(&format!("{id} is not installed"))?;
        }
    }
    Ok(())
}
